//! Record data (RDATA) in presentation format.
//!
//! The everyday types (A, AAAA, NS, CNAME, PTR, ANAME, MX, SRV, SOA, TXT,
//! NAPTR) are built here, so every field gets its own message and names use
//! our RFC 1035 name parser. The rest go to hickory's parsers: each token is
//! unescaped and re-quoted, and the result is parsed as one line by
//! `RData::try_from_str`. SVCB and HTTPS also go to hickory, but their target
//! name is parsed here, because hickory cannot resolve relative names there.
//! RFC 3597 generic data (`\# 4 0a000001`) works for every type.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;

use hickory_proto::rr::rdata::{A, AAAA, ANAME, CNAME, HTTPS, MX, NAPTR, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};

use super::lexer::{Token, decode_escapes};
use super::names::{parse_duration, parse_name};

/// RFC 1035 section 3.3: a character string is at most 255 octets.
const MAX_CHARACTER_STRING_BYTES: usize = 255;
/// Longest RDATA echoed back in an error message, in characters.
const MAX_SHOWN_CHARS: usize = 80;

/// Why RDATA was refused.
#[derive(Debug)]
pub(super) struct RDataError {
    /// The line of the field to blame, when there is one.
    pub(super) line: Option<usize>,
    /// The full message, starting `bad MX record data "...": `.
    pub(super) message: String,
}

/// A problem with one field (or with the field count, when `line` is `None`).
struct Fault {
    line: Option<usize>,
    reason: String,
}

impl Fault {
    fn at(token: &Token<'_>, reason: String) -> Self {
        Self {
            line: Some(token.line),
            reason,
        }
    }

    fn whole(reason: String) -> Self {
        Self { line: None, reason }
    }
}

/// The mnemonic of a type, or `TYPEnnn` (RFC 3597) for types hickory does not name.
pub(super) fn type_name(rtype: RecordType) -> String {
    match rtype {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        known => known.to_string(),
    }
}

/// Refuses types that only exist in queries or transport (they hold no zone data).
pub(super) fn check_zone_type(rtype: RecordType) -> Result<(), String> {
    match rtype {
        RecordType::ANY
        | RecordType::AXFR
        | RecordType::IXFR
        | RecordType::OPT
        | RecordType::TSIG
        | RecordType::ZERO => Err(format!(
            "record type \"{}\" cannot appear in a zone file (it only exists in queries and transfers)",
            type_name(rtype)
        )),
        _ => Ok(()),
    }
}

/// Builds the RDATA of a `rtype` record from its tokens.
pub(super) fn build_rdata(
    rtype: RecordType,
    tokens: &[Token<'_>],
    origin: &Name,
) -> Result<RData, RDataError> {
    build(rtype, tokens, origin).map_err(|fault| RDataError {
        line: fault.line,
        message: format!(
            "bad {} record data \"{}\": {}",
            type_name(rtype),
            shown(tokens),
            fault.reason
        ),
    })
}

fn build(rtype: RecordType, tokens: &[Token<'_>], origin: &Name) -> Result<RData, Fault> {
    check_zone_type(rtype).map_err(Fault::whole)?;
    if let Some((first, rest)) = tokens.split_first()
        && !first.quoted
        && first.text == "\\#"
    {
        return generic(rtype, rest);
    }
    let rdata = match rtype {
        RecordType::A => {
            let [address] = fields(tokens, ["address"])?;
            let address = Ipv4Addr::from_str(address.text).map_err(|_| {
                Fault::at(
                    address,
                    "not an IPv4 address (use four numbers 0-255 like 192.0.2.1)".to_string(),
                )
            })?;
            RData::A(A(address))
        }
        RecordType::AAAA => {
            let [address] = fields(tokens, ["address"])?;
            let address = Ipv6Addr::from_str(address.text).map_err(|_| {
                Fault::at(
                    address,
                    "not an IPv6 address (use a form like 2001:db8::1)".to_string(),
                )
            })?;
            RData::AAAA(AAAA(address))
        }
        RecordType::NS => RData::NS(NS(single_name(tokens, origin)?)),
        RecordType::CNAME => RData::CNAME(CNAME(single_name(tokens, origin)?)),
        RecordType::PTR => RData::PTR(PTR(single_name(tokens, origin)?)),
        RecordType::ANAME => RData::ANAME(ANAME(single_name(tokens, origin)?)),
        RecordType::MX => {
            let [preference, exchange] = fields(tokens, ["preference", "exchange"])?;
            RData::MX(MX::new(
                number(preference, "preference")?,
                name(exchange, origin)?,
            ))
        }
        RecordType::SRV => {
            let [priority, weight, port, target] =
                fields(tokens, ["priority", "weight", "port", "target"])?;
            RData::SRV(SRV::new(
                number(priority, "priority")?,
                number(weight, "weight")?,
                number(port, "port")?,
                name(target, origin)?,
            ))
        }
        RecordType::SOA => soa(tokens, origin)?,
        RecordType::TXT => txt(tokens)?,
        RecordType::NAPTR => naptr(tokens, origin)?,
        RecordType::SVCB | RecordType::HTTPS => svcb(rtype, tokens, origin)?,
        RecordType::CAA
        | RecordType::CERT
        | RecordType::CSYNC
        | RecordType::HINFO
        | RecordType::OPENPGPKEY
        | RecordType::SMIMEA
        | RecordType::SSHFP
        | RecordType::TLSA => delegate(rtype, tokens)?,
        _ => {
            return Err(Fault::whole(format!(
                "{} has no text format here (write the data in RFC 3597 form: \\# <length> <hex>)",
                type_name(rtype)
            )));
        }
    };
    Ok(rdata)
}

/// Checks the field count and hands back the fields by position.
fn fields<'t, 'a, const N: usize>(
    tokens: &'t [Token<'a>],
    names: [&str; N],
) -> Result<&'t [Token<'a>; N], Fault> {
    <&[Token<'a>; N]>::try_from(tokens).map_err(|_| {
        let plural = if N == 1 { "" } else { "s" };
        Fault::whole(format!(
            "expected {N} field{plural} ({}), found {}",
            names.join(" "),
            tokens.len()
        ))
    })
}

fn single_name(tokens: &[Token<'_>], origin: &Name) -> Result<Name, Fault> {
    let [target] = fields(tokens, ["domain name"])?;
    name(target, origin)
}

fn name(token: &Token<'_>, origin: &Name) -> Result<Name, Fault> {
    parse_name(token.text, origin).map_err(|reason| Fault::at(token, reason))
}

fn number<T: FromStr + Unsigned>(token: &Token<'_>, what: &str) -> Result<T, Fault> {
    token.text.parse().map_err(|_| {
        Fault::at(
            token,
            format!(
                "{what} \"{}\" is not a number from 0 to {}",
                token.text,
                T::MAX_TEXT
            ),
        )
    })
}

/// The unsigned field types, with their upper bound spelled out for messages.
trait Unsigned {
    const MAX_TEXT: &'static str;
}

impl Unsigned for u16 {
    const MAX_TEXT: &'static str = "65535";
}

impl Unsigned for u32 {
    const MAX_TEXT: &'static str = "4294967295";
}

fn duration(token: &Token<'_>, what: &str) -> Result<u32, Fault> {
    parse_duration(what, token.text).map_err(|reason| Fault::at(token, reason))
}

fn soa(tokens: &[Token<'_>], origin: &Name) -> Result<RData, Fault> {
    let [mname, rname, serial, refresh, retry, expire, minimum] = fields(
        tokens,
        [
            "mname", "rname", "serial", "refresh", "retry", "expire", "minimum",
        ],
    )?;
    // parse_duration caps values at 2^31 - 1, so the i32 conversions cannot fail.
    let timer =
        |token, what| duration(token, what).map(|secs| i32::try_from(secs).unwrap_or(i32::MAX));
    Ok(RData::SOA(SOA::new(
        name(mname, origin)?,
        name(rname, origin)?,
        number(serial, "serial")?,
        timer(refresh, "refresh")?,
        timer(retry, "retry")?,
        timer(expire, "expire")?,
        duration(minimum, "minimum")?,
    )))
}

/// Unescapes a character string and checks its length.
fn character_string(token: &Token<'_>) -> Result<Vec<u8>, Fault> {
    let bytes = decode_escapes(token.text).map_err(|reason| Fault::at(token, reason))?;
    if bytes.len() > MAX_CHARACTER_STRING_BYTES {
        return Err(Fault::at(
            token,
            format!(
                "a string is {} bytes long (the limit is {MAX_CHARACTER_STRING_BYTES}: split it into several quoted strings)",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

fn txt(tokens: &[Token<'_>]) -> Result<RData, Fault> {
    if tokens.is_empty() {
        return Err(Fault::whole(
            "expected at least one string (like \"v=spf1 -all\")".to_string(),
        ));
    }
    let strings = tokens
        .iter()
        .map(character_string)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RData::TXT(TXT::from_bytes(
        strings.iter().map(Vec::as_slice).collect(),
    )))
}

fn naptr(tokens: &[Token<'_>], origin: &Name) -> Result<RData, Fault> {
    let [order, preference, flags, services, regexp, replacement] = fields(
        tokens,
        [
            "order",
            "preference",
            "flags",
            "services",
            "regexp",
            "replacement",
        ],
    )?;
    let flags_token = flags;
    let flags = character_string(flags_token)?;
    if !flags.iter().all(u8::is_ascii_alphanumeric) {
        return Err(Fault::at(
            flags_token,
            format!(
                "flags \"{}\" may only hold letters and digits (like \"S\" or \"U\")",
                flags_token.text
            ),
        ));
    }
    Ok(RData::NAPTR(NAPTR::new(
        number(order, "order")?,
        number(preference, "preference")?,
        flags.into_boxed_slice(),
        character_string(services)?.into_boxed_slice(),
        character_string(regexp)?.into_boxed_slice(),
        name(replacement, origin)?,
    )))
}

/// SVCB and HTTPS: hickory parses the parameters; the target is ours so it
/// can be relative to the origin.
fn svcb(rtype: RecordType, tokens: &[Token<'_>], origin: &Name) -> Result<RData, Fault> {
    let Some((priority, [target, params @ ..])) = tokens.split_first() else {
        return Err(Fault::whole(
            "expected a priority, a target and parameters (like 1 . alpn=h2)".to_string(),
        ));
    };
    number::<u16>(priority, "priority")?;
    let target_name = name(target, origin)?;
    // Hickory reads the target without an origin, so it gets the root as a
    // stand-in and the real target is put in afterwards.
    let stand_in = Token {
        text: ".",
        ..*target
    };
    let mut rdata = match delegate(rtype, &[&[*priority, stand_in][..], params].concat())? {
        RData::SVCB(svcb) | RData::HTTPS(HTTPS(svcb)) => svcb,
        other => {
            return Err(Fault::whole(format!(
                "parsed as {} instead (please report this)",
                other.record_type()
            )));
        }
    };
    rdata.target_name = target_name;
    Ok(match rtype {
        RecordType::HTTPS => RData::HTTPS(HTTPS(rdata)),
        _ => RData::SVCB(rdata),
    })
}

/// Parses with hickory: every token is unescaped, then re-quoted so that
/// hickory's lexer hands the parser exactly that text.
fn delegate(rtype: RecordType, tokens: &[Token<'_>]) -> Result<RData, Fault> {
    let mut line = String::new();
    for token in tokens {
        let bytes = decode_escapes(token.text).map_err(|reason| Fault::at(token, reason))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Fault::at(
                token,
                format!(
                    "\"{}\" holds bytes that are not UTF-8 (only TXT data may)",
                    token.text
                ),
            )
        })?;
        line.push('"');
        for ch in text.chars() {
            if ch == '"' || ch == '\\' {
                line.push('\\');
            }
            line.push(ch);
        }
        line.push_str("\" ");
    }
    // Hickory's text parsers are third-party code reading untrusted input; a
    // panic in one of them must become an error, not take the process down.
    let parsed = catch_unwind(AssertUnwindSafe(|| RData::try_from_str(rtype, &line)))
        .map_err(|_| Fault::whole("hickory's parser crashed on this data".to_string()))?;
    parsed.map_err(|err| Fault::whole(err.to_string()))
}

/// RFC 3597 generic data: `\# <length> <hex>...`, decoded as wire format.
fn generic(rtype: RecordType, tokens: &[Token<'_>]) -> Result<RData, Fault> {
    let Some((length_token, hex_tokens)) = tokens.split_first() else {
        return Err(Fault::whole(
            "\\# needs a length and hex data (like \\# 4 0a000001)".to_string(),
        ));
    };
    let length: u16 = number(length_token, "length")?;
    let mut bytes = Vec::with_capacity(usize::from(length));
    for token in hex_tokens {
        let digits = token.text.as_bytes();
        if digits.len() % 2 != 0 {
            return Err(Fault::at(
                token,
                format!("hex \"{}\" has an odd number of digits", token.text),
            ));
        }
        for pair in digits.chunks_exact(2) {
            let byte = std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| Fault::at(token, format!("\"{}\" is not hex data", token.text)))?;
            bytes.push(byte);
        }
    }
    if bytes.len() != usize::from(length) {
        return Err(Fault::whole(format!(
            "\\# says {length} bytes but the hex data holds {}",
            bytes.len()
        )));
    }
    let parsed = catch_unwind(|| {
        let mut decoder = BinDecoder::new(&bytes);
        RData::read(&mut decoder, rtype, Restrict::new(length))
    })
    .map_err(|_| Fault::whole("hickory's decoder crashed on this data".to_string()))?;
    parsed.map_err(|err| Fault::whole(format!("not valid {} wire data: {err}", type_name(rtype))))
}

/// The RDATA as written, shortened for error messages.
fn shown(tokens: &[Token<'_>]) -> String {
    let joined = tokens
        .iter()
        .map(|token| token.display())
        .collect::<Vec<_>>()
        .join(" ");
    if joined.chars().count() <= MAX_SHOWN_CHARS {
        return joined;
    }
    let mut short: String = joined.chars().take(MAX_SHOWN_CHARS).collect();
    short.push_str("...");
    short
}
