//! Where a forwarded question goes: the upstreams of the longest `[[forward.zones]]`
//! entry its name is under, a private reverse zone answered here (RFC 6303), or the
//! default upstreams. Each route has its own cache, so one domain's answers neither
//! evict nor answer for another's.
//!
//! **Invariant:** a name under a private reverse zone (10.in-addr.arpa. and the other
//! RFC 6303 zones) never reaches an upstream unless a forward zone at or above that
//! zone, or below it for the names it holds, says where it goes.

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::cache::Cache;
use super::upstream::Link;
use super::{ForwardConfig, Resolved, Upstream};
use crate::metrics::Metrics;

/// The private and special-use reverse zones of RFC 6303 section 4 besides the ranges
/// [`private_reverse_zones`] adds (172.16.0.0/12, and RFC 7793's 100.64.0.0/10).
const PRIVATE_REVERSE_ZONES: &[&str] = &[
    "10.in-addr.arpa.",
    "168.192.in-addr.arpa.",
    "0.in-addr.arpa.",
    "127.in-addr.arpa.",
    "254.169.in-addr.arpa.",
    "2.0.192.in-addr.arpa.",
    "100.51.198.in-addr.arpa.",
    "113.0.203.in-addr.arpa.",
    "255.255.255.255.in-addr.arpa.",
    "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
    "d.f.ip6.arpa.",
    "8.e.f.ip6.arpa.",
    "9.e.f.ip6.arpa.",
    "a.e.f.ip6.arpa.",
    "b.e.f.ip6.arpa.",
    "8.b.d.0.1.0.0.2.ip6.arpa.",
];

/// Every private reverse zone answered here unless forwarded.
fn private_reverse_zones() -> Vec<Name> {
    let ranges = (16..=31)
        .map(|octet| format!("{octet}.172.in-addr.arpa."))
        .chain((64..=127).map(|octet| format!("{octet}.100.in-addr.arpa.")));
    (PRIVATE_REVERSE_ZONES.iter().map(|text| text.to_string()))
        .chain(ranges)
        .filter_map(|text| Name::from_ascii(text).ok())
        .collect()
}

/// TTL of a private reverse zone's SOA and NS, and its negative TTL (RFC 6303 section 3).
const LOCAL_TTL: u32 = 10_800;

/// Upstreams, how each is reached, how long to wait for each, and the route's cache.
pub(super) struct Route {
    pub(super) upstreams: Vec<(Upstream, Link)>,
    pub(super) timeout: Duration,
    pub(super) cache: Arc<Cache>,
}

/// Where one question goes.
pub(super) enum Target<'a> {
    Forward(&'a Route),
    /// A private reverse zone, answered here: its apex.
    Local(&'a Name),
}

/// Every route of one configuration; swapped whole on a reload.
pub(super) struct Routes {
    default: Route,
    /// Forward zones and private reverse zones, most labels first, so the first match
    /// is the longest.
    zones: Vec<(Name, Zone)>,
    /// The last label of every zone, lowercased: a name ending otherwise (almost every
    /// name: `com.`, `org.`) goes to the default route without a comparison.
    top_labels: Vec<Vec<u8>>,
}

enum Zone {
    Forward(Route),
    Local,
}

impl Routes {
    /// The routes of `config`; caches of `previous` whose zone is still configured are
    /// kept (with the new bounds), so a reload does not empty them.
    pub(super) fn new(
        config: &ForwardConfig,
        metrics: &Arc<Metrics>,
        previous: Option<&Routes>,
    ) -> Routes {
        let route = |upstreams: &[Upstream], cache: Arc<Cache>| Route {
            upstreams: upstreams
                .iter()
                .map(|upstream| {
                    (
                        upstream.clone(),
                        Link::new(upstream, config.tls.as_ref(), metrics),
                    )
                })
                .collect(),
            timeout: config.timeout,
            cache,
        };
        let cache = |zone: Option<&Name>, entries: usize, stale: Duration| match previous
            .and_then(|previous| previous.cache_of(zone))
        {
            Some(cache) => {
                cache.reconfigure(entries, stale);
                cache
            }
            None => Arc::new(Cache::new(entries, stale)),
        };
        let default_cache = cache(None, config.cache_entries, config.serve_stale);
        let mut zones: Vec<(Name, Zone)> = config
            .zones
            .iter()
            .map(|zone| {
                let cache = cache(Some(&zone.name), zone.cache_entries, zone.serve_stale);
                (
                    zone.name.clone(),
                    Zone::Forward(route(&zone.upstreams, cache)),
                )
            })
            .collect();
        for local in private_reverse_zones() {
            // A forward zone at or above it takes its names.
            if !config.zones.iter().any(|zone| zone.name.zone_of(&local)) {
                zones.push((local, Zone::Local));
            }
        }
        zones.sort_by_key(|(name, _)| std::cmp::Reverse(name.num_labels()));
        let mut top_labels: Vec<Vec<u8>> = zones
            .iter()
            .filter_map(|(name, _)| name.iter().next_back().map(<[u8]>::to_ascii_lowercase))
            .collect();
        top_labels.sort();
        top_labels.dedup();
        Routes {
            default: route(&config.upstreams, default_cache),
            zones,
            top_labels,
        }
    }

    /// The cache of a forward zone (`None`: the default route's).
    fn cache_of(&self, zone: Option<&Name>) -> Option<Arc<Cache>> {
        let Some(zone) = zone else {
            return Some(self.default.cache.clone());
        };
        self.zones.iter().find_map(|(name, route)| match route {
            Zone::Forward(route) if name == zone => Some(route.cache.clone()),
            _ => None,
        })
    }

    /// Where `name` goes: the longest zone it is under, else the default upstreams.
    pub(super) fn select(&self, name: &Name) -> Target<'_> {
        let top = name.iter().next_back().unwrap_or_default();
        if !self
            .top_labels
            .iter()
            .any(|label| label.eq_ignore_ascii_case(top))
        {
            return Target::Forward(&self.default);
        }
        match self.zones.iter().find(|(zone, _)| zone.zone_of(name)) {
            Some((_, Zone::Forward(route))) => Target::Forward(route),
            Some((zone, Zone::Local)) => Target::Local(zone),
            None => Target::Forward(&self.default),
        }
    }
}

/// The answer of a private reverse zone (RFC 6303 section 3): at its apex, its SOA and
/// NS (NODATA for other types); below it, NXDOMAIN. Authoritative, never cached.
pub(super) fn local_answer(zone: &Name, query: &Query) -> Resolved {
    let soa = Record::from_rdata(
        zone.clone(),
        LOCAL_TTL,
        RData::SOA(SOA::new(
            zone.clone(),
            Name::from_ascii("nobody.invalid.").unwrap_or_else(|_| Name::root()),
            1,
            3600,
            1200,
            604_800,
            LOCAL_TTL,
        )),
    );
    let apex = zone == query.name();
    let answer = match query.query_type() {
        RecordType::SOA if apex => Some(soa.clone()),
        RecordType::NS if apex => Some(Record::from_rdata(
            zone.clone(),
            LOCAL_TTL,
            RData::NS(NS(zone.clone())),
        )),
        _ => None,
    };
    match answer {
        Some(answer) => Resolved {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers: vec![answer],
            ..Resolved::default()
        },
        None => Resolved {
            rcode: if apex {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            },
            authoritative: true,
            authorities: vec![soa],
            ..Resolved::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::ForwardZone;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn config(zones: &[&str]) -> ForwardConfig {
        ForwardConfig {
            upstreams: vec!["192.0.2.1".parse().unwrap()],
            timeout: Duration::from_secs(1),
            cache_entries: 10,
            serve_stale: Duration::ZERO,
            tls: None,
            zones: zones
                .iter()
                .map(|zone| ForwardZone {
                    name: name(zone),
                    upstreams: vec!["192.0.2.2".parse().unwrap()],
                    cache_entries: 10,
                    serve_stale: Duration::ZERO,
                })
                .collect(),
        }
    }

    /// Which upstream (or "local ZONE") a name goes to.
    fn route_of(routes: &Routes, text: &str) -> String {
        match routes.select(&name(text)) {
            Target::Forward(route) => route.upstreams[0].0.to_string(),
            Target::Local(zone) => format!("local {zone}"),
        }
    }

    #[test]
    fn the_longest_zone_wins_and_everything_else_goes_to_the_default() {
        let metrics = Arc::new(Metrics::default());
        let routes = Routes::new(
            &config(&["corp.example.", "lab.corp.example."]),
            &metrics,
            None,
        );
        let corp = Routes::new(&config(&["corp.example."]), &metrics, None);
        assert_eq!(route_of(&routes, "www.example.com."), "192.0.2.1:53");
        assert_eq!(route_of(&routes, "WWW.Corp.Example."), "192.0.2.2:53");
        assert_eq!(route_of(&routes, "corp.example."), "192.0.2.2:53");
        assert_eq!(route_of(&routes, "notcorp.example."), "192.0.2.1:53");
        // Both zones go to 192.0.2.2 here; the longer one is chosen, with its own cache.
        let Target::Forward(lab) = routes.select(&name("a.lab.corp.example.")) else {
            panic!("not forwarded");
        };
        let Target::Forward(parent) = routes.select(&name("a.corp.example.")) else {
            panic!("not forwarded");
        };
        assert!(!Arc::ptr_eq(&lab.cache, &parent.cache));
        assert_eq!(route_of(&corp, "a.lab.corp.example."), "192.0.2.2:53");
    }

    #[test]
    fn private_reverse_zones_are_local_unless_forwarded() {
        let metrics = Arc::new(Metrics::default());
        let routes = Routes::new(&config(&[]), &metrics, None);
        assert_eq!(
            route_of(&routes, "4.3.2.10.in-addr.arpa."),
            "local 10.in-addr.arpa."
        );
        assert_eq!(
            route_of(&routes, "1.1.31.172.in-addr.arpa."),
            "local 31.172.in-addr.arpa."
        );
        assert_eq!(
            route_of(&routes, "1.1.32.172.in-addr.arpa."),
            "192.0.2.1:53"
        );
        assert_eq!(route_of(&routes, "8.8.8.8.in-addr.arpa."), "192.0.2.1:53");
        assert_eq!(
            route_of(
                &routes,
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."
            ),
            "local 1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."
        );
        // A forward zone above one takes it whole; one below takes only its names.
        let whole = Routes::new(&config(&["in-addr.arpa."]), &metrics, None);
        assert_eq!(route_of(&whole, "4.3.2.10.in-addr.arpa."), "192.0.2.2:53");
        let part = Routes::new(&config(&["1.168.192.in-addr.arpa."]), &metrics, None);
        assert_eq!(route_of(&part, "5.1.168.192.in-addr.arpa."), "192.0.2.2:53");
        assert_eq!(
            route_of(&part, "5.2.168.192.in-addr.arpa."),
            "local 168.192.in-addr.arpa."
        );
    }

    #[test]
    fn a_reload_keeps_the_caches_of_zones_still_configured() {
        let metrics = Arc::new(Metrics::default());
        let before = Routes::new(&config(&["corp.example.", "old.example."]), &metrics, None);
        let after = Routes::new(
            &config(&["corp.example.", "new.example."]),
            &metrics,
            Some(&before),
        );
        let cache = |routes: &Routes, text: &str| match routes.select(&name(text)) {
            Target::Forward(route) => route.cache.clone(),
            Target::Local(_) => panic!("local"),
        };
        assert!(Arc::ptr_eq(
            &cache(&before, "a.corp.example."),
            &cache(&after, "a.corp.example.")
        ));
        assert!(Arc::ptr_eq(
            &cache(&before, "a.example.com."),
            &cache(&after, "a.example.com.")
        ));
        assert!(!Arc::ptr_eq(
            &cache(&before, "a.old.example."),
            &cache(&after, "a.new.example.")
        ));
    }

    #[test]
    fn a_private_reverse_zone_answers_nxdomain_below_and_soa_at_its_apex() {
        let zone = name("10.in-addr.arpa.");
        let below = local_answer(
            &zone,
            &Query::query(name("4.3.2.10.in-addr.arpa."), RecordType::PTR),
        );
        assert_eq!(below.rcode, ResponseCode::NXDomain);
        assert!(below.authoritative && below.answers.is_empty());
        assert_eq!(below.authorities[0].record_type(), RecordType::SOA);
        let soa = local_answer(&zone, &Query::query(zone.clone(), RecordType::SOA));
        assert_eq!((soa.rcode, soa.answers.len()), (ResponseCode::NoError, 1));
        let nodata = local_answer(&zone, &Query::query(zone.clone(), RecordType::PTR));
        assert_eq!(
            (nodata.rcode, nodata.answers.len(), nodata.authorities.len()),
            (ResponseCode::NoError, 0, 1)
        );
    }
}
