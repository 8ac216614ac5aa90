//! LinkedIn's error bodies: OAuth's `{"error","error_description"}`, the
//! API's `{"status","serviceErrorCode","code","message"}` and Rest.li's 422
//! validation errors, as `LinkedInError`.

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::Common;
use crate::support::json_no_store;

/// What a handler answers: the response, or the refusal in LinkedIn's own words.
pub(crate) type Answer = Result<Response, LinkedInError>;

/// Why LinkedIn refused a request, rendered as LinkedIn renders it.
#[derive(Debug)]
pub(crate) enum LinkedInError {
    /// The OAuth endpoints' error, never cached.
    OAuth { status: StatusCode, error: &'static str, description: String },
    /// The API's error body.
    Api { status: StatusCode, service_code: u32, code: &'static str, message: String },
    /// A 422 in Rest.li's validation format, naming the field.
    Unprocessable { field: &'static str, code: &'static str, description: &'static str },
}

impl LinkedInError {
    pub fn oauth(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self::OAuth { status, error, description: description.into() }
    }

    /// The token endpoint's answer to a missing parameter.
    pub fn missing(name: &str) -> Self {
        Self::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("A required parameter \"{name}\" is missing"),
        )
    }

    pub fn invalid_grant(description: &str) -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    pub fn api(
        status: StatusCode,
        service_code: u32,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::Api { status, service_code, code, message: message.into() }
    }

    /// A 400 without a service error code (versions, unparsable bodies).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::api(StatusCode::BAD_REQUEST, 0, code, message)
    }

    pub fn access_denied(resource: &str) -> Self {
        Self::api(
            StatusCode::FORBIDDEN,
            100,
            "ACCESS_DENIED",
            format!("Not enough permissions to access: {resource}"),
        )
    }

    pub fn unprocessable(
        field: &'static str,
        code: &'static str,
        description: &'static str,
    ) -> Self {
        Self::Unprocessable { field, code, description }
    }
}

impl IntoResponse for LinkedInError {
    fn into_response(self) -> Response {
        match self {
            Self::OAuth { status, error, description } => {
                json_no_store(status, json!({ "error": error, "error_description": description }))
            }
            Self::Api { status, service_code, code, message } => (
                status,
                axum::Json(json!({
                    "status": status.as_u16(),
                    "serviceErrorCode": service_code,
                    "code": code,
                    "message": message,
                })),
            )
                .into_response(),
            Self::Unprocessable { field, code, description } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({
                    "errorDetailType": "com.linkedin.common.error.BadRequest",
                    "message": format!("ERROR :: /{field} :: {description}"),
                    "errorDetails": { "inputErrors": [{
                        "description": description,
                        "input": { "inputPath": { "fieldPath": field } },
                        "code": code,
                    }]},
                    "status": 422,
                })),
            )
                .into_response(),
        }
    }
}

/// Injected outage: `{"status","message"}`.
pub(crate) fn outage(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Service Unavailable");
    (status, axum::Json(json!({ "status": status.as_u16(), "message": reason }))).into_response()
}

/// Injected rate limit. LinkedIn documents no Retry-After, so none is sent.
pub(crate) fn rate_limited(_: &Common, _until: Instant) -> Response {
    LinkedInError::api(
        StatusCode::TOO_MANY_REQUESTS,
        101,
        "TOO_MANY_REQUESTS",
        "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
    )
    .into_response()
}
