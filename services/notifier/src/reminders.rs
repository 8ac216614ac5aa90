//! The one reminder: an incident still open `LIFELINE_NOTIFY_REMINDER_AFTER` (24 h) after its
//! notification, with posts waiting (the publisher's count), gets one more message, never two.
//! Incidents are claimed `FOR UPDATE SKIP LOCKED` and marked, so two replicas send it once.

use chrono::{DateTime, Utc};
use lifeline_kit::{events::AuthFailureCause, ids::WorkspaceId, Platform};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{delivery::enqueue, message, AppState};

/// Incidents one pass looks at.
const BATCH: i64 = 50;

/// Looks for due reminders every tenth of the delay (between 200 ms and 30 s).
pub(crate) async fn send_when_due(app: AppState, shutdown: CancellationToken) {
    let tick = (app.reminder_after / 10)
        .clamp(std::time::Duration::from_millis(200), std::time::Duration::from_secs(30));
    loop {
        if let Err(e) = send_due(&app).await {
            tracing::warn!(error = %e, "cannot send reminders; will try again");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
    }
}

/// An open incident whose owner was told, not reminded yet.
#[derive(sqlx::FromRow)]
struct Open {
    id: Uuid,
    workspace_id: Uuid,
    account_id: Uuid,
    platform: String,
    cause: String,
    notified_at: DateTime<Utc>,
}

/// One pass. The publisher is asked before any row is locked (an HTTP call must not hold up the
/// reconnect that closes the incident); each incident is then claimed `FOR UPDATE SKIP LOCKED`
/// and checked again, so of two replicas only one reminds.
async fn send_due(app: &AppState) -> Result<(), sqlx::Error> {
    let after = app.reminder_after.as_secs_f64();
    // An account without posts waiting is asked again a 24th of the delay later (an hour).
    let due: Vec<Open> = sqlx::query_as(
        "SELECT id, workspace_id, account_id, platform, cause, notified_at FROM notifier.incidents
         WHERE closed_at IS NULL AND notified_at IS NOT NULL AND reminded_at IS NULL
           AND notified_at <= now() - make_interval(secs => $1)
           AND (reminder_checked_at IS NULL OR reminder_checked_at <= now() - make_interval(secs => $1 / 24))
         ORDER BY notified_at LIMIT $2",
    )
    .bind(after)
    .bind(BATCH)
    .fetch_all(&app.pool)
    .await?;
    for incident in due {
        let known = app.names.about(WorkspaceId(incident.workspace_id), incident.account_id).await;
        let Some(waiting) = known.posts_waiting else {
            // No count (no publisher configured or no answer): no reminder on a guess.
            continue;
        };
        let mut tx = app.pool.begin().await?;
        let claimed: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT now() FROM notifier.incidents
             WHERE id = $1 AND closed_at IS NULL AND reminded_at IS NULL FOR UPDATE SKIP LOCKED",
        )
        .bind(incident.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(now) = claimed else { continue };
        sqlx::query("UPDATE notifier.incidents SET reminder_checked_at = now() WHERE id = $1")
            .bind(incident.id)
            .execute(&mut *tx)
            .await?;
        let due =
            message::reminder_due(incident.notified_at, now, app.reminder_after, waiting, false);
        if due {
            remind(&mut tx, app, &incident, known.handle.as_deref(), waiting).await?;
        }
        tx.commit().await?;
        if due {
            app.wake.notify_one();
        }
    }
    Ok(())
}

async fn remind(
    tx: &mut sqlx::PgConnection,
    app: &AppState,
    incident: &Open,
    handle: Option<&str>,
    waiting: u32,
) -> Result<(), sqlx::Error> {
    let Ok(platform) = incident.platform.parse::<Platform>() else { return Ok(()) };
    let cause = AuthFailureCause::parse(&incident.cause).unwrap_or(AuthFailureCause::Unknown);
    let words = message::reminder(platform, handle, cause, incident.notified_at, waiting);
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO notifier.notifications (id, workspace_id, account_id, incident_id, kind, title, body, dedupe_key)
         VALUES ($1, $2, $3, $4, 'connection_reminder', $5, $6, $7) ON CONFLICT (dedupe_key) DO NOTHING
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(incident.workspace_id)
    .bind(incident.account_id)
    .bind(incident.id)
    .bind(&words.title)
    .bind(format!("{} {}", words.body, words.advice))
    .bind(format!("reminder:{}", incident.id))
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(notification) = inserted {
        let data = json!({
            "notification_id": notification,
            "incident_id": incident.id,
            "workspace_id": incident.workspace_id,
            "account_id": incident.account_id,
            "platform": platform.as_str(),
            "cause": cause.as_str(),
            "cause_text": cause.explain(),
            "reminder": true,
            "broken_since": incident.notified_at,
            "posts_waiting": waiting,
            "handle": handle,
            "title": words.title,
            "body": words.body,
            "advice": words.advice,
            "reconnect_url": message::reconnect_url(&app.public_url, incident.account_id),
        });
        let ws = WorkspaceId(incident.workspace_id);
        enqueue::to_workspace(tx, ws, Some(notification), "account.needs_reconnect", &data).await?;
    }
    sqlx::query("UPDATE notifier.incidents SET reminded_at = now() WHERE id = $1")
        .bind(incident.id)
        .execute(&mut *tx)
        .await?;
    metrics::counter!("lifeline_notifications_total", "kind" => "connection_reminder").increment(1);
    tracing::info!(account = %incident.account_id, posts_waiting = waiting, "reminder sent");
    Ok(())
}
