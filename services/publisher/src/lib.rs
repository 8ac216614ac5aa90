//! publisher: schedules posts and publishes them when due, under leases so replicas never send
//! one post twice. An auth failure parks the post as `failed_auth`; when the account is
//! reconnected every parked post is retried exactly once. Posts that cannot go out are
//! dead-lettered for operators to replay.

mod api;
mod attempt;
mod consumers;
mod dlq;
mod model;
mod sweep;

use std::{sync::Arc, time::Duration};

use axum::{Extension, Router};
use lifeline_kit::{
    auth::JwtKeys,
    config::{CommonConfig, ConfigError, Env},
    outbox::Outbox,
    service::{self, StartError},
};
use lifeline_platforms::Connectors;
use lifeline_vault::{Vault, VaultKeys};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "publisher";
pub const SCHEMA: &str = "publisher";
pub const DEFAULT_PORT: u16 = 8081;
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub jwt: JwtKeys,
    pub vault_keys: VaultKeys,
    pub connectors: Connectors,
    /// How often the sweep looks for due posts (`LIFELINE_PUBLISH_SWEEP_INTERVAL`, 1s).
    pub sweep_interval: Duration,
    /// Posts leased per sweep (`LIFELINE_PUBLISH_BATCH`, 50).
    pub batch: i64,
    /// How long a lease lasts (`LIFELINE_PUBLISH_LEASE`, 60s); longer than a platform call can take.
    pub lease: Duration,
    /// Platform calls in flight at once (`LIFELINE_PUBLISH_CONCURRENCY`, 16).
    pub concurrency: usize,
    /// Transient or ambiguous failures before a post is dead-lettered (`LIFELINE_PUBLISH_MAX_RETRIES`, 5).
    pub max_retries: i32,
    /// First retry delay after a transient failure (`LIFELINE_PUBLISH_RETRY_BASE`, 2s); each
    /// further failure doubles the ceiling of a full-jitter delay, up to 10 minutes.
    pub retry_base: Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env, SERVICE, DEFAULT_PORT)?;
        let sweep_interval =
            env.duration_or("LIFELINE_PUBLISH_SWEEP_INTERVAL", Duration::from_secs(1))?;
        if sweep_interval < Duration::from_millis(10) {
            return Err(env.invalid("LIFELINE_PUBLISH_SWEEP_INTERVAL", "must be at least 10ms"));
        }
        let batch: i64 = env.parse_or("LIFELINE_PUBLISH_BATCH", 50)?;
        if !(1..=1000).contains(&batch) {
            return Err(env.invalid("LIFELINE_PUBLISH_BATCH", "must be between 1 and 1000"));
        }
        let lease = env.duration_or("LIFELINE_PUBLISH_LEASE", Duration::from_secs(60))?;
        // A lease must outlive any platform call made under it, or a slow call could overlap
        // with the next holder's.
        let platform_timeout =
            env.duration_or("LIFELINE_PLATFORM_TIMEOUT", Duration::from_secs(15))?;
        if lease < platform_timeout.saturating_mul(2) {
            return Err(env.invalid(
                "LIFELINE_PUBLISH_LEASE",
                "must be at least twice LIFELINE_PLATFORM_TIMEOUT (15s by default)",
            ));
        }
        let concurrency: usize = env.parse_or("LIFELINE_PUBLISH_CONCURRENCY", 16)?;
        if concurrency == 0 {
            return Err(env.invalid("LIFELINE_PUBLISH_CONCURRENCY", "must be at least 1"));
        }
        let max_retries: i32 = env.parse_or("LIFELINE_PUBLISH_MAX_RETRIES", 5)?;
        if !(0..=100).contains(&max_retries) {
            return Err(env.invalid("LIFELINE_PUBLISH_MAX_RETRIES", "must be between 0 and 100"));
        }
        let retry_base = env.duration_or("LIFELINE_PUBLISH_RETRY_BASE", Duration::from_secs(2))?;
        if retry_base < Duration::from_millis(10) || retry_base > Duration::from_secs(600) {
            return Err(env.invalid("LIFELINE_PUBLISH_RETRY_BASE", "must be between 10ms and 10m"));
        }
        Ok(Config {
            common,
            retry_base,
            jwt: JwtKeys::new(&lifeline_kit::auth::jwt_secret(env)?),
            vault_keys: VaultKeys::from_env(env)?,
            connectors: Connectors::from_env(env)?,
            sweep_interval,
            batch,
            lease,
            concurrency,
            max_retries,
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
    consumers::spawn(&mut tasks, &infra.bus, &app, &shutdown);
    tasks.spawn(sweep::run(app.clone(), shutdown.clone()));

    let router = Router::new()
        .merge(api::routes())
        .merge(dlq::routes())
        .with_state(app.clone())
        .layer(Extension(config.jwt.clone()))
        .merge(lifeline_kit::http::ops_router(infra.pool.clone(), infra.bus.client().clone()));
    tracing::info!(addr = %listener.local_addr()?, "publisher listening");
    lifeline_kit::http::serve(listener, router, shutdown.clone()).await?;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}
