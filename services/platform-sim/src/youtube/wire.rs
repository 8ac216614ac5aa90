//! Google's error bodies: OAuth's `{"error","error_description"}` and the
//! API's `{"error":{"code","message","errors":[…],"status"}}`, as
//! `YouTubeError`.

use std::time::Instant;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::Common;
use crate::support::json_no_store;

/// What a handler answers: the response, or the refusal in Google's own words.
pub(crate) type Answer = Result<Response, YouTubeError>;

/// Why Google refused a request, rendered as Google renders it.
#[derive(Debug)]
pub(crate) enum YouTubeError {
    /// The OAuth endpoints' error, never cached.
    OAuth { status: StatusCode, error: &'static str, description: String },
    /// A refresh refused by a session-control policy (`invalid_rapt`).
    InvalidRapt,
    /// An API error with one `errors[]` entry and, where Google sends one,
    /// the RPC status.
    Api {
        status: StatusCode,
        message: String,
        reason: &'static str,
        domain: &'static str,
        rpc: Option<&'static str>,
    },
    /// No valid bearer token: 401 `UNAUTHENTICATED`.
    Unauthenticated,
    /// The token lacks the scope: 403 `insufficientPermissions`.
    InsufficientScope,
}

impl YouTubeError {
    pub fn oauth(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self::OAuth { status, error, description: description.into() }
    }

    pub fn invalid_grant(description: &'static str) -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    pub fn missing(name: &str) -> Self {
        Self::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Missing required parameter: {name}"),
        )
    }

    pub fn api(
        status: StatusCode,
        message: impl Into<String>,
        reason: &'static str,
        domain: &'static str,
        rpc: Option<&'static str>,
    ) -> Self {
        Self::Api { status, message: message.into(), reason, domain, rpc }
    }

    /// A 400 `INVALID_ARGUMENT` in the `youtube.api` domain.
    pub fn bad_request(message: impl Into<String>, reason: &'static str) -> Self {
        Self::api(StatusCode::BAD_REQUEST, message, reason, "youtube.api", Some("INVALID_ARGUMENT"))
    }
}

impl IntoResponse for YouTubeError {
    fn into_response(self) -> Response {
        match self {
            Self::OAuth { status, error, description } => {
                json_no_store(status, json!({ "error": error, "error_description": description }))
            }
            Self::InvalidRapt => json_no_store(
                StatusCode::BAD_REQUEST,
                json!({
                    "error": "invalid_grant",
                    "error_description": "reauth related error (invalid_rapt)",
                    "error_uri": "https://support.google.com/a/answer/9368756",
                    "error_subtype": "invalid_rapt",
                }),
            ),
            Self::Api { status, message, reason, domain, rpc } => {
                api_error(status, &message, reason, domain, rpc)
            }
            Self::Unauthenticated => unauthenticated(),
            Self::InsufficientScope => {
                let mut resp = api_error(
                    StatusCode::FORBIDDEN,
                    "Request had insufficient authentication scopes.",
                    "insufficientPermissions",
                    "global",
                    Some("PERMISSION_DENIED"),
                );
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"https://accounts.google.com/\", error=\"insufficient_scope\"",
                    ),
                );
                resp
            }
        }
    }
}

/// A Google API error with one `errors[]` entry.
fn api_error(
    status: StatusCode,
    message: &str,
    reason: &str,
    domain: &str,
    rpc: Option<&str>,
) -> Response {
    let mut err = json!({
        "code": status.as_u16(),
        "message": message,
        "errors": [{ "message": message, "domain": domain, "reason": reason }],
    });
    if let Some(rpc) = rpc {
        err["status"] = json!(rpc);
    }
    (status, axum::Json(json!({ "error": err }))).into_response()
}

fn unauthenticated() -> Response {
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({ "error": {
            "code": 401,
            "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "errors": [{
                "message": "Invalid Credentials",
                "domain": "global",
                "reason": "authError",
                "location": "Authorization",
                "locationType": "header",
            }],
            "status": "UNAUTHENTICATED",
        }})),
    )
        .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
        ),
    );
    resp
}

/// Injected outage: Google's `backendError` with the RPC status that goes
/// with the HTTP one.
pub(crate) fn outage(status: StatusCode) -> Response {
    let (message, rpc) = match status.as_u16() {
        500 => ("Internal error encountered.", "INTERNAL"),
        504 => ("The request timed out.", "DEADLINE_EXCEEDED"),
        _ => ("The service is currently unavailable.", "UNAVAILABLE"),
    };
    api_error(status, message, "backendError", "global", Some(rpc))
}

/// YouTube signals quota exhaustion with 403 `quotaExceeded` (not 429) and
/// no Retry-After: the daily quota resets at midnight Pacific time.
pub(crate) fn rate_limited(_: &Common, _until: Instant) -> Response {
    api_error(
        StatusCode::FORBIDDEN,
        "The request cannot be completed because you have exceeded your <a href=\"/youtube/v3/getting-started#quota\">quota</a>.",
        "quotaExceeded",
        "youtube.quota",
        None,
    )
}
