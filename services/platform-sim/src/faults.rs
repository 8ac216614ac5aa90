//! Fault injection shared by every platform's router: latency, hangs and
//! outages on every endpoint, injected rate limits on API endpoints, and the
//! lost answer of an ambiguous publish. Each platform supplies the bodies it
//! really answers with.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;

use crate::state::Common;

/// How one platform answers an outage and an injected rate limit.
#[derive(Clone)]
pub(crate) struct FaultCfg {
    pub platform: &'static str,
    pub common: Arc<Common>,
    pub outage: fn(StatusCode) -> Response,
    /// Gets the real instant the limit ends.
    pub rate_limited: fn(&Common, Instant) -> Response,
}

async fn outage_layer(State(cfg): State<FaultCfg>, req: Request, next: Next) -> Response {
    match cfg.common.before_request(cfg.platform).await {
        Some(o) => {
            (cfg.outage)(StatusCode::from_u16(o.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE))
        }
        None => next.run(req).await,
    }
}

async fn rate_limit_layer(State(cfg): State<FaultCfg>, req: Request, next: Next) -> Response {
    match cfg.common.rate_limited_until(cfg.platform) {
        Some(until) => (cfg.rate_limited)(&cfg.common, until),
        None => next.run(req).await,
    }
}

/// Applies the injected rate limit to `api` only, then latency and outages
/// to everything.
pub(crate) fn mount(oauth: Router, api: Router, cfg: &FaultCfg) -> Router {
    oauth
        .merge(api.layer(middleware::from_fn_with_state(cfg.clone(), rate_limit_layer)))
        .layer(middleware::from_fn_with_state(cfg.clone(), outage_layer))
}

/// Latency and outages on a router whose handlers check rate limits themselves.
pub(crate) fn with_outages(router: Router, cfg: &FaultCfg) -> Router {
    router.layer(middleware::from_fn_with_state(cfg.clone(), outage_layer))
}

/// The answer of a publish the platform applied but never answered: the
/// connection ends before any byte of a response. The body fails before its
/// first chunk, and hyper then closes the connection with the status line
/// still unsent, so the client sees "connection closed before message
/// completed", as after a crash or a cut network between apply and answer.
pub(crate) fn lost_answer() -> Response {
    let failed = futures::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::other("sim: answer dropped (ambiguous fault)"))
    });
    Response::new(axum::body::Body::from_stream(failed))
}

/// Seconds from now until `until`, rounded up, at least 1 (`Retry-After`).
pub(crate) fn retry_after_secs(until: Instant) -> u64 {
    (until.saturating_duration_since(Instant::now()).as_secs_f64().ceil() as u64).max(1)
}
