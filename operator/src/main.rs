//! `legate-operator`: reconciles GatewayInstallations into gateway fleets.

use std::{process::ExitCode, sync::Arc};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use legate_common::{AdminServer, CommonArgs, Readiness, shutdown_signal, telemetry};
use legate_operator::{
    build::Settings,
    capabilities::Capabilities,
    controller::{self, Context},
    leader::{self, Election},
    metrics::Metrics,
};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{error, info};

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

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Envoy's image for installations that do not set `spec.envoy.image`.
    #[arg(long, env = "LEGATE_ENVOY_IMAGE", default_value_t = Settings::default().envoy_image)]
    envoy_image: String,
    /// The agent's image for installations that do not set `spec.agent.image`.
    #[arg(long, env = "LEGATE_AGENT_IMAGE", default_value_t = Settings::default().agent_image)]
    agent_image: String,
    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "legate-system")]
    leader_election_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "legate-operator")]
    lease_name: String,
    /// This replica's identity in the Lease; defaults to the host name and process id.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile GatewayInstallations (in-cluster config or KUBECONFIG) while holding the lease.
    Run(RunArgs),
    /// Print every Legate CRD as YAML, ready for `kubectl apply -f -`.
    Crds,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crds => print_crds(),
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

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let readiness = Readiness::new("not connected to the Kubernetes API server yet");
    let mut registry = Registry::default();
    let metrics = Metrics::default().register(&mut registry);
    let admin = AdminServer::bind(args.common.metrics_address, registry, readiness.clone()).await?;
    info!(address = %admin.local_addr()?, "serving /metrics, /healthz, /readyz");

    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("stopping");
        let _ = stop.send(true);
    });
    let mut until_stopped = stopped.clone();
    let admin = tokio::spawn(admin.serve(async move {
        let _ = until_stopped.wait_for(|stop| *stop).await;
    }));

    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    let version = client
        .apiserver_version()
        .await
        .context("cannot reach the Kubernetes API server")?;
    let capabilities = Capabilities::discover(&client)
        .await
        .context("cannot list the API server's resources")?;
    info!(server = %version.git_version, ?capabilities, "connected to the Kubernetes API server");
    // Ready means able to serve: a replica waiting for the lease is a ready standby.
    readiness.set_ready();

    let settings = Settings {
        envoy_image: args.envoy_image,
        agent_image: args.agent_image,
        ..Settings::default()
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings,
        capabilities,
        metrics,
    ));
    let election = Election {
        namespace: args.leader_election_namespace,
        lease: args.lease_name,
        identity: args.identity.unwrap_or_else(default_identity),
    };
    leader::lead(client, &election, stopped, |until| {
        controller::run(ctx.clone(), until)
    })
    .await
    .context("leader election")?;
    admin.await??;
    info!("stopped");
    Ok(())
}

/// This process among the operator's replicas: the host name and the process id.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "legate-operator".to_owned());
    format!("{host}-{}", std::process::id())
}
