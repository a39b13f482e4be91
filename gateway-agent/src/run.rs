//! `legate-agent run`: the I/O edge that wires the pipeline together. A source (a directory, or
//! Kubernetes) publishes snapshots; each one is built into a configuration (pure), published to
//! the ADS server, and what Envoy says back drives `/readyz` and, on Kubernetes, the status
//! written back to the resources. When Envoy refuses a configuration anyway, the
//! [`Quarantine`] finds the resources responsible and the loop serves the rest.

use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use kube::Client;
use legate_common::Readiness;
use legate_crds::{ObjectRef, Resource};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tokio::sync::{broadcast::error::RecvError, watch};
use tracing::{info, warn};

use crate::{
    ir::{self, Ir, Reason, ServiceNamespaces, Settings},
    pipeline::{Fault, Translator},
    quarantine::{Quarantine, Step},
    source::{DirectorySource, SourceSnapshot, kubernetes},
    status::{self, Built},
    xds::{AckStatus, Xds},
};

pub struct Options {
    pub source: SourceOptions,
    pub ads_address: SocketAddr,
    /// On Kubernetes the installation's `ambassador_id` replaces this one's.
    pub settings: Settings,
}

/// Where resources come from.
pub enum SourceOptions {
    /// YAML files under a directory; `debounce` paces changes (see [`DirectorySource::spawn`]).
    Directory { dir: PathBuf, debounce: Duration },
    /// The API server, for one installation; status is written back as `replica`.
    Kubernetes {
        client: Client,
        options: kubernetes::Options,
        replica: String,
    },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    kind: String,
    /// `served`, `partially_applied` (served, some fields not implemented), `not_served`
    /// (accepted, but no Listener or Host takes it, its Service is missing, ...) or `rejected`.
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// What the agent reports about its inputs and builds.
struct Metrics {
    resources: Family<ResourceLabels, Gauge>,
    rejections: Family<ReasonLabel, Gauge>,
    rejected: Gauge,
    unreachable: Gauge,
    not_applied: Gauge,
    build_seconds: Histogram,
    quarantined: Gauge,
    trials: Counter,
}

impl Metrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self {
            resources: Family::default(),
            rejections: Family::default(),
            rejected: Gauge::default(),
            unreachable: Gauge::default(),
            not_applied: Gauge::default(),
            build_seconds: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            quarantined: Gauge::default(),
            trials: Counter::default(),
        };
        registry.register(
            "resources",
            "Resources the agent holds for this gateway, by kind and verdict",
            m.resources.clone(),
        );
        registry.register(
            "rejections",
            "Rejections standing now, by reason (a resource refused for two fields counts twice)",
            m.rejections.clone(),
        );
        registry.register(
            "rejected",
            "Documents, files and resources rejected, each with a reason in the log",
            m.rejected.clone(),
        );
        registry.register(
            "unreachable",
            "Accepted resources that serve no traffic (no Listener or Host admits them)",
            m.unreachable.clone(),
        );
        registry.register(
            "not_applied",
            "Served resources with fields or a kind not implemented yet, each named in the log and status",
            m.not_applied.clone(),
        );
        registry.register(
            "build_seconds",
            "Time to turn resources into Envoy configuration",
            m.build_seconds.clone(),
        );
        registry.register(
            "quarantined",
            "Resources Envoy refused (NACK), set aside until they change, each named in the log and status",
            m.quarantined.clone(),
        );
        registry.register(
            "quarantine_trials",
            "Trial configurations published to find the resources Envoy refuses",
            m.trials.clone(),
        );
        m
    }
}

/// An agent whose metrics are registered and whose source is started, ready to run.
pub struct Agent {
    ads_address: SocketAddr,
    settings: Settings,
    metrics: Metrics,
    xds: Xds,
    snapshots: tokio::sync::watch::Receiver<Arc<SourceSnapshot>>,
    /// Keeps the source running; dropping it stops the source.
    _source: Box<dyn Send>,
    /// Kubernetes only: who writes status, and its metrics.
    status: Option<(Client, status::Identity, status::Metrics)>,
    /// What the gateway serves, as built: the status writer's input.
    built: watch::Sender<Option<Built>>,
    fault: Option<Fault>,
}

impl Agent {
    /// Registers the agent's metrics in `registry` and starts the source. The source loads (a
    /// directory is read, Kubernetes listed) while [`Self::run`] already serves ADS: Envoy
    /// connects and waits, and gets nothing before the first complete snapshot.
    pub fn new(options: Options, registry: &mut Registry) -> anyhow::Result<Self> {
        let metrics = Metrics::register(registry);
        let xds = Xds::new(registry);
        let (snapshots, source, status): (_, Box<dyn Send>, _) = match options.source {
            SourceOptions::Directory { dir, debounce } => {
                info!(dir = %dir.display(), "serving routes from a directory");
                let (snapshots, guard) = DirectorySource::spawn(dir, debounce)?;
                (snapshots, Box::new(guard), None)
            }
            SourceOptions::Kubernetes {
                client,
                options,
                replica,
            } => {
                let identity = status::Identity {
                    namespace: options.namespace.clone(),
                    name: options.name.clone(),
                    replica,
                };
                let (snapshots, guard) =
                    kubernetes::KubernetesSource::spawn(client.clone(), options);
                let status_metrics = status::Metrics::register(registry);
                (
                    snapshots,
                    Box::new(guard),
                    Some((client, identity, status_metrics)),
                )
            }
        };
        Ok(Self {
            ads_address: options.ads_address,
            settings: options.settings,
            metrics,
            xds,
            snapshots,
            _source: source,
            status,
            built: watch::Sender::new(None),
            fault: None,
        })
    }

    /// Every configuration the gateway serves as it is built: the IR (rejections included) and
    /// the version published for it. Trials published to find what Envoy refuses are not.
    pub fn built(&self) -> watch::Receiver<Option<Built>> {
        self.built.subscribe()
    }

    /// What Envoy says of the configurations published: acknowledged, refused, connected.
    pub fn acks(&self) -> watch::Receiver<AckStatus> {
        self.xds.status()
    }

    /// Test-only: see [`Translator::inject_fault`].
    #[doc(hidden)]
    pub fn inject_fault(&mut self, fault: Fault) {
        self.fault = Some(fault);
    }

    /// Serves ADS and follows the source until `shutdown` resolves.
    pub async fn run(
        mut self,
        readiness: Readiness,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        info!(ads = %self.ads_address, "serving ADS");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(
            self.xds
                .clone()
                .serve(self.ads_address, wait(stopped.clone())),
        );
        tokio::spawn(report_acks(
            self.xds.status(),
            readiness,
            wait(stopped.clone()),
        ));
        let status_writer = self.status.take().map(|(client, identity, metrics)| {
            tokio::spawn(status::run(
                client,
                identity,
                self.built.subscribe(),
                self.xds.status(),
                metrics,
            ))
        });

        let mut translator = Translator::new(self.settings.clone());
        if let Some(fault) = &self.fault {
            translator.inject_fault(fault.clone());
        }
        let mut state = BuildState {
            logged: BTreeSet::new(),
            translator,
            last: None,
            quarantine: Quarantine::default(),
            served: None,
        };
        let mut refusals = self.xds.refusals();
        let mut acks = self.xds.status();
        tokio::pin!(shutdown);
        let mut first = true;
        loop {
            let event = if first {
                first = false;
                Event::Snapshot
            } else {
                tokio::select! {
                    () = &mut shutdown => break,
                    changed = self.snapshots.changed() => {
                        if changed.is_err() {
                            warn!("the source stopped");
                            break;
                        }
                        Event::Snapshot
                    }
                    nack = refusals.recv() => match nack {
                        Ok(nack) => Event::Refused(nack.config_version, nack.message),
                        // Missed NACKs were of configurations no longer awaited, or the one
                        // awaited is still refused: Envoy answers it again.
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => break,
                    },
                    changed = acks.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        match acks.borrow_and_update().acked_version.clone() {
                            Some(version) => Event::Acked(version),
                            None => continue,
                        }
                    }
                }
            };
            let step = match event {
                Event::Snapshot => {
                    let snapshot = self.snapshots.borrow_and_update().clone();
                    // Generation 0: the source has nothing complete yet (a directory still
                    // loading, Kubernetes before every watch has listed). Envoy, connected
                    // already, gets nothing rather than a partial configuration.
                    if snapshot.generation == 0 {
                        continue;
                    }
                    self.apply(&mut state, &snapshot)
                }
                Event::Acked(version) => state.quarantine.acked(&version),
                Event::Refused(version, message) => state.quarantine.refused(&version, &message),
            };
            self.follow(&mut state, step);
        }
        drop(self.built);
        let _ = stop.send(true);
        if let Some(writer) = status_writer {
            let _ = writer.await;
        }
        server.await??;
        Ok(())
    }

    /// Builds a configuration from one snapshot and publishes it; a snapshot that differs from
    /// the last only in what the status writer reads (live statuses) is not built again.
    fn apply(&self, state: &mut BuildState, snapshot: &Arc<SourceSnapshot>) -> Step {
        let mut settings = state.translator.settings().clone();
        if let Some(gateway) = &snapshot.gateway {
            // The installation decides: its ambassador_id, and the namespaces whose Services
            // the source holds (a Service missing there is known to be missing).
            settings.ambassador_id.clone_from(&gateway.ambassador_id);
            settings.service_namespaces = Some(match &gateway.admitted {
                kubernetes::Admitted::All => ServiceNamespaces::All,
                kubernetes::Admitted::Namespaces(set) => ServiceNamespaces::Only(set.clone()),
            });
        }
        if &settings != state.translator.settings() {
            info!(ambassador_id = %settings.ambassador_id, service_namespaces = ?settings.service_namespaces, "gateway settings changed: building from scratch");
            state.translator = Translator::new(settings);
            if let Some(fault) = &self.fault {
                state.translator.inject_fault(fault.clone());
            }
            state.last = None;
        }
        if let Some((last, ir)) = &state.last
            && same_inputs(last, snapshot)
        {
            // Live statuses changed: the status writer sees them with the same verdicts.
            let ir = ir.clone();
            state.last = Some((snapshot.clone(), ir.clone()));
            self.built.send_replace(Some(Built {
                snapshot: snapshot.clone(),
                ir,
                version: state.served.clone(),
            }));
            return Step::Wait;
        }
        let inputs = state.quarantine.admit(&snapshot.resources);
        self.serve(state, snapshot, &inputs)
    }

    /// Builds the configuration the gateway serves from `inputs` (the snapshot's resources
    /// minus those Envoy refused, which are rejected), publishes it and hands it to the status
    /// writer.
    fn serve(
        &self,
        state: &mut BuildState,
        snapshot: &Arc<SourceSnapshot>,
        inputs: &[Arc<Resource>],
    ) -> Step {
        let started = Instant::now();
        let mut config = state.translator.build(inputs);
        if !state.quarantine.is_empty() {
            config.ir.rejections.extend(state.quarantine.rejections());
            config.ir.rejections.sort();
        }
        self.metrics
            .build_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.quarantined.set(state.quarantine.len() as i64);
        let ambassador_id = &state.translator.settings().ambassador_id;
        report(
            snapshot,
            &config.ir,
            ambassador_id,
            &self.metrics,
            &mut state.logged,
        );
        info!(
            generation = snapshot.generation,
            resources = snapshot.resources.len(),
            listeners = config.ir.listeners.len(),
            clusters = config.ir.clusters.len(),
            build_ms = started.elapsed().as_millis() as u64,
            "configuration built"
        );
        self.xds.publish_since(config.resources, started);
        let version = self.xds.published_version();
        let ir = Arc::new(config.ir);
        state.last = Some((snapshot.clone(), ir.clone()));
        state.served.clone_from(&version);
        self.built.send_replace(Some(Built {
            snapshot: snapshot.clone(),
            ir,
            version: version.clone(),
        }));
        self.published(state, version)
    }

    /// Publishes what the quarantine asks for (trials, then what the gateway serves) until it
    /// waits for Envoy.
    fn follow(&self, state: &mut BuildState, mut step: Step) {
        while let Step::Build(build) = step {
            if !build.trial {
                let Some((snapshot, _)) = state.last.clone() else {
                    return;
                };
                step = self.serve(state, &snapshot, &build.inputs);
                continue;
            }
            self.metrics.trials.inc();
            let config = state.translator.build(&build.inputs);
            self.xds.publish(config.resources);
            let version = self.xds.published_version();
            tracing::debug!(version, resources = build.inputs.len(), "trial published");
            step = self.published(state, version);
        }
    }

    fn published(&self, state: &mut BuildState, version: Option<String>) -> Step {
        let Some(version) = version else {
            return Step::Wait;
        };
        let acked = self.xds.status().borrow().acked_version.clone();
        state.quarantine.published(version, acked.as_deref())
    }
}

/// What the build loop reacts to.
enum Event {
    /// The source has a new snapshot.
    Snapshot,
    /// Envoy acknowledged this configuration version.
    Acked(String),
    /// Envoy refused this configuration version, saying this.
    Refused(String, String),
}

/// What the build loop keeps between snapshots.
struct BuildState {
    logged: BTreeSet<String>,
    /// Kept across snapshots: a change recomputes only what it touched.
    translator: Translator,
    /// The last snapshot built, and its IR.
    last: Option<(Arc<SourceSnapshot>, Arc<Ir>)>,
    /// What Envoy refused, and the search for it.
    quarantine: Quarantine,
    /// The version of the last configuration published to serve (not a trial).
    served: Option<String>,
}

/// The same resources (the very same shared objects) and the same rejections.
fn same_inputs(a: &SourceSnapshot, b: &SourceSnapshot) -> bool {
    a.resources.len() == b.resources.len()
        && a.resources
            .iter()
            .zip(&b.resources)
            .all(|(x, y)| Arc::ptr_eq(x, y))
        && a.rejected == b.rejected
}

async fn wait(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Logs each IR rejection once, not on every rebuild (the source logs its own), and updates
/// the gauges.
fn report(
    snapshot: &SourceSnapshot,
    ir: &Ir,
    ambassador_id: &str,
    metrics: &Metrics,
    logged: &mut BTreeSet<String>,
) {
    let mut now = BTreeSet::new();
    for r in &ir.rejections {
        now.insert(format!(
            "rejected: {} ({}): {}",
            r.object, r.reason, r.message
        ));
    }
    let mut not_applied = 0;
    for r in &ir.unreachable {
        // A note about fields or kinds not implemented yet is about a resource that serves.
        let what = if r.reason == Reason::NotSupported {
            not_applied += 1;
            "serving, but not applied"
        } else {
            "not serving"
        };
        now.insert(format!(
            "{what}: {} ({}): {}",
            r.object, r.reason, r.message
        ));
    }
    for line in now.difference(logged) {
        warn!("{line}");
    }
    *logged = now;

    // One verdict a resource, the worst that applies.
    let mut worst: HashMap<&ObjectRef, &'static str> = HashMap::new();
    let mut note = |object, verdict| {
        let v = worst.entry(object).or_insert(verdict);
        if rank(verdict) > rank(v) {
            *v = verdict;
        }
    };
    for r in &ir.unreachable {
        let verdict = if r.reason == Reason::NotSupported {
            "partially_applied"
        } else {
            "not_served"
        };
        note(&r.object, verdict);
    }
    for r in &ir.rejections {
        note(&r.object, "rejected");
    }
    metrics.resources.clear();
    for r in &snapshot.resources {
        if !ir::for_gateway(r, ambassador_id) {
            continue;
        }
        let object = r.object_ref();
        let verdict = worst.get(&object).copied().unwrap_or("served");
        metrics
            .resources
            .get_or_create(&ResourceLabels {
                kind: r.kind().to_owned(),
                verdict,
            })
            .inc();
    }
    // What the loader refused never became a resource.
    for r in &snapshot.rejected {
        // A file or document that names no object: its kind is not known.
        let kind = r.object.as_ref().map_or("Unknown", |o| o.kind.as_str());
        metrics
            .resources
            .get_or_create(&ResourceLabels {
                kind: kind.to_owned(),
                verdict: "rejected",
            })
            .inc();
    }
    metrics.rejections.clear();
    let reasons = ir.rejections.iter().map(|r| r.reason.as_str());
    let loader = snapshot.rejected.iter().map(|_| Reason::Invalid.as_str());
    for reason in reasons.chain(loader) {
        metrics
            .rejections
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
    metrics
        .rejected
        .set((snapshot.rejected.len() + ir.rejections.len()) as i64);
    metrics
        .unreachable
        .set((ir.unreachable.len() - not_applied) as i64);
    metrics.not_applied.set(not_applied as i64);
}

/// The order of severity of a resource's verdicts.
fn rank(verdict: &str) -> u8 {
    match verdict {
        "rejected" => 3,
        "not_served" => 2,
        "partially_applied" => 1,
        _ => 0,
    }
}

/// `/readyz` follows Envoy: ready once it has acknowledged a configuration; a refused one is
/// noted while the last good one keeps serving.
async fn report_acks(
    mut status: tokio::sync::watch::Receiver<AckStatus>,
    readiness: Readiness,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let s = status.borrow_and_update().clone();
        let refused = s.last_nack.as_ref().map(|n| {
            format!(
                "configuration {} ({}): {}",
                n.config_version, n.type_url, n.message
            )
        });
        match (&s.acked_version, &refused) {
            (None, None) => {
                readiness.set_not_ready("no Envoy has acknowledged a configuration yet")
            }
            (None, Some(n)) => {
                readiness.set_not_ready(format!("Envoy refused the configuration: {n}"))
            }
            (Some(v), None) => readiness.set_ready_noting(format!("serving configuration {v}")),
            (Some(v), Some(n)) => readiness.set_ready_noting(format!(
                "serving configuration {v}; Envoy refused a newer one: {n}"
            )),
        }
        tokio::select! {
            () = &mut stop => return,
            changed = status.changed() => if changed.is_err() { return },
        }
    }
}
