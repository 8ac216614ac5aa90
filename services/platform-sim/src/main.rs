//! `platform-sim` binary: JSON logs, bind `SIM_HTTP_ADDR`, serve until SIGINT/SIGTERM.
//! `--check-config` only parses the configuration (and refuses `SIM_*` variables it does not
//! read), exiting 0 or 2, like the services' flag of the same name.

use std::{cell::RefCell, collections::BTreeSet, process::ExitCode};

use anyhow::Context as _;
use platform_sim::SimConfig;
use tokio_util::sync::CancellationToken;

/// Parses the configuration as at start: exit 0 when valid, 2 naming the variable when not.
fn check_config() -> ExitCode {
    let asked = RefCell::new(BTreeSet::new());
    let config = SimConfig::from_lookup(|key| {
        asked.borrow_mut().insert(key.to_owned());
        std::env::var(key).ok()
    });
    if let Err(e) = config {
        eprintln!("platform-sim: {e}");
        return ExitCode::from(2);
    }
    let asked = asked.into_inner();
    let unknown: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("SIM_") && !asked.contains(k))
        .collect();
    if unknown.is_empty() {
        println!("platform-sim: configuration is valid");
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "platform-sim: unknown variable {} (see docs/platform-sim.md)",
            unknown.join(", ")
        );
        ExitCode::from(2)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("--check-config") => return Ok(check_config()),
        Some(other) => {
            eprintln!("usage: platform-sim [--check-config] (not {other:?})");
            return Ok(ExitCode::from(2));
        }
    }
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let config = SimConfig::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot bind SIM_HTTP_ADDR={}", config.http_addr))?;

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    platform_sim::run(listener, config, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
    shutdown.cancel();
}
