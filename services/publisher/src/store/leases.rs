//! Taking posts to publish and letting parked ones go: the sweep's leases (and the posts an open
//! breaker holds back), renewing a lease, the group commits of retried and published posts
//! (`attempt/batch.rs`), and moving parked posts to `retry_requested` after a reconnect or when
//! the reconciler finds their reconnect was missed.

use chrono::{DateTime, Utc};
use lifeline_kit::{
    ids::{AccountId, PostId, WorkspaceId},
    Platform,
};
use sqlx::{PgConnection, PgPool};

use super::{qualified_columns, POST_COLUMNS};
use crate::model::Post;

/// Pushes the due posts of `platform` back to `until`, marking since when the platform has kept
/// them back; posts kept back for `window_secs` already are left due. Answers how many.
pub(crate) async fn hold_due(
    pool: &PgPool,
    platform: Platform,
    until: DateTime<Utc>,
    window_secs: f64,
) -> Result<u64, sqlx::Error> {
    let held = sqlx::query(
        "UPDATE publisher.posts p SET next_attempt_at = $2,
             unavailable_since = COALESCE(p.unavailable_since, now()), updated_at = now()
         FROM (
             SELECT id FROM publisher.posts
             WHERE status = 'scheduled' AND next_attempt_at <= now() AND platform = $1
               AND (unavailable_since IS NULL OR unavailable_since > now() - make_interval(secs => $3))
             FOR UPDATE SKIP LOCKED
         ) due
         WHERE p.id = due.id",
    )
    .bind(platform)
    .bind(until)
    .bind(window_secs)
    .execute(pool)
    .await?;
    Ok(held.rows_affected())
}

/// How the sweep leases: for whom, for how long, and the retry window.
pub(crate) struct Sweep<'a> {
    pub owner: &'a str,
    pub lease_secs: f64,
    pub window_secs: f64,
}

/// Leases up to `limit` due posts of `platforms` (and any due post kept back for the whole
/// window) and records an attempt for each, in one transaction. A post still `publishing` past
/// its lease was abandoned mid-call: it is marked for reconciliation.
pub(crate) async fn lease_due(
    pool: &PgPool,
    sweep: &Sweep<'_>,
    platforms: &[Platform],
    limit: i64,
) -> Result<Vec<Post>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let posts: Vec<Post> = sqlx::query_as(&format!(
        "UPDATE publisher.posts p SET
             status = 'publishing', lease_owner = $1, lease_until = now() + make_interval(secs => $2),
             attempts = p.attempts + 1,
             needs_reconcile = p.needs_reconcile OR p.status = 'publishing',
             reconcile_since = CASE WHEN p.status = 'publishing' AND p.reconcile_since IS NULL
                                    THEN p.updated_at ELSE p.reconcile_since END,
             updated_at = now()
         FROM (
             SELECT id FROM publisher.posts
             WHERE ((status = 'scheduled' AND next_attempt_at <= now())
                    OR (status = 'publishing' AND lease_until < now()))
               AND (platform = ANY($4)
                    OR unavailable_since <= now() - make_interval(secs => $5))
             ORDER BY next_attempt_at
             LIMIT $3
             FOR UPDATE SKIP LOCKED
         ) due
         WHERE p.id = due.id
         RETURNING {}",
        qualified_columns()
    ))
    .bind(sweep.owner)
    .bind(sweep.lease_secs)
    .bind(limit)
    .bind(platforms)
    .bind(sweep.window_secs)
    .fetch_all(&mut *tx)
    .await?;
    if !posts.is_empty() {
        let ids: Vec<PostId> = posts.iter().map(|p| p.id).collect();
        let attempts: Vec<i32> = posts.iter().map(|p| p.attempts).collect();
        sqlx::query(
            "INSERT INTO publisher.attempts (post_id, attempt) SELECT * FROM UNNEST($1::uuid[], $2::int[])
             ON CONFLICT DO NOTHING",
        )
        .bind(&ids)
        .bind(&attempts)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(posts)
}

/// Extends the lease `owner` holds on `post` for attempt `attempt`; false when it holds none.
pub(crate) async fn renew(
    pool: &PgPool,
    post: PostId,
    owner: &str,
    attempt: i32,
    lease_secs: f64,
) -> Result<bool, sqlx::Error> {
    let renewed = sqlx::query(
        "UPDATE publisher.posts SET lease_until = now() + make_interval(secs => $4)
         WHERE id = $1 AND status = 'publishing' AND lease_owner = $2 AND attempts = $3",
    )
    .bind(post)
    .bind(owner)
    .bind(attempt)
    .bind(lease_secs)
    .execute(pool)
    .await?;
    Ok(renewed.rows_affected() == 1)
}

/// Leases, in one statement, every post of `ids` still waiting for its retry (and the
/// dead-lettered ones of `replays`): the post's state, its attempt row, and a replayed post's
/// dead letter marked replayed. Answers the posts leased, in no particular order.
pub(crate) async fn lease_for_retry(
    pool: &PgPool,
    owner: &str,
    lease_secs: f64,
    ids: &[PostId],
    replays: &[PostId],
) -> Result<Vec<Post>, sqlx::Error> {
    sqlx::query_as(&format!(
        "WITH leased AS (
             UPDATE publisher.posts SET
                 status = 'publishing', lease_owner = $2, lease_until = now() + make_interval(secs => $3),
                 attempts = attempts + 1, retryable_failures = 0, unavailable_since = NULL, updated_at = now()
             WHERE id = ANY($1) AND (status = 'retry_requested' OR (status = 'dead_lettered' AND id = ANY($4)))
             RETURNING {POST_COLUMNS}
         ), attempt AS (
             INSERT INTO publisher.attempts (post_id, attempt) SELECT id, attempts FROM leased
             ON CONFLICT DO NOTHING
         ), replayed AS (
             UPDATE publisher.dead_letters SET replayed_at = now(), replay_count = replay_count + 1
             WHERE post_id IN (SELECT id FROM leased) AND replayed_at IS NULL
         )
         SELECT * FROM leased"
    ))
    .bind(ids)
    .bind(owner)
    .bind(lease_secs)
    .bind(replays)
    .fetch_all(pool)
    .await
}

/// Published posts to mark, column by column (one entry per post).
pub(crate) struct PublishedColumns<'a> {
    pub ids: &'a [PostId],
    pub attempts: &'a [i32],
    pub platform_post_ids: &'a [&'a str],
    pub details: &'a [&'a str],
    pub credential_versions: &'a [i64],
}

/// Marks published, in one statement, each post whose lease `owner` still holds for that
/// attempt, and finishes its attempt row. Answers the posts written.
pub(crate) async fn mark_published(
    tx: &mut PgConnection,
    owner: &str,
    c: &PublishedColumns<'_>,
) -> Result<Vec<PostId>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH done AS (
             UPDATE publisher.posts p SET status = 'published', platform_post_id = u.platform_post_id,
                 published_at = now(), needs_reconcile = false, lease_owner = NULL, lease_until = NULL,
                 updated_at = now()
             FROM unnest($1::uuid[], $2::int[], $3::text[]) AS u(id, attempt, platform_post_id)
             WHERE p.id = u.id AND p.status = 'publishing' AND p.lease_owner = $4 AND p.attempts = u.attempt
             RETURNING p.id, p.attempts
         ), attempt AS (
             UPDATE publisher.attempts a SET finished_at = now(), outcome = 'published',
                 detail = u.detail, credential_version = u.version
             FROM unnest($1::uuid[], $2::int[], $5::text[], $6::bigint[]) AS u(id, attempt, detail, version)
             WHERE a.post_id = u.id AND a.attempt = u.attempt
               AND (u.id, u.attempt) IN (SELECT id, attempts FROM done)
         )
         SELECT id FROM done",
    )
    .bind(c.ids)
    .bind(c.attempts)
    .bind(c.platform_post_ids)
    .bind(owner)
    .bind(c.details)
    .bind(c.credential_versions)
    .fetch_all(tx)
    .await
}

/// Moves up to `limit` of the account's `failed_auth` posts (oldest scheduled first, skipping
/// rows another transaction holds) to `retry_requested`; answers their ids.
pub(crate) async fn request_retries(
    tx: &mut PgConnection,
    account: AccountId,
    limit: i64,
) -> Result<Vec<PostId>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE publisher.posts SET status = 'retry_requested', updated_at = now()
         WHERE id IN (SELECT id FROM publisher.posts WHERE account_id = $1 AND status = 'failed_auth'
                      ORDER BY scheduled_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind(account)
    .bind(limit)
    .fetch_all(tx)
    .await
}

/// A parked post moved to `retry_requested` by the reconciler.
#[derive(sqlx::FromRow)]
pub(crate) struct Released {
    pub id: PostId,
    pub workspace_id: WorkspaceId,
    pub account_id: AccountId,
    pub platform: Platform,
}

/// Moves up to `limit` `failed_auth` posts parked for longer than `older_than_secs` whose
/// account's credential is newer than the one their last attempt used to `retry_requested`.
pub(crate) async fn release_stranded(
    tx: &mut PgConnection,
    older_than_secs: f64,
    limit: i64,
) -> Result<Vec<Released>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE publisher.posts SET status = 'retry_requested', updated_at = now()
         WHERE id IN (
             SELECT p.id FROM publisher.posts p
             JOIN vault.credentials c ON c.account_id = p.account_id
             WHERE p.status = 'failed_auth'
               AND p.updated_at < now() - make_interval(secs => $1)
               AND c.version > COALESCE(
                   (SELECT max(a.credential_version) FROM publisher.attempts a WHERE a.post_id = p.id), 0)
             ORDER BY p.scheduled_at
             LIMIT $2
             FOR UPDATE OF p SKIP LOCKED)
         RETURNING id, workspace_id, account_id, platform",
    )
    .bind(older_than_secs)
    .bind(limit)
    .fetch_all(tx)
    .await
}
