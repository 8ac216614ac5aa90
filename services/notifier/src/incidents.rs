//! Incidents: the first AuthFailed of a healthy account opens one and notifies the owner; more
//! failures while it is open add nothing; AccountReconnected closes it.

use lifeline_kit::{
    bus::{Bus, Delivery, HandlerError},
    events::{
        from_timestamp, AccountReconnected, AuthFailed, AuthFailureCause, AuthFailureSource,
        Envelope, ExpiringCredential, TokenExpiring,
    },
    ids::WorkspaceId,
    service::spawn_consumer,
    Platform,
};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{accounts::Known, delivery::enqueue, flapping, message, AppState};

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
    // A publish failure on a platform with refresh may heal by itself: hold the notification
    // for the grace period. The refresher's own verdict (refresh or probe) is final.
    let may_heal = e.source == AuthFailureSource::Publish as i32
        && about.platform != Platform::Facebook
        && !app.grace.is_zero();
    let notify_after = chrono::Utc::now()
        + if may_heal {
            chrono::Duration::from_std(app.grace).unwrap_or_default()
        } else {
            chrono::Duration::zero()
        };
    // Asked before the transaction: an HTTP call must not hold row locks.
    let known = app.names.about(WorkspaceId(about.workspace_id), about.account_id).await;
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
    let opened: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO notifier.incidents (id, workspace_id, account_id, platform, cause, opened_by_event, notify_after)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (account_id) WHERE closed_at IS NULL DO NOTHING
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(about.workspace_id)
    .bind(about.account_id)
    .bind(about.platform.as_str())
    .bind(cause.as_str())
    .bind(&event_id)
    .bind(notify_after)
    .fetch_optional(&mut *tx)
    .await?;
    let pending: Option<(Uuid, String)> = match opened {
        Some(id) if !may_heal => Some((id, cause.as_str().to_owned())),
        Some(_) => None,
        None if !may_heal => {
            // An incident is open and still waiting: this verdict ends the wait, and its cause
            // replaces a vague one.
            sqlx::query_as(
                "UPDATE notifier.incidents SET notify_after = now(),
                     cause = CASE WHEN cause IN ('expired', 'unknown', 'unspecified') THEN $2 ELSE cause END
                 WHERE account_id = $1 AND closed_at IS NULL AND notified_at IS NULL
                 RETURNING id, cause",
            )
            .bind(about.account_id)
            .bind(cause.as_str())
            .fetch_optional(&mut *tx)
            .await?
        }
        None => None,
    };
    let notified = pending.is_some();
    if let Some((incident, cause)) = pending {
        let caused_by = e.envelope.as_ref();
        notify(&mut tx, &app, incident, about, &cause, &known, caused_by).await?;
    } else if opened.is_some() {
        tracing::info!(account = %about.account_id, platform = %about.platform, cause = cause.as_str(),
            "incident opened; the owner is told if a refresh does not heal it");
    }
    tx.commit().await?;
    if notified {
        app.wake.notify_one();
        app.outbox.wake();
    }
    Ok(())
}

/// Writes the incident's one notification (and its deliveries) and marks it sent. `caused_by`
/// is the verdict that sends it, the cause of an `AccountFlapping` it may publish.
async fn notify(
    tx: &mut sqlx::PgConnection,
    app: &AppState,
    incident: Uuid,
    about: lifeline_kit::events::Subject,
    cause: &str,
    known: &Known,
    caused_by: Option<&Envelope>,
) -> Result<(), sqlx::Error> {
    let handle = known.handle.as_deref();
    let cause = AuthFailureCause::parse(cause).unwrap_or(AuthFailureCause::Unknown);
    let frequent = flapping::check(tx, app, incident, about, cause, caused_by).await?;
    let words = message::broken(about.platform, handle, cause, frequent, known.posts_waiting);
    let (title, body) = (&words.title, format!("{} {}", words.body, words.advice));
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO notifier.notifications (id, workspace_id, account_id, incident_id, kind, title, body, dedupe_key)
         VALUES ($1, $2, $3, $4, 'connection_broken', $5, $6, $7) ON CONFLICT (dedupe_key) DO NOTHING
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(about.workspace_id)
    .bind(about.account_id)
    .bind(incident)
    .bind(title)
    .bind(&body)
    .bind(format!("incident:{incident}"))
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(notification) = inserted {
        let data = json!({
            "notification_id": notification,
            "incident_id": incident,
            "workspace_id": about.workspace_id,
            "account_id": about.account_id,
            "platform": about.platform.as_str(),
            "cause": cause.as_str(),
            "cause_text": cause.explain(),
            "frequent_disconnections": frequent,
            "posts_waiting": known.posts_waiting,
            "handle": handle,
            "title": title,
            "body": words.body,
            "advice": words.advice,
            "reconnect_url": message::reconnect_url(&app.public_url, about.account_id),
        });
        enqueue::to_workspace(
            tx,
            WorkspaceId(about.workspace_id),
            Some(notification),
            "account.needs_reconnect",
            &data,
        )
        .await?;
    }
    sqlx::query("UPDATE notifier.incidents SET notified_at = now() WHERE id = $1")
        .bind(incident)
        .execute(&mut *tx)
        .await?;
    metrics::counter!("lifeline_notifications_total", "kind" => "connection_broken").increment(1);
    tracing::info!(account = %about.account_id, platform = %about.platform, cause = cause.as_str(), "owner notified");
    Ok(())
}

/// Sends the notifications whose grace period ran out with the incident still open.
pub(crate) async fn send_when_grace_ends(app: AppState, shutdown: CancellationToken) {
    loop {
        if let Err(e) = send_due(&app).await {
            tracing::warn!(error = %e, "cannot send pending notifications; will try again");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
    }
}

async fn send_due(app: &AppState) -> Result<(), sqlx::Error> {
    let mut tx = app.pool.begin().await?;
    let due: Vec<(Uuid, Uuid, Uuid, String, String, String)> = sqlx::query_as(
        "SELECT id, workspace_id, account_id, platform, cause, opened_by_event FROM notifier.incidents
         WHERE notified_at IS NULL AND closed_at IS NULL AND notify_after <= now()
         ORDER BY notify_after LIMIT 200 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    let any = !due.is_empty();
    for (id, workspace_id, account_id, platform, cause, opened_by) in due {
        let Ok(platform) = platform.parse::<Platform>() else { continue };
        let about = lifeline_kit::events::Subject { workspace_id, account_id, platform };
        let known = app.names.about(WorkspaceId(workspace_id), account_id).await;
        // The verdict that opened the incident is the cause of what its notification publishes.
        let opened_by = Envelope { event_id: opened_by, ..Envelope::default() };
        notify(&mut tx, app, id, about, &cause, &known, Some(&opened_by)).await?;
    }
    tx.commit().await?;
    if any {
        app.wake.notify_one();
        app.outbox.wake();
    }
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
    let closed: Vec<(Uuid, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "UPDATE notifier.incidents SET closed_at = now(), closed_by_event = $2 WHERE account_id = $1 AND closed_at IS NULL
         RETURNING id, notified_at",
    )
    .bind(about.account_id)
    .bind(&event_id)
    .fetch_all(&mut *tx)
    .await?;
    // Only an owner who was told the account broke is told it is back.
    let told: Vec<Uuid> = closed.iter().filter(|(_, n)| n.is_some()).map(|(id, _)| *id).collect();
    for incident in &told {
        let data = json!({
            "incident_id": incident,
            "workspace_id": about.workspace_id,
            "account_id": about.account_id,
            "platform": about.platform.as_str(),
            "title": format!("Your {} account is reconnected", about.platform.display_name()),
            "body": "Lifeline publishes to it again; posts that waited are being sent.",
        });
        enqueue::to_workspace(
            &mut tx,
            WorkspaceId(about.workspace_id),
            None,
            "account.reconnected",
            &data,
        )
        .await?;
    }
    tx.commit().await?;
    if !closed.is_empty() {
        tracing::info!(account = %about.account_id, "incident closed by reconnect");
    }
    if !told.is_empty() {
        app.wake.notify_one();
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
    let handle = app.names.handle(WorkspaceId(about.workspace_id), about.account_id).await;
    let words = message::expiring(about.platform, handle.as_deref(), expires_at, &e.reason);
    let (title, body) = (&words.title, format!("{} {}", words.body, words.advice));
    let key = format!(
        "expiring:{}:{credential}:{}:{}",
        about.account_id,
        expires_at.timestamp(),
        e.horizon_seconds
    );
    let mut tx = app.pool.begin().await?;
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO notifier.notifications (id, workspace_id, account_id, kind, title, body, dedupe_key)
         VALUES ($1, $2, $3, 'connection_expiring', $4, $5, $6) ON CONFLICT (dedupe_key) DO NOTHING
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(about.workspace_id)
    .bind(about.account_id)
    .bind(title)
    .bind(&body)
    .bind(key)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(notification) = inserted {
        let data = json!({
            "notification_id": notification,
            "workspace_id": about.workspace_id,
            "account_id": about.account_id,
            "platform": about.platform.as_str(),
            "expires_at": expires_at,
            "handle": handle,
            "title": title,
            "body": words.body,
            "advice": words.advice,
            "reconnect_url": message::reconnect_url(&app.public_url, about.account_id),
        });
        enqueue::to_workspace(
            &mut tx,
            WorkspaceId(about.workspace_id),
            Some(notification),
            "account.expiring",
            &data,
        )
        .await?;
    }
    tx.commit().await?;
    if inserted.is_some() {
        metrics::counter!("lifeline_notifications_total", "kind" => "connection_expiring")
            .increment(1);
        app.wake.notify_one();
    }
    Ok(())
}
