//! Our types at the plugin boundary and their conversion to and from the types
//! generated from WIT. Everything a plugin returns is checked here: names must parse
//! and be fully qualified, record data must fit its type, and lists are capped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, BinEncodable, BinEncoder, Restrict};
use outpost_core::answer::Transport;

use super::bindings::policy::exports::outpost::plugin::policy as wit_policy;
use super::bindings::types as wit;

/// Records one `answer` verdict may carry: more than any sane answer, few enough
/// that a plugin cannot make the server build huge responses.
pub const MAX_ANSWER_RECORDS: usize = 32;

/// Tags one verdict may carry, and bytes per tag.
pub const MAX_TAGS: usize = 8;
pub const MAX_TAG_BYTES: usize = 64;

/// Records one transform may return: as many as one write may hold.
pub const MAX_TRANSFORM_RECORDS: usize = outpost_core::wire::MAX_RECORDS_PER_BLOB;

/// Bytes of one TXT character-string (RFC 1035 section 3.3).
const MAX_CHARACTER_STRING: usize = 255;

/// One question as a policy plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The name as asked. Plugins get it in lowercase presentation form with the trailing
    /// dot (`www.example.com.`), built only when a plugin is called: a remembered
    /// verdict (`memo.rs`) is found from the name's wire form.
    pub name: Name,
    pub qtype: RecordType,
    pub qclass: DNSClass,
    pub client: IpAddr,
    pub transport: Transport,
}

impl Query {
    /// A question. Copying a name of up to 32 bytes of labels allocates nothing.
    pub fn new(
        name: &Name,
        qtype: RecordType,
        qclass: DNSClass,
        client: IpAddr,
        transport: Transport,
    ) -> Query {
        Query {
            name: name.clone(),
            qtype,
            qclass,
            client,
            transport,
        }
    }
}

/// What a policy plugin decided about a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    /// Labels for the query log.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Continue with the next plugin, then the answer engine or the forwarder.
    Allow,
    Block(Block),
    /// Answer with exactly these records (at most [`MAX_ANSWER_RECORDS`]).
    Answer(Vec<Record>),
    /// Answer as if the query had asked for this name.
    Redirect(Name),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    NxDomain,
    Refused,
    /// A or AAAA answers pointing here.
    Sinkhole(IpAddr),
}

/// The query as plugins get it: the name lowercased and fully qualified.
pub(super) fn query_to_wit(query: &Query) -> wit::Query {
    wit::Query {
        name: presentation(&query.name, true),
        qtype: u16::from(query.qtype),
        qclass: u16::from(query.qclass),
        client: address_to_wit(query.client),
        transport: match query.transport {
            Transport::Udp => wit::Transport::Udp,
            // The WIT interface knows datagram and stream: the encrypted transports
            // are streams of whole messages, as TCP is.
            Transport::Tcp | Transport::Tls | Transport::Https | Transport::Quic => {
                wit::Transport::Tcp
            }
        },
    }
}

/// Checks and converts a verdict; the error says what was wrong with it.
pub(super) fn verdict_from_wit(verdict: wit_policy::Verdict) -> Result<Verdict, String> {
    if verdict.tags.len() > MAX_TAGS {
        return Err(format!("{} tags (at most {MAX_TAGS})", verdict.tags.len()));
    }
    if let Some(tag) = verdict.tags.iter().find(|tag| tag.len() > MAX_TAG_BYTES) {
        return Err(format!(
            "a tag of {} bytes (at most {MAX_TAG_BYTES})",
            tag.len()
        ));
    }
    let action = match verdict.action {
        wit_policy::Action::Allow => Action::Allow,
        wit_policy::Action::Block(wit_policy::Block::Nxdomain) => Action::Block(Block::NxDomain),
        wit_policy::Action::Block(wit_policy::Block::Refused) => Action::Block(Block::Refused),
        wit_policy::Action::Block(wit_policy::Block::Sinkhole(address)) => {
            Action::Block(Block::Sinkhole(address_from_wit(address)))
        }
        wit_policy::Action::Answer(records) => {
            Action::Answer(records_from_wit(records, MAX_ANSWER_RECORDS)?)
        }
        wit_policy::Action::Redirect(target) => Action::Redirect(name_from_wit(&target)?),
    };
    Ok(Verdict {
        action,
        tags: verdict.tags,
    })
}

/// Converts records for a plugin: owner names lowercased, the common types typed,
/// the rest as wire bytes.
pub(super) fn records_to_wit(records: &[Record]) -> Result<Vec<wit::ResourceRecord>, String> {
    records.iter().map(record_to_wit).collect()
}

fn record_to_wit(record: &Record) -> Result<wit::ResourceRecord, String> {
    let data = match &record.data {
        RData::A(a) => wit::Rdata::A(a.0.octets().into()),
        RData::AAAA(aaaa) => wit::Rdata::Aaaa(segments(aaaa.0)),
        RData::CNAME(cname) => wit::Rdata::Cname(presentation(&cname.0, false)),
        RData::NS(ns) => wit::Rdata::Ns(presentation(&ns.0, false)),
        RData::PTR(ptr) => wit::Rdata::Ptr(presentation(&ptr.0, false)),
        RData::MX(mx) => wit::Rdata::Mx(wit::Mx {
            preference: mx.preference,
            exchange: presentation(&mx.exchange, false),
        }),
        RData::SRV(srv) => wit::Rdata::Srv(wit::Srv {
            priority: srv.priority,
            weight: srv.weight,
            port: srv.port,
            target: presentation(&srv.target, false),
        }),
        RData::TXT(txt) => wit::Rdata::Txt(txt.txt_data.iter().map(|s| s.to_vec()).collect()),
        other => {
            let mut data = Vec::new();
            let mut encoder = BinEncoder::new(&mut data);
            encoder.set_canonical_form(true);
            other.emit(&mut encoder).map_err(|e| {
                format!(
                    "the {} record of {} could not be encoded: {e}",
                    record.record_type(),
                    record.name
                )
            })?;
            wit::Rdata::Other(wit::RawRdata {
                rtype: u16::from(record.record_type()),
                data,
            })
        }
    };
    Ok(wit::ResourceRecord {
        name: presentation(&record.name, true),
        ttl: record.ttl,
        data,
    })
}

/// Checks and converts records a plugin returned, at most `max` of them.
pub(super) fn records_from_wit(
    records: Vec<wit::ResourceRecord>,
    max: usize,
) -> Result<Vec<Record>, String> {
    if records.len() > max {
        return Err(format!("{} records (at most {max})", records.len()));
    }
    records
        .into_iter()
        .enumerate()
        .map(|(index, record)| {
            record_from_wit(record).map_err(|reason| format!("record {index}: {reason}"))
        })
        .collect()
}

fn record_from_wit(record: wit::ResourceRecord) -> Result<Record, String> {
    let name = name_from_wit(&record.name)?.to_lowercase();
    let data = match record.data {
        wit::Rdata::A(address) => RData::A(A::from(Ipv4Addr::from(<[u8; 4]>::from(address)))),
        wit::Rdata::Aaaa(address) => RData::AAAA(AAAA::from(ipv6(address))),
        wit::Rdata::Cname(target) => RData::CNAME(CNAME(name_from_wit(&target)?)),
        wit::Rdata::Ns(target) => RData::NS(NS(name_from_wit(&target)?)),
        wit::Rdata::Ptr(target) => RData::PTR(PTR(name_from_wit(&target)?)),
        wit::Rdata::Mx(mx) => RData::MX(MX::new(mx.preference, name_from_wit(&mx.exchange)?)),
        wit::Rdata::Srv(srv) => RData::SRV(SRV::new(
            srv.priority,
            srv.weight,
            srv.port,
            name_from_wit(&srv.target)?,
        )),
        wit::Rdata::Txt(strings) => {
            if let Some(long) = strings.iter().find(|s| s.len() > MAX_CHARACTER_STRING) {
                return Err(format!(
                    "a TXT string of {} bytes (at most {MAX_CHARACTER_STRING})",
                    long.len()
                ));
            }
            let total: usize = strings.iter().map(|s| s.len() + 1).sum();
            if total > usize::from(u16::MAX) {
                return Err(format!("TXT data of {total} bytes (at most 65535)"));
            }
            RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()))
        }
        wit::Rdata::Other(raw) => rdata_from_wire(raw)?,
    };
    Ok(Record::from_rdata(name, record.ttl, data))
}

/// Decodes raw RDATA of any type a zone may hold; the bytes must be exactly one RDATA.
fn rdata_from_wire(raw: wit::RawRdata) -> Result<RData, String> {
    let rtype = RecordType::from(raw.rtype);
    if matches!(
        rtype,
        RecordType::OPT
            | RecordType::TSIG
            | RecordType::SIG
            | RecordType::ANY
            | RecordType::AXFR
            | RecordType::IXFR
    ) {
        return Err(format!("type {rtype} cannot be stored or answered"));
    }
    let length = u16::try_from(raw.data.len())
        .map_err(|_| format!("{} bytes of {rtype} data (at most 65535)", raw.data.len()))?;
    let mut decoder = BinDecoder::new(&raw.data);
    let rdata = RData::read(&mut decoder, rtype, Restrict::new(length))
        .map_err(|e| format!("{rtype} data does not decode: {e}"))?;
    if !decoder.is_empty() {
        return Err(format!(
            "{rtype} data has {} bytes left over",
            decoder.len()
        ));
    }
    Ok(rdata)
}

/// A name from a plugin: it must parse and be fully qualified.
fn name_from_wit(text: &str) -> Result<Name, String> {
    let name =
        Name::from_ascii(text).map_err(|e| format!("{text:?} is not a valid DNS name: {e}"))?;
    if !name.is_fqdn() {
        return Err(format!(
            "{text:?} is not fully qualified (end it with a dot)"
        ));
    }
    Ok(name)
}

/// `name` in presentation form with the trailing dot, lowercased for owner and query
/// names; names inside record data keep their case.
/// `name` in presentation form with the trailing dot, as RFC 1035 section 5.1 writes
/// it: `.` and `\` escaped with a backslash, bytes outside printable ASCII as `\DDD`.
/// Written label by label into one buffer: this runs for every query that meets a
/// policy plugin.
fn presentation(name: &Name, lowercase: bool) -> String {
    use std::fmt::Write as _;
    if name.is_root() {
        return ".".to_string();
    }
    let mut text = String::with_capacity(name.len() + 1);
    for label in name.iter() {
        for &byte in label {
            let byte = if lowercase {
                byte.to_ascii_lowercase()
            } else {
                byte
            };
            match byte {
                b'.' | b'\\' => {
                    text.push('\\');
                    text.push(char::from(byte));
                }
                0x21..=0x7e => text.push(char::from(byte)),
                _ => {
                    let _ = write!(text, "\\{byte:03}");
                }
            }
        }
        text.push('.');
    }
    text
}

fn address_to_wit(address: IpAddr) -> wit::IpAddress {
    match address {
        IpAddr::V4(v4) => wit::IpAddress::Ipv4(v4.octets().into()),
        IpAddr::V6(v6) => wit::IpAddress::Ipv6(segments(v6)),
    }
}

fn address_from_wit(address: wit::IpAddress) -> IpAddr {
    match address {
        wit::IpAddress::Ipv4(octets) => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::from(octets))),
        wit::IpAddress::Ipv6(groups) => IpAddr::V6(ipv6(groups)),
    }
}

fn segments(address: Ipv6Addr) -> wit::Ipv6Address {
    let [a, b, c, d, e, f, g, h] = address.segments();
    (a, b, c, d, e, f, g, h)
}

fn ipv6((a, b, c, d, e, f, g, h): wit::Ipv6Address) -> Ipv6Addr {
    Ipv6Addr::new(a, b, c, d, e, f, g, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn presentation_writes_what_hickory_writes() {
        let names = [
            ".",
            "www.Example.COM.",
            "*.wild.example.",
            "_dmarc.x-y.example.",
            "a\\.b.example.",
        ];
        for text in names {
            let name = name(text);
            let mut expected = name.to_ascii();
            if !expected.ends_with('.') {
                expected.push('.');
            }
            assert_eq!(presentation(&name, false), expected, "{text}");
            assert_eq!(
                presentation(&name, true),
                expected.to_ascii_lowercase(),
                "{text}"
            );
        }
        // Bytes outside printable ASCII as \DDD in decimal (RFC 1035 section 5.1;
        // hickory's own `to_ascii` writes them in octal).
        let odd = Name::from_labels([b"\0\xff x\\y.z".as_slice(), b"Example".as_slice()]).unwrap();
        assert_eq!(
            presentation(&odd, true),
            "\\000\\255\\032x\\\\y\\.z.example."
        );
    }

    #[test]
    fn records_round_trip_through_wit() {
        let owner = name("Mail.Example.Internal.");
        let records = vec![
            Record::from_rdata(owner.clone(), 300, RData::A(A::new(10, 0, 0, 7))),
            Record::from_rdata(
                owner.clone(),
                300,
                RData::AAAA(AAAA::from(Ipv6Addr::LOCALHOST)),
            ),
            Record::from_rdata(
                owner.clone(),
                60,
                RData::MX(MX::new(10, name("mx.example."))),
            ),
            Record::from_rdata(
                owner.clone(),
                60,
                RData::SRV(SRV::new(1, 2, 443, name("web.example."))),
            ),
            Record::from_rdata(
                owner.clone(),
                60,
                RData::TXT(TXT::from_bytes(vec![b"v=spf1", b"\xff"])),
            ),
            Record::from_rdata(
                owner.clone(),
                60,
                RData::CNAME(CNAME(name("Target.Example."))),
            ),
            Record::from_rdata(
                owner.clone(),
                60,
                RData::CAA(hickory_proto::rr::rdata::CAA::new_issue(
                    false,
                    Some(name("ca.example.")),
                    vec![],
                )),
            ),
        ];
        let wit_records = records_to_wit(&records).unwrap();
        assert_eq!(wit_records[0].name, "mail.example.internal.");
        assert!(
            matches!(&wit_records[5].data, wit::Rdata::Cname(target) if target == "Target.Example.")
        );
        assert!(matches!(&wit_records[6].data, wit::Rdata::Other(raw) if raw.rtype == 257));

        let back = records_from_wit(wit_records, 100).unwrap();
        let lowercased: Vec<Record> = records
            .into_iter()
            .map(|mut record| {
                record.name = record.name.to_lowercase();
                record
            })
            .collect();
        assert_eq!(back, lowercased);
    }

    #[test]
    fn invalid_records_from_a_plugin_are_refused_with_the_reason() {
        let record = |name: &str, data| wit::ResourceRecord {
            name: name.to_string(),
            ttl: 60,
            data,
        };
        let cases = [
            (
                record("relative.example", wit::Rdata::A((1, 2, 3, 4))),
                "not fully qualified",
            ),
            (
                record("bad..example.", wit::Rdata::A((1, 2, 3, 4))),
                "not a valid DNS name",
            ),
            (
                record("x.example.", wit::Rdata::Txt(vec![vec![b'a'; 256]])),
                "TXT string of 256 bytes",
            ),
            (
                record(
                    "x.example.",
                    wit::Rdata::Other(wit::RawRdata {
                        rtype: 1,
                        data: vec![1, 2, 3],
                    }),
                ),
                "does not decode",
            ),
            (
                record(
                    "x.example.",
                    wit::Rdata::Other(wit::RawRdata {
                        rtype: 41,
                        data: vec![],
                    }),
                ),
                "cannot be stored",
            ),
        ];
        for (record, expected) in cases {
            let err = records_from_wit(vec![record], 10).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
        let many = vec![record("x.example.", wit::Rdata::A((1, 2, 3, 4))); 3];
        assert_eq!(
            records_from_wit(many, 2).unwrap_err(),
            "3 records (at most 2)"
        );
    }

    #[test]
    fn query_names_are_lowercase_and_fully_qualified() {
        let query = Query::new(
            &name("WWW.Example.COM"),
            RecordType::A,
            DNSClass::IN,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            Transport::Udp,
        );
        let wit = query_to_wit(&query);
        assert_eq!(wit.name, "www.example.com.");
        assert_eq!(wit.qtype, 1);
    }
}
