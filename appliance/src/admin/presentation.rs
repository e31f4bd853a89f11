//! Records in presentation format: the `data` of `GET /v1/zones/{origin}/records` and
//! the master file of `GET /v1/zones/{origin}/export`.
//!
//! hickory's `Display` for record data is meant for people, not for parsers (TXT
//! strings come out unquoted, invalid UTF-8 is replaced), so the everyday types are
//! written here, every name absolute and escaped the RFC 1035 way.
//!
//! **Invariant:** `parse_zone(export(zone), origin, _)` returns the zone's records. For
//! types written by hickory, the text is parsed back before it is used; when it does
//! not give the same data, the record is written in RFC 3597 form (`\# <len> <hex>`),
//! which reads back for every type.

use std::fmt::Write as _;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use outpost_core::state::Zone;
use outpost_core::zonefile::parse_rdata;

/// The zone as a master file: `$ORIGIN`, then one record per line in canonical order
/// (owner, then type), the SOA first.
pub fn export_zone(zone: &Zone) -> String {
    let mut out = String::with_capacity(zone.record_count() * 64 + 64);
    let origin = name_text(zone.origin());
    let _ = writeln!(out, "$ORIGIN {origin}");
    let soa_first = zone
        .rrsets()
        .filter(|rrset| rrset.record_type() == RecordType::SOA)
        .chain(
            zone.rrsets()
                .filter(|rrset| rrset.record_type() != RecordType::SOA),
        );
    for rrset in soa_first {
        for record in rrset.records() {
            write_record(&mut out, &record, zone.origin());
        }
    }
    out
}

/// Appends one record as a master-file line, newline included.
fn write_record(out: &mut String, record: &Record, origin: &Name) {
    let _ = writeln!(
        out,
        "{} {} IN {} {}",
        name_text(&record.name),
        record.ttl,
        type_text(record.record_type()),
        rdata_text(&record.data, origin)
    );
}

/// The mnemonic of a type, or `TYPEnnn` (RFC 3597) for types hickory does not name.
pub fn type_text(rtype: RecordType) -> String {
    match rtype {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        known => known.to_string(),
    }
}

/// Record data in presentation format, readable by `parse_rdata` against `origin`.
pub fn rdata_text(rdata: &RData, origin: &Name) -> String {
    match rdata {
        RData::A(address) => address.0.to_string(),
        RData::AAAA(address) => address.0.to_string(),
        RData::NS(target) => name_text(&target.0),
        RData::CNAME(target) => name_text(&target.0),
        RData::PTR(target) => name_text(&target.0),
        RData::ANAME(target) => name_text(&target.0),
        RData::MX(mx) => format!("{} {}", mx.preference, name_text(&mx.exchange)),
        RData::SRV(srv) => format!(
            "{} {} {} {}",
            srv.priority,
            srv.weight,
            srv.port,
            name_text(&srv.target)
        ),
        RData::SOA(soa) => format!(
            "{} {} {} {} {} {} {}",
            name_text(&soa.mname),
            name_text(&soa.rname),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        RData::TXT(txt) => {
            let strings: Vec<String> = txt.txt_data.iter().map(|s| quoted(s)).collect();
            strings.join(" ")
        }
        other => checked_display(other, origin),
    }
}

/// hickory's text for `rdata` if it parses back to the same data, else RFC 3597 form.
fn checked_display(rdata: &RData, origin: &Name) -> String {
    let rtype = rdata.record_type();
    let mut text = String::new();
    if write!(text, "{rdata}").is_ok()
        && !text.contains('\n')
        && parse_rdata(rtype, &text, origin).is_ok_and(|parsed| parsed == *rdata)
    {
        return text;
    }
    generic(rdata)
}

/// RFC 3597 generic form: `\# <length> <hex>`.
fn generic(rdata: &RData) -> String {
    // Records in the model were decoded from wire bytes, so they encode again.
    let bytes = rdata.to_bytes().unwrap_or_default();
    let mut text = format!("\\# {}", bytes.len());
    if !bytes.is_empty() {
        text.push(' ');
        for byte in bytes {
            let _ = write!(text, "{byte:02x}");
        }
    }
    text
}

/// An absolute name with every byte outside `[a-z0-9-_*]` (and friends that are safe
/// in master files) written as `\DDD`, the decimal escape RFC 1035 defines.
pub fn name_text(name: &Name) -> String {
    if name.is_root() {
        return ".".to_string();
    }
    let mut text = String::with_capacity(name.len() + 1);
    for label in name.iter() {
        for &byte in label {
            if byte.is_ascii_alphanumeric()
                || matches!(byte, b'-' | b'_' | b'*' | b'/' | b'+' | b'=')
            {
                text.push(char::from(byte));
            } else {
                let _ = write!(text, "\\{byte:03}");
            }
        }
        text.push('.');
    }
    text
}

/// A character string in double quotes, `"` and `\` escaped, bytes outside printable
/// ASCII as `\DDD`.
fn quoted(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() + 2);
    text.push('"');
    for &byte in bytes {
        match byte {
            b'"' | b'\\' => {
                text.push('\\');
                text.push(char::from(byte));
            }
            0x20..=0x7e => text.push(char::from(byte)),
            _ => {
                let _ = write!(text, "\\{byte:03}");
            }
        }
    }
    text.push('"');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_core::state::{Command, ReplicatedState};
    use outpost_core::wire::encode_records;
    use outpost_core::zonefile::parse_zone;

    const ZONE: &str = r#"
$ORIGIN site.internal.
$TTL 3600
@           IN SOA ns1 hostmaster 7 7200 3600 1209600 300
@           IN NS  ns1
ns1         IN A   10.0.0.1
printer  300 IN A   10.0.0.7
printer     IN AAAA 2001:db8::7
www         IN CNAME printer
*.dev       IN A   10.0.9.9
mail        IN MX  10 mx.elsewhere.example.
_ipp._tcp   IN SRV 0 5 631 printer
notes       IN TXT "v=spf1 -all" "quote \" and backslash \\ and \255 byte" ""
odd\032name IN A   10.0.0.8
caa         IN CAA 0 issue "letsencrypt.org"
sshfp       IN SSHFP 1 1 dd465c09cfa51fb45020cc83316fff21b9ec74ac
hinfo       IN HINFO "PC" "Linux"
weird       IN TYPE65000 \# 3 abcdef
"#;

    fn zone() -> ReplicatedState {
        let origin = Name::from_ascii("site.internal.").unwrap();
        let records = parse_zone(ZONE, &origin, 3600).unwrap();
        let mut zones = ReplicatedState::default();
        zones
            .apply(&Command::CreateZone {
                origin: "site.internal.".into(),
                records: encode_records(&records).unwrap(),
            })
            .unwrap();
        zones
    }

    #[test]
    fn export_reads_back_to_the_same_records() {
        let zones = zone();
        let origin = Name::from_ascii("site.internal.").unwrap();
        let zone = zones.get(&origin).unwrap();
        let text = export_zone(zone);
        let parsed = parse_zone(&text, &origin, 1).unwrap();
        let records: Vec<Record> = zone.records().collect();
        let expected: Vec<&Record> = records.iter().collect();
        let mut got: Vec<&Record> = parsed.iter().collect();
        assert_eq!(got.len(), expected.len(), "{text}");
        got.sort_by(|a, b| {
            (&a.name, a.record_type(), &a.data).cmp(&(&b.name, b.record_type(), &b.data))
        });
        let mut expected = expected;
        expected.sort_by(|a, b| {
            (&a.name, a.record_type(), &a.data).cmp(&(&b.name, b.record_type(), &b.data))
        });
        for (got, expected) in got.iter().zip(&expected) {
            assert_eq!(got.name, expected.name, "{text}");
            assert_eq!(got.ttl, expected.ttl, "{text}");
            assert_eq!(got.data, expected.data, "{text}");
        }
    }

    #[test]
    fn export_starts_with_origin_then_soa() {
        let zones = zone();
        let zone = zones
            .get(&Name::from_ascii("site.internal.").unwrap())
            .unwrap();
        let text = export_zone(zone);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("$ORIGIN site.internal."));
        assert_eq!(
            lines.next(),
            Some(
                "site.internal. 3600 IN SOA ns1.site.internal. hostmaster.site.internal. 7 7200 3600 1209600 300"
            )
        );
        assert!(
            text.contains("printer.site.internal. 300 IN A 10.0.0.7\n"),
            "{text}"
        );
        assert!(
            text.contains("odd\\032name.site.internal. 3600 IN A 10.0.0.8\n"),
            "{text}"
        );
        assert!(
            text.contains("weird.site.internal. 3600 IN TYPE65000 \\# 3 abcdef\n"),
            "{text}"
        );
    }

    #[test]
    fn data_is_in_presentation_form() {
        let origin = Name::from_ascii("site.internal.").unwrap();
        let txt = parse_rdata(RecordType::TXT, r#""a b" "c\"d""#, &origin).unwrap();
        assert_eq!(rdata_text(&txt, &origin), r#""a b" "c\"d""#);
        let mx = parse_rdata(RecordType::MX, "10 mail", &origin).unwrap();
        assert_eq!(rdata_text(&mx, &origin), "10 mail.site.internal.");
        assert_eq!(type_text(RecordType::Unknown(65000)), "TYPE65000");
    }
}
