//! `Connection: close` on a response sent before its request's body was read.
//!
//! hyper cannot find where the next request on a connection starts while part of the
//! previous request's body is still unread, so it closes the connection after such a
//! response, without saying so in the response. A keep-alive client (the CLI's and
//! scripts' HTTP libraries) then sends its next request on a connection the server has
//! closed, and that request fails. This happens to requests refused before their body is
//! read (a wrong token, an unknown route, a body over the limit) whenever the body arrives
//! after the refusal. Marking those responses `Connection: close` makes clients open a new
//! connection instead.
//!
//! The same wrapper bounds how long a body may stall: a client that sends no body data
//! for [`BODY_STALL_TIMEOUT`] fails its request (400), and the connection closes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::CONNECTION;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Longest wait for the next piece of a request body; past it the request fails. Reset by
/// every piece, so a large zone file or plugin on a slow link is not cut off while it
/// moves; a body that drips slower than this cannot hold a connection.
pub const BODY_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The middleware: runs the request with its body watched, and marks the response
/// `Connection: close` if the body was not read to its end.
pub async fn close_if_body_unread(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let finished = Arc::new(AtomicBool::new(body.is_end_stream()));
    let watched = Body::new(Watched {
        inner: body,
        finished: Arc::clone(&finished),
        stall: Box::pin(tokio::time::sleep(BODY_STALL_TIMEOUT)),
    });
    let mut response = next.run(Request::from_parts(parts, watched)).await;
    if !finished.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it has been read to its end, and fails when it stalls.
struct Watched {
    inner: Body,
    finished: Arc<AtomicBool>,
    /// Fires [`BODY_STALL_TIMEOUT`] after the last piece of the body.
    stall: Pin<Box<Sleep>>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.finished.store(true, Ordering::Release);
        }
        if polled.is_ready() {
            self.stall
                .as_mut()
                .reset(Instant::now() + BODY_STALL_TIMEOUT);
        } else if self.stall.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(format!(
                "no request body data for {} s",
                BODY_STALL_TIMEOUT.as_secs()
            )))));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
