//! Facebook's wire shapes: the user and Page nodes, the token answer and the
//! errors beyond Graph's common ones. Facebook's typed error is Graph's own
//! `GraphError` (`crate::graph`), which renders the Graph error body.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use crate::accounts::{Token, User};
use crate::graph::{self, GraphError};
use crate::state::Common;
use crate::support::json_no_store;

/// Injected rate limit: 403 code 80001 with `x-business-use-case-usage`.
pub(crate) fn rate_limited(_: &Common, until: Instant) -> Response {
    graph::throttled(
        80001,
        "There have been too many calls to this Page account. Wait a bit and try again.",
        Some("pages"),
        until,
    )
}

/// Graph's answer to a token of the wrong kind or without the permission.
pub(crate) fn permissions_error(message: &str) -> GraphError {
    GraphError::new(200, format!("(#200) {message}")).status(StatusCode::FORBIDDEN)
}

/// The `oauth/access_token` answer.
pub(crate) fn token_response(access: &str, expires_in: u64) -> Response {
    json_no_store(
        StatusCode::OK,
        json!({ "access_token": access, "token_type": "bearer", "expires_in": expires_in }),
    )
}

/// The user node: `email` only with that permission.
pub(crate) fn user_node(u: &User, t: &Token) -> Value {
    let mut v = json!({ "id": u.id, "name": u.name });
    if t.has_scope("email") {
        v["email"] = json!(format!("{}@example.com", u.key));
    }
    v
}

/// The user's one Page.
pub(crate) fn page_node(u: &User) -> Value {
    json!({
        "id": u.secondary_id,
        "name": format!("{}'s Page", u.name),
        "category": "Personal blog",
        "category_list": [{ "id": "2700", "name": "Personal blog" }],
        "tasks": ["ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE"],
    })
}

/// Wall-clock epoch seconds of a real instant, past or future.
pub(crate) fn epoch(at: Instant) -> u64 {
    let now_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let now = Instant::now();
    let e = if at >= now { now_epoch + (at - now) } else { now_epoch.saturating_sub(now - at) };
    e.as_secs()
}
