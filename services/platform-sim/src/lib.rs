//! Platform simulator: a faithful in-memory fake of the social platforms' OAuth
//! and publishing APIs (X, LinkedIn, Instagram, Facebook Pages, YouTube,
//! TikTok, Threads; one folder per platform), plus a `/_sim` control API to
//! inject faults. It is the only fake in the Lifeline system.
//! Reference: `docs/platform-sim.md`.

use std::sync::Arc;

use anyhow::Context as _;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

mod accounts;
mod authorize;
pub mod clock;
mod config;
mod control;
mod facebook;
mod faults;
mod graph;
mod linkedin;
mod media;
mod meta_login;
mod state;
mod support;
mod tiktok;
mod x;
mod youtube;

pub use config::{
    ClientRegistration, ConfigError, SimConfig, DEFAULT_HTTP_ADDR, DEFAULT_X_CLIENT_ID,
    DEFAULT_X_CLIENT_SECRET, PLATFORM_KEYS,
};
pub use state::SimState;

/// Every simulated platform. The one place that names them all: adding a
/// platform means adding its folder and one line here.
fn platforms(config: &SimConfig) -> Vec<Arc<dyn state::PlatformSim>> {
    vec![
        Arc::new(x::XSim::default()),
        Arc::new(linkedin::LinkedInSim::default()),
        Arc::new(meta_login::instagram()),
        Arc::new(meta_login::threads()),
        Arc::new(facebook::FacebookSim::default()),
        Arc::new(youtube::YouTubeSim::new(config.google_testing_mode)),
        Arc::new(tiktok::TikTokSim::default()),
    ]
}

/// The simulator's state for `config`, with every platform registered.
pub fn state(config: &SimConfig) -> SimState {
    SimState::new(config, platforms(config))
}

/// All simulator routes: `/healthz`, `/readyz`, `/_sim/...` and one prefix
/// per platform.
pub fn router(state: SimState) -> Router {
    // Nothing to wait for: the simulator is ready as soon as it listens.
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .nest("/_sim", control::router(state.clone()));
    for platform in state.platforms() {
        app = app.nest(&format!("/{}", platform.prefix()), platform.clone().router(state.common()));
    }
    app
}

/// Serves the simulator on `listener` until `shutdown` is cancelled, then
/// finishes in-flight requests and returns.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: SimConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let local = listener.local_addr().context("listener has no local address")?;
    tracing::info!(
        addr = %local,
        time_scale = config.time_scale,
        x_authorize = %format!("{}/x/i/oauth2/authorize", config.public_base_url),
        "platform simulator listening"
    );
    axum::serve(listener, router(state(&config)))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("platform simulator server failed")?;
    tracing::info!("platform simulator stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn healthz_and_readyz_answer_ok() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(run(listener, SimConfig::default(), shutdown.clone()));
        for path in ["/healthz", "/readyz"] {
            let resp = reqwest::get(format!("{base}{path}")).await.expect("request");
            assert_eq!(resp.status(), 200, "{path}");
            assert_eq!(resp.text().await.expect("body"), "ok", "{path}");
        }
        shutdown.cancel();
        server.await.expect("join").expect("clean shutdown");
    }
}
