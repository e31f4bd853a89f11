//! An error with its causes on one line, for where an error reaches a person: the last line
//! of a command that failed, a log line, an admin API answer.
//!
//! Our error types keep their cause as a `#[source]`, so [`Error::source`] walks it; most of
//! them also name the cause in their own message. [`Report`] writes the message, then each
//! cause its message does not already hold, joined with ": ".

use std::error::Error;
use std::fmt;

/// Displays an error followed by the causes `source()` gives that its text does not already
/// hold: `cannot open /var/lib/outpost/outpost.redb: Permission denied (os error 13)`.
pub struct Report<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            if !shown.contains(&text) {
                shown.push_str(": ");
                shown.push_str(&text);
            }
            cause = error.source();
        }
        f.write_str(&shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the zone")]
    struct Quiet(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the zone: {0}")]
    struct Named(#[source] std::io::Error);

    #[test]
    fn every_cause_is_written_once() {
        let io = || std::io::Error::other("disk on fire");
        assert_eq!(
            Report(&Quiet(io())).to_string(),
            "cannot read the zone: disk on fire"
        );
        assert_eq!(
            Report(&Named(io())).to_string(),
            "cannot read the zone: disk on fire"
        );
    }
}
