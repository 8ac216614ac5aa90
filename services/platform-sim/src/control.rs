//! The `/_sim` control API: fault injection and inspection for tests and
//! demos. JSON in and out, no authentication (the simulator is never exposed).
//! Full reference with each platform's answers: `docs/platform-sim.md`.
//!
//! Routes (`{platform}` is a control key: `x`, `linkedin`, `instagram`,
//! `facebook`, `youtube`, `tiktok`, `threads`; unknown → 404):
//!
//! - `POST /_sim/{platform}/accounts/{username}/{action}`, action one of
//!   `revoke`, `expire`, `password-change`, `remove-scope` (body
//!   `{"scope": "..."}`), `security-checkpoint`, `deauthorize` — something
//!   happened to the account; each platform then answers as it really does.
//!   → `200 {"revoked_tokens"|"expired_tokens"|"affected_tokens": n}`;
//!   unknown user → `404`.
//! - `POST /_sim/{platform}/rate-limit` body `{"for_seconds": f64}` — API
//!   calls (not OAuth) answer the platform's own rate-limit error.
//! - `POST /_sim/{platform}/outage` body `{"for_seconds": f64, "status": 503,
//!   "hang": false}` — every endpoint answers `status` (500–599); with
//!   `hang` requests first hang until the outage ends.
//! - `POST /_sim/{platform}/latency` body `{"ms": 50, "for_seconds": f64}`.
//! - `POST /_sim/{platform}/reject-content` body `{"for_seconds": f64}` —
//!   publish calls answer the platform's content-refused error.
//! - `POST /_sim/{platform}/ambiguous` body `{"count": n}` (the next n
//!   publishes, default 1) or `{"for_seconds": f64}` (every publish for that
//!   long) — the platform takes the post (stored, listed, in the post log),
//!   then drops the connection without answering.
//! - `POST /_sim/{platform}/clear-faults` — ends every fault now.
//! - `POST /_sim/{platform}/settings` — platform settings (YouTube:
//!   `{"testing_mode": bool}`).
//! - `GET /_sim/posts?platform=x&username=u`, `GET /_sim/tokens`,
//!   `GET /_sim/stats`, `GET /_sim/media/sample.jpg|sample.mp4`.
//!
//! Errors are `{"error": "<message>"}` with 400 (bad body) or 404 (unknown
//! platform or user).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::state::{AccountAction, Ambiguous, Common, PlatformSim, SimState};
use crate::support::parse_form;

pub(crate) fn router(state: SimState) -> Router {
    Router::new()
        .route("/{platform}/accounts/{username}/{action}", post(account_action))
        .route("/{platform}/rate-limit", post(rate_limit))
        .route("/{platform}/outage", post(outage))
        .route("/{platform}/latency", post(latency))
        .route("/{platform}/reject-content", post(reject_content))
        .route("/{platform}/ambiguous", post(ambiguous))
        .route("/{platform}/clear-faults", post(clear_faults))
        .route("/{platform}/settings", post(settings))
        .route("/media/sample.jpg", get(sample_jpg))
        .route("/media/sample.mp4", get(sample_mp4))
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

async fn account_action(
    State(state): State<SimState>,
    Path((name, username, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let p = platform(&state, &name)?;
    let action = match action.as_str() {
        "revoke" => AccountAction::Revoke,
        "expire" => AccountAction::Expire,
        "password-change" => AccountAction::PasswordChange,
        "security-checkpoint" => AccountAction::SecurityCheckpoint,
        "deauthorize" => AccountAction::Deauthorize,
        "remove-scope" => {
            #[derive(Deserialize)]
            struct Scope {
                scope: String,
            }
            match serde_json::from_slice::<Scope>(&body) {
                Ok(s) if !s.scope.trim().is_empty() => {
                    AccountAction::RemoveScope(s.scope.trim().to_owned())
                }
                _ => return Err(error(StatusCode::BAD_REQUEST, "expected {\"scope\": \"...\"}")),
            }
        }
        other => {
            return Err(error(StatusCode::NOT_FOUND, format!("unknown account action: {other}")))
        }
    };
    let n = p.account_action(&username, &action).ok_or_else(|| unknown_user(&username))?;
    tracing::info!(platform = p.name(), username, ?action, tokens = n, "sim: account action");
    Ok(Json(json!({ action.answer_key(): n })))
}

#[derive(Deserialize)]
struct ForSeconds {
    for_seconds: f64,
    status: Option<u16>,
    #[serde(default)]
    hang: bool,
    ms: Option<u64>,
}

/// Parses `{"for_seconds": f, ...}` into a real duration and the rest.
fn parse_for_seconds(body: &[u8]) -> Result<(Duration, ForSeconds), ControlError> {
    let parsed: ForSeconds = serde_json::from_slice(body).map_err(|e| {
        error(StatusCode::BAD_REQUEST, format!("expected {{\"for_seconds\": number}}: {e}"))
    })?;
    let d = Duration::try_from_secs_f64(parsed.for_seconds)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "for_seconds must be a finite number >= 0"))?;
    Ok((d, parsed))
}

/// A timed fault on the platform `name`: parses `{"for_seconds": f, ...}`,
/// then `apply` sets the fault and returns the control API's answer.
fn timed_fault(
    state: &SimState,
    name: &str,
    body: &[u8],
    apply: impl FnOnce(&Common, &'static str, Duration, ForSeconds) -> Result<Value, ControlError>,
) -> Result<Json<Value>, ControlError> {
    let p = platform(state, name)?;
    let (d, parsed) = parse_for_seconds(body)?;
    apply(&state.common(), p.name(), d, parsed).map(Json)
}

async fn rate_limit(
    State(state): State<SimState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    timed_fault(&state, &name, &body, |common, p, d, _| {
        common.set_rate_limit(p, d);
        tracing::info!(platform = p, seconds = d.as_secs_f64(), "sim: rate limit on");
        Ok(json!({ "rate_limited_for_seconds": d.as_secs_f64() }))
    })
}

async fn outage(
    State(state): State<SimState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    timed_fault(&state, &name, &body, |common, p, d, parsed| {
        let status = parsed.status.unwrap_or(503);
        if !(500..=599).contains(&status) {
            return Err(error(StatusCode::BAD_REQUEST, "status must be between 500 and 599"));
        }
        let hang = parsed.hang;
        common.set_outage(p, d, status, hang);
        tracing::info!(platform = p, seconds = d.as_secs_f64(), status, hang, "sim: outage on");
        Ok(json!({ "outage_for_seconds": d.as_secs_f64(), "status": status, "hang": hang }))
    })
}

async fn latency(
    State(state): State<SimState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    timed_fault(&state, &name, &body, |common, p, d, parsed| {
        let ms = parsed.ms.ok_or_else(|| {
            error(StatusCode::BAD_REQUEST, "expected {\"ms\": number, \"for_seconds\": number}")
        })?;
        common.set_latency(p, d, Duration::from_millis(ms));
        tracing::info!(platform = p, seconds = d.as_secs_f64(), ms, "sim: latency on");
        Ok(json!({ "latency_ms": ms, "for_seconds": d.as_secs_f64() }))
    })
}

async fn reject_content(
    State(state): State<SimState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    timed_fault(&state, &name, &body, |common, p, d, _| {
        common.set_reject_content(p, d);
        tracing::info!(platform = p, seconds = d.as_secs_f64(), "sim: rejecting content");
        Ok(json!({ "reject_content_for_seconds": d.as_secs_f64() }))
    })
}

/// `{"count": n}` (default 1 when the body is empty) or `{"for_seconds": f}`.
async fn ambiguous(
    State(state): State<SimState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        count: Option<u32>,
        for_seconds: Option<f64>,
    }
    let p = platform(&state, &name)?;
    let expected = "expected {\"count\": n} or {\"for_seconds\": number}";
    let parsed = if body.iter().all(u8::is_ascii_whitespace) {
        Body { count: None, for_seconds: None }
    } else {
        serde_json::from_slice::<Body>(&body)
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("{expected}: {e}")))?
    };
    let common = state.common();
    let (fault, answer) = match (parsed.count, parsed.for_seconds) {
        (Some(_), Some(_)) => return Err(error(StatusCode::BAD_REQUEST, expected)),
        (None, Some(f)) => {
            let d = Duration::try_from_secs_f64(f).map_err(|_| {
                error(StatusCode::BAD_REQUEST, "for_seconds must be a finite number >= 0")
            })?;
            (Ambiguous::Until(common.clock.now() + d), json!({ "ambiguous_for_seconds": f }))
        }
        (count, None) => {
            let n = count.unwrap_or(1);
            if n == 0 {
                return Err(error(StatusCode::BAD_REQUEST, "count must be at least 1"));
            }
            (Ambiguous::Next(n), json!({ "ambiguous_publishes": n }))
        }
    };
    common.set_ambiguous(p.name(), fault);
    tracing::info!(platform = p.name(), ?fault, "sim: publishes taken but not answered");
    Ok(Json(answer))
}

async fn settings(
    State(state): State<SimState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let p = platform(&state, &name)?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("expected JSON: {e}")))?;
    p.configure(&value).map(Json).map_err(|message| error(StatusCode::BAD_REQUEST, message))
}

async fn sample_jpg() -> Response {
    ([(header::CONTENT_TYPE, "image/jpeg")], crate::media::SAMPLE_JPG).into_response()
}

async fn sample_mp4() -> Response {
    ([(header::CONTENT_TYPE, "video/mp4")], crate::media::SAMPLE_MP4).into_response()
}

async fn clear_faults(
    State(state): State<SimState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ControlError> {
    let p = platform(&state, &name)?;
    state.common().clear_faults(p.name());
    Ok(Json(json!({ "cleared": true })))
}

async fn posts(
    State(state): State<SimState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ControlError> {
    let params = parse_form(query.unwrap_or_default().as_bytes());
    let wanted = match params.get("platform") {
        Some(name) => vec![Arc::clone(platform(&state, name)?)],
        None => state.platforms().cloned().collect(),
    };
    let username = params.get("username").map(|u| u.to_ascii_lowercase());
    let posts: Vec<_> = wanted
        .iter()
        .flat_map(|p| p.posts())
        .filter(|p| username.as_deref().is_none_or(|u| p.username.to_ascii_lowercase() == u))
        .collect();
    Ok(Json(json!({ "posts": posts })))
}

async fn tokens(State(state): State<SimState>) -> Response {
    Json(json!({ "tokens": state.common().issued_secrets() })).into_response()
}

async fn stats(State(state): State<SimState>) -> Response {
    let common = state.common();
    let map: Map<String, Value> = state
        .platforms()
        .map(|p| {
            let mut stats = p.stats();
            if let Some(o) = stats.as_object_mut() {
                o.insert("lost_answers".to_owned(), json!(common.lost_answers(p.name())));
            }
            (p.name().to_owned(), stats)
        })
        .collect();
    Json(Value::Object(map)).into_response()
}
