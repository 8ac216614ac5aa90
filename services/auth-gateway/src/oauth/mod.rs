//! Connect and reconnect through OAuth: start an authorization (`start.rs`: state + PKCE kept
//! server-side, the flow bound to the starting browser by a cookie), and complete it in the
//! callback (here). The
//! state is single use and short-lived; a forged, expired, replayed or other-browser callback
//! gets a 4xx and changes nothing. A new identity joins a workspace only after the user confirms
//! it on the gateway's own page; a consent that lacks a permission publishing needs stores
//! nothing and offers to ask again (`pending.rs`).

mod binding;
pub(crate) mod pending;
pub(crate) mod start;
mod store;

use std::time::Duration;

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use lifeline_kit::{
    http::ApiError,
    ids::{AccountId, WorkspaceId},
    openapi::{ErrorBody, PlatformName},
    Platform,
};
use lifeline_platforms::{AccessToken, Failure, PlatformUser};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use start::verifier_context;

pub(crate) fn routes() -> Router<AppState> {
    let pages = Router::new()
        .route("/oauth/callback/{platform}", get(callback))
        .route("/oauth/confirm", post(pending::confirm))
        .route("/oauth/ask-again", post(pending::ask_again))
        .layer(axum::middleware::map_response(crate::page::security_headers));
    Router::new()
        .route("/v1/accounts/connect", post(start::start_connect))
        .route("/v1/accounts/{id}/reconnect", post(start::start_reconnect))
        .merge(pages)
}

/// What the platform sends back (RFC 6749 §4.1.2).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    /// The single-use state Lifeline put in the authorize URL.
    #[param(max_length = 512)]
    state: Option<String>,
    /// The authorization code, when the user approved.
    code: Option<String>,
    /// The platform's error code, when the user did not approve.
    error: Option<String>,
    error_description: Option<String>,
}

/// `result` of a stored authorization.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only
enum StoredResult {
    /// A new account joined the workspace.
    Connected,
    /// An existing account got new tokens and is healthy.
    Reconnected,
}

/// What an authorization stored, as JSON (`Accept: application/json`).
#[derive(Serialize, ToSchema)]
pub(crate) struct CallbackOutcome {
    #[schema(value_type = StoredResult)]
    result: &'static str,
    account_id: AccountId,
    #[schema(value_type = PlatformName)]
    platform: Platform,
    platform_user_id: String,
    username: String,
}

/// The callback's JSON answer: stored, or a new identity waiting for `POST /oauth/confirm`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // a schema only: the two answers are built apart
pub(crate) enum CallbackAnswer {
    Stored(CallbackOutcome),
    ConfirmationRequired(pending::ConfirmationRequired),
}

impl CallbackOutcome {
    fn new(
        result: &'static str,
        account_id: AccountId,
        platform: Platform,
        user: &PlatformUser,
    ) -> Self {
        CallbackOutcome {
            result,
            account_id,
            platform,
            platform_user_id: user.id.clone(),
            username: user.username.clone(),
        }
    }
}

struct CallbackError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl CallbackError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        CallbackError { status, code, message: message.into() }
    }
}

impl From<sqlx::Error> for CallbackError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "callback failed on the database");
        CallbackError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; nothing was changed, please try again",
        )
    }
}

/// What the user reads when the callback was opened in a browser that did not start the flow.
const OTHER_BROWSER: &str = "This connection was started in another browser (or this browser lost \
its cookie), so for your safety nothing was connected. Open the Accounts page in this browser and \
start connecting from there.";

/// A refused callback or decision, as a page or JSON; counted by reason.
fn refused(e: CallbackError, json: bool) -> Response {
    tracing::warn!(code = e.code, status = e.status.as_u16(), message = %e.message, "oauth step refused");
    metrics::counter!("lifeline_oauth_callbacks_refused_total", "reason" => e.code).increment(1);
    if json {
        return ApiError::new(e.status, e.code, e.message).into_response();
    }
    let page = crate::page::message_page("Connection not completed", &e.message);
    (e.status, Html(page)).into_response()
}

/// Stored: the cookie of the finished flow is removed; a browser goes back to the Accounts page
/// (`/?connected=<id>` or `/?reconnected=<id>`), which tells what happened.
fn stored_answer(
    app: &AppState,
    outcome: CallbackOutcome,
    state_hash: &str,
    json: bool,
) -> Response {
    let clear = binding::clear_cookie(&app.config.page, state_hash);
    if json {
        return ([(header::SET_COOKIE, clear)], Json(outcome)).into_response();
    }
    let location = format!("/?{}={}", outcome.result, outcome.account_id);
    (StatusCode::SEE_OTHER, [(header::LOCATION, location), (header::SET_COOKIE, clear)])
        .into_response()
}

fn completed(outcome: &CallbackOutcome) {
    tracing::info!(account = %outcome.account_id, platform = %outcome.platform, result = outcome.result, "authorization completed");
    metrics::counter!("lifeline_accounts_authorized_total", "platform" => outcome.platform.as_str(), "result" => outcome.result).increment(1);
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// What the callback ended in.
enum Completed {
    Stored(CallbackOutcome, String),
    Pending(pending::Pending),
}

/// Where the platform sends the browser back: completes the authorization. JSON with `Accept:
/// application/json`, else the gateway's pages.
///
/// Only the browser that started the flow completes it: the request must carry the binding
/// cookie `lifeline_oauth_<16 hex>` the start answer set (its name derives from the state, so it
/// is not a fixed security scheme). The state is single use; a refused callback changes nothing.
///
/// The span makes the callback the root of the reconnect's trace: its context travels with
/// AccountReconnected to the retries and the retried publishes.
#[utoipa::path(
    get,
    path = "/oauth/callback/{platform}",
    operation_id = "oauth_callback",
    tag = "oauth",
    params(("platform" = PlatformName, Path, description = "The platform the authorization was started on."), CallbackQuery),
    responses(
        (status = 200, description = "JSON: the account was stored (`connected`, `reconnected`), or a new identity waits \
            for confirmation (`confirmation_required`). HTML: the confirmation page (\"Connect @handle (Platform) to workspace …?\").",
            content((CallbackAnswer = "application/json"), (String = "text/html"))),
        (status = 303, description = "Stored: back to the Accounts page (`/?connected=<id>` or `/?reconnected=<id>`); \
            the flow's cookie is cleared.", headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 400, description = "`malformed_callback`, `missing_state`, `unknown_state`, `state_already_used`, \
            `state_expired`, `platform_mismatch`, `authorization_denied` (the user said no), `missing_code`, \
            `platform_not_configured`, `authorization_refused` (the platform refused the code).",
            content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 403, description = "`oauth_binding_mismatch`: the flow was started in another browser; the state is used up.",
            content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 404, description = "`unknown_platform`; `account_gone`: the account being reconnected was disconnected.",
            content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 409, description = "`different_user`: a reconnect signed in as another platform user; nothing changed.",
            content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 422, description = "`permission_missing`: the consent lacked a permission publishing needs; nothing was \
            stored. JSON `details`: `missing` [{`permission`, `why`}], `ask_again_url`, `confirmation` (for \
            `POST /oauth/ask-again`), `account_needs_reconnect`. HTML: the page that offers to ask again.",
            content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 500, description = "`internal`: nothing was changed.",
            content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 502, description = "`platform_unavailable`: the platform could not be reached; nothing was changed.",
            content((ErrorBody = "application/json"), (String = "text/html"))),
    ),
)]
#[tracing::instrument(name = "oauth_callback", skip_all, fields(platform = %platform))]
pub(crate) async fn callback(
    State(app): State<AppState>,
    Path(platform): Path<String>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let json = wants_json(&headers);
    match complete(&app, &platform, &headers, query).await {
        Ok(Completed::Stored(outcome, state_hash)) => {
            stored_answer(&app, outcome, &state_hash, json)
        }
        Ok(Completed::Pending(p)) => pending::answer(p, json),
        Err(e) => refused(e, json),
    }
}

struct Session {
    state_hash: String,
    workspace: WorkspaceId,
    platform: Platform,
    account: Option<AccountId>,
    key_id: String,
    pkce_verifier: Option<Vec<u8>>,
}

async fn complete(
    app: &AppState,
    platform: &str,
    headers: &HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Completed, CallbackError> {
    let bad = |code, msg: &str| CallbackError::new(StatusCode::BAD_REQUEST, code, msg);
    let Query(q) = query
        .map_err(|_| bad("malformed_callback", "The callback's query string is malformed."))?;
    let platform: Platform = platform.parse().map_err(|_| {
        CallbackError::new(StatusCode::NOT_FOUND, "unknown_platform", "Unknown platform.")
    })?;
    let state = q.state.filter(|s| !s.is_empty() && s.len() <= 512).ok_or_else(|| {
        bad(
            "missing_state",
            "The callback has no state; start connecting again from the Accounts page.",
        )
    })?;
    let session = claim_session(app, &state, platform, headers).await?;

    if let Some(err) = q.error {
        let why = q.error_description.unwrap_or_default();
        tracing::info!(%platform, error = %err, "user did not authorize");
        return Err(bad(
            "authorization_denied",
            &format!(
                "{platform} did not authorize Lifeline ({err}{}). Nothing was changed.",
                if why.is_empty() { String::new() } else { format!(": {why}") }
            ),
        ));
    }
    let code = q
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("missing_code", "The callback has no authorization code."))?;
    let connector = app
        .connectors
        .get(platform)
        .ok_or_else(|| bad("platform_not_configured", "This platform is not configured."))?;

    let verifier = match &session.pkce_verifier {
        Some(sealed) => Some(
            app.config
                .vault_keys
                .open_bound(&session.key_id, &verifier_context(&session.state_hash), sealed)
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot open the PKCE verifier");
                    CallbackError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "internal error; start connecting again",
                    )
                })?,
        ),
        None => None,
    };
    let granted_at = Utc::now();
    let grant =
        connector.exchange_code(&code, verifier.as_ref()).await.map_err(platform_refused)?;
    let token = AccessToken {
        secret: grant.access_token.clone(),
        expires_at: grant.access_expires_at(granted_at),
    };
    let user = connector.identify(&token).await.map_err(platform_refused)?;
    let tokens = store::tokens(&grant, granted_at);
    let missing = lifeline_platforms::missing_for_publishing(platform, &tokens.scopes);

    let mut tx = app.pool.begin().await?;
    let existing = store::existing_account(&mut tx, &session, &user).await?;
    let done = if !missing.is_empty() {
        // Nothing is stored; an account being renewed is (or stays) broken, with the reason.
        let reconnect = existing.is_some();
        if let Some((account, _, _)) = existing {
            store::refuse_reconnect(app, &mut tx, &session, account, &missing).await?;
        }
        tracing::info!(%platform, missing = missing.len(), reconnect, "consent lacked permissions publishing needs");
        metrics::counter!("lifeline_oauth_callbacks_refused_total", "reason" => "permission_missing")
            .increment(1);
        let ask = pending::Ask::AskAgain { missing, reconnect };
        let p = pending::park(app, &mut tx, &session, &user, ask).await?;
        Completed::Pending(p)
    } else if existing.is_some() {
        let outcome = store::store(app, &mut tx, &session, &user, &tokens).await?;
        completed(&outcome);
        Completed::Stored(outcome, session.state_hash.clone())
    } else {
        let p =
            pending::park(app, &mut tx, &session, &user, pending::Ask::Confirm(&tokens)).await?;
        Completed::Pending(p)
    };
    tx.commit().await?;
    app.outbox.wake();
    Ok(done)
}

fn platform_refused(f: Failure) -> CallbackError {
    match f {
        Failure::Auth { .. } | Failure::Rejected { .. } => CallbackError::new(
            StatusCode::BAD_REQUEST,
            "authorization_refused",
            format!("The platform refused the authorization ({f}). Nothing was changed; please try again."),
        ),
        other => CallbackError::new(
            StatusCode::BAD_GATEWAY,
            "platform_unavailable",
            format!("The platform could not be reached ({other}). Nothing was changed; please try again."),
        ),
    }
}

/// Marks the session used and returns it; unknown, used, expired, wrong-platform and
/// other-browser states are refused (an other-browser state is used up too, so a link sent to
/// someone else is dead once opened). Claiming commits at once, so a state can never be used
/// twice, even by a racing request.
async fn claim_session(
    app: &AppState,
    state: &str,
    platform: Platform,
    headers: &HeaderMap,
) -> Result<Session, CallbackError> {
    let state_hash = crate::secret::hash(state);
    let mut tx = app.pool.begin().await?;
    let row = sqlx::query(
        "SELECT workspace_id, platform, account_id, key_id, pkce_verifier, expires_at, used_at, binding_hash
         FROM gateway.oauth_sessions WHERE state_hash = $1 FOR UPDATE",
    )
    .bind(&state_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let bad = |code, msg: &str| CallbackError::new(StatusCode::BAD_REQUEST, code, msg);
    let row = row.ok_or_else(|| bad("unknown_state", "This authorization is not one Lifeline started. Start connecting again from the Accounts page."))?;
    let used_at: Option<DateTime<Utc>> = row.try_get("used_at")?;
    if used_at.is_some() {
        return Err(bad(
            "state_already_used",
            "This authorization was already used. Start connecting again from the Accounts page.",
        ));
    }
    let use_up =
        sqlx::query("UPDATE gateway.oauth_sessions SET used_at = now() WHERE state_hash = $1")
            .bind(&state_hash);
    let binding_hash: Option<String> = row.try_get("binding_hash")?;
    if !binding::matches(headers, &state_hash, binding_hash.as_deref()) {
        use_up.execute(&mut *tx).await?;
        tx.commit().await?;
        return Err(CallbackError::new(
            StatusCode::FORBIDDEN,
            "oauth_binding_mismatch",
            OTHER_BROWSER,
        ));
    }
    let expires_at: DateTime<Utc> = row.try_get("expires_at")?;
    if expires_at <= Utc::now() {
        return Err(bad("state_expired", "This authorization took too long and expired. Start connecting again from the Accounts page."));
    }
    let session_platform: String = row.try_get("platform")?;
    if session_platform != platform.as_str() {
        return Err(bad(
            "platform_mismatch",
            "This authorization was started for another platform.",
        ));
    }
    use_up.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(Session {
        state_hash,
        workspace: row.try_get("workspace_id")?,
        platform,
        account: row.try_get("account_id")?,
        key_id: row.try_get("key_id")?,
        pkce_verifier: row.try_get("pkce_verifier")?,
    })
}

/// Deletes sessions that expired over a day ago, so the table does not grow without bound.
pub(crate) async fn purge_expired_sessions(pool: sqlx::PgPool, shutdown: CancellationToken) {
    loop {
        let purged = sqlx::query(
            "DELETE FROM gateway.oauth_sessions WHERE expires_at < now() - interval '1 day'",
        )
        .execute(&pool)
        .await;
        if let Err(e) = purged {
            tracing::warn!(error = %e, "cannot purge old oauth sessions");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}
