//! The component: bindings generated from wit/ and the exported functions, which
//! convert between WIT types and [`crate::logic`]. Built for wasm32 only: the
//! exported symbol names (`outpost:plugin/...`) do not link natively.

use crate::logic;

wit_bindgen::generate!({
    world: "record-transform",
    path: "../../wit",
});

use std::sync::OnceLock;

use exports::outpost::plugin::transform::Guest;
use outpost::plugin::host::{Level, log};
use outpost::plugin::types::ResourceRecord;

static FLOOR: OnceLock<u32> = OnceLock::new();

struct Component;

impl Guest for Component {
    fn init(config: Vec<u8>) -> Result<(), String> {
        let floor = logic::parse_floor(&config)?;
        FLOOR
            .set(floor)
            .map_err(|_| "init called twice on one instance".to_string())
    }

    fn transform(
        zone: String,
        mut records: Vec<ResourceRecord>,
    ) -> Result<Vec<ResourceRecord>, String> {
        let floor = FLOOR.get().copied().unwrap_or(0);
        let raised = logic::raise_ttls(records.iter_mut().map(|record| &mut record.ttl), floor);
        if raised > 0 {
            log(
                Level::Debug,
                &format!("{zone}: raised {raised} TTLs to {floor}s"),
            );
        }
        Ok(records)
    }
}

export!(Component);
