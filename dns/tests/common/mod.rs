//! What the server-level tests share.

use hickory_proto::rr::Name;
use outpost_core::answer::ZoneSet;
use outpost_core::state::{Command, ReplicatedState};
use outpost_core::wire::encode_records;
use outpost_core::zonefile::parse_zone;

/// The answer index of one zone, `origin`, read from the zone file `text`, as a node
/// that created the zone serves it.
pub fn zone_set(origin: &str, text: &str) -> ZoneSet {
    let origin = Name::from_ascii(origin).unwrap();
    let records = parse_zone(text, &origin, 300).unwrap();
    let mut zones = ReplicatedState::default();
    zones
        .apply(&Command::CreateZone {
            origin: origin.to_string(),
            records: encode_records(&records).unwrap(),
        })
        .unwrap();
    ZoneSet::build(&zones)
}
