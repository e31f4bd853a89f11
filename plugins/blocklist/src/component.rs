//! The component: bindings generated from wit/ and the exported functions, which
//! convert between WIT types and [`crate::logic`]. Built for wasm32 only: the
//! exported symbol names (`outpost:plugin/...`) do not link natively.

use crate::logic;

wit_bindgen::generate!({
    world: "query-policy",
    path: "../../wit",
});

use std::sync::OnceLock;

// A verdict depends only on the query's name (and the list): the host may reuse it.
outpost_plugin_sdk::memoizable_verdicts!();

use exports::outpost::plugin::policy::{Action, Block, Guest, Verdict};
use outpost::plugin::types::{IpAddress, Query};

/// Set once by `init`; the host builds a fresh instance to change the configuration.
static BLOCKLIST: OnceLock<logic::Blocklist> = OnceLock::new();

struct Component;

impl Guest for Component {
    fn init(config: Vec<u8>) -> Result<(), String> {
        let blocklist = logic::Blocklist::parse(&config)?;
        BLOCKLIST
            .set(blocklist)
            .map_err(|_| "init called twice on one instance".to_string())
    }

    fn decide(query: Query) -> Verdict {
        let Some(blocklist) = BLOCKLIST.get() else {
            return allow();
        };
        let Some(matched) = blocklist.matching_entry(&query.name) else {
            return allow();
        };
        let block = match blocklist.sinkhole() {
            Some(std::net::IpAddr::V4(v4)) => {
                let [a, b, c, d] = v4.octets();
                Block::Sinkhole(IpAddress::Ipv4((a, b, c, d)))
            }
            Some(std::net::IpAddr::V6(v6)) => {
                let [a, b, c, d, e, f, g, h] = v6.segments();
                Block::Sinkhole(IpAddress::Ipv6((a, b, c, d, e, f, g, h)))
            }
            None => Block::Nxdomain,
        };
        Verdict {
            action: Action::Block(block),
            tags: vec![format!("blocklist:{matched}")],
        }
    }
}

fn allow() -> Verdict {
    Verdict {
        action: Action::Allow,
        tags: Vec::new(),
    }
}

export!(Component);
