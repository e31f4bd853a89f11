//! What a satellite or a Lite client reads from outside: an export's ticket (pasted by an
//! operator, `outpost_export::ExportTicket::from_str`) and a document's head and values
//! (fetched from any peer, `outpost_export::decode_head` and `assemble`).
//!
//! Input: text that starts with `outpost-export-v1:` is a ticket; anything else is a
//! head, and also every value the head lists.
//!
//! Checks: nothing panics; a ticket that parses names 1 to 16 peers, each a valid key,
//! and its `Display` form parses back to an equal ticket; a head that decodes is format 1
//! and assembling it either fails with an error or hands on only `ZonePut`s of its zones,
//! definitions, and `RRsetPut`s of the zone their bucket belongs to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_core::sync::WireChange;
use outpost_export::{ExportTicket, LayoutError, MAX_TICKET_PEERS, TICKET_PREFIX};
use outpost_fuzz::{CappedAllocator, check_seed};

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(init: outpost_fuzz::init(), |data: &[u8]| {
    if data.starts_with(TICKET_PREFIX.as_bytes()) {
        ticket(data);
    } else {
        head(data);
    }
});

fn ticket(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let ticket = match text.parse::<ExportTicket>() {
        Ok(ticket) => ticket,
        Err(error) => {
            check_seed(|| Err(format!("refused: {error}")));
            return;
        }
    };
    assert!((1..=MAX_TICKET_PEERS).contains(&ticket.peers.len()));
    assert!(ticket.peers.iter().all(|peer| peer.endpoint_addr().is_some()));
    let shown = ticket.to_string();
    assert_eq!(shown.parse::<ExportTicket>(), Ok(ticket), "{shown}");
}

fn head(data: &[u8]) {
    let head = match outpost_export::decode_head(data) {
        Ok(head) => head,
        Err(error) => {
            check_seed(|| Err(format!("refused: {error}")));
            return;
        }
    };
    assert_eq!(head.format, outpost_export::FORMAT);
    let _ = outpost_export::assemble(
        &head,
        |_| data,
        |changes| {
            for change in &changes {
                match change {
                    WireChange::ZonePut { origin } => assert!(head.zones.contains(origin)),
                    WireChange::RRsetPut { zone, .. } => assert!(head.zones.contains(zone)),
                    WireChange::DefinitionPut { .. } => {}
                    other => panic!("assembled {other:?}, which a snapshot never holds"),
                }
            }
            Ok::<(), LayoutError>(())
        },
    );
}
