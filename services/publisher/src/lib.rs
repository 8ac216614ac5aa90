//! publisher: schedules posts and publishes them when due, under leases so replicas never send
//! one post twice. An auth failure parks the post as `failed_auth`; when the account is
//! reconnected every parked post is retried exactly once. Posts that cannot go out are
//! dead-lettered for operators to replay. A platform that is down holds its posts (a circuit
//! breaker per platform) and transient failures are retried over hours, so an outage makes
//! posts late but does not dead-letter them.

mod api;
mod attempt;
mod breakers;
mod consumers;
mod cursor;
mod dlq;
mod model;
mod pacing;
mod reconcile;
mod replays;
pub mod retry;
mod store;
mod sweep;

use std::{sync::Arc, time::Duration};

use axum::{Extension, Router};
use lifeline_kit::{
    auth::JwtKeys,
    breaker::BreakerConfig,
    config::{CommonConfig, ConfigError, Env},
    outbox::Outbox,
    service::{self, StartError},
};
use lifeline_platforms::Connectors;
use lifeline_vault::{Vault, VaultKeys};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::Semaphore};
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
    /// When transient failures are retried and for how long (`LIFELINE_PUBLISH_RETRY_SCHEDULE`,
    /// `LIFELINE_PUBLISH_RETRY_WINDOW`; see [`retry::RetryPolicy::from_env`]).
    pub retry: retry::RetryPolicy,
    /// Each platform's circuit breaker (`LIFELINE_PUBLISH_BREAKER_COOLDOWN` 30s,
    /// `LIFELINE_PUBLISH_BREAKER_MIN_CALLS` 5, `LIFELINE_PUBLISH_BREAKER_FAILURE_RATIO` 0.5).
    pub breaker: BreakerConfig,
    /// How often parked posts are checked for a reconnect that was missed
    /// (`LIFELINE_PUBLISH_RECONCILE_INTERVAL`, 60s; see `reconcile.rs`).
    pub reconcile_interval: Duration,
    /// Posts a replay releases per platform per second (`LIFELINE_REPLAY_RATE`, 10; e.g.
    /// `10,x=2`: see `replays/pacer.rs`).
    pub replay_rates: replays::ReplayRates,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env, SERVICE, DEFAULT_PORT)?;
        let sweep_interval = env.duration_in(
            "LIFELINE_PUBLISH_SWEEP_INTERVAL",
            Duration::from_secs(1),
            Duration::from_millis(10)..=Duration::from_secs(3600),
        )?;
        let batch = env.parse_in("LIFELINE_PUBLISH_BATCH", 50, 1..=1000)?;
        let lease = lifeline_kit::config::lease_outlives_calls(
            env,
            "LIFELINE_PUBLISH_LEASE",
            Duration::from_secs(60),
        )?;
        let concurrency = env.parse_in("LIFELINE_PUBLISH_CONCURRENCY", 16, 1..=10_000)?;
        let retry = retry::RetryPolicy::from_env(env)?;
        let breaker = breaker_config(env)?;
        let reconcile_interval = env.duration_in(
            "LIFELINE_PUBLISH_RECONCILE_INTERVAL",
            Duration::from_secs(60),
            Duration::from_millis(100)..=Duration::from_secs(86_400),
        )?;
        let replay_rates = match env.raw("LIFELINE_REPLAY_RATE") {
            None => replays::ReplayRates::default(),
            Some(v) => replays::ReplayRates::parse(&v)
                .map_err(|e| env.invalid("LIFELINE_REPLAY_RATE", e))?,
        };
        Ok(Config {
            common,
            replay_rates,
            reconcile_interval,
            retry,
            breaker,
            jwt: JwtKeys::from_env(env)?,
            vault_keys: VaultKeys::from_env(env)?,
            connectors: Connectors::from_env(env)?,
            sweep_interval,
            batch,
            lease,
            concurrency,
        })
    }
}

/// The refresher's breaker, tuned for fewer calls: it may open after 5 calls in the last 20.
fn breaker_config(env: &Env) -> Result<BreakerConfig, ConfigError> {
    let cooldown = env.duration_in(
        "LIFELINE_PUBLISH_BREAKER_COOLDOWN",
        Duration::from_secs(30),
        Duration::from_millis(100)..=Duration::from_secs(3600),
    )?;
    let min_calls = env.parse_in("LIFELINE_PUBLISH_BREAKER_MIN_CALLS", 5, 1..=1000)?;
    let failure_ratio: f64 = env.parse_or("LIFELINE_PUBLISH_BREAKER_FAILURE_RATIO", 0.5)?;
    if !(failure_ratio > 0.0 && failure_ratio <= 1.0) {
        return Err(env.invalid("LIFELINE_PUBLISH_BREAKER_FAILURE_RATIO", "must be in (0, 1]"));
    }
    Ok(BreakerConfig {
        window: min_calls.max(20),
        min_calls,
        failure_ratio,
        cooldown,
        max_cooldown: (cooldown * 20).min(Duration::from_secs(3600)).max(cooldown),
    })
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub pool: PgPool,
    pub vault: Vault,
    pub outbox: Outbox,
    pub connectors: Connectors,
    pub config: Arc<Config>,
    pub platform_calls: Arc<Semaphore>,
    pub breakers: Arc<breakers::Breakers>,
    /// Wakes the replay pacer when a replay is recorded.
    pub replay_wake: Arc<tokio::sync::Notify>,
    /// The group commits of the retry path (leases, successes): see `attempt/batch.rs`.
    pub batches: attempt::Batches,
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
        let outbox = Outbox::new(SCHEMA, &infra.bus);
        let vault = Vault::new(infra.pool.clone(), config.vault_keys.clone());
        let batches = attempt::Batches::spawn(
            &infra.pool,
            &vault,
            &outbox,
            &config.common.instance_id,
            config.lease,
        );
        let app = AppState {
            pool: infra.pool.clone(),
            vault,
            outbox,
            batches,
            connectors: config.connectors.clone(),
            platform_calls: Arc::new(Semaphore::new(config.concurrency)),
            breakers: Arc::new(breakers::Breakers::new(config.breaker)),
            config: Arc::new(config.clone()),
            replay_wake: Arc::new(tokio::sync::Notify::new()),
        };
        tasks.spawn(app.outbox.clone().relay(
            infra.pool.clone(),
            infra.bus.clone(),
            shutdown.clone(),
        ));
        consumers::spawn(tasks, &infra.bus, &app, shutdown);
        tasks.spawn(sweep::run(app.clone(), shutdown.clone()));
        tasks.spawn(reconcile::run(app.clone(), shutdown.clone()));
        tasks.spawn(replays::pacer::run(app.clone(), app.replay_wake.clone(), shutdown.clone()));
        Router::new()
            .merge(api::routes())
            .merge(dlq::routes())
            .merge(replays::routes())
            .with_state(app)
            .merge(lifeline_kit::openapi::route(&openapi()))
            .layer(Extension(config.jwt.clone()))
    })
    .await
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    api::schedule,
    api::list::list,
    api::show,
    api::change::edit,
    api::change::cancel,
    dlq::list,
    dlq::replay_one,
    dlq::replay_bulk,
    dlq::list_all,
    replays::create,
    replays::history,
    replays::show,
))]
struct ApiDoc;

/// The publisher's OpenAPI document (served at `/openapi.json`, committed as
/// docs/api/publisher.openapi.json).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::{
        openapi::{schema::Schema, RefOr},
        OpenApi as _,
    };
    let mut doc = ApiDoc::openapi();
    // An edit names at least one field. utoipa-gen 5.5.0 writes `#[schema(min_properties = 1)]`
    // as `maxProperties: 1`, so the bound is set here.
    if let Some(RefOr::T(Schema::Object(edit))) =
        doc.components.as_mut().and_then(|c| c.schemas.get_mut("EditRequest"))
    {
        edit.min_properties = Some(1);
    }
    lifeline_kit::openapi::document(doc, SERVICE, env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_openapi_document_matches_the_code() {
        lifeline_kit::openapi::assert_committed(&openapi(), SERVICE);
    }

    /// Every free-text field's `pattern` in the document is the one its handler checks.
    #[test]
    fn the_documented_text_patterns_are_the_checked_ones() {
        use crate::api::input::{KEY_PATTERN, TEXT_PATTERN};
        let doc = serde_json::to_value(openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        for (schema, field) in [
            ("ScheduleRequest", "text"),
            ("EditRequest", "text"),
            ("FilterInput", "reason"),
            ("ReplayRequest", "note"),
            ("ReplayRequest", "idempotency_key"),
        ] {
            assert_eq!(
                schemas[schema]["properties"][field]["pattern"], TEXT_PATTERN,
                "{schema}.{field}"
            );
        }
        assert_eq!(
            schemas["ScheduleRequest"]["properties"]["idempotency_key"]["pattern"],
            KEY_PATTERN
        );
        for path in ["/v1/dead-letters", "/v1/operator/dead-letters"] {
            let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
            let reason = params.iter().find(|p| p["name"] == "reason").unwrap();
            assert_eq!(reason["schema"]["pattern"], TEXT_PATTERN, "{path}");
        }
    }

    #[test]
    fn an_edit_needs_at_least_one_field_and_may_have_all() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let edit = &doc["components"]["schemas"]["EditRequest"];
        assert_eq!(edit["minProperties"], 1);
        assert!(edit.get("maxProperties").is_none(), "{edit}");
    }

    #[test]
    fn the_breaker_defaults_to_five_calls_and_invalid_settings_name_their_variable() {
        let b = breaker_config(&Env::from_pairs(Vec::<(String, String)>::new())).unwrap();
        assert_eq!((b.min_calls, b.window), (5, 20));
        assert_eq!(
            (b.cooldown, b.max_cooldown),
            (Duration::from_secs(30), Duration::from_secs(600))
        );
        for (name, value) in [
            ("LIFELINE_PUBLISH_BREAKER_COOLDOWN", "1ms"),
            ("LIFELINE_PUBLISH_BREAKER_MIN_CALLS", "0"),
            ("LIFELINE_PUBLISH_BREAKER_FAILURE_RATIO", "1.5"),
        ] {
            let e = breaker_config(&Env::from_pairs([(name, value)])).unwrap_err().to_string();
            assert!(e.contains(name), "{name}={value}: {e}");
        }
    }
}
