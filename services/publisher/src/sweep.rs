//! The sweep: leases due posts (and posts whose lease expired mid-attempt) with
//! `FOR UPDATE SKIP LOCKED`, records each attempt before the platform call, then runs them.

use lifeline_kit::ids::PostId;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    attempt,
    model::{qualified_columns, Post, POST_COLUMNS},
    AppState,
};

pub(crate) async fn run(app: AppState, shutdown: CancellationToken) {
    let mut in_flight = JoinSet::new();
    loop {
        match lease_due_posts(&app).await {
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

/// Takes up to a batch of due posts for this replica and records an attempt for each, in one
/// transaction. A post still `publishing` past its lease was abandoned mid-call (a crash): its
/// outcome is unknown, so it is marked for reconciliation before it is sent again.
async fn lease_due_posts(app: &AppState) -> Result<Vec<Post>, sqlx::Error> {
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
             WHERE (status = 'scheduled' AND next_attempt_at <= now())
                OR (status = 'publishing' AND lease_until < now())
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
    .bind(app.config.batch)
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

/// Leases one post that a retry request names, if it is still waiting for that retry; `None`
/// when it was retried already (a redelivered request) or is in another state.
pub(crate) async fn lease_for_retry(
    app: &AppState,
    post: PostId,
    allow_dead_lettered: bool,
) -> Result<Option<Post>, sqlx::Error> {
    let mut tx = app.pool.begin().await?;
    let leased: Option<Post> = sqlx::query_as(&format!(
        "UPDATE publisher.posts SET
             status = 'publishing', lease_owner = $2, lease_until = now() + make_interval(secs => $3),
             attempts = attempts + 1, retryable_failures = 0, updated_at = now()
         WHERE id = $1 AND (status = 'retry_requested' OR ($4 AND status = 'dead_lettered'))
         RETURNING {POST_COLUMNS}"
    ))
    .bind(post)
    .bind(&app.config.common.instance_id)
    .bind(app.config.lease.as_secs_f64())
    .bind(allow_dead_lettered)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(p) = &leased {
        sqlx::query("INSERT INTO publisher.attempts (post_id, attempt) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(p.id)
            .bind(p.attempts)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE publisher.dead_letters SET replayed_at = now(), replay_count = replay_count + 1 WHERE post_id = $1 AND replayed_at IS NULL")
            .bind(p.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(leased)
}
