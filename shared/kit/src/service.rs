//! The skeleton every service runs on: serve `/healthz`, `/readyz` and `/metrics` at once,
//! start the infrastructure (Postgres, migrations, NATS, streams) in the background with
//! retries — in any order, while NATS, its JetStream leader or Postgres are still coming up, and
//! beside replicas starting at the same moment — then hand the service its connections, serve
//! its routes, and drain on shutdown.

use std::{
    future::Future,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    extract::Request,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json, Router,
};
use futures::future::BoxFuture;
use lifeline_events::Event;
use sqlx::{migrate::Migrator, PgPool};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

pub use crate::readiness::{Infra, Readiness};
use crate::{
    backoff::Backoff,
    bus::{Bus, BusError, Delivery, HandlerError},
    config::{CommonConfig, ConfigError},
    outbox::Outbox,
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
}

/// A migration another crate owns (the vault's), run at start after the service's own.
pub type ExtraMigration = fn(PgPool) -> BoxFuture<'static, Result<(), sqlx::migrate::MigrateError>>;

/// What a service's start-up consists of.
pub struct Spec {
    pub schema: &'static str,
    pub migrator: &'static Migrator,
    /// Also create `<schema>.outbox` ([`Outbox::migrate`]).
    pub outbox: bool,
    pub extra_migrations: Vec<ExtraMigration>,
}

/// Runs a service on `listener` until `shutdown`: the ops endpoints answer at once (`/readyz`
/// is 503 until start-up is done), start-up retries with backoff until it succeeds, then
/// `build` gets the connections, spawns the service's tasks into the set and returns its routes.
/// On shutdown the server stops taking requests, in-flight ones finish, and the tasks drain.
pub async fn run<B>(
    listener: TcpListener,
    common: &CommonConfig,
    spec: Spec,
    shutdown: CancellationToken,
    build: B,
) -> Result<(), StartError>
where
    B: FnOnce(Infra, &mut JoinSet<()>, &CancellationToken) -> Router,
{
    let began = Instant::now();
    let readiness = Arc::new(Readiness::default());
    let routes: Arc<OnceLock<Router>> = Arc::new(OnceLock::new());
    let router = crate::http::ops_router(readiness.clone()).fallback(forward_to(routes.clone()));
    // The server has its own token so that a start-up failure stops it without cancelling the
    // caller's (which, in tests, other services share).
    let stop = shutdown.child_token();
    tracing::info!(addr = %listener.local_addr()?, service = common.service, "listening; starting up");
    let server = tokio::spawn(crate::http::serve(listener, router, stop.clone()));

    let mut tasks = JoinSet::new();
    let started = tokio::select! {
        _ = stop.cancelled() => Ok(None),
        r = start(common, &spec, &readiness) => r.map(Some),
    };
    let outcome = match started {
        Ok(Some(infra)) => {
            let app = build(infra.clone(), &mut tasks, &stop);
            let _ = routes.set(app);
            let _ = readiness.infra.set(infra);
            let secs = began.elapsed().as_secs_f64();
            metrics::gauge!("lifeline_startup_seconds").set(secs);
            tracing::info!(startup_ms = (secs * 1000.0) as u64, "ready");
            stop.cancelled().await;
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    stop.cancel();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) if outcome.is_ok() => return Err(e.into()),
        Ok(Err(e)) => tracing::warn!(error = %e, "http server stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "http server task failed"),
    }
    while tasks.join_next().await.is_some() {}
    outcome
}

/// Sends every request that is not an ops endpoint to the service's routes, or answers 503
/// while they are not there yet.
fn forward_to(
    routes: Arc<OnceLock<Router>>,
) -> impl Fn(Request) -> BoxFuture<'static, Response> + Clone + Send + Sync + 'static {
    move |req: Request| {
        let routes = routes.clone();
        Box::pin(async move {
            match routes.get() {
                Some(router) => match router.clone().oneshot(req).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
                None => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "1")],
                    Json(serde_json::json!({
                        "error": "starting",
                        "message": "the service is starting; try again in a moment",
                    })),
                )
                    .into_response(),
            }
        })
    }
}

/// Start-up, each step retried until it works: Postgres (creating the database), the service's
/// migrations, the other crates' migrations, the outbox, NATS and the streams. Errors that a
/// retry cannot mend (a migration that differs from the applied one) end it.
async fn start(
    common: &CommonConfig,
    spec: &Spec,
    readiness: &Readiness,
) -> Result<Infra, StartError> {
    let pool = retry(readiness, "connecting to postgres", || crate::db::connect(common)).await;
    retry_unless_fatal(readiness, "migrating", || async {
        crate::db::migrate(&pool, spec.schema, spec.migrator).await?;
        for migrate in &spec.extra_migrations {
            migrate(pool.clone()).await?;
        }
        if spec.outbox {
            Outbox::migrate(&pool, spec.schema).await?;
        }
        Ok::<_, sqlx::migrate::MigrateError>(())
    })
    .await?;
    let bus = retry(readiness, "connecting to NATS", || Bus::connect(common)).await;
    let mut attempts = 0u32;
    retry(readiness, "creating streams", || {
        attempts += 1;
        bus.ensure_streams(common.stream_replicas, stream_setup_timeout(attempts))
    })
    .await;
    Ok(Infra { pool, bus })
}

/// How long the `attempt`-th stream set-up waits for an answer: 500 ms, doubling up to 5 s, so a
/// lost request costs little on a fresh cluster and a slow cluster still gets its time.
fn stream_setup_timeout(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.clamp(1, 5).saturating_sub(1)))
        .min(Duration::from_secs(5))
}

/// Calls `attempt` until it succeeds, with a growing, jittered pause (100 ms to 500 ms: the
/// attempts are cheap, and a service must be ready within a second of its dependencies).
async fn retry<T, E, F, Fut>(readiness: &Readiness, step: &'static str, mut attempt: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    readiness.set_step(step);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
    let mut failures = 0u32;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(e) => {
                failures += 1;
                // Quiet while dependencies are expected to be starting, loud once it lasts.
                if failures < 10 {
                    tracing::warn!(step, failures, error = %e, "start-up step failed; retrying");
                } else {
                    tracing::error!(step, failures, error = %e, "start-up step keeps failing; retrying");
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

async fn retry_unless_fatal<F, Fut>(
    readiness: &Readiness,
    step: &'static str,
    mut attempt: F,
) -> Result<(), StartError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), sqlx::migrate::MigrateError>>,
{
    use sqlx::migrate::MigrateError as M;
    let outcome = retry(readiness, step, || {
        let run = attempt();
        async move {
            match run.await {
                Ok(()) => Ok(Ok(())),
                Err(e @ (M::VersionMismatch(_) | M::VersionMissing(_) | M::Dirty(_))) => Ok(Err(e)),
                Err(e) => Err(e),
            }
        }
    })
    .await;
    outcome.map_err(StartError::from)
}

/// Keeps a consumer of `E` running until `shutdown`, calling `handler(state, event, delivery)`:
/// if it stops with an error (NATS went away, the stream's leader is being elected), it is
/// started again after a pause instead of leaving the service deaf.
pub fn spawn_consumer<S, E, H, Fut>(
    tasks: &mut JoinSet<()>,
    bus: &Bus,
    concurrency: usize,
    state: S,
    handler: H,
    shutdown: CancellationToken,
) where
    S: Clone + Send + Sync + 'static,
    E: Event + Send + 'static,
    H: Fn(S, E, Delivery) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let bus = bus.clone();
    let handler = move |event: E, delivery: Delivery| handler(state.clone(), event, delivery);
    tasks.spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            match bus.consume::<E, _, _>(concurrency, handler.clone(), shutdown.clone()).await {
                Ok(()) if shutdown.is_cancelled() => return,
                Ok(()) => tracing::warn!(event = E::NAME, "consumer ended; restarting"),
                Err(e) => {
                    tracing::warn!(event = E::NAME, error = %e, "consumer failed; restarting")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    });
}

/// The whole of a service's `main`: telemetry, config from the environment (exit 2 with the
/// variable's name when invalid), bind the HTTP address, run until SIGTERM or Ctrl-C.
///
/// `--check-config` parses the configuration exactly as at start, and also refuses any
/// `LIFELINE_*` variable the service does not read (a typo, or a manifest that drifted from the
/// code), then exits: 0 when it is valid, 2 naming the variable when not. At a normal start an
/// unknown variable is only a warning.
pub async fn main<C, Fut>(
    service: &'static str,
    config: impl FnOnce(&crate::config::Env) -> Result<C, ConfigError>,
    http_addr: impl FnOnce(&C) -> std::net::SocketAddr,
    run: impl FnOnce(tokio::net::TcpListener, C, CancellationToken) -> Fut,
) -> std::process::ExitCode
where
    Fut: Future<Output = Result<(), StartError>>,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check_only = match args.as_slice() {
        [] => false,
        [flag] if flag == "--check-config" => true,
        _ => {
            eprintln!("usage: {service} [--check-config]\n  configuration comes from the environment: see docs/configuration.md");
            return std::process::ExitCode::from(2);
        }
    };
    let env = crate::config::Env::process();
    if check_only {
        return match config(&env) {
            Err(e) => {
                eprintln!("{service}: {e}");
                std::process::ExitCode::from(2)
            }
            Ok(_) => match env.unknown().as_slice() {
                [] => {
                    println!("{service}: configuration is valid");
                    std::process::ExitCode::SUCCESS
                }
                unknown => {
                    eprintln!(
                        "{service}: unknown variable {} (not read by {service}; see docs/configuration.md)",
                        unknown.join(", ")
                    );
                    std::process::ExitCode::from(2)
                }
            },
        };
    }
    let _telemetry = crate::telemetry::init(service);
    let config = match config(&env) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("{service}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let unknown = env.unknown();
    if !unknown.is_empty() {
        tracing::warn!(variables = %unknown.join(","), "ignoring LIFELINE_* variables this service does not read");
    }
    let addr = http_addr(&config);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, %addr, "cannot listen");
            eprintln!("{service}: cannot listen on {addr}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(listener, config, crate::shutdown::on_signals()).await {
        Ok(()) => {
            tracing::info!("stopped");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "stopped with an error");
            eprintln!("{service}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_set_up_waits_longer_each_time() {
        let waits: Vec<u64> = (1..=7).map(|a| stream_setup_timeout(a).as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 5000, 5000, 5000]);
    }
}
