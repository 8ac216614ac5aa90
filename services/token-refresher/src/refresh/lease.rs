//! Step 1, the lease: due rows of one platform, taken so that replicas never hold one account
//! at once.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{gate::Gate, AppState};

/// A row this replica holds the lease on.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct Leased {
    pub account_id: Uuid,
    pub workspace_id: Uuid,
    pub action: String,
    pub due_at: Option<DateTime<Utc>>,
    pub failures: i32,
    pub sent_version: Option<i64>,
    pub publish_failed_version: Option<i64>,
    pub access_issued_at: Option<DateTime<Utc>>,
}

/// Leases up to `room` due rows of the gate's platform, oldest due first: `FOR UPDATE SKIP
/// LOCKED` + `lease_until`. The query walks the `(platform, due_at)` partial index.
pub(super) async fn lease_due(
    app: &AppState,
    gate: &Gate,
    room: usize,
) -> Result<Vec<Leased>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE refresher.schedule s SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
         FROM (SELECT account_id FROM refresher.schedule
               WHERE platform = $3 AND state = 'active' AND due_at <= now()
                 AND (lease_until IS NULL OR lease_until < now())
               ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED) due
         WHERE s.account_id = due.account_id
         RETURNING s.account_id, s.workspace_id, s.action, s.due_at, s.failures, s.sent_version,
                   s.publish_failed_version, s.access_issued_at",
    )
    .bind(&app.config.common.instance_id)
    .bind(app.config.lease.as_secs_f64())
    .bind(gate.platform.as_str())
    .bind(i64::try_from(room).unwrap_or(i64::MAX))
    .fetch_all(&app.pool)
    .await
}

/// Counts the leased rows into the gate (each is settled once) and the lease metrics.
pub(super) fn count_leased(gate: &Gate, rows: &[Leased]) {
    let now = Utc::now();
    gate.leased(rows.len());
    metrics::counter!("lifeline_refresh_leased_total", "platform" => gate.platform.as_str())
        .increment(rows.len() as u64);
    for row in rows {
        if let Some(due) = row.due_at {
            let lag = (now - due).to_std().unwrap_or_default();
            metrics::histogram!("lifeline_refresh_lag_seconds").record(lag.as_secs_f64());
        }
    }
}
