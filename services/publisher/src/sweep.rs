//! The sweep: leases due posts (and posts whose lease expired mid-attempt) with
//! `FOR UPDATE SKIP LOCKED`, records each attempt before the platform call, then runs them.
//! Posts of a platform whose circuit breaker is open are not leased but pushed back to its next
//! trial, and a half-open breaker gets one post for its trial call.

use chrono::{DateTime, Utc};
use lifeline_kit::{ids::PostId, Platform};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    attempt,
    breakers::{Breakers, Leasing},
    model::{qualified_columns, Post},
    AppState,
};

pub(crate) async fn run(app: AppState, shutdown: CancellationToken) {
    let mut in_flight = JoinSet::new();
    loop {
        match lease_what_breakers_allow(&app).await {
            Ok(posts) => {
                let leased = posts.len();
                for post in posts {
                    let app = app.clone();
                    in_flight.spawn(async move { attempt::run(&app, post, None).await });
                }
                if leased > 0 {
                    tracing::debug!(leased, "leased due posts");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot lease due posts; will try again"),
        }
        while in_flight.try_join_next().is_some() {}
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(app.config.sweep_interval) => {}
        }
    }
    // Finish what was started; unfinished leases would otherwise wait for expiry.
    while in_flight.join_next().await.is_some() {}
}

/// Asks each platform's breaker what may be leased: a batch of due posts of the platforms whose
/// breaker is closed, one post for each trial, and the due posts of the others pushed back.
async fn lease_what_breakers_allow(app: &AppState) -> Result<Vec<Post>, sqlx::Error> {
    app.breakers.publish_gauges();
    let mut closed = Vec::new();
    let mut trials = Vec::new();
    for platform in Platform::ALL {
        match app.breakers.leasing(platform) {
            Leasing::Open => closed.push(platform.as_str()),
            Leasing::Trial => trials.push(platform.as_str()),
            Leasing::HoldUntil(at) => {
                let held = hold_due_posts(app, platform, at).await?;
                if held > 0 {
                    Breakers::skipped(platform, held);
                    tracing::info!(%platform, posts = held, %at, "circuit breaker open; due posts held until its next trial");
                }
            }
            Leasing::Wait => {}
        }
    }
    let mut posts = lease_due_posts(app, &closed, app.config.batch).await?;
    for platform in trials {
        posts.extend(lease_due_posts(app, &[platform], 1).await?);
    }
    Ok(posts)
}

/// Pushes the due posts of a platform whose breaker is open back to its next trial, marking
/// since when the platform has kept them back. Posts whose retry window has passed are left due:
/// the next lease takes them, and their attempt dead-letters them without a call.
async fn hold_due_posts(
    app: &AppState,
    platform: Platform,
    until: DateTime<Utc>,
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
    .bind(platform.as_str())
    .bind(until)
    .bind(app.config.retry.window.as_secs_f64())
    .execute(&app.pool)
    .await?;
    Ok(held.rows_affected())
}

/// Takes up to `limit` due posts of `platforms` (and any due post whose retry window has passed)
/// for this replica and records an attempt for each, in one transaction. A post still
/// `publishing` past its lease was abandoned mid-call (a crash): its outcome is unknown, so it
/// is marked for reconciliation before it is sent again.
async fn lease_due_posts(
    app: &AppState,
    platforms: &[&str],
    limit: i64,
) -> Result<Vec<Post>, sqlx::Error> {
    let mut tx = app.pool.begin().await?;
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
    .bind(&app.config.common.instance_id)
    .bind(app.config.lease.as_secs_f64())
    .bind(limit)
    .bind(platforms)
    .bind(app.config.retry.window.as_secs_f64())
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
    metrics::counter!("lifeline_publish_leased_total").increment(posts.len() as u64);
    Ok(posts)
}
