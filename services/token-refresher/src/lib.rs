//! token-refresher: keeps every account's credentials alive, per platform. A lease-based sweep
//! refreshes due credentials (or probes tokens that never expire) through the platform's
//! connector behind a per-platform gate (concurrency, rate, circuit breaker), stores the result
//! by compare-and-swap before anything else, reports a refused refresh as AuthFailed, warns
//! ahead of expiries it cannot prevent (TokenExpiring), and tries one immediate refresh when a
//! publish fails for auth reasons. `docs/refresh-policy.md` describes the behaviour.

mod gate;
pub mod policy;
mod reactive;
mod refresh;
mod schedule;
mod warnings;

use std::{collections::HashMap, sync::Arc, time::Duration};

use lifeline_kit::Platform;
use lifeline_kit::{
    config::{CommonConfig, ConfigError, Env},
    outbox::Outbox,
    service::{self, StartError},
};
use lifeline_platforms::Connectors;
use lifeline_vault::{Vault, VaultKeys};
use sqlx::PgPool;
use tokio::net::TcpListener;
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
    /// First retry delay after a transient refresh failure (`LIFELINE_REFRESH_RETRY_BASE`, 5s).
    pub retry_base: Duration,
    /// Per-platform limits: `LIFELINE_REFRESH_CONCURRENCY` (16 calls in flight) and
    /// `LIFELINE_REFRESH_RATE` (50 calls/s, 0 = unlimited), each overridable per platform as
    /// `LIFELINE_<PLATFORM>_REFRESH_CONCURRENCY` / `LIFELINE_<PLATFORM>_REFRESH_RATE`.
    pub limits: HashMap<Platform, gate::Limits>,
    pub breaker: gate::BreakerConfig,
    /// TokenExpiring horizons, `LIFELINE_EXPIRING_HORIZONS` ("7d,1d").
    pub horizons: Vec<Duration>,
    /// How often a token that never expires is probed, `LIFELINE_PROBE_INTERVAL` (24h).
    pub probe_interval: Duration,
    /// Tasks writing outcomes, `LIFELINE_REFRESH_WRITERS` (2).
    pub writers: usize,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let sweep_interval = env.duration_in(
            "LIFELINE_REFRESH_SWEEP_INTERVAL",
            Duration::from_secs(1),
            Duration::from_millis(10)..=Duration::from_secs(3600),
        )?;
        let batch = env.parse_in("LIFELINE_REFRESH_BATCH", 100, 1..=10_000)?;
        let lease = lifeline_kit::config::lease_outlives_calls(
            env,
            "LIFELINE_REFRESH_LEASE",
            Duration::from_secs(60),
        )?;
        let default_concurrency = read_concurrency(env, "LIFELINE_REFRESH_CONCURRENCY", 16)?;
        let default_rate = read_rate(env, "LIFELINE_REFRESH_RATE", 50.0)?;
        let mut limits = HashMap::new();
        for p in Platform::ALL {
            let upper = p.as_str().to_uppercase();
            let limit = gate::Limits {
                concurrency: read_concurrency(
                    env,
                    &format!("LIFELINE_{upper}_REFRESH_CONCURRENCY"),
                    default_concurrency,
                )?,
                rate: read_rate(env, &format!("LIFELINE_{upper}_REFRESH_RATE"), default_rate)?,
            };
            limits.insert(p, limit);
        }
        let cooldown = env.duration_in(
            "LIFELINE_BREAKER_COOLDOWN",
            Duration::from_secs(30),
            Duration::from_millis(100)..=Duration::from_secs(3600),
        )?;
        let min_calls = env.parse_in("LIFELINE_BREAKER_MIN_CALLS", 10, 1..=1000)?;
        let failure_ratio: f64 = env.parse_or("LIFELINE_BREAKER_FAILURE_RATIO", 0.5)?;
        if !(failure_ratio > 0.0 && failure_ratio <= 1.0) {
            return Err(env.invalid("LIFELINE_BREAKER_FAILURE_RATIO", "must be in (0, 1]"));
        }
        let breaker = gate::BreakerConfig {
            window: min_calls.max(20),
            min_calls,
            failure_ratio,
            cooldown,
            max_cooldown: (cooldown * 20).min(Duration::from_secs(3600)).max(cooldown),
        };
        let horizons = horizons(env)?;
        let probe_interval = env.duration_in(
            "LIFELINE_PROBE_INTERVAL",
            Duration::from_secs(86_400),
            Duration::from_secs(1)..=Duration::from_secs(30 * 86_400),
        )?;
        let writers = env.parse_in("LIFELINE_REFRESH_WRITERS", 2, 1..=32)?;
        let retry_base = env.duration_in(
            "LIFELINE_REFRESH_RETRY_BASE",
            Duration::from_secs(5),
            Duration::from_millis(10)..=Duration::from_secs(600),
        )?;
        Ok(Config {
            retry_base,
            common: CommonConfig::from_env(env, SERVICE, DEFAULT_PORT)?,
            vault_keys: VaultKeys::from_env(env)?,
            connectors: Connectors::from_env(env)?,
            sweep_interval,
            batch,
            lease,
            limits,
            breaker,
            horizons,
            probe_interval,
            writers,
        })
    }
}

fn read_concurrency(env: &Env, name: &str, default: usize) -> Result<usize, ConfigError> {
    env.parse_in(name, default, 1..=10_000)
}

fn read_rate(env: &Env, name: &str, default: f64) -> Result<f64, ConfigError> {
    let r: f64 = env.parse_or(name, default)?;
    if !(r.is_finite() && r >= 0.0) {
        return Err(env.invalid(name, "must be a number of calls per second, 0 for no limit"));
    }
    Ok(r)
}

fn horizons(env: &Env) -> Result<Vec<Duration>, ConfigError> {
    const NAME: &str = "LIFELINE_EXPIRING_HORIZONS";
    let raw = env.string_or(NAME, "7d,1d");
    let mut horizons = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match lifeline_kit::config::parse_duration(part) {
            Some(d) if !d.is_zero() => horizons.push(d),
            _ => {
                return Err(env.invalid(NAME, format!("'{part}' is not a duration like 7d or 12h")))
            }
        }
    }
    horizons.sort_unstable_by(|a, b| b.cmp(a));
    horizons.dedup();
    Ok(horizons)
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub pool: PgPool,
    pub vault: Vault,
    pub outbox: Outbox,
    pub connectors: Connectors,
    pub config: Arc<Config>,
    /// One gate per configured platform.
    pub gates: Arc<HashMap<Platform, Arc<gate::Gate>>>,
}

pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let spec = service::Spec {
        schema: SCHEMA,
        migrator: &MIGRATOR,
        outbox: true,
        extra_migrations: vec![Vault::migration],
    };
    let common = config.common.clone();
    service::run(listener, &common, spec, shutdown, |infra, tasks, shutdown| {
        let app = AppState {
            pool: infra.pool.clone(),
            vault: Vault::new(infra.pool.clone(), config.vault_keys.clone()),
            outbox: Outbox::new(SCHEMA, &infra.bus),
            connectors: config.connectors.clone(),
            gates: Arc::new(
                Platform::ALL
                    .into_iter()
                    .filter(|p| config.connectors.get(*p).is_some())
                    .map(|p| (p, Arc::new(gate::Gate::new(p, config.limits[&p], config.breaker))))
                    .collect(),
            ),
            config: Arc::new(config.clone()),
        };
        tasks.spawn(app.outbox.clone().relay(
            infra.pool.clone(),
            infra.bus.clone(),
            shutdown.clone(),
        ));
        schedule::spawn_consumers(tasks, &infra.bus, &app, shutdown);
        reactive::spawn(tasks, &infra.bus, &app, shutdown);
        tasks.spawn(refresh::run(app, shutdown.clone()));
        axum::Router::new()
    })
    .await
}
