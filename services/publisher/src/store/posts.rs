//! The posts API's SQL: schedule, find, list, and lock, edit or cancel a post.

use chrono::{DateTime, Utc};
use lifeline_kit::{
    ids::{AccountId, PostId, WorkspaceId},
    Platform,
};
use lifeline_platforms::MediaKind;
use sqlx::{PgConnection, PgPool};

use super::POST_COLUMNS;
use crate::model::{Post, PostStatus};

/// A post to schedule.
pub(crate) struct NewPost<'a> {
    pub workspace: WorkspaceId,
    pub account: AccountId,
    pub platform: Platform,
    pub body: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub scheduled_at: DateTime<Utc>,
    pub media_url: Option<&'a str>,
    pub media_kind: Option<MediaKind>,
}

/// Schedules a post; `None` when the workspace has a post with its idempotency key already.
pub(crate) async fn insert(pool: &PgPool, new: &NewPost<'_>) -> Result<Option<Post>, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO publisher.posts (id, workspace_id, account_id, platform, body, idempotency_key, scheduled_at, status,
             next_attempt_at, media_url, media_kind)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'scheduled', $7, $8, $9)
         ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
         RETURNING {POST_COLUMNS}"
    ))
    .bind(PostId::new())
    .bind(new.workspace)
    .bind(new.account)
    .bind(new.platform)
    .bind(new.body)
    .bind(new.idempotency_key)
    .bind(new.scheduled_at)
    .bind(new.media_url)
    .bind(new.media_kind)
    .fetch_optional(pool)
    .await
}

/// The workspace's post scheduled with `key`.
pub(crate) async fn by_idempotency_key(
    pool: &PgPool,
    workspace: WorkspaceId,
    key: Option<&str>,
) -> Result<Post, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {POST_COLUMNS} FROM publisher.posts WHERE workspace_id = $1 AND idempotency_key = $2"
    ))
    .bind(workspace)
    .bind(key)
    .fetch_one(pool)
    .await
}

/// One of the workspace's posts.
pub(crate) async fn find(
    pool: &PgPool,
    workspace: WorkspaceId,
    id: PostId,
) -> Result<Option<Post>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {POST_COLUMNS} FROM publisher.posts WHERE id = $1 AND workspace_id = $2"
    ))
    .bind(id)
    .bind(workspace)
    .fetch_optional(pool)
    .await
}

/// What a page of the posts list is filtered by; `None` does not filter.
pub(crate) struct PostFilter {
    pub account: Option<AccountId>,
    pub statuses: Option<Vec<PostStatus>>,
    pub platform: Option<Platform>,
    pub scheduled_from: Option<DateTime<Utc>>,
    pub scheduled_to: Option<DateTime<Utc>>,
    /// The cursor: posts before this (created_at, id), newest first.
    pub before: Option<(DateTime<Utc>, uuid::Uuid)>,
}

/// Up to `limit` of the workspace's posts that match, newest first.
pub(crate) async fn page(
    pool: &PgPool,
    workspace: WorkspaceId,
    f: &PostFilter,
    limit: i64,
) -> Result<Vec<Post>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {POST_COLUMNS} FROM publisher.posts
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR account_id = $2)
           AND ($3::text[] IS NULL OR status = ANY($3)) AND ($4::text IS NULL OR platform = $4)
           AND ($5::timestamptz IS NULL OR scheduled_at >= $5)
           AND ($6::timestamptz IS NULL OR scheduled_at < $6)
           AND ($7::timestamptz IS NULL OR (created_at, id) < ($7, $8))
         ORDER BY created_at DESC, id DESC LIMIT $9"
    ))
    .bind(workspace)
    .bind(f.account)
    .bind(&f.statuses)
    .bind(f.platform)
    .bind(f.scheduled_from)
    .bind(f.scheduled_to)
    .bind(f.before.map(|(at, _)| at))
    .bind(f.before.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One of the workspace's posts, locked until the transaction ends.
pub(crate) async fn lock(
    conn: &mut PgConnection,
    workspace: WorkspaceId,
    id: PostId,
) -> Result<Option<Post>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {POST_COLUMNS} FROM publisher.posts WHERE id = $1 AND workspace_id = $2 FOR UPDATE"
    ))
    .bind(id)
    .bind(workspace)
    .fetch_optional(conn)
    .await
}

/// A post's new text and media, and its new time if it moves.
pub(crate) struct Edit<'a> {
    pub body: &'a str,
    pub media_url: Option<&'a str>,
    pub media_kind: Option<MediaKind>,
    pub scheduled_at: Option<DateTime<Utc>>,
}

/// Writes an edit. A post in a retry's backoff keeps its backoff: moving it earlier must not
/// skip it.
pub(crate) async fn edit(
    conn: &mut PgConnection,
    id: PostId,
    e: &Edit<'_>,
) -> Result<Post, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE publisher.posts SET body = $2, media_url = $3, media_kind = $4,
             scheduled_at = COALESCE($5, scheduled_at),
             next_attempt_at = CASE WHEN $5::timestamptz IS NULL THEN next_attempt_at
                                    WHEN attempts = 0 THEN $5
                                    ELSE GREATEST(next_attempt_at, $5) END,
             updated_at = now()
         WHERE id = $1
         RETURNING {POST_COLUMNS}"
    ))
    .bind(id)
    .bind(e.body)
    .bind(e.media_url)
    .bind(e.media_kind)
    .bind(e.scheduled_at)
    .fetch_one(conn)
    .await
}

/// Marks a post cancelled (and lets go of any lease).
pub(crate) async fn cancel(conn: &mut PgConnection, id: PostId) -> Result<Post, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE publisher.posts SET status = 'cancelled', cancelled_at = now(), lease_owner = NULL,
             lease_until = NULL, updated_at = now()
         WHERE id = $1
         RETURNING {POST_COLUMNS}"
    ))
    .bind(id)
    .fetch_one(conn)
    .await
}
