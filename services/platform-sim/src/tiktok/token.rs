//! TikTok's token endpoint (`authorization_code` with optional PKCE, and
//! `refresh_token`, which rotates: the presented token is spent and reusing
//! it is counted) and revocation. Client credentials travel in the form.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::wire::{Answer, TikTokError};
use super::{Ctx, PLATFORM};
use crate::accounts::{self, Accounts, Death, Kind, Refusal, Token, TokenState, DAY};
use crate::authorize::required;
use crate::support::{json_no_store, parse_form};

const ACCESS_LIFETIME: Duration = DAY;
const REFRESH_LIFETIME: Duration = Duration::from_secs(365 * DAY.as_secs());

fn authenticate_client(ctx: &Ctx, form: &HashMap<String, String>) -> Result<String, TikTokError> {
    let (Some(key), Some(secret)) = (required(form, "client_key"), required(form, "client_secret"))
    else {
        return Err(TikTokError::invalid_request("client_key and client_secret are required."));
    };
    ctx.common.authenticate_client(PLATFORM, key, secret).map(|c| c.client_id.clone()).ok_or_else(
        || {
            TikTokError::oauth(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client key or secret is incorrect.",
            )
        },
    )
}

/// `POST /v2/oauth/token/`: `authorization_code` and rotating `refresh_token`.
pub(crate) async fn token(State(ctx): State<Ctx>, body: Bytes) -> Answer {
    let form = parse_form(&body);
    let client_key = authenticate_client(&ctx, &form)?;
    let clock = &ctx.common.clock;
    let mut s = ctx.store();
    let a = &mut s.accounts;
    let base = match required(&form, "grant_type") {
        None => return Err(TikTokError::invalid_request("grant_type is required.")),
        Some("authorization_code") => exchange_code(a, &form, &client_key, clock.now())?,
        Some("refresh_token") => rotate(a, &form, &client_key, clock.now())?,
        Some(_) => {
            return Err(TikTokError::oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Grant type is not supported.",
            ))
        }
    };
    let (at, expires_in) = accounts::timed(clock, Kind::Access, &base, ACCESS_LIFETIME);
    let (rt, refresh_expires_in) = accounts::timed(clock, Kind::Refresh, &base, REFRESH_LIFETIME);
    let access = a.insert_token("act.", at);
    let refresh = a.insert_token("rft.", rt);
    a.stats.tokens_issued += 1;
    let open_id = a.user(&base.user_key).map(|u| u.id.clone()).unwrap_or_default();
    drop(s);
    ctx.common.record_secret(&access);
    ctx.common.record_secret(&refresh);
    tracing::info!(platform = PLATFORM, client_key, "tokens issued");
    Ok(json_no_store(
        StatusCode::OK,
        json!({
            "access_token": access,
            "expires_in": expires_in,
            "open_id": open_id,
            "refresh_expires_in": refresh_expires_in,
            "refresh_token": refresh,
            "scope": base.scopes.join(","),
            "token_type": "Bearer",
        }),
    ))
}

/// Redeems the code (checking the PKCE verifier when the request had a
/// challenge); returns the new grant's token template.
fn exchange_code(
    a: &mut Accounts,
    form: &HashMap<String, String>,
    client_key: &str,
    now: std::time::Instant,
) -> Result<Token, TikTokError> {
    let (Some(code), Some(redirect_uri)) = (required(form, "code"), required(form, "redirect_uri"))
    else {
        return Err(TikTokError::invalid_request("code and redirect_uri are required."));
    };
    let code = a
        .redeem_code(code, client_key, Some(redirect_uri), now)
        .map_err(|_| TikTokError::invalid_grant("Authorization code is expired."))?;
    if let Some(pkce) = &code.pkce {
        if !required(form, "code_verifier").is_some_and(|v| pkce.verifies(v)) {
            return Err(TikTokError::invalid_grant("Code verifier is invalid."));
        }
    }
    let grant = a.new_grant();
    Ok(accounts::grant_base(&code.user_key, client_key, code.scopes, grant, now))
}

/// Spends the presented refresh token (rotation); returns it as the
/// template of the new pair.
fn rotate(
    a: &mut Accounts,
    form: &HashMap<String, String>,
    client_key: &str,
    now: std::time::Instant,
) -> Result<Token, TikTokError> {
    let rt = required(form, "refresh_token")
        .ok_or_else(|| TikTokError::invalid_request("refresh_token is required."))?;
    let refused = || TikTokError::invalid_grant("Refresh token is invalid or expired.");
    match a.check(rt, &[Kind::Refresh], now) {
        Ok(t) if t.client_id == client_key => {
            if let Some(old) = a.token_mut(rt) {
                old.state = TokenState::Spent;
            }
            a.stats.refreshes += 1;
            Ok(t)
        }
        Err(Refusal::Spent) => {
            a.stats.refresh_token_reuse += 1;
            tracing::warn!(platform = PLATFORM, "spent refresh token reused");
            Err(refused())
        }
        other => {
            tracing::info!(platform = PLATFORM, reason = ?other.err(), "refresh refused");
            Err(refused())
        }
    }
}

/// `POST /v2/oauth/revoke/` with client credentials and the access `token`.
pub(crate) async fn revoke(State(ctx): State<Ctx>, body: Bytes) -> Answer {
    let form = parse_form(&body);
    let client_key = authenticate_client(&ctx, &form)?;
    let token = required(&form, "token")
        .ok_or_else(|| TikTokError::invalid_request("token is required."))?;
    let mut s = ctx.store();
    if let Some(grant) =
        s.accounts.token(token).filter(|t| t.client_id == client_key).map(|t| t.grant)
    {
        s.accounts.kill_grant(grant, Death::Revoked);
    }
    Ok((StatusCode::OK, axum::Json(json!({}))).into_response())
}
