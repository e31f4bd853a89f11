//! The misbehaving component (wasm32 only: the exported symbol names do not link
//! natively).

wit_bindgen::generate!({
    world: "query-policy",
    path: "../../wit",
});

use std::hint::black_box;

use exports::outpost::plugin::policy::{Action, Guest, Verdict};
use outpost::plugin::types::{Query, Rdata, ResourceRecord};

struct Component;

impl Guest for Component {
    fn init(config: Vec<u8>) -> Result<(), String> {
        match config.as_slice() {
            b"init=loop" => spin(),
            b"init=fail" => Err("configured to fail".to_string()),
            _ => Ok(()),
        }
    }

    fn decide(query: Query) -> Verdict {
        let first_label = query.name.split('.').next().unwrap_or_default();
        let action = match first_label {
            "loop" => spin(),
            "alloc" => allocate_forever(),
            "recurse" => Action::Answer(vec![record(&query.name, recurse(black_box(1)))]),
            "panic" => panic!("hostile plugin panics on purpose"),
            "oversized" => Action::Answer((0..10_000u32).map(|i| record(&query.name, i)).collect()),
            "random" => {
                let mut map = std::collections::HashMap::new();
                map.insert(1, 2);
                Action::Answer(vec![record(&query.name, black_box(map.len() as u32))])
            }
            _ => Action::Allow,
        };
        Verdict {
            action,
            tags: Vec::new(),
        }
    }
}

fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn allocate_forever() -> ! {
    let mut blocks = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        block[0] = 1;
        blocks.push(black_box(block));
    }
}

/// Recursion that keeps its state in wasm locals, so it exhausts the wasm stack
/// (the host's `max_wasm_stack`) rather than Rust's shadow stack in linear memory,
/// whose overflow is an out-of-bounds access instead.
fn recurse(depth: u32) -> u32 {
    if depth == u32::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_mul(31).wrapping_add(depth)
}

fn record(name: &str, value: u32) -> ResourceRecord {
    let [a, b, c, d] = value.to_be_bytes();
    ResourceRecord {
        name: name.to_string(),
        ttl: 60,
        data: Rdata::A((a, b, c, d)),
    }
}

export!(Component);
