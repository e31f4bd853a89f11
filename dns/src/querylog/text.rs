//! How the log writes what it keeps: names in a compact form and back, rcodes by name.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;

/// The rcodes a log shows by name, as dig prints them.
const RCODE_NAMES: [(ResponseCode, &str); 11] = [
    (ResponseCode::NoError, "NOERROR"),
    (ResponseCode::FormErr, "FORMERR"),
    (ResponseCode::ServFail, "SERVFAIL"),
    (ResponseCode::NXDomain, "NXDOMAIN"),
    (ResponseCode::NotImp, "NOTIMP"),
    (ResponseCode::Refused, "REFUSED"),
    (ResponseCode::YXDomain, "YXDOMAIN"),
    (ResponseCode::NotAuth, "NOTAUTH"),
    (ResponseCode::NotZone, "NOTZONE"),
    (ResponseCode::BADVERS, "BADVERS"),
    (ResponseCode::BADCOOKIE, "BADCOOKIE"),
];

/// `rcode` as dig names it (`NOERROR`, `NXDOMAIN`, ...), or `RCODE<n>`.
pub fn rcode_name(rcode: ResponseCode) -> String {
    RCODE_NAMES
        .iter()
        .find(|(known, _)| *known == rcode)
        .map_or_else(
            || format!("RCODE{}", u16::from(rcode)),
            |(_, name)| (*name).to_owned(),
        )
}

/// An rcode by its name (any case) or number.
pub fn parse_rcode(text: &str) -> Option<ResponseCode> {
    if let Ok(number) = text.parse::<u16>() {
        // 12 bits: the header's 4 and the OPT record's 8 (RFC 6891).
        return (number <= 0xfff)
            .then(|| ResponseCode::from((number >> 4) as u8, (number & 0xf) as u8));
    }
    RCODE_NAMES
        .iter()
        .find(|(_, name)| name.eq_ignore_ascii_case(text))
        .map(|(rcode, _)| *rcode)
}

/// Writes `name`'s labels, lowercase, each behind its length, into `buffer`.
pub(super) fn write_name(buffer: &mut Vec<u8>, name: &Name) {
    buffer.clear();
    for label in name.iter() {
        buffer.push(label.len() as u8);
        buffer.extend(label.iter().map(u8::to_ascii_lowercase));
    }
}

/// The labels [`write_name`] wrote, each followed by a dot, into `out` (reused): what
/// a search for a part of a name compares against, without allocating.
pub(super) fn dotted(mut wire: &[u8], out: &mut Vec<u8>) {
    out.clear();
    while let Some((&len, rest)) = wire.split_first() {
        let len = usize::from(len).min(rest.len());
        out.extend_from_slice(&rest[..len]);
        out.push(b'.');
        wire = &rest[len..];
    }
}

/// The presentation form (`www.example.com.`) of labels [`write_name`] wrote.
pub(super) fn read_name(mut wire: &[u8]) -> String {
    let mut labels = Vec::new();
    while let Some((&len, rest)) = wire.split_first() {
        let len = usize::from(len).min(rest.len());
        labels.push(&rest[..len]);
        wire = &rest[len..];
    }
    Name::from_labels(labels).map_or_else(|_| "?".to_owned(), |name| name.to_ascii())
}
