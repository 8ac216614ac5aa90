//! The reconciler: a periodic second look at parked posts, so that none is stranded when the
//! `AccountReconnected` that should have released it never took effect (the message was
//! dead-lettered or lost, or its handler skipped a post that another transaction held at that
//! moment).
//!
//! A `failed_auth` post is released when the vault now holds a newer credential for its account
//! than the one its last attempt used: the account was reconnected (or recovered by a refresh)
//! after the post failed. Such posts move to `retry_requested` with a `PostRetryRequested` in the
//! same transaction, exactly as the reconnect consumer does, so the retry consumer publishes each
//! once. Posts parked more recently than one period are left to the reconnect consumer.
//!
//! Each pass also deletes the posting budgets (`publisher.rate_budgets`) of accounts that were
//! disconnected (no credential left) and untouched for a period.

use std::time::Duration;

use lifeline_kit::events::{self, Envelope, PostRetryRequested, RetryReason};
use tokio_util::sync::CancellationToken;

use crate::{store::leases, AppState};

/// Posts released per transaction.
const BATCH: i64 = 500;

pub(crate) async fn run(app: AppState, shutdown: CancellationToken) {
    let period = app.config.reconcile_interval;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        match release_stranded(&app, period).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(posts = n, "released parked posts whose account has a newer credential (their reconnect was missed)");
            }
            Err(e) => tracing::warn!(error = %e, "reconciler pass failed; will try again"),
        }
        match crate::pacing::store::forget_disconnected(&app.pool, period.as_secs_f64()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(accounts = n, "forgot the posting budgets of disconnected accounts")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot forget disconnected accounts' budgets; will try again")
            }
        }
    }
}

/// One pass: releases every stranded post, in batches; returns how many.
async fn release_stranded(app: &AppState, older_than: Duration) -> Result<usize, sqlx::Error> {
    let older_than = older_than.as_secs_f64();
    let mut total = 0;
    loop {
        let mut tx = app.pool.begin().await?;
        let rows = leases::release_stranded(&mut tx, older_than, BATCH).await?;
        for row in &rows {
            let about = events::Subject {
                workspace_id: row.workspace_id.0,
                account_id: row.account_id.0,
                platform: row.platform,
            };
            let event = PostRetryRequested {
                envelope: Some(Envelope::build(about, None)),
                post_id: row.id.to_string(),
                reason: RetryReason::AccountReconnected as i32,
            };
            app.outbox.enqueue(&mut tx, &event).await?;
        }
        tx.commit().await?;
        app.outbox.wake();
        total += rows.len();
        metrics::counter!("lifeline_publish_reconciled_posts_total").increment(rows.len() as u64);
        if (rows.len() as i64) < BATCH {
            return Ok(total);
        }
    }
}
