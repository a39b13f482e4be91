//! What both Legate binaries share: command-line flags for logging and the admin endpoint,
//! logging setup, and the `/metrics`, `/healthz`, `/readyz` server.

pub mod admin;
pub mod prometheus_text;
pub mod telemetry;

pub use admin::{AdminServer, Readiness};
pub use telemetry::LogFormat;

use std::net::SocketAddr;

/// Flags every Legate binary takes.
#[derive(Clone, Debug, clap::Args)]
pub struct CommonArgs {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, env = "LEGATE_METRICS_ADDRESS", default_value = "127.0.0.1:9090")]
    pub metrics_address: SocketAddr,
    /// Log format: human-readable text, or one JSON object per line.
    #[arg(long, env = "LEGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Resolves when the process is asked to stop (SIGTERM or Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
