//! Facebook's tokens: `oauth/access_token` (the code exchange for a 1-hour
//! user token, or `fb_exchange_token` for a ~60-day one), Page tokens, and
//! `debug_token`, which inspects any of them.

use std::collections::HashMap;
use std::time::Duration;

use axum::response::IntoResponse;
use serde_json::json;

use super::wire::{epoch, token_response};
use super::{Ctx, ALL_KINDS, PLATFORM, USER_KINDS};
use crate::accounts::{self, Kind, Refusal, Token, TokenState, HOUR};
use crate::authorize::required;
use crate::graph::{self, Answer, GraphError};

const SHORT_LIVED: Duration = HOUR;
const LONG_LIVED: Duration = Duration::from_secs(60 * 24 * 60 * 60);
const DATA_ACCESS: Duration = Duration::from_secs(90 * 24 * 60 * 60);

fn cannot_parse() -> GraphError {
    GraphError::new(190, "Invalid OAuth access token - Cannot parse access token")
}

/// `oauth/access_token`: the code exchange, or `grant_type=fb_exchange_token`.
pub(crate) fn access_token(ctx: &Ctx, params: &HashMap<String, String>) -> Answer {
    let client_id =
        required(params, "client_id").ok_or_else(|| graph::missing_param("client_id"))?;
    let client = ctx.common.client(PLATFORM, client_id).ok_or_else(graph::bad_client_id)?;
    let secret =
        required(params, "client_secret").ok_or_else(|| graph::missing_param("client_secret"))?;
    if client.client_secret.as_deref() != Some(secret) {
        return Err(graph::bad_client_secret());
    }
    let (token, what) = match params.get("grant_type").map(String::as_str) {
        Some("fb_exchange_token") => (exchange(ctx, params, client_id)?, "long-lived user token"),
        None | Some("authorization_code") => {
            (exchange_code(ctx, params, client_id)?, "short-lived user token")
        }
        Some(other) => {
            return Err(graph::invalid_param(format!("Unsupported grant_type: {other}")))
        }
    };
    let (access, expires_in) = token;
    ctx.common.record_secret(&access);
    tracing::info!(platform = PLATFORM, what, "token issued");
    Ok(token_response(&access, expires_in))
}

/// `fb_exchange_token`: a live user token of this app for a long-lived one.
fn exchange(
    ctx: &Ctx,
    params: &HashMap<String, String>,
    client_id: &str,
) -> Result<(String, u64), GraphError> {
    let old = required(params, "fb_exchange_token")
        .ok_or_else(|| graph::missing_param("fb_exchange_token"))?;
    let clock = &ctx.common.clock;
    let now = clock.now();
    let mut a = ctx.accounts();
    let t = a.check(old, USER_KINDS, now).map_err(|r| graph::refusal(&r, client_id, now))?;
    if t.client_id != client_id {
        return Err(cannot_parse());
    }
    let (token, expires_in) = accounts::timed(clock, Kind::LongLived, &t, LONG_LIVED);
    a.stats.tokens_issued += 1;
    Ok((a.insert_token("EAAG", token), expires_in))
}

/// The code for a short-lived user token.
fn exchange_code(
    ctx: &Ctx,
    params: &HashMap<String, String>,
    client_id: &str,
) -> Result<(String, u64), GraphError> {
    let code = required(params, "code").ok_or_else(|| graph::missing_param("code"))?;
    let redirect_uri =
        required(params, "redirect_uri").ok_or_else(|| graph::missing_param("redirect_uri"))?;
    let clock = &ctx.common.clock;
    let now = clock.now();
    let mut a = ctx.accounts();
    let code =
        a.redeem_code(code, client_id, Some(redirect_uri), now).map_err(graph::code_error)?;
    let grant = a.new_grant();
    let base = accounts::grant_base(&code.user_key, client_id, code.scopes, grant, now);
    let (token, expires_in) = accounts::timed(clock, Kind::ShortLived, &base, SHORT_LIVED);
    a.stats.tokens_issued += 1;
    Ok((a.insert_token("EAAG", token), expires_in))
}

/// Issues a Page token for the user of `t`: never expires when `t` is
/// long-lived, otherwise lapses with `t`.
pub(crate) fn page_token(ctx: &Ctx, t: &Token) -> String {
    let mut a = ctx.accounts();
    let token = Token {
        kind: Kind::Page,
        issued_at: ctx.common.clock.now(),
        expires_at: if t.kind == Kind::LongLived { None } else { t.expires_at },
        state: TokenState::Live,
        ..t.clone()
    };
    a.stats.tokens_issued += 1;
    let s = a.insert_token("EAAG", token);
    drop(a);
    ctx.common.record_secret(&s);
    s
}

/// `GET /debug_token?input_token=…&access_token=<app token or user token>`.
pub(crate) fn debug_token(ctx: &Ctx, params: &HashMap<String, String>) -> Answer {
    let input =
        required(params, "input_token").ok_or_else(|| graph::missing_param("input_token"))?;
    let app_token = required(params, "access_token").ok_or_else(graph::no_token)?;
    let now = ctx.common.clock.now();
    let a = ctx.accounts();
    let app_id = match app_token.split_once('|') {
        Some((id, secret)) => {
            ctx.common.authenticate_client(PLATFORM, id, secret).ok_or_else(cannot_parse)?;
            id.to_owned()
        }
        None => {
            a.check(app_token, ALL_KINDS, now).map_err(|r| graph::refusal(&r, "", now))?.client_id
        }
    };
    let Some(t) = a.token(input).filter(|t| t.kind != Kind::Refresh && t.client_id == app_id)
    else {
        return Ok(axum::Json(json!({ "data": {
            "error": { "code": 190, "message": "Invalid OAuth access token." },
            "is_valid": false,
            "scopes": [],
        }}))
        .into_response());
    };
    let user = a.user(&t.user_key).cloned().unwrap_or_default();
    let mut data = json!({
        "app_id": app_id,
        "type": if t.kind == Kind::Page { "PAGE" } else { "USER" },
        "application": app_id,
        "data_access_expires_at": epoch(t.granted_at + ctx.common.clock.real(DATA_ACCESS)),
        "expires_at": t.expires_at.map_or(0, epoch),
        "is_valid": true,
        "issued_at": epoch(t.issued_at),
        "scopes": t.scopes,
        "user_id": user.id,
    });
    if t.kind == Kind::Page {
        data["profile_id"] = json!(user.secondary_id);
    }
    if let Err(r) = a.check(input, ALL_KINDS, now) {
        let e = graph::refusal(&r, &app_id, now);
        data["is_valid"] = json!(false);
        let mut err = json!({ "code": e.code, "message": e.message });
        if let Some(sub) = e.subcode {
            err["subcode"] = json!(sub);
        }
        if matches!(r, Refusal::Unknown) {
            data = json!({ "error": err, "is_valid": false, "scopes": [] });
        } else {
            data["error"] = err;
        }
    }
    Ok(axum::Json(json!({ "data": data })).into_response())
}
