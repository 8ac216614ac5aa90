//! Connect and reconnect through OAuth: start an authorization (state + PKCE kept server-side),
//! and complete it in the callback. The state is single use and short-lived; a forged, expired
//! or replayed callback gets a 4xx and changes nothing.

use std::time::Duration;

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use lifeline_kit::{
    auth::Workspace,
    events::{self, AccountConnected, AccountReconnected, Envelope, ReconnectReason},
    http::ApiError,
    ids::{AccountId, WorkspaceId},
    Platform,
};
use lifeline_platforms::{AccessToken, Failure, Grant, PlatformUser};
use lifeline_vault::{Tokens, VaultError};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/accounts/connect", post(start_connect))
        .route("/v1/accounts/{id}/reconnect", post(start_reconnect))
        .route("/oauth/callback/{platform}", get(callback))
}

#[derive(Deserialize)]
struct ConnectRequest {
    platform: String,
}

#[derive(Serialize)]
struct AuthorizationStarted {
    authorize_url: String,
    expires_at: DateTime<Utc>,
}

async fn start_connect(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    body: Result<Json<ConnectRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<AuthorizationStarted>), ApiError> {
    let Json(req) = body.map_err(lifeline_kit::http::rejection)?;
    let platform: Platform = req
        .platform
        .parse()
        .map_err(|e: events::UnknownPlatform| ApiError::bad_request(e.to_string()))?;
    begin(&app, ws, platform, None).await
}

async fn start_reconnect(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<AuthorizationStarted>), ApiError> {
    let account: AccountId = id.parse().map_err(|_| ApiError::not_found("account"))?;
    let row =
        sqlx::query("SELECT platform FROM gateway.accounts WHERE id = $1 AND workspace_id = $2")
            .bind(account)
            .bind(ws)
            .fetch_optional(&app.pool)
            .await?
            .ok_or_else(|| ApiError::not_found("account"))?;
    let platform: String = row.try_get("platform")?;
    let platform: Platform = platform.parse().map_err(ApiError::internal)?;
    begin(&app, ws, platform, Some(account)).await
}

fn random_state() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_state(state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

async fn begin(
    app: &AppState,
    ws: WorkspaceId,
    platform: Platform,
    account: Option<AccountId>,
) -> Result<(StatusCode, Json<AuthorizationStarted>), ApiError> {
    let connector = app.connectors.get(platform).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "platform_not_configured",
            format!("{platform} is not configured on this Lifeline"),
        )
    })?;
    let state = random_state();
    let state_hash = hash_state(&state);
    let start = connector.authorize(&state);
    let keys = &app.config.vault_keys;
    let sealed_verifier =
        start.pkce_verifier.as_ref().map(|v| keys.seal_bound(&verifier_context(&state_hash), v));
    let expires_at =
        Utc::now() + chrono::Duration::from_std(app.config.oauth_session_ttl).unwrap_or_default();
    sqlx::query(
        "INSERT INTO gateway.oauth_sessions (state_hash, workspace_id, platform, account_id, key_id, pkce_verifier, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&state_hash)
    .bind(ws)
    .bind(platform.as_str())
    .bind(account)
    .bind(keys.active_key_id())
    .bind(sealed_verifier)
    .bind(expires_at)
    .execute(&app.pool)
    .await?;
    tracing::info!(%platform, workspace = %ws, reconnect = account.is_some(), "authorization started");
    Ok((
        StatusCode::CREATED,
        Json(AuthorizationStarted { authorize_url: start.url.to_string(), expires_at }),
    ))
}

fn verifier_context(state_hash: &str) -> String {
    format!("lifeline-oauth:v1:{state_hash}:pkce")
}

#[derive(Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// What the callback did, as JSON (`Accept: application/json`) or a small page.
#[derive(Serialize)]
struct CallbackOutcome {
    result: &'static str,
    account_id: AccountId,
    platform: Platform,
    platform_user_id: String,
    username: String,
}

struct CallbackError {
    status: StatusCode,
    code: &'static str,
    message: String,
    json: bool,
}

impl CallbackError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        CallbackError { status, code, message: message.into(), json: false }
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

impl IntoResponse for CallbackError {
    fn into_response(self) -> Response {
        if self.json {
            return ApiError::new(self.status, self.code, self.message).into_response();
        }
        let page = crate::page::message_page("Connection not completed", &self.message);
        (self.status, Html(page)).into_response()
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// The span makes the callback the root of the reconnect's trace: its context travels with
/// AccountReconnected to the retries and the retried publishes.
#[tracing::instrument(name = "oauth_callback", skip_all, fields(platform = %platform))]
async fn callback(
    State(app): State<AppState>,
    Path(platform): Path<String>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let json = wants_json(&headers);
    match complete(&app, &platform, query).await {
        Ok(outcome) if json => Json(outcome).into_response(),
        Ok(outcome) => {
            let verb = if outcome.result == "connected" { "connected" } else { "reconnected" };
            let text = format!(
                "@{} on {} is {verb}. You can close this page.",
                outcome.username, outcome.platform
            );
            Html(crate::page::message_page("Account connected", &text)).into_response()
        }
        Err(mut e) => {
            tracing::warn!(code = e.code, status = e.status.as_u16(), message = %e.message, "oauth callback refused");
            metrics::counter!("lifeline_oauth_callbacks_refused_total", "reason" => e.code)
                .increment(1);
            e.json = json;
            e.into_response()
        }
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
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<CallbackOutcome, CallbackError> {
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
    let session = claim_session(app, &state, platform).await?;

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
    store(app, &session, &user, &grant, granted_at).await
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

/// Marks the session used and returns it; unknown, used, expired or wrong-platform states are
/// refused. Claiming commits at once, so a state can never be used twice, even by a racing request.
async fn claim_session(
    app: &AppState,
    state: &str,
    platform: Platform,
) -> Result<Session, CallbackError> {
    let state_hash = hash_state(state);
    let mut tx = app.pool.begin().await?;
    let row = sqlx::query(
        "SELECT workspace_id, platform, account_id, key_id, pkce_verifier, expires_at, used_at
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
    sqlx::query("UPDATE gateway.oauth_sessions SET used_at = now() WHERE state_hash = $1")
        .bind(&state_hash)
        .execute(&mut *tx)
        .await?;
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

fn tokens(grant: &Grant, at: DateTime<Utc>) -> Tokens {
    Tokens {
        access_token: grant.access_token.clone(),
        refresh_token: grant.refresh_token.clone(),
        access_expires_at: grant.access_expires_at(at),
        refresh_expires_at: grant.refresh_expires_at(at),
        scopes: grant.scopes.clone(),
    }
}

/// Stores the tokens and the account, and queues the event, in one transaction.
async fn store(
    app: &AppState,
    session: &Session,
    user: &PlatformUser,
    grant: &Grant,
    at: DateTime<Utc>,
) -> Result<CallbackOutcome, CallbackError> {
    let tokens = tokens(grant, at);
    let ws = session.workspace;
    let mut tx = app.pool.begin().await?;
    // A reconnect names its account; a connect of an account the workspace already has is a
    // reconnect of it too, so the same platform user never becomes two accounts.
    let target: Option<(AccountId, String, String)> = match session.account {
        Some(id) => sqlx::query_as("SELECT id, platform_user_id, username FROM gateway.accounts WHERE id = $1 AND workspace_id = $2 FOR UPDATE")
            .bind(id)
            .bind(ws)
            .fetch_optional(&mut *tx)
            .await?
            .map(|(id, puid, username): (uuid::Uuid, String, String)| (AccountId(id), puid, username))
            .ok_or_else(|| CallbackError::new(StatusCode::NOT_FOUND, "account_gone", "The account to reconnect no longer exists. Connect it again as a new account."))
            .map(Some)?,
        None => sqlx::query_as("SELECT id, platform_user_id, username FROM gateway.accounts WHERE workspace_id = $1 AND platform = $2 AND platform_user_id = $3 FOR UPDATE")
            .bind(ws)
            .bind(session.platform.as_str())
            .bind(&user.id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|(id, puid, username): (uuid::Uuid, String, String)| (AccountId(id), puid, username)),
    };

    let outcome = match target {
        Some((account, platform_user_id, username)) => {
            if platform_user_id != user.id {
                return Err(CallbackError::new(
                    StatusCode::CONFLICT,
                    "different_user",
                    format!(
                        "You signed in to {} as @{}, but this account is @{}. Sign in as @{} to reconnect it; nothing was changed.",
                        session.platform, user.username, username, username
                    ),
                ));
            }
            let version =
                swap_tokens(app, &mut tx, account, ws, session.platform, &user.id, &tokens).await?;
            sqlx::query(
                "UPDATE gateway.accounts SET status = 'healthy', cause = NULL, status_detail = NULL,
                     status_changed_at = now(), reconnected_at = now(), username = $2, display_name = $3,
                     credential_version = GREATEST(credential_version, $4), expiring_at = NULL, expiring_credential = NULL
                 WHERE id = $1",
            )
            .bind(account)
            .bind(&user.username)
            .bind(&user.display_name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
            let about = events::Subject {
                workspace_id: ws.0,
                account_id: account.0,
                platform: session.platform,
            };
            let event = AccountReconnected {
                envelope: Some(Envelope::build(about, None)),
                platform_user_id: user.id.clone(),
                scopes: tokens.scopes.clone(),
                credential_version: u64::try_from(version).unwrap_or_default(),
                reason: ReconnectReason::UserReauthorized as i32,
            };
            app.outbox.enqueue(&mut tx, &event).await?;
            CallbackOutcome {
                result: "reconnected",
                account_id: account,
                platform: session.platform,
                platform_user_id: user.id.clone(),
                username: user.username.clone(),
            }
        }
        None => {
            let account = AccountId::new();
            sqlx::query(
                "INSERT INTO gateway.accounts (id, workspace_id, platform, platform_user_id, username, display_name, status, credential_version)
                 VALUES ($1, $2, $3, $4, $5, $6, 'healthy', 1)",
            )
            .bind(account)
            .bind(ws)
            .bind(session.platform.as_str())
            .bind(&user.id)
            .bind(&user.username)
            .bind(&user.display_name)
            .execute(&mut *tx)
            .await?;
            app.vault
                .insert(&mut tx, account, ws, session.platform, &user.id, &tokens)
                .await
                .map_err(vault_error)?;
            let about = events::Subject {
                workspace_id: ws.0,
                account_id: account.0,
                platform: session.platform,
            };
            let event = AccountConnected {
                envelope: Some(Envelope::build(about, None)),
                platform_user_id: user.id.clone(),
                display_name: user.display_name.clone(),
                scopes: tokens.scopes.clone(),
                credential_version: 1,
            };
            app.outbox.enqueue(&mut tx, &event).await?;
            CallbackOutcome {
                result: "connected",
                account_id: account,
                platform: session.platform,
                platform_user_id: user.id.clone(),
                username: user.username.clone(),
            }
        }
    };
    tx.commit().await?;
    app.outbox.wake();
    tracing::info!(account = %outcome.account_id, platform = %outcome.platform, result = outcome.result, "authorization completed");
    metrics::counter!("lifeline_accounts_authorized_total", "platform" => outcome.platform.as_str(), "result" => outcome.result).increment(1);
    Ok(outcome)
}

/// Replaces an account's tokens by compare-and-swap. The version is read under the row lock, so
/// a refresh that committed first is simply superseded; one still in flight will lose its CAS.
async fn swap_tokens(
    app: &AppState,
    tx: &mut sqlx::PgConnection,
    account: AccountId,
    ws: WorkspaceId,
    platform: Platform,
    platform_user_id: &str,
    tokens: &Tokens,
) -> Result<i64, CallbackError> {
    let current: Option<i64> = sqlx::query_scalar(
        "SELECT version FROM vault.credentials WHERE account_id = $1 FOR UPDATE",
    )
    .bind(account)
    .fetch_optional(&mut *tx)
    .await?;
    match current {
        Some(v) => {
            app.vault.compare_and_swap(tx, account, v, tokens, true).await.map_err(vault_error)
        }
        // The credentials were deleted (disconnect raced us): store them afresh.
        None => app
            .vault
            .insert(tx, account, ws, platform, platform_user_id, tokens)
            .await
            .map_err(vault_error),
    }
}

fn vault_error(e: VaultError) -> CallbackError {
    tracing::error!(error = %e, "vault write failed");
    CallbackError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; nothing was changed, please try again",
    )
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
