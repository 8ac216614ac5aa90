//! The `/_sim` control API: fault injection and inspection for tests and
//! demos. JSON in and out, no authentication (the simulator is never exposed).
//!
//! Routes (`{platform}` is a platform key; today only `x`; unknown → 404):
//!
//! - `POST /_sim/{platform}/accounts/{username}/revoke` — the user revokes the
//!   app: every access and refresh token of that user (all clients) and every
//!   unredeemed code stops working. The user can authorize again and the new
//!   tokens work. → `200 {"revoked_tokens": n}`; unknown user → `404`.
//! - `POST /_sim/{platform}/accounts/{username}/expire` — the user's live
//!   access tokens expire now; refresh tokens keep working.
//!   → `200 {"expired_tokens": n}`; unknown user → `404`.
//! - `POST /_sim/{platform}/rate-limit` body `{"for_seconds": f64}` — for that
//!   many real seconds every API call (not OAuth) answers 429 with
//!   `x-rate-limit-*` headers whose reset is the end of the period.
//!   → `200 {"rate_limited_for_seconds": f}`.
//! - `POST /_sim/{platform}/outage` body `{"for_seconds": f64, "status": 503}`
//!   — for that many real seconds every endpoint of the platform, OAuth
//!   included, answers `status` (500–599, default 503) with a problem body.
//!   → `200 {"outage_for_seconds": f, "status": s}`.
//! - `POST /_sim/{platform}/clear-faults` — ends rate limit and outage now.
//!   → `200 {"cleared": true}`.
//! - `GET /_sim/posts?platform=x&username=u` — the post log in acceptance
//!   order, duplicates visible; both filters optional.
//!   → `200 {"posts":[{"platform","id","user_id","username","text","created_at"}]}`.
//! - `GET /_sim/tokens` — every access token, refresh token and authorization
//!   code ever issued, so tests can prove none leaked into logs.
//!   → `200 {"tokens":["..."]}`.
//! - `GET /_sim/stats` — per-platform counters.
//!   → `200 {"x":{"refresh_token_reuse":n,"tokens_issued":n,"refreshes":n,"posts":n}}`
//!   (`tokens_issued` counts successful token responses, `refreshes` the
//!   successful refresh grants among them).
//!
//! Errors are `{"error": "<message>"}` with 400 (bad body) or 404 (unknown
//! platform or user).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::state::{PlatformSim, SimState};
use crate::support::parse_form;

pub(crate) fn router(state: SimState) -> Router {
    Router::new()
        .route("/{platform}/accounts/{username}/revoke", post(revoke_account))
        .route("/{platform}/accounts/{username}/expire", post(expire_account))
        .route("/{platform}/rate-limit", post(rate_limit))
        .route("/{platform}/outage", post(outage))
        .route("/{platform}/clear-faults", post(clear_faults))
        .route("/posts", get(posts))
        .route("/tokens", get(tokens))
        .route("/stats", get(stats))
        .with_state(state)
}

/// A control-API error: `{"error": message}` with its status.
struct ControlError(StatusCode, String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> ControlError {
    ControlError(status, message.into())
}

fn platform<'a>(state: &'a SimState, name: &str) -> Result<&'a Arc<dyn PlatformSim>, ControlError> {
    state
        .platform(name)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("unknown platform: {name}")))
}

fn unknown_user(username: &str) -> ControlError {
    error(StatusCode::NOT_FOUND, format!("unknown user: {username}"))
}

async fn revoke_account(
    State(state): State<SimState>,
    Path((name, username)): Path<(String, String)>,
) -> Response {
    let p = match platform(&state, &name) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match p.revoke_account(&username) {
        Some(n) => {
            tracing::info!(platform = p.name(), username, revoked = n, "sim: account revoked");
            Json(json!({ "revoked_tokens": n })).into_response()
        }
        None => unknown_user(&username).into_response(),
    }
}

async fn expire_account(
    State(state): State<SimState>,
    Path((name, username)): Path<(String, String)>,
) -> Response {
    let p = match platform(&state, &name) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match p.expire_account(&username) {
        Some(n) => {
            tracing::info!(
                platform = p.name(),
                username,
                expired = n,
                "sim: access tokens expired"
            );
            Json(json!({ "expired_tokens": n })).into_response()
        }
        None => unknown_user(&username).into_response(),
    }
}

#[derive(Deserialize)]
struct ForSeconds {
    for_seconds: f64,
    status: Option<u16>,
}

/// Parses `{"for_seconds": f, ...}` into a real duration.
fn parse_for_seconds(body: &[u8]) -> Result<(Duration, Option<u16>), ControlError> {
    let parsed: ForSeconds = serde_json::from_slice(body).map_err(|e| {
        error(StatusCode::BAD_REQUEST, format!("expected {{\"for_seconds\": number}}: {e}"))
    })?;
    let d = Duration::try_from_secs_f64(parsed.for_seconds)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "for_seconds must be a finite number >= 0"))?;
    Ok((d, parsed.status))
}

async fn rate_limit(
    State(state): State<SimState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let p = match platform(&state, &name) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let (d, _) = match parse_for_seconds(&body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    state.common().set_rate_limit(p.name(), d);
    tracing::info!(platform = p.name(), seconds = d.as_secs_f64(), "sim: rate limit on");
    Json(json!({ "rate_limited_for_seconds": d.as_secs_f64() })).into_response()
}

async fn outage(State(state): State<SimState>, Path(name): Path<String>, body: Bytes) -> Response {
    let p = match platform(&state, &name) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let (d, status) = match parse_for_seconds(&body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let status = status.unwrap_or(503);
    if !(500..=599).contains(&status) {
        return error(StatusCode::BAD_REQUEST, "status must be between 500 and 599")
            .into_response();
    }
    state.common().set_outage(p.name(), d, status);
    tracing::info!(platform = p.name(), seconds = d.as_secs_f64(), status, "sim: outage on");
    Json(json!({ "outage_for_seconds": d.as_secs_f64(), "status": status })).into_response()
}

async fn clear_faults(State(state): State<SimState>, Path(name): Path<String>) -> Response {
    let p = match platform(&state, &name) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    state.common().clear_faults(p.name());
    Json(json!({ "cleared": true })).into_response()
}

async fn posts(State(state): State<SimState>, RawQuery(query): RawQuery) -> Response {
    let params = parse_form(query.unwrap_or_default().as_bytes());
    let wanted = match params.get("platform") {
        Some(name) => match platform(&state, name) {
            Ok(p) => vec![Arc::clone(p)],
            Err(e) => return e.into_response(),
        },
        None => state.platforms().cloned().collect(),
    };
    let username = params.get("username").map(|u| u.to_ascii_lowercase());
    let posts: Vec<_> = wanted
        .iter()
        .flat_map(|p| p.posts())
        .filter(|p| username.as_deref().is_none_or(|u| p.username.to_ascii_lowercase() == u))
        .collect();
    Json(json!({ "posts": posts })).into_response()
}

async fn tokens(State(state): State<SimState>) -> Response {
    Json(json!({ "tokens": state.common().issued_secrets() })).into_response()
}

async fn stats(State(state): State<SimState>) -> Response {
    let map: Map<String, Value> =
        state.platforms().map(|p| (p.name().to_owned(), p.stats())).collect();
    Json(Value::Object(map)).into_response()
}
