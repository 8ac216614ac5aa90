//! The notifications API: the caller's workspace's notifications, newest first.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use lifeline_kit::{
    auth::Workspace,
    http::{rejection, ApiError},
    ids::AccountId,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/notifications", get(list))
        .route("/v1/notifications/{id}/read", post(mark_read))
}

#[derive(Serialize, sqlx::FromRow)]
struct Notification {
    id: Uuid,
    account_id: Option<AccountId>,
    incident_id: Option<Uuid>,
    kind: String,
    title: String,
    body: String,
    created_at: DateTime<Utc>,
    read_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct ListQuery {
    account_id: Option<String>,
    unread: Option<bool>,
}

#[derive(Serialize)]
struct NotificationList {
    notifications: Vec<Notification>,
}

async fn list(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<NotificationList>, ApiError> {
    let Query(q) = query.map_err(rejection)?;
    let account: Option<AccountId> = q
        .account_id
        .map(|a| a.parse())
        .transpose()
        .map_err(|_| ApiError::bad_request("account_id is not a valid id"))?;
    let notifications = sqlx::query_as(
        "SELECT id, account_id, incident_id, kind, title, body, created_at, read_at FROM notifier.notifications
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR account_id = $2) AND (NOT $3 OR read_at IS NULL)
         ORDER BY created_at DESC LIMIT 500",
    )
    .bind(ws)
    .bind(account)
    .bind(q.unread.unwrap_or(false))
    .fetch_all(&app.pool)
    .await?;
    Ok(Json(NotificationList { notifications }))
}

async fn mark_read(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found("notification"))?;
    let done = sqlx::query("UPDATE notifier.notifications SET read_at = COALESCE(read_at, now()) WHERE id = $1 AND workspace_id = $2")
        .bind(id)
        .bind(ws)
        .execute(&app.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("notification"));
    }
    Ok(StatusCode::NO_CONTENT)
}
