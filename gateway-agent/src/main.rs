//! `legate-agent`: the per-pod gateway agent. Route resources in (a directory of YAML, or
//! Kubernetes), Envoy configuration out over ADS.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use legate_agent::{
    bootstrap::{AdsApi, BootstrapParams, bootstrap, render_yaml},
    drain,
    ir::{Reason, Settings},
    run::{Agent, Options, SourceOptions},
    source::kubernetes,
};
use legate_common::{AdminServer, CommonArgs, Readiness, shutdown_signal, telemetry};
use legate_crds::loader::load_dir;
use prometheus_client::registry::Registry;
use tracing::{error, info};

/// Translation allocates and frees hundreds of thousands of small values per configuration;
/// mimalloc does that about twice as fast as the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Print an Envoy bootstrap that takes all its configuration from this agent over ADS.
    Bootstrap(BootstrapArgs),
    /// Load every YAML file under DIR and report what `run` would reject or leave unserved, with
    /// its messages; exits 1 if anything is.
    Validate(ValidateArgs),
    /// Rewrite Emissary getambassador.io/v1 and v2 YAML (and Services' getambassador.io/config
    /// annotations) as v3alpha1 on stdout, saying what changed; exits 1 if anything cannot be.
    Convert {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Read resources from YAML files under this directory instead of Kubernetes.
    #[arg(long, conflicts_with = "installation")]
    config_dir: Option<PathBuf>,
    /// Watch Kubernetes for this GatewayInstallation (NAMESPACE/NAME): its admitted namespaces,
    /// its ambassador_id, and its status. In-cluster config, or KUBECONFIG.
    #[arg(long, env = "LEGATE_INSTALLATION")]
    installation: Option<String>,
    /// This replica's name, for the status lease and Events.
    #[arg(long, env = "POD_NAME", default_value = "legate-gateway")]
    replica: String,
    /// Where the ADS (xDS) server listens; keep it on loopback.
    #[arg(long, default_value = "127.0.0.1:18000")]
    ads_address: SocketAddr,
    /// Serve only resources whose `ambassador_id` lists this id (absent means `default`).
    #[arg(long, env = "AMBASSADOR_ID", default_value = "default")]
    ambassador_id: String,
    /// The gateway's namespace: unqualified services in other namespaces get theirs appended.
    #[arg(long, env = "LEGATE_NAMESPACE", default_value = "default")]
    namespace: String,
    /// A change (to a file in --config-dir, or a watched object) after this long without one is
    /// built at once; changes that follow each other more closely are built together once
    /// they have stopped for this long, in milliseconds. In --config-dir, a file written but
    /// not closed is read when its writer closes it, or after this long without events.
    #[arg(long, default_value_t = 100)]
    debounce_ms: u64,
    /// On Kubernetes, a burst of changes is built at the latest this long after it began, in
    /// milliseconds (in --config-dir, ten times --debounce-ms).
    #[arg(long, default_value_t = 1000)]
    max_delay_ms: u64,
    /// Envoy's admin interface, which `/drain` asks to drain its listeners.
    #[arg(long, default_value = "127.0.0.1:19000")]
    envoy_admin_address: SocketAddr,
    /// Envoy's statistics listener (`bootstrap --stats-address`), read on every scrape of
    /// `/metrics` and appended to the agent's own.
    #[arg(long, default_value = "127.0.0.1:19001")]
    envoy_stats_address: SocketAddr,
    /// How long `/drain` (the pod's preStop hooks) keeps Envoy draining before it lets the pod
    /// stop; Envoy's own `--drain-time-s` should be the same.
    #[arg(long, default_value_t = 15)]
    drain_seconds: u64,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(clap::Args)]
struct ValidateArgs {
    dir: PathBuf,
    /// As `run --ambassador-id`: only resources whose `ambassador_id` lists it are judged.
    #[arg(long, env = "AMBASSADOR_ID", default_value = "default")]
    ambassador_id: String,
    /// As `run --namespace`: the gateway's namespace.
    #[arg(long, env = "LEGATE_NAMESPACE", default_value = "default")]
    namespace: String,
}

#[derive(clap::Args)]
struct BootstrapArgs {
    /// The agent's ADS server.
    #[arg(long, default_value = "127.0.0.1:18000")]
    ads_address: SocketAddr,
    /// Envoy's admin interface; must be loopback.
    #[arg(long, default_value = "127.0.0.1:19000")]
    admin_address: SocketAddr,
    /// Where Envoy serves `GET /stats/prometheus` (and nothing else) for the agent's `/metrics`;
    /// must be loopback.
    #[arg(long, default_value = "127.0.0.1:19001")]
    stats_address: SocketAddr,
    /// The node id Envoy presents to the ADS server.
    #[arg(long, env = "POD_NAME", default_value = "legate-gateway")]
    node_id: String,
    /// State-of-the-world ADS instead of delta (incremental) ADS.
    #[arg(long)]
    sotw: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Validate(args) => validate(&args),
        Command::Convert { files } => {
            let out = legate_agent::convert::convert_files(&files);
            print!("{}", out.yaml);
            for e in &out.errors {
                eprintln!("error: {e}");
            }
            if out.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Bootstrap(args) => print_bootstrap(args),
        Command::Run(args) => {
            telemetry::init(args.common.log_format);
            match serve(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn print_bootstrap(args: BootstrapArgs) -> ExitCode {
    let mut params = BootstrapParams::new(args.ads_address, args.admin_address, args.node_id);
    params.stats_address = Some(args.stats_address);
    if args.sotw {
        params.ads_api = AdsApi::Grpc;
    }
    if let Err(e) = params.check() {
        eprintln!("legate-agent bootstrap: {e}");
        return ExitCode::from(2);
    }
    print!("{}", render_yaml(&bootstrap(&params)));
    ExitCode::SUCCESS
}

fn validate(args: &ValidateArgs) -> ExitCode {
    let load = match load_dir(&args.dir) {
        Ok(load) => load,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    for warning in &load.loaded.warnings {
        println!("warning: {warning}");
    }
    let settings = Settings {
        ambassador_id: args.ambassador_id.clone(),
        namespace: args.namespace.clone(),
        ..Settings::default()
    };
    // The IR `run` would build: what it refuses, what it serves without some fields, and what
    // it accepts but does not serve (no Host admits a Mapping, ...), with the same messages.
    let ir = legate_agent::ir::build(&load.loaded.resources, &settings);
    let (not_applied, not_served): (Vec<_>, Vec<_>) = ir
        .unreachable
        .iter()
        .partition(|n| n.reason == Reason::NotSupported);
    for note in not_applied {
        println!("warning: {}: {}", note.object, note.message);
    }
    // What `run` would refuse after loading (a regex Envoy refuses, a route conflict) is as
    // much an error as what the loader refused.
    let refused: std::collections::BTreeSet<_> = ir.rejections.iter().map(|r| &r.object).collect();
    let unserved: std::collections::BTreeSet<_> = not_served
        .iter()
        .map(|n| &n.object)
        .filter(|o| !refused.contains(o))
        .collect();
    let mut accepted = 0;
    for resource in &load.loaded.resources {
        let object = resource.object_ref();
        if !refused.contains(&object) && !unserved.contains(&object) {
            accepted += 1;
            println!("ok: {object}");
        }
    }
    for e in &load.file_errors {
        println!("error: {e}");
    }
    for e in &load.loaded.errors {
        println!("error: {e}");
    }
    for r in &ir.rejections {
        println!("error: {} ({}): {}", r.object, r.reason, r.message);
    }
    for n in not_served.iter().filter(|n| unserved.contains(&n.object)) {
        println!("not served: {} ({}): {}", n.object, n.reason, n.message);
    }
    let rejected = load.file_errors.len() + load.loaded.errors.len() + refused.len();
    println!(
        "{accepted} accepted, {rejected} rejected, {} not served",
        unserved.len()
    );
    if rejected == 0 && unserved.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn serve(args: RunArgs) -> anyhow::Result<()> {
    // Envoy reaches its agent on the pod's loopback; nothing else may configure it.
    if !args.ads_address.ip().is_loopback() {
        anyhow::bail!(
            "--ads-address {}: the ADS server listens on loopback only",
            args.ads_address
        );
    }
    let debounce = Duration::from_millis(args.debounce_ms);
    let replica_name = args.replica.clone();
    let mut guard = drain::Guard::Loopback;
    let described = match (&args.config_dir, &args.installation) {
        (Some(dir), _) => format!("directory {}", dir.display()),
        (None, Some(installation)) => format!("installation {installation}"),
        (None, None) => String::new(),
    };
    let source = match (args.config_dir, args.installation) {
        (Some(dir), _) => SourceOptions::Directory { dir, debounce },
        (None, Some(installation)) => {
            let Some((namespace, name)) = installation
                .split_once('/')
                .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
            else {
                anyhow::bail!(
                    "--installation {installation:?}: expected NAMESPACE/NAME of a GatewayInstallation"
                );
            };
            let client = kube::Client::try_default().await.map_err(|e| {
                anyhow::anyhow!("cannot reach Kubernetes (in-cluster config or KUBECONFIG): {e}")
            })?;
            // The Pod this agent runs in: POD_NAME, in its installation's namespace.
            guard = drain::Guard::PodDeleted {
                pods: kube::Api::namespaced(client.clone(), namespace),
                name: args.replica.clone(),
            };
            SourceOptions::Kubernetes {
                client,
                options: kubernetes::Options {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    debounce,
                    max_delay: Duration::from_millis(args.max_delay_ms),
                },
                replica: args.replica,
            }
        }
        (None, None) => anyhow::bail!(
            "pass --installation NAMESPACE/NAME (or LEGATE_INSTALLATION) to watch Kubernetes, \
             or --config-dir DIR to serve a directory of YAML"
        ),
    };
    let mut registry = Registry::with_prefix("legate_agent");
    let options = Options {
        source,
        ads_address: args.ads_address,
        settings: Settings {
            ambassador_id: args.ambassador_id.clone(),
            namespace: args.namespace,
            ..Settings::default()
        },
    };
    let agent = Agent::new(options, &mut registry)?;
    let diagnostics = legate_agent::diag::serve::Diagnostics {
        built: agent.built(),
        acks: agent.acks(),
        gateway: legate_agent::diag::Gateway {
            source: described,
            ambassador_id: args.ambassador_id,
            replica: replica_name,
        },
        envoy_admin: args.envoy_admin_address,
        http: reqwest::Client::new(),
    };
    let readiness = Readiness::new("no Envoy has acknowledged a configuration yet");
    let drain = drain::Drain::new(
        args.envoy_admin_address,
        Duration::from_secs(args.drain_seconds),
        guard,
    );
    let envoy_stats = legate_agent::envoy_stats::appendix(args.envoy_stats_address, &mut registry);
    let admin = AdminServer::bind(args.common.metrics_address, registry, readiness.clone())
        .await?
        .append_metrics(envoy_stats)
        .merge(drain.router())
        .merge(diagnostics.router());
    info!(address = %admin.local_addr()?, "serving /metrics, /healthz, /readyz, /drain, /diag/");
    let admin = tokio::spawn(admin.serve(shutdown_signal()));
    agent.run(readiness, shutdown_signal()).await?;
    admin.await??;
    info!("stopped");
    Ok(())
}
