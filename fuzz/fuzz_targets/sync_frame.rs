//! `outpost_core::sync::Frame::decode` and `decode_limited` on any WebSocket binary
//! message.
//!
//! Checks: decoding never panics; `decode` and `decode_limited` under the protocol 2
//! limit agree on every input short of a body over 1 MiB; a frame of a type this
//! version does not know still has a well-formed header; a decoded frame encodes, and
//! the encoding decodes to the same frame (the module's invariant: `encode` never
//! produces a frame `decode` refuses).
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_core::sync::{Frame, FrameError, MAX_LONE_CHANGE_BODY, frame_type};
use outpost_fuzz::{CappedAllocator, check_seed};

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fuzz_target!(init: outpost_fuzz::init(), |bytes: &[u8]| {
    let decoded = Frame::decode(bytes);
    let limited = Frame::decode_limited(bytes, MAX_LONE_CHANGE_BODY);
    check_seed(|| match &decoded {
        Ok(Some(_)) => Ok(()),
        other => Err(format!("decodes as {other:?}")),
    });
    match &decoded {
        // Over protocol 1's limit: the larger limit reads on (and finds the body short).
        Err(FrameError::TooLarge { .. }) => {}
        _ => assert_eq!(decoded, limited, "decode and decode_limited disagree"),
    }
    match limited {
        Ok(Some(frame)) => {
            let encoded = match frame.encode() {
                Ok(encoded) => encoded,
                Err(e) => panic!("decoded {} frame does not encode: {e}", frame.name()),
            };
            match Frame::decode_limited(&encoded, MAX_LONE_CHANGE_BODY) {
                Ok(Some(again)) => assert_eq!(again, frame, "frame changed on re-encoding"),
                other => panic!("re-encoded {} frame decodes as {other:?}", frame.name()),
            }
        }
        Ok(None) => match Frame::read_header_limited(bytes, MAX_LONE_CHANGE_BODY) {
            Ok((frame_type, _)) => assert_eq!(
                frame_type::name(frame_type),
                "unknown",
                "a known frame type was skipped"
            ),
            Err(e) => panic!("a skipped frame has a bad header: {e}"),
        },
        Err(error) => {
            // Every error maps to a close code and a message.
            let _ = (error.close_code(), error.to_string());
        }
    }
});
