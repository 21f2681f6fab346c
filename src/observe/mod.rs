//! What the gateway records of its traffic, off the request path: where its logs and
//! traces go, what each request leaves behind, and the verdict log.
//!
//! [`init`] installs the process's one `tracing` subscriber from a [`LoggingConfig`]
//! (`[logging]` in `gateway.toml`, overridable on the `serve` command line): an
//! [`EnvFilter`] in `RUST_LOG` syntax (the `RUST_LOG` variable wins when set; `info`
//! otherwise), lines human-readable or one JSON object each, to standard error or
//! appended to a file, written by a background thread so a slow disk never holds a
//! request. With the `otel` cargo feature and `[logging.otlp]`, spans are also exported
//! over OTLP/HTTP to a collector.
//!
//! [`request`] is the per-request record: one `refusal_guard::request` event per
//! gateway request, emitted when its response body ends, and the span the guard and
//! re-route layers' spans nest under. It never carries prompt or answer text, nor keys.
//!
//! [`verdict_log`]: every judged exchange as one JSON line in the schema `audit` reads,
//! written to rotating, compressed files by one writer thread behind a bounded queue.

pub mod request;
pub mod verdict_log;

#[cfg(feature = "otel")]
mod otel;

use std::path::PathBuf;

use serde::Deserialize;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::error::Error;

pub use request::RequestRecord;
pub use verdict_log::{
    Entry, Exchange, LineSink, RotatingFiles, VerdictLog, VerdictLogBuilder, VerdictLogConfig,
};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line, event fields at the top level, for log shippers.
    Json,
}

/// `[logging]`: the filter, the format and where lines go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// A filter in `RUST_LOG` syntax (`info`, `refusal_guard=debug,hyper=warn`, …).
    /// The `RUST_LOG` environment variable, when set, takes its place. Default `info`.
    pub filter: Option<String>,
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// Append lines to this file instead of writing them to standard error.
    pub file: Option<PathBuf>,
    /// Export spans over OTLP/HTTP (needs a build with the `otel` feature).
    pub otlp: Option<OtlpConfig>,
}

/// `[logging.otlp]`: OpenTelemetry trace export.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's OTLP/HTTP traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces`.
    pub endpoint: String,
    /// `service.name` of the exported spans. Default `refusal-guard`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

fn default_service_name() -> String {
    "refusal-guard".into()
}

impl LoggingConfig {
    /// Checks what can be checked before anything is installed.
    pub fn check(&self) -> Result<(), Error> {
        if let Some(f) = &self.filter {
            EnvFilter::try_new(f)
                .map_err(|e| Error::invalid("configuration", format!("logging.filter {f:?}: {e}")))?;
        }
        if let Some(otlp) = &self.otlp {
            if !cfg!(feature = "otel") {
                return Err(Error::invalid(
                    "configuration",
                    "[logging.otlp] is set, but this binary was built without the `otel` feature \
                     (cargo build --release --features otel)",
                ));
            }
            if !otlp.endpoint.starts_with("http://") && !otlp.endpoint.starts_with("https://") {
                return Err(Error::invalid(
                    "configuration",
                    format!("logging.otlp.endpoint {:?} is not an http(s) URL", otlp.endpoint),
                ));
            }
        }
        Ok(())
    }
}

/// Keeps telemetry running; dropping it flushes buffered lines and exported spans.
#[must_use = "dropping the handle stops the log writer"]
pub struct Telemetry {
    _writer: tracing_appender::non_blocking::WorkerGuard,
    /// Held for its `Drop`, which flushes and stops the exporter.
    #[cfg(feature = "otel")]
    _otel: Option<otel::Exporter>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// Installs the process-wide subscriber built by [`subscriber`] (and routes the `log`
/// crate's records through it). Fails with a typed error for a bad filter, an
/// unwritable log file, an OTLP section without the `otel` feature, or a subscriber
/// already installed.
pub fn init(config: &LoggingConfig) -> Result<Telemetry, Error> {
    let (dispatch, telemetry) = subscriber(config)?;
    dispatch.try_init().map_err(|e| {
        Error::invalid(
            "configuration",
            format!("a tracing subscriber is already installed: {e}"),
        )
    })?;
    Ok(telemetry)
}

/// The subscriber a [`LoggingConfig`] describes, not installed: for [`init`], and for
/// running it on some threads only (a benchmark comparing logging on and off).
pub fn subscriber(config: &LoggingConfig) -> Result<(tracing::Dispatch, Telemetry), Error> {
    config.check()?;
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => EnvFilter::try_new(&value)
            .map_err(|e| Error::invalid("configuration", format!("RUST_LOG {value:?}: {e}")))?,
        _ => EnvFilter::try_new(config.filter.as_deref().unwrap_or("info"))
            .map_err(|e| Error::invalid("configuration", format!("logging.filter: {e}")))?,
    };
    let (writer, guard) = match &config.file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    Error::invalid("configuration", format!("logging.file {}: {e}", path.display()))
                })?;
            tracing_appender::non_blocking(file)
        }
        None => tracing_appender::non_blocking(std::io::stderr()),
    };
    let lines = match config.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    };
    #[cfg(feature = "otel")]
    let (otel_layer, otel) = match &config.otlp {
        Some(o) => {
            let (layer, exporter) = otel::layer(o)?;
            (Some(layer), Some(exporter))
        }
        None => (None, None),
    };
    let registry = tracing_subscriber::registry().with(filter).with(lines);
    #[cfg(feature = "otel")]
    let registry = registry.with(otel_layer);
    let telemetry = Telemetry {
        _writer: guard,
        #[cfg(feature = "otel")]
        _otel: otel,
    };
    Ok((tracing::Dispatch::new(registry), telemetry))
}
