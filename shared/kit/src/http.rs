//! The HTTP surface every service shares: `/healthz`, `/readyz` (NATS and Postgres reachable),
//! `/metrics` (Prometheus), the JSON error shape, and serving with graceful shutdown.

use std::sync::{Arc, OnceLock};

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::readiness::Readiness;

/// The process-wide Prometheus recorder (installed once, shared by every service in a process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // The refresher's timings are read as percentiles over a whole run (benchmarks,
            // dashboards): histograms with fixed buckets, 1 ms to about 60 s, 25% apart. The
            // rest stay summaries over a sliding window.
            let buckets: Vec<f64> =
                std::iter::successors(Some(0.001_f64), |b| (*b < 60.0).then_some(b * 1.25))
                    .collect();
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Prefix("lifeline_refresh_".into()), &buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was installed already; /metrics may be empty");
            }
            handle
        })
        .clone()
}

#[derive(Clone)]
pub(crate) struct Probes {
    readiness: Arc<Readiness>,
    metrics: PrometheusHandle,
}

/// `/healthz`, `/readyz` and `/metrics`, served from the moment a service starts: `/readyz`
/// answers 503 with the start-up step until the connections exist, then checks them.
pub fn ops_router(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Probes { readiness, metrics: metrics_handle() })
}

/// Liveness: the process serves HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = crate::openapi::OPS_TAG,
    responses((status = 200, description = "Always `ok`.", content_type = "text/plain", body = String)),
)]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = crate::openapi::OPS_TAG,
    responses((status = 200, description = "Every `lifeline_*` metric of this process.", content_type = "text/plain", body = String)),
)]
pub(crate) async fn metrics(State(p): State<Probes>) -> String {
    p.metrics.render()
}

/// What `/readyz` says about the connections.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReadyBody {
    /// Both connections work.
    ready: bool,
    /// `ok`, `unreachable`, or `pending` during start-up.
    nats: &'static str,
    /// `ok`, `unreachable`, or `pending` during start-up.
    postgres: &'static str,
    /// The start-up step under way (`connecting to postgres`, `migrating`, …), until it is done.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, nullable = false)]
    starting: Option<&'static str>,
}

/// Readiness: NATS and Postgres are reachable (and start-up is done).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = crate::openapi::OPS_TAG,
    responses(
        (status = 200, description = "Ready.", body = ReadyBody),
        (status = 503, description = "Starting up, or a connection is down.", body = ReadyBody),
    ),
)]
pub(crate) async fn readyz(State(p): State<Probes>) -> Response {
    let Some(infra) = p.readiness.infra() else {
        let body = ReadyBody {
            ready: false,
            nats: "pending",
            postgres: "pending",
            starting: Some(p.readiness.step()),
        };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    };
    let nats_ok =
        matches!(infra.bus.client().connection_state(), async_nats::connection::State::Connected);
    let pg_ok = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&infra.pool),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let body = ReadyBody {
        ready: nats_ok && pg_ok,
        nats: if nats_ok { "ok" } else { "unreachable" },
        postgres: if pg_ok { "ok" } else { "unreachable" },
        starting: None,
    };
    let status = if body.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// The JSON error every API returns: `{"error": "<code>", "message": "<what to do>"}`, plus
/// `"details": {…}` where the code has specifics a client can act on.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Machine-readable specifics (which field, which permission), when there are any.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: None }
    }
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
    pub fn not_found(what: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// Logs the cause and answers 500 without exposing it.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the service logs",
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a serde_json::Value>,
        }
        let body =
            Body { error: self.code, message: &self.message, details: self.details.as_ref() };
        (self.status, Json(body)).into_response()
    }
}

/// Rejections from axum's extractors (bad JSON, bad path) in the same JSON shape.
pub fn rejection(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// A JSON request body that must be an object, read as `T`. serde reads a struct from an array
/// too (`[null, null]` is a `{account_id, since}` of nulls, `{"filter": []}` an empty filter),
/// which no client means and the API documents do not allow; this refuses it, at the top level
/// and in every nested struct, with the same 400 as any other malformed body.
pub fn json_object<T: serde::de::DeserializeOwned>(
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    let Json(value) = body.map_err(rejection)?;
    object_from_value(value)
}

/// [`json_object`] for a body read as bytes (an endpoint whose body may also be empty parses it
/// itself): the same refusals, the same 400.
pub fn json_object_from_slice<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("Failed to parse the request body as JSON: {e}"))
    })?;
    object_from_value(value)
}

fn object_from_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    crate::json_body::from_value(value).map_err(|e| {
        ApiError::bad_request(format!(
            "Failed to deserialize the JSON body into the target type: {e}"
        ))
    })
}
