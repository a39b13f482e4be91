//! `legate-agent run`: the I/O edge that wires the pipeline together. A source publishes
//! snapshots; each one is built into a configuration (pure), published to the ADS server, and
//! what Envoy says back drives `/readyz`.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use legate_common::Readiness;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tracing::{info, warn};

use crate::{
    ir::Settings,
    pipeline::{Configuration, Translator},
    source::{DirectorySource, SourceSnapshot},
    xds::{AckStatus, Xds},
};

pub struct Options {
    pub config_dir: PathBuf,
    pub ads_address: SocketAddr,
    pub settings: Settings,
    /// Quiet period after a file change before rebuilding.
    pub debounce: Duration,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// What the agent reports about its inputs and builds.
struct Metrics {
    resources: Family<KindLabel, Gauge>,
    rejected: Gauge,
    unreachable: Gauge,
    build_seconds: Histogram,
}

impl Metrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self {
            resources: Family::default(),
            rejected: Gauge::default(),
            unreachable: Gauge::default(),
            build_seconds: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        };
        registry.register(
            "resources",
            "Valid resources the agent holds, by kind",
            m.resources.clone(),
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
            "build_seconds",
            "Time to turn resources into Envoy configuration",
            m.build_seconds.clone(),
        );
        m
    }
}

/// An agent whose metrics are registered and whose source is loaded, ready to run.
pub struct Agent {
    options: Options,
    metrics: Metrics,
    xds: Xds,
    snapshots: tokio::sync::watch::Receiver<Arc<SourceSnapshot>>,
    _source: crate::source::SourceGuard,
}

impl Agent {
    /// Registers the agent's metrics in `registry` and loads the source once.
    pub fn new(options: Options, registry: &mut Registry) -> anyhow::Result<Self> {
        let metrics = Metrics::register(registry);
        let xds = Xds::new(registry);
        let (snapshots, source) =
            DirectorySource::spawn(options.config_dir.clone(), options.debounce)?;
        Ok(Self {
            options,
            metrics,
            xds,
            snapshots,
            _source: source,
        })
    }

    /// Serves ADS and follows the source until `shutdown` resolves.
    pub async fn run(
        mut self,
        readiness: Readiness,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let options = &self.options;
        info!(dir = %options.config_dir.display(), ads = %options.ads_address, ambassador_id = %options.settings.ambassador_id, "serving routes from a directory");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(
            self.xds
                .clone()
                .serve(options.ads_address, wait(stopped.clone())),
        );
        tokio::spawn(report_acks(
            self.xds.status(),
            readiness,
            wait(stopped.clone()),
        ));

        let mut logged = BTreeSet::new();
        // Kept across snapshots: a change recomputes only what it touched.
        let mut translator = Translator::new(options.settings.clone());
        let snapshot = self.snapshots.borrow_and_update().clone();
        self.apply(&mut translator, &snapshot, &mut logged);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                changed = self.snapshots.changed() => {
                    if changed.is_err() {
                        warn!("the directory source stopped");
                        break;
                    }
                    let snapshot = self.snapshots.borrow_and_update().clone();
                    self.apply(&mut translator, &snapshot, &mut logged);
                }
            }
        }
        let _ = stop.send(true);
        server.await??;
        Ok(())
    }

    /// Builds a configuration from one snapshot and publishes it.
    fn apply(
        &self,
        translator: &mut Translator,
        snapshot: &SourceSnapshot,
        logged: &mut BTreeSet<String>,
    ) {
        let started = Instant::now();
        let config = translator.build(&snapshot.resources);
        self.metrics
            .build_seconds
            .observe(started.elapsed().as_secs_f64());
        report(snapshot, &config, &self.metrics, logged);
        info!(
            generation = snapshot.generation,
            resources = snapshot.resources.len(),
            listeners = config.ir.listeners.len(),
            clusters = config.ir.clusters.len(),
            build_ms = started.elapsed().as_millis() as u64,
            "configuration built"
        );
        self.xds.publish(config.resources);
    }
}

async fn wait(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Logs each IR rejection once, not on every rebuild (the source logs its own), and updates
/// the gauges.
fn report(
    snapshot: &SourceSnapshot,
    config: &Configuration,
    metrics: &Metrics,
    logged: &mut BTreeSet<String>,
) {
    let mut now = BTreeSet::new();
    for r in &config.ir.rejections {
        now.insert(format!(
            "rejected: {} ({}): {}",
            r.object, r.reason, r.message
        ));
    }
    for r in &config.ir.unreachable {
        now.insert(format!(
            "not serving: {} ({}): {}",
            r.object, r.reason, r.message
        ));
    }
    for line in now.difference(logged) {
        warn!("{line}");
    }
    *logged = now;

    metrics.resources.clear();
    for r in &snapshot.resources {
        metrics
            .resources
            .get_or_create(&KindLabel {
                kind: r.kind().to_owned(),
            })
            .inc();
    }
    metrics
        .rejected
        .set((snapshot.rejected.len() + config.ir.rejections.len()) as i64);
    metrics.unreachable.set(config.ir.unreachable.len() as i64);
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
