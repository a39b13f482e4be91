//! `legate-operator`: reconciles GatewayInstallations into gateway fleets.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use legate_common::{AdminServer, CommonArgs, Readiness, shutdown_signal, telemetry};
use prometheus_client::registry::Registry;
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(
    name = "legate-operator",
    version,
    about = "Runs Legate gateway fleets declared as GatewayInstallations"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to Kubernetes (in-cluster config or KUBECONFIG) and serve the admin endpoint.
    Run(CommonArgs),
    /// Print every Legate CRD as YAML, ready for `kubectl apply -f -`.
    Crds,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crds => print_crds(),
        Command::Run(args) => {
            telemetry::init(args.log_format);
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

fn print_crds() -> ExitCode {
    match legate_crds::crd::rendered() {
        Ok(files) => {
            for (name, yaml) in files.iter().filter(|(n, _)| n.starts_with("bases/")) {
                println!("# {name}\n{yaml}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("legate-operator: rendering CRDs: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: CommonArgs) -> anyhow::Result<()> {
    let readiness = Readiness::new("not connected to the Kubernetes API server yet");
    let admin =
        AdminServer::bind(args.metrics_address, Registry::default(), readiness.clone()).await?;
    info!(address = %admin.local_addr()?, "serving /metrics, /healthz, /readyz");
    let admin = tokio::spawn(admin.serve(shutdown_signal()));

    match kube::Client::try_default().await {
        Ok(client) => match client.apiserver_version().await {
            Ok(version) => {
                info!(server = %version.git_version, "connected to the Kubernetes API server");
                readiness.set_ready();
            }
            Err(e) => {
                warn!("cannot reach the Kubernetes API server: {e}");
                readiness.set_not_ready(format!("cannot reach the Kubernetes API server: {e}"));
            }
        },
        Err(e) => {
            warn!("no Kubernetes configuration: {e}");
            readiness.set_not_ready(format!("no Kubernetes configuration: {e}"));
        }
    }
    admin.await??;
    info!("stopped");
    Ok(())
}
