//! The replay pacer: releases replayed posts at each platform's replay rate
//! (`LIFELINE_REPLAY_RATE`), queueing a `PostRetryRequested` for each in the same transaction
//! that marks it released, so a bulk replay reaches a platform in paced batches instead of all
//! at once. One replica releases at a time (an advisory lock), so the rate holds for the fleet.

use std::{sync::Arc, time::Duration};

use lifeline_kit::events::{self, Envelope, PostRetryRequested, RetryReason};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::plan;
use crate::{store::replays as store, AppState};

/// The window a platform's rate is counted over.
const WINDOW: Duration = Duration::from_secs(1);
/// How often waiting posts are looked at; a new replay wakes the pacer at once.
const TICK: Duration = Duration::from_millis(250);

pub(crate) async fn run(app: AppState, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        match release(&app).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(posts = n, "released replayed posts"),
            Err(e) => tracing::warn!(error = %e, "replay release failed; will try again"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// One pass: each platform with waiting posts gets what its window has left.
async fn release(app: &AppState) -> Result<usize, sqlx::Error> {
    let mut tx = app.pool.begin().await?;
    store::lock_release(&mut tx).await?;
    let mut total = 0;
    for (platform, released) in store::waiting_platforms(&mut tx, WINDOW).await? {
        let n = plan::budget(app.config.replay_rates.of(platform), released);
        if n == 0 {
            continue;
        }
        for r in store::release(&mut tx, platform, n).await? {
            let about = events::Subject {
                workspace_id: r.workspace_id.0,
                account_id: r.account_id.0,
                platform,
            };
            let event = PostRetryRequested {
                envelope: Some(Envelope::build(about, None)),
                post_id: r.post_id.to_string(),
                reason: RetryReason::OperatorReplay as i32,
            };
            app.outbox.enqueue(&mut tx, &event).await?;
            total += 1;
        }
    }
    tx.commit().await?;
    if total > 0 {
        app.outbox.wake();
    }
    Ok(total)
}
