//! Kubernetes as a source: the gateway's own `GatewayInstallation` says which namespaces it
//! admits and which `ambassador_id` it answers to; every admitted namespace is watched for the
//! route and policy kinds, TLS Secrets, Services and their endpoints; what the watches deliver is
//! kept in an [`Index`] and published as [`SourceSnapshot`]s.
//!
//! - Nothing is published before every watch has listed once, so Envoy never sees a half-empty
//!   configuration; a namespace admitted later joins once all its watches have listed; a relist (a watch that lost its place, an API server that came
//!   back) replaces a stream's objects only when its list is complete.
//! - A change after a quiet period is published at once (with the events already queued behind
//!   it); changes that keep coming are coalesced: published once the watches have been quiet
//!   for the debounce period, and at the latest `max_delay` after the first of them
//!   ([`Pacer`]). The first complete snapshot is published as soon as the last watch has listed.
//! - Watches are namespaced, one per admitted namespace and kind (with `Same` or `Selector` the
//!   gateway's RBAC grants nothing cluster-wide), or cluster-wide with `All`. Namespaces that stop
//!   being admitted are dropped with everything they held.

pub mod admission;
mod index;
pub mod kinds;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{DynamicObject, PartialObjectMeta},
    runtime::{
        WatchStreamExt,
        watcher::{self, Event, watcher},
    },
};
use legate_crds::GatewayInstallation;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::{debug, info, warn};

pub use admission::{Admitted, Installation};
pub use index::{Change, Index, ORIGIN, StreamKey};
use kinds::{EndpointsApi, WatchedKind};

use super::{Gateway, Live, SourceSnapshot, pacing::Pacer};

/// Which installation, and how to pace snapshots.
#[derive(Clone, Debug)]
pub struct Options {
    pub namespace: String,
    pub name: String,
    /// A change within this long of the one before waits for this long of quiet before it is
    /// published (a change after quiet is published at once).
    pub debounce: Duration,
    /// A burst is published at the latest this long after its first change waiting.
    pub max_delay: Duration,
}

/// Watches Kubernetes for one installation; see the module doc.
pub struct KubernetesSource;

/// Stops the source's tasks when dropped.
pub struct KubernetesGuard(JoinHandle<()>);

impl Drop for KubernetesGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl KubernetesSource {
    /// Starts watching. The receiver holds an empty snapshot with generation 0 until the first
    /// complete one is published.
    pub fn spawn(
        client: Client,
        options: Options,
    ) -> (watch::Receiver<Arc<SourceSnapshot>>, KubernetesGuard) {
        let (tx, rx) = watch::channel(Arc::new(SourceSnapshot::default()));
        let task = tokio::spawn(async move {
            let endpoints = EndpointsApi::discover(&client).await;
            Driver::new(client, options, kinds::watched(endpoints), tx)
                .run()
                .await;
        });
        (rx, KubernetesGuard(task))
    }
}

type ObjectEvent = (StreamKey, Event<DynamicObject>);

/// The source's state, owned by its one task.
struct Driver {
    client: Client,
    options: Options,
    kinds: Vec<WatchedKind>,
    out: watch::Sender<Arc<SourceSnapshot>>,
    installation: Option<Installation>,
    /// The installation as the API server holds it now (its status is partly the agents').
    installation_live: Option<Arc<Live>>,
    /// Namespaces' labels, watched only while the installation selects namespaces by label.
    namespaces: Namespaces,
    index: Index,
    watches: HashMap<StreamKey, AbortOnDrop>,
    events: mpsc::Sender<ObjectEvent>,
    inbox: mpsc::Receiver<ObjectEvent>,
    /// When what changed is published.
    pacer: Pacer<Instant>,
    generation: u64,
}

type NamespaceEvents =
    BoxStream<'static, Result<Event<PartialObjectMeta<Namespace>>, watcher::Error>>;

#[derive(Default)]
struct Namespaces {
    stream: Option<NamespaceEvents>,
    labels: admission::NamespaceLabels,
    relist: Option<admission::NamespaceLabels>,
    synced: bool,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Driver {
    fn new(
        client: Client,
        options: Options,
        kinds: Vec<WatchedKind>,
        out: watch::Sender<Arc<SourceSnapshot>>,
    ) -> Self {
        // Enough for a relist of a large namespace to flow without stalling the watches.
        let (events, inbox) = mpsc::channel(4096);
        Self {
            client,
            pacer: Pacer::new(options.debounce, options.max_delay),
            options,
            kinds,
            out,
            installation: None,
            installation_live: None,
            namespaces: Namespaces::default(),
            index: Index::default(),
            watches: HashMap::new(),
            events,
            inbox,
            generation: 0,
        }
    }

    async fn run(mut self) {
        let (ns, name) = (&self.options.namespace, &self.options.name);
        info!(installation = %format!("{ns}/{name}"), "watching Kubernetes for this installation");
        let api: Api<GatewayInstallation> = Api::namespaced(self.client.clone(), ns);
        let mut installation = watcher(
            api,
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .default_backoff()
        .boxed();
        let mut pending_installation: Option<Option<GatewayInstallation>> = None;
        loop {
            let due = self.pacer.due();
            tokio::select! {
                event = installation.next() => match event {
                    Some(Ok(event)) => self.on_installation(event, &mut pending_installation),
                    Some(Err(e)) => warn!(error = %e, "watching the GatewayInstallation"),
                    None => return,
                },
                Some(event) = next_namespace(&mut self.namespaces.stream) => match event {
                    Ok(event) => self.on_namespace(event),
                    Err(e) => warn!(error = %e, "watching Namespaces"),
                },
                Some((key, event)) = self.inbox.recv() => {
                    self.apply(&key, event);
                    if self.generation == 0 && self.index.synced() {
                        // The last watch has listed: Envoy is waiting for its first
                        // configuration, and nothing is worth waiting for.
                        self.drain_and_publish();
                    }
                }
                () = sleep_until(due), if due.is_some() => self.drain_and_publish(),
            }
        }
    }

    /// Events of the one installation this gateway belongs to.
    fn on_installation(
        &mut self,
        event: Event<GatewayInstallation>,
        relist: &mut Option<Option<GatewayInstallation>>,
    ) {
        let (ns, name) = (self.options.namespace.clone(), self.options.name.clone());
        let now = match event {
            Event::Apply(gwi) => Some(gwi),
            Event::Delete(_) => {
                warn!(installation = %format!("{ns}/{name}"), "the GatewayInstallation was deleted; serving the last configuration");
                return;
            }
            Event::Init => {
                *relist = Some(None);
                return;
            }
            Event::InitApply(gwi) => {
                *relist = Some(Some(gwi));
                return;
            }
            Event::InitDone => match relist.take().flatten() {
                Some(gwi) => Some(gwi),
                None => {
                    warn!(installation = %format!("{ns}/{name}"), "no such GatewayInstallation: waiting for it");
                    None
                }
            },
        };
        let Some(gwi) = now else { return };
        let live = Arc::new(Live {
            uid: gwi.metadata.uid.clone(),
            resource_version: gwi.metadata.resource_version.clone(),
            generation: gwi.metadata.generation,
            status: gwi
                .status
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok()),
        });
        if self.installation_live.as_ref() != Some(&live) {
            // Its status (the gateway's own writes, after every configuration Envoy takes)
            // matters to the status writer only.
            self.installation_live = Some(live);
            self.pacer.noted(Instant::now());
        }
        let installation = Installation::new(&ns, &name, &gwi);
        if self.installation.as_ref() == Some(&installation) {
            return;
        }
        info!(ambassador_id = %installation.ambassador_id, routes = ?installation.routes, "installation settings");
        self.installation = Some(installation);
        self.reconcile_watches();
        self.changed();
    }

    fn on_namespace(&mut self, event: Event<PartialObjectMeta<Namespace>>) {
        let ns = &mut self.namespaces;
        let labels = |m: &PartialObjectMeta<Namespace>| {
            (
                m.metadata.name.clone().unwrap_or_default(),
                m.metadata.labels.clone().unwrap_or_default(),
            )
        };
        match event {
            Event::Init => ns.relist = Some(BTreeMap::new()),
            Event::InitApply(m) => {
                let (name, l) = labels(&m);
                ns.relist.get_or_insert_default().insert(name, l);
            }
            Event::InitDone => {
                ns.labels = ns.relist.take().unwrap_or_default();
                ns.synced = true;
            }
            Event::Apply(m) => {
                let (name, l) = labels(&m);
                ns.labels.insert(name, l);
            }
            Event::Delete(m) => {
                ns.labels.remove(&labels(&m).0);
            }
        }
        if ns.synced {
            self.reconcile_watches();
        }
    }

    /// The namespaces admitted now, if known.
    fn admitted(&self) -> Option<Admitted> {
        let installation = self.installation.as_ref()?;
        if installation.selects_namespaces() && !self.namespaces.synced {
            return None;
        }
        Some(installation.admitted(&self.namespaces.labels))
    }

    /// Starts the watches the admitted namespaces need and stops the others.
    fn reconcile_watches(&mut self) {
        let selects = self
            .installation
            .as_ref()
            .is_some_and(Installation::selects_namespaces);
        if selects && self.namespaces.stream.is_none() {
            let api: Api<PartialObjectMeta<Namespace>> = Api::all(self.client.clone());
            self.namespaces.stream = Some(
                watcher(api, watcher::Config::default())
                    .default_backoff()
                    .boxed(),
            );
        } else if !selects && self.namespaces.stream.is_some() {
            self.namespaces = Namespaces::default();
        }
        let Some(admitted) = self.admitted() else {
            return;
        };
        let wanted: Vec<(StreamKey, WatchedKind)> = self
            .kinds
            .iter()
            .flat_map(|k| {
                let scopes: Vec<Option<String>> = match &admitted {
                    Admitted::All => vec![None],
                    Admitted::Namespaces(set) => set.iter().cloned().map(Some).collect(),
                };
                scopes.into_iter().map(move |namespace| {
                    (
                        StreamKey {
                            kind: k.kind,
                            namespace,
                            selector: k.field_selector,
                        },
                        k.clone(),
                    )
                })
            })
            .collect();
        let stale: Vec<StreamKey> = self
            .watches
            .keys()
            .filter(|key| !wanted.iter().any(|(w, _)| w == *key))
            .cloned()
            .collect();
        for key in stale {
            debug!(kind = key.kind, namespace = ?key.namespace, "stopping a watch");
            self.watches.remove(&key);
            self.index.remove_stream(&key);
            self.changed();
        }
        for (key, kind) in wanted {
            if self.watches.contains_key(&key) {
                continue;
            }
            debug!(kind = key.kind, namespace = ?key.namespace, "starting a watch");
            self.index.add_stream(key.clone());
            let task = spawn_watch(self.client.clone(), &kind, key.clone(), self.events.clone());
            self.watches.insert(key, AbortOnDrop(task));
        }
    }

    fn apply(&mut self, key: &StreamKey, event: Event<DynamicObject>) {
        match self.index.apply(key, event) {
            Change::Content => self.changed(),
            Change::Live => self.pacer.noted(Instant::now()),
            Change::None => {}
        }
    }

    /// Something a snapshot holds changed: see [`Pacer`] for when it is published.
    fn changed(&mut self) {
        self.pacer.changed(Instant::now());
    }

    /// Publishes with every event already queued applied: a change that arrives with others
    /// behind it is published with them, not before them.
    fn drain_and_publish(&mut self) {
        while let Ok((key, event)) = self.inbox.try_recv() {
            self.apply(&key, event);
        }
        self.publish();
    }

    fn publish(&mut self) {
        self.pacer.built();
        let (Some(installation), Some(admitted)) = (self.installation.as_ref(), self.admitted())
        else {
            return;
        };
        if self.generation == 0 && !self.index.synced() {
            // Nothing before every watch has listed once. The last to list sends its
            // `InitDone`, and with it a change: publish then. Later, a namespace still listing
            // is left out of the snapshot on its own (`Index::snapshot`).
            return;
        }
        let mut snapshot = self.index.snapshot();
        if let Some(live) = &self.installation_live {
            let object = legate_crds::ObjectRef {
                kind: "GatewayInstallation".to_owned(),
                namespace: Some(installation.namespace.clone()),
                name: installation.name.clone(),
            };
            Arc::make_mut(&mut snapshot.live).insert(object, live.clone());
        }
        snapshot.gateway = Some(Arc::new(Gateway {
            installation: installation.key(),
            ambassador_id: installation.ambassador_id.clone(),
            admitted,
        }));
        if self.out.borrow().same_content(&snapshot) {
            return;
        }
        self.generation += 1;
        snapshot.generation = self.generation;
        info!(
            generation = snapshot.generation,
            resources = snapshot.resources.len(),
            rejected = snapshot.rejected.len(),
            "snapshot of the watched resources"
        );
        self.out.send_replace(Arc::new(snapshot));
    }
}

async fn next_namespace(
    stream: &mut Option<NamespaceEvents>,
) -> Option<Result<Event<PartialObjectMeta<Namespace>>, watcher::Error>> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One watch, forwarding its events until the driver drops it. Errors (the API server gone,
/// RBAC refusing) are logged and retried with kube-runtime's backoff; the objects already held
/// keep serving meanwhile.
///
/// The first list is served from the API server's watch cache (`resourceVersion=0`, as
/// client-go's informers list): one answer from memory instead of pages read from etcd with a
/// quorum each (10,000 Mappings: 20), which is what a rollout of many gateway pods at once
/// costs the control plane. (On kube-local, 10,000 Mappings, it did not change the time to the
/// first configuration measurably.) A relist (the watch lost its place) reads the most recent
/// state instead: a cache that lags, behind another API server of an HA control plane, never
/// takes a running gateway back in time.
fn spawn_watch(
    client: Client,
    kind: &WatchedKind,
    key: StreamKey,
    events: mpsc::Sender<ObjectEvent>,
) -> JoinHandle<()> {
    let api: Api<DynamicObject> = match &key.namespace {
        Some(ns) => Api::namespaced_with(client, ns, &kind.resource),
        None => Api::all_with(client, &kind.resource),
    };
    let mut config = watcher::Config::default();
    if let Some(fields) = kind.field_selector {
        config = config.fields(fields);
    }
    if let Some(labels) = kind.label_selector {
        config = config.labels(labels);
    }
    tokio::spawn(async move {
        let mut stream = watcher(api.clone(), config.clone().any_semantic())
            .default_backoff()
            .boxed();
        let (mut from_cache, mut listed) = (true, false);
        while let Some(event) = stream.next().await {
            match event {
                // A relist: from here on, of the most recent state (the new watcher's own
                // `Init` comes first).
                Ok(Event::Init) if from_cache && listed => {
                    stream = watcher(api.clone(), config.clone())
                        .default_backoff()
                        .boxed();
                    from_cache = false;
                }
                Ok(event) => {
                    listed |= matches!(event, Event::InitDone);
                    if events.send((key.clone(), event)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    warn!(kind = key.kind, namespace = ?key.namespace, error = %e, "watch failed; retrying")
                }
            }
        }
    })
}
