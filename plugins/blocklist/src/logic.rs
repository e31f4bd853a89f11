//! Suffix matching over a set of blocked domains.

use std::net::IpAddr;

use outpost_plugin_sdk::{FixedHashSet, config, name};

/// The parsed configuration: blocked domains (lowercase, no trailing dot) and the
/// optional sinkhole address.
#[derive(Debug, Default)]
pub struct Blocklist {
    domains: FixedHashSet<Box<str>>,
    sinkhole: Option<IpAddr>,
}

impl Blocklist {
    /// Parses the configuration; errors name the line and the fix.
    pub fn parse(config: &[u8]) -> Result<Self, String> {
        let mut blocklist = Blocklist::default();
        for (number, line) in config::lines(config)? {
            if let Some((key, value)) = config::key_value(line) {
                if key != "sinkhole" {
                    return Err(format!(
                        "line {number}: unknown setting {key:?} (the only setting is sinkhole=ADDRESS)"
                    ));
                }
                let address = value.parse().map_err(|_| {
                    format!("line {number}: sinkhole {value:?} is not an IPv4 or IPv6 address")
                })?;
                blocklist.sinkhole = Some(address);
                continue;
            }
            // Hosts-file lines ("0.0.0.0 ads.example") name the domain second.
            let mut fields = line.split_whitespace();
            let domain = match (fields.next(), fields.next(), fields.next()) {
                (Some(domain), None, _) => domain,
                (Some(address), Some(domain), None) if address.parse::<IpAddr>().is_ok() => domain,
                _ => {
                    return Err(format!(
                        "line {number}: {line:?} is not a domain (one domain per line, or ADDRESS DOMAIN)"
                    ));
                }
            };
            let domain =
                name::normalize(domain).map_err(|e| format!("line {number}: {domain:?}: {e}"))?;
            blocklist.domains.insert(domain.into_boxed_str());
        }
        Ok(blocklist)
    }

    /// The blocked domain that `query_name` is, or lies below, if any. Allocates
    /// nothing: each suffix is a slice of the query name.
    pub fn matching_entry(&self, query_name: &str) -> Option<&str> {
        name::suffixes(name::bare(query_name))
            .find_map(|suffix| self.domains.get(suffix))
            .map(|entry| &**entry)
    }

    /// Where blocked queries are sent; `None` answers NXDOMAIN.
    pub fn sinkhole(&self) -> Option<IpAddr> {
        self.sinkhole
    }

    pub fn len(&self) -> usize {
        self.domains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocklist(config: &str) -> Blocklist {
        Blocklist::parse(config.as_bytes()).unwrap()
    }

    #[test]
    fn listed_domains_and_their_subdomains_are_blocked() {
        let list = blocklist("ads.example\nTracker.Example.\n");
        let cases = [
            ("ads.example.", Some("ads.example")),
            ("www.ads.example.", Some("ads.example")),
            ("a.b.c.tracker.example.", Some("tracker.example")),
            ("example.", None),
            ("badads.example.", None),
            ("ads.example.org.", None),
            (".", None),
        ];
        for (query, expected) in cases {
            assert_eq!(list.matching_entry(query), expected, "{query}");
        }
    }

    #[test]
    fn hosts_file_lines_and_comments_are_understood() {
        let list = blocklist("# from a hosts file\n0.0.0.0 ads.example\n::1 ipv6.example\n\n");
        assert_eq!(list.len(), 2);
        assert!(list.matching_entry("x.ipv6.example.").is_some());
        assert_eq!(list.sinkhole(), None);
    }

    #[test]
    fn sinkhole_setting() {
        let list = blocklist("sinkhole = 10.0.0.1\nads.example");
        assert_eq!(list.sinkhole(), Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("ok.example\nbad..example", "line 2"),
            ("sinkhole=nowhere", "not an IPv4 or IPv6 address"),
            ("color=red", "unknown setting \"color\""),
            ("a b c", "is not a domain"),
        ];
        for (config, expected) in cases {
            let err = Blocklist::parse(config.as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{config:?}: {err}");
        }
    }
}
