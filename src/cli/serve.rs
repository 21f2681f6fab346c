//! `refusal-guard serve --config gateway.toml`: runs the gateway until SIGINT or SIGTERM.

use std::path::PathBuf;

use clap::Args;

use crate::gateway::config::GatewayConfig;
use crate::gateway::Gateway;

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The gateway configuration (see gateway.toml in the repository for a sample).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Listen here instead of `server.listen` (e.g. 127.0.0.1:0 for a free port; the
    /// address is printed either way).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Log lines as `text` or `json` instead of `logging.format` (filter with `RUST_LOG`).
    #[arg(long, value_enum)]
    pub log_format: Option<crate::observe::LogFormat>,
}

/// Runs the gateway.
pub fn run(args: &ServeArgs) -> Result<(), String> {
    let mut config = GatewayConfig::load(&args.config).map_err(|e| e.to_string())?;
    if let Some(addr) = args.listen {
        config.server.listen = addr;
    }
    if let Some(format) = args.log_format {
        config.logging.format = format;
    }
    // Held until the gateway stops: dropping it flushes the last lines and spans.
    let _telemetry = crate::observe::init(&config.logging).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(async {
        let gateway = Gateway::from_config(&config).map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .map_err(|e| format!("binding {}: {e}", config.server.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        // One line on stdout that scripts and tests wait for.
        println!("refusal-guard listening on http://{addr}");
        tracing::info!(
            at_once = crate::classify::concurrent_passes(),
            may_wait = crate::classify::queued_passes(),
            "model passes: this many run at once and this many may wait; more are shed \
             (REFUSAL_GUARD_MODEL_PASSES, REFUSAL_GUARD_MODEL_QUEUE)"
        );
        gateway
            .serve(listener, shutdown_signal())
            .await
            .map_err(|e| format!("serving: {e}"))
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
