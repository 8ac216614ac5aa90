//! Telemetry: JSON logs through `tracing`, OpenTelemetry spans (exported over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set), and W3C trace context carried in NATS headers so one
//! trace follows a reconnect through to the retried publish.

use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider, Resource};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

/// Flushes spans on drop; keep it alive for the life of `main`.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber: JSON lines on stdout (`LIFELINE_LOG_FORMAT=pretty` for humans),
/// filtered by `RUST_LOG` (default `info`).
pub fn init(service: &'static str) -> TelemetryGuard {
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build());
    let otlp = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|v| !v.is_empty());
    let mut otlp_error = None;
    if otlp.is_some() {
        match opentelemetry_otlp::SpanExporter::builder().with_http().build() {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => otlp_error = Some(e.to_string()),
        }
    }
    let provider = builder.build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let otel_layer = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let pretty = std::env::var("LIFELINE_LOG_FORMAT").is_ok_and(|v| v == "pretty");
    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    let result = if pretty {
        registry.with(tracing_subscriber::fmt::layer().with_target(false)).try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init()
    };
    if result.is_err() {
        // Another subscriber is installed already (several services in one test process).
        tracing::debug!("tracing subscriber already installed");
    }
    if let Some(e) = otlp_error {
        tracing::warn!(error = %e, "OTLP exporter not started; spans stay local");
    }
    TelemetryGuard { provider }
}

struct HeaderInjector<'a>(&'a mut async_nats::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HeaderExtractor<'a>(&'a async_nats::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Writes the current span's trace context (`traceparent`) into message headers.
pub fn inject_current(headers: &mut async_nats::HeaderMap) {
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
}

/// Makes `span` a child of the trace context found in message headers, if any.
pub fn set_parent_from(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    if let Some(h) = headers {
        let cx = TraceContextPropagator::new().extract(&HeaderExtractor(h));
        let _ = span.set_parent(cx);
    }
}

/// The current trace id in hex, for logs and API responses; `None` outside a sampled trace.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
