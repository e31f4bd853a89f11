//! The policy hop: what the query-policy chain's outcome
//! ([`PolicyOutcome`]) means for the answer, in DNS terms.
//!
//! | verdict | answer |
//! |---|---|
//! | `block(nxdomain)` | NXDOMAIN, no records |
//! | `block(refused)` | REFUSED |
//! | `block(sinkhole(ip))` | NOERROR with an A (or AAAA) record at the question's name pointing at `ip`, TTL [`SINKHOLE_TTL`], when the question asks for that family; NOERROR with no records (NODATA) otherwise |
//! | `answer(records)` | NOERROR, AA set, with the records at the question's name and type, following CNAMEs among them; the plugin's other records are left out |
//! | `redirect(target)` | a CNAME from the question's name to `target` (TTL [`REDIRECT_TTL`]), then `target` resolved as usual: from our zones, by the forwarder for clients that may recurse, or else the CNAME alone for the client's resolver to follow; the rcode is the target's |
//! | a fail-closed failure | SERVFAIL |
//!
//! Blocks and failures are not authoritative (AA clear): the name may well exist, we
//! decline to say so. Negative answers carry no SOA, so downstream resolvers do not
//! cache them (RFC 2308 section 5) and an unblocked name is visible at once.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use outpost_plugin_host::{Action, Block, MAX_ANSWER_RECORDS, PolicyOutcome};

use crate::message::{Outcome, Question};
use crate::metrics::Metrics;
use crate::querylog::{Source, Verdict};

/// TTL of a sinkhole answer: short, so that a name taken off a blocklist resolves
/// again within a minute.
pub const SINKHOLE_TTL: u32 = 60;
/// TTL of the CNAME a redirect synthesizes.
pub const REDIRECT_TTL: u32 = 60;

/// What the rest of the query path does after the policy hop.
#[derive(Debug)]
pub enum Applied {
    /// Answer as if there were no plugins.
    Continue,
    /// Send this answer; neither the answer engine nor the forwarder is asked. The
    /// source names the plugin and its verdict, for the query log.
    Reply(Outcome<'static>, Source),
    /// Resolve the target instead of the question's name, behind the CNAME. Boxed:
    /// rare, and a record is large.
    Redirect(Box<Redirect>),
}

/// A query a plugin redirected: answered with `cname`, then `target`'s records.
#[derive(Debug, Clone, PartialEq)]
pub struct Redirect {
    /// `qname CNAME target`, first in the answer section.
    pub cname: Record,
    pub target: Name,
    /// The plugin that redirected, for the query log.
    pub plugin: Arc<str>,
}

/// Turns the chain's outcome into what the query path does next, counts it, and logs
/// the deciding plugin and its tags.
pub fn apply(
    outcome: PolicyOutcome,
    question: &Question,
    may_recurse: bool,
    metrics: &Metrics,
) -> Applied {
    let (plugin, action, tags) = match outcome {
        PolicyOutcome::Continue => return Applied::Continue,
        PolicyOutcome::Act {
            plugin,
            action,
            tags,
        } => (plugin, action, tags),
        PolicyOutcome::Fail { plugin, error } => {
            Metrics::bump(&metrics.policy_failed);
            tracing::debug!(plugin = &*plugin, %error, "fail-closed plugin failed: SERVFAIL");
            let outcome = Outcome {
                recursion_available: may_recurse,
                ..Outcome::bare(ResponseCode::ServFail)
            };
            return Applied::Reply(outcome, decided(plugin, Verdict::Fail));
        }
    };
    let qname = question.query.name();
    let qtype = question.query.query_type();
    tracing::debug!(
        plugin = &*plugin,
        ?tags,
        action = action_name(&action),
        name = %qname,
        %qtype,
        "policy verdict"
    );
    let bare = |rcode| Outcome {
        recursion_available: may_recurse,
        ..Outcome::bare(rcode)
    };
    match action {
        Action::Allow => Applied::Continue,
        Action::Block(block) => {
            Metrics::bump(&metrics.policy_blocked);
            let outcome = match block {
                Block::NxDomain => bare(ResponseCode::NXDomain),
                Block::Refused => bare(ResponseCode::Refused),
                Block::Sinkhole(address) => Outcome {
                    answers: sinkhole_record(qname, qtype, address)
                        .map(Cow::Owned)
                        .into_iter()
                        .collect(),
                    ..bare(ResponseCode::NoError)
                },
            };
            Applied::Reply(outcome, decided(plugin, Verdict::Block))
        }
        Action::Answer(records) => {
            Metrics::bump(&metrics.policy_answered);
            let outcome = Outcome {
                authoritative: true,
                answers: answer_records(qname, qtype, records)
                    .into_iter()
                    .map(Cow::Owned)
                    .collect(),
                ..bare(ResponseCode::NoError)
            };
            Applied::Reply(outcome, decided(plugin, Verdict::Answer))
        }
        Action::Redirect(target) => {
            Metrics::bump(&metrics.policy_redirected);
            Applied::Redirect(Box::new(Redirect {
                cname: Record::from_rdata(
                    qname.clone(),
                    REDIRECT_TTL,
                    RData::CNAME(CNAME(target.clone())),
                ),
                target,
                plugin,
            }))
        }
    }
}

fn decided(plugin: Arc<str>, verdict: Verdict) -> Source {
    Source::Plugin { plugin, verdict }
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Allow => "allow",
        Action::Block(Block::NxDomain) => "block-nxdomain",
        Action::Block(Block::Refused) => "block-refused",
        Action::Block(Block::Sinkhole(_)) => "block-sinkhole",
        Action::Answer(_) => "answer",
        Action::Redirect(_) => "redirect",
    }
}

/// The sinkhole's address as an answer to `qtype`, if it is of the family asked for.
fn sinkhole_record(qname: &Name, qtype: RecordType, address: IpAddr) -> Option<Record> {
    let data = match (qtype, address) {
        (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => RData::A(A(v4)),
        (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
        _ => return None,
    };
    Some(Record::from_rdata(qname.clone(), SINKHOLE_TTL, data))
}

/// The records of a plugin's answer that answer the question: those at `qname` of
/// `qtype` and, when `qname` has a CNAME among them, the CNAME and what its target
/// has, and so on down the chain until it ends or loops.
fn answer_records(qname: &Name, qtype: RecordType, records: Vec<Record>) -> Vec<Record> {
    let matches_type = |record: &Record| qtype == RecordType::ANY || record.record_type() == qtype;
    let mut answer = Vec::new();
    let mut owner = qname.clone();
    let mut visited: Vec<Name> = Vec::new();
    // A plugin answers with at most MAX_ANSWER_RECORDS records, so the chain has at
    // most that many steps.
    for _ in 0..MAX_ANSWER_RECORDS {
        let at_owner = |record: &&Record| record.name.eq_ignore_root(&owner);
        answer.extend(
            records
                .iter()
                .filter(at_owner)
                .filter(|record| matches_type(record))
                .cloned(),
        );
        if qtype == RecordType::CNAME {
            break;
        }
        let next = records
            .iter()
            .filter(at_owner)
            .find_map(|record| match &record.data {
                RData::CNAME(CNAME(target)) => Some((record, target.clone())),
                _ => None,
            });
        let Some((cname, target)) = next else {
            break;
        };
        if qtype != RecordType::ANY {
            answer.push(cname.clone());
        }
        visited.push(std::mem::replace(&mut owner, target));
        if visited.iter().any(|seen| seen.eq_ignore_root(&owner)) {
            break;
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use hickory_proto::op::{OpCode, Query};
    use outpost_plugin_host::PluginError;

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn question(qname: &str, qtype: RecordType) -> Question {
        Question {
            id: 1,
            op_code: OpCode::Query,
            recursion_desired: true,
            checking_disabled: false,
            query: Query::query(name(qname), qtype),
            edns: None,
            cookie: None,
            server_cookie: None,
        }
    }

    fn act(action: Action) -> PolicyOutcome {
        PolicyOutcome::Act {
            plugin: "test".into(),
            action,
            tags: vec!["test:tag".into()],
        }
    }

    fn a(owner: &str, address: [u8; 4]) -> Record {
        Record::from_rdata(name(owner), 300, RData::A(A::from(Ipv4Addr::from(address))))
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 300, RData::CNAME(CNAME(name(target))))
    }

    /// The rcode, AA, and the answer section as "owner TTL data" lines.
    fn reply(applied: Applied) -> (ResponseCode, bool, Vec<String>) {
        let Applied::Reply(outcome, _) = applied else {
            panic!("expected a reply, got {applied:?}");
        };
        let answers = outcome
            .answers
            .iter()
            .map(|record| format!("{} {} {}", record.name, record.ttl, record.data))
            .collect();
        (outcome.rcode, outcome.authoritative, answers)
    }

    /// The question's name and type, the chain's outcome, then the rcode, AA and the
    /// answer section expected.
    type Case = (
        &'static str,
        RecordType,
        PolicyOutcome,
        ResponseCode,
        bool,
        Vec<&'static str>,
    );

    #[test]
    fn verdicts_become_answers() {
        let sinkhole_v4 = || {
            act(Action::Block(Block::Sinkhole(
                Ipv4Addr::new(10, 0, 0, 53).into(),
            )))
        };
        let sinkhole_v6 = || act(Action::Block(Block::Sinkhole(Ipv6Addr::LOCALHOST.into())));
        let split = vec![
            a("printer.site.example.", [10, 1, 2, 3]),
            a("other.site.example.", [10, 1, 2, 4]),
        ];
        let chained = vec![
            cname("www.site.example.", "web.site.example."),
            a("web.site.example.", [10, 1, 2, 5]),
            a("unrelated.site.example.", [10, 9, 9, 9]),
        ];
        let cases: Vec<Case> = vec![
            (
                "ads.example.",
                RecordType::A,
                act(Action::Block(Block::NxDomain)),
                ResponseCode::NXDomain,
                false,
                vec![],
            ),
            (
                "ads.example.",
                RecordType::A,
                act(Action::Block(Block::Refused)),
                ResponseCode::Refused,
                false,
                vec![],
            ),
            (
                "Ads.Example.",
                RecordType::A,
                sinkhole_v4(),
                ResponseCode::NoError,
                false,
                vec!["Ads.Example. 60 10.0.0.53"],
            ),
            (
                "ads.example.",
                RecordType::AAAA,
                sinkhole_v4(),
                ResponseCode::NoError,
                false,
                vec![],
            ),
            (
                "ads.example.",
                RecordType::MX,
                sinkhole_v4(),
                ResponseCode::NoError,
                false,
                vec![],
            ),
            (
                "ads.example.",
                RecordType::AAAA,
                sinkhole_v6(),
                ResponseCode::NoError,
                false,
                vec!["ads.example. 60 ::1"],
            ),
            (
                "ads.example.",
                RecordType::A,
                sinkhole_v6(),
                ResponseCode::NoError,
                false,
                vec![],
            ),
            (
                "printer.site.example.",
                RecordType::A,
                act(Action::Answer(split.clone())),
                ResponseCode::NoError,
                true,
                vec!["printer.site.example. 300 10.1.2.3"],
            ),
            (
                "printer.site.example.",
                RecordType::AAAA,
                act(Action::Answer(split)),
                ResponseCode::NoError,
                true,
                vec![],
            ),
            (
                "WWW.site.example.",
                RecordType::A,
                act(Action::Answer(chained)),
                ResponseCode::NoError,
                true,
                vec![
                    "www.site.example. 300 web.site.example.",
                    "web.site.example. 300 10.1.2.5",
                ],
            ),
            (
                "x.example.",
                RecordType::A,
                PolicyOutcome::Fail {
                    plugin: "test".into(),
                    error: PluginError::Trap {
                        plugin: "test".into(),
                        message: "unreachable".into(),
                    },
                },
                ResponseCode::ServFail,
                false,
                vec![],
            ),
        ];
        let metrics = Metrics::default();
        for (qname, qtype, outcome, rcode, authoritative, answers) in cases {
            let applied = apply(outcome, &question(qname, qtype), true, &metrics);
            assert_eq!(
                reply(applied),
                (
                    rcode,
                    authoritative,
                    answers.iter().map(|s| s.to_string()).collect()
                ),
                "{qname} {qtype}"
            );
        }
        assert_eq!(
            metrics
                .policy_blocked
                .load(std::sync::atomic::Ordering::Relaxed),
            7
        );
        assert_eq!(
            metrics
                .policy_answered
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
        assert_eq!(
            metrics
                .policy_failed
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn a_cname_loop_in_an_answer_ends() {
        let looped = vec![
            cname("a.example.", "b.example."),
            cname("b.example.", "a.example."),
        ];
        let answer = answer_records(&name("a.example."), RecordType::A, looped.clone());
        assert_eq!(answer, looped);
    }

    #[test]
    fn allow_continues_and_redirect_names_the_target() {
        let metrics = Metrics::default();
        let q = question("old.example.", RecordType::A);
        assert!(matches!(
            apply(PolicyOutcome::Continue, &q, true, &metrics),
            Applied::Continue
        ));
        let Applied::Redirect(redirect) = apply(
            act(Action::Redirect(name("new.example."))),
            &q,
            true,
            &metrics,
        ) else {
            panic!("expected a redirect");
        };
        assert_eq!(redirect.target, name("new.example."));
        assert_eq!(redirect.cname, {
            let mut record = cname("old.example.", "new.example.");
            record.ttl = REDIRECT_TTL;
            record
        });
        assert_eq!(
            metrics
                .policy_redirected
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
