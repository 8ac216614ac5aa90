//! Reconnect → retry: on AccountReconnected every `failed_auth` post of the account is moved to
//! `retry_requested` and a PostRetryRequested is queued for it, in one transaction per 500 posts
//! (one statement for the state change, one for the outbox); the retry consumer then publishes
//! each post once, its lease and its success written in group commits with the other handlers'.

use lifeline_kit::{
    bus::{Bus, Delivery, HandlerError},
    events::{AccountReconnected, Envelope, PostRetryRequested, RetryReason},
    ids::{AccountId, PostId},
    service::spawn_consumer,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{attempt, store::leases, AppState};

/// Posts moved to retry per transaction, so a huge backlog does not hold one long transaction.
const RETRY_BATCH: i64 = 500;

pub(crate) fn spawn(
    tasks: &mut JoinSet<()>,
    bus: &Bus,
    app: &AppState,
    shutdown: &CancellationToken,
) {
    spawn_consumer(tasks, bus, 4, app.clone(), on_reconnected, shutdown.clone());
    spawn_consumer(
        tasks,
        bus,
        app.config.concurrency,
        app.clone(),
        on_retry_requested,
        shutdown.clone(),
    );
}

async fn on_reconnected(
    app: AppState,
    e: AccountReconnected,
    d: Delivery,
) -> Result<(), HandlerError> {
    let about = d.about;
    let cause = e.envelope.as_ref();
    let mut total = 0usize;
    loop {
        let mut tx = app.pool.begin().await?;
        let ids =
            leases::request_retries(&mut tx, AccountId(about.account_id), RETRY_BATCH).await?;
        // One outbox statement for the whole batch, not one per post.
        let mut events = app.outbox.stage();
        for id in &ids {
            events.add(&PostRetryRequested {
                envelope: Some(Envelope::build(about, cause)),
                post_id: id.to_string(),
                reason: RetryReason::AccountReconnected as i32,
            })?;
        }
        events.insert(&mut tx).await?;
        tx.commit().await?;
        app.outbox.wake();
        total += ids.len();
        if (ids.len() as i64) < RETRY_BATCH {
            break;
        }
    }
    if total > 0 {
        tracing::info!(account = %about.account_id, platform = %about.platform, posts = total, "account reconnected; retrying parked posts");
    }
    Ok(())
}

async fn on_retry_requested(
    app: AppState,
    e: PostRetryRequested,
    d: Delivery,
) -> Result<(), HandlerError> {
    let post: PostId = e
        .post_id
        .parse()
        .map_err(|_| HandlerError::Poison(format!("invalid post_id {:?}", e.post_id)))?;
    let replay = e.reason == RetryReason::OperatorReplay as i32;
    // Concurrent handlers' leases are written together (attempt::batch).
    let request = attempt::batch::LeaseRequest { post, allow_dead_lettered: replay };
    let leased = app
        .batches
        .lease
        .call(request)
        .await
        .map_err(|e| HandlerError::Transient(format!("leasing the post: {e}")))?;
    let Some(leased) = leased else {
        tracing::debug!(%post, "retry already handled or post not waiting; nothing to do");
        return Ok(());
    };
    let about = d.about;
    if leased.account_id.0 != about.account_id {
        tracing::warn!(%post, "retry request names another account than the post's; using the post's");
    }
    attempt::run(&app, leased, e.envelope.as_ref()).await;
    Ok(())
}
