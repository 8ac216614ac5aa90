//! Dead letters: posts that could not go out. Operators list and inspect them and replay them,
//! one or in bulk; a replay queues a PostRetryRequested so it takes the same exactly-once path
//! as a reconnect retry.

use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use lifeline_kit::{
    auth::{Operator, Workspace},
    events::{self, Envelope, PostRetryRequested, RetryReason},
    http::{rejection, ApiError},
    ids::{AccountId, PostId, WorkspaceId},
    openapi::{ErrorBody, Forbidden, Unauthorized},
    Platform,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/dead-letters", get(list))
        .route("/v1/dead-letters/replay", post(replay_bulk))
        .route("/v1/dead-letters/{post_id}/replay", post(replay_one))
        .route("/v1/operator/dead-letters", get(list_all))
}

/// A post that cannot go out without an operator.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub(crate) struct DeadLetter {
    post_id: PostId,
    account_id: AccountId,
    #[schema(value_type = lifeline_kit::openapi::PlatformName)]
    platform: String,
    body: String,
    /// How its last attempt failed: `auth`, `rate_limited`, `transient`, `ambiguous` or `rejected`.
    kind: String,
    /// Why it was given up, in words.
    reason: String,
    attempts: i32,
    dead_lettered_at: DateTime<Utc>,
    replay_count: i32,
}

/// The open dead letters, oldest first, at most 1,000.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeadLetterList {
    dead_letters: Vec<DeadLetter>,
}

/// The workspace's dead letters that have not been replayed.
#[utoipa::path(
    get,
    path = "/v1/dead-letters",
    operation_id = "list_dead_letters",
    tag = "dead letters",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Oldest first, at most 1,000.", body = DeadLetterList),
        (status = 401, response = Unauthorized),
    ),
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
) -> Result<Json<DeadLetterList>, ApiError> {
    let dead_letters = sqlx::query_as(
        "SELECT d.post_id, p.account_id, p.platform, p.body, d.kind, d.reason, d.attempts, d.dead_lettered_at, d.replay_count
         FROM publisher.dead_letters d JOIN publisher.posts p ON p.id = d.post_id
         WHERE d.workspace_id = $1 AND d.replayed_at IS NULL AND p.status = 'dead_lettered'
         ORDER BY d.dead_lettered_at LIMIT 1000",
    )
    .bind(ws)
    .fetch_all(&app.pool)
    .await?;
    Ok(Json(DeadLetterList { dead_letters }))
}

/// Filters of the operators' view, and its cursor.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OperatorQuery {
    /// Only this workspace's.
    workspace: Option<WorkspaceId>,
    /// Only this platform's.
    #[param(value_type = Option<lifeline_kit::openapi::PlatformName>)]
    platform: Option<String>,
    /// Only this failure kind (`rejected`, `transient`, …).
    kind: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    /// Dead letters per page (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// A dead letter and its workspace.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub(crate) struct OperatorDeadLetter {
    workspace_id: WorkspaceId,
    #[sqlx(flatten)]
    #[serde(flatten)]
    dead_letter: DeadLetter,
}

/// A page of dead letters across workspaces, oldest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct OperatorPage {
    dead_letters: Vec<OperatorDeadLetter>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// `GET /v1/operator/dead-letters` (role operator): open dead letters across workspaces,
/// oldest first, filtered by workspace, platform and kind, by pages of at most 500.
#[utoipa::path(
    get,
    path = "/v1/operator/dead-letters",
    operation_id = "list_all_dead_letters",
    tags = ["dead letters", "operator"],
    security(("bearer" = [])),
    params(OperatorQuery),
    responses(
        (status = 200, description = "A page; pass its `next` as `after` for the next one.", body = OperatorPage),
        (status = 400, description = "`bad_request`: an unknown parameter or platform, a bad workspace id or cursor, `limit` out of range.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    ),
)]
pub(crate) async fn list_all(
    State(app): State<AppState>,
    operator: Operator,
    query: Result<axum::extract::Query<OperatorQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<OperatorPage>, ApiError> {
    let axum::extract::Query(q) = query.map_err(rejection)?;
    if let Some(p) = &q.platform {
        p.parse::<Platform>().map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 500"));
    }
    let after = q.after.as_deref().map(crate::cursor::decode).transpose()?;
    let mut rows: Vec<OperatorDeadLetter> = sqlx::query_as(
        "SELECT d.workspace_id, d.post_id, p.account_id, p.platform, p.body, d.kind, d.reason, d.attempts, d.dead_lettered_at, d.replay_count
         FROM publisher.dead_letters d JOIN publisher.posts p ON p.id = d.post_id
         WHERE d.replayed_at IS NULL AND p.status = 'dead_lettered'
           AND ($1::uuid IS NULL OR d.workspace_id = $1) AND ($2::text IS NULL OR p.platform = $2)
           AND ($3::text IS NULL OR d.kind = $3)
           AND ($4::timestamptz IS NULL OR (d.dead_lettered_at, d.post_id) > ($4, $5))
         ORDER BY d.dead_lettered_at, d.post_id LIMIT $6",
    )
    .bind(q.workspace)
    .bind(&q.platform)
    .bind(&q.kind)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit + 1)
    .fetch_all(&app.pool)
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last()
            .map(|r| crate::cursor::encode(r.dead_letter.dead_lettered_at, r.dead_letter.post_id.0))
    } else {
        None
    };
    tracing::info!(operator = %operator.sub, count = rows.len(), "operator listed dead letters");
    Ok(Json(OperatorPage { dead_letters: rows, next }))
}

/// How many dead letters were queued for another attempt.
#[derive(Serialize, ToSchema)]
pub(crate) struct Replayed {
    replayed: usize,
}

/// Queues one dead-lettered post for another attempt (a `PostRetryRequested`).
#[utoipa::path(
    post,
    path = "/v1/dead-letters/{post_id}/replay",
    operation_id = "replay_dead_letter",
    tag = "dead letters",
    security(("bearer" = [])),
    params(("post_id" = PostId, Path, description = "The dead-lettered post.")),
    responses(
        (status = 202, description = "Queued; it goes out (or fails again) shortly.", body = Replayed),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such post in the workspace (or not an id).", body = ErrorBody),
        (status = 409, description = "`not_dead_lettered`: the post is in another status.", body = ErrorBody),
    ),
)]
pub(crate) async fn replay_one(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let post = crate::api::find(&app, ws, &id).await?;
    if post.status != "dead_lettered" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_dead_lettered",
            format!("post is {}, not dead_lettered", post.status),
        ));
    }
    let n = replay(&app, ws, Some(post.id), None, None).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed: n })))
}

/// Which dead letters to replay; every one of the workspace's when empty.
#[derive(Deserialize, Default, ToSchema)]
pub(crate) struct BulkReplay {
    /// Only this account's.
    account_id: Option<AccountId>,
    /// Only dead letters from this moment on.
    since: Option<DateTime<Utc>>,
}

/// Queues the workspace's matching dead letters for another attempt.
#[utoipa::path(
    post,
    path = "/v1/dead-letters/replay",
    operation_id = "replay_dead_letters",
    tag = "dead letters",
    security(("bearer" = [])),
    request_body = BulkReplay,
    responses(
        (status = 202, description = "Queued.", body = Replayed),
        (status = 400, description = "`bad_request`: malformed JSON or a bad id or time.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 415, description = "`bad_request`: the body is not `application/json`.", body = ErrorBody),
    ),
)]
pub(crate) async fn replay_bulk(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    body: Result<Json<BulkReplay>, JsonRejection>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let Json(req) = body.map_err(rejection)?;
    let n = replay(&app, ws, None, req.account_id, req.since).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed: n })))
}

/// Moves matching dead-lettered posts to `retry_requested` and queues a retry for each.
async fn replay(
    app: &AppState,
    ws: WorkspaceId,
    post: Option<PostId>,
    account: Option<AccountId>,
    since: Option<DateTime<Utc>>,
) -> Result<usize, ApiError> {
    let mut tx = app.pool.begin().await?;
    let rows: Vec<(PostId, AccountId, String)> = sqlx::query_as(
        "UPDATE publisher.posts p SET status = 'retry_requested', updated_at = now()
         FROM publisher.dead_letters d
         WHERE d.post_id = p.id AND p.workspace_id = $1 AND p.status = 'dead_lettered'
           AND ($2::uuid IS NULL OR p.id = $2) AND ($3::uuid IS NULL OR p.account_id = $3)
           AND ($4::timestamptz IS NULL OR d.dead_lettered_at >= $4)
         RETURNING p.id, p.account_id, p.platform",
    )
    .bind(ws)
    .bind(post)
    .bind(account)
    .bind(since)
    .fetch_all(&mut *tx)
    .await?;
    for (id, account, platform) in &rows {
        let platform: Platform = platform.parse().map_err(ApiError::internal)?;
        let about = events::Subject { workspace_id: ws.0, account_id: account.0, platform };
        let event = PostRetryRequested {
            envelope: Some(Envelope::build(about, None)),
            post_id: id.to_string(),
            reason: RetryReason::OperatorReplay as i32,
        };
        app.outbox.enqueue(&mut tx, &event).await?;
    }
    tx.commit().await?;
    app.outbox.wake();
    tracing::info!(replayed = rows.len(), workspace = %ws, "dead letters replayed");
    Ok(rows.len())
}
