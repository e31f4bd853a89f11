//! Generated master files: an SOA, an NS and A records, one owner each, so a zone of
//! N records is N-2 RRsets of one record (the common shape of a site's host names).

use std::fmt::Write as _;

/// A master file for `origin` holding `records` records in all (SOA and NS
/// included; at least those two): `{prefix}000000 A 10.0.0.0`, `{prefix}000001 A
/// 10.0.0.1`, and so on.
pub fn master_file(origin: &str, records: usize, prefix: &str) -> String {
    let origin = absolute(origin);
    let hosts = records.saturating_sub(2);
    // About 30 bytes a line.
    let mut text = String::with_capacity(128 + hosts * 32);
    // Writing into a String cannot fail.
    let _ = writeln!(text, "$ORIGIN {origin}");
    let _ = writeln!(text, "$TTL 300");
    let _ = writeln!(text, "@ 3600 SOA ns1 hostmaster 1 7200 3600 1209600 300");
    let _ = writeln!(text, "@ 3600 NS ns1");
    for host in 0..hosts {
        let _ = writeln!(
            text,
            "{prefix}{host:06} A 10.{}.{}.{}",
            (host >> 16) & 0xff,
            (host >> 8) & 0xff,
            host & 0xff
        );
    }
    text
}

/// `origin` with its final dot.
pub fn absolute(origin: &str) -> String {
    if origin.ends_with('.') {
        origin.to_string()
    } else {
        format!("{origin}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_of_n_records_has_n_lines_of_records() {
        let text = master_file("bench.test", 5, "h");
        let records: Vec<&str> = text.lines().filter(|line| !line.starts_with('$')).collect();
        assert_eq!(records.len(), 5);
        assert_eq!(records[2], "h000000 A 10.0.0.0");
        assert!(text.starts_with("$ORIGIN bench.test.\n"));
    }
}
