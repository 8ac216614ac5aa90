//! Writing deliveries: one row per enabled channel of the workspace, in the caller's transaction
//! (the one that writes the notification), so a notification is never without its deliveries
//! nor a delivery without its notification.

use chrono::{DateTime, SecondsFormat, Utc};
use lifeline_kit::ids::WorkspaceId;
use serde_json::{json, Value};
use uuid::Uuid;

/// The body every channel's message is rendered from, fixed at enqueue time so that every
/// attempt sends the same bytes: `{"type", "timestamp", "data"}` (the Standard Webhooks shape).
pub(crate) fn body(event_type: &str, at: DateTime<Utc>, data: &Value) -> String {
    json!({
        "type": event_type,
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

/// Queues `event_type` for every enabled channel of `workspace`; returns how many.
pub(crate) async fn to_workspace(
    tx: &mut sqlx::PgConnection,
    workspace: WorkspaceId,
    notification: Option<Uuid>,
    event_type: &str,
    data: &Value,
) -> Result<u64, sqlx::Error> {
    to_channels(tx, workspace, notification, event_type, data, &["webhook", "slack", "email"]).await
}

/// Queues `event_type` for the enabled webhook channels of `workspace` only: a signal for the
/// integrating company's systems that people are told about in another message.
pub(crate) async fn to_webhooks(
    tx: &mut sqlx::PgConnection,
    workspace: WorkspaceId,
    event_type: &str,
    data: &Value,
) -> Result<u64, sqlx::Error> {
    to_channels(tx, workspace, None, event_type, data, &["webhook"]).await
}

async fn to_channels(
    tx: &mut sqlx::PgConnection,
    workspace: WorkspaceId,
    notification: Option<Uuid>,
    event_type: &str,
    data: &Value,
    kinds: &[&str],
) -> Result<u64, sqlx::Error> {
    let body = body(event_type, Utc::now(), data);
    // uuid v7 ids from the database would need an extension; gen_random_uuid() is unique and
    // the id is only ever compared, never ordered.
    let done = sqlx::query(
        "INSERT INTO notifier.deliveries (id, channel_id, workspace_id, notification_id, event_type, body)
         SELECT gen_random_uuid(), c.id, c.workspace_id, $2, $3, $4 FROM notifier.channels c
         WHERE c.workspace_id = $1 AND c.disabled_at IS NULL AND c.kind = ANY($5)",
    )
    .bind(workspace)
    .bind(notification)
    .bind(event_type)
    .bind(&body)
    .bind(kinds)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}

/// Queues one message for one channel (a test message); returns the delivery id.
pub(crate) async fn to_channel(
    pool: &sqlx::PgPool,
    channel: Uuid,
    workspace: WorkspaceId,
    event_type: &str,
    data: &Value,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO notifier.deliveries (id, channel_id, workspace_id, event_type, body)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(channel)
    .bind(workspace)
    .bind(event_type)
    .bind(body(event_type, Utc::now(), data))
    .execute(pool)
    .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_type_timestamp_and_data() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let b: Value =
            serde_json::from_str(&body("account.needs_reconnect", at, &json!({"a": 1}))).unwrap();
        assert_eq!(b["type"], "account.needs_reconnect");
        assert_eq!(b["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(b["data"]["a"], 1);
    }
}
