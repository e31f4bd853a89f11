//! Why a session ends, and the frame and close code that say so to the client.

use outpost_core::sync::{ErrorFrame, Frame, ResyncRequired, close};

/// Close code for a failure of ours (RFC 6455: internal error).
const INTERNAL_ERROR: u16 = 1011;

/// Why a session ends.
#[derive(Debug)]
pub(super) enum End {
    /// Close with `code`; `frame` (an `Error` or `ResyncRequired`) goes first.
    Close {
        code: u16,
        reason: String,
        frame: Option<Frame>,
    },
    /// The connection is gone or stuck: nothing more can be sent.
    Gone(String),
}

impl End {
    /// A close preceded by an `Error` frame carrying the same code and message.
    pub(super) fn error(code: u16, message: String) -> End {
        End::Close {
            code,
            reason: message.clone(),
            frame: Some(Frame::Error(ErrorFrame { code, message })),
        }
    }

    pub(super) fn internal(message: String) -> End {
        tracing::error!(%message, "sync session failed");
        End::error(INTERNAL_ERROR, message)
    }

    /// Every session slot is taken: 1013, try again later (no frame, as for a
    /// connection refused before its `Hello`).
    pub(super) fn sessions_full() -> End {
        End::Close {
            code: super::super::TRY_AGAIN_LATER,
            reason: "too many sessions, try again later".to_string(),
            frame: None,
        }
    }

    pub(super) fn shutdown() -> End {
        End::Close {
            code: close::GOING_AWAY,
            reason: "server shutting down".to_string(),
            frame: None,
        }
    }
}

/// A `ResyncRequired` frame saying why, then close 4004: the client resumes from its
/// stored cursor (or takes a snapshot when the history no longer reaches it).
pub(super) fn resync(reason: String) -> End {
    End::Close {
        code: close::RESYNC_REQUIRED,
        reason: "resync required".to_string(),
        frame: Some(Frame::ResyncRequired(ResyncRequired { reason })),
    }
}

pub(super) fn overflow_reason() -> String {
    format!(
        "this session's queue of {} batches overflowed: resume from your cursor",
        super::super::hub::SESSION_QUEUE
    )
}
