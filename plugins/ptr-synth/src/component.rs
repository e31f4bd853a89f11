//! The component: bindings generated from wit/ and the exported functions, which
//! convert between WIT types and [`crate::logic`]. Built for wasm32 only: the
//! exported symbol names (`outpost:plugin/...`) do not link natively.

use crate::logic;

wit_bindgen::generate!({
    world: "record-transform",
    path: "../../wit",
});

use std::net::IpAddr;
use std::sync::OnceLock;

use exports::outpost::plugin::transform::Guest;
use outpost::plugin::types::{Rdata, ResourceRecord};

static SETTINGS: OnceLock<logic::Settings> = OnceLock::new();

struct Component;

impl Guest for Component {
    fn init(config: Vec<u8>) -> Result<(), String> {
        let settings = logic::Settings::parse(&config)?;
        SETTINGS
            .set(settings)
            .map_err(|_| "init called twice on one instance".to_string())
    }

    fn transform(
        _zone: String,
        mut records: Vec<ResourceRecord>,
    ) -> Result<Vec<ResourceRecord>, String> {
        let Some(settings) = SETTINGS.get() else {
            return Ok(records);
        };
        let mut added = Vec::new();
        for record in &records {
            let address = match record.data {
                Rdata::A((a, b, c, d)) => IpAddr::from([a, b, c, d]),
                Rdata::Aaaa((a, b, c, d, e, f, g, h)) => IpAddr::from([a, b, c, d, e, f, g, h]),
                _ => continue,
            };
            let Some(reverse) = settings.ptr_owner(address) else {
                continue;
            };
            let already_written = records.iter().chain(&added).any(|existing| {
                existing.name == reverse
                    && matches!(&existing.data, Rdata::Ptr(target) if *target == record.name)
            });
            if !already_written {
                added.push(ResourceRecord {
                    name: reverse,
                    ttl: settings.ttl().unwrap_or(record.ttl),
                    data: Rdata::Ptr(record.name.clone()),
                });
            }
        }
        records.append(&mut added);
        Ok(records)
    }
}

export!(Component);
