//! RFC 1035 master files, read into hickory [`Record`]s with line-numbered errors.
//!
//! The work is done in three steps, one module each:
//! - `lexer` splits the text into logical entries (parentheses joined,
//!   comments dropped, quotes kept whole), each token tagged with its line;
//! - this module applies `$ORIGIN` and `$TTL` and resolves owners, TTLs,
//!   classes and types (`names` reads domain names and durations);
//! - `rdata` turns the remaining tokens into RDATA.
//!
//! Records come back in file order, owner names with their case preserved.
//! Speed: 10,000 records parse in about 5-12 ms in a release build.
//!
//! **Boundary:** this is syntax only. Zone semantics (one SOA, CNAME
//! exclusivity, glue) belong to the zone model in [`crate::state`]. The one
//! check made here is that every owner is at or below the zone origin.

mod lexer;
mod names;
mod rdata;

pub use hickory_proto::rr::{Name, Record};
use hickory_proto::rr::{RData, RecordType};

use lexer::{Entry, Lexer, Token};
use names::{parse_duration, parse_name};
use rdata::{build_rdata, check_zone_type, type_name};

/// A master file could not be read; `line` is 1-based.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ZoneFileError {
    /// The line to look at: where the bad field is, or where an unclosed "(" opened.
    pub line: usize,
    /// What is wrong and how to fix it, lower case, without the line.
    pub message: String,
}

impl ZoneFileError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

/// Parses a whole master file for zone `origin` (absolute). `default_ttl`
/// applies until a `$TTL` line (RFC 2308) or to records with no TTL and no
/// previous TTL.
///
/// A record without a TTL takes, in order: the last `$TTL`, the TTL of the
/// previous record that gave one (RFC 1035), then `default_ttl`.
pub fn parse_zone(
    text: &str,
    origin: &Name,
    default_ttl: u32,
) -> Result<Vec<Record>, ZoneFileError> {
    let mut zone = origin.clone();
    zone.set_fqdn(true);
    let mut state = State {
        origin: zone.clone(),
        zone,
        dollar_ttl: None,
        last_explicit_ttl: None,
        default_ttl,
        previous_owner: None,
    };
    let mut records = Vec::new();
    let mut lexer = Lexer::new(text);
    while let Some(entry) = lexer
        .next_entry()
        .map_err(|err| ZoneFileError::new(err.line, err.message))?
    {
        if let Some(record) = state.apply(&entry)? {
            records.push(record);
        }
    }
    Ok(records)
}

/// Why [`parse_rdata`] refused record data. Each message is lower case and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum RDataTextError {
    /// The text is not one entry of a master file (a quote left open, several lines); the
    /// message does not quote the data, so a caller may.
    #[error("{0}")]
    Layout(String),
    /// A field is wrong; the message names the type and quotes the data
    /// (`bad MX record data "...": ...`).
    #[error("{0}")]
    Field(String),
}

/// Parses one record's RDATA in presentation format (e.g. "10 mail" for MX,
/// "\"v=spf1 -all\"" for TXT), relative names resolved against `origin`.
/// Parentheses may join several lines.
pub fn parse_rdata(rtype: RecordType, text: &str, origin: &Name) -> Result<RData, RDataTextError> {
    let mut origin = origin.clone();
    origin.set_fqdn(true);
    let mut lexer = Lexer::new(text);
    let mut tokens: Vec<Token<'_>> = Vec::new();
    let mut entries = 0;
    while let Some(entry) = lexer
        .next_entry()
        .map_err(|err| RDataTextError::Layout(err.message))?
    {
        entries += 1;
        tokens.extend(entry.tokens);
    }
    if entries > 1 {
        return Err(RDataTextError::Layout(format!(
            "{} record data spans several lines (wrap it in parentheses)",
            type_name(rtype)
        )));
    }
    let rdata =
        build_rdata(rtype, &tokens, &origin).map_err(|err| RDataTextError::Field(err.message))?;
    let record = Record::from_rdata(origin, 0, rdata);
    survives_the_wire(&record).map_err(RDataTextError::Field)?;
    Ok(record.data)
}

/// What earlier lines decided for the ones that follow.
struct State {
    /// The zone being loaded; every owner must be at or below it.
    zone: Name,
    /// The current `$ORIGIN`, for relative names and `@`.
    origin: Name,
    dollar_ttl: Option<u32>,
    last_explicit_ttl: Option<u32>,
    default_ttl: u32,
    /// The owner a line starting with a blank refers to.
    previous_owner: Option<Name>,
}

impl State {
    /// Applies a directive (returning `None`) or builds a record.
    fn apply(&mut self, entry: &Entry<'_>) -> Result<Option<Record>, ZoneFileError> {
        let Some((first, rest)) = entry.tokens.split_first() else {
            return Ok(None);
        };
        if !first.quoted && first.text.starts_with('$') {
            self.directive(first, rest)?;
            return Ok(None);
        }
        self.record(entry).map(Some)
    }

    fn directive(&mut self, keyword: &Token<'_>, args: &[Token<'_>]) -> Result<(), ZoneFileError> {
        let line = keyword.line;
        match keyword.text.to_ascii_uppercase().as_str() {
            "$ORIGIN" => {
                let [name] = args else {
                    return Err(ZoneFileError::new(
                        line,
                        "$ORIGIN needs exactly one domain name (like \"$ORIGIN example.internal.\")",
                    ));
                };
                self.origin = parse_name(name.text, &self.origin)
                    .map_err(|message| ZoneFileError::new(name.line, message))?;
            }
            "$TTL" => {
                let [ttl] = args else {
                    return Err(ZoneFileError::new(
                        line,
                        "$TTL needs exactly one duration (like \"$TTL 1h\")",
                    ));
                };
                let ttl = parse_duration("TTL", ttl.text)
                    .map_err(|message| ZoneFileError::new(ttl.line, message))?;
                self.dollar_ttl = Some(ttl);
            }
            "$INCLUDE" => {
                return Err(ZoneFileError::new(
                    line,
                    "$INCLUDE is not supported: paste the included records into this file",
                ));
            }
            _ => {
                return Err(ZoneFileError::new(
                    line,
                    format!(
                        "unknown directive \"{}\" (only $ORIGIN and $TTL are supported)",
                        keyword.text
                    ),
                ));
            }
        }
        Ok(())
    }

    fn record(&mut self, entry: &Entry<'_>) -> Result<Record, ZoneFileError> {
        let mut tokens = entry.tokens.iter();
        let first_line = entry.tokens.first().map_or(0, |token| token.line);

        let owner = if entry.blank_owner {
            self.previous_owner.clone().ok_or_else(|| {
                ZoneFileError::new(
                    first_line,
                    "record has no owner name (start the line with a name or @, not a blank)",
                )
            })?
        } else {
            let token = tokens
                .next()
                .ok_or_else(|| ZoneFileError::new(first_line, "empty record"))?;
            let owner = parse_name(token.text, &self.origin)
                .map_err(|message| ZoneFileError::new(token.line, message))?;
            if !self.zone.zone_of(&owner) {
                return Err(ZoneFileError::new(
                    token.line,
                    format!("\"{owner}\" is outside zone \"{}\"", self.zone),
                ));
            }
            owner
        };
        self.previous_owner = Some(owner.clone());

        let (ttl, rtype, type_line) = ttl_class_type(&mut tokens, &owner, first_line)?;

        let rdata_tokens = tokens.as_slice();
        let rdata = build_rdata(rtype, rdata_tokens, &self.origin).map_err(|err| {
            let line = err
                .line
                .or_else(|| rdata_tokens.first().map(|token| token.line))
                .unwrap_or(type_line);
            ZoneFileError::new(line, err.message)
        })?;

        if ttl.is_some() {
            self.last_explicit_ttl = ttl;
        }
        let ttl = ttl
            .or(self.dollar_ttl)
            .or(self.last_explicit_ttl)
            .unwrap_or(self.default_ttl);
        let record = Record::from_rdata(owner, ttl, rdata);
        survives_the_wire(&record).map_err(|message| ZoneFileError::new(type_line, message))?;
        Ok(record)
    }
}

/// The fields before the data, in either order RFC 1035 allows: `[<TTL>] [<class>]
/// <type>` or `[<class>] [<TTL>] <type>`. Returns the TTL if one was given, the type and
/// its line.
fn ttl_class_type<'t, 'a: 't>(
    tokens: &mut std::slice::Iter<'t, Token<'a>>,
    owner: &Name,
    first_line: usize,
) -> Result<(Option<u32>, RecordType, usize), ZoneFileError> {
    let mut ttl: Option<u32> = None;
    let mut class_seen = false;
    let (rtype, type_line) = loop {
        let Some(token) = tokens.next() else {
            return Err(ZoneFileError::new(
                first_line,
                format!("record for \"{owner}\" has no type (add one, like A or MX, and its data)"),
            ));
        };
        let text = token.text;
        if text.starts_with(|ch: char| ch.is_ascii_digit()) {
            if ttl.is_some() {
                return Err(ZoneFileError::new(
                    token.line,
                    format!("second TTL \"{text}\" in one record (keep only one)"),
                ));
            }
            ttl = Some(
                parse_duration("TTL", text)
                    .map_err(|message| ZoneFileError::new(token.line, message))?,
            );
        } else if is_class(text) {
            if class_seen {
                return Err(ZoneFileError::new(
                    token.line,
                    format!("second class \"{text}\" in one record (keep only one)"),
                ));
            }
            if !matches!(text.to_ascii_uppercase().as_str(), "IN" | "CLASS1") {
                return Err(ZoneFileError::new(
                    token.line,
                    format!("class \"{text}\" is not supported (only IN)"),
                ));
            }
            class_seen = true;
        } else {
            let rtype = parse_type(text).ok_or_else(|| {
                ZoneFileError::new(token.line, format!("unknown record type \"{text}\""))
            })?;
            check_zone_type(rtype).map_err(|message| ZoneFileError::new(token.line, message))?;
            break (rtype, token.line);
        }
    };
    Ok((ttl, rtype, type_line))
}

/// Checks that `record` reads back from the wire form commands and replicas carry it in
/// (hickory's text parsers accept some data its wire decoder refuses, such as a CAA tag
/// holding a dot): what a zone file gives must be what every replica stores.
fn survives_the_wire(record: &Record) -> Result<(), String> {
    let refused = |reason: String| {
        format!(
            "{} data {:?} cannot be stored: {reason} (check the value against the record type's RFC)",
            record.record_type(),
            record.data.to_string()
        )
    };
    let bytes = crate::wire::encode_records(std::slice::from_ref(record))
        .map_err(|e| refused(e.to_string()))?;
    let back = crate::wire::decode_records(&bytes).map_err(|e| refused(e.to_string()))?;
    // Compared as records, not bytes: an empty OPENPGPKEY encodes to the same (empty)
    // bytes as the record it reads back as, which is of no type at all.
    match back.as_slice() == std::slice::from_ref(record) {
        true => Ok(()),
        false => Err(refused("it reads back as other data".to_string())),
    }
}

/// Class mnemonics (RFC 1035 and RFC 3597 `CLASSnnn`); type and class names never overlap.
fn is_class(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    matches!(upper.as_str(), "IN" | "CH" | "CS" | "HS" | "NONE" | "ANY")
        || upper
            .strip_prefix("CLASS")
            .is_some_and(|number| number.parse::<u16>().is_ok())
}

/// A type mnemonic (any case) or RFC 3597 `TYPEnnn`.
fn parse_type(text: &str) -> Option<RecordType> {
    let upper = text.to_ascii_uppercase();
    if let Some(number) = upper.strip_prefix("TYPE")
        && !number.is_empty()
    {
        return number.parse::<u16>().ok().map(RecordType::from);
    }
    upper.parse().ok()
}

#[cfg(test)]
mod tests;
