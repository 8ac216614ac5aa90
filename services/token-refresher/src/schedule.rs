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
/// overwrites the schedule of a newer one.
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
    let due = policy::refresh_due(info.platform, Utc::now(), info.access_expires_at);
    let state = if due.is_some() && info.has_refresh_token { "active" } else { "unrefreshable" };
    sqlx::query(
        "INSERT INTO refresher.schedule (account_id, workspace_id, platform, state, due_at, credential_version)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (account_id) DO UPDATE SET state = $4, due_at = $5, credential_version = $6, failures = 0,
             last_error = NULL, updated_at = now()
         WHERE schedule.credential_version < $6",
    )
    .bind(account)
    .bind(info.workspace_id)
    .bind(info.platform.as_str())
    .bind(state)
    .bind(due)
    .bind(info.version)
    .execute(&app.pool)
    .await?;
    Ok(())
}
