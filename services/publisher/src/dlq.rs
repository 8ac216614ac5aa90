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
    auth::Workspace,
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
