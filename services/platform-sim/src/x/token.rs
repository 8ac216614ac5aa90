//! X's token endpoint (`authorization_code` with PKCE, rotating single-use
//! `refresh_token`: reusing a spent one revokes the whole family) and token
//! revocation, over the shared account model.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::wire::{self, Answer, XError};
use super::{Ctx, PLATFORM};
use crate::accounts::{self, Accounts, CodeError, Death, Kind, Token, TokenState};
use crate::clock::Clock;
use crate::support::{parse_basic, parse_form};

/// X access tokens live 2 hours (platform time).
const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(2 * 60 * 60);
/// X does not document it; about 6 months is reported. Each rotation starts a
/// fresh lifetime.
const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(180 * 24 * 60 * 60);

/// A successful token response.
#[derive(Debug)]
pub(crate) struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: u64,
    pub scope: String,
}

/// Why a code or refresh token was refused. X answers all of these with the
/// same `invalid_request` body; the variants exist for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantError {
    Unknown,
    Expired,
    Spent,
    Revoked,
    WrongClient,
    RedirectMismatch,
    VerifierMismatch,
    /// A spent refresh token was presented again: the family is now revoked.
    RefreshReuse,
}

impl From<CodeError> for GrantError {
    fn from(e: CodeError) -> Self {
        match e {
            CodeError::Unknown => Self::Unknown,
            CodeError::WrongClient => Self::WrongClient,
            CodeError::Spent => Self::Spent,
            CodeError::Expired => Self::Expired,
            CodeError::RedirectMismatch => Self::RedirectMismatch,
        }
    }
}

/// `authorization_code` grant. A code is spent by its first redemption
/// attempt that names the right client, even a failed one, as single-use
/// codes must not allow guessing the verifier.
fn exchange_code(
    accounts: &mut Accounts,
    code: &str,
    client_id: &str,
    redirect_uri: &str,
    verifier: &str,
    clock: &Clock,
) -> Result<TokenSet, GrantError> {
    let now = clock.now();
    let code = accounts.redeem_code(code, client_id, Some(redirect_uri), now)?;
    if !code.pkce.as_ref().is_some_and(|p| p.verifies(verifier)) {
        return Err(GrantError::VerifierMismatch);
    }
    // Every token descending from one code shares a grant (X's "family"),
    // so reuse of a spent refresh token can revoke all of them.
    let family = accounts.new_grant();
    let base = accounts::grant_base(&code.user_key, client_id, code.scopes, family, now);
    Ok(issue_tokens(accounts, &base, clock))
}

/// `refresh_token` grant: single use, rotating. Presenting a spent token
/// revokes the whole family (the legitimate holder and the thief alike,
/// which is what forces a reconnect).
fn refresh(
    accounts: &mut Accounts,
    refresh_token: &str,
    client_id: &str,
    clock: &Clock,
) -> Result<TokenSet, GrantError> {
    let now = clock.now();
    let entry = accounts
        .token_mut(refresh_token)
        .filter(|t| t.kind == Kind::Refresh)
        .ok_or(GrantError::Unknown)?;
    if entry.client_id != client_id {
        return Err(GrantError::WrongClient);
    }
    match entry.state {
        TokenState::Dead(_) => return Err(GrantError::Revoked),
        TokenState::Spent => {
            let family = entry.grant;
            accounts.kill_grant(family, Death::Revoked);
            accounts.stats.refresh_token_reuse += 1;
            return Err(GrantError::RefreshReuse);
        }
        TokenState::Live => {}
    }
    if entry.expires_at.is_some_and(|e| e <= now) {
        return Err(GrantError::Expired);
    }
    entry.state = TokenState::Spent;
    let base = entry.clone();
    accounts.stats.refreshes += 1;
    Ok(issue_tokens(accounts, &base, clock))
}

/// A 2-hour access token and, with `offline.access`, a refresh token, both
/// of `base`'s grant and scopes.
fn issue_tokens(accounts: &mut Accounts, base: &Token, clock: &Clock) -> TokenSet {
    let now = clock.now();
    let (access, expires_in) = accounts::timed(clock, Kind::Access, base, ACCESS_TOKEN_LIFETIME);
    let scope = base.scopes.join(" ");
    let refresh_token = base.has_scope("offline.access").then(|| {
        let rt = Token {
            kind: Kind::Refresh,
            issued_at: now,
            expires_at: Some(now + clock.real(REFRESH_TOKEN_LIFETIME)),
            state: TokenState::Live,
            ..base.clone()
        };
        accounts.insert_token_as(wire::opaque_token("rt"), rt)
    });
    let access_token = accounts.insert_token_as(wire::opaque_token("at"), access);
    accounts.stats.tokens_issued += 1;
    TokenSet { access_token, refresh_token, expires_in, scope }
}

/// `POST /2/oauth2/revoke`: a refresh token takes its whole family with it
/// (RFC 7009 §2.1), an access token only itself. Tokens of other clients and
/// unknown tokens are silently ignored, as RFC 7009 requires.
fn revoke_token(accounts: &mut Accounts, token: &str, client_id: &str) {
    let Some(t) = accounts.token_mut(token).filter(|t| t.client_id == client_id) else {
        return;
    };
    if t.kind == Kind::Refresh {
        let family = t.grant;
        accounts.kill_grant(family, Death::Revoked);
    } else {
        t.state = TokenState::Dead(Death::Revoked);
    }
}

/// Authenticates the client on the token and revoke endpoints: a confidential
/// client must use HTTP Basic, a public one sends `client_id` in the form.
fn authenticate_client(
    ctx: &Ctx,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, XError> {
    let form_client = form.get("client_id").filter(|s| !s.is_empty());
    if let Some(raw) = headers.get(header::AUTHORIZATION) {
        let (id, secret) =
            raw.to_str().ok().and_then(parse_basic).ok_or_else(XError::unauthorized_client)?;
        ctx.common
            .authenticate_client(PLATFORM, &id, &secret)
            .filter(|_| form_client.is_none_or(|f| *f == id))
            .ok_or_else(XError::unauthorized_client)?;
        return Ok(id);
    }
    let id = form_client.ok_or_else(XError::unauthorized_client)?;
    match ctx.common.client(PLATFORM, id) {
        Some(c) if c.client_secret.is_none() => Ok(id.clone()),
        _ => Err(XError::unauthorized_client()),
    }
}

fn token_response(set: TokenSet) -> Response {
    let mut body = json!({
        "token_type": "bearer",
        "expires_in": set.expires_in,
        "access_token": set.access_token,
        "scope": set.scope,
    });
    if let Some(rt) = set.refresh_token {
        body["refresh_token"] = json!(rt);
    }
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    wire::no_store(resp.headers_mut());
    resp
}

/// `POST /x/2/oauth2/token`.
pub(crate) async fn token(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Answer {
    let form = parse_form(&body);
    let client_id = authenticate_client(&ctx, &headers, &form)?;
    let param = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let clock = &ctx.common.clock;
    let result = match param("grant_type") {
        None => return Err(XError::missing_parameter("grant_type")),
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri), Some(verifier)) =
                (param("code"), param("redirect_uri"), param("code_verifier"))
            else {
                let missing = ["code", "redirect_uri", "code_verifier"]
                    .into_iter()
                    .find(|n| param(n).is_none())
                    .unwrap_or("code");
                return Err(XError::missing_parameter(missing));
            };
            let accounts = &mut ctx.store().accounts;
            exchange_code(accounts, code, &client_id, redirect_uri, verifier, clock)
        }
        Some("refresh_token") => {
            let rt =
                param("refresh_token").ok_or_else(|| XError::missing_parameter("refresh_token"))?;
            refresh(&mut ctx.store().accounts, rt, &client_id, clock)
        }
        Some(_) => {
            return Err(XError::oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Grant type is not supported.",
            ))
        }
    };
    let set = result.map_err(|reason| {
        if reason == GrantError::RefreshReuse {
            tracing::warn!(
                platform = PLATFORM,
                client_id,
                "spent refresh token reused: token family revoked"
            );
        } else {
            tracing::info!(platform = PLATFORM, client_id, ?reason, "grant refused");
        }
        XError::invalid_token_value()
    })?;
    ctx.common.record_secret(&set.access_token);
    if let Some(rt) = &set.refresh_token {
        ctx.common.record_secret(rt);
    }
    tracing::info!(platform = PLATFORM, client_id, "tokens issued");
    Ok(token_response(set))
}

/// `POST /x/2/oauth2/revoke`.
pub(crate) async fn revoke(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Answer {
    let form = parse_form(&body);
    let client_id = authenticate_client(&ctx, &headers, &form)?;
    let token = form
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| XError::missing_parameter("token"))?;
    revoke_token(&mut ctx.store().accounts, token, &client_id);
    tracing::info!(platform = PLATFORM, client_id, "token revoked by client");
    Ok((StatusCode::OK, axum::Json(json!({ "revoked": true }))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{AuthRequest, Code, Pkce};

    /// A code for `u`, as the authorize step issues it.
    fn code(a: &mut Accounts, method: &str, challenge: &str, scopes: &[&str]) -> String {
        let clock = Clock::new(1.0);
        let user = a.sign_in("u", |n| (n.to_string(), String::new()));
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        let request = AuthRequest {
            pkce: Some(Pkce { challenge: challenge.into(), method: method.into() }),
            ..AuthRequest::plain("app", "http://cb", scopes, None)
        };
        let code =
            Code { pkce: request.pkce.clone(), ..Code::for_request(&request, user.key, &clock) };
        a.issue_code(code)
    }

    #[test]
    fn no_refresh_token_without_offline_access() {
        let clock = Clock::new(1.0);
        let mut a = Accounts::default();
        let c = code(&mut a, "plain", "v", &["tweet.read"]);
        let set = exchange_code(&mut a, &c, "app", "http://cb", "v", &clock).expect("valid");
        assert!(set.refresh_token.is_none());
        assert_eq!(set.expires_in, 7200);
    }

    #[test]
    fn failed_redemption_spends_the_code() {
        let clock = Clock::new(1.0);
        let mut a = Accounts::default();
        let c = code(&mut a, "plain", "v", &["tweet.read"]);
        assert_eq!(
            exchange_code(&mut a, &c, "app", "http://cb", "wrong", &clock).err(),
            Some(GrantError::VerifierMismatch)
        );
        assert_eq!(
            exchange_code(&mut a, &c, "app", "http://cb", "v", &clock).err(),
            Some(GrantError::Spent)
        );
    }

    #[test]
    fn reusing_a_spent_refresh_token_revokes_the_family() {
        let clock = Clock::new(1.0);
        let mut a = Accounts::default();
        let c = code(&mut a, "plain", "v", &["tweet.read", "offline.access"]);
        let first = exchange_code(&mut a, &c, "app", "http://cb", "v", &clock).expect("valid");
        let rt = first.refresh_token.expect("offline.access gives a refresh token");
        let second = refresh(&mut a, &rt, "app", &clock).expect("first use");
        assert_eq!(refresh(&mut a, &rt, "app", &clock).err(), Some(GrantError::RefreshReuse));
        let newest = second.refresh_token.expect("rotated");
        assert_eq!(refresh(&mut a, &newest, "app", &clock).err(), Some(GrantError::Revoked));
        assert_eq!(a.stats.refresh_token_reuse, 1);
    }
}
