//! X's OAuth 2.0 endpoints: the authorize page (GET renders consent, POST
//! records the decision), the token endpoint and token revocation.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::store::{AuthRequest, ChallengeMethod, GrantError, TokenSet};
use super::wire;
use super::{Ctx, PLATFORM};
use crate::support::{parse_basic, parse_form};

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

fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> Result<&'a str, String> {
    match params.get(name).map(String::as_str) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(format!("Missing required parameter: {name}")),
    }
}

/// Validates an authorize request (from the query or, again, from the
/// consent form, whose hidden fields a client could have tampered with).
fn validate(ctx: &Ctx, params: &HashMap<String, String>) -> Result<(AuthRequest, String), String> {
    let response_type = required(params, "response_type")?;
    if response_type != "code" {
        return Err(format!("Unsupported response_type: {response_type}"));
    }
    let client_id = required(params, "client_id")?;
    if ctx.common.client(PLATFORM, client_id).is_none() {
        return Err("Invalid client_id".to_owned());
    }
    let redirect_uri = required(params, "redirect_uri")?;
    match url::Url::parse(redirect_uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.fragment().is_none() => {}
        _ => return Err("Invalid redirect_uri".to_owned()),
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
    let code_challenge = required(params, "code_challenge")?;
    let method = ChallengeMethod::parse(required(params, "code_challenge_method")?)
        .ok_or_else(|| "code_challenge_method must be S256 or plain".to_owned())?;
    Ok((
        AuthRequest {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            code_challenge: code_challenge.to_owned(),
            method,
        },
        state.to_owned(),
    ))
}

/// X usernames: 1–15 letters, digits or underscores.
fn valid_username(u: &str) -> bool {
    (1..=15).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A 302 to the (validated) redirect_uri with `pairs` appended to its query.
fn redirect_back(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return wire::authorize_error_page("Invalid redirect_uri");
    };
    url.query_pairs_mut().extend_pairs(pairs);
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => wire::authorize_error_page("Invalid redirect_uri"),
    }
}

fn approve(ctx: &Ctx, request: AuthRequest, state: &str, username: &str) -> Response {
    if !valid_username(username) {
        return wire::authorize_error_page("Invalid username");
    }
    let redirect_uri = request.redirect_uri.clone();
    let code = {
        let mut store = ctx.store();
        let (user_key, _) = store.sign_in(username);
        store.issue_code(request, user_key, &ctx.common.clock)
    };
    ctx.common.record_secret(&code);
    tracing::info!(platform = PLATFORM, username, "authorization approved");
    redirect_back(&redirect_uri, &[("state", state), ("code", &code)])
}

/// `GET /x/i/oauth2/authorize`: the consent page, or an immediate approval
/// when `sim_approve_as=<username>` is given (scripts without a browser).
pub(crate) async fn authorize_page(State(ctx): State<Ctx>, RawQuery(query): RawQuery) -> Response {
    let params = parse_form(query.unwrap_or_default().as_bytes());
    let (request, state) = match validate(&ctx, &params) {
        Ok(v) => v,
        Err(detail) => return wire::authorize_error_page(&detail),
    };
    if let Some(username) = params.get("sim_approve_as") {
        return approve(&ctx, request, &state, username);
    }
    let hidden: Vec<(&str, &str)> =
        CARRIED.iter().filter_map(|k| params.get(*k).map(|v| (*k, v.as_str()))).collect();
    wire::consent_page(&request.client_id, &request.scopes, &hidden)
}

/// `POST /x/i/oauth2/authorize`: the consent form's decision.
pub(crate) async fn authorize_decision(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let params = parse_form(&body);
    let (request, state) = match validate(&ctx, &params) {
        Ok(v) => v,
        Err(detail) => return wire::authorize_error_page(&detail),
    };
    match params.get("decision").map(String::as_str) {
        Some("approve") => {
            let username = params.get("username").map_or("demo_user", |u| u.trim());
            approve(&ctx, request, &state, username)
        }
        Some("deny") => {
            tracing::info!(platform = PLATFORM, "authorization denied");
            redirect_back(&request.redirect_uri, &[("error", "access_denied"), ("state", &state)])
        }
        _ => wire::authorize_error_page("Missing required parameter: decision"),
    }
}

/// Authenticates the client on the token and revoke endpoints: a confidential
/// client must use HTTP Basic, a public one sends `client_id` in the form.
fn authenticate_client(
    ctx: &Ctx,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, wire::UnauthorizedClient> {
    let form_client = form.get("client_id").filter(|s| !s.is_empty());
    if let Some(raw) = headers.get(header::AUTHORIZATION) {
        let (id, secret) =
            raw.to_str().ok().and_then(parse_basic).ok_or(wire::UnauthorizedClient)?;
        let client = ctx.common.client(PLATFORM, &id).ok_or(wire::UnauthorizedClient)?;
        if client.client_secret.as_deref() != Some(secret.as_str()) {
            return Err(wire::UnauthorizedClient);
        }
        if form_client.is_some_and(|f| *f != id) {
            return Err(wire::UnauthorizedClient);
        }
        return Ok(id);
    }
    let id = form_client.ok_or(wire::UnauthorizedClient)?;
    match ctx.common.client(PLATFORM, id) {
        Some(c) if c.client_secret.is_none() => Ok(id.clone()),
        _ => Err(wire::UnauthorizedClient),
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
pub(crate) async fn token(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let client_id = match authenticate_client(&ctx, &headers, &form) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let param = |name: &str| form.get(name).filter(|v| !v.is_empty());
    let clock = &ctx.common.clock;

    let result = match param("grant_type").map(String::as_str) {
        None => return wire::missing_parameter("grant_type"),
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri), Some(verifier)) =
                (param("code"), param("redirect_uri"), param("code_verifier"))
            else {
                let missing = ["code", "redirect_uri", "code_verifier"]
                    .into_iter()
                    .find(|n| param(n).is_none())
                    .unwrap_or("code");
                return wire::missing_parameter(missing);
            };
            ctx.store().exchange_code(code, &client_id, redirect_uri, verifier, clock)
        }
        Some("refresh_token") => {
            let Some(rt) = param("refresh_token") else {
                return wire::missing_parameter("refresh_token");
            };
            ctx.store().refresh(rt, &client_id, clock)
        }
        Some(_) => {
            return wire::oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Grant type is not supported.",
            )
        }
    };

    match result {
        Ok(set) => {
            ctx.common.record_secret(&set.access_token);
            if let Some(rt) = &set.refresh_token {
                ctx.common.record_secret(rt);
            }
            tracing::info!(platform = PLATFORM, client_id, "tokens issued");
            token_response(set)
        }
        Err(reason) => {
            if reason == GrantError::RefreshReuse {
                tracing::warn!(
                    platform = PLATFORM,
                    client_id,
                    "spent refresh token reused: token family revoked"
                );
            } else {
                tracing::info!(platform = PLATFORM, client_id, ?reason, "grant refused");
            }
            wire::invalid_token_value()
        }
    }
}

/// `POST /x/2/oauth2/revoke`.
pub(crate) async fn revoke(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let client_id = match authenticate_client(&ctx, &headers, &form) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return wire::missing_parameter("token");
    };
    ctx.store().revoke_token(token, &client_id);
    tracing::info!(platform = PLATFORM, client_id, "token revoked by client");
    (StatusCode::OK, axum::Json(json!({ "revoked": true }))).into_response()
}
