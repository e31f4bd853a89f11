//! A cluster losing boxes: kill -9 of the leader under a stream of writes, catch-up
//! by snapshot after SIGSTOP, a minority that refuses writes, five boxes losing two.

use super::*;

#[test]
fn killing_the_leader_under_writes_loses_no_acknowledged_write() {
    let mut nodes = start_cluster(3, "");
    let leader = leader(&nodes, &[0, 1, 2]);
    let targets: Vec<(SocketAddr, String)> = nodes
        .iter()
        .map(|node| (node.admin_addr(), node.token().to_string()))
        .collect();
    let dead = Arc::new(Mutex::new(Vec::<usize>::new()));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (dead, acked, stop) = (Arc::clone(&dead), Arc::clone(&acked), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut errors = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let name = format!("w{i}.example.internal.");
                let ip = format!("10.1.{}.{}", i / 250, i % 250 + 1);
                let dead_now = dead.lock().expect("lock").clone();
                let live: Vec<usize> = (0..3).filter(|n| !dead_now.contains(n)).collect();
                let (admin, token) = &targets[live[i % live.len()]];
                // A failed write may or may not have committed: it is not counted either way.
                match add_record(*admin, token, &name, &ip) {
                    Ok(()) => acked.lock().expect("lock").push(name),
                    Err(error) => errors.push(error),
                }
            }
            errors
        })
    };
    let count = || acked.lock().expect("lock").len();
    assert!(
        wait_until(CLUSTER_WAIT, || count() >= 20),
        "no writes acknowledged"
    );
    nodes[leader].kill9();
    dead.lock().expect("lock").push(leader);
    let before = count();
    let resumed = wait_until(Duration::from_secs(60), || count() >= before + 30);
    stop.store(true, Ordering::SeqCst);
    let errors = writer.join().expect("writer");
    assert!(
        resumed,
        "writes did not resume after the leader died: {errors:?}"
    );
    eprintln!(
        "{} writes acknowledged, {} failed around the kill (first: {:?})",
        count(),
        errors.len(),
        errors.first()
    );

    let acked = acked.lock().expect("lock").clone();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let new_leader = self::leader(&nodes, &survivors);
    assert_ne!(new_leader, leader);
    let check = |nodes: &[Appliance], which: &[usize]| {
        for &i in which {
            let last = acked.last().expect("writes");
            let caught_up = wait_until(CLUSTER_WAIT, || !nodes[i].a_records(last).is_empty());
            assert!(caught_up, "node {i} lacks {last}\n{}", nodes[i].log_tail());
            let missing: Vec<&String> = acked
                .iter()
                .filter(|name| nodes[i].a_records(name).is_empty())
                .collect();
            assert!(
                missing.is_empty(),
                "node {i} lost acknowledged writes {missing:?}"
            );
        }
    };
    check(&nodes, &survivors);

    // The killed node comes back and catches up.
    nodes[leader].restart();
    check(&nodes, &[leader]);
}

#[test]
fn a_node_stopped_past_a_compaction_catches_up_by_snapshot() {
    // Snapshots every 20 entries, 5 entries kept behind them: a node away for 60 writes
    // finds the entries it lacks purged.
    let mut nodes = start_cluster(3, "snapshot_every_entries = 20\nlog_entries_kept = 5\n");
    let leader = leader(&nodes, &[0, 1, 2]);
    let stopped = (0..3).find(|&i| i != leader).expect("a follower");
    nodes[stopped].signal(Signal::SIGSTOP);
    for i in 0..60 {
        nodes[leader].cli_ok([
            "record",
            "add",
            &format!("s{i}.example.internal."),
            "A",
            &format!("10.2.0.{}", i + 1),
        ]);
    }
    nodes[stopped].signal(Signal::SIGCONT);
    assert_answers_everywhere(&nodes, &[stopped], "s59.example.internal.", "10.2.0.60");
    assert!(
        nodes[stopped].log().contains("snapshot received"),
        "caught up without a snapshot\n{}",
        nodes[stopped].log_tail()
    );
    assert_eq!(
        nodes[stopped].a_records("s0.example.internal."),
        ["10.2.0.1"]
    );
    // It is a follower again, taking writes it forwards.
    nodes[stopped].cli_ok(["record", "add", "back.example.internal.", "A", "10.2.1.1"]);
    assert_answers_everywhere(&nodes, &[0, 1, 2], "back.example.internal.", "10.2.1.1");
    drop(nodes.pop());
}

#[test]
fn a_minority_node_refuses_writes_with_a_clear_error_and_still_answers_dns() {
    let mut nodes = start_cluster(3, "");
    let leader = leader(&nodes, &[0, 1, 2]);
    let alone = (0..3).find(|&i| i != leader).expect("a follower");
    for i in (0..3).filter(|&i| i != alone) {
        nodes[i].kill9();
    }
    let body = r#"{"name":"lost.example.internal.","type":"A","data":"10.3.0.1"}"#;
    let (code, error) = nodes[alone].api("POST", "/v1/records", Some(body));
    assert_eq!(code, 503, "{error}");
    assert!(
        error.contains("quorum") || error.contains("leader"),
        "the error does not say why: {error}"
    );
    let (code, error) = nodes[alone].api_json("GET", "/v1/zones?consistency=linearizable", None);
    assert_eq!(code, 503, "{error}");
    // Reads from the replica keep working.
    assert_eq!(
        nodes[alone].a_records("www.example.internal."),
        ["10.0.0.10"]
    );
    let (code, _) = nodes[alone].api("GET", "/v1/zones", None);
    assert_eq!(code, 200);
}

#[test]
fn five_boxes_survive_losing_two_including_the_leader() {
    let mut nodes = start_cluster(5, "");
    let all = [0, 1, 2, 3, 4];
    let leader = leader(&nodes, &all);
    let other = all.into_iter().find(|&i| i != leader).expect("another");
    nodes[leader].kill9();
    nodes[other].kill9();
    let survivors: Vec<usize> = all
        .into_iter()
        .filter(|&i| i != leader && i != other)
        .collect();
    let written = wait_until(CLUSTER_WAIT, || {
        add_record(
            nodes[survivors[0]].admin_addr(),
            nodes[survivors[0]].token(),
            "five.example.internal.",
            "10.5.0.5",
        )
        .is_ok()
    });
    assert!(written, "{}", nodes[survivors[0]].log_tail());
    assert_answers_everywhere(&nodes, &survivors, "five.example.internal.", "10.5.0.5");
    let status = cluster_status(&nodes[survivors[1]]);
    assert_eq!(
        status["nodes"].as_array().map(Vec::len),
        Some(5),
        "{status:#}"
    );
}
