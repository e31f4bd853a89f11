//! The files a record source reads, as the names and addresses they hold now: an
//! `/etc/hosts`-style file, dnsmasq's leases file, ISC Kea's lease memfile (CSV).
//!
//! Each parser is a pure function of the file's text and the time, so a lease's expiry is
//! seen on the next read even when the file did not change. A line that does not parse is
//! skipped (and counted), never the whole file.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::rr::Name;

/// What one file says: each host's name (absolute, lowercase, under the source's zone)
/// and its addresses; and how many lines were skipped as unreadable.
#[derive(Debug, Default, PartialEq)]
pub struct Hosts {
    pub addresses: BTreeMap<Name, Vec<IpAddr>>,
    pub skipped: usize,
}

impl Hosts {
    /// Adds `name` at `ip` when the name belongs under `zone` and the address is one a
    /// site's host can have (not loopback, unspecified or link-local).
    fn add(&mut self, zone: &Name, name: &str, ip: IpAddr) {
        if ip.is_loopback() || ip.is_unspecified() || is_link_local(ip) {
            return;
        }
        let Some(name) = host_name(zone, name) else {
            self.skipped += 1;
            return;
        };
        let addresses = self.addresses.entry(name).or_default();
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ip.is_link_local(),
        IpAddr::V6(ip) => ip.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// A name as a file writes it, under `zone`: a bare label (`laptop`) goes under the zone,
/// a dotted name is taken as absolute; a name outside the zone, or not a name, is `None`.
pub fn host_name(zone: &Name, text: &str) -> Option<Name> {
    let text = text.trim().trim_end_matches('.');
    if text.is_empty() || text == "*" {
        return None;
    }
    let name = if text.contains('.') {
        Name::from_ascii(format!("{text}.")).ok()?
    } else {
        Name::from_ascii(text).ok()?.append_domain(zone).ok()?
    };
    let name = name.to_lowercase();
    (zone.zone_of(&name) && name != *zone).then_some(name)
}

/// `/etc/hosts`: `ADDRESS NAME [ALIAS...]`, `#` starting a comment.
pub fn hosts_file(text: &str, zone: &Name) -> Hosts {
    let mut hosts = Hosts::default();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let Some(address) = fields.next() else {
            continue;
        };
        let Ok(ip) = address.parse::<IpAddr>() else {
            hosts.skipped += 1;
            continue;
        };
        for name in fields {
            hosts.add(zone, name, ip);
        }
    }
    hosts
}

/// dnsmasq's leases file: `EXPIRY MAC ADDRESS HOSTNAME CLIENT-ID` (EXPIRY in unix seconds,
/// 0 for an infinite lease; HOSTNAME `*` when the client gave none); a `duid` line
/// before the DHCPv6 leases. Leases expired at `now_unix` are left out.
pub fn dnsmasq_leases(text: &str, zone: &Name, now_unix: u64) -> Hosts {
    let mut hosts = Hosts::default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["duid", ..] | [] => {}
            [expiry, _, address, name, ..] => {
                let (Ok(expiry), Ok(ip)) = (expiry.parse::<u64>(), address.parse::<IpAddr>())
                else {
                    hosts.skipped += 1;
                    continue;
                };
                if expiry != 0 && expiry <= now_unix {
                    continue;
                }
                if *name != "*" {
                    hosts.add(zone, name, ip);
                }
            }
            _ => hosts.skipped += 1,
        }
    }
    hosts
}

/// ISC Kea's lease memfile (CSV, v4 or v6): a header naming the columns, then one row
/// per lease update, a later row for an address replacing the earlier. A lease counts
/// while its `state` is 0 (default), its `valid_lifetime` is not 0 (released) and its
/// `expire` is after `now_unix`.
pub fn kea_leases(text: &str, zone: &Name, now_unix: u64) -> Hosts {
    let mut hosts = Hosts::default();
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return hosts;
    };
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let column = |name: &str| columns.iter().position(|column| *column == name);
    let (Some(address), Some(expire), Some(hostname)) =
        (column("address"), column("expire"), column("hostname"))
    else {
        hosts.skipped += 1;
        return hosts;
    };
    let (state, lifetime) = (column("state"), column("valid_lifetime"));
    let mut leases: BTreeMap<IpAddr, Option<String>> = BTreeMap::new();
    for line in lines.filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let field = |at: usize| fields.get(at).map(|field| field.trim());
        let Some(ip) = field(address).and_then(|text| text.parse::<IpAddr>().ok()) else {
            hosts.skipped += 1;
            continue;
        };
        let expires = field(expire)
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(0);
        let active = state.and_then(field).is_none_or(|state| state == "0")
            && lifetime
                .and_then(field)
                .is_none_or(|lifetime| lifetime != "0")
            && expires > now_unix;
        let name = field(hostname).filter(|name| !name.is_empty());
        leases.insert(ip, active.then(|| name.map(str::to_string)).flatten());
    }
    for (ip, name) in leases {
        if let Some(name) = name {
            hosts.add(zone, &name, ip);
        }
    }
    hosts
}

#[cfg(test)]
mod tests;
