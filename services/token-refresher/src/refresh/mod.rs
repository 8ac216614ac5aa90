//! The refresh pipeline.
//!
//! 1. **Lease** (the sweep): per platform, as many due rows as that platform's gate has room for,
//!    `FOR UPDATE SKIP LOCKED` + `lease_until`, so replicas never hold one account at once. The
//!    query walks the `(platform, due_at)` partial index: its cost follows the number due.
//! 2. **Call** (one task per row): load the credential (one query per leased batch), pass the
//!    platform's gate (breaker, concurrency, rate), refresh or probe.
//! 3. **Settle** (writer tasks): outcomes are written in small batches, one transaction each:
//!    the vault's compare-and-swap first, then the schedule, then the events into the outbox.
//!
//! A rotating refresh token is never sent twice: before the call the row records which
//! credential version's token is on the wire (`sent_version`, committed). Any answer from the
//! platform clears it. If no answer comes (timeout, crash), the next holder finds the mark and
//! does not send again; the row goes `in_doubt` and the owner is warned before the access token
//! lapses. docs/refresh-policy.md describes this window.
//!
//! Each step has its file, with its types and SQL: [`lease`], [`call`], [`settle`]. This one
//! runs them: the sweep loop, a task per call, and the writer tasks.

mod call;
mod lease;
mod settle;

use std::{sync::Arc, time::Duration};

use lifeline_kit::ids::AccountId;
use tokio::{
    sync::{mpsc, Mutex, Notify},
    task::JoinSet,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use self::settle::Settlement;
use crate::{gate::Gate, warnings, AppState};

type Outcomes = Arc<Mutex<mpsc::Receiver<Settlement>>>;

/// Runs the sweep, the calls and the writers until `shutdown`; then lets every call in flight
/// finish and be written.
pub(crate) async fn run(app: AppState, shutdown: CancellationToken) {
    let (tx, rx) = mpsc::channel::<Settlement>(4096);
    let rx: Outcomes = Arc::new(Mutex::new(rx));
    let mut writers = JoinSet::new();
    for _ in 0..app.config.writers {
        writers.spawn(write_outcomes(app.clone(), rx.clone()));
    }
    let wake = Arc::new(Notify::new());
    let mut calls = JoinSet::new();
    let mut warned_at: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let mut more_due = false;
        for gate in app.gates.values() {
            match lease_and_call(&app, gate, &tx, &wake, &mut calls).await {
                Ok(full) => more_due |= full,
                Err(e) => {
                    tracing::warn!(platform = %gate.platform, error = %e, "cannot lease due credentials; will try again");
                }
            }
        }
        for gate in app.gates.values() {
            gate.publish_gauges();
        }
        if warned_at.is_none_or(|at| at.elapsed() >= app.config.sweep_interval) {
            warned_at = Some(Instant::now());
            if let Err(e) = warnings::sweep(&app).await {
                tracing::warn!(error = %e, "cannot send expiry warnings; will try again");
            }
        }
        metrics::histogram!("lifeline_refresh_sweep_seconds")
            .record(started.elapsed().as_secs_f64());
        while calls.try_join_next().is_some() {}
        // More is due than there was room for: come back as soon as a call finishes.
        let pause = if more_due { Duration::from_secs(1) } else { app.config.sweep_interval };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
            () = wake.notified(), if more_due => {
                // Let a few more calls finish, so one lease query refills many slots.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    while calls.join_next().await.is_some() {}
    drop(tx);
    while writers.join_next().await.is_some() {}
}

/// Leases due rows of one platform and starts their calls. Returns true when it had no room
/// or filled all the room it had (more may be due).
async fn lease_and_call(
    app: &AppState,
    gate: &Arc<Gate>,
    tx: &mpsc::Sender<Settlement>,
    wake: &Arc<Notify>,
    calls: &mut JoinSet<()>,
) -> Result<bool, sqlx::Error> {
    let room = gate.lease_room(usize::try_from(app.config.batch).unwrap_or(1));
    if room == 0 {
        // Every slot is busy (or the breaker holds calls back): come back when a call ends.
        return Ok(true);
    }
    let rows = lease::lease_due(app, gate, room).await?;
    if rows.is_empty() {
        return Ok(false);
    }
    let leased_at = Instant::now();
    lease::count_leased(gate, &rows);
    let full = rows.len() == room;
    let Some(mut credentials) = call::load_credentials(app, gate, &rows).await else {
        // Leave the rows leased: they come back when the lease runs out.
        return Ok(false);
    };
    for row in rows {
        let credential = credentials.remove(&AccountId(row.account_id));
        let (app, gate, tx, wake) = (app.clone(), gate.clone(), tx.clone(), wake.clone());
        calls.spawn(async move {
            let (facts, outcome) = call::call(&app, &gate, &row, credential).await;
            let settlement =
                Settlement { platform: gate.platform, row, credential: facts, outcome, leased_at };
            if tx.send(settlement).await.is_err() {
                tracing::error!("the outcome writers are gone; the lease will run out");
            }
            wake.notify_one();
        });
    }
    Ok(full)
}

/// Drains outcomes in batches of up to `BATCH`, one transaction per batch. A batch that fails
/// is written again one outcome per transaction, so one bad row cannot lose the others' tokens.
async fn write_outcomes(app: AppState, rx: Outcomes) {
    const BATCH: usize = 64;
    loop {
        let mut batch = Vec::with_capacity(BATCH);
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, BATCH).await == 0 {
                return;
            }
        }
        match settle::settle_batch(&app, &batch).await {
            Ok(after) => settle::finish(&app, &batch, after).await,
            Err(e) => {
                tracing::warn!(error = %e, outcomes = batch.len(), "writing a batch of outcomes failed; writing them one by one");
                for one in &batch {
                    let single = std::slice::from_ref(one);
                    match settle::settle_batch(&app, single).await {
                        Ok(after) => settle::finish(&app, single, after).await,
                        Err(e) => {
                            tracing::error!(account = %one.row.account_id, error = %e,
                                "cannot record a refresh outcome; the lease will run out and the row is retried");
                            settle::finish(&app, single, Vec::new()).await;
                        }
                    }
                }
            }
        }
    }
}
