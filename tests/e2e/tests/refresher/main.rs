//! The token-refresher at scale and under failure, against real NATS, Postgres and the platform
//! simulator: replicas sharing work without reusing a rotating refresh token, a replica killed
//! with SIGKILL mid-batch, a long platform outage, expiry warnings, and the reactive path.
//! The heavy tests take turns (`HEAVY`) so they do not compete for the machine's two cores.

mod horizons;
mod outage;
mod reactive;
mod replicas;

use std::{collections::HashMap, time::Duration};

use anyhow::bail;
use lifeline_e2e::{eventually, System};
use sqlx::PgPool;

static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Rows of the refresh schedule by state.
async fn states(db: &PgPool) -> anyhow::Result<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM refresher.schedule GROUP BY state")
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Accounts the gateway shows as needing reconnect.
async fn needing_reconnect(db: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM gateway.accounts WHERE status = 'needs_reconnect'")
        .fetch_one(db)
        .await?)
}

/// Waits until every scheduled account has been refreshed at least `times` times since it was
/// connected (credential version `times + 1` or more).
async fn all_refreshed(
    system: &System,
    db: &PgPool,
    accounts: usize,
    times: i64,
    within: Duration,
) -> anyhow::Result<()> {
    eventually(within, || async {
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM vault.credentials WHERE version > $1")
                .bind(times)
                .fetch_one(db)
                .await?;
        let done = usize::try_from(done).unwrap_or(0);
        if done >= accounts {
            Ok(())
        } else {
            let stats = system.sim_get("/_sim/stats").await.unwrap_or_default();
            bail!(
                "{done} of {accounts} refreshed {times}×; schedule {:?}; reuse x={} tiktok={}",
                states(db).await.unwrap_or_default(),
                stats["x"]["refresh_token_reuse"],
                stats["tiktok"]["refresh_token_reuse"]
            )
        }
    })
    .await
}
