//! The authoritative query path without sockets: decode, look up, encode, for the zone
//! and query mix of `bench/run.sh` (the shared kit's `gen.py`: 10,000 hosts with A,
//! some AAAA and TXT, CNAMEs, MX, 5% NXDOMAIN). Prints nanoseconds per query, to
//! compare two builds on one machine without NSD and dnsperf.
//!
//! usage: cargo run --release -p outpost-dns --example query_path [ROUNDS]

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use outpost_core::answer::Transport;
use outpost_core::answer::ZoneSet;
use outpost_core::state::{Command, ReplicatedState};
use outpost_core::wire::encode_records;
use outpost_core::zonefile::parse_zone;
use outpost_dns::forward::{ForwardConfig, Forwarder};
use outpost_dns::handler::{Handled, QueryHandler};
use outpost_dns::metrics::Metrics;

const HOSTS: usize = 10_000;
const AAAA_HOSTS: usize = 2_000;
const TXT_HOSTS: usize = 1_000;
const CNAMES: usize = 500;
const MAIL: usize = 10;
const QUERIES: usize = 100_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(5), |n| n.parse())?;
    let origin = Name::from_ascii("example.test.")?;
    let records = parse_zone(&zone_text(), &origin, 3600)?;
    let mut zones = ReplicatedState::default();
    zones.apply(&Command::CreateZone {
        origin: origin.to_ascii(),
        records: encode_records(&records)?,
    })?;
    let zone_set = Arc::new(ArcSwap::from_pointee(ZoneSet::build(&zones)));
    let metrics = Arc::new(Metrics::default());
    let forward = ForwardConfig {
        upstreams: Vec::new(),
        timeout: Duration::from_secs(1),
        cache_entries: 16,
        serve_stale: Duration::from_secs(1),
        tls: None,
        zones: Vec::new(),
    };
    let forwarder = Arc::new(Forwarder::new(&forward, metrics.clone()));
    let handler = QueryHandler::new(zone_set, forwarder, Vec::new(), metrics);
    let packets = queries()?;
    let client = IpAddr::V4(Ipv4Addr::LOCALHOST);

    let mut per_query = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let mut bytes = 0;
        let mut reply = Vec::with_capacity(512);
        for packet in &packets {
            let handled = handler.handle(packet, client, Transport::Udp, None, &mut reply);
            if let Handled::Reply = handled {
                bytes += reply.len();
            }
        }
        let elapsed = started.elapsed();
        per_query.push(elapsed.as_nanos() as f64 / packets.len() as f64);
        std::hint::black_box(bytes);
    }
    per_query.sort_by(f64::total_cmp);
    let rounds_text: Vec<String> = per_query.iter().map(|ns| format!("{ns:.0}")).collect();
    println!(
        "query path (decode, lookup, encode): median {:.0} ns/query over {} queries; rounds {}",
        per_query[per_query.len() / 2],
        packets.len(),
        rounds_text.join(" ")
    );
    Ok(())
}

/// The kit's zone, as `gen.py` writes it.
fn zone_text() -> String {
    let mut text = String::from(
        "$TTL 3600\n@ IN SOA ns1.example.test. hostmaster.example.test. 2024010101 7200 3600 1209600 300\n\
         @ IN NS ns1.example.test.\n@ IN NS ns2.example.test.\n\
         ns1 IN A 198.18.255.1\nns2 IN A 198.18.255.2\n\
         @ IN MX 10 mail0.example.test.\n@ IN MX 20 mail1.example.test.\n@ IN TXT \"v=spf1 -all\"\n",
    );
    for i in 0..MAIL {
        let _ = writeln!(text, "mail{i} IN A 198.18.254.{i}");
        let _ = writeln!(text, "mx{i} IN MX 10 mail{i}.example.test.");
    }
    for i in 0..HOSTS {
        let _ = writeln!(text, "h{i} IN A 198.18.{}.{}", i / 256, i % 256);
        if i < AAAA_HOSTS {
            let _ = writeln!(text, "h{i} IN AAAA 2001:db8::{i:x}");
        }
        if i < TXT_HOSTS {
            let _ = writeln!(text, "h{i} IN TXT \"v=bench host {i} some text payload\"");
        }
    }
    for i in 0..CNAMES {
        let _ = writeln!(text, "c{i} IN CNAME h{}.example.test.", i * 7 % HOSTS);
    }
    text
}

/// The kit's query mix (72% A, 10% AAAA, 8% TXT, 3% CNAME, 2% MX, 5% NXDOMAIN), from
/// a fixed seed, as wire packets with EDNS.
fn queries() -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
    let mut seed: u64 = 42;
    let mut next = move |below: usize| {
        // xorshift64*: deterministic, good enough to spread the names.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as usize % below
    };
    let mut packets = Vec::with_capacity(QUERIES);
    for id in 0..QUERIES {
        let (name, rtype) = match next(100) {
            0..72 => (format!("h{}", next(HOSTS)), RecordType::A),
            72..82 => (format!("h{}", next(AAAA_HOSTS)), RecordType::AAAA),
            82..90 => (format!("h{}", next(TXT_HOSTS)), RecordType::TXT),
            90..93 => (format!("c{}", next(CNAMES)), RecordType::A),
            93..95 => (format!("mx{}", next(MAIL)), RecordType::MX),
            _ => (format!("nx{}", next(1_000_000)), RecordType::A),
        };
        let mut message = Message::query();
        message.metadata.id = id as u16;
        message.add_query(Query::query(
            Name::from_ascii(format!("{name}.example.test."))?,
            rtype,
        ));
        message.edns = Some(Default::default());
        packets.push(message.to_vec()?);
    }
    Ok(packets)
}
