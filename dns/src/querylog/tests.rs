use std::str::FromStr;

use super::*;

fn answered<'a>(name: &'a Name, client: &str, source: Source, rcode: ResponseCode) -> Answered<'a> {
    Answered {
        at: Instant::now(),
        client: client.parse().unwrap(),
        name,
        qtype: RecordType::A,
        transport: Transport::Udp,
        rcode,
        source,
        latency: Duration::from_micros(150),
    }
}

fn blocked() -> Source {
    Source::Plugin {
        plugin: Arc::from("blocklist"),
        verdict: Verdict::Block,
    }
}

fn all(log: &QueryLog) -> Vec<Record> {
    log.search(&Filter {
        limit: MAX_SEARCH_RESULTS,
        ..Filter::default()
    })
    .records
}

#[test]
fn a_search_returns_the_newest_first_and_keeps_the_capacity() {
    let log = QueryLog::new(Settings {
        capacity: 16,
        ..Settings::default()
    });
    let name = Name::from_str("WWW.Example.com.").unwrap();
    for _ in 0..100 {
        log.record(answered(
            &name,
            "192.0.2.7",
            Source::Zone,
            ResponseCode::NoError,
        ));
    }
    let records = all(&log);
    // One thread writes one shard, which has the whole capacity to itself.
    assert_eq!(records.len(), 16);
    assert!(records.windows(2).all(|pair| pair[0].seq > pair[1].seq));
    assert_eq!(records[0].name, "www.example.com.");
    assert_eq!(records[0].qtype, "A");
    assert_eq!(records[0].rcode, "NOERROR");
    assert_eq!(records[0].source, "zone");
    assert_eq!(records[0].latency_us, 150);
}

#[test]
fn filters_narrow_a_search_and_after_tails_it() {
    let log = QueryLog::new(Settings::default());
    let ads = Name::from_str("ads.tracker.test.").unwrap();
    let www = Name::from_str("www.example.com.").unwrap();
    log.record(answered(
        &www,
        "192.0.2.1",
        Source::Cache,
        ResponseCode::NoError,
    ));
    log.record(answered(
        &ads,
        "192.0.2.2",
        blocked(),
        ResponseCode::NXDomain,
    ));
    log.record(answered(
        &www,
        "192.0.2.2",
        Source::Upstream,
        ResponseCode::ServFail,
    ));
    let search = |filter: Filter| {
        log.search(&Filter {
            limit: 100,
            ..filter
        })
        .records
    };
    let by_client = search(Filter {
        client: Some("192.0.2.2".parse().unwrap()),
        ..Filter::default()
    });
    assert_eq!(by_client.len(), 2);
    let by_verdict = search(Filter {
        source: Some("block".into()),
        ..Filter::default()
    });
    assert_eq!(by_verdict.len(), 1);
    assert_eq!(by_verdict[0].plugin.as_deref(), Some("blocklist"));
    assert_eq!(by_verdict[0].name, "ads.tracker.test.");
    let by_name = search(Filter {
        name: Some("example".into()),
        rcode: Some(ResponseCode::ServFail),
        ..Filter::default()
    });
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name[0].source, "upstream");
    let newest = all(&log)[0].seq;
    assert!(
        search(Filter {
            after: Some(newest),
            ..Filter::default()
        })
        .is_empty()
    );
    log.record(answered(
        &www,
        "192.0.2.3",
        Source::Zone,
        ResponseCode::NoError,
    ));
    let tail = search(Filter {
        after: Some(newest),
        ..Filter::default()
    });
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].client.to_string(), "192.0.2.3");
}

#[test]
fn modes_keep_what_they_say() {
    let log = QueryLog::new(Settings {
        mode: Mode::BlockedOrFailed,
        ..Settings::default()
    });
    let name = Name::from_str("a.test.").unwrap();
    log.record(answered(
        &name,
        "192.0.2.1",
        Source::Zone,
        ResponseCode::NoError,
    ));
    log.record(answered(
        &name,
        "192.0.2.1",
        Source::Zone,
        ResponseCode::NXDomain,
    ));
    log.record(answered(
        &name,
        "192.0.2.1",
        Source::Refused,
        ResponseCode::Refused,
    ));
    log.record(answered(
        &name,
        "192.0.2.1",
        blocked(),
        ResponseCode::NXDomain,
    ));
    let sources: Vec<_> = all(&log).iter().map(|record| record.source).collect();
    assert_eq!(sources, ["plugin", "refused"]);
    log.reconfigure(Settings {
        mode: Mode::Off,
        ..Settings::default()
    });
    log.record(answered(
        &name,
        "192.0.2.1",
        blocked(),
        ResponseCode::NXDomain,
    ));
    assert_eq!(all(&log).len(), 2);
    assert_eq!(log.stats(60).queries, 2);
}

#[test]
fn anonymized_clients_lose_their_host_part() {
    assert_eq!(
        anonymize("192.0.2.77".parse().unwrap()).to_string(),
        "192.0.2.0"
    );
    assert_eq!(
        anonymize("2001:db8:1:2:3:4:5:6".parse().unwrap()).to_string(),
        "2001:db8:1::"
    );
    let log = QueryLog::new(Settings {
        anonymize_clients: true,
        ..Settings::default()
    });
    let name = Name::from_str("a.test.").unwrap();
    log.record(answered(
        &name,
        "192.0.2.77",
        Source::Zone,
        ResponseCode::NoError,
    ));
    assert_eq!(all(&log)[0].client.to_string(), "192.0.2.0");
    assert_eq!(log.stats(60).top_clients[0].key, "192.0.2.0");
}

#[test]
fn stats_count_sources_and_rank_the_busiest() {
    let log = QueryLog::new(Settings::default());
    let names: Vec<Name> = (0..20)
        .map(|i| Name::from_str(&format!("n{i}.test.")).unwrap())
        .collect();
    let ads = Name::from_str("ads.test.").unwrap();
    for (i, name) in names.iter().enumerate() {
        for _ in 0..=i {
            log.record(answered(
                name,
                "192.0.2.1",
                Source::Cache,
                ResponseCode::NoError,
            ));
        }
    }
    log.record(answered(
        &names[0],
        "192.0.2.9",
        Source::Upstream,
        ResponseCode::NoError,
    ));
    log.record(answered(
        &ads,
        "192.0.2.9",
        blocked(),
        ResponseCode::NXDomain,
    ));
    log.record(answered(
        &ads,
        "192.0.2.9",
        blocked(),
        ResponseCode::NXDomain,
    ));
    let stats = log.stats(60);
    assert_eq!(stats.queries, 210 + 3);
    assert_eq!(stats.counts.cached, 210);
    assert_eq!(stats.counts.forwarded, 1);
    assert_eq!(stats.counts.upstream_us, 150);
    assert_eq!(stats.counts.blocked, 2);
    assert_eq!(stats.top_names.len(), aggregate::TOP_KEPT);
    assert_eq!(stats.top_names[0].key, "n19.test.");
    assert_eq!(stats.top_names[0].count, 20);
    assert_eq!(stats.top_clients[0].key, "192.0.2.1");
    assert_eq!(stats.top_blocked[0].key, "ads.test.");
    assert_eq!(stats.top_blocked[0].count, 2);
    assert_eq!(stats.series.iter().map(|p| p.queries).sum::<u64>(), 213);
}

#[test]
fn a_full_table_keeps_counting_the_heavy_hitters() {
    let log = QueryLog::new(Settings::default());
    let heavy = Name::from_str("heavy.test.").unwrap();
    for i in 0..5_000 {
        let junk = Name::from_str(&format!("r{i}.flood.test.")).unwrap();
        log.record(answered(
            &junk,
            "192.0.2.1",
            Source::Zone,
            ResponseCode::NXDomain,
        ));
        if i % 10 == 0 {
            log.record(answered(
                &heavy,
                "192.0.2.1",
                Source::Zone,
                ResponseCode::NoError,
            ));
        }
    }
    let stats = log.stats(60);
    assert_eq!(stats.top_names[0].key, "heavy.test.");
    assert!(stats.top_names[0].count >= 500, "{:?}", stats.top_names[0]);
}

#[test]
fn rcodes_read_back_by_name_or_number() {
    for rcode in [
        ResponseCode::NXDomain,
        ResponseCode::ServFail,
        ResponseCode::BADCOOKIE,
    ] {
        assert_eq!(parse_rcode(&rcode_name(rcode)), Some(rcode));
        assert_eq!(parse_rcode(&u16::from(rcode).to_string()), Some(rcode));
    }
    assert_eq!(parse_rcode("nxdomain"), Some(ResponseCode::NXDomain));
    assert_eq!(rcode_name(ResponseCode::from(0, 12)), "RCODE12");
    assert_eq!(parse_rcode("nonsense"), None);
    assert_eq!(parse_rcode("4096"), None);
}

#[test]
fn the_capacity_is_shared_by_the_threads_that_log_and_a_smaller_one_applies() {
    let log = Arc::new(QueryLog::new(Settings {
        capacity: 100,
        ..Settings::default()
    }));
    let name = Name::from_str("a.test.").unwrap();
    std::thread::scope(|scope| {
        for client in ["192.0.2.1", "192.0.2.2"] {
            let (log, name) = (&log, &name);
            scope.spawn(move || {
                for _ in 0..500 {
                    log.record(answered(name, client, Source::Zone, ResponseCode::NoError));
                }
            });
        }
    });
    let kept = all(&log);
    // Two shards in use (or one, if both threads drew the same): never over the capacity.
    assert!(kept.len() <= 100, "{}", kept.len());
    assert!(kept.len() >= 50, "{}", kept.len());
    log.reconfigure(Settings {
        capacity: 10,
        ..Settings::default()
    });
    let shrunk = all(&log);
    assert!(shrunk.len() <= 10, "{}", shrunk.len());
    assert_eq!(shrunk[0].seq, kept[0].seq, "the newest are kept");
}

#[test]
fn a_query_is_timed_from_its_arrival() {
    let log = QueryLog::new(Settings::default());
    let name = Name::from_str("a.test.").unwrap();
    let before = unix_ms();
    let mut early = answered(&name, "192.0.2.1", Source::Zone, ResponseCode::NoError);
    early.at = Instant::now() - Duration::from_secs(5);
    log.record(early);
    log.record(answered(
        &name,
        "192.0.2.1",
        Source::Zone,
        ResponseCode::NoError,
    ));
    let records = all(&log);
    let (late, early) = (records[0].time_ms, records[1].time_ms);
    assert!(
        late >= before && late <= unix_ms(),
        "{late} against {before}"
    );
    assert!(
        (4_900..=5_100).contains(&(late - early)),
        "{early} then {late}"
    );
}

#[test]
fn a_tail_that_follows_its_cursor_sees_every_record_once_while_threads_write() {
    let log = QueryLog::new(Settings {
        capacity: 100_000,
        ..Settings::default()
    });
    let name = Name::from_str("a.test.").unwrap();
    let mut seen = Vec::new();
    std::thread::scope(|scope| {
        for client in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
            let (log, name) = (&log, &name);
            scope.spawn(move || {
                for _ in 0..5_000 {
                    log.record(answered(name, client, Source::Zone, ResponseCode::NoError));
                }
            });
        }
        let mut cursor = 0;
        let mut quiet = 0;
        // Until three tails in a row find nothing more once all is seen (or a missed
        // record makes that never happen: then the deadline, and the count below fails).
        let deadline = Instant::now() + Duration::from_secs(30);
        while quiet < 3 && Instant::now() < deadline {
            let found = log.search(&Filter {
                after: Some(cursor),
                limit: 700,
                ..Filter::default()
            });
            assert!(found.cursor >= cursor, "the cursor went back");
            cursor = found.cursor;
            quiet = if found.records.is_empty() && seen.len() == 15_000 {
                quiet + 1
            } else {
                0
            };
            seen.extend(found.records.iter().map(|record| record.seq));
        }
    });
    seen.sort_unstable();
    let expected: Vec<u64> = (1..=15_000).collect();
    assert_eq!(seen.len(), expected.len(), "missed or repeated records");
    assert_eq!(seen, expected);
}
