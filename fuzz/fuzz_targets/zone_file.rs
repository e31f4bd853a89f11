//! `outpost_core::zonefile::parse_zone` on any text (bytes read as lossy UTF-8), for
//! the zone `example.internal.`.
//!
//! Checks: parsing never panics out of `parse_zone`; an error names a line of the
//! text; every record's owner is at or below the zone; records that encode to the
//! wire format of commands (`outpost_core::wire`) decode back to the same records.
//!
//! `parse_zone` catches panics of hickory's RDATA parsers on purpose (it turns them
//! into errors), so this target swaps libfuzzer-sys's aborting panic hook for one that
//! only prints: a panic that escapes `parse_zone` still aborts, when it unwinds into
//! libfuzzer-sys's `extern "C"` entry point ("panic in a function that cannot
//! unwind"), and is recorded as a crash, its message printed just before.
#![no_main]

use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use outpost_core::wire::{decode_records, encode_records};
use outpost_core::zonefile::{Name, parse_zone};
use outpost_fuzz::{CappedAllocator, check_seed};

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

/// Panic messages printed in one run; those after are not, to keep logs short. A
/// crash reproduces on its own input, where its message is the first.
const PANICS_SHOWN: usize = 10;

fn print_some_panics() {
    static SHOWN: AtomicUsize = AtomicUsize::new(0);
    std::panic::set_hook(Box::new(|info| {
        let shown = SHOWN.fetch_add(1, Ordering::Relaxed);
        if shown < PANICS_SHOWN {
            eprintln!("panic (parse_zone catches those of hickory's parsers): {info}");
        } else if shown == PANICS_SHOWN {
            eprintln!("further panics are not shown");
        }
    }));
}

fuzz_target!(init: { outpost_fuzz::init(); print_some_panics() }, |data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let zone = Name::from_ascii("example.internal.").expect("a valid name");
    let records = match parse_zone(&text, &zone, 3600) {
        Ok(records) => records,
        Err(error) => {
            check_seed(|| Err(format!("parse_zone refused it: {error}")));
            let lines = text.matches('\n').count() + 1;
            assert!(
                (1..=lines).contains(&error.line),
                "error on line {} of a {lines}-line text: {error}",
                error.line
            );
            return;
        }
    };
    check_seed(|| {
        if records.is_empty() {
            Err("no records".to_string())
        } else {
            Ok(())
        }
    });
    for record in &records {
        assert!(
            zone.zone_of(&record.name),
            "owner {} is outside {zone}",
            record.name
        );
    }
    if let Ok(bytes) = encode_records(&records) {
        match decode_records(&bytes) {
            Ok(decoded) => assert_eq!(decoded, records, "records changed on the wire"),
            Err(e) => panic!("encoded records do not decode: {e}"),
        }
    }
});
