//! An IXFR's differences as the command that applies them: each RRset they touch, as it
//! is once every difference is applied in order to what the zone holds now.

use std::collections::BTreeMap;

use hickory_proto::rr::{Name, Record, RecordType};
use outpost_core::state::{Command, ReplicatedState, TransferredRRset, Zone};
use outpost_core::wire::encode_records;
use outpost_dns::transfer::client::Difference;

/// RRsets being rebuilt, by owner (lowercase) and type.
type Sets = BTreeMap<(Name, u16), Vec<Record>>;

/// The `TransferChanges` command for `steps`, which lead from `from_serial` to `soa`.
/// A record removed is matched by its data (whatever its TTL); an RRset takes the TTL of
/// its last record added, as one RRset has one TTL here.
pub(super) fn command(
    state: &ReplicatedState,
    origin: &Name,
    from_serial: u32,
    soa: Record,
    steps: &[Difference],
    now_unix: u64,
) -> Result<Command, String> {
    let zone = state.get(origin);
    let mut sets = Sets::new();
    for step in steps {
        for record in &step.removed {
            set_of(&mut sets, zone, record).retain(|kept| kept.data != record.data);
        }
        for record in &step.added {
            let set = set_of(&mut sets, zone, record);
            set.retain(|kept| kept.data != record.data);
            set.push(record.clone());
            let ttl = record.ttl;
            set.iter_mut().for_each(|member| member.ttl = ttl);
        }
    }
    let apex = (origin.to_lowercase(), u16::from(RecordType::SOA));
    sets.insert(apex, vec![soa]);
    let rrsets = sets
        .into_iter()
        .map(|((owner, rtype), records)| {
            Ok(TransferredRRset {
                owner: owner.to_ascii(),
                rtype,
                records: encode_records(&records).map_err(|e| e.to_string())?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Command::TransferChanges {
        origin: origin.to_ascii(),
        from_serial,
        rrsets,
        now_unix,
    })
}

/// The RRset `record` belongs to, started from what the zone holds.
fn set_of<'a>(sets: &'a mut Sets, zone: Option<&Zone>, record: &Record) -> &'a mut Vec<Record> {
    let owner = record.name.to_lowercase();
    let rtype = record.record_type();
    sets.entry((owner.clone(), rtype.into()))
        .or_insert_with(|| {
            zone.and_then(|zone| zone.rrset(&owner, rtype))
                .map(|rrset| rrset.records().collect())
                .unwrap_or_default()
        })
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::RData;
    use outpost_core::wire::decode_records;

    use super::*;

    fn rec(name: &str, ttl: u32, rtype: RecordType, data: &str) -> Record {
        let name = Name::from_ascii(name).unwrap();
        Record::from_rdata(name, ttl, RData::try_from_str(rtype, data).unwrap())
    }

    fn soa(serial: u32) -> Record {
        let data = format!("ns1.hq.example. hostmaster.hq.example. {serial} 1 1 1 1");
        rec("hq.example.", 300, RecordType::SOA, &data)
    }

    #[test]
    fn differences_become_the_rrsets_they_leave() {
        let mut state = ReplicatedState::default();
        let records = [
            soa(1),
            rec("www.hq.example.", 300, RecordType::A, "10.0.0.1"),
            rec("www.hq.example.", 300, RecordType::A, "10.0.0.2"),
        ];
        let create = Command::CreateZone {
            origin: "hq.example.".into(),
            records: encode_records(&records).unwrap(),
        };
        state.apply(&create).unwrap();
        let steps = [
            Difference {
                removed: vec![rec("www.hq.example.", 300, RecordType::A, "10.0.0.1")],
                added: vec![rec("mail.hq.example.", 60, RecordType::A, "10.0.0.9")],
            },
            Difference {
                removed: vec![rec("mail.hq.example.", 60, RecordType::A, "10.0.0.9")],
                added: vec![rec("www.hq.example.", 120, RecordType::A, "10.0.0.3")],
            },
        ];
        let origin = Name::from_ascii("hq.example.").unwrap();
        let Command::TransferChanges {
            rrsets,
            from_serial,
            ..
        } = command(&state, &origin, 1, soa(3), &steps, 7).unwrap()
        else {
            panic!("a TransferChanges");
        };
        assert_eq!(from_serial, 1);
        let decoded: Vec<(String, u16, Vec<Record>)> = rrsets
            .into_iter()
            .map(|set| (set.owner, set.rtype, decode_records(&set.records).unwrap()))
            .collect();
        assert_eq!(
            decoded,
            [
                ("hq.example.".into(), 6, vec![soa(3)]),
                ("mail.hq.example.".into(), 1, vec![]),
                (
                    "www.hq.example.".into(),
                    1,
                    vec![
                        rec("www.hq.example.", 120, RecordType::A, "10.0.0.2"),
                        rec("www.hq.example.", 120, RecordType::A, "10.0.0.3"),
                    ]
                ),
            ]
        );
    }
}
