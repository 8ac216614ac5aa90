//! TikTok's envelopes: every API answer is `{"data","error":{"code",
//! "message","log_id"}}`, token errors `{"error","error_description",
//! "log_id"}`; `TikTokError` renders either.

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{json, Value};

use crate::state::Common;
use crate::support::{json_no_store, random_b64};

/// What a handler answers: the response, or the refusal in TikTok's own words.
pub(crate) type Answer = Result<Response, TikTokError>;

/// Why TikTok refused a request, rendered as TikTok renders it.
#[derive(Debug)]
pub(crate) enum TikTokError {
    /// An API error: empty `data` and this `error.code`.
    Api { status: StatusCode, code: &'static str, message: String },
    /// A token endpoint error, never cached.
    OAuth { status: StatusCode, error: &'static str, description: &'static str },
}

impl TikTokError {
    pub fn api(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Api { status, code, message: message.into() }
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::api(StatusCode::BAD_REQUEST, "invalid_params", message)
    }

    pub fn token_invalid() -> Self {
        Self::api(
            StatusCode::UNAUTHORIZED,
            "access_token_invalid",
            "The access token is invalid or not found in the request.",
        )
    }

    pub fn scope_not_authorized(scope: &str) -> Self {
        Self::api(
            StatusCode::UNAUTHORIZED,
            "scope_not_authorized",
            format!(
                "The user did not authorize the scope required for completing this request: {scope}"
            ),
        )
    }

    pub fn oauth(status: StatusCode, error: &'static str, description: &'static str) -> Self {
        Self::OAuth { status, error, description }
    }

    /// A 400 `invalid_request` from the token endpoint.
    pub fn invalid_request(description: &'static str) -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn invalid_grant(description: &'static str) -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }
}

impl IntoResponse for TikTokError {
    fn into_response(self) -> Response {
        match self {
            Self::Api { status, code, message } => envelope(status, json!({}), code, &message),
            Self::OAuth { status, error, description } => json_no_store(
                status,
                json!({ "error": error, "error_description": description, "log_id": log_id() }),
            ),
        }
    }
}

fn log_id() -> String {
    let hex: String = random_b64(12).bytes().map(|b| format!("{:X}", b % 16)).collect();
    format!("{}{hex}", Utc::now().format("%Y%m%d%H%M%S"))
}

/// `{"data": data, "error": {"code","message","log_id"}}`.
fn envelope(status: StatusCode, data: Value, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "data": data, "error": { "code": code, "message": message, "log_id": log_id() } })),
    )
        .into_response()
}

/// A successful API answer.
pub(crate) fn ok(data: Value) -> Response {
    envelope(StatusCode::OK, data, "ok", "")
}

/// Injected outage: `internal_error` with the status asked for.
pub(crate) fn outage(status: StatusCode) -> Response {
    TikTokError::api(status, "internal_error", "Something went wrong. Please try again later.")
        .into_response()
}

/// Injected rate limit: 429 `rate_limit_exceeded`, no Retry-After.
pub(crate) fn rate_limited(_: &Common, _until: Instant) -> Response {
    TikTokError::api(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
        "API rate limit exceeded, please retry later.",
    )
    .into_response()
}
