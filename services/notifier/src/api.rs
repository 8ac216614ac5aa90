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
    openapi::{ErrorBody, Unauthorized},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/notifications", get(list))
        .route("/v1/notifications/{id}/read", post(mark_read))
}

/// A notification sent to the workspace's owners.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub(crate) struct Notification {
    id: Uuid,
    /// The account it is about (null for none: a dead-letter digest, a disabled channel).
    #[schema(required = true)]
    account_id: Option<AccountId>,
    /// The broken-connection incident it was sent for (null for an expiry warning, a digest or a
    /// disabled channel).
    #[schema(required = true)]
    incident_id: Option<Uuid>,
    /// `connection_broken` (once per incident), `connection_reminder` (at most once per
    /// incident, when it is still open a day later with posts waiting), `connection_expiring`
    /// (once per warning), `posts_dead_lettered` (the dead-letter digest, at most one per
    /// workspace per hour) or `channel_disabled`.
    #[schema(example = "connection_broken")]
    kind: String,
    title: String,
    body: String,
    created_at: DateTime<Utc>,
    /// When it was marked read; null while unread.
    #[schema(required = true)]
    read_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only notifications about this account.
    #[param(value_type = Option<AccountId>)]
    account_id: Option<String>,
    /// Only unread notifications (`true`); `false` or absent: all.
    unread: Option<bool>,
}

/// The newest notifications first, at most 500.
#[derive(Serialize, ToSchema)]
pub(crate) struct NotificationList {
    notifications: Vec<Notification>,
}

/// The workspace's notifications, newest first.
#[utoipa::path(
    get,
    path = "/v1/notifications",
    operation_id = "list_notifications",
    tag = "notifications",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "At most 500, newest first.", body = NotificationList),
        (status = 400, description = "`bad_request`: `account_id` is not an id, or `unread` is not `true`/`false`.", body = ErrorBody),
        (status = 401, response = Unauthorized),
    ),
)]
pub(crate) async fn list(
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

/// Marks a notification read (again is fine: the first time is kept).
#[utoipa::path(
    post,
    path = "/v1/notifications/{id}/read",
    operation_id = "mark_notification_read",
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The notification.")),
    responses(
        (status = 204, description = "Marked read."),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such notification in the workspace (or not an id).", body = ErrorBody),
    ),
)]
pub(crate) async fn mark_read(
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
