//! Start-up shared by the services: connect to Postgres and NATS (waiting for them), run the
//! service's migrations, and keep its consumers running until shutdown.

use std::{future::Future, time::Duration};

use lifeline_events::Event;
use sqlx::{migrate::Migrator, PgPool};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::{Bus, BusError, Delivery, HandlerError},
    config::{CommonConfig, ConfigError},
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

/// How long a starting service waits for Postgres and NATS to come up.
pub const INFRA_WAIT: Duration = Duration::from_secs(30);

/// The connections every service holds.
#[derive(Clone)]
pub struct Infra {
    pub pool: PgPool,
    pub bus: Bus,
}

/// Connects to Postgres and NATS and migrates the service's schema.
pub async fn start(
    config: &CommonConfig,
    schema: &str,
    migrator: &Migrator,
) -> Result<Infra, StartError> {
    let pool = crate::db::connect(config, INFRA_WAIT).await?;
    crate::db::migrate(&pool, schema, migrator).await?;
    let bus = Bus::connect(config, INFRA_WAIT).await?;
    Ok(Infra { pool, bus })
}

/// Keeps a consumer of `E` running until `shutdown`, calling `handler(state, event, delivery)`:
/// if it stops with an error (NATS went away), it is started again after a pause instead of
/// leaving the service deaf.
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
        loop {
            match bus.consume::<E, _, _>(concurrency, handler.clone(), shutdown.clone()).await {
                Ok(()) if shutdown.is_cancelled() => return,
                Ok(()) => tracing::warn!(event = E::NAME, "consumer ended; restarting"),
                Err(e) => {
                    tracing::error!(event = E::NAME, error = %e, "consumer failed; restarting")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    });
}

/// The whole of a service's `main`: telemetry, config from the environment (exit 2 with the
/// variable's name when invalid), bind the HTTP address, run until SIGTERM or Ctrl-C.
pub async fn main<C, Fut>(
    service: &'static str,
    config: impl FnOnce(&crate::config::Env) -> Result<C, ConfigError>,
    http_addr: impl FnOnce(&C) -> std::net::SocketAddr,
    run: impl FnOnce(tokio::net::TcpListener, C, CancellationToken) -> Fut,
) -> std::process::ExitCode
where
    Fut: Future<Output = Result<(), StartError>>,
{
    let _telemetry = crate::telemetry::init(service);
    let config = match config(&crate::config::Env::process()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("{service}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
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
