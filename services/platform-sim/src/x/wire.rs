//! X's response shapes: OAuth errors, API "problem" bodies, rate-limit
//! headers and the HTML pages of the authorize flow.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::support::{html_escape, random_b64};
use crate::x::store::RateInfo;

const PROBLEM_JSON: &str = "application/problem+json";
const INVALID_REQUEST_TYPE: &str = "https://api.twitter.com/2/problems/invalid-request";

/// X's OAuth endpoints answer errors as `{"error","error_description"}`.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp =
        (status, axum::Json(json!({ "error": error, "error_description": description })))
            .into_response();
    no_store(resp.headers_mut());
    resp
}

/// The one body X uses for every bad, spent, expired or revoked code or token.
pub(crate) fn invalid_token_value() -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "Value passed for the token was invalid.",
    )
}

pub(crate) fn missing_parameter(name: &str) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &format!("Missing required parameter [{name}]."),
    )
}

pub(crate) fn unauthorized_client() -> Response {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized_client",
        "Missing valid authorization header",
    )
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
pub(crate) fn problem(status: StatusCode, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    problem_response(
        status,
        json!({ "title": title, "type": "about:blank", "status": status.as_u16(), "detail": detail }),
    )
}

/// Why an API call was refused before doing anything; kept small (unlike a
/// `Response`) so it travels cheaply through `Result`s.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// Missing, unknown, expired or revoked bearer token.
    Unauthorized,
    /// The token lacks a scope the endpoint needs.
    Forbidden,
    /// X's `invalid-request` problem with this message.
    InvalidRequest(&'static str),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthorized => unauthorized(),
            Self::Forbidden => forbidden(),
            Self::InvalidRequest(message) => invalid_request_message(message),
        }
    }
}

/// A client failed to authenticate on the token or revoke endpoint.
#[derive(Debug)]
pub(crate) struct UnauthorizedClient;

impl IntoResponse for UnauthorizedClient {
    fn into_response(self) -> Response {
        unauthorized_client()
    }
}

/// Missing, unknown, expired or revoked bearer token.
pub(crate) fn unauthorized() -> Response {
    problem(StatusCode::UNAUTHORIZED, "Unauthorized")
}

/// The token lacks a scope the endpoint needs.
pub(crate) fn forbidden() -> Response {
    problem(StatusCode::FORBIDDEN, "Forbidden")
}

pub(crate) fn duplicate_tweet() -> Response {
    problem(StatusCode::FORBIDDEN, "You are not allowed to create a Tweet with duplicate content.")
}

/// A 400 with X's `invalid-request` problem and one message per error.
pub(crate) fn invalid_request(errors: Vec<Value>) -> Response {
    problem_response(
        StatusCode::BAD_REQUEST,
        json!({
            "errors": errors,
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": INVALID_REQUEST_TYPE,
        }),
    )
}

pub(crate) fn invalid_request_message(message: &str) -> Response {
    invalid_request(vec![json!({ "message": message })])
}

/// Injected rate limit: 429 with the reset at the end of the injected period.
pub(crate) fn too_many_requests(limit: u32, reset_epoch: u64) -> Response {
    let mut resp = problem(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    set_rate_headers(resp.headers_mut(), limit, 0, reset_epoch);
    resp
}

/// Injected outage: the status asked for, with its canonical title.
pub(crate) fn outage(status: StatusCode) -> Response {
    let detail = status.canonical_reason().unwrap_or("Service Unavailable");
    problem(status, detail)
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
    let hidden_inputs: String = hidden
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
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
    );
    (StatusCode::OK, Html(body)).into_response()
}
