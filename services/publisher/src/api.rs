//! The posts API: schedule a post for an account of the caller's workspace, list and inspect posts.

use axum::{
    extract::{rejection::JsonRejection, Path, Query, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use lifeline_kit::{
    auth::Workspace,
    http::{rejection, ApiError},
    ids::{AccountId, PostId, WorkspaceId},
};
use serde::{Deserialize, Serialize};

use crate::{
    model::{Post, POST_COLUMNS},
    AppState,
};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/posts", post(schedule).get(list)).route("/v1/posts/{id}", get(show))
}

/// Longest post body accepted; each platform's own, lower limit is enforced by the platform.
const MAX_BODY_CHARS: usize = 10_000;

#[derive(Deserialize)]
struct ScheduleRequest {
    account_id: String,
    text: String,
    /// When to publish (RFC 3339); now when absent.
    scheduled_at: Option<DateTime<Utc>>,
    /// An image or video for platforms that need one: `{"url": "https://…", "kind": "image"|"video"}`.
    media: Option<MediaRequest>,
    /// Makes scheduling safe to retry: the same key in a workspace returns the first post.
    idempotency_key: Option<String>,
}

#[derive(Deserialize)]
struct MediaRequest {
    url: String,
    kind: String,
}

async fn schedule(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    body: Result<Json<ScheduleRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Post>), ApiError> {
    let Json(req) = body.map_err(rejection)?;
    let account: AccountId = req.account_id.parse().map_err(|_| ApiError::not_found("account"))?;
    if req.text.trim().is_empty() {
        return Err(ApiError::bad_request("text must not be empty"));
    }
    if req.text.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::bad_request(format!(
            "text is longer than {MAX_BODY_CHARS} characters"
        )));
    }
    if let Some(key) = &req.idempotency_key {
        if key.is_empty() || key.len() > 200 {
            return Err(ApiError::bad_request("idempotency_key must be 1 to 200 characters"));
        }
    }
    if let Some(m) = &req.media {
        let url = url::Url::parse(&m.url)
            .map_err(|_| ApiError::bad_request("media.url must be an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ApiError::bad_request("media.url must be http or https"));
        }
        if !matches!(m.kind.as_str(), "image" | "video") {
            return Err(ApiError::bad_request("media.kind must be image or video"));
        }
    }
    let info = app.vault.info(account).await.map_err(ApiError::internal)?;
    let info =
        info.filter(|i| i.workspace_id == ws).ok_or_else(|| ApiError::not_found("account"))?;
    // The platform's own rules, now rather than as a dead letter later.
    let media_kind = req.media.as_ref().map(|m| match m.kind.as_str() {
        "video" => lifeline_platforms::MediaKind::Video,
        _ => lifeline_platforms::MediaKind::Image,
    });
    lifeline_platforms::check_post(info.platform, &req.text, media_kind).map_err(|v| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "post_invalid", v.message)
            .with_details(serde_json::json!({ "rule": v.rule, "platform": info.platform }))
    })?;
    let at = req.scheduled_at.unwrap_or_else(Utc::now);
    let inserted: Option<Post> = sqlx::query_as(&format!(
        "INSERT INTO publisher.posts (id, workspace_id, account_id, platform, body, idempotency_key, scheduled_at, status,
             next_attempt_at, media_url, media_kind)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'scheduled', $7, $8, $9)
         ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
         RETURNING {POST_COLUMNS}"
    ))
    .bind(PostId::new())
    .bind(ws)
    .bind(account)
    .bind(info.platform.as_str())
    .bind(&req.text)
    .bind(&req.idempotency_key)
    .bind(at)
    .bind(req.media.as_ref().map(|m| m.url.clone()))
    .bind(req.media.as_ref().map(|m| m.kind.clone()))
    .fetch_optional(&app.pool)
    .await?;
    match inserted {
        Some(p) => {
            tracing::info!(post = %p.id, account = %account, platform = %info.platform, "post scheduled");
            Ok((StatusCode::CREATED, Json(p)))
        }
        None => {
            let existing: Post = sqlx::query_as(&format!(
                "SELECT {POST_COLUMNS} FROM publisher.posts WHERE workspace_id = $1 AND idempotency_key = $2"
            ))
            .bind(ws)
            .bind(&req.idempotency_key)
            .fetch_one(&app.pool)
            .await?;
            Ok((StatusCode::OK, Json(existing)))
        }
    }
}

#[derive(Deserialize)]
struct ListQuery {
    account_id: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct PostList {
    posts: Vec<Post>,
}

async fn list(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PostList>, ApiError> {
    let Query(q) = query.map_err(rejection)?;
    let account: Option<AccountId> = q
        .account_id
        .map(|a| a.parse())
        .transpose()
        .map_err(|_| ApiError::bad_request("account_id is not a valid id"))?;
    const STATUSES: [&str; 6] =
        ["scheduled", "publishing", "published", "failed_auth", "retry_requested", "dead_lettered"];
    if let Some(s) = &q.status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "status must be one of {}",
                STATUSES.join(", ")
            )));
        }
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let posts: Vec<Post> = sqlx::query_as(&format!(
        "SELECT {POST_COLUMNS} FROM publisher.posts
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR account_id = $2) AND ($3::text IS NULL OR status = $3)
         ORDER BY created_at DESC LIMIT $4"
    ))
    .bind(ws)
    .bind(account)
    .bind(&q.status)
    .bind(limit)
    .fetch_all(&app.pool)
    .await?;
    Ok(Json(PostList { posts }))
}

#[derive(Serialize, sqlx::FromRow)]
struct AttemptView {
    attempt: i32,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
    detail: Option<String>,
}

#[derive(Serialize)]
struct PostDetail {
    #[serde(flatten)]
    post: Post,
    attempt_log: Vec<AttemptView>,
}

pub(crate) async fn find(app: &AppState, ws: WorkspaceId, id: &str) -> Result<Post, ApiError> {
    let id: PostId = id.parse().map_err(|_| ApiError::not_found("post"))?;
    sqlx::query_as(&format!(
        "SELECT {POST_COLUMNS} FROM publisher.posts WHERE id = $1 AND workspace_id = $2"
    ))
    .bind(id)
    .bind(ws)
    .fetch_optional(&app.pool)
    .await?
    .ok_or_else(|| ApiError::not_found("post"))
}

async fn show(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    Path(id): Path<String>,
) -> Result<Json<PostDetail>, ApiError> {
    let post = find(&app, ws, &id).await?;
    let attempt_log: Vec<AttemptView> = sqlx::query_as(
        "SELECT attempt, started_at, finished_at, outcome, detail FROM publisher.attempts WHERE post_id = $1 ORDER BY attempt",
    )
    .bind(post.id)
    .fetch_all(&app.pool)
    .await?;
    Ok(Json(PostDetail { post, attempt_log }))
}
