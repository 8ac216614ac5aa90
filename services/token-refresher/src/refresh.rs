//! The refresh sweep: lease due credentials in a batch (`FOR UPDATE SKIP LOCKED` + lease expiry,
//! so replicas never refresh one account at once), refresh each through its connector, and store
//! the new tokens by compare-and-swap in the same transaction as the schedule and the events.

use chrono::Utc;
use lifeline_kit::{
    events::{self, timestamp, AuthFailed, AuthFailureSource, Envelope, TokenRefreshed},
    ids::{AccountId, WorkspaceId},
    Platform,
};
use lifeline_platforms::Failure;
use lifeline_vault::{Tokens, VaultError};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{policy, AppState};

pub(crate) async fn sweep(app: AppState, shutdown: CancellationToken) {
    let mut in_flight = JoinSet::new();
    loop {
        match lease_due_credentials(&app).await {
            Ok(leased) => {
                for (account, workspace, platform) in leased {
                    let app = app.clone();
                    in_flight.spawn(async move {
                        refresh_one(&app, account, workspace, platform).await
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot lease due credentials; will try again"),
        }
        while in_flight.try_join_next().is_some() {}
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(app.config.sweep_interval) => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
}

async fn lease_due_credentials(
    app: &AppState,
) -> Result<Vec<(AccountId, WorkspaceId, String)>, sqlx::Error> {
    let rows = sqlx::query_as(
        "UPDATE refresher.schedule s SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
         FROM (SELECT account_id FROM refresher.schedule
               WHERE state = 'active' AND due_at <= now() AND (lease_until IS NULL OR lease_until < now())
               ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) due
         WHERE s.account_id = due.account_id
         RETURNING s.account_id, s.workspace_id, s.platform",
    )
    .bind(&app.config.common.instance_id)
    .bind(app.config.lease.as_secs_f64())
    .bind(app.config.batch)
    .fetch_all(&app.pool)
    .await?;
    metrics::counter!("lifeline_refresh_leased_total").increment(rows.len() as u64);
    Ok(rows)
}

async fn refresh_one(app: &AppState, account: AccountId, workspace: WorkspaceId, platform: String) {
    let Ok(platform) = platform.parse::<Platform>() else {
        tracing::error!(%account, %platform, "scheduled account has an unknown platform");
        return;
    };
    let outcome = attempt(app, account, platform).await;
    let label = match &outcome {
        Ok(_) => "refreshed",
        Err(Step::Failed(Failure::Auth { .. })) => "auth_failed",
        Err(Step::Failed(_)) => "transient",
        Err(Step::Superseded) => "superseded",
        Err(Step::Gone) => "gone",
        Err(Step::Unrefreshable) => "unrefreshable",
    };
    metrics::counter!("lifeline_refreshes_total", "platform" => platform.as_str(), "outcome" => label).increment(1);
    let about = events::Subject { workspace_id: workspace.0, account_id: account.0, platform };
    if let Err(e) = settle(app, about, outcome).await {
        tracing::error!(%account, error = %e, "cannot record the refresh outcome; the lease will expire and it is retried");
    }
}

enum Step {
    Failed(Failure),
    /// A newer credential was stored meanwhile (a reconnect): nothing to do.
    Superseded,
    /// The account was disconnected.
    Gone,
    Unrefreshable,
}

struct Refreshed {
    version: i64,
    tokens: Tokens,
}

async fn attempt(
    app: &AppState,
    account: AccountId,
    platform: Platform,
) -> Result<Refreshed, Step> {
    let connector = app.connectors.get(platform).ok_or_else(|| {
        Step::Failed(Failure::transient(format!("{platform} is not configured on this refresher")))
    })?;
    let credential = match app.vault.load(account).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(Step::Gone),
        Err(e) => return Err(Step::Failed(Failure::transient(format!("vault: {e}")))),
    };
    let Some(refresh_token) = credential.tokens.refresh_token.clone() else {
        return Err(Step::Unrefreshable);
    };
    let _permit = app.platform_calls.acquire().await;
    let now = Utc::now();
    let grant = connector.refresh(&refresh_token).await.map_err(Step::Failed)?;
    let tokens = Tokens {
        access_token: grant.access_token.clone(),
        // Keep the stored refresh token when the platform returned none (non-rotating platforms).
        refresh_token: grant.refresh_token.clone().or(Some(refresh_token)),
        access_expires_at: grant.access_expires_at(now),
        refresh_expires_at: grant.refresh_expires_at(now).or(credential.tokens.refresh_expires_at),
        scopes: if grant.scopes.is_empty() {
            credential.tokens.scopes.clone()
        } else {
            grant.scopes.clone()
        },
    };
    // The rotated refresh token is the only copy: store it before anything else can fail.
    let mut conn =
        app.pool.acquire().await.map_err(|e| Step::Failed(Failure::transient(e.to_string())))?;
    match app.vault.compare_and_swap(&mut conn, account, credential.version, &tokens, false).await {
        Ok(version) => Ok(Refreshed { version, tokens }),
        Err(VaultError::VersionConflict(_)) => Err(Step::Superseded),
        Err(e) => Err(Step::Failed(Failure::transient(format!("vault: {e}")))),
    }
}

async fn settle(
    app: &AppState,
    about: events::Subject,
    outcome: Result<Refreshed, Step>,
) -> Result<(), sqlx::Error> {
    let account = about.account_id;
    let mut tx = app.pool.begin().await?;
    match outcome {
        Ok(refreshed) => {
            let due =
                policy::refresh_due(about.platform, Utc::now(), refreshed.tokens.access_expires_at);
            sqlx::query(
                "UPDATE refresher.schedule SET due_at = $2, state = CASE WHEN $2::timestamptz IS NULL THEN 'unrefreshable' ELSE 'active' END,
                     failures = 0, last_error = NULL, last_refreshed_at = now(), credential_version = $3,
                     lease_owner = NULL, lease_until = NULL, updated_at = now()
                 WHERE account_id = $1",
            )
            .bind(account)
            .bind(due)
            .bind(refreshed.version)
            .execute(&mut *tx)
            .await?;
            let event = TokenRefreshed {
                envelope: Some(Envelope::build(about, None)),
                access_expires_at: refreshed.tokens.access_expires_at.map(timestamp),
                refresh_expires_at: refreshed.tokens.refresh_expires_at.map(timestamp),
                credential_version: u64::try_from(refreshed.version).unwrap_or_default(),
            };
            app.outbox.enqueue(&mut tx, &event).await?;
            tracing::info!(%account, platform = %about.platform, version = refreshed.version, "token refreshed");
        }
        Err(Step::Failed(Failure::Auth { cause, detail })) => {
            let version: i64 = sqlx::query_scalar(
                "UPDATE refresher.schedule SET state = 'broken', last_error = $2, lease_owner = NULL, lease_until = NULL, updated_at = now()
                 WHERE account_id = $1 RETURNING credential_version",
            )
            .bind(account)
            .bind(&detail)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or_default();
            let event = AuthFailed {
                envelope: Some(Envelope::build(about, None)),
                cause: cause as i32,
                source: AuthFailureSource::Refresh as i32,
                detail: detail.clone(),
                credential_version: u64::try_from(version).unwrap_or_default(),
                post_id: String::new(),
            };
            app.outbox.enqueue(&mut tx, &event).await?;
            tracing::warn!(%account, platform = %about.platform, cause = cause.as_str(), "refresh refused; account needs reconnecting");
        }
        Err(Step::Failed(failure)) => {
            let failures: i32 = sqlx::query_scalar::<_, i32>(
                "SELECT failures FROM refresher.schedule WHERE account_id = $1",
            )
            .bind(account)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or_default()
                + 1;
            let wait = match &failure {
                Failure::RateLimited { retry_after: Some(d), .. } => *d,
                _ => lifeline_kit::backoff::full_jitter(app.config.retry_base, failures),
            };
            let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            sqlx::query(
                "UPDATE refresher.schedule SET failures = $2, last_error = $3, due_at = $4, lease_owner = NULL, lease_until = NULL,
                     updated_at = now()
                 WHERE account_id = $1",
            )
            .bind(account)
            .bind(failures)
            .bind(failure.to_string())
            .bind(next)
            .execute(&mut *tx)
            .await?;
            // An outage never marks an account as needing reconnect; it is only retried.
            tracing::warn!(%account, platform = %about.platform, failures, error = %failure, "refresh failed; will retry");
        }
        Err(Step::Superseded) => {
            // Reschedule from the newer credential right away.
            tx.commit().await?;
            if let Err(e) = crate::schedule::schedule_from_vault(app, about).await {
                tracing::warn!(%account, error = ?e, "cannot reschedule after a newer credential was stored");
            }
            clear_lease(app, account).await?;
            return Ok(());
        }
        Err(Step::Gone) => {
            sqlx::query("DELETE FROM refresher.schedule WHERE account_id = $1")
                .bind(account)
                .execute(&mut *tx)
                .await?;
        }
        Err(Step::Unrefreshable) => {
            sqlx::query(
                "UPDATE refresher.schedule SET state = 'unrefreshable', lease_owner = NULL, lease_until = NULL, updated_at = now()
                 WHERE account_id = $1",
            )
            .bind(account)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    app.outbox.wake();
    Ok(())
}

async fn clear_lease(app: &AppState, account: uuid::Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresher.schedule SET lease_owner = NULL, lease_until = NULL WHERE account_id = $1")
        .bind(account)
        .execute(&app.pool)
        .await?;
    Ok(())
}
