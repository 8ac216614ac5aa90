//! The sweep: leases due posts (and posts whose lease expired mid-attempt) with
//! `FOR UPDATE SKIP LOCKED`, records each attempt before the platform call, then runs them.
//! Posts of a platform whose circuit breaker is open are not leased but pushed back to its next
//! trial, and a half-open breaker gets one post for its trial call.

use lifeline_kit::Platform;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    attempt,
    breakers::{Breakers, Leasing},
    model::Post,
    store::leases,
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
            Leasing::Open => closed.push(platform),
            Leasing::Trial => trials.push(platform),
            Leasing::HoldUntil(at) => {
                let window = app.config.retry.window.as_secs_f64();
                let held = leases::hold_due(&app.pool, platform, at, window).await?;
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

/// Takes up to `limit` due posts of `platforms` (and any due post whose retry window has passed)
/// for this replica and records an attempt for each, in one transaction. A post still
/// `publishing` past its lease was abandoned mid-call (a crash): its outcome is unknown, so it
/// is marked for reconciliation before it is sent again.
async fn lease_due_posts(
    app: &AppState,
    platforms: &[Platform],
    limit: i64,
) -> Result<Vec<Post>, sqlx::Error> {
    let sweep = leases::Sweep {
        owner: &app.config.common.instance_id,
        lease_secs: app.config.lease.as_secs_f64(),
        window_secs: app.config.retry.window.as_secs_f64(),
    };
    let posts = leases::lease_due(&app.pool, &sweep, platforms, limit).await?;
    metrics::counter!("lifeline_publish_leased_total").increment(posts.len() as u64);
    Ok(posts)
}
