//! `outpost_appliance::store::JoinTicket` parsed from any text (bytes read as lossy
//! UTF-8), as `outpost join` reads the ticket an operator pastes.
//!
//! Checks: parsing never panics; a ticket that parses names between 1 and
//! `MAX_TICKET_NODES` nodes, all with a readable address; its `Display` form parses
//! back to an equal ticket.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_appliance::store::JoinTicket;
use outpost_fuzz::{CappedAllocator, check_seed};

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

/// `MAX_TICKET_NODES` of appliance/src/store/join.rs, which the crate does not export.
const MAX_TICKET_NODES: usize = 16;

fuzz_target!(init: outpost_fuzz::init(), |data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let ticket = match text.parse::<JoinTicket>() {
        Ok(ticket) => ticket,
        Err(error) => {
            check_seed(|| Err(format!("refused: {error}")));
            return;
        }
    };
    assert!(
        (1..=MAX_TICKET_NODES).contains(&ticket.nodes.len()),
        "a ticket of {} nodes parsed",
        ticket.nodes.len()
    );
    // Parsing checked every node's address, so none is left out here.
    assert!(!ticket.endpoints().is_empty(), "a parsed ticket has no endpoint");
    let shown = ticket.to_string();
    assert_eq!(
        shown.parse::<JoinTicket>(),
        Ok(ticket),
        "the ticket's Display form reads back differently: {shown}"
    );
});
