//! The refresh schedule follows the accounts: a connected or reconnected account is scheduled
//! from its stored credential; a disconnected one is dropped.

use chrono::Utc;
use lifeline_kit::{
    bus::{Bus, Delivery, HandlerError},
    events::{AccountConnected, AccountDisconnected, AccountReconnected, Subject},
    ids::AccountId,
    service::spawn_consumer,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{policy, AppState};

pub(crate) fn spawn_consumers(
    tasks: &mut JoinSet<()>,
    bus: &Bus,
    app: &AppState,
    shutdown: &CancellationToken,
) {
    spawn_consumer(tasks, bus, 8, app.clone(), on_connected, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_reconnected, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_disconnected, shutdown.clone());
}

async fn on_connected(app: AppState, _: AccountConnected, d: Delivery) -> Result<(), HandlerError> {
    schedule_from_vault(&app, d.about).await
}

async fn on_reconnected(
    app: AppState,
    _: AccountReconnected,
    d: Delivery,
) -> Result<(), HandlerError> {
    schedule_from_vault(&app, d.about).await
}

async fn on_disconnected(
    app: AppState,
    _: AccountDisconnected,
    d: Delivery,
) -> Result<(), HandlerError> {
    let about = d.about;
    sqlx::query("DELETE FROM refresher.schedule WHERE account_id = $1")
        .bind(about.account_id)
        .execute(&app.pool)
        .await?;
    Ok(())
}

/// (Re)schedules an account from what the vault holds now; an older credential version never
/// overwrites the schedule of a newer one. Tokens with an expiry are refreshed on the platform's
/// schedule; tokens without one are probed, at the account's slot of the day.
pub(crate) async fn schedule_from_vault(
    app: &AppState,
    about: Subject,
) -> Result<(), HandlerError> {
    let account = AccountId(about.account_id);
    let Some(info) =
        app.vault.info(account).await.map_err(|e| HandlerError::Transient(e.to_string()))?
    else {
        // Disconnected since the event was emitted.
        return Ok(());
    };
    let now = Utc::now();
    let policy::Plan { action, state, due_at: due } = policy::plan(
        info.platform,
        account.0,
        now,
        info.access_expires_at,
        info.has_refresh_token,
        app.config.probe_interval,
    );
    let facts = policy::Facts {
        platform: info.platform,
        state,
        failures: 0,
        access_issued_at: Some(now),
        access_expires_at: info.access_expires_at,
        refresh_expires_at: info.refresh_expires_at,
    };
    let warn_at =
        policy::watch(&facts, &app.config.horizons).and_then(|w| policy::next_warning(&w, now));
    sqlx::query(
        "INSERT INTO refresher.schedule (account_id, workspace_id, platform, state, action, due_at,
             credential_version, access_issued_at, access_expires_at, refresh_expires_at, warn_at,
             granted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8, $9, $10, $11)
         ON CONFLICT (account_id) DO UPDATE SET state = $4, action = $5, due_at = $6,
             credential_version = $7, access_issued_at = now(), access_expires_at = $8,
             refresh_expires_at = $9, warn_at = $10, granted_at = $11, failures = 0, last_error = NULL,
             sent_version = NULL, publish_failed_version = NULL, reactive_version = NULL,
             lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE schedule.credential_version < $7",
    )
    .bind(account)
    .bind(info.workspace_id)
    .bind(info.platform.as_str())
    .bind(state.as_str())
    .bind(action)
    .bind(due)
    .bind(info.version)
    .bind(info.access_expires_at)
    .bind(info.refresh_expires_at)
    .bind(warn_at)
    .bind(info.first_granted_at)
    .execute(&app.pool)
    .await?;
    Ok(())
}
