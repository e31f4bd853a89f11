//! How a session ended, from the client's side: the close-code table of
//! `docs/sync-protocol.md` turned into what the connector does next.

use outpost_core::sync::close;

/// Why a session ended, and so what the connector does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client is shutting down.
    Shutdown,
    /// Try again after backoff, with the next appliance (network trouble, 1000, 1001,
    /// 4001, 4005, a malformed frame).
    Retry(String),
    /// Reconnect at once and resume from the stored cursor (4004, or the scope grew).
    ReconnectNow(String),
    /// 4002: this appliance speaks no protocol version this client does; skip it.
    Incompatible(String),
    /// 4003: the token is unknown or revoked; stop until the user gives a new one.
    Unauthorized(String),
}

/// The end a close (code and reason; `None` when the link just dropped) means.
/// `detail` is the message of an `Error` frame that came before the close.
pub fn end_for_close(url: &str, close: Option<(u16, String)>, detail: Option<&str>) -> SessionEnd {
    let Some((code, reason)) = close else {
        return SessionEnd::Retry(format!("{url} dropped the connection without a close"));
    };
    let reason = match detail {
        Some(detail) if !detail.is_empty() && detail != reason => format!("{reason}: {detail}")
            .trim_start_matches(": ")
            .to_string(),
        _ => reason,
    };
    match code {
        close::UNAUTHORIZED => SessionEnd::Unauthorized(format!(
            "{url} refused the token (4003: {reason}); create a new one with `outpost lite-token create` and restart with --token"
        )),
        close::NO_COMMON_VERSION => SessionEnd::Incompatible(format!(
            "{url} speaks no protocol version this client does (4002: {reason}); upgrade one of them"
        )),
        close::RESYNC_REQUIRED => {
            SessionEnd::ReconnectNow(format!("{url} asked for a resync (4004: {reason})"))
        }
        close::PROTOCOL_ERROR | close::TOO_LARGE => SessionEnd::Retry(format!(
            "{url} closed the session for a protocol error ({code}: {reason})"
        )),
        close::GOING_AWAY => SessionEnd::Retry(format!("{url} is shutting down (1001)")),
        _ => SessionEnd::Retry(format!("{url} closed the session ({code}: {reason})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "ws://127.0.0.1:8054/v1/sync";

    /// The reaction an end asks of the connector, as a word.
    fn reaction(end: &SessionEnd) -> &'static str {
        match end {
            SessionEnd::Shutdown => "stop",
            SessionEnd::Retry(_) => "retry",
            SessionEnd::ReconnectNow(_) => "now",
            SessionEnd::Incompatible(_) => "skip",
            SessionEnd::Unauthorized(_) => "refused",
        }
    }

    #[test]
    fn close_codes_map_to_the_doc_table() {
        let table = [
            (Some(1000), "retry"),
            (Some(1001), "retry"),
            (Some(1011), "retry"),
            (Some(4001), "retry"),
            (Some(4002), "skip"),
            (Some(4003), "refused"),
            (Some(4004), "now"),
            (Some(4005), "retry"),
            (None, "retry"),
        ];
        for (code, expected) in table {
            let end = end_for_close(URL, code.map(|code| (code, "why".to_string())), None);
            assert_eq!(reaction(&end), expected, "{code:?} gave {end:?}");
        }
    }

    #[test]
    fn a_refused_token_says_what_to_do_and_keeps_the_servers_message() {
        let end = end_for_close(
            URL,
            Some((4003, "token revoked".into())),
            Some("token alice-laptop was revoked"),
        );
        let SessionEnd::Unauthorized(message) = end else {
            panic!("{end:?}");
        };
        assert!(message.contains("token revoked"), "{message}");
        assert!(message.contains("alice-laptop was revoked"), "{message}");
        assert!(message.contains("lite-token create"), "{message}");
    }
}
