//! LinkedIn's token endpoint (`authorization_code`, and `refresh_token`
//! which returns the same refresh token with what is left of its 365 days)
//! and revocation. Client credentials travel in the form.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::wire::{Answer, LinkedInError};
use super::{Ctx, PLATFORM};
use crate::accounts::{self, Death, Kind};
use crate::authorize::required;
use crate::support::{json_no_store, parse_form};

const ACCESS_LIFETIME: Duration = Duration::from_secs(60 * 24 * 60 * 60);
const REFRESH_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// What a successful grant answers.
struct Grant {
    access: String,
    expires_in: u64,
    refresh: String,
    refresh_expires_in: u64,
    scope: String,
}

/// LinkedIn takes client_id and client_secret in the form.
fn authenticate_client(ctx: &Ctx, form: &HashMap<String, String>) -> Result<String, LinkedInError> {
    let id = required(form, "client_id").ok_or_else(|| LinkedInError::missing("client_id"))?;
    let secret =
        required(form, "client_secret").ok_or_else(|| LinkedInError::missing("client_secret"))?;
    ctx.common.authenticate_client(PLATFORM, id, secret).map(|c| c.client_id.clone()).ok_or_else(
        || {
            LinkedInError::oauth(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed",
            )
        },
    )
}

/// `POST /oauth/v2/accessToken`: `authorization_code` and `refresh_token`.
pub(crate) async fn token(State(ctx): State<Ctx>, body: Bytes) -> Answer {
    let form = parse_form(&body);
    let grant_type =
        required(&form, "grant_type").ok_or_else(|| LinkedInError::missing("grant_type"))?;
    let client_id = authenticate_client(&ctx, &form)?;
    let grant = match grant_type {
        "authorization_code" => exchange_code(&ctx, &form, &client_id)?,
        "refresh_token" => refresh(&ctx, &form, &client_id)?,
        other => {
            return Err(LinkedInError::oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("Grant type \"{other}\" is not supported"),
            ))
        }
    };
    ctx.common.record_secret(&grant.access);
    if grant_type == "authorization_code" {
        ctx.common.record_secret(&grant.refresh);
    }
    tracing::info!(platform = PLATFORM, client_id, grant_type, "tokens issued");
    Ok(json_no_store(
        StatusCode::OK,
        json!({
            "access_token": grant.access,
            "expires_in": grant.expires_in,
            "refresh_token": grant.refresh,
            "refresh_token_expires_in": grant.refresh_expires_in,
            "scope": grant.scope,
            "token_type": "Bearer",
        }),
    ))
}

fn exchange_code(
    ctx: &Ctx,
    form: &HashMap<String, String>,
    client_id: &str,
) -> Result<Grant, LinkedInError> {
    let code = required(form, "code").ok_or_else(|| LinkedInError::missing("code"))?;
    let redirect_uri =
        required(form, "redirect_uri").ok_or_else(|| LinkedInError::missing("redirect_uri"))?;
    let clock = &ctx.common.clock;
    let now = clock.now();
    let mut a = ctx.accounts();
    let code = a.redeem_code(code, client_id, Some(redirect_uri), now).map_err(|reason| {
        tracing::info!(platform = PLATFORM, ?reason, "code refused");
        LinkedInError::invalid_grant(
            "Unable to retrieve access token: appid/redirect uri/code verifier does not match authorization code. Or authorization code expired.",
        )
    })?;
    let grant = a.new_grant();
    let base = accounts::grant_base(&code.user_key, client_id, code.scopes, grant, now);
    let (at, expires_in) = accounts::timed(clock, Kind::Access, &base, ACCESS_LIFETIME);
    let (rt, refresh_expires_in) = accounts::timed(clock, Kind::Refresh, &base, REFRESH_LIFETIME);
    let scope = base.scopes.join(",");
    let access = a.insert_token("AQV", at);
    let refresh = a.insert_token("AQW", rt);
    a.stats.tokens_issued += 1;
    Ok(Grant { access, expires_in, refresh, refresh_expires_in, scope })
}

fn refresh(
    ctx: &Ctx,
    form: &HashMap<String, String>,
    client_id: &str,
) -> Result<Grant, LinkedInError> {
    let rt =
        required(form, "refresh_token").ok_or_else(|| LinkedInError::missing("refresh_token"))?;
    let clock = &ctx.common.clock;
    let now = clock.now();
    let mut a = ctx.accounts();
    let t = match a.check(rt, &[Kind::Refresh], now) {
        Ok(t) if t.client_id == client_id => t,
        other => {
            tracing::info!(platform = PLATFORM, reason = ?other.err(), "refresh refused");
            return Err(LinkedInError::invalid_grant(
                "The provided authorization grant or refresh token is invalid, expired or revoked.",
            ));
        }
    };
    let (at, expires_in) = accounts::timed(clock, Kind::Access, &t, ACCESS_LIFETIME);
    let access = a.insert_token("AQV", at);
    // Not extended: what is left of the 365 days since the first grant.
    let left = t.expires_at.map_or(0, |e| e.saturating_duration_since(now).as_secs());
    a.stats.tokens_issued += 1;
    a.stats.refreshes += 1;
    Ok(Grant {
        access,
        expires_in,
        refresh: rt.to_owned(),
        refresh_expires_in: left.max(1),
        scope: t.scopes.join(","),
    })
}

/// `POST /oauth/v2/revoke` with client credentials and `token`.
pub(crate) async fn revoke(State(ctx): State<Ctx>, body: Bytes) -> Answer {
    let form = parse_form(&body);
    let client_id = authenticate_client(&ctx, &form)?;
    let token = required(&form, "token").ok_or_else(|| LinkedInError::missing("token"))?;
    let mut a = ctx.accounts();
    if let Some(grant) = a.token(token).filter(|t| t.client_id == client_id).map(|t| t.grant) {
        a.kill_grant(grant, Death::Revoked);
    }
    Ok(StatusCode::OK.into_response())
}
