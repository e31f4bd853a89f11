//! Reverse names and the zones PTR records may be written to.

use std::fmt::Write;
use std::net::IpAddr;

use outpost_plugin_sdk::{config, name};

/// The parsed configuration.
#[derive(Debug)]
pub struct Settings {
    /// Reverse zones, lowercase, without the trailing dot.
    zones: Vec<String>,
    ttl: Option<u32>,
}

impl Settings {
    pub fn parse(config: &[u8]) -> Result<Settings, String> {
        let mut settings = Settings {
            zones: Vec::new(),
            ttl: None,
        };
        for (number, line) in config::lines(config)? {
            match config::key_value(line) {
                Some(("zone", zone)) => {
                    let zone = name::normalize(zone)
                        .map_err(|e| format!("line {number}: {zone:?}: {e}"))?;
                    if !zone.ends_with("in-addr.arpa") && !zone.ends_with("ip6.arpa") {
                        return Err(format!(
                            "line {number}: {zone:?} is not a reverse zone (it ends in in-addr.arpa or ip6.arpa)"
                        ));
                    }
                    settings.zones.push(zone);
                }
                Some(("ttl", ttl)) => {
                    settings.ttl = Some(ttl.parse().map_err(|_| {
                        format!("line {number}: ttl {ttl:?} is not a number of seconds")
                    })?);
                }
                _ => {
                    return Err(format!(
                        "line {number}: {line:?} is not a setting (zone=REVERSE-ZONE or ttl=SECONDS)"
                    ));
                }
            }
        }
        if settings.zones.is_empty() {
            return Err("no reverse zone given (add a line such as zone=10.in-addr.arpa)".into());
        }
        Ok(settings)
    }

    /// The TTL of synthesized PTR records; `None` copies the address record's TTL.
    pub fn ttl(&self) -> Option<u32> {
        self.ttl
    }

    /// The PTR owner for `address` (with trailing dot) if it lies in a configured
    /// reverse zone.
    pub fn ptr_owner(&self, address: IpAddr) -> Option<String> {
        let reverse = reverse_name(address);
        let bare = name::bare(&reverse);
        let inside = self.zones.iter().any(|zone| {
            bare == zone
                || (bare.len() > zone.len()
                    && bare.ends_with(zone.as_str())
                    && bare.as_bytes()[bare.len() - zone.len() - 1] == b'.')
        });
        inside.then_some(reverse)
    }
}

/// The reverse-mapping name of `address` (RFC 1035 section 3.5, RFC 3596 section 2.5),
/// with the trailing dot.
pub fn reverse_name(address: IpAddr) -> String {
    let mut name = String::with_capacity(73);
    match address {
        IpAddr::V4(v4) => {
            for octet in v4.octets().iter().rev() {
                let _ = write!(name, "{octet}.");
            }
            name.push_str("in-addr.arpa.");
        }
        IpAddr::V6(v6) => {
            for octet in v6.octets().iter().rev() {
                let _ = write!(name, "{:x}.{:x}.", octet & 0xf, octet >> 4);
            }
            name.push_str("ip6.arpa.");
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("10.1.2.3".parse().unwrap()),
            "3.2.1.10.in-addr.arpa."
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }

    #[test]
    fn only_addresses_inside_a_configured_zone_get_a_ptr() {
        let settings =
            Settings::parse(b"zone=10.in-addr.arpa.\nzone=8.b.d.0.1.0.0.2.ip6.arpa").unwrap();
        assert!(settings.ptr_owner("10.1.2.3".parse().unwrap()).is_some());
        assert!(settings.ptr_owner("2001:db8::1".parse().unwrap()).is_some());
        assert_eq!(settings.ptr_owner("110.1.2.3".parse().unwrap()), None);
        assert_eq!(settings.ptr_owner("192.0.2.1".parse().unwrap()), None);
    }

    #[test]
    fn bad_settings_are_refused() {
        let cases = [
            ("", "no reverse zone"),
            ("zone=example.com", "not a reverse zone"),
            ("zone=10.in-addr.arpa\nttl=soon", "not a number"),
            ("10.in-addr.arpa", "not a setting"),
        ];
        for (config, expected) in cases {
            let err = Settings::parse(config.as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{config:?}: {err}");
        }
    }
}
