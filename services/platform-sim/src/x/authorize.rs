//! X's authorize page: GET validates the request and renders consent (or,
//! with `sim_approve_as=<username>`, approves at once), POST records the
//! decision. X's own pages and rules, so not the shared `crate::authorize`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::wire::{self, Answer, XError};
use super::{Ctx, PLATFORM};
use crate::accounts::{AuthRequest, Code, Pkce, CODE_MIN_REAL_LIFETIME};
use crate::support::{parse_form, redirect_to, valid_redirect_uri};

/// Scopes X's OAuth 2.0 knows; anything else fails the authorize request.
const KNOWN_SCOPES: &[&str] = &[
    "tweet.read",
    "tweet.write",
    "tweet.moderate.write",
    "users.email",
    "users.read",
    "follows.read",
    "follows.write",
    "offline.access",
    "space.read",
    "mute.read",
    "mute.write",
    "like.read",
    "like.write",
    "list.read",
    "list.write",
    "block.read",
    "block.write",
    "bookmark.read",
    "bookmark.write",
    "dm.read",
    "dm.write",
    "media.write",
];

/// Parameters of an authorize request that must survive the consent page.
const CARRIED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// X authorization codes are short-lived: 30 platform seconds (but never
/// less than `CODE_MIN_REAL_LIFETIME`).
const CODE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30);

/// First user id handed out; X user ids are large numeric strings.
const FIRST_USER_ID: u64 = 1_440_000_000_000_000_000;

fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> Result<&'a str, String> {
    crate::authorize::required(params, name)
        .ok_or_else(|| format!("Missing required parameter: {name}"))
}

/// Validates an authorize request (from the query or, again, from the
/// consent form, whose hidden fields a client could have tampered with).
/// PKCE is mandatory and `state` too, so the request always carries both.
fn validate(ctx: &Ctx, params: &HashMap<String, String>) -> Result<AuthRequest, String> {
    let response_type = required(params, "response_type")?;
    if response_type != "code" {
        return Err(format!("Unsupported response_type: {response_type}"));
    }
    let client_id = required(params, "client_id")?;
    if ctx.common.client(PLATFORM, client_id).is_none() {
        return Err("Invalid client_id".to_owned());
    }
    let redirect_uri = required(params, "redirect_uri")?;
    if !valid_redirect_uri(redirect_uri) {
        return Err("Invalid redirect_uri".to_owned());
    }
    let scopes: Vec<String> =
        required(params, "scope")?.split_whitespace().map(str::to_owned).collect();
    if scopes.is_empty() {
        return Err("Missing required parameter: scope".to_owned());
    }
    if let Some(bad) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
        return Err(format!("Invalid scope: {bad}"));
    }
    let state = required(params, "state")?;
    let challenge = required(params, "code_challenge")?;
    let method = required(params, "code_challenge_method")?;
    if method != "S256" && method != "plain" {
        return Err("code_challenge_method must be S256 or plain".to_owned());
    }
    let pkce = Pkce { challenge: challenge.to_owned(), method: method.to_owned() };
    Ok(AuthRequest {
        pkce: Some(pkce),
        ..AuthRequest::plain(client_id, redirect_uri, scopes, Some(state.to_owned()))
    })
}

/// X usernames: 1–15 letters, digits or underscores.
fn valid_username(u: &str) -> bool {
    (1..=15).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A 302 to the (validated) redirect_uri with `pairs` appended to its query.
fn redirect_back(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    redirect_to(redirect_uri, pairs)
        .unwrap_or_else(|| wire::authorize_error_page("Invalid redirect_uri"))
}

fn approve(ctx: &Ctx, request: &AuthRequest, username: &str) -> Answer {
    if !valid_username(username) {
        return Err(XError::AuthorizePage("Invalid username".to_owned()));
    }
    let clock = &ctx.common.clock;
    let code = {
        let accounts = &mut ctx.store().accounts;
        let user = accounts.sign_in(username, |n| ((FIRST_USER_ID + n).to_string(), String::new()));
        let code = Code {
            expires_at: clock.now() + clock.real_at_least(CODE_LIFETIME, CODE_MIN_REAL_LIFETIME),
            pkce: request.pkce.clone(),
            ..Code::for_request(request, user.key, clock)
        };
        accounts.issue_code_as(wire::opaque_token("ac"), code)
    };
    ctx.common.record_secret(&code);
    tracing::info!(platform = PLATFORM, username, "authorization approved");
    let state = request.state.as_deref().unwrap_or_default();
    Ok(redirect_back(&request.redirect_uri, &[("state", state), ("code", &code)]))
}

/// `GET /x/i/oauth2/authorize`: the consent page, or an immediate approval
/// when `sim_approve_as=<username>` is given (scripts without a browser).
pub(crate) async fn authorize_page(State(ctx): State<Ctx>, RawQuery(query): RawQuery) -> Answer {
    let params = parse_form(query.unwrap_or_default().as_bytes());
    let request = validate(&ctx, &params).map_err(XError::AuthorizePage)?;
    if let Some(username) = params.get("sim_approve_as") {
        return approve(&ctx, &request, username);
    }
    let hidden: Vec<(&str, &str)> =
        CARRIED.iter().filter_map(|k| params.get(*k).map(|v| (*k, v.as_str()))).collect();
    Ok(wire::consent_page(&request.client_id, &request.scopes, &hidden))
}

/// `POST /x/i/oauth2/authorize`: the consent form's decision.
pub(crate) async fn authorize_decision(State(ctx): State<Ctx>, body: Bytes) -> Answer {
    let params = parse_form(&body);
    let request = validate(&ctx, &params).map_err(XError::AuthorizePage)?;
    match params.get("decision").map(String::as_str) {
        Some("approve") => {
            let username = params.get("username").map_or("demo_user", |u| u.trim());
            approve(&ctx, &request, username)
        }
        Some("deny") => {
            tracing::info!(platform = PLATFORM, "authorization denied");
            let state = request.state.as_deref().unwrap_or_default();
            Ok(redirect_back(
                &request.redirect_uri,
                &[("error", "access_denied"), ("state", state)],
            ))
        }
        _ => Err(XError::AuthorizePage("Missing required parameter: decision".to_owned())),
    }
}
