//! Plugin configuration as text: one entry per line, blank lines and `#` comments
//! skipped, every error naming its line.

/// The meaningful lines of `config`, trimmed, with their 1-based line numbers.
/// Fails if the configuration is not UTF-8.
pub fn lines(config: &[u8]) -> Result<impl Iterator<Item = (usize, &str)>, String> {
    let text = std::str::from_utf8(config).map_err(|e| {
        format!(
            "the configuration is not UTF-8 text (first bad byte at offset {})",
            e.valid_up_to()
        )
    })?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#')))
}

/// Splits `key=value` (spaces around `=` allowed); `None` if the line has no `=`.
pub fn key_value(line: &str) -> Option<(&str, &str)> {
    line.split_once('=')
        .map(|(key, value)| (key.trim(), value.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_and_comments_are_skipped_and_lines_keep_their_numbers() {
        let config = b"# ads\n\nads.example\n  tracker.example  \n";
        let lines: Vec<_> = lines(config).unwrap().collect();
        assert_eq!(lines, [(3, "ads.example"), (4, "tracker.example")]);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let err = lines(b"ok\n\xff").err().unwrap();
        assert!(err.contains("offset 3"), "{err}");
    }

    #[test]
    fn key_value_splits_on_the_first_equals_sign() {
        assert_eq!(
            key_value("sinkhole = 0.0.0.0"),
            Some(("sinkhole", "0.0.0.0"))
        );
        assert_eq!(key_value("ads.example"), None);
    }
}
