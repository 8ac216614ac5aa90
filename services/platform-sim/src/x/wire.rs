//! X's wire shapes: its token strings, OAuth errors, API "problem" bodies,
//! rate-limit headers and the HTML pages of the authorize flow, and `XError`,
//! which renders each refusal the way X does.

use std::time::Instant;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::support::{hidden_inputs, html_escape, random_b64};

const PROBLEM_JSON: &str = "application/problem+json";
const INVALID_REQUEST_TYPE: &str = "https://api.twitter.com/2/problems/invalid-request";

/// What a handler answers: the response, or the refusal in X's own words.
pub(crate) type Answer = Result<Response, XError>;

/// Why X refused a request, rendered as X renders it.
#[derive(Debug)]
pub(crate) enum XError {
    /// The OAuth endpoints' `{"error","error_description"}`.
    OAuth { status: StatusCode, error: &'static str, description: String },
    /// Missing, unknown, expired or revoked bearer token.
    Unauthorized,
    /// The token lacks a scope the endpoint needs.
    Forbidden,
    /// The same text again (or refused content): X's 403.
    DuplicateTweet,
    /// X's `invalid-request` problem, one entry per error.
    InvalidRequest(Vec<Value>),
    /// The authorize flow's error page (never a redirect: the redirect_uri
    /// may not have been validated).
    AuthorizePage(String),
}

impl XError {
    pub fn oauth(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self::OAuth { status, error, description: description.into() }
    }

    /// The one body X uses for every bad, spent, expired or revoked code or token.
    pub fn invalid_token_value() -> Self {
        Self::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Value passed for the token was invalid.",
        )
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Missing required parameter [{name}]."),
        )
    }

    /// A client failed to authenticate on the token or revoke endpoint.
    pub fn unauthorized_client() -> Self {
        Self::oauth(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Missing valid authorization header",
        )
    }

    /// An `invalid-request` problem with one message.
    pub fn invalid_request(message: &str) -> Self {
        Self::InvalidRequest(vec![json!({ "message": message })])
    }
}

impl IntoResponse for XError {
    fn into_response(self) -> Response {
        match self {
            Self::OAuth { status, error, description } => {
                let body = json!({ "error": error, "error_description": description });
                let mut resp = (status, axum::Json(body)).into_response();
                no_store(resp.headers_mut());
                resp
            }
            Self::Unauthorized => problem(StatusCode::UNAUTHORIZED, "Unauthorized"),
            Self::Forbidden => problem(StatusCode::FORBIDDEN, "Forbidden"),
            Self::DuplicateTweet => problem(
                StatusCode::FORBIDDEN,
                "You are not allowed to create a Tweet with duplicate content.",
            ),
            Self::InvalidRequest(errors) => problem_response(
                StatusCode::BAD_REQUEST,
                json!({
                    "errors": errors,
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": INVALID_REQUEST_TYPE,
                }),
            ),
            Self::AuthorizePage(detail) => authorize_error_page(&detail),
        }
    }
}

/// A token in X's shape: base64url of `random:issued_ms:1:1:kind:1`.
pub(crate) fn opaque_token(kind: &str) -> String {
    let raw = format!("{}:{}:1:1:{kind}:1", random_b64(32), Utc::now().timestamp_millis());
    URL_SAFE_NO_PAD.encode(raw)
}

/// Token responses must not be cached (RFC 6749 §5.1).
pub(crate) fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn problem_response(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    resp
}

/// The generic `about:blank` problem X uses for 401/403/429/5xx.
fn problem(status: StatusCode, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    problem_response(
        status,
        json!({ "title": title, "type": "about:blank", "status": status.as_u16(), "detail": detail }),
    )
}

/// Injected rate limit: 429 with the reset at the end of the injected period.
pub(crate) fn too_many_requests(limit: u32, reset_epoch: u64) -> Response {
    let mut resp = problem(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    set_rate_headers(resp.headers_mut(), limit, 0, reset_epoch);
    resp
}

/// X's answer to a user past its own limit (an organic one, not injected):
/// 429 with code 88, as PLATFORMS.md records it.
pub(crate) fn rate_limit_exceeded() -> Response {
    let body = json!({ "errors": [{ "code": 88, "message": "Rate limit exceeded" }] });
    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
}

/// Injected outage: the status asked for, with its canonical title.
pub(crate) fn outage(status: StatusCode) -> Response {
    let detail = status.canonical_reason().unwrap_or("Service Unavailable");
    problem(status, detail)
}

/// What to put in `x-rate-limit-*`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    pub reset_at: Instant,
    /// This call was past the limit.
    pub exceeded: bool,
}

fn set_rate_headers(headers: &mut HeaderMap, limit: u32, remaining: u32, reset_epoch: u64) {
    for (name, value) in [
        ("x-rate-limit-limit", u64::from(limit)),
        ("x-rate-limit-remaining", u64::from(remaining)),
        ("x-rate-limit-reset", reset_epoch),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

/// Adds the `x-rate-limit-*` headers X sends on every API answer.
pub(crate) fn with_rate_headers(mut resp: Response, info: RateInfo, clock: &Clock) -> Response {
    set_rate_headers(
        resp.headers_mut(),
        info.limit,
        info.remaining,
        clock.epoch_secs(info.reset_at),
    );
    resp
}

/// Every X response carries a transaction id; clients log it for support.
pub(crate) fn transaction_id() -> HeaderValue {
    let id: String = random_b64(8).chars().filter(char::is_ascii_alphanumeric).collect();
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// X's error page when an authorize request is invalid. Deliberately not a
/// redirect: the redirect_uri has not been validated.
pub(crate) fn authorize_error_page(detail: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>X / Error</title></head>\
         <body><h1>Something went wrong</h1>\
         <p>You weren't able to give access to the App. Go back and try logging in again.</p>\
         <p class=\"detail\">{}</p></body></html>",
        html_escape(detail)
    );
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}

/// The consent page: app, scopes, the signing-in user, Approve / Deny.
pub(crate) fn consent_page(app_name: &str, scopes: &[String], hidden: &[(&str, &str)]) -> Response {
    let scope_items: String =
        scopes.iter().map(|s| format!("<li>{}</li>", html_escape(s))).collect();
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>X / Authorize an app</title></head>\
         <body><h1>{app} wants to access your X account.</h1>\
         <p>It will be able to:</p><ul>{scope_items}</ul>\
         <form method=\"post\" action=\"authorize\">{hidden_inputs}\
         <label>Username <input type=\"text\" name=\"username\" value=\"demo_user\"></label>\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Authorize app</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Cancel</button>\
         </form></body></html>",
        app = html_escape(app_name),
        hidden_inputs = hidden_inputs(hidden),
    );
    (StatusCode::OK, Html(body)).into_response()
}
