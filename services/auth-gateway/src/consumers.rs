//! Keeps the health read model current from the connection events, and counts the posts that
//! wait for each account from the publisher's post events (`account_posts`).

use chrono::{DateTime, Utc};
use lifeline_kit::{
    bus::{Bus, Delivery, HandlerError},
    events::{
        AccountReconnected, AuthFailed, AuthFailureCause, Envelope, ExpiringCredential,
        PostCancelled, PostDeadLettered, PostFailed, PostFailureKind, PostPublished,
        PostRetryRequested, RetryReason, TokenExpiring, TokenRefreshed,
    },
    service::spawn_consumer,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::AppState;

pub(crate) fn spawn(
    tasks: &mut JoinSet<()>,
    bus: &Bus,
    app: &AppState,
    shutdown: &CancellationToken,
) {
    spawn_consumer(tasks, bus, 8, app.clone(), on_auth_failed, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_reconnected, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_refreshed, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_expiring, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_post_failed, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_post_retry_requested, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_post_published, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_post_dead_lettered, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_post_cancelled, shutdown.clone());
    tasks.spawn(purge_finished_posts(app.pool.clone(), shutdown.clone()));
    crate::account_state::spawn(tasks, bus, &app.config.common, shutdown);
}

fn version(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Marks the account broken, unless a newer credential than the refused one was stored since.
/// Within one incident the first specific cause stands; a vague one (`expired` — often only our
/// inference that a token lapsed after refreshing failed — or `unknown`) gives way to a specific
/// one, so a revocation the token endpoint reported is not overwritten by a later 401.
async fn on_auth_failed(app: AppState, e: AuthFailed, d: Delivery) -> Result<(), HandlerError> {
    let about = d.about;
    let cause = AuthFailureCause::try_from(e.cause).unwrap_or(AuthFailureCause::Unknown);
    let at = occurred_at(e.envelope.as_ref());
    let mut tx = app.pool.begin().await?;
    // The status before, under the row lock: a healthy account that breaks starts an incident.
    let before: Option<String> =
        sqlx::query_scalar("SELECT status FROM gateway.accounts WHERE id = $1 FOR UPDATE")
            .bind(about.account_id)
            .fetch_optional(&mut *tx)
            .await?;
    let changed = sqlx::query(
        "UPDATE gateway.accounts SET status = 'needs_reconnect', cause = $2, status_detail = $3, status_changed_at = now()
         WHERE id = $1 AND credential_version <= $4
           AND (status <> 'needs_reconnect'
                OR (cause IN ('expired', 'unknown', 'unspecified') AND $2 NOT IN ('expired', 'unknown', 'unspecified')))",
    )
    .bind(about.account_id)
    .bind(cause.as_str())
    .bind(&e.detail)
    .bind(version(e.credential_version))
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() > 0 {
        // The platform's words, kept after a reconnect (status_detail is cleared then).
        sqlx::query(
            "UPDATE gateway.accounts SET last_error = $2, last_error_at = $3 WHERE id = $1",
        )
        .bind(about.account_id)
        .bind(if e.detail.is_empty() { cause.explain() } else { e.detail.as_str() })
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if before.as_deref() == Some("healthy") {
            sqlx::query(
                "INSERT INTO gateway.account_incidents (account_id, started_at, cause) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(about.account_id)
            .bind(at)
            .bind(cause.as_str())
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    if changed.rows_affected() > 0 {
        tracing::warn!(account = %about.account_id, platform = %about.platform, cause = cause.as_str(), "account needs reconnecting");
    }
    Ok(())
}

async fn on_reconnected(
    app: AppState,
    e: AccountReconnected,
    d: Delivery,
) -> Result<(), HandlerError> {
    let about = d.about;
    sqlx::query(
        "UPDATE gateway.accounts SET status = 'healthy', cause = NULL, status_detail = NULL, status_changed_at = now(),
             credential_version = $2, reconnected_at = COALESCE(reconnected_at, now())
         WHERE id = $1 AND credential_version <= $2 AND status <> 'healthy'",
    )
    .bind(about.account_id)
    .bind(version(e.credential_version))
    .execute(&app.pool)
    .await?;
    Ok(())
}

async fn on_refreshed(app: AppState, e: TokenRefreshed, d: Delivery) -> Result<(), HandlerError> {
    let about = d.about;
    sqlx::query(
        "UPDATE gateway.accounts SET credential_version = GREATEST(credential_version, $2),
             expiring_at = CASE WHEN expiring_credential = 'access_token' THEN NULL ELSE expiring_at END,
             expiring_credential = CASE WHEN expiring_credential = 'access_token' THEN NULL ELSE expiring_credential END
         WHERE id = $1",
    )
    .bind(about.account_id)
    .bind(version(e.credential_version))
    .execute(&app.pool)
    .await?;
    Ok(())
}

async fn on_expiring(app: AppState, e: TokenExpiring, d: Delivery) -> Result<(), HandlerError> {
    let about = d.about;
    let expires_at = e.expires_at.as_ref().and_then(lifeline_kit::events::from_timestamp);
    let credential = match ExpiringCredential::try_from(e.credential) {
        Ok(ExpiringCredential::RefreshToken) => "refresh_token",
        _ => "access_token",
    };
    sqlx::query(
        "UPDATE gateway.accounts SET expiring_at = $2, expiring_credential = $3, expiring_reason = NULLIF($4, '')
         WHERE id = $1",
    )
    .bind(about.account_id)
    .bind(expires_at)
    .bind(credential)
    .bind(&e.reason)
    .execute(&app.pool)
    .await?;
    Ok(())
}

/// When the event happened (its envelope's `occurred_at`), or now for an event without one.
fn occurred_at(envelope: Option<&Envelope>) -> DateTime<Utc> {
    envelope
        .and_then(|e| e.occurred_at.as_ref())
        .and_then(lifeline_kit::events::from_timestamp)
        .unwrap_or_else(Utc::now)
}

fn post_id(id: &str) -> Result<uuid::Uuid, HandlerError> {
    uuid::Uuid::parse_str(id).map_err(|_| HandlerError::Poison(format!("invalid post_id {id:?}")))
}

/// Moves a post to `state` unless an event that happened later set its state already. `parked`
/// says whether this event proves the post waited for the account (it keeps `parked_at`).
async fn set_post_state(
    app: &AppState,
    about: &lifeline_kit::events::Subject,
    post: uuid::Uuid,
    state: &str,
    at: DateTime<Utc>,
    parked: bool,
) -> Result<(), HandlerError> {
    set_post_state_due(app, about, post, state, at, parked, None).await
}

/// [`set_post_state`] with the time the post is due next (a queued post's window).
async fn set_post_state_due(
    app: &AppState,
    about: &lifeline_kit::events::Subject,
    post: uuid::Uuid,
    state: &str,
    at: DateTime<Utc>,
    parked: bool,
    due: Option<DateTime<Utc>>,
) -> Result<(), HandlerError> {
    sqlx::query(
        "INSERT INTO gateway.account_posts (post_id, account_id, state, changed_at, parked_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN $4 END, $6)
         ON CONFLICT (post_id) DO UPDATE SET
             state = CASE WHEN account_posts.changed_at <= EXCLUDED.changed_at THEN EXCLUDED.state
                          ELSE account_posts.state END,
             next_attempt_at = CASE WHEN account_posts.changed_at <= EXCLUDED.changed_at
                                    THEN EXCLUDED.next_attempt_at ELSE account_posts.next_attempt_at END,
             changed_at = GREATEST(account_posts.changed_at, EXCLUDED.changed_at),
             parked_at = CASE WHEN $5 THEN LEAST(account_posts.parked_at, EXCLUDED.parked_at)
                              ELSE account_posts.parked_at END",
    )
    .bind(post)
    .bind(about.account_id)
    .bind(state)
    .bind(at)
    .bind(parked)
    .bind(due)
    .execute(&app.pool)
    .await?;
    Ok(())
}

/// A post parked after an auth failure waits for the account to be reconnected; one held for
/// the account's posting limit (rate limited, will retry) is queued until its window.
async fn on_post_failed(app: AppState, e: PostFailed, d: Delivery) -> Result<(), HandlerError> {
    let at = occurred_at(e.envelope.as_ref());
    if e.kind == PostFailureKind::RateLimited as i32 && e.will_retry {
        let post = post_id(&e.post_id)?;
        let due = e.next_attempt_at.as_ref().and_then(lifeline_kit::events::from_timestamp);
        return set_post_state_due(&app, &d.about, post, "queued", at, false, due).await;
    }
    if e.kind != PostFailureKind::Auth as i32 || e.will_retry {
        return Ok(());
    }
    let post = post_id(&e.post_id)?;
    set_post_state(&app, &d.about, post, "waiting", at, true).await
}

/// A reconnect's retry: the post is on its way out.
async fn on_post_retry_requested(
    app: AppState,
    e: PostRetryRequested,
    d: Delivery,
) -> Result<(), HandlerError> {
    if e.reason != RetryReason::AccountReconnected as i32 {
        return Ok(());
    }
    let post = post_id(&e.post_id)?;
    set_post_state(&app, &d.about, post, "retrying", occurred_at(e.envelope.as_ref()), true).await
}

async fn on_post_published(
    app: AppState,
    e: PostPublished,
    d: Delivery,
) -> Result<(), HandlerError> {
    let post = post_id(&e.post_id)?;
    set_post_state(&app, &d.about, post, "published", occurred_at(e.envelope.as_ref()), false).await
}

async fn on_post_dead_lettered(
    app: AppState,
    e: PostDeadLettered,
    d: Delivery,
) -> Result<(), HandlerError> {
    let post = post_id(&e.post_id)?;
    let at = occurred_at(e.envelope.as_ref());
    set_post_state(&app, &d.about, post, "dead_lettered", at, false).await
}

/// A cancelled post waits no more; it is forgotten a day later like a published one.
async fn on_post_cancelled(
    app: AppState,
    e: PostCancelled,
    d: Delivery,
) -> Result<(), HandlerError> {
    let post = post_id(&e.post_id)?;
    let at = occurred_at(e.envelope.as_ref());
    set_post_state(&app, &d.about, post, "cancelled", at, false).await
}

/// Forgets posts that went out (or were given up) over a day ago, and incidents older than the
/// page's 30 days, so the read model stays the size of what the page shows.
async fn purge_finished_posts(pool: sqlx::PgPool, shutdown: CancellationToken) {
    loop {
        for sql in [
            "DELETE FROM gateway.account_posts WHERE state IN ('published', 'dead_lettered', 'cancelled')
                 AND changed_at < now() - interval '1 day'",
            "DELETE FROM gateway.account_incidents WHERE started_at < now() - interval '31 days'",
        ] {
            if let Err(e) = sqlx::query(sql).execute(&pool).await {
                tracing::warn!(error = %e, "cannot purge the page's read model");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
        }
    }
}
