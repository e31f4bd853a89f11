//! The answer engine as a table: each row is a question and what a resolver must see.

use super::*;
use crate::state::Command;
use crate::wire::encode_records;
use crate::zonefile::parse_zone;

const EXAMPLE: &str = r#"
$TTL 300
@        3600 SOA ns1 hostmaster 1 7200 3600 1209600 60
@             NS  ns1
ns1           A   10.0.0.1
www           A   10.0.0.10
www           AAAA fd00::10
alias         CNAME www
chain1        CNAME chain2
chain2        CNAME www
dangling      CNAME nothere
outside       CNAME www.example.com.
loop1         CNAME loop2
loop2         CNAME loop1
mail          MX  10 mx1
mx1           A   10.0.0.25
*.dev         A   10.0.1.1
*.dev         TXT "wild"
exists.dev    A   10.0.1.2
deep.ent      A   10.0.2.1
sub           NS  ns.sub
ns.sub        A   10.0.3.1
_sip._tcp     SRV 0 5 5060 sip
sip           A   10.0.0.50
"#;

const LAB: &str = r#"
@   300 SOA ns1.example.internal. hostmaster.example.internal. 7 7200 3600 1209600 30
@   300 NS  ns1.example.internal.
printer 300 A 10.9.0.7
"#;

fn zone_set() -> ZoneSet {
    let mut zones = ReplicatedState::default();
    for (origin, text) in [
        ("example.internal.", EXAMPLE),
        ("lab.example.internal.", LAB),
    ] {
        let name = Name::from_ascii(origin).unwrap();
        let records = parse_zone(text, &name, 3600).unwrap();
        zones
            .apply(&Command::CreateZone {
                origin: origin.into(),
                records: encode_records(&records).unwrap(),
            })
            .unwrap();
    }
    ZoneSet::build(&zones)
}

/// Renders a section as "owner ttl TYPE rdata" lines, the way dig shows them.
fn show(records: &[Cow<'_, Record>]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
}

struct Case {
    qname: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    aa: bool,
    answers: &'static [&'static str],
    authorities: &'static [&'static str],
    additionals: &'static [&'static str],
}

const NEG_SOA: &str = "example.internal. 60 SOA ns1.example.internal. hostmaster.example.internal. 1 7200 3600 1209600 60";

#[test]
fn answers_follow_the_rfcs() {
    use RecordType::*;
    use ResponseCode::{NXDomain, NoError};
    let cases = [
        Case {
            qname: "www.example.internal.",
            qtype: A,
            rcode: NoError,
            aa: true,
            answers: &["www.example.internal. 300 A 10.0.0.10"],
            authorities: &[],
            additionals: &[],
        },
        Case {
            qname: "WWW.Example.INTERNAL.",
            qtype: AAAA,
            rcode: NoError,
            aa: true,
            answers: &["www.example.internal. 300 AAAA fd00::10"],
            authorities: &[],
            additionals: &[],
        },
        // NODATA: the name exists, the type does not; SOA TTL is min(3600, MINIMUM 60).
        Case {
            qname: "www.example.internal.",
            qtype: MX,
            rcode: NoError,
            aa: true,
            answers: &[],
            authorities: &[NEG_SOA],
            additionals: &[],
        },
        Case {
            qname: "nothere.example.internal.",
            qtype: A,
            rcode: NXDomain,
            aa: true,
            answers: &[],
            authorities: &[NEG_SOA],
            additionals: &[],
        },
        // Empty non-terminal: exists, so NODATA rather than NXDOMAIN (RFC 8020).
        Case {
            qname: "ent.example.internal.",
            qtype: A,
            rcode: NoError,
            aa: true,
            answers: &[],
            authorities: &[NEG_SOA],
            additionals: &[],
        },
        Case {
            qname: "alias.example.internal.",
            qtype: A,
            rcode: NoError,
            aa: true,
            answers: &[
                "alias.example.internal. 300 CNAME www.example.internal.",
                "www.example.internal. 300 A 10.0.0.10",
            ],
            authorities: &[],
            additionals: &[],
        },
        Case {
            qname: "alias.example.internal.",
            qtype: CNAME,
            rcode: NoError,
            aa: true,
            answers: &["alias.example.internal. 300 CNAME www.example.internal."],
            authorities: &[],
            additionals: &[],
        },
        Case {
            qname: "chain1.example.internal.",
            qtype: A,
            rcode: NoError,
            aa: true,
            answers: &[
                "chain1.example.internal. 300 CNAME chain2.example.internal.",
                "chain2.example.internal. 300 CNAME www.example.internal.",
                "www.example.internal. 300 A 10.0.0.10",
            ],
            authorities: &[],
            additionals: &[],
        },
        // The rcode is that of the last name in the chain (RFC 6604).
        Case {
            qname: "dangling.example.internal.",
            qtype: A,
            rcode: NXDomain,
            aa: true,
            answers: &["dangling.example.internal. 300 CNAME nothere.example.internal."],
            authorities: &[NEG_SOA],
            additionals: &[],
        },
        Case {
            qname: "outside.example.internal.",
            qtype: A,
            rcode: NoError,
            aa: true,
            answers: &["outside.example.internal. 300 CNAME www.example.com."],
            authorities: &[],
            additionals: &[],
        },
        // Wildcard synthesis (RFC 4592), also more than one label below the encloser.
        Case {
            qname: "foo.dev.example.internal.",
            qtype: A,
            rcode: NoError,
            aa: true,
            answers: &["foo.dev.example.internal. 300 A 10.0.1.1"],
            authorities: &[],
            additionals: &[],
        },
        Case {
            qname: "a.b.dev.example.internal.",
            qtype: TXT,
            rcode: NoError,
            aa: true,
            answers: &["a.b.dev.example.internal. 300 TXT wild"],
            authorities: &[],
            additionals: &[],
        },
        // Wildcard NODATA.
        Case {
            qname: "foo.dev.example.internal.",
            qtype: MX,
            rcode: NoError,
            aa: true,
            answers: &[],
            authorities: &[NEG_SOA],
            additionals: &[],
        },
        // A wildcard never covers a name that exists.
        Case {
            qname: "exists.dev.example.internal.",
            qtype: TXT,
            rcode: NoError,
            aa: true,
            answers: &[],
            authorities: &[NEG_SOA],
            additionals: &[],
        },
        // Nor names below an existing name that is not the wildcard's parent.
        Case {
            qname: "x.www.example.internal.",
            qtype: A,
            rcode: NXDomain,
            aa: true,
            answers: &[],
            authorities: &[NEG_SOA],
            additionals: &[],
        },
        // Delegation: a referral, AA clear, with glue.
        Case {
            qname: "host.sub.example.internal.",
            qtype: A,
            rcode: NoError,
            aa: false,
            answers: &[],
            authorities: &["sub.example.internal. 300 NS ns.sub.example.internal."],
            additionals: &["ns.sub.example.internal. 300 A 10.0.3.1"],
        },
        Case {
            qname: "sub.example.internal.",
            qtype: NS,
            rcode: NoError,
            aa: false,
            answers: &[],
            authorities: &["sub.example.internal. 300 NS ns.sub.example.internal."],
            additionals: &["ns.sub.example.internal. 300 A 10.0.3.1"],
        },
        Case {
            qname: "mail.example.internal.",
            qtype: MX,
            rcode: NoError,
            aa: true,
            answers: &["mail.example.internal. 300 MX 10 mx1.example.internal."],
            authorities: &[],
            additionals: &["mx1.example.internal. 300 A 10.0.0.25"],
        },
        Case {
            qname: "_sip._tcp.example.internal.",
            qtype: SRV,
            rcode: NoError,
            aa: true,
            answers: &["_sip._tcp.example.internal. 300 SRV 0 5 5060 sip.example.internal."],
            authorities: &[],
            additionals: &["sip.example.internal. 300 A 10.0.0.50"],
        },
        Case {
            qname: "example.internal.",
            qtype: NS,
            rcode: NoError,
            aa: true,
            answers: &["example.internal. 300 NS ns1.example.internal."],
            authorities: &[],
            additionals: &["ns1.example.internal. 300 A 10.0.0.1"],
        },
        // The deepest zone answers.
        Case {
            qname: "printer.lab.example.internal.",
            qtype: A,
            rcode: NoError,
            aa: true,
            answers: &["printer.lab.example.internal. 300 A 10.9.0.7"],
            authorities: &[],
            additionals: &[],
        },
        Case {
            qname: "nope.lab.example.internal.",
            qtype: A,
            rcode: NXDomain,
            aa: true,
            answers: &[],
            authorities: &[
                "lab.example.internal. 30 SOA ns1.example.internal. hostmaster.example.internal. 7 7200 3600 1209600 30",
            ],
            additionals: &[],
        },
    ];
    let set = zone_set();
    for case in cases {
        let name = Name::from_ascii(case.qname).unwrap();
        let answer = set
            .lookup(&name, case.qtype)
            .unwrap_or_else(|| panic!("{} is in our zones", case.qname));
        let context = format!("{} {}", case.qname, case.qtype);
        assert_eq!(answer.rcode, case.rcode, "{context}");
        assert_eq!(answer.authoritative, case.aa, "{context}");
        assert_eq!(show(&answer.answers), case.answers, "{context}");
        assert_eq!(show(&answer.authorities), case.authorities, "{context}");
        assert_eq!(show(&answer.additionals), case.additionals, "{context}");
    }
}

#[test]
fn cname_loops_end() {
    let set = zone_set();
    let answer = set
        .lookup(
            &Name::from_ascii("loop1.example.internal.").unwrap(),
            RecordType::A,
        )
        .unwrap();
    assert_eq!(answer.answers.len(), MAX_CNAME_CHAIN);
    assert_eq!(answer.rcode, ResponseCode::NoError);
}

#[test]
fn names_outside_our_zones_are_not_ours() {
    let set = zone_set();
    for name in ["www.example.com.", "internal.", "."] {
        assert!(
            set.lookup(&Name::from_ascii(name).unwrap(), RecordType::A)
                .is_none(),
            "{name}"
        );
    }
}

#[test]
fn rebuild_reindexes_only_touched_zones() {
    let mut zones = ReplicatedState::default();
    let origin = Name::from_ascii("lab.example.internal.").unwrap();
    let records = parse_zone(LAB, &origin, 300).unwrap();
    let changes = zones
        .apply(&Command::CreateZone {
            origin: origin.to_ascii(),
            records: encode_records(&records).unwrap(),
        })
        .unwrap();
    let first = ZoneSet::rebuild(&zones, &ZoneSet::empty(), &changes);
    assert_eq!(first.len(), 1);
    let changes = zones
        .apply(&Command::DeleteZone {
            origin: origin.to_ascii(),
        })
        .unwrap();
    let second = ZoneSet::rebuild(&zones, &first, &changes);
    assert!(second.is_empty());
    assert_eq!(first.len(), 1, "the previous snapshot is untouched");
}

/// Everything `lookup` says about a question, as text.
fn render(set: &ZoneSet, name: &str, qtype: RecordType) -> String {
    let name = Name::from_ascii(name).unwrap();
    format!("{:?}", set.lookup(&name, qtype))
}

#[test]
fn a_patched_index_answers_as_one_built_whole_through_random_writes() {
    // A zone just past the size from which writes are patched, with names at several
    // depths, under a wildcard and a cut, so writes make and remove empty non-terminals,
    // wildcards and delegations. Half the writes go to owners of the index's base,
    // enough of them for the patch to outgrow its share and the index to be built whole.
    let fillers = PATCH_FROM_NODES;
    let pool = [
        "a.example.internal.",
        "b.a.example.internal.",
        "c.b.a.example.internal.",
        "x.y.z.example.internal.",
        "*.w.example.internal.",
        "v.w.example.internal.",
        "deep.ent.example.internal.",
        "ent.example.internal.",
        "host.sub.example.internal.",
        "www.example.internal.",
        "filler7.example.internal.",
        "filler1000.example.internal.",
    ];
    let types = [
        RecordType::A,
        RecordType::TXT,
        RecordType::NS,
        RecordType::ANY,
    ];
    let mut questions: Vec<String> = pool.iter().map(|name| name.to_string()).collect();
    questions.extend(
        [
            "y.z.example.internal.",
            "z.example.internal.",
            "w.example.internal.",
        ]
        .map(String::from),
    );
    questions.extend(
        [
            "q.w.example.internal.",
            "nope.example.internal.",
            "d.c.b.a.example.internal.",
            "x.host.sub.example.internal.",
            "filler8.example.internal.",
        ]
        .map(String::from),
    );

    let origin = Name::from_ascii("example.internal.").unwrap();
    let mut zones = ReplicatedState::default();
    let mut text = EXAMPLE.to_string();
    for i in 0..fillers {
        text.push_str(&format!("filler{i} A 10.8.{}.{}\n", i / 250, i % 250));
    }
    let records = parse_zone(&text, &origin, 3600).unwrap();
    let changes = zones
        .apply(&Command::CreateZone {
            origin: origin.to_ascii(),
            records: encode_records(&records).unwrap(),
        })
        .unwrap();
    let mut patched = ZoneSet::rebuild(&zones, &ZoneSet::empty(), &changes);
    let key = key_of(&origin);
    assert!(patched.zones[&key].base.len() >= PATCH_FROM_NODES);

    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % below as u64).unwrap()
    };
    let (mut patches, mut rebuilt_after_patches) = (0, 0);
    for step in 0..400 {
        let name = match random(2) {
            0 => pool[random(pool.len())].to_string(),
            _ => format!("filler{}.example.internal.", random(fillers)),
        };
        let command = match random(4) {
            0 | 1 => {
                let text = match random(3) {
                    0 => format!("{name} 60 A 10.7.{}.{}", random(250), random(250)),
                    1 => format!("{name} 60 TXT \"t{step}\""),
                    _ => format!("{name} 60 NS ns.{name}"),
                };
                Command::AddRecords {
                    records: encode_records(&parse_zone(&text, &origin, 60).unwrap()).unwrap(),
                }
            }
            _ => Command::DeleteRecords {
                owner: name.clone(),
                rtype: None,
                records: Vec::new(),
            },
        };
        let Ok(changes) = zones.apply(&command) else {
            continue;
        };
        let had_patch = !patched.zones[&key].patch.is_empty();
        patched = ZoneSet::rebuild(&zones, &patched, &changes);
        let has_patch = !patched.zones[&key].patch.is_empty();
        patches += usize::from(has_patch);
        rebuilt_after_patches += usize::from(had_patch && !has_patch);
        let whole = ZoneSet::build(&zones);
        for question in questions.iter().chain([&name]) {
            for qtype in types {
                assert_eq!(
                    render(&patched, question, qtype),
                    render(&whole, question, qtype),
                    "step {step}, after {command:?}: {question} {qtype}"
                );
            }
        }
    }
    assert!(patches > 100, "the writes were patched: {patches}");
    assert!(
        rebuilt_after_patches > 0,
        "a patch grown past 1/{REBUILD_SHARE} of the zone was indexed whole again"
    );
}
