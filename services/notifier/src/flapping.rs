//! Frequent disconnections: the account's `threshold`-th incident within the window adds the
//! advice to its notification and publishes one `AccountFlapping` (through the notifier's
//! outbox, in the transaction that marks the incident), once per window.

use chrono::{DateTime, Utc};
use lifeline_kit::{
    events::{timestamp, AccountFlapping, AuthFailureCause, Envelope, Subject},
    ids::WorkspaceId,
};
use serde_json::json;
use uuid::Uuid;

use crate::{delivery::enqueue, message, AppState};

/// Whether this incident's notification carries the "frequent disconnections" advice: the
/// account's `threshold`-th incident within the window, and the advice not given in it yet. When
/// it does, the `AccountFlapping` event is written to the outbox in the same transaction, so an
/// incident marks the account flapping and publishes it together or not at all.
pub(crate) async fn check(
    tx: &mut sqlx::PgConnection,
    app: &AppState,
    incident: Uuid,
    about: Subject,
    cause: AuthFailureCause,
    caused_by: Option<&Envelope>,
) -> Result<bool, sqlx::Error> {
    let window = app.flapping.window;
    let (count, told, first): (i64, bool, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT count(*), COALESCE(bool_or(frequent_advice), false), min(opened_at)
         FROM notifier.incidents
         WHERE account_id = $1 AND opened_at > now() - make_interval(secs => $2)",
    )
    .bind(about.account_id)
    .bind(window.as_secs_f64())
    .fetch_one(&mut *tx)
    .await?;
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    let frequent = message::is_frequent(count, app.flapping.threshold, told);
    if !frequent {
        return Ok(false);
    }
    sqlx::query("UPDATE notifier.incidents SET frequent_advice = true WHERE id = $1")
        .bind(incident)
        .execute(&mut *tx)
        .await?;
    let event = AccountFlapping {
        envelope: Some(Envelope::build(about, caused_by)),
        incidents_in_window: count,
        threshold: app.flapping.threshold,
        window_seconds: window.as_secs(),
        first_incident_at: first.map(timestamp),
        cause: cause as i32,
        incident_id: incident.to_string(),
    };
    app.outbox.enqueue(tx, &event).await?;
    // The integrating company's systems get it as a webhook of its own; people get the advice in
    // the incident's one message (`account.needs_reconnect`, `frequent_disconnections: true`).
    let data = json!({
        "incident_id": incident,
        "workspace_id": about.workspace_id,
        "account_id": about.account_id,
        "platform": about.platform.as_str(),
        "cause": cause.as_str(),
        "incidents_in_window": count,
        "threshold": app.flapping.threshold,
        "window_seconds": window.as_secs(),
        "first_incident_at": first,
        "reconnect_url": message::reconnect_url(&app.public_url, about.account_id),
    });
    enqueue::to_webhooks(tx, WorkspaceId(about.workspace_id), "account.flapping", &data).await?;
    metrics::counter!("lifeline_notify_frequent_disconnections_total").increment(1);
    tracing::info!(account = %about.account_id, incidents = count, "account disconnects frequently; AccountFlapping queued");
    Ok(true)
}
