//! Status write-back (Kubernetes only): every route resource the gateway sees gets its verdict
//! (`verdict`, pure) written into its status (`document`, pure) by server-side apply on the
//! status subresource, under a field manager of this installation's own
//! (`legate-agent/NAMESPACE/NAME`); the installation's status gets the configuration version its
//! Envoy acknowledged and the count of accepted and rejected Mappings; Events say what went
//! wrong, once per change.
//!
//! Only one replica of an installation writes: the holder of the Lease
//! `<installation>-agent-status`. The others compute nothing and stay quiet; one of them takes
//! over within the lease time. Statuses are compared with the live ones ignoring time and written
//! only when they differ, so a resync, a restart or a second replica writes nothing.

pub mod document;
pub mod verdict;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, stream};
use k8s_openapi::{
    api::core::v1::ObjectReference, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams},
    core::ApiResource,
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use legate_crds::{GatewayInstallation, ObjectRef, status::condition};
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::{
    ir::Ir,
    source::{SourceSnapshot, kubernetes::kinds},
    xds::AckStatus,
};
use verdict::{Programmed, Verdict};

/// How long a new configuration may wait for Envoy's answer before its resources are reported
/// `Programmed=Unknown` (`Pending`).
const ACK_GRACE: Duration = Duration::from_secs(10);
/// Status writes in flight at once.
const CONCURRENT_WRITES: usize = 8;
/// Seconds the status lease lasts, and how early its holder renews it.
const LEASE_SECONDS: u64 = 15;
const RENEW_EARLY_SECONDS: u64 = 5;

/// One built configuration: what the status is computed from.
#[derive(Clone, Debug)]
pub struct Built {
    pub snapshot: Arc<SourceSnapshot>,
    pub ir: Arc<Ir>,
    /// The configuration version published to Envoy for it.
    pub version: Option<String>,
}

/// Who writes.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The installation, `NAMESPACE/NAME`.
    pub namespace: String,
    pub name: String,
    /// This replica (its pod name).
    pub replica: String,
}

impl Identity {
    pub fn installation(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn field_manager(&self) -> String {
        format!("legate-agent/{}/{}", self.namespace, self.name)
    }

    fn lease(&self) -> String {
        format!("{}-agent-status", self.name)
    }
}

/// Metrics of the writer.
#[derive(Clone, Default)]
pub struct Metrics {
    pub writes: prometheus_client::metrics::counter::Counter,
    pub write_failures: prometheus_client::metrics::counter::Counter,
}

impl Metrics {
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let m = Self::default();
        registry.register(
            "status_writes",
            "Status writes to the API server (route resources and the installation)",
            m.writes.clone(),
        );
        registry.register(
            "status_write_failures",
            "Status writes the API server refused or that failed",
            m.write_failures.clone(),
        );
        m
    }
}

/// Runs the writer until `built` closes: leads or waits for the lease, then writes what changes.
pub async fn run(
    client: Client,
    identity: Identity,
    mut built: watch::Receiver<Option<Built>>,
    mut acks: watch::Receiver<AckStatus>,
    metrics: Metrics,
) {
    let lease = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), identity.lease())
        .with_namespace(&identity.namespace)
        .with_identity(&identity.replica)
        .with_duration(LEASE_SECONDS)
        .with_grace(RENEW_EARLY_SECONDS)
        .build()
        .await;
    let (mut leading, lease_task) = match lease {
        Ok(manager) => manager.watch().await,
        Err(e) => {
            warn!(error = %e, "cannot take part in the status lease; this replica writes no status");
            return;
        }
    };
    let mut writer = Writer::new(client, identity, metrics);
    // When the configuration last changed, to give Envoy time to answer before `Pending`.
    let mut since = tokio::time::Instant::now();
    let mut last_version: Option<String> = None;
    loop {
        let current = built.borrow_and_update().clone();
        let ack = acks.borrow_and_update().clone();
        let leader = *leading.borrow_and_update();
        let mut recheck = None;
        if let Some(current) = current {
            if current.version != last_version {
                last_version.clone_from(&current.version);
                since = tokio::time::Instant::now();
            }
            let programmed = programmed(&current, &ack);
            let waiting = programmed == Programmed::Pending && since.elapsed() < ACK_GRACE;
            if waiting {
                recheck = Some(since + ACK_GRACE);
            } else if leader {
                writer.write(&current, &programmed, &ack).await;
            }
        }
        tokio::select! {
            changed = built.changed() => if changed.is_err() { break },
            changed = acks.changed() => if changed.is_err() { break },
            changed = leading.changed() => {
                if changed.is_err() { break }
                if *leading.borrow() {
                    info!(lease = %writer.identity.lease(), "holding the status lease: this replica writes status");
                    // A new leader trusts nothing it may have written in an earlier term.
                    writer.forget();
                } else {
                    info!("not holding the status lease: this replica writes no status");
                }
            }
            () = sleep_until(recheck) => {}
        }
    }
    drop(leading);
    if let Ok(Err(e)) = lease_task.await {
        warn!(error = %e, "releasing the status lease");
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What Envoy made of `built`'s configuration.
fn programmed(built: &Built, ack: &AckStatus) -> Programmed {
    let version = built.version.as_deref();
    if version.is_some() && ack.acked_version.as_deref() == version {
        return Programmed::Acked;
    }
    match &ack.last_nack {
        Some(nack) if Some(nack.config_version.as_str()) == version => {
            Programmed::Refused(nack.message.clone())
        }
        _ => Programmed::Pending,
    }
}

/// The status applied to one object (times left out), and the live status it was computed from.
type Applied = (Value, Option<Value>);

/// The writing half: what it wrote, so an echo not yet seen is not written twice.
struct Writer {
    client: Client,
    identity: Identity,
    recorder: Recorder,
    metrics: Metrics,
    /// Per object: the body last applied (times left out) and the live status it was computed
    /// from. The same body over the same live status is not applied again.
    written: HashMap<ObjectRef, Applied>,
    /// The installation status last applied.
    installation_status: Option<Value>,
    /// AuthServices last warned about on the installation.
    warned: BTreeSet<ObjectRef>,
}

impl Writer {
    fn new(client: Client, identity: Identity, metrics: Metrics) -> Self {
        let reporter = Reporter {
            controller: "legate-agent".to_owned(),
            instance: Some(identity.replica.clone()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            identity,
            metrics,
            written: HashMap::new(),
            installation_status: None,
            warned: BTreeSet::new(),
        }
    }

    fn forget(&mut self) {
        self.written.clear();
        self.installation_status = None;
        self.warned.clear();
    }

    async fn write(&mut self, built: &Built, programmed: &Programmed, ack: &AckStatus) {
        let ambassador_id = built
            .snapshot
            .gateway
            .as_ref()
            .map_or("default", |g| g.ambassador_id.as_str());
        let verdicts = verdict::verdicts(&built.snapshot, &built.ir, ambassador_id, programmed);
        let now = Time(Timestamp::now());
        let installation = self.identity.installation();

        let mut patches = Vec::new();
        for (object, live) in built.snapshot.live.iter() {
            if !kinds::has_status(&object.kind) {
                continue;
            }
            let verdict = verdicts.get(object);
            let Some(body) = document::desired(
                &object.kind,
                &installation,
                verdict,
                live.status.as_ref(),
                live.generation,
                &now,
            ) else {
                self.written.remove(object);
                continue;
            };
            let key = (without_times(&body), live.status.clone());
            if self.written.get(object) == Some(&key) {
                continue; // applied already; its echo has not come back yet
            }
            let events = events(object, verdict, live.status.as_ref(), &installation);
            patches.push((object.clone(), body, key, events));
        }
        let this = &*self;
        let results: Vec<(ObjectRef, Applied, Vec<Event>, bool)> = stream::iter(patches)
            .map(|(object, body, key, events)| async move {
                let ok = this.apply(&object, body).await;
                (object, key, events, ok)
            })
            .buffer_unordered(CONCURRENT_WRITES)
            .collect()
            .await;
        for (object, key, events, ok) in results {
            if !ok {
                continue;
            }
            self.written.insert(object.clone(), key);
            for event in events {
                self.publish(&event, &object, built).await;
            }
        }
        self.warn_unenforced(&verdicts, built).await;
        self.write_installation(&verdicts, built, ack).await;
    }

    async fn apply(&self, object: &ObjectRef, status: Value) -> bool {
        let (Some(resource), Some(namespace)) = (api_resource(&object.kind), &object.namespace)
        else {
            return false;
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let body = json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": object.name, "namespace": namespace},
            "status": status,
        });
        let params = PatchParams::apply(&self.identity.field_manager()).force();
        self.metrics.writes.inc();
        match api
            .patch_status(&object.name, &params, &Patch::Apply(&body))
            .await
        {
            Ok(_) => {
                debug!(%object, "status written");
                true
            }
            Err(e) => {
                self.metrics.write_failures.inc();
                warn!(%object, error = %e, "cannot write status");
                false
            }
        }
    }

    async fn publish(&self, event: &Event, object: &ObjectRef, built: &Built) {
        let reference = object_reference(object, built);
        if let Err(e) = self.recorder.publish(event, &reference).await {
            warn!(%object, error = %e, "cannot record an Event");
        }
    }

    /// An AuthService (not enforced by the gateway yet) leaves traffic open:
    /// besides the resource's own status and Event, a Warning on the installation.
    async fn warn_unenforced(&mut self, verdicts: &BTreeMap<ObjectRef, Verdict>, built: &Built) {
        let now: BTreeSet<ObjectRef> = verdicts
            .keys()
            .filter(|o| o.kind == "AuthService")
            .cloned()
            .collect();
        let Some(gwi) = self.installation_ref(built) else {
            return;
        };
        for object in now.difference(&self.warned) {
            let what = if object.kind == "AuthService" {
                "requests through this gateway are NOT authenticated"
            } else {
                "requests through this gateway are NOT rate limited"
            };
            let event = Event {
                type_: EventType::Warning,
                reason: "NotSupported".to_owned(),
                note: Some(format!(
                    "{object} is not implemented by this gateway yet: {what}"
                )),
                action: "Translate".to_owned(),
                secondary: Some(object_reference(object, built)),
            };
            warn!(%object, "{what}: {} is not implemented yet", object.kind);
            if let Err(e) = self.recorder.publish(&event, &gwi).await {
                warn!(error = %e, "cannot record an Event on the installation");
            }
        }
        self.warned = now;
    }

    fn installation_ref(&self, built: &Built) -> Option<ObjectReference> {
        let object = ObjectRef {
            kind: "GatewayInstallation".to_owned(),
            namespace: Some(self.identity.namespace.clone()),
            name: self.identity.name.clone(),
        };
        built
            .snapshot
            .live
            .contains_key(&object)
            .then(|| object_reference(&object, built))
    }

    /// `status.configVersion` (acknowledged by this gateway's Envoy) and `status.routes` on the
    /// installation; the operator owns the rest of its status.
    async fn write_installation(
        &mut self,
        verdicts: &BTreeMap<ObjectRef, Verdict>,
        built: &Built,
        ack: &AckStatus,
    ) {
        let mappings = verdicts.iter().filter(|(o, _)| o.kind == "Mapping");
        let (accepted, rejected) = mappings.fold((0i64, 0i64), |(a, r), (_, v)| {
            if v.accepted.is_true() {
                (a.saturating_add(1), r)
            } else {
                (a, r.saturating_add(1))
            }
        });
        let mut status = json!({"routes": {"accepted": accepted, "rejected": rejected}});
        if let Some(version) = &ack.acked_version {
            status["configVersion"] = json!(version);
        }
        let object = ObjectRef {
            kind: "GatewayInstallation".to_owned(),
            namespace: Some(self.identity.namespace.clone()),
            name: self.identity.name.clone(),
        };
        let live = built
            .snapshot
            .live
            .get(&object)
            .and_then(|l| l.status.as_ref());
        let same_as_live = live.is_some_and(|l| {
            l.get("routes") == status.get("routes")
                && (ack.acked_version.is_none()
                    || l.get("configVersion") == status.get("configVersion"))
        });
        if same_as_live || self.installation_status.as_ref() == Some(&status) {
            return;
        }
        let api: Api<GatewayInstallation> =
            Api::namespaced(self.client.clone(), &self.identity.namespace);
        let body = json!({
            "apiVersion": "legate.dev/v1alpha1",
            "kind": "GatewayInstallation",
            "metadata": {"name": self.identity.name, "namespace": self.identity.namespace},
            "status": status,
        });
        let params = PatchParams::apply(&self.identity.field_manager()).force();
        self.metrics.writes.inc();
        match api
            .patch_status(&self.identity.name, &params, &Patch::Apply(&body))
            .await
        {
            Ok(_) => self.installation_status = Some(status),
            Err(e) => {
                self.metrics.write_failures.inc();
                warn!(error = %e, "cannot write the installation's status");
            }
        }
    }
}

/// The Events one status change deserves: a Warning for each condition of ours that is not
/// well and changed its reason since the live status.
fn events(
    object: &ObjectRef,
    verdict: Option<&Verdict>,
    live: Option<&Value>,
    installation: &str,
) -> Vec<Event> {
    let Some(verdict) = verdict else {
        return Vec::new();
    };
    let live_reason = |type_: &str| -> Option<String> {
        live?
            .get("gateways")?
            .as_array()?
            .iter()
            .find(|g| g.get("installation").and_then(Value::as_str) == Some(installation))?
            .get("conditions")?
            .as_array()?
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))?
            .get("reason")?
            .as_str()
            .map(str::to_owned)
    };
    let mut out = Vec::new();
    let accepted_ok =
        verdict.accepted.is_true() && verdict.accepted.reason == verdict::reasons::ACCEPTED;
    if !accepted_ok && live_reason(condition::ACCEPTED).as_deref() != Some(&verdict.accepted.reason)
    {
        out.push(warning(
            &verdict.accepted.reason,
            &verdict.accepted.message,
            object,
        ));
    }
    let programmed_bad = verdict.programmed.status == "False";
    if programmed_bad
        && verdict.accepted.is_true()
        && live_reason(condition::PROGRAMMED).as_deref() != Some(&verdict.programmed.reason)
    {
        out.push(warning(
            &verdict.programmed.reason,
            &verdict.programmed.message,
            object,
        ));
    }
    out
}

fn warning(reason: &str, message: &str, object: &ObjectRef) -> Event {
    // Events carry at most 1 kB of note.
    let note = format!("{object}: {message}");
    Event {
        type_: EventType::Warning,
        reason: reason.to_owned(),
        note: Some(legate_crds::printable::clipped(&note, 1000).into_owned()),
        action: "Translate".to_owned(),
        secondary: None,
    }
}

fn api_resource(kind: &str) -> Option<ApiResource> {
    kinds::watched(kinds::EndpointsApi::Slices)
        .into_iter()
        .find(|k| k.kind == kind)
        .map(|k| k.resource)
}

fn object_reference(object: &ObjectRef, built: &Built) -> ObjectReference {
    let api_version = if object.kind == "GatewayInstallation" {
        Some("legate.dev/v1alpha1".to_owned())
    } else {
        api_resource(&object.kind).map(|r| r.api_version)
    };
    ObjectReference {
        api_version,
        kind: Some(object.kind.clone()),
        name: Some(object.name.clone()),
        namespace: object.namespace.clone(),
        uid: built.snapshot.live.get(object).and_then(|l| l.uid.clone()),
        ..ObjectReference::default()
    }
}

/// A body with every `lastTransitionTime` left out: what "the same status" means.
fn without_times(body: &Value) -> Value {
    match body {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "lastTransitionTime")
                .map(|(k, v)| (k.clone(), without_times(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_times).collect()),
        other => other.clone(),
    }
}
