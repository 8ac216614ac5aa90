//! The Meta-login tokens: the code exchange (code → 1-hour token), the
//! exchange for a 60-day token (`ig_exchange_token` / `th_exchange_token`)
//! and the refresh of a long-lived token by itself once ≥ 24 h old.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::api::caller;
use super::wire::{long_lived_response, CodeExchangeError};
use super::{Call, CodeErrors, Ctx};
use crate::accounts::{self, CodeError, Kind, Token, DAY, HOUR};
use crate::authorize::required;
use crate::graph::{self, Answer, GraphError};
use crate::support::{json_no_store, query_and_form};

const SHORT_LIVED: Duration = HOUR;
const LONG_LIVED: Duration = Duration::from_secs(60 * 24 * 60 * 60);

/// Code → short-lived token (`POST /oauth/access_token` on the API host).
pub(crate) async fn code_exchange(
    State(ctx): State<Ctx>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, CodeExchangeError> {
    exchange_code(&ctx, &query_and_form(q.as_deref(), &body))
}

/// Code → short-lived token, on whichever host the platform serves it.
pub(crate) fn exchange_code(
    ctx: &Ctx,
    params: &HashMap<String, String>,
) -> Result<Response, CodeExchangeError> {
    let cfg = ctx.cfg();
    let fail = |e: GraphError| CodeExchangeError::new(cfg, e);
    for name in ["client_id", "client_secret", "grant_type", "redirect_uri", "code"] {
        if required(params, name).is_none() {
            return Err(fail(GraphError::new(100, format!("Missing required field {name}"))));
        }
    }
    let p = |n: &str| params.get(n).map(String::as_str).unwrap_or_default();
    let client = ctx
        .common
        .client(cfg.platform, p("client_id"))
        .ok_or_else(|| fail(GraphError::new(101, "Invalid platform app")))?;
    if client.client_secret.as_deref() != Some(p("client_secret")) {
        return Err(fail(graph::bad_client_secret()));
    }
    if p("grant_type") != "authorization_code" {
        return Err(fail(graph::invalid_param("Unsupported grant_type")));
    }
    let now = ctx.common.clock.now();
    let mut store = ctx.store();
    let code = store
        .accounts
        .redeem_code(p("code"), p("client_id"), Some(p("redirect_uri")), now)
        .map_err(|e| fail(code_error(cfg.code_errors, e)))?;
    let grant = store.accounts.new_grant();
    let base =
        accounts::grant_base(&code.user_key, &code.client_id, code.scopes.clone(), grant, now);
    let (token, _) = accounts::timed(&ctx.common.clock, Kind::ShortLived, &base, SHORT_LIVED);
    let access = store.accounts.insert_token(cfg.token_prefix, token);
    store.accounts.stats.tokens_issued += 1;
    let user = store.accounts.user(&code.user_key).cloned().ok_or_else(|| CodeExchangeError {
        format: CodeErrors::Graph,
        error: graph::invalid_param("Invalid user"),
    })?;
    drop(store);
    ctx.common.record_secret(&access);
    tracing::info!(platform = cfg.platform, "short-lived token issued");
    Ok(json_no_store(StatusCode::OK, (cfg.code_response)(&access, &user, &code.scopes)))
}

/// A code's failure in the words of the host that exchanges it.
fn code_error(format: CodeErrors, e: CodeError) -> GraphError {
    match (format, e) {
        (CodeErrors::Instagram, CodeError::Spent) => {
            GraphError::new(100, "This authorization code has been used")
        }
        (CodeErrors::Instagram, CodeError::RedirectMismatch) => {
            GraphError::new(100, "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request")
        }
        (CodeErrors::Instagram, _) => GraphError::new(100, "Invalid authorization code"),
        (CodeErrors::Graph, e) => graph::code_error(e),
    }
}

/// `grant_type` must be the platform's `expected` one.
fn grant_type(params: &HashMap<String, String>, expected: &str) -> Result<(), GraphError> {
    match required(params, "grant_type") {
        None => Err(graph::missing_param("grant_type")),
        Some(g) if g != expected => {
            Err(graph::invalid_param(format!("Unsupported grant_type: {g}")))
        }
        Some(_) => Ok(()),
    }
}

/// Issues a 60-day token descending from `t` and answers it.
fn long_lived(ctx: &Ctx, t: &Token, refresh: bool) -> Response {
    let cfg = ctx.cfg();
    let (token, expires_in) = accounts::timed(&ctx.common.clock, Kind::LongLived, t, LONG_LIVED);
    let access = {
        let mut store = ctx.store();
        store.accounts.stats.tokens_issued += 1;
        if refresh {
            store.accounts.stats.refreshes += 1;
        }
        store.accounts.insert_token(cfg.token_prefix, token)
    };
    ctx.common.record_secret(&access);
    if refresh {
        tracing::info!(platform = cfg.platform, "long-lived token refreshed");
    } else {
        tracing::info!(platform = cfg.platform, "long-lived token issued");
    }
    long_lived_response(&access, expires_in)
}

/// `GET /access_token?grant_type=<exchange>&client_secret=…&access_token=…`.
pub(crate) fn exchange(call: &Call<'_>) -> Answer {
    let (ctx, params) = (call.ctx, call.params);
    let cfg = ctx.cfg();
    grant_type(params, cfg.exchange_grant)?;
    let secret =
        required(params, "client_secret").ok_or_else(|| graph::missing_param("client_secret"))?;
    let t = caller(call)?;
    if ctx.common.authenticate_client(cfg.platform, &t.client_id, secret).is_none() {
        return Err(graph::bad_client_secret());
    }
    if t.kind != Kind::ShortLived {
        return Err(graph::invalid_param("The access token must be a short-lived token"));
    }
    Ok(long_lived(ctx, &t, false))
}

/// `GET /refresh_access_token?grant_type=<refresh>&access_token=…`: only a
/// long-lived token at least 24 hours old and unexpired.
pub(crate) fn refresh(call: &Call<'_>) -> Answer {
    let (ctx, params) = (call.ctx, call.params);
    grant_type(params, ctx.cfg().refresh_grant)?;
    let t = caller(call)?;
    if t.kind != Kind::LongLived {
        return Err(graph::invalid_param(
            "Short-lived access tokens cannot be refreshed: exchange them first",
        ));
    }
    let clock = &ctx.common.clock;
    if clock.now().saturating_duration_since(t.issued_at) < clock.real(DAY) {
        return Err(graph::invalid_param(
            "The access token is too new to be refreshed: long-lived tokens can be refreshed once they are at least 24 hours old",
        ));
    }
    Ok(long_lived(ctx, &t, true))
}
