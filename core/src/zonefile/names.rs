//! Domain names and durations as written in master files.
//!
//! Names are parsed here rather than by `Name::parse`, which reads `\DDD` as
//! octal and runs labels through IDNA (lower-casing them); RFC 1035 says
//! `\DDD` is decimal and labels are plain octets.

use hickory_proto::rr::Name;

use super::lexer::decimal_escape;

/// RFC 1035 section 2.3.4: labels are 63 octets or less.
const MAX_LABEL_BYTES: usize = 63;
/// RFC 1035 section 2.3.4: names are 255 octets or less in wire form.
const MAX_NAME_BYTES: usize = 255;
/// RFC 2181 section 8: TTLs (and SOA timers, stored as i32) stop at 2^31 - 1.
const MAX_DURATION_SECONDS: u64 = 2_147_483_647;

/// Parses `text` as a domain name. `@` is `origin`; a name without a final
/// dot is relative to `origin`.
pub(super) fn parse_name(text: &str, origin: &Name) -> Result<Name, String> {
    match text {
        "@" => return Ok(origin.clone()),
        "." => return Ok(Name::root()),
        "" => return Err("domain name is empty (use @ for the origin)".to_string()),
        _ => {}
    }
    let (labels, absolute) = split_labels(text)?;
    if let Some(long) = labels.iter().find(|label| label.len() > MAX_LABEL_BYTES) {
        return Err(format!(
            "name \"{text}\" has a label of {} bytes (the limit is {MAX_LABEL_BYTES})",
            long.len()
        ));
    }

    // Wire form: a length byte per label, the label, and the final root byte.
    let own_bytes: usize = labels.iter().map(|label| label.len() + 1).sum();
    let origin_bytes: usize = origin.iter().map(|label| label.len() + 1).sum();
    let wire_bytes = own_bytes + 1 + if absolute { 0 } else { origin_bytes };
    if wire_bytes > MAX_NAME_BYTES {
        let with_origin = if absolute {
            ""
        } else {
            " once the origin is appended"
        };
        return Err(format!(
            "name \"{text}\" is {wire_bytes} bytes long{with_origin} (the limit is {MAX_NAME_BYTES})"
        ));
    }

    let mut name = Name::new();
    for label in &labels {
        name = name
            .append_label(label.as_slice())
            .map_err(|err| format!("name \"{text}\" is not valid: {err}"))?;
    }
    if absolute {
        name.set_fqdn(true);
        Ok(name)
    } else {
        name.append_domain(origin)
            .map_err(|err| format!("name \"{text}\" is not valid: {err}"))
    }
}

/// Splits a name into unescaped labels; the flag says whether it ended in an unescaped dot.
fn split_labels(text: &str) -> Result<(Vec<Vec<u8>>, bool), String> {
    let bytes = text.as_bytes();
    let mut labels = Vec::new();
    let mut label = Vec::new();
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'.' => {
                if label.is_empty() {
                    return Err(format!(
                        "name \"{text}\" has an empty label (remove the extra dot)"
                    ));
                }
                labels.push(std::mem::take(&mut label));
                index += 1;
            }
            b'\\' => match bytes.get(index + 1) {
                None => {
                    return Err(format!(
                        "name \"{text}\" ends with a lone backslash (write \\\\ for a backslash)"
                    ));
                }
                Some(digit) if digit.is_ascii_digit() => {
                    let (value, used) = decimal_escape(bytes, index).ok_or_else(|| {
                        format!("escape in name \"{text}\" needs three digits (like \\046)")
                    })?;
                    let value = u8::try_from(value)
                        .map_err(|_| format!("escape \\{value} in name \"{text}\" is above 255"))?;
                    label.push(value);
                    index += used;
                }
                Some(&escaped) => {
                    label.push(escaped);
                    index += 2;
                }
            },
            _ => {
                label.push(byte);
                index += 1;
            }
        }
    }
    let absolute = label.is_empty();
    if !absolute {
        labels.push(label);
    }
    Ok((labels, absolute))
}

/// Parses a TTL or SOA timer: plain seconds, or BIND units such as `1h30m`,
/// `1d` or `2w` (s, m, h, d, w, any case). `what` names the field in errors.
pub(super) fn parse_duration(what: &str, text: &str) -> Result<u32, String> {
    let not_duration =
        || format!("{what} \"{text}\" is not a duration (use seconds or units like 1h30m)");
    let too_long = || {
        format!(
            "{what} \"{text}\" is longer than {MAX_DURATION_SECONDS} seconds (about 68 years; use a smaller value)"
        )
    };

    if text.is_empty() {
        return Err(not_duration());
    }
    if text.bytes().all(|byte| byte.is_ascii_digit()) {
        let seconds: u64 = text.parse().map_err(|_| too_long())?;
        return checked_seconds(seconds).ok_or_else(too_long);
    }

    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for byte in text.bytes() {
        if byte.is_ascii_digit() {
            let digit = u64::from(byte - b'0');
            let value = number.unwrap_or(0).saturating_mul(10).saturating_add(digit);
            number = Some(value);
            continue;
        }
        let unit: u64 = match byte.to_ascii_lowercase() {
            b's' => 1,
            b'm' => 60,
            b'h' => 3_600,
            b'd' => 86_400,
            b'w' => 604_800,
            _ => return Err(not_duration()),
        };
        let value = number.take().ok_or_else(not_duration)?;
        total = total.saturating_add(value.saturating_mul(unit));
    }
    if number.is_some() {
        // A trailing bare number such as "1h30" is ambiguous: refuse it.
        return Err(not_duration());
    }
    checked_seconds(total).ok_or_else(too_long)
}

fn checked_seconds(seconds: u64) -> Option<u32> {
    if seconds > MAX_DURATION_SECONDS {
        return None;
    }
    u32::try_from(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Name {
        Name::from_ascii("example.internal.").expect("a valid origin")
    }

    #[test]
    fn parses_names() {
        let cases = [
            ("@", "example.internal."),
            (".", "."),
            ("www", "www.example.internal."),
            ("*.dev", "*.dev.example.internal."),
            ("Mail.Other.Org.", "Mail.Other.Org."),
            ("_sip._tcp", "_sip._tcp.example.internal."),
        ];
        for (text, expected) in cases {
            let name = parse_name(text, &origin()).expect(text);
            assert_eq!(name.to_string(), expected, "{text}");
            assert!(name.is_fqdn(), "{text}");
        }
    }

    #[test]
    fn escapes_in_names_are_decimal() {
        let name = parse_name("a\\.b.c\\046d.", &origin()).expect("the name is valid");
        let labels: Vec<&[u8]> = name.iter().collect();
        assert_eq!(labels, vec![&b"a.b"[..], &b"c.d"[..]]);
        let spaced = parse_name("two\\ words", &origin()).expect("the name is valid");
        assert_eq!(spaced.iter().next(), Some(&b"two words"[..]));
    }

    #[test]
    fn refuses_bad_names() {
        let long_label = "a".repeat(64);
        let long_name = ["a".repeat(63).as_str(); 4].join(".") + ".";
        let cases = [
            (
                long_label.as_str(),
                "has a label of 64 bytes (the limit is 63)",
            ),
            (long_name.as_str(), "is 257 bytes long (the limit is 255)"),
            ("a..b", "has an empty label"),
            (".a", "has an empty label"),
            ("a\\", "lone backslash"),
            ("a\\300", "above 255"),
            ("a\\1", "three digits"),
            ("", "empty"),
        ];
        for (text, message) in cases {
            let err = parse_name(text, &origin()).expect_err(text);
            assert!(err.contains(message), "{text}: {err}");
        }
        let relative = ["a".repeat(63).as_str(); 4].join(".");
        let err = parse_name(&relative, &origin()).expect_err("too long");
        assert!(err.contains("once the origin is appended"), "{err}");
    }

    #[test]
    fn parses_durations() {
        let cases = [
            ("0", Ok(0)),
            ("3600", Ok(3600)),
            ("1h30m", Ok(5400)),
            ("1D", Ok(86_400)),
            ("2w", Ok(1_209_600)),
            ("1w2d3h4m5s", Ok(788_645)),
            ("2147483647", Ok(2_147_483_647)),
            ("2147483648", Err("longer than")),
            ("99999999999999999999999", Err("longer than")),
            ("4000w", Err("longer than")),
            ("1h2x", Err("is not a duration")),
            ("1h30", Err("is not a duration")),
            ("h", Err("is not a duration")),
            ("-1", Err("is not a duration")),
            ("", Err("is not a duration")),
        ];
        for (text, expected) in cases {
            match (parse_duration("TTL", text), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }
}
