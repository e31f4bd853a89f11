//! A digest of a replica's content, to compare two replicas without listing them: the
//! Lite client puts it in `status.json`; the test harness computes the same from the
//! appliance's zone exports (which is why it lives here and not in the Lite client:
//! the harness needs only this crate).
//!
//! Canonical form, hashed with SHA-256: for each zone in [`ReplicatedState`] order, its origin;
//! then for each RRset in (owner, type) order, the owner, the type, and its records
//! in DNS wire form (canonical: uncompressed, lowercase names), sorted bytewise. Each
//! item is length-prefixed, so no two contents hash the same bytes.
//!
//! **Invariant:** two `ReplicatedState` holding the same RRsets (same TTLs and data, in any
//! record order) have the same digest.

use crate::state::ReplicatedState;
use sha2::{Digest as _, Sha256};

/// SHA-256 of a certificate (DER) as colon-separated upper-case hex: what
/// `openssl x509 -noout -fingerprint -sha256` prints, and what a client pins. The
/// sync endpoint's and the encrypted DNS listeners' certificates are shown this way.
pub fn certificate_fingerprint(der: &[u8]) -> String {
    let hex: Vec<String> = (Sha256::digest(der).iter())
        .map(|byte| format!("{byte:02X}"))
        .collect();
    hex.join(":")
}

/// Lowercase hex SHA-256 of `zones`' canonical form.
pub fn digest(zones: &ReplicatedState) -> String {
    let mut hasher = Sha256::new();
    for zone in zones.iter() {
        feed(&mut hasher, b'Z', zone.origin().to_ascii().as_bytes());
        for rrset in zone.rrsets() {
            feed(&mut hasher, b'O', rrset.owner().to_ascii().as_bytes());
            let rtype = rrset.record_type();
            feed(&mut hasher, b'T', &u16::from(rtype).to_be_bytes());
            let each = rrset.rdata().map(|rdata| rrset.record_wire(rdata));
            let mut encoded: Vec<Vec<u8>> = each.collect();
            encoded.sort_unstable();
            for record in &encoded {
                feed(&mut hasher, b'R', record);
            }
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn feed(hasher: &mut Sha256, tag: u8, bytes: &[u8]) {
    hasher.update([tag]);
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

#[cfg(test)]
mod tests {
    use crate::state::Command;
    use crate::wire::encode_records;
    use hickory_proto::rr::{Name, RData, Record, rdata};

    use super::*;

    fn zone(origin: &str, extra: &[(&str, [u8; 4])]) -> ReplicatedState {
        let origin_name = Name::from_ascii(origin).unwrap();
        let mut records = vec![Record::from_rdata(
            origin_name.clone(),
            300,
            RData::SOA(rdata::SOA::new(
                Name::from_ascii("ns1.example.").unwrap(),
                Name::from_ascii("hostmaster.example.").unwrap(),
                1,
                7200,
                3600,
                1_209_600,
                300,
            )),
        )];
        for (owner, ip) in extra {
            records.push(Record::from_rdata(
                Name::from_ascii(owner).unwrap(),
                60,
                RData::A(rdata::A::from(std::net::Ipv4Addr::from(*ip))),
            ));
        }
        let mut zones = ReplicatedState::default();
        zones
            .apply(&Command::ReplaceZone {
                origin: origin.to_string(),
                records: encode_records(&records).unwrap(),
            })
            .unwrap();
        zones
    }

    #[test]
    fn same_content_in_any_record_order_has_the_same_digest() {
        let one = zone(
            "a.test.",
            &[("x.a.test.", [10, 0, 0, 1]), ("x.a.test.", [10, 0, 0, 2])],
        );
        let two = zone(
            "a.test.",
            &[("x.a.test.", [10, 0, 0, 2]), ("x.a.test.", [10, 0, 0, 1])],
        );
        assert_eq!(digest(&one), digest(&two));
        assert_eq!(digest(&one).len(), 64);
    }

    #[test]
    fn any_difference_changes_the_digest() {
        let base = zone("a.test.", &[("x.a.test.", [10, 0, 0, 1])]);
        let other_data = zone("a.test.", &[("x.a.test.", [10, 0, 0, 9])]);
        let other_owner = zone("a.test.", &[("y.a.test.", [10, 0, 0, 1])]);
        let fewer = zone("a.test.", &[]);
        let digests = [
            digest(&base),
            digest(&other_data),
            digest(&other_owner),
            digest(&fewer),
            digest(&ReplicatedState::default()),
        ];
        for (i, a) in digests.iter().enumerate() {
            for b in &digests[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
