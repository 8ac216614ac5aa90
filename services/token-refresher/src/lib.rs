//! token-refresher: keeps access tokens fresh ahead of expiry. A lease-based sweep refreshes due
//! credentials through the platform's connector, stores the result by compare-and-swap before
//! anything else, and reports a refused refresh as AuthFailed.

mod policy;
mod refresh;
mod schedule;

use std::{sync::Arc, time::Duration};

use lifeline_kit::{
    config::{CommonConfig, ConfigError, Env},
    outbox::Outbox,
    service::{self, StartError},
};
use lifeline_platforms::Connectors;
use lifeline_vault::{Vault, VaultKeys};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "token-refresher";
pub const SCHEMA: &str = "refresher";
pub const DEFAULT_PORT: u16 = 8083;
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub vault_keys: VaultKeys,
    pub connectors: Connectors,
    /// `LIFELINE_REFRESH_SWEEP_INTERVAL` (1s).
    pub sweep_interval: Duration,
    /// Credentials leased per sweep, `LIFELINE_REFRESH_BATCH` (100).
    pub batch: i64,
    /// `LIFELINE_REFRESH_LEASE` (60s): longer than any platform call can take.
    pub lease: Duration,
    /// Refresh calls in flight at once, `LIFELINE_REFRESH_CONCURRENCY` (16).
    pub concurrency: usize,
    /// First retry delay after a transient refresh failure (`LIFELINE_REFRESH_RETRY_BASE`, 5s).
    pub retry_base: Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let sweep_interval =
            env.duration_or("LIFELINE_REFRESH_SWEEP_INTERVAL", Duration::from_secs(1))?;
        if sweep_interval < Duration::from_millis(10) {
            return Err(env.invalid("LIFELINE_REFRESH_SWEEP_INTERVAL", "must be at least 10ms"));
        }
        let batch: i64 = env.parse_or("LIFELINE_REFRESH_BATCH", 100)?;
        if !(1..=10_000).contains(&batch) {
            return Err(env.invalid("LIFELINE_REFRESH_BATCH", "must be between 1 and 10000"));
        }
        let lease = env.duration_or("LIFELINE_REFRESH_LEASE", Duration::from_secs(60))?;
        // A lease must outlive any platform call made under it, or a slow call could overlap
        // with the next holder's.
        let platform_timeout =
            env.duration_or("LIFELINE_PLATFORM_TIMEOUT", Duration::from_secs(15))?;
        if lease < platform_timeout.saturating_mul(2) {
            return Err(env.invalid(
                "LIFELINE_REFRESH_LEASE",
                "must be at least twice LIFELINE_PLATFORM_TIMEOUT (15s by default)",
            ));
        }
        let concurrency: usize = env.parse_or("LIFELINE_REFRESH_CONCURRENCY", 16)?;
        if concurrency == 0 {
            return Err(env.invalid("LIFELINE_REFRESH_CONCURRENCY", "must be at least 1"));
        }
        let retry_base = env.duration_or("LIFELINE_REFRESH_RETRY_BASE", Duration::from_secs(5))?;
        if retry_base < Duration::from_millis(10) || retry_base > Duration::from_secs(600) {
            return Err(env.invalid("LIFELINE_REFRESH_RETRY_BASE", "must be between 10ms and 10m"));
        }
        Ok(Config {
            retry_base,
            common: CommonConfig::from_env(env, SERVICE, DEFAULT_PORT)?,
            vault_keys: VaultKeys::from_env(env)?,
            connectors: Connectors::from_env(env)?,
            sweep_interval,
            batch,
            lease,
            concurrency,
        })
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub pool: PgPool,
    pub vault: Vault,
    pub outbox: Outbox,
    pub connectors: Connectors,
    pub config: Arc<Config>,
    pub platform_calls: Arc<Semaphore>,
}

pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let infra = service::start(&config.common, SCHEMA, &MIGRATOR).await?;
    Vault::migrate(&infra.pool).await?;
    let app = AppState {
        pool: infra.pool.clone(),
        vault: Vault::new(infra.pool.clone(), config.vault_keys.clone()),
        outbox: Outbox::new(SCHEMA, &infra.bus),
        connectors: config.connectors.clone(),
        platform_calls: Arc::new(Semaphore::new(config.concurrency)),
        config: Arc::new(config.clone()),
    };
    let mut tasks = JoinSet::new();
    tasks.spawn(app.outbox.clone().relay(infra.pool.clone(), infra.bus.clone(), shutdown.clone()));
    schedule::spawn_consumers(&mut tasks, &infra.bus, &app, &shutdown);
    tasks.spawn(refresh::sweep(app.clone(), shutdown.clone()));
    let router = lifeline_kit::http::ops_router(infra.pool.clone(), infra.bus.client().clone());
    tracing::info!(addr = %listener.local_addr()?, "token-refresher listening");
    lifeline_kit::http::serve(listener, router, shutdown.clone()).await?;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}
