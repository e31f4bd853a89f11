//! Views: per name, which subnets see which addresses.

use std::net::IpAddr;

use outpost_plugin_sdk::{FixedHashMap, config, name};

/// Query type codes answered here; every other type continues to the zone data.
const QTYPE_A: u16 = 1;
const QTYPE_AAAA: u16 = 28;

/// The TTL of synthesized answers unless `ttl=` says otherwise: short, because the
/// answer depends on where the client is.
pub const DEFAULT_TTL: u32 = 60;

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    address: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// Parses `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128).
    pub fn parse(text: &str) -> Option<Subnet> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address.parse().ok()?, Some(prefix.parse().ok()?)),
            None => (text.parse().ok()?, None),
        };
        let max = if matches!(address, IpAddr::V4(_)) {
            32
        } else {
            128
        };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Subnet { address, prefix })
    }

    pub fn contains(&self, client: IpAddr) -> bool {
        match (self.address, client) {
            (IpAddr::V4(net), IpAddr::V4(client)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(client) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(client)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(client) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug)]
struct Rule {
    subnet: Subnet,
    address: IpAddr,
}

/// The parsed configuration.
#[derive(Debug)]
pub struct Views {
    rules: FixedHashMap<Box<str>, Vec<Rule>>,
    ttl: u32,
}

impl Views {
    pub fn parse(config: &[u8]) -> Result<Views, String> {
        let mut views = Views {
            rules: FixedHashMap::default(),
            ttl: DEFAULT_TTL,
        };
        for (number, line) in config::lines(config)? {
            if let Some((key, value)) = config::key_value(line) {
                if key != "ttl" {
                    return Err(format!(
                        "line {number}: unknown setting {key:?} (the only setting is ttl=SECONDS)"
                    ));
                }
                views.ttl = value.parse().map_err(|_| {
                    format!("line {number}: ttl {value:?} is not a number of seconds")
                })?;
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [subnet, domain, address] = fields[..] else {
                return Err(format!(
                    "line {number}: {line:?} is not SUBNET NAME ADDRESS (such as 10.0.0.0/8 printer.site.example 10.1.2.3)"
                ));
            };
            let subnet = Subnet::parse(subnet).ok_or_else(|| {
                format!("line {number}: {subnet:?} is not a subnet (such as 10.0.0.0/8)")
            })?;
            let domain =
                name::normalize(domain).map_err(|e| format!("line {number}: {domain:?}: {e}"))?;
            let address = address.parse().map_err(|_| {
                format!("line {number}: {address:?} is not an IPv4 or IPv6 address")
            })?;
            views
                .rules
                .entry(domain.into_boxed_str())
                .or_default()
                .push(Rule { subnet, address });
        }
        Ok(views)
    }

    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The addresses `client` sees for an A or AAAA query of `query_name`: those of
    /// the most specific subnet that contains the client, of the queried family
    /// (possibly none: an empty answer). `None` lets the query continue.
    pub fn answer(
        &self,
        query_name: &str,
        qtype: u16,
        client: IpAddr,
    ) -> Option<impl Iterator<Item = IpAddr> + '_> {
        if qtype != QTYPE_A && qtype != QTYPE_AAAA {
            return None;
        }
        let rules = self.rules.get(name::bare(query_name))?;
        let best = rules
            .iter()
            .filter(|rule| rule.subnet.contains(client))
            .map(|rule| rule.subnet)
            .max_by_key(|subnet| subnet.prefix)?;
        let want_v4 = qtype == QTYPE_A;
        Some(
            rules
                .iter()
                .filter(move |rule| rule.subnet == best && rule.address.is_ipv4() == want_v4)
                .map(|rule| rule.address),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
ttl = 30
10.0.0.0/8     printer.site.example 10.1.2.3
10.9.0.0/16    printer.site.example 10.9.0.3
0.0.0.0/0      printer.site.example 203.0.113.7
fd00::/8       printer.site.example fd00::3
";

    fn answer(name: &str, qtype: u16, client: &str) -> Option<Vec<String>> {
        let views = Views::parse(CONFIG.as_bytes()).unwrap();
        views
            .answer(name, qtype, client.parse().unwrap())
            .map(|addresses| addresses.map(|a| a.to_string()).collect())
    }

    #[test]
    fn the_most_specific_subnet_wins() {
        let cases = [
            ("10.1.1.1", QTYPE_A, Some(vec!["10.1.2.3"])),
            ("10.9.8.7", QTYPE_A, Some(vec!["10.9.0.3"])),
            ("192.0.2.1", QTYPE_A, Some(vec!["203.0.113.7"])),
            ("fd00::1", QTYPE_AAAA, Some(vec!["fd00::3"])),
            // An IPv6 client outside every IPv6 subnet: the query continues.
            ("2001:db8::1", QTYPE_AAAA, None),
            // The family asked for has no address in that view: an empty answer.
            ("10.1.1.1", QTYPE_AAAA, Some(vec![])),
        ];
        for (client, qtype, expected) in cases {
            let expected = expected.map(|v| v.into_iter().map(String::from).collect());
            assert_eq!(
                answer("printer.site.example.", qtype, client),
                expected,
                "{client}"
            );
        }
    }

    #[test]
    fn other_names_and_types_continue() {
        assert_eq!(answer("scanner.site.example.", QTYPE_A, "10.1.1.1"), None);
        assert_eq!(answer("printer.site.example.", 15, "10.1.1.1"), None);
    }

    #[test]
    fn subnets() {
        let net = Subnet::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.255.0.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        assert!(
            Subnet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Subnet::parse("10.0.0.0/33").is_none());
        assert_eq!(Subnet::parse("10.0.0.1"), Subnet::parse("10.0.0.1/32"));
    }

    #[test]
    fn errors_name_the_line() {
        let err = Views::parse(b"ttl=60\n10.0.0.0/8 printer.example").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        let err = Views::parse(b"10.0.0.0/40 printer.example 10.0.0.1").unwrap_err();
        assert!(err.contains("not a subnet"), "{err}");
    }
}
