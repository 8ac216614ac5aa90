//! TokenExpiring: the owner hears ahead of time about a credential that will lapse whatever the
//! refresher does. Rows carry `warn_at`, the next horizon's time (a partial index keeps the
//! query to rows that have one); `refresher.warnings` makes each horizon fire once per token,
//! even across replicas and retries.

use chrono::{DateTime, Utc};
use lifeline_kit::{
    events::{self, timestamp, Envelope, ExpiringCredential, TokenExpiring},
    Platform,
};
use uuid::Uuid;

use crate::{
    policy::{self, State},
    AppState,
};

#[derive(sqlx::FromRow)]
struct Row {
    account_id: Uuid,
    workspace_id: Uuid,
    platform: String,
    state: String,
    failures: i32,
    access_issued_at: Option<DateTime<Utc>>,
    access_expires_at: Option<DateTime<Utc>>,
    refresh_expires_at: Option<DateTime<Utc>>,
    granted_at: Option<DateTime<Utc>>,
}

const BATCH: i64 = 500;

/// Sends the warnings that are due. Returns how many were sent.
pub(crate) async fn sweep(app: &AppState) -> Result<usize, sqlx::Error> {
    let mut tx = app.pool.begin().await?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT account_id, workspace_id, platform, state, failures, access_issued_at,
                access_expires_at, refresh_expires_at, granted_at
         FROM refresher.schedule WHERE warn_at <= now()
         ORDER BY warn_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    let mut sent = 0;
    for row in rows {
        let Ok(platform) = row.platform.parse::<Platform>() else {
            tracing::error!(account = %row.account_id, platform = %row.platform, "scheduled account has an unknown platform");
            continue;
        };
        let facts = policy::Facts {
            platform,
            state: State::parse(&row.state),
            failures: row.failures,
            access_issued_at: row.access_issued_at,
            access_expires_at: row.access_expires_at,
            refresh_expires_at: row.refresh_expires_at,
        };
        let watch = policy::watch(&facts, &app.config.horizons);
        let mut next = None;
        if let Some(watch) = &watch {
            if let Some(due) = policy::warning_due(watch, now) {
                next = policy::after_firing(watch, &due);
                let (credential, epoch) = match watch.credential {
                    ExpiringCredential::RefreshToken => {
                        ("refresh_token", row.granted_at.unwrap_or(watch.expires_at))
                    }
                    _ => ("access_token", watch.expires_at),
                };
                let mut fresh = false;
                for horizon in &due.passed {
                    let inserted = sqlx::query(
                        "INSERT INTO refresher.warnings (account_id, credential, token_epoch, horizon_seconds, expires_at)
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(row.account_id)
                    .bind(credential)
                    .bind(epoch)
                    .bind(i64::try_from(horizon.as_secs()).unwrap_or(i64::MAX))
                    .bind(watch.expires_at)
                    .execute(&mut *tx)
                    .await?;
                    if *horizon == due.horizon {
                        fresh = inserted.rows_affected() == 1;
                    }
                }
                if fresh {
                    let about = events::Subject {
                        workspace_id: row.workspace_id,
                        account_id: row.account_id,
                        platform,
                    };
                    let event = TokenExpiring {
                        envelope: Some(Envelope::build(about, None)),
                        expires_at: Some(timestamp(watch.expires_at)),
                        credential: watch.credential as i32,
                        horizon_seconds: due.horizon.as_secs(),
                        reason: watch.reason.clone(),
                    };
                    app.outbox.enqueue(&mut tx, &event).await?;
                    metrics::counter!("lifeline_token_expiring_total", "platform" => platform.as_str(), "credential" => credential)
                        .increment(1);
                    tracing::info!(account = %row.account_id, %platform, credential, expires_at = %watch.expires_at,
                        horizon_seconds = due.horizon.as_secs(), "credential will lapse; owner warned");
                    sent += 1;
                }
            } else {
                next = policy::next_warning(watch, now);
            }
        }
        sqlx::query("UPDATE refresher.schedule SET warn_at = $2 WHERE account_id = $1")
            .bind(row.account_id)
            .bind(next)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    if sent > 0 {
        app.outbox.wake();
    }
    Ok(sent)
}
