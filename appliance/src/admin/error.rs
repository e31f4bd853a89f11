//! The one error type of the admin API and the extractors that produce it, so every
//! failure reaches the client as `{"error": "..."}` with a fitting status.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection, StringRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use outpost_core::state::CommandError;
use serde::de::DeserializeOwned;

use crate::store::WriteError;

use super::ZONE_FILE_LIMIT_BYTES;

/// Why an admin request failed. The message is what the client prints.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request itself is wrong: bad JSON, a missing field, bad record data.
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "missing or wrong bearer token (send \"Authorization: Bearer <token>\" with the token from <data-dir>/admin.token)"
    )]
    Unauthorized,
    /// Signed in, but not allowed: a console change without its CSRF token.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The body is over the route's limit.
    #[error("{0}")]
    TooLarge(String),
    /// Well-formed but unusable: a plugin that is not a component, was built for
    /// another hook, or whose `init` refuses its configuration.
    #[error("{0}")]
    Unprocessable(String),
    /// The request clashes with the cluster's state (a removal that would lose quorum).
    #[error("{0}")]
    Conflict(String),
    /// The zones model refused the write; nothing changed.
    #[error("{0}")]
    Refused(CommandError),
    /// The store could not take the write (not the leader, Raft stopped).
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Refused(refused) => refusal_status(refused),
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A refusal of the zones model as an HTTP status.
fn refusal_status(refused: &CommandError) -> StatusCode {
    match refused {
        CommandError::NoSuchZone { .. }
        | CommandError::NoSuchRecord { .. }
        | CommandError::NotInAnyZone { .. }
        | CommandError::NoSuchToken { .. }
        | CommandError::NoSuchPlugin { .. }
        | CommandError::NoSuchExport { .. }
        | CommandError::NotFollowed { .. } => StatusCode::NOT_FOUND,
        CommandError::ZoneExists { .. }
        | CommandError::TokenExists { .. }
        | CommandError::ExportExists { .. }
        | CommandError::TooManyExports { .. }
        | CommandError::TooManyInvites
        | CommandError::ZoneFollowed { .. }
        | CommandError::ZoneIsLocal { .. }
        | CommandError::TransferStale { .. } => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> ApiError {
        match error {
            WriteError::Rejected(refused) => ApiError::Refused(refused),
            too_large @ WriteError::TooLarge { .. } => ApiError::TooLarge(too_large.to_string()),
            unavailable => ApiError::Unavailable(unavailable.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "admin request failed");
        }
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

/// A JSON body whose rejections become [`ApiError`]s naming the bad field.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        // serde's message names the field: "missing field `origin` at line 1 column 2".
        JsonRejection::JsonDataError(error) => {
            ApiError::BadRequest(format!("invalid request body: {}", error.body_text()))
        }
        JsonRejection::JsonSyntaxError(error) => ApiError::BadRequest(format!(
            "request body is not valid JSON: {}",
            error.body_text()
        )),
        JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest(
            "send the request body as JSON with \"Content-Type: application/json\"".to_string(),
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::TooLarge(format!("request body is too large: {}", other.body_text()))
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// Query parameters whose rejections become [`ApiError`]s.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(QueryParams(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(error)) => {
                Err(ApiError::BadRequest(error.body_text()))
            }
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// A text body (a master file); over [`ZONE_FILE_LIMIT_BYTES`] is [`ApiError::TooLarge`]
/// (the route sets the limit with `DefaultBodyLimit`).
pub struct TextBody(pub String);

impl<S: Send + Sync> FromRequest<S> for TextBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match String::from_request(request, state).await {
            Ok(text) => Ok(TextBody(text)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge(format!(
                    "zone file is larger than the {} MiB limit (split it into several zones)",
                    ZONE_FILE_LIMIT_BYTES / (1024 * 1024)
                )))
            }
            Err(StringRejection::InvalidUtf8(_)) => Err(ApiError::BadRequest(
                "zone file is not valid UTF-8 (write other bytes as \\DDD escapes)".to_string(),
            )),
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_statuses() {
        let cases = [
            (
                CommandError::NoSuchZone {
                    origin: "a.".into(),
                },
                StatusCode::NOT_FOUND,
            ),
            (
                CommandError::NoSuchRecord {
                    name: "a.".into(),
                    rtype: "A".into(),
                },
                StatusCode::NOT_FOUND,
            ),
            (
                CommandError::NotInAnyZone { name: "a.".into() },
                StatusCode::NOT_FOUND,
            ),
            (
                CommandError::ZoneExists {
                    origin: "a.".into(),
                },
                StatusCode::CONFLICT,
            ),
            (
                CommandError::CnameConflict { name: "a.".into() },
                StatusCode::BAD_REQUEST,
            ),
            (
                CommandError::SoaDelete { zone: "a.".into() },
                StatusCode::BAD_REQUEST,
            ),
            (
                CommandError::InvalidTokenName { name: "A".into() },
                StatusCode::BAD_REQUEST,
            ),
            (
                CommandError::TokenExists { name: "a".into() },
                StatusCode::CONFLICT,
            ),
            (
                CommandError::NoSuchToken { name: "a".into() },
                StatusCode::NOT_FOUND,
            ),
            (CommandError::TokenWithoutZones, StatusCode::BAD_REQUEST),
        ];
        for (refused, status) in cases {
            assert_eq!(
                ApiError::from(WriteError::Rejected(refused.clone())).status(),
                status,
                "{refused}"
            );
        }
    }

    #[test]
    fn store_failures_are_unavailable() {
        let error = ApiError::from(WriteError::Leader(crate::store::LeaderError::NotLeader {
            leader: Some(2),
        }));
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(error.to_string().contains("not the raft leader"), "{error}");
        assert_eq!(
            ApiError::from(WriteError::Raft("stopped".into())).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
