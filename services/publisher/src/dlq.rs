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
    Platform,
};
use serde::{Deserialize, Serialize};

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/dead-letters", get(list))
        .route("/v1/dead-letters/replay", post(replay_bulk))
        .route("/v1/dead-letters/{post_id}/replay", post(replay_one))
        .route("/v1/operator/dead-letters", get(list_all))
}

#[derive(Serialize, sqlx::FromRow)]
struct DeadLetter {
    post_id: PostId,
    account_id: AccountId,
    platform: String,
    body: String,
    kind: String,
    reason: String,
    attempts: i32,
    dead_lettered_at: DateTime<Utc>,
    replay_count: i32,
}

#[derive(Serialize)]
struct DeadLetterList {
    dead_letters: Vec<DeadLetter>,
}

async fn list(
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
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OperatorQuery {
    workspace: Option<WorkspaceId>,
    platform: Option<String>,
    kind: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize, sqlx::FromRow)]
struct OperatorDeadLetter {
    workspace_id: WorkspaceId,
    #[sqlx(flatten)]
    #[serde(flatten)]
    dead_letter: DeadLetter,
}

#[derive(Serialize)]
struct OperatorPage {
    dead_letters: Vec<OperatorDeadLetter>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// `GET /v1/operator/dead-letters` (role operator): open dead letters across workspaces,
/// oldest first, filtered by workspace, platform and kind, by pages of at most 500.
async fn list_all(
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

#[derive(Serialize)]
struct Replayed {
    replayed: usize,
}

async fn replay_one(
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

#[derive(Deserialize, Default)]
struct BulkReplay {
    account_id: Option<AccountId>,
    /// Only dead letters from this moment on.
    since: Option<DateTime<Utc>>,
}

async fn replay_bulk(
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
