//! The component: bindings generated from wit/ and the exported functions, which
//! convert between WIT types and [`crate::logic`]. Built for wasm32 only: the
//! exported symbol names (`outpost:plugin/...`) do not link natively.

use crate::logic;

wit_bindgen::generate!({
    world: "query-policy",
    path: "../../wit",
});

use std::net::IpAddr;
use std::sync::OnceLock;

use exports::outpost::plugin::policy::{Action, Guest, Verdict};
use outpost::plugin::types::{IpAddress, Query, Rdata, ResourceRecord};

static VIEWS: OnceLock<logic::Views> = OnceLock::new();

struct Component;

impl Guest for Component {
    fn init(config: Vec<u8>) -> Result<(), String> {
        let views = logic::Views::parse(&config)?;
        VIEWS
            .set(views)
            .map_err(|_| "init called twice on one instance".to_string())
    }

    fn decide(query: Query) -> Verdict {
        let client = match query.client {
            IpAddress::Ipv4((a, b, c, d)) => IpAddr::from([a, b, c, d]),
            IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => IpAddr::from([a, b, c, d, e, f, g, h]),
        };
        let answer = VIEWS.get().and_then(|views| {
            views
                .answer(&query.name, query.qtype, client)
                .map(|a| (views.ttl(), a))
        });
        let action = match answer {
            None => Action::Allow,
            Some((ttl, addresses)) => Action::Answer(
                addresses
                    .map(|address| ResourceRecord {
                        name: query.name.clone(),
                        ttl,
                        data: match address {
                            IpAddr::V4(v4) => {
                                let [a, b, c, d] = v4.octets();
                                Rdata::A((a, b, c, d))
                            }
                            IpAddr::V6(v6) => {
                                let [a, b, c, d, e, f, g, h] = v6.segments();
                                Rdata::Aaaa((a, b, c, d, e, f, g, h))
                            }
                        },
                    })
                    .collect(),
            ),
        };
        Verdict {
            action,
            tags: Vec::new(),
        }
    }
}

export!(Component);
