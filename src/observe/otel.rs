//! OpenTelemetry export (the `otel` feature): spans leave over OTLP/HTTP (protobuf) to a
//! collector, batched on the SDK's own thread so export never runs on a request's task.
//! Plain HTTP is meant for a collector beside the gateway (an agent or sidecar); it
//! forwards with whatever TLS and credentials the backend needs, so the gateway holds none.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::OtlpConfig;
use crate::error::Error;

/// Flushes and stops the exporter when dropped.
pub(super) struct Exporter(SdkTracerProvider);

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Err(e) = self.0.shutdown() {
            eprintln!("refusal-guard: OTLP exporter shutdown: {e}");
        }
    }
}

/// The tracing layer that turns spans into OpenTelemetry spans, and its exporter.
pub(super) fn layer<S>(config: &OtlpConfig) -> Result<(Box<dyn Layer<S> + Send + Sync>, Exporter), Error>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(&config.endpoint)
        .build()
        .map_err(|e| Error::invalid("configuration", format!("logging.otlp: {e}")))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("refusal-guard");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer).boxed();
    Ok((layer, Exporter(provider)))
}
