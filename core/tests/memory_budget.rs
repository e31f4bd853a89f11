//! What a zone costs in memory: the model and its query index for a zone shaped like a
//! site's host names (one A record per owner, as `bench/sync` generates), counted by an
//! allocating test harness. Issue 4 wants a Lite client under 64 MB with 100,000
//! records; these budgets keep the representation from sliding back (it once took
//! about 600 bytes a record).

use hickory_proto::rr::{Name, RData, Record, RecordType};
use outpost_core::answer::ZoneSet;
use outpost_core::state::{Change, Command, ReplicatedState};
use outpost_core::wire::encode_records;

const ORIGIN: &str = "bench.test.";
const RECORDS: usize = 20_000;
/// Bytes asked of the allocator per record, model and index together.
const BYTES_PER_RECORD: i64 = 150;

fn zone_blob(records: usize) -> Vec<u8> {
    let origin = Name::from_ascii(ORIGIN).unwrap();
    let soa = "ns1.bench.test. hostmaster.bench.test. 1 7200 3600 1209600 300";
    let mut all = vec![
        Record::from_rdata(
            origin.clone(),
            3600,
            RData::try_from_str(RecordType::SOA, soa).unwrap(),
        ),
        Record::from_rdata(
            origin,
            3600,
            RData::try_from_str(RecordType::NS, "ns1.bench.test.").unwrap(),
        ),
    ];
    for host in 0..records - 2 {
        let name = Name::from_ascii(format!("h{host:06}.{ORIGIN}")).unwrap();
        let address = std::net::Ipv4Addr::from(0x0a00_0000 + host as u32);
        all.push(Record::from_rdata(name, 300, RData::A(address.into())));
    }
    encode_records(&all).unwrap()
}

/// The changes a replica loads: the zone as the appliance sends it.
fn replica_changes() -> Vec<Change> {
    let mut zones = ReplicatedState::default();
    zones
        .apply(&Command::CreateZone {
            origin: ORIGIN.into(),
            records: zone_blob(RECORDS),
        })
        .unwrap();
    zones.to_changes()
}

#[test]
fn a_loaded_replica_and_its_index_stay_within_budget() {
    let changes = replica_changes();
    let mut zones = ReplicatedState::default();
    let mut zone_set = None;
    let held = allocation_counter::measure(|| {
        for change in &changes {
            zones.apply_change(change).unwrap();
        }
        zone_set = Some(ZoneSet::build(&zones));
    });
    let per_record = held.bytes_current / RECORDS as i64;
    println!("a loaded replica and its index: {per_record} bytes a record");
    assert!(
        per_record <= BYTES_PER_RECORD,
        "{per_record} bytes a record (budget {BYTES_PER_RECORD}); {} allocations held",
        held.count_current
    );
    assert!(
        zone_set
            .unwrap()
            .lookup(
                &Name::from_ascii("h000007.bench.test.").unwrap(),
                RecordType::A
            )
            .is_some()
    );
}

#[test]
fn an_imported_zone_stays_within_budget() {
    let command = Command::CreateZone {
        origin: ORIGIN.into(),
        records: zone_blob(RECORDS),
    };
    let mut zones = ReplicatedState::default();
    let held = allocation_counter::measure(|| {
        let changes = zones.apply(&command).unwrap();
        drop(changes);
        let zone_set = ZoneSet::build(&zones);
        std::mem::forget(zone_set);
    });
    let per_record = held.bytes_current / RECORDS as i64;
    println!("an imported zone and its index: {per_record} bytes a record");
    assert!(
        per_record <= BYTES_PER_RECORD,
        "{per_record} bytes a record (budget {BYTES_PER_RECORD})"
    );
}

#[test]
fn a_lookup_allocates_nothing_in_proportion_to_the_zone() {
    let changes = replica_changes();
    let mut zones = ReplicatedState::default();
    for change in &changes {
        zones.apply_change(change).unwrap();
    }
    let zone_set = ZoneSet::build(&zones);
    let names: Vec<Name> = ["h000007.bench.test.", "nothere.bench.test.", "bench.test."]
        .iter()
        .map(|name| Name::from_ascii(name).unwrap())
        .collect();
    for name in &names {
        for qtype in [RecordType::A, RecordType::NS, RecordType::TXT] {
            let used = allocation_counter::measure(|| {
                std::hint::black_box(zone_set.lookup(name, qtype));
            });
            // The section vectors, and nothing else for names this short.
            assert!(used.count_total <= 3, "{name} {qtype}: {used:?}");
        }
    }
}
