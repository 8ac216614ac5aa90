//! The writes of an attempt's outcome (`attempt/apply.rs` decides which, in one transaction
//! guarded by the lease): the guard itself, the post's new state, its attempt row, and its dead
//! letter.

use chrono::{DateTime, Utc};
use lifeline_kit::ids::{AccountId, PostId};
use sqlx::PgConnection;

use crate::model::Post;

/// Locks the post while `owner` holds its lease; answers its attempt number then, `None` when
/// the lease was lost.
pub(crate) async fn lock_leased(
    tx: &mut PgConnection,
    post: PostId,
    owner: &str,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT attempts FROM publisher.posts WHERE id = $1 AND status = 'publishing' AND lease_owner = $2 FOR UPDATE",
    )
    .bind(post)
    .bind(owner)
    .fetch_optional(tx)
    .await
}

/// Whether the vault holds a newer credential for the account than `version`. The row is
/// share-locked until the caller's transaction ends, so a refresh or reconnect storing a newer
/// one waits for this post's fate to be committed; its AccountReconnected then finds the post
/// parked.
pub(crate) async fn credential_replaced_since(
    tx: &mut PgConnection,
    account: AccountId,
    version: i64,
) -> Result<bool, sqlx::Error> {
    let current: Option<i64> =
        sqlx::query_scalar("SELECT version FROM vault.credentials WHERE account_id = $1 FOR SHARE")
            .bind(account)
            .fetch_optional(tx)
            .await?;
    Ok(current.is_some_and(|v| v > version))
}

/// Finishes the attempt's row: its outcome, detail and the credential version it used.
pub(crate) async fn finish_attempt(
    tx: &mut PgConnection,
    post: PostId,
    attempt: i32,
    outcome: &str,
    detail: &str,
    credential_version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE publisher.attempts SET finished_at = now(), outcome = $3, detail = $4, credential_version = $5
         WHERE post_id = $1 AND attempt = $2",
    )
    .bind(post)
    .bind(attempt)
    .bind(outcome)
    .bind(detail)
    .bind(credential_version)
    .execute(tx)
    .await?;
    Ok(())
}

/// Marks the post published.
pub(crate) async fn publish(
    tx: &mut PgConnection,
    post: PostId,
    platform_post_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE publisher.posts SET status = 'published', platform_post_id = $2, published_at = now(),
             needs_reconcile = false, lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE id = $1",
    )
    .bind(post)
    .bind(platform_post_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// Back to `scheduled` for another attempt at `next`; `ambiguous` marks it for reconciliation
/// first.
pub(crate) async fn reschedule(
    tx: &mut PgConnection,
    post: PostId,
    next: DateTime<Utc>,
    last_failure_kind: &str,
    detail: &str,
    ambiguous: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE publisher.posts SET status = 'scheduled', next_attempt_at = $2, last_failure_kind = $3, last_error = $4,
             needs_reconcile = needs_reconcile OR $5,
             reconcile_since = CASE WHEN $5 AND reconcile_since IS NULL THEN now() ELSE reconcile_since END,
             lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE id = $1",
    )
    .bind(post)
    .bind(next)
    .bind(last_failure_kind)
    .bind(detail)
    .bind(ambiguous)
    .execute(tx)
    .await?;
    Ok(())
}

/// The post's count of retryable failures, and since when the platform has kept it back (kept
/// as it was if `None`).
pub(crate) async fn count_retryable_failures(
    tx: &mut PgConnection,
    post: PostId,
    failures: i32,
    unavailable_since: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE publisher.posts SET retryable_failures = $2,
             unavailable_since = COALESCE($3, unavailable_since)
         WHERE id = $1",
    )
    .bind(post)
    .bind(failures)
    .bind(unavailable_since)
    .execute(tx)
    .await?;
    Ok(())
}

/// Gives the post back as if attempt `attempt` had not been leased (its row deleted, its number
/// undone), to be taken again at `at` (the breaker's next trial, or the window pacing holds it
/// for): no call was made, so nothing failed. `unavailable_since`: the breaker's mark, kept as
/// it was if `None`.
pub(crate) async fn hold(
    tx: &mut PgConnection,
    post: PostId,
    attempt: i32,
    at: DateTime<Utc>,
    unavailable_since: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM publisher.attempts WHERE post_id = $1 AND attempt = $2")
        .bind(post)
        .bind(attempt)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE publisher.posts SET status = 'scheduled', next_attempt_at = $2, attempts = attempts - 1,
             unavailable_since = COALESCE($3, unavailable_since), lease_owner = NULL, lease_until = NULL,
             updated_at = now()
         WHERE id = $1",
    )
    .bind(post)
    .bind(at)
    .bind(unavailable_since)
    .execute(tx)
    .await?;
    Ok(())
}

/// Parks the post as `failed_auth` until its account is reconnected.
pub(crate) async fn park(
    tx: &mut PgConnection,
    post: PostId,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE publisher.posts SET status = 'failed_auth', last_failure_kind = 'auth', last_error = $2,
             lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE id = $1",
    )
    .bind(post)
    .bind(detail)
    .execute(tx)
    .await?;
    Ok(())
}

/// Dead-letters the post (`kind`: the failure's name) and opens its dead letter, or reopens the
/// one an earlier replay closed.
pub(crate) async fn dead_letter(
    tx: &mut PgConnection,
    post: &Post,
    kind: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE publisher.posts SET status = 'dead_lettered', last_failure_kind = $2, last_error = $3,
             lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE id = $1",
    )
    .bind(post.id)
    .bind(kind)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO publisher.dead_letters (post_id, workspace_id, kind, reason, attempts)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (post_id) DO UPDATE SET kind = $3, reason = $4, attempts = $5, dead_lettered_at = now(), replayed_at = NULL",
    )
    .bind(post.id)
    .bind(post.workspace_id)
    .bind(kind)
    .bind(reason)
    .bind(post.attempts)
    .execute(tx)
    .await?;
    Ok(())
}

/// The unknown outcome is settled by an operator, not by a check: the post needs none.
pub(crate) async fn clear_reconcile(
    tx: &mut PgConnection,
    post: PostId,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE publisher.posts SET needs_reconcile = false, reconcile_since = NULL WHERE id = $1",
    )
    .bind(post)
    .execute(tx)
    .await?;
    Ok(())
}
