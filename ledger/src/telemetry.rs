//! Logs and traces for every process: `tracing` everywhere, JSON logs (with each
//! request's trace id) when `RELEASE_PILOT_LOG_FORMAT=json`, and OpenTelemetry export
//! over OTLP/HTTP when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the other `OTEL_*` variables
//! (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, headers, timeouts) apply as the
//! OpenTelemetry SDK reads them.
//!
//! One trace follows a command: the HTTP request's span continues the caller's W3C
//! `traceparent` (or starts a trace), the command's events record that span's
//! `traceparent` in their metadata, the relay's publish span continues it and passes it on
//! in the NATS message headers, and each projection's apply span continues it again.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps the trace exporter alive; flushes and shuts it down when dropped.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends every finished span now.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Where spans go, from the environment: an OTLP/HTTP endpoint when one is configured.
fn configured_endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// A tracer provider exporting to `endpoint` (`http://host:4318`; `/v1/traces` is added
/// when missing), named `service` unless `OTEL_SERVICE_NAME` says otherwise.
pub fn provider(service: &str, endpoint: &str) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig;
    let endpoint = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| format!("OTLP exporter: {e}"))?;
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(name)
                .build(),
        )
        .build())
}

/// Installs logging (and trace export when configured) for the process `service`.
/// `RUST_LOG` filters (default `info`); logs go to stderr.
pub fn init(service: &str) -> Telemetry {
    init_with_filter(service, "info")
}

/// As [`init`], with `default_filter` when `RUST_LOG` is not set.
pub fn init_with_filter(service: &str, default_filter: &str) -> Telemetry {
    let provider = match configured_endpoint() {
        Some(endpoint) => match provider(service, &endpoint) {
            Ok(provider) => Some(provider),
            Err(e) => {
                eprintln!("release-pilot: traces will not be exported: {e}");
                None
            }
        },
        None => None,
    };
    install_with_filter(service, provider, default_filter)
}

/// Installs logging and, with `provider`, trace export (the global subscriber can be set
/// once per process; later calls only keep the provider).
pub fn install(service: &str, provider: Option<SdkTracerProvider>) -> Telemetry {
    install_with_filter(service, provider, "info")
}

fn install_with_filter(
    service: &str,
    provider: Option<SdkTracerProvider>,
    default_filter: &str,
) -> Telemetry {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service.to_owned())));
    let json = std::env::var("RELEASE_PILOT_LOG_FORMAT").is_ok_and(|f| f == "json");
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let _ = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    Telemetry { provider }
}

/// Makes `span` continue the trace of a W3C `traceparent` (no-op for `None` or a
/// malformed one).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// The W3C `traceparent` of `span`, when it is part of an exported trace.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// The trace id of `span` (hex), when it is part of an exported trace.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}
