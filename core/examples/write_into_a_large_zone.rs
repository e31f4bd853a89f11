//! What one write into a zone of 100,000 records costs the model while the previous
//! state is still held (as the published `Arc<ReplicatedState>` is by readers), dropping
//! that state included. Prints the median and p99 of [`WRITES`] single-record writes;
//! not a pass/fail benchmark (`state::tests` checks that such writes land and leave the
//! held state as it was).
//!
//! usage: cargo run --release -p outpost-core --example write_into_a_large_zone

use std::time::Instant;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use outpost_core::state::{Command, ReplicatedState};
use outpost_core::wire::encode_records;

const RECORDS: usize = 100_000;
const WRITES: usize = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let origin = Name::from_ascii("site.internal.")?;
    let mut records = vec![record(
        "site.internal.",
        3600,
        RecordType::SOA,
        "ns1.site.internal. hostmaster.site.internal. 1 7200 3600 1209600 300",
    )?];
    for i in 0..RECORDS {
        let address = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        records.push(record(
            &format!("host{i}.site.internal."),
            300,
            RecordType::A,
            &address,
        )?);
    }
    let mut zones = ReplicatedState::default();
    zones.apply(&Command::CreateZone {
        origin: origin.to_ascii(),
        records: encode_records(&records)?,
    })?;
    let mut writes = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let added = record(
            &format!("new{i}.site.internal."),
            60,
            RecordType::A,
            "192.0.2.1",
        )?;
        writes.push(Command::AddRecords {
            records: encode_records(&[added])?,
        });
    }

    let mut times = Vec::with_capacity(WRITES);
    for write in &writes {
        let published = zones.clone();
        let started = Instant::now();
        zones.apply(write)?;
        // The state readers held goes when the last of them lets go: its cost too.
        drop(published);
        times.push(started.elapsed());
    }
    times.sort();
    let landed = zones.get(&origin).map_or(0, |zone| zone.record_count());
    if landed != RECORDS + 1 + WRITES {
        return Err(format!(
            "the zone holds {landed} records, not {}",
            RECORDS + 1 + WRITES
        )
        .into());
    }
    println!(
        "one write into a zone of {RECORDS} records, the previous state held then dropped: median {:.2?}, p99 {:.2?} ({} build)",
        times[WRITES / 2],
        times[WRITES * 99 / 100],
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    );
    Ok(())
}

fn record(
    name: &str,
    ttl: u32,
    rtype: RecordType,
    data: &str,
) -> Result<Record, Box<dyn std::error::Error>> {
    Ok(Record::from_rdata(
        Name::from_ascii(name)?,
        ttl,
        RData::try_from_str(rtype, data)?,
    ))
}
