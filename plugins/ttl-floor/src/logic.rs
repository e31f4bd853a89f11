//! The floor and how it applies.

use outpost_plugin_sdk::config;

/// The largest floor accepted: one week. A larger floor is almost surely a typo
/// (milliseconds for seconds) and would pin records in caches for too long.
pub const MAX_FLOOR: u32 = 7 * 24 * 3600;

/// Reads the floor: one line, `SECONDS` or `floor=SECONDS`.
pub fn parse_floor(config: &[u8]) -> Result<u32, String> {
    let mut floor = None;
    for (number, line) in config::lines(config)? {
        let value = match config::key_value(line) {
            Some(("floor", value)) => value,
            Some((key, _)) => {
                return Err(format!(
                    "line {number}: unknown setting {key:?} (the only setting is floor=SECONDS)"
                ));
            }
            None => line,
        };
        if floor.is_some() {
            return Err(format!("line {number}: the floor is given twice"));
        }
        let seconds: u32 = value.parse().map_err(|_| {
            format!("line {number}: {value:?} is not a number of seconds (such as 300)")
        })?;
        if seconds > MAX_FLOOR {
            return Err(format!(
                "line {number}: a floor of {seconds}s is above the maximum of {MAX_FLOOR}s (one week)"
            ));
        }
        floor = Some(seconds);
    }
    floor.ok_or_else(|| "no floor given (write the floor in seconds, such as 300)".to_string())
}

/// Raises every TTL below `floor` to `floor`; returns how many were raised.
pub fn raise_ttls<'a>(ttls: impl Iterator<Item = &'a mut u32>, floor: u32) -> usize {
    let mut raised = 0;
    for ttl in ttls {
        if *ttl < floor {
            *ttl = floor;
            raised += 1;
        }
    }
    raised
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_below_the_floor_are_raised_others_kept() {
        let mut ttls = [0, 59, 60, 3600];
        assert_eq!(raise_ttls(ttls.iter_mut(), 60), 2);
        assert_eq!(ttls, [60, 60, 60, 3600]);
    }

    #[test]
    fn floor_forms() {
        assert_eq!(parse_floor(b"300"), Ok(300));
        assert_eq!(parse_floor(b"# raise\nfloor = 60\n"), Ok(60));
    }

    #[test]
    fn bad_floors_are_refused_with_the_reason() {
        let cases = [
            ("", "no floor given"),
            ("5m", "not a number of seconds"),
            ("60\n70", "given twice"),
            ("ceiling=5", "unknown setting"),
            ("999999999", "above the maximum"),
        ];
        for (config, expected) in cases {
            let err = parse_floor(config.as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{config:?}: {err}");
        }
    }
}
