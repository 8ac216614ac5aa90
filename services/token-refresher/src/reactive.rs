//! The reactive path: a publish failed for auth reasons. The token may only have lapsed early, so
//! the account's refresh is made due now, once per credential version. If it works, the settle
//! step announces AccountReconnected (recovered by refresh) and parked posts retry without the
//! owner doing anything; if the platform refuses, AuthFailed from the refresh confirms the cause.
//! A token that cannot be refreshed is probed once instead, to confirm the cause.

use lifeline_kit::{
    bus::{Bus, Delivery, HandlerError},
    events::{AccountReconnected, AuthFailed, AuthFailureSource, Envelope, ReconnectReason},
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
}

async fn on_auth_failed(app: AppState, e: AuthFailed, d: Delivery) -> Result<(), HandlerError> {
    if e.source != AuthFailureSource::Publish as i32 {
        // Our own refresh and probe failures: nothing more to try.
        return Ok(());
    }
    let about = d.about;
    let failed_version = i64::try_from(e.credential_version).unwrap_or(i64::MAX);
    let mut tx = app.pool.begin().await?;
    // `refreshed`: the current credential came from a refresh, not from a (re)connect.
    let row: Option<(String, String, i64, Option<i64>, bool)> = sqlx::query_as(
        "SELECT state, action, credential_version, reactive_version,
                COALESCE(last_refreshed_at >= access_issued_at, false)
         FROM refresher.schedule WHERE account_id = $1 FOR UPDATE",
    )
    .bind(about.account_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((state, action, version, tried, refreshed)) = row else {
        tracing::debug!(account = %about.account_id, "publish auth failure of an account not scheduled here");
        return Ok(());
    };
    if state != "active" {
        // Nothing to refresh with, a refresh already refused, or a rotation in doubt.
        return Ok(());
    }
    if action == "probe" {
        // A token that cannot be refreshed (a Facebook page token): probe it now, once, so a
        // revocation is confirmed with the platform's own cause.
        sqlx::query(
            "UPDATE refresher.schedule SET due_at = now(), reactive_version = $2, updated_at = now()
             WHERE account_id = $1 AND (reactive_version IS NULL OR reactive_version < $2)",
        )
        .bind(about.account_id)
        .bind(failed_version)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(());
    }
    if version > failed_version {
        // The failed token was replaced already. By a reconnect: the gateway announced it, and
        // the parked posts retry from that. By a refresh: the account works again; say so, once
        // per credential version however many stale failures arrive, so the posts parked with
        // the old token retry.
        if !refreshed {
            return Ok(());
        }
        let first = sqlx::query(
            "INSERT INTO refresher.recoveries (account_id, credential_version) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(about.account_id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        if first.rows_affected() == 0 {
            return Ok(());
        }
        let credential = app
            .vault
            .load(lifeline_kit::ids::AccountId(about.account_id))
            .await
            .map_err(|e| HandlerError::Transient(e.to_string()))?;
        let Some(credential) = credential else { return Ok(()) };
        let event = AccountReconnected {
            envelope: Some(Envelope::build(about, e.envelope.as_ref())),
            platform_user_id: credential.platform_user_id,
            scopes: credential.tokens.scopes,
            credential_version: u64::try_from(version).unwrap_or_default(),
            reason: ReconnectReason::RecoveredByRefresh as i32,
        };
        app.outbox.enqueue(&mut tx, &event).await?;
        tx.commit().await?;
        app.outbox.wake();
        tracing::info!(account = %about.account_id, "publish failed with a token refreshed since; parked posts will retry");
        return Ok(());
    }
    if version < failed_version || tried.is_some_and(|t| t >= failed_version) {
        // Not yet scheduled from that credential, or already tried once.
        return Ok(());
    }
    sqlx::query(
        "UPDATE refresher.schedule SET due_at = now(), publish_failed_version = $2,
             reactive_version = $2, publish_failed_event = $3, publish_failed_correlation = $4,
             updated_at = now()
         WHERE account_id = $1",
    )
    .bind(about.account_id)
    .bind(failed_version)
    .bind(e.envelope.as_ref().map(|e| e.event_id.clone()))
    .bind(e.envelope.as_ref().map(|e| e.correlation_id.clone()))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("lifeline_reactive_refreshes_total", "platform" => about.platform.as_str())
        .increment(1);
    tracing::info!(account = %about.account_id, platform = %about.platform, "publish refused the token; trying one immediate refresh");
    Ok(())
}
