//! `legate-agent`: the per-pod gateway agent. Today it loads and validates route resources from
//! a directory and serves its admin endpoint; the xDS data path is built on top of this.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use legate_common::{AdminServer, CommonArgs, Readiness, shutdown_signal, telemetry};
use legate_crds::loader::{DirectoryLoad, load_dir};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(
    name = "legate-agent",
    version,
    about = "Legate's gateway agent: route resources in, Envoy configuration out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve routes declared in YAML files under --config-dir (or, without it, from Kubernetes).
    Run(RunArgs),
    /// Load every YAML file under DIR and report what would be rejected; exits 1 if anything is.
    Validate { dir: PathBuf },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Read resources from YAML files under this directory instead of Kubernetes.
    #[arg(long)]
    config_dir: Option<PathBuf>,
    /// Where the ADS (xDS) server listens; keep it on loopback.
    #[arg(long, default_value = "127.0.0.1:18000")]
    ads_address: SocketAddr,
    /// Serve only resources whose `ambassador_id` lists this id (absent means `default`).
    #[arg(long, env = "AMBASSADOR_ID", default_value = "default")]
    ambassador_id: String,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Validate { dir } => validate(&dir),
        Command::Run(args) => {
            telemetry::init(args.common.log_format);
            match run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn validate(dir: &std::path::Path) -> ExitCode {
    let load = match load_dir(dir) {
        Ok(load) => load,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    for warning in &load.loaded.warnings {
        println!("warning: {warning}");
    }
    for resource in &load.loaded.resources {
        println!("ok: {}", resource.object_ref());
    }
    for e in &load.file_errors {
        println!("error: {e}");
    }
    for e in &load.loaded.errors {
        println!("error: {e}");
    }
    let rejected = load.file_errors.len() + load.loaded.errors.len();
    println!(
        "{} accepted, {rejected} rejected",
        load.loaded.resources.len()
    );
    if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let Some(dir) = args.config_dir else {
        anyhow::bail!("watching Kubernetes is not built yet; pass --config-dir DIR");
    };
    let mut registry = Registry::with_prefix("legate_agent");
    let resources = Family::<KindLabel, Gauge>::default();
    let rejected = Gauge::<i64>::default();
    registry.register(
        "resources",
        "Resources loaded and valid, by kind",
        resources.clone(),
    );
    registry.register(
        "rejected_documents",
        "Documents or files rejected at load",
        rejected.clone(),
    );

    let DirectoryLoad {
        loaded,
        file_errors,
    } = load_dir(&dir)?;
    for w in &loaded.warnings {
        warn!("{w}");
    }
    for e in &file_errors {
        warn!("rejected: {e}");
    }
    for e in &loaded.errors {
        warn!("rejected: {e}");
    }
    for r in &loaded.resources {
        resources
            .get_or_create(&KindLabel {
                kind: r.kind().to_owned(),
            })
            .inc();
    }
    rejected.set((file_errors.len() + loaded.errors.len()) as i64);
    info!(
        dir = %dir.display(),
        accepted = loaded.resources.len(),
        rejected = file_errors.len() + loaded.errors.len(),
        ambassador_id = %args.ambassador_id,
        ads = %args.ads_address,
        "loaded resources"
    );

    let readiness = Readiness::new("no Envoy has acknowledged a configuration");
    let admin = AdminServer::bind(args.common.metrics_address, registry, readiness).await?;
    info!(address = %admin.local_addr()?, "serving /metrics, /healthz, /readyz");
    admin.serve(shutdown_signal()).await?;
    info!("stopped");
    Ok(())
}
