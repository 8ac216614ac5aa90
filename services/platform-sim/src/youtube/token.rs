//! Google's token endpoint (`authorization_code` with optional PKCE, and
//! `refresh_token`, which answers no new refresh token: the old one keeps
//! working) and revocation. Client credentials in the form or as Basic.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

use super::wire::{Answer, YouTubeError};
use super::{Ctx, PLATFORM};
use crate::accounts::{self, Accounts, CodeError, Death, Kind, Refusal, Token, DAY, HOUR};
use crate::authorize::required;
use crate::clock::Clock;
use crate::support::{json_no_store, parse_basic, parse_form, query_and_form};

const ACCESS_LIFETIME: Duration = HOUR;
/// Refresh tokens of apps in "Testing" publishing status.
const TESTING_REFRESH_LIFETIME: Duration = Duration::from_secs(7 * DAY.as_secs());

/// What a successful grant answers.
struct Grant {
    access: String,
    expires_in: u64,
    refresh: Option<String>,
    scope: String,
}

/// Google accepts client credentials in the form or as HTTP Basic.
fn authenticate_client(
    ctx: &Ctx,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, YouTubeError> {
    let unauthorized =
        || YouTubeError::oauth(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
    let (id, secret) = match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(raw) => parse_basic(raw).ok_or_else(unauthorized)?,
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    if id.is_empty() {
        return Err(YouTubeError::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Could not determine client ID from request.",
        ));
    }
    if ctx.common.client(PLATFORM, &id).is_none() {
        return Err(YouTubeError::oauth(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        ));
    }
    ctx.common
        .authenticate_client(PLATFORM, &id, &secret)
        .map(|c| c.client_id.clone())
        .ok_or_else(unauthorized)
}

/// `POST /token`: `authorization_code` and `refresh_token`.
pub(crate) async fn token(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Answer {
    let form = parse_form(&body);
    let client_id = authenticate_client(&ctx, &headers, &form)?;
    let clock = &ctx.common.clock;
    let testing = ctx.sim.testing_mode.load(Ordering::SeqCst);
    let mut store = ctx.store();
    let a = &mut store.accounts;
    let grant = match required(&form, "grant_type") {
        None => return Err(YouTubeError::missing("grant_type")),
        Some("authorization_code") => exchange_code(a, &form, &client_id, clock, testing)?,
        Some("refresh_token") => refresh(a, &form, &client_id, clock)?,
        Some(other) => {
            return Err(YouTubeError::oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("Invalid grant_type: {other}"),
            ))
        }
    };
    a.stats.tokens_issued += 1;
    drop(store);
    ctx.common.record_secret(&grant.access);
    let mut body = json!({
        "access_token": grant.access,
        "expires_in": grant.expires_in,
        "scope": grant.scope,
        "token_type": "Bearer",
    });
    if let Some(rt) = grant.refresh {
        ctx.common.record_secret(&rt);
        body["refresh_token"] = json!(rt);
        if testing {
            body["refresh_token_expires_in"] =
                json!(clock.wire_expires_in(TESTING_REFRESH_LIFETIME));
        }
    }
    tracing::info!(platform = PLATFORM, client_id, "tokens issued");
    Ok(json_no_store(StatusCode::OK, body))
}

/// Redeems the code; a refresh token comes with the access token when the
/// consent asked for offline access (7 days in testing mode, else no end).
fn exchange_code(
    a: &mut Accounts,
    form: &HashMap<String, String>,
    client_id: &str,
    clock: &Clock,
    testing: bool,
) -> Result<Grant, YouTubeError> {
    let code = required(form, "code").ok_or_else(|| YouTubeError::missing("code"))?;
    let redirect_uri =
        required(form, "redirect_uri").ok_or_else(|| YouTubeError::missing("redirect_uri"))?;
    let now = clock.now();
    let code = a.redeem_code(code, client_id, Some(redirect_uri), now).map_err(|e| match e {
        CodeError::Unknown => YouTubeError::invalid_grant("Malformed auth code."),
        _ => YouTubeError::invalid_grant("Bad Request"),
    })?;
    if let Some(pkce) = &code.pkce {
        match required(form, "code_verifier") {
            None => return Err(YouTubeError::invalid_grant("Missing code verifier.")),
            Some(v) if !pkce.verifies(v) => {
                return Err(YouTubeError::invalid_grant("Invalid code verifier."))
            }
            Some(_) => {}
        }
    }
    let grant = a.new_grant();
    let base = accounts::grant_base(&code.user_key, client_id, code.scopes.clone(), grant, now);
    let (at, expires_in) = accounts::timed(clock, Kind::Access, &base, ACCESS_LIFETIME);
    let access = a.insert_token("ya29.", at);
    let refresh = code.offline.then(|| {
        let mut rt = Token { kind: Kind::Refresh, ..base.clone() };
        if testing {
            rt = accounts::timed(clock, Kind::Refresh, &base, TESTING_REFRESH_LIFETIME).0;
        }
        a.insert_token("1//", rt)
    });
    Ok(Grant { access, expires_in, refresh, scope: base.scopes.join(" ") })
}

/// A new access token for a live refresh token of this client.
fn refresh(
    a: &mut Accounts,
    form: &HashMap<String, String>,
    client_id: &str,
    clock: &Clock,
) -> Result<Grant, YouTubeError> {
    let rt =
        required(form, "refresh_token").ok_or_else(|| YouTubeError::missing("refresh_token"))?;
    let t = match a.check(rt, &[Kind::Refresh], clock.now()) {
        Ok(t) if t.client_id == client_id => t,
        Ok(_) => {
            return Err(YouTubeError::oauth(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "Unauthorized",
            ))
        }
        Err(Refusal::Dead(Death::Checkpoint)) => return Err(YouTubeError::InvalidRapt),
        Err(reason) => {
            tracing::info!(platform = PLATFORM, ?reason, "refresh refused");
            return Err(YouTubeError::invalid_grant("Token has been expired or revoked."));
        }
    };
    let (at, expires_in) = accounts::timed(clock, Kind::Access, &t, ACCESS_LIFETIME);
    a.stats.refreshes += 1;
    Ok(Grant {
        access: a.insert_token("ya29.", at),
        expires_in,
        refresh: None,
        scope: t.scopes.join(" "),
    })
}

/// `POST /revoke?token=…` (or in the form): revoking either token of a grant
/// revokes the whole grant.
pub(crate) async fn revoke(State(ctx): State<Ctx>, RawQuery(q): RawQuery, body: Bytes) -> Answer {
    let params = query_and_form(q.as_deref(), &body);
    let token = required(&params, "token").ok_or_else(|| YouTubeError::missing("token"))?;
    let mut s = ctx.store();
    let now = ctx.common.clock.now();
    let t = s.accounts.check(token, &[Kind::Access, Kind::Refresh], now).map_err(|_| {
        YouTubeError::oauth(StatusCode::BAD_REQUEST, "invalid_token", "Token expired or revoked")
    })?;
    s.accounts.kill_grant(t.grant, Death::Revoked);
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], "{}")
        .into_response())
}
