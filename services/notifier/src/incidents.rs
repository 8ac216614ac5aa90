//! Incidents: the first AuthFailed of a healthy account opens one and notifies the owner; more
//! failures while it is open add nothing; AccountReconnected closes it.

use lifeline_kit::{
    bus::{Bus, Delivery, HandlerError},
    events::{
        from_timestamp, AccountReconnected, AuthFailed, AuthFailureCause, ExpiringCredential,
        TokenExpiring,
    },
    service::spawn_consumer,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::AppState;

pub(crate) fn spawn(
    tasks: &mut JoinSet<()>,
    bus: &Bus,
    app: &AppState,
    shutdown: &CancellationToken,
) {
    spawn_consumer(tasks, bus, 8, app.clone(), on_auth_failed, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_reconnected, shutdown.clone());
    spawn_consumer(tasks, bus, 8, app.clone(), on_expiring, shutdown.clone());
}

fn poison(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Poison(e.to_string())
}

async fn on_auth_failed(app: AppState, e: AuthFailed, d: Delivery) -> Result<(), HandlerError> {
    let about = d.about;
    let event_id = e.envelope.as_ref().map(|e| e.event_id.clone()).unwrap_or_default();
    let cause = AuthFailureCause::try_from(e.cause).unwrap_or(AuthFailureCause::Unknown);
    let version = i64::try_from(e.credential_version).unwrap_or(i64::MAX);
    let mut tx = app.pool.begin().await?;
    let reconnected: Option<i64> = sqlx::query_scalar(
        "SELECT reconnected_version FROM notifier.account_versions WHERE account_id = $1",
    )
    .bind(about.account_id)
    .fetch_optional(&mut *tx)
    .await?;
    if reconnected.is_some_and(|r| version < r) {
        tracing::debug!(account = %about.account_id, "failure of a credential replaced since; ignored");
        return Ok(());
    }
    let incident: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO notifier.incidents (id, workspace_id, account_id, platform, cause, opened_by_event)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (account_id) WHERE closed_at IS NULL DO NOTHING
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(about.workspace_id)
    .bind(about.account_id)
    .bind(about.platform.as_str())
    .bind(cause.as_str())
    .bind(&event_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(incident) = incident else {
        // Already notified for this incident.
        return Ok(());
    };
    let title = format!("Your {} account needs reconnecting", about.platform.display_name());
    let body = format!(
        "Lifeline cannot publish to this {} account because {}. Reconnect it on the Accounts page; \
         posts that failed in the meantime will be sent once it is back.",
        about.platform.display_name(),
        cause.explain()
    );
    sqlx::query(
        "INSERT INTO notifier.notifications (id, workspace_id, account_id, incident_id, kind, title, body, dedupe_key)
         VALUES ($1, $2, $3, $4, 'connection_broken', $5, $6, $7) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(about.workspace_id)
    .bind(about.account_id)
    .bind(incident)
    .bind(&title)
    .bind(&body)
    .bind(format!("incident:{incident}"))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("lifeline_notifications_total", "kind" => "connection_broken").increment(1);
    tracing::info!(account = %about.account_id, platform = %about.platform, cause = cause.as_str(), "incident opened; owner notified");
    Ok(())
}

async fn on_reconnected(
    app: AppState,
    e: AccountReconnected,
    d: Delivery,
) -> Result<(), HandlerError> {
    let about = d.about;
    let event_id = e.envelope.as_ref().map(|e| e.event_id.clone()).unwrap_or_default();
    let version = i64::try_from(e.credential_version).unwrap_or(i64::MAX);
    let mut tx = app.pool.begin().await?;
    sqlx::query(
        "INSERT INTO notifier.account_versions (account_id, reconnected_version) VALUES ($1, $2)
         ON CONFLICT (account_id) DO UPDATE SET reconnected_version = GREATEST(account_versions.reconnected_version, $2)",
    )
    .bind(about.account_id)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    let closed = sqlx::query(
        "UPDATE notifier.incidents SET closed_at = now(), closed_by_event = $2 WHERE account_id = $1 AND closed_at IS NULL",
    )
    .bind(about.account_id)
    .bind(&event_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if closed.rows_affected() > 0 {
        tracing::info!(account = %about.account_id, "incident closed by reconnect");
    }
    Ok(())
}

async fn on_expiring(app: AppState, e: TokenExpiring, d: Delivery) -> Result<(), HandlerError> {
    let about = d.about;
    let expires_at = e
        .expires_at
        .as_ref()
        .and_then(from_timestamp)
        .ok_or_else(|| poison("token_expiring without expires_at"))?;
    let credential = match ExpiringCredential::try_from(e.credential) {
        Ok(ExpiringCredential::RefreshToken) => "refresh_token",
        _ => "access_token",
    };
    let title = format!("Your {} connection will lapse soon", about.platform.display_name());
    let body = format!(
        "The connection to this {} account lapses on {} and cannot be renewed automatically{}. Reconnect it on the \
         Accounts page before then to keep posting.",
        about.platform.display_name(),
        expires_at.format("%Y-%m-%d %H:%M UTC"),
        if e.reason.is_empty() { String::new() } else { format!(" ({})", e.reason) }
    );
    let key = format!(
        "expiring:{}:{credential}:{}:{}",
        about.account_id,
        expires_at.timestamp(),
        e.horizon_seconds
    );
    let inserted = sqlx::query(
        "INSERT INTO notifier.notifications (id, workspace_id, account_id, kind, title, body, dedupe_key)
         VALUES ($1, $2, $3, 'connection_expiring', $4, $5, $6) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(about.workspace_id)
    .bind(about.account_id)
    .bind(&title)
    .bind(&body)
    .bind(key)
    .execute(&app.pool)
    .await?;
    if inserted.rows_affected() > 0 {
        metrics::counter!("lifeline_notifications_total", "kind" => "connection_expiring")
            .increment(1);
    }
    Ok(())
}
