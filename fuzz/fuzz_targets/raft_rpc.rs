//! The Raft RPC codec (`appliance/src/store/network/codec.rs`) on any bytes, read as a
//! request and as a reply.
//!
//! Checks: decoding never panics and never allocates from a length it did not check
//! ([`outpost_fuzz::CappedAllocator`]); whatever decodes, encoded again, decodes and
//! encodes to the same bytes (the codec is crate-private: the two hooks on
//! `CodecError` decode and encode again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_appliance::store::CodecError;
use outpost_fuzz::{CappedAllocator, check_seed};

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(init: outpost_fuzz::init(), |bytes: &[u8]| {
    let request = CodecError::fuzz_reencode_request(bytes);
    let reply = CodecError::fuzz_reencode_reply(bytes);
    check_seed(|| match (&request, &reply) {
        (Err(request), Err(reply)) => Err(format!(
            "neither a request ({request}) nor a reply ({reply})"
        )),
        _ => Ok(()),
    });
    if let Ok(encoded) = &request {
        assert_eq!(
            CodecError::fuzz_reencode_request(encoded).as_ref(),
            Ok(encoded),
            "a decoded request changed when encoded again"
        );
    }
    if let Ok(encoded) = &reply {
        assert_eq!(
            CodecError::fuzz_reencode_reply(encoded).as_ref(),
            Ok(encoded),
            "a decoded reply changed when encoded again"
        );
    }
});
