//! The convergence checker: does every replica hold what the cluster holds?
//!
//! The cluster's content is read from one appliance's admin API (`zone export` of each
//! zone, `GET /v1/plugins`), never from the replica code under test. Each replica is then
//! compared three ways:
//! - **over DNS**: every RRset of the export is asked for (TCP, so nothing is cut), and
//!   every name the test says must be absent; rcode, answer and authority sections
//!   must be what the reference appliance answers. This walks the query index each
//!   daemon really answers from.
//! - **by digest**: a digest of the whole content (`outpost_core::digest` over the model
//!   the exports load into; `status.json`'s digest on a Lite client), which also
//!   catches names a replica holds and the cluster does not.
//! - **plugins**: the same definitions at the same versions (and, on appliances, the
//!   same component hashes), running.
//!
//! [`assert_converged`] waits for all of it to hold on every replica, and reports the
//! first difference when it does not.

use std::collections::BTreeMap;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::dns::{query_tcp, rdata_string};
use crate::lite::zone_exports;
use crate::{Appliance, Lite, appliance_digest, plugins, wait_until};

/// How long replicas may take to converge once the cluster is whole again.
pub const CONVERGE_WAIT: Duration = Duration::from_secs(60);

/// What the cluster holds, read from one appliance.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    /// Every RRset of every zone: (owner, type).
    questions: Vec<(String, RecordType)>,
    /// Names that must not exist anywhere (deleted in the test).
    absent: Vec<String>,
    /// The reference's DNS answer to each question and absent name, summarised.
    answers: BTreeMap<(String, RecordType), String>,
    digest: String,
    /// (name, version, sha256) of every plugin.
    plugins: Vec<(String, u64, String)>,
}

/// A DNS answer as replicas must agree on it: rcode, AA, and the answer and authority
/// sections, sorted (TTLs included: they are authoritative and fixed).
fn summary(message: &Message) -> String {
    let section = |records: &[hickory_proto::rr::Record]| {
        let mut lines: Vec<String> = records
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r.name,
                    r.ttl,
                    r.record_type(),
                    rdata_string(&r.data)
                )
            })
            .collect();
        lines.sort();
        lines.join("; ")
    };
    format!(
        "rcode={} aa={} answer=[{}] authority=[{}]",
        message.metadata.response_code,
        message.metadata.authoritative,
        section(&message.answers),
        section(&message.authorities)
    )
}

fn ask(addr: std::net::SocketAddr, name: &str, rtype: RecordType) -> String {
    summary(&query_tcp(addr, name, rtype, None))
}

impl Content {
    /// The content of `zones` (and the plugins) as `reference` holds it; `absent` are
    /// names that must not exist on any replica (NXDOMAIN: in a zone that still exists).
    pub fn of(reference: &Appliance, zones: &[&str], absent: &[&str]) -> Content {
        let mut questions = Vec::new();
        for (_, records) in zone_exports(reference, zones) {
            for record in records {
                let question = (record.name.to_ascii(), record.record_type());
                if !questions.contains(&question) {
                    questions.push(question);
                }
            }
        }
        let absent: Vec<String> = absent.iter().map(|name| name.to_string()).collect();
        let addr = reference.dns_addr();
        let mut answers = BTreeMap::new();
        for (name, rtype) in &questions {
            answers.insert((name.clone(), *rtype), ask(addr, name, *rtype));
        }
        for name in &absent {
            answers.insert(
                (name.clone(), RecordType::A),
                ask(addr, name, RecordType::A),
            );
        }
        let mut plugins: Vec<(String, u64, String)> = plugins(reference)
            .iter()
            .map(|entry| {
                (
                    entry["name"].as_str().unwrap_or_default().to_string(),
                    entry["version"].as_u64().unwrap_or_default(),
                    entry["sha256"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        plugins.sort();
        Content {
            questions,
            absent,
            answers,
            digest: appliance_digest(reference, zones),
            plugins,
        }
    }

    /// How many RRsets the content holds.
    pub fn rrsets(&self) -> usize {
        self.questions.len()
    }

    /// The reference's answer to `name` `rtype`, as compared.
    pub fn answer(&self, name: &str, rtype: RecordType) -> Option<&String> {
        self.answers.get(&(name.to_string(), rtype))
    }

    /// The first question whose answer at `addr` differs from the reference's.
    fn dns_difference(&self, addr: std::net::SocketAddr) -> Option<String> {
        self.answers.iter().find_map(|((name, rtype), expected)| {
            let got = ask(addr, name, *rtype);
            (&got != expected).then(|| format!("{name} {rtype}: expected {expected}\n  got {got}"))
        })
    }

    /// The first difference between this content and `appliance`'s, if any.
    pub fn difference_with_appliance(
        &self,
        appliance: &Appliance,
        zones: &[&str],
    ) -> Option<String> {
        let digest = appliance_digest(appliance, zones);
        if digest != self.digest {
            return Some(format!("zone digest {digest}, expected {}", self.digest));
        }
        let mut installed: Vec<(String, u64, String)> = Vec::new();
        for entry in plugins(appliance) {
            if entry["state"] != "running" || entry["loaded_version"] != entry["version"] {
                return Some(format!("plugin not running its version: {entry}"));
            }
            installed.push((
                entry["name"].as_str().unwrap_or_default().to_string(),
                entry["version"].as_u64().unwrap_or_default(),
                entry["sha256"].as_str().unwrap_or_default().to_string(),
            ));
        }
        installed.sort();
        if installed != self.plugins {
            return Some(format!(
                "plugins {installed:?}, expected {:?}",
                self.plugins
            ));
        }
        self.dns_difference(appliance.dns_addr())
    }

    /// The first difference between this content and `lite`'s replica, if any.
    pub fn difference_with_lite(&self, lite: &Lite) -> Option<String> {
        self.difference_with_replica(&lite.status_file(), lite.dns_addr())
    }

    /// The first difference between this content and a satellite's replica (its
    /// `/v1/status` holds the same fields as a Lite client's `status.json`), if any.
    pub fn difference_with_satellite(&self, satellite: &Appliance) -> Option<String> {
        let (_, status) = satellite.api_json("GET", "/v1/status", None);
        self.difference_with_replica(&status["satellite"], satellite.dns_addr())
    }

    /// The first difference with a replica whose status is `status`, answering on `dns`.
    fn difference_with_replica(
        &self,
        status: &serde_json::Value,
        dns: std::net::SocketAddr,
    ) -> Option<String> {
        if status["digest"].as_str() != Some(self.digest.as_str()) {
            return Some(format!(
                "zone digest {}, expected {} (state {}, cursor {}, head {})",
                status["digest"], self.digest, status["state"], status["cursor"], status["head"]
            ));
        }
        let mut installed: Vec<(String, u64)> = Vec::new();
        for entry in status["plugins"].as_array().cloned().unwrap_or_default() {
            if entry["state"] != "running" {
                return Some(format!("plugin not running: {entry}"));
            }
            installed.push((
                entry["name"].as_str().unwrap_or_default().to_string(),
                entry["version"].as_u64().unwrap_or_default(),
            ));
        }
        installed.sort();
        let expected: Vec<(String, u64)> = self
            .plugins
            .iter()
            .map(|(name, version, _)| (name.clone(), *version))
            .collect();
        if installed != expected {
            return Some(format!("plugins {installed:?}, expected {expected:?}"));
        }
        self.dns_difference(dns)
    }
}

/// Waits until every appliance and Lite client holds what `reference` holds in `zones`
/// (and no name of `absent`), or panics naming the first replica that does not and its
/// first difference. Returns the content they agreed on.
pub fn assert_converged(
    reference: &Appliance,
    zones: &[&str],
    absent: &[&str],
    appliances: &[&Appliance],
    lites: &[&Lite],
) -> Content {
    assert_converged_with_satellites(reference, zones, absent, appliances, lites, &[])
}

/// [`assert_converged`] with satellites (`outpost serve --satellite`) among the replicas.
pub fn assert_converged_with_satellites(
    reference: &Appliance,
    zones: &[&str],
    absent: &[&str],
    appliances: &[&Appliance],
    lites: &[&Lite],
    satellites: &[&Appliance],
) -> Content {
    let mut content = Content::of(reference, zones, absent);
    let mut first_difference = None;
    let converged = wait_until(CONVERGE_WAIT, || {
        // The reference may itself still be applying: read it again on each round.
        content = Content::of(reference, zones, absent);
        first_difference = appliances
            .iter()
            .enumerate()
            .find_map(|(i, node)| {
                content
                    .difference_with_appliance(node, zones)
                    .map(|d| format!("appliance {i}: {d}"))
            })
            .or_else(|| {
                lites.iter().enumerate().find_map(|(i, lite)| {
                    content
                        .difference_with_lite(lite)
                        .map(|d| format!("Lite client {i}: {d}"))
                })
            })
            .or_else(|| {
                satellites.iter().enumerate().find_map(|(i, satellite)| {
                    content
                        .difference_with_satellite(satellite)
                        .map(|d| format!("satellite {i}: {d}"))
                })
            });
        first_difference.is_none()
    });
    assert!(
        converged,
        "replicas did not converge within {CONVERGE_WAIT:?}; first difference: {}",
        first_difference.unwrap_or_default()
    );
    for name in &content.absent {
        let answer = content
            .answer(name, RecordType::A)
            .cloned()
            .unwrap_or_default();
        assert!(
            answer.starts_with("rcode=Non-Existent Domain"),
            "{name} should not exist, the cluster answers {answer}"
        );
    }
    content
}
