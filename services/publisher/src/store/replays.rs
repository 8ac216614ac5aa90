//! The SQL of dead letters and replays: the filtered list, the dry-run counts, taking the
//! matching posts for a replay, the replay record and its posts, and releasing paced posts.
//! (`replays/` and `dlq.rs` use it.)

use chrono::{DateTime, Utc};
use lifeline_kit::{
    ids::{AccountId, PostId, WorkspaceId},
    Platform,
};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    model::PostStatus,
    replays::filter::{Filter, FilterInput},
};

/// The open dead letters a filter matches; binds `$1`..`$8` (see [`bind_filter`]).
const MATCHES: &str = "d.replayed_at IS NULL AND p.status = 'dead_lettered'
    AND ($1::uuid IS NULL OR d.workspace_id = $1) AND ($2::uuid IS NULL OR p.account_id = $2)
    AND ($3::text IS NULL OR p.platform = $3) AND ($4::text IS NULL OR d.kind = $4)
    AND ($5::text IS NULL OR strpos(lower(d.reason), lower($5)) > 0)
    AND ($6::timestamptz IS NULL OR d.dead_lettered_at >= $6)
    AND ($7::timestamptz IS NULL OR d.dead_lettered_at < $7)
    AND ($8::uuid IS NULL OR p.id = $8)";

/// Binds a [`Filter`] to the `$1`..`$8` of [`MATCHES`], on any kind of sqlx query.
macro_rules! bind_filter {
    ($q:expr, $f:expr) => {
        $q.bind($f.workspace)
            .bind($f.account)
            .bind($f.platform)
            .bind($f.kind.as_deref())
            .bind($f.reason.as_deref())
            .bind($f.since)
            .bind($f.until)
            .bind($f.post)
    };
}

/// A post that cannot go out without an operator.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub(crate) struct DeadLetter {
    pub workspace_id: WorkspaceId,
    pub post_id: PostId,
    pub account_id: AccountId,
    #[schema(value_type = lifeline_kit::openapi::PlatformName)]
    pub platform: Platform,
    pub body: String,
    /// How its last attempt failed: `auth`, `rate_limited`, `transient`, `ambiguous` or `rejected`.
    pub kind: String,
    /// Why it was given up, in words.
    pub reason: String,
    pub attempts: i32,
    pub dead_lettered_at: DateTime<Utc>,
    pub replay_count: i32,
}

/// One page of matching dead letters, oldest first, after the cursor `after`.
pub(crate) async fn dead_letters(
    pool: &PgPool,
    f: &Filter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    let sql = format!(
        "SELECT d.workspace_id, d.post_id, p.account_id, p.platform, p.body, d.kind, d.reason, d.attempts,
                d.dead_lettered_at, d.replay_count
         FROM publisher.dead_letters d JOIN publisher.posts p ON p.id = d.post_id
         WHERE {MATCHES} AND ($9::timestamptz IS NULL OR (d.dead_lettered_at, d.post_id) > ($9, $10))
         ORDER BY d.dead_lettered_at, d.post_id LIMIT $11"
    );
    bind_filter!(sqlx::query_as(&sql), f)
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id))
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// How many dead letters match, per platform and kind.
pub(crate) async fn counts(
    pool: &PgPool,
    f: &Filter,
) -> Result<Vec<(Platform, String, i64)>, sqlx::Error> {
    let sql = format!(
        "SELECT p.platform, d.kind, count(*) FROM publisher.dead_letters d JOIN publisher.posts p ON p.id = d.post_id
         WHERE {MATCHES} GROUP BY 1, 2"
    );
    bind_filter!(sqlx::query_as(&sql), f).fetch_all(pool).await
}

/// A recorded replay.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub(crate) struct Replay {
    pub id: Uuid,
    /// Who asked for it (the token's `sub`).
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// The workspace it was kept to; absent when an operator replayed across workspaces.
    #[schema(required = true)]
    pub workspace_id: Option<WorkspaceId>,
    #[sqlx(try_from = "String")]
    pub filter: FilterInput,
    #[schema(required = true)]
    pub note: Option<String>,
    #[schema(required = true)]
    pub idempotency_key: Option<String>,
    /// How many dead letters it queued.
    pub post_count: i32,
}

const REPLAY_COLUMNS: &str =
    "id, requested_by, requested_at, workspace_id, filter::text AS filter, note, idempotency_key, post_count";

/// The replay made under `key` in `scope`, if any.
pub(crate) async fn by_key(
    tx: &mut PgConnection,
    scope: &str,
    key: &str,
) -> Result<Option<Replay>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {REPLAY_COLUMNS} FROM publisher.replays WHERE key_scope = $1 AND idempotency_key = $2"
    ))
    .bind(scope)
    .bind(key)
    .fetch_optional(tx)
    .await
}

/// Records a replay; `false` when its idempotency key was taken meanwhile.
pub(crate) async fn insert(
    tx: &mut PgConnection,
    r: &Replay,
    scope: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO publisher.replays (id, requested_by, requested_at, workspace_id, filter, note, idempotency_key, key_scope, post_count)
         VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, 0)
         ON CONFLICT (key_scope, idempotency_key) DO NOTHING",
    )
    .bind(r.id)
    .bind(&r.requested_by)
    .bind(r.requested_at)
    .bind(r.workspace_id)
    .bind(serde_json::to_string(&r.filter).map_err(|e| sqlx::Error::Encode(e.into()))?)
    .bind(&r.note)
    .bind(&r.idempotency_key)
    .bind(scope)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves the matching dead letters to `retry_requested` (so no other replay takes them) and
/// makes them the replay's posts, waiting for release; returns each one's platform and kind.
pub(crate) async fn take_posts(
    tx: &mut PgConnection,
    replay: Uuid,
    f: &Filter,
) -> Result<Vec<(Platform, String)>, sqlx::Error> {
    let sql = format!(
        "WITH taken AS (
             UPDATE publisher.posts p SET status = 'retry_requested', updated_at = now()
             FROM publisher.dead_letters d
             WHERE d.post_id = p.id AND {MATCHES}
             RETURNING p.id, p.platform, d.kind, d.dead_lettered_at),
         listed AS (
             INSERT INTO publisher.replay_posts (replay_id, post_id, platform, seq)
             SELECT $9, id, platform, row_number() OVER (ORDER BY dead_lettered_at, id) FROM taken
             RETURNING post_id)
         SELECT t.platform, t.kind FROM taken t JOIN listed l ON l.post_id = t.id"
    );
    let rows: Vec<(Platform, String)> =
        bind_filter!(sqlx::query_as(&sql), f).bind(replay).fetch_all(&mut *tx).await?;
    sqlx::query("UPDATE publisher.replays SET post_count = $2 WHERE id = $1")
        .bind(replay)
        .bind(rows.len() as i32)
        .execute(&mut *tx)
        .await?;
    Ok(rows)
}

/// Replays newest first, of one workspace or all, after the cursor `after`.
pub(crate) async fn replays(
    pool: &PgPool,
    workspace: Option<WorkspaceId>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Replay>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {REPLAY_COLUMNS} FROM publisher.replays
         WHERE ($1::uuid IS NULL OR workspace_id = $1)
           AND ($2::timestamptz IS NULL OR (requested_at, id) < ($2, $3))
         ORDER BY requested_at DESC, id DESC LIMIT $4"
    ))
    .bind(workspace)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub(crate) async fn replay(pool: &PgPool, id: Uuid) -> Result<Option<Replay>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {REPLAY_COLUMNS} FROM publisher.replays WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The replay's posts counted by their status now, and how many still wait for their
/// platform's pace.
pub(crate) async fn standing(
    pool: &PgPool,
    id: Uuid,
) -> Result<(Vec<(PostStatus, i64)>, i64), sqlx::Error> {
    let by_status = sqlx::query_as(
        "SELECT p.status, count(*) FROM publisher.replay_posts r JOIN publisher.posts p ON p.id = r.post_id
         WHERE r.replay_id = $1 GROUP BY 1",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let waiting = sqlx::query_scalar(
        "SELECT count(*) FROM publisher.replay_posts WHERE replay_id = $1 AND released_at IS NULL",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    Ok((by_status, waiting))
}

/// Serialises releasing across replicas for one transaction, so each platform's rate holds
/// however many publishers run.
pub(crate) async fn lock_release(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    // An arbitrary constant that names "replay release" among the schema's advisory locks.
    sqlx::query("SELECT pg_advisory_xact_lock(7311020501)").execute(tx).await?;
    Ok(())
}

/// Per platform with posts waiting: how many were released within the last `window`.
pub(crate) async fn waiting_platforms(
    tx: &mut PgConnection,
    window: std::time::Duration,
) -> Result<Vec<(Platform, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT w.platform, (SELECT count(*) FROM publisher.replay_posts r
                             WHERE r.platform = w.platform AND r.released_at > now() - make_interval(secs => $1))
         FROM (SELECT DISTINCT platform FROM publisher.replay_posts WHERE released_at IS NULL) w",
    )
    .bind(window.as_secs_f64())
    .fetch_all(tx)
    .await
}

/// A released post that is still waiting for its retry.
#[derive(sqlx::FromRow)]
pub(crate) struct Released {
    pub post_id: PostId,
    pub workspace_id: WorkspaceId,
    pub account_id: AccountId,
}

/// Releases up to `n` of a platform's waiting posts, oldest replay first; answers those still
/// `retry_requested` (one cancelled meanwhile needs no retry).
pub(crate) async fn release(
    tx: &mut PgConnection,
    platform: Platform,
    n: i64,
) -> Result<Vec<Released>, sqlx::Error> {
    sqlx::query_as(
        "WITH next AS (
             UPDATE publisher.replay_posts SET released_at = now()
             WHERE (replay_id, post_id) IN (
                 SELECT replay_id, post_id FROM publisher.replay_posts
                 WHERE platform = $1 AND released_at IS NULL ORDER BY replay_id, seq LIMIT $2)
             RETURNING post_id)
         SELECT p.id AS post_id, p.workspace_id, p.account_id FROM next JOIN publisher.posts p ON p.id = next.post_id
         WHERE p.status = 'retry_requested'",
    )
    .bind(platform)
    .bind(n)
    .fetch_all(tx)
    .await
}
