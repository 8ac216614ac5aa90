//! The accounts API: each account of the caller's workspace with its health, in plain words.
//! An account of another workspace is answered 404, exactly as one that does not exist.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::get,
    Json, Router,
};
use chrono::{DateTime, Utc};
use lifeline_kit::{
    auth::Workspace,
    events::{self, AccountDisconnected, AuthFailureCause, Envelope},
    http::ApiError,
    ids::AccountId,
    Platform,
};
use serde::Serialize;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/platforms", get(platforms))
        .route("/v1/accounts", get(list))
        .route("/v1/accounts/{id}", get(show).delete(disconnect))
}

#[derive(Serialize, sqlx::FromRow)]
struct AccountRow {
    id: AccountId,
    platform: String,
    platform_user_id: String,
    username: String,
    display_name: String,
    status: String,
    cause: Option<String>,
    status_detail: Option<String>,
    status_changed_at: DateTime<Utc>,
    expiring_at: Option<DateTime<Utc>>,
    expiring_credential: Option<String>,
    connected_at: DateTime<Utc>,
    reconnected_at: Option<DateTime<Utc>>,
}

/// An account as the API shows it.
#[derive(Serialize)]
struct AccountView {
    #[serde(flatten)]
    row: AccountRow,
    /// The platform's name as people write it ("LinkedIn").
    platform_name: &'static str,
    /// The cause in plain words, when the account needs reconnecting.
    cause_text: Option<String>,
    /// What the owner should do, if anything.
    action: Option<String>,
}

impl From<AccountRow> for AccountView {
    fn from(row: AccountRow) -> Self {
        let cause = row.cause.as_deref().and_then(AuthFailureCause::parse);
        let needs = row.status == "needs_reconnect";
        let cause_text =
            needs.then(|| cause.unwrap_or(AuthFailureCause::Unknown).explain().to_owned());
        let action = if needs {
            Some(format!(
                "Reconnect {} to resume posting; posts that failed will be retried.",
                row.platform
            ))
        } else {
            row.expiring_at.map(|at| {
                format!(
                    "The connection will lapse on {}; reconnect before then.",
                    at.format("%Y-%m-%d %H:%M UTC")
                )
            })
        };
        let platform_name =
            row.platform.parse::<Platform>().map(Platform::display_name).unwrap_or("unknown");
        AccountView { row, platform_name, cause_text, action }
    }
}

const SELECT: &str = "SELECT id, platform, platform_user_id, username, display_name, status, cause, status_detail,
    status_changed_at, expiring_at, expiring_credential, connected_at, reconnected_at FROM gateway.accounts";

#[derive(Serialize)]
struct PlatformView {
    id: Platform,
    name: &'static str,
}

#[derive(Serialize)]
struct PlatformList {
    platforms: Vec<PlatformView>,
}

/// The platforms this Lifeline can connect (those with a configured OAuth client).
async fn platforms(State(app): State<AppState>, Workspace(_): Workspace) -> Json<PlatformList> {
    let platforms = Platform::ALL
        .into_iter()
        .filter(|p| app.connectors.get(*p).is_some())
        .map(|p| PlatformView { id: p, name: p.display_name() })
        .collect();
    Json(PlatformList { platforms })
}

#[derive(Serialize)]
struct AccountList {
    accounts: Vec<AccountView>,
}

async fn list(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
) -> Result<Json<AccountList>, ApiError> {
    let rows: Vec<AccountRow> =
        sqlx::query_as(&format!("{SELECT} WHERE workspace_id = $1 ORDER BY connected_at, id"))
            .bind(ws)
            .fetch_all(&app.pool)
            .await?;
    Ok(Json(AccountList { accounts: rows.into_iter().map(AccountView::from).collect() }))
}

async fn find(
    app: &AppState,
    ws: lifeline_kit::ids::WorkspaceId,
    id: &str,
) -> Result<AccountRow, ApiError> {
    let id: AccountId = id.parse().map_err(|_| ApiError::not_found("account"))?;
    sqlx::query_as(&format!("{SELECT} WHERE id = $1 AND workspace_id = $2"))
        .bind(id)
        .bind(ws)
        .fetch_optional(&app.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))
}

async fn show(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(find(&app, ws, &id).await?.into()))
}

/// Disconnects an account: its credentials are deleted and AccountDisconnected is emitted.
async fn disconnect(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = find(&app, ws, &id).await?;
    let platform: Platform = row.platform.parse().map_err(ApiError::internal)?;
    let mut tx = app.pool.begin().await?;
    app.vault.delete(&mut tx, row.id).await.map_err(ApiError::internal)?;
    sqlx::query("DELETE FROM gateway.accounts WHERE id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    let about = events::Subject { workspace_id: ws.0, account_id: row.id.0, platform };
    let event = AccountDisconnected {
        envelope: Some(Envelope::build(about, None)),
        reason: "disconnected by the owner".into(),
    };
    app.outbox.enqueue(&mut tx, &event).await?;
    tx.commit().await?;
    app.outbox.wake();
    tracing::info!(account = %row.id, %platform, "account disconnected");
    Ok(StatusCode::NO_CONTENT)
}
