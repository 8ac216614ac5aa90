//! Starting an authorization: a single-use `state` and the PKCE verifier kept server-side
//! (the verifier sealed with the vault key), and the flow bound to the starting browser by a
//! cookie whose hash is stored with the session.

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use lifeline_kit::{
    auth::Workspace,
    events,
    http::ApiError,
    ids::{AccountId, WorkspaceId},
    openapi::{ErrorBody, PlatformName, Unauthorized},
    Platform,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use super::{binding, pending};
use crate::{secret, AppState};

/// What to connect.
#[derive(Deserialize, ToSchema)]
pub(crate) struct ConnectRequest {
    /// The platform (it must be configured on this Lifeline, see `GET /v1/platforms`).
    #[schema(value_type = PlatformName)]
    platform: String,
}

/// A started authorization: send the browser to `authorize_url`. The answer also sets the
/// flow's binding cookie (`lifeline_oauth_<16 hex>`, Path=/oauth, HttpOnly, SameSite=Lax): the
/// callback completes only in the browser that holds it.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuthorizationStarted {
    /// The platform's consent page, with Lifeline's single-use `state` (and PKCE challenge).
    #[schema(format = "uri")]
    pub(super) authorize_url: String,
    /// When the authorization must be finished by (`LIFELINE_OAUTH_SESSION_TTL`).
    expires_at: DateTime<Utc>,
}

/// A started authorization: its answer, and the binding cookie the answer sets.
pub(crate) struct Started {
    pub(super) body: AuthorizationStarted,
    pub(super) cookie: String,
}

impl IntoResponse for Started {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, [(header::SET_COOKIE, self.cookie)], Json(self.body)).into_response()
    }
}

/// Starts connecting a new account: an authorization on the platform, bound to this browser.
#[utoipa::path(
    post,
    path = "/v1/accounts/connect",
    operation_id = "start_connect",
    tag = "oauth",
    security(("bearer" = [])),
    request_body = ConnectRequest,
    responses(
        (status = 201, description = "Started; open `authorize_url` in the browser that got the cookie.",
            body = AuthorizationStarted, headers(("Set-Cookie" = String, description = "The flow's binding cookie."))),
        (status = 400, description = "`bad_request`: the body is not `{\"platform\": …}` or names no platform; \
            `platform_not_configured`: this Lifeline has no OAuth client for it.", body = ErrorBody),
        (status = 401, response = Unauthorized),
    ),
)]
pub(crate) async fn start_connect(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    body: Result<Json<ConnectRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Started, ApiError> {
    let Json(req) = body.map_err(lifeline_kit::http::rejection)?;
    let platform: Platform = req
        .platform
        .parse()
        .map_err(|e: events::UnknownPlatform| ApiError::bad_request(e.to_string()))?;
    begin(&app, ws, platform, None, false).await
}

/// Starts reconnecting an account (its platform's authorization, bound to this browser).
#[utoipa::path(
    post,
    path = "/v1/accounts/{id}/reconnect",
    operation_id = "start_reconnect",
    tag = "oauth",
    security(("bearer" = [])),
    params(("id" = AccountId, Path, description = "The account to reconnect.")),
    responses(
        (status = 201, description = "Started; open `authorize_url` in the browser that got the cookie.",
            body = AuthorizationStarted, headers(("Set-Cookie" = String, description = "The flow's binding cookie."))),
        (status = 400, description = "`platform_not_configured`: this Lifeline no longer has an OAuth client for the account's platform.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such account in the workspace (or not an id).", body = ErrorBody),
    ),
)]
pub(crate) async fn start_reconnect(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<Started, ApiError> {
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
    begin(&app, ws, platform, Some(account), false).await
}

/// Starts an authorization. `ask_again` makes the platform show the permissions the user
/// declined last time (Facebook's `auth_type=rerequest` and each platform's equivalent).
pub(super) async fn begin(
    app: &AppState,
    ws: WorkspaceId,
    platform: Platform,
    account: Option<AccountId>,
    ask_again: bool,
) -> Result<Started, ApiError> {
    let connector = app.connectors.get(platform).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "platform_not_configured",
            format!("{platform} is not configured on this Lifeline"),
        )
    })?;
    let state = secret::random();
    let state_hash = secret::hash(&state);
    let binding = secret::random();
    let mut start = connector.authorize(&state);
    if ask_again {
        lifeline_platforms::ask_again(platform, &mut start.url);
    }
    let keys = &app.config.vault_keys;
    let sealed_verifier =
        start.pkce_verifier.as_ref().map(|v| keys.seal_bound(&verifier_context(&state_hash), v));
    let ttl = app.config.oauth_session_ttl;
    let expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
    sqlx::query(
        "INSERT INTO gateway.oauth_sessions (state_hash, workspace_id, platform, account_id, key_id, pkce_verifier, expires_at, binding_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&state_hash)
    .bind(ws)
    .bind(platform.as_str())
    .bind(account)
    .bind(keys.active_key_id())
    .bind(sealed_verifier)
    .bind(expires_at)
    .bind(secret::hash(&binding))
    .execute(&app.pool)
    .await?;
    tracing::info!(%platform, workspace = %ws, reconnect = account.is_some(), ask_again, "authorization started");
    // The cookie outlives the session by the time a confirmation may take.
    let max_age = ttl.as_secs() + pending::DECIDE_TTL.as_secs();
    Ok(Started {
        body: AuthorizationStarted { authorize_url: start.url.to_string(), expires_at },
        cookie: binding::set_cookie(&app.config.page, &state_hash, &binding, max_age),
    })
}

pub(super) fn verifier_context(state_hash: &str) -> String {
    format!("lifeline-oauth:v1:{state_hash}:pkce")
}
