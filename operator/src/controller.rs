//! The reconciler: a GatewayInstallation in, its children applied and its status written.
//!
//! One pass reads as the pipeline of STYLE.md: build (pure: [`crate::build`], plus what this API
//! server cannot serve) → apply each child and prune the slots this pass left empty
//! ([`crate::apply`]) → compute the status from the children ([`crate::status`]) and write it only
//! when it changed. A finalizer deletes the cluster-scoped children and the RoleBindings in other
//! namespaces, which owner references cannot collect.
//!
//! With `allowedRoutes.namespaces.from: Selector` the children depend on the cluster's
//! Namespaces too (a RoleBinding in each one the selector matches): a pass lists the matching
//! ones, and the controller watches Namespaces so that a namespace created, deleted or
//! relabelled wakes every such installation.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::StreamExt;
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{ConfigMap, Namespace, Service, ServiceAccount},
        policy::v1::PodDisruptionBudget,
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::{
        Controller,
        controller::{Action, Error as ControllerError},
        events::{Event as KubeEvent, EventType, Recorder, Reporter},
        finalizer::{Event, finalizer},
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use legate_crds::{
    gateway_installation::{GatewayInstallation, GatewayInstallationStatus},
    status::condition,
};
use tracing::{debug, info, warn};

use crate::{
    apply::{self, Change, FIELD_MANAGER},
    build::{self, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, OWNER_NAMESPACE_LABEL, Settings},
    capabilities::Capabilities,
    children::{ChildKind, Slot, children},
    error::Error,
    metrics::Metrics,
    status::{self, Observed, Problem, reason},
};

/// Held by every installation while it may have children no owner reference collects:
/// cluster-scoped ones, and RoleBindings in the namespaces it admits. (The name predates the
/// latter; it stays, since installations already carry it.)
pub const FINALIZER: &str = "legate.dev/cluster-scoped-children";
/// A pass that succeeded looks again after this long even if nothing wakes it.
pub const RESYNC: Duration = Duration::from_secs(300);

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub settings: Settings,
    pub capabilities: Capabilities,
    pub metrics: Metrics,
    /// Per installation, the delays before retrying after failures in a row.
    backoff: Mutex<HashMap<String, ExponentialBackoff>>,
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        capabilities: Capabilities,
        metrics: Metrics,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            capabilities,
            metrics,
            backoff: Mutex::default(),
        }
    }

    fn next_retry(&self, gwi: &GatewayInstallation) -> Duration {
        let mut backoff = self.backoff.lock().expect("not poisoned");
        backoff
            .entry(key(gwi))
            .or_insert_with(|| {
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_secs(1))
                    .with_max_delay(Duration::from_secs(300))
                    .with_jitter()
                    .without_max_times()
                    .build()
            })
            .next()
            .unwrap_or(Duration::from_secs(300))
    }

    fn reset_retry(&self, gwi: &GatewayInstallation) {
        self.backoff.lock().expect("not poisoned").remove(&key(gwi));
    }

    /// Publishes an Event about `gwi` (and the child it concerns, if any); Events are best
    /// effort, a failure is only logged.
    async fn publish(
        &self,
        gwi: &GatewayInstallation,
        type_: EventType,
        reason: &str,
        note: String,
        child: Option<&Slot>,
    ) {
        let event = KubeEvent {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Reconcile".to_owned(),
            // The recorder merges Events with the same reason about the same objects into one
            // series: naming the child keeps one Event per child.
            secondary: child.map(Slot::object_reference),
        };
        if let Err(e) = self.recorder.publish(&event, &gwi.object_ref(&())).await {
            warn!(installation = %key(gwi), "cannot publish an Event: {e}");
        }
    }

    /// Tells the story of one child: logged, and an Event when something changed.
    async fn tell(&self, gwi: &GatewayInstallation, change: Change, slot: &Slot) {
        if let Some(reason) = change.reason() {
            info!(installation = %key(gwi), "{reason} {slot}");
            let note = format!("{reason} {slot}");
            self.publish(gwi, EventType::Normal, reason, note, Some(slot))
                .await;
        }
    }
}

fn key(gwi: &GatewayInstallation) -> String {
    format!("{}/{}", gwi.namespace().unwrap_or_default(), gwi.name_any())
}

/// One reconcile of `gwi`.
pub async fn reconcile(gwi: Arc<GatewayInstallation>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let api: Api<GatewayInstallation> =
        Api::namespaced(ctx.client.clone(), &gwi.namespace().unwrap_or_default());
    let result = finalizer(&api, FINALIZER, gwi.clone(), |event| async {
        match event {
            Event::Apply(gwi) => install(&gwi, &ctx).await,
            Event::Cleanup(gwi) => clean_up(&gwi, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics
        .observe(started, result.as_ref().err().map(Error::metric_label));
    match &result {
        Ok(_) => ctx.reset_retry(&gwi),
        Err(e) => {
            warn!(installation = %key(&gwi), "reconcile failed: {e}");
            let note = format!("{e}");
            ctx.publish(&gwi, EventType::Warning, e.metric_label(), note, None)
                .await;
        }
    }
    result
}

/// Requeues a failed installation with exponential backoff (reset by its next success).
pub fn error_policy(gwi: Arc<GatewayInstallation>, _error: &Error, ctx: Arc<Context>) -> Action {
    Action::requeue(ctx.next_retry(&gwi))
}

/// Builds, applies and prunes the children, then writes the status.
async fn install(gwi: &GatewayInstallation, ctx: &Context) -> Result<Action, Error> {
    let namespace = gwi.namespace().unwrap_or_default();
    let name = gwi.name_any();
    let (desired, problems) = desired(gwi, ctx).await?;
    let deployment = match desired {
        Some(desired) => {
            let children = children(&desired);
            let mut deployment = None;
            for child in &children {
                let (change, live) = apply::apply(&ctx.client, child).await?;
                ctx.tell(gwi, change, &child.slot).await;
                if child.slot.kind == ChildKind::Deployment {
                    deployment = live.try_parse::<Deployment>().ok();
                }
            }
            let empty = existing(ctx, &namespace, &name)
                .await?
                .into_iter()
                .filter(|slot| served(ctx.capabilities, slot.kind))
                .filter(|slot| children.iter().all(|c| c.slot != *slot));
            for slot in empty {
                let change = apply::delete(&ctx.client, &slot, &namespace, &name).await?;
                ctx.tell(gwi, change, &slot).await;
            }
            deployment
        }
        // A spec the operator cannot build leaves the children of the last good one serving.
        None => {
            let slot = Slot::of(ChildKind::Deployment, &namespace, &name);
            apply::read(&ctx.client, &slot)
                .await?
                .and_then(|live| live.try_parse::<Deployment>().ok())
        }
    };
    write_status(gwi, deployment.as_ref(), &problems, ctx).await?;
    Ok(Action::requeue(RESYNC))
}

/// Every slot the installation `namespace/name` may have filled: the fixed ones, and the
/// RoleBindings in other namespaces found by their labels.
async fn existing(ctx: &Context, namespace: &str, name: &str) -> Result<Vec<Slot>, Error> {
    let mut slots = Slot::all(namespace, name);
    for slot in apply::labelled(&ctx.client, ChildKind::RoleBinding, namespace, name).await? {
        if !slots.contains(&slot) {
            slots.push(slot);
        }
    }
    Ok(slots)
}

/// The objects to apply, without what this API server cannot serve, and the problems with the
/// spec. `None` when the spec cannot be built at all.
async fn desired(
    gwi: &GatewayInstallation,
    ctx: &Context,
) -> Result<(Option<build::Desired>, Vec<Problem>), Error> {
    let invalid = |e: build::BuildError| {
        let problem = Problem {
            reason: reason::INVALID_SPEC,
            message: e.to_string(),
        };
        (None, vec![problem])
    };
    // With `from: Selector`, the Namespaces it matches (filtered by the API server; the builder
    // checks again, purely).
    let namespaces = match build::namespace_selector(gwi) {
        None => Vec::new(),
        Some(Err(e)) => return Ok(invalid(e)),
        Some(Ok(selector)) => {
            let selector = selector.to_string();
            Api::<Namespace>::all(ctx.client.clone())
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|source| Error::List {
                    what: "namespaces".to_owned(),
                    selector,
                    source,
                })?
                .items
        }
    };
    let mut desired = match build::objects(gwi, &ctx.settings, &namespaces) {
        Ok(desired) => desired,
        Err(e) => return Ok(invalid(e)),
    };
    let mut problems = Vec::new();
    let caps = ctx.capabilities;
    if desired.pod_disruption_budget.is_some()
        && let Some(problem) = caps.pod_disruption_budget_problem()
    {
        problems.push(problem);
        desired.pod_disruption_budget = None;
    }
    if desired.horizontal_pod_autoscaler.is_some()
        && let Some(problem) = caps.horizontal_pod_autoscaler_problem()
    {
        problems.push(problem);
        desired.horizontal_pod_autoscaler = None;
    }
    Ok((Some(desired), problems))
}

fn served(caps: Capabilities, kind: ChildKind) -> bool {
    match kind {
        ChildKind::PodDisruptionBudget => caps.pod_disruption_budgets,
        ChildKind::HorizontalPodAutoscaler => caps.horizontal_pod_autoscalers,
        _ => true,
    }
}

/// Writes the status the children call for, unless it is the status already there; a problem
/// that is new gets a Warning Event.
async fn write_status(
    gwi: &GatewayInstallation,
    deployment: Option<&Deployment>,
    problems: &[Problem],
    ctx: &Context,
) -> Result<(), Error> {
    let observed = Observed {
        generation: gwi.metadata.generation,
        deployment,
        problems,
    };
    let now = Time(Timestamp::now());
    let status = status::compute(gwi.status.as_ref(), &observed, &now);
    // Only the operator's part of the status is compared and applied: the agents apply
    // `configVersion` and `routes` under their own field managers, and an apply that named those
    // fields would (forced) take them over or (omitted after being owned) remove them.
    if gwi.status.as_ref().map(status::operators_part) == Some(status.clone()) {
        return Ok(());
    }
    let degraded = |s: Option<&GatewayInstallationStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::DEGRADED))
            .filter(|c| c.status == "True")
            .map(|c| c.message.clone())
    };
    // One Warning for the problems as a whole: the recorder would fold Events with the same
    // reason into one series and keep only the first note.
    if let Some(message) = degraded(Some(&status))
        && Some(&message) != degraded(gwi.status.as_ref()).as_ref()
    {
        warn!(installation = %key(gwi), "{message}");
        let reason = problems.first().map_or(reason::INVALID_SPEC, |p| p.reason);
        ctx.publish(gwi, EventType::Warning, reason, message, None)
            .await;
    }
    let api: Api<GatewayInstallation> =
        Api::namespaced(ctx.client.clone(), &gwi.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": GatewayInstallation::api_version(&()),
        "kind": GatewayInstallation::kind(&()),
        "status": status,
    });
    api.patch_status(
        &gwi.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(|source| Error::Installation {
        action: "write the status of",
        source,
    })?;
    Ok(())
}

/// The installation is going away: delete what garbage collection cannot (cluster-scoped
/// children, RoleBindings in other namespaces); owner references take care of the rest.
async fn clean_up(gwi: &GatewayInstallation, ctx: &Context) -> Result<Action, Error> {
    let namespace = gwi.namespace().unwrap_or_default();
    let name = gwi.name_any();
    // The RoleBindings found by label carry no owner reference, wherever they are (the
    // installation's own namespace included, when its selector matches it).
    let labelled = apply::labelled(&ctx.client, ChildKind::RoleBinding, &namespace, &name).await?;
    let uncollected = Slot::all(&namespace, &name)
        .into_iter()
        .filter(|s| s.kind.cluster_scoped())
        .chain(labelled);
    for slot in uncollected {
        let change = apply::delete(&ctx.client, &slot, &namespace, &name).await?;
        ctx.tell(gwi, change, &slot).await;
    }
    Ok(Action::await_change())
}

/// The installation a child belongs to, from its labels: the instance label names it, the
/// namespace label (on cluster-scoped children and those in other namespaces) or else the
/// child's own namespace says where it is.
fn installation_of<K: Resource>(child: K) -> Option<ObjectRef<GatewayInstallation>> {
    let labels = child.meta().labels.as_ref()?;
    let name = labels.get(INSTANCE_LABEL)?;
    let namespace = labels
        .get(OWNER_NAMESPACE_LABEL)
        .or(child.meta().namespace.as_ref())?;
    Some(ObjectRef::new(name).within(namespace))
}

/// Every installation whose children depend on Namespaces' labels (`from: Selector`).
fn selecting_namespaces(store: &Store<GatewayInstallation>) -> Vec<ObjectRef<GatewayInstallation>> {
    store
        .state()
        .iter()
        .filter(|gwi| build::namespace_selector(gwi).is_some())
        .map(|gwi| ObjectRef::from_obj(gwi.as_ref()))
        .collect()
}

/// The backoff of the controller's watches after an error. kube-runtime puts all of a
/// controller's watches (the installations and ten kinds of children) behind one backoff, so
/// after an API server outage each watch's "too old resource version" pauses all of them in
/// turn: with the default (up to 30 s) the operator took six minutes to reconcile again. A short
/// ceiling keeps that under half a minute; one operator's relists are no burden.
fn watch_backoff() -> impl kube::runtime::utils::Backoff {
    kube::runtime::utils::ResetTimerBackoff::new(
        watcher::ExponentialBackoff::from(
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(2))
                .with_jitter()
                .without_max_times(),
        ),
        Duration::from_secs(60),
    )
}

/// Runs the controller until `shutdown` resolves. Children are watched only through the
/// operator's own label, so a large cluster is not cached whole.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let ours = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let controller = Controller::new(
        Api::<GatewayInstallation>::all(client.clone()),
        watcher::Config::default(),
    )
    .trigger_backoff(watch_backoff());
    let installations = controller.store();
    let mut controller = controller
        .owns(Api::<ServiceAccount>::all(client.clone()), ours.clone())
        .owns(Api::<Role>::all(client.clone()), ours.clone())
        // RoleBindings in admitted namespaces have no owner reference: found by label.
        .watches(
            Api::<RoleBinding>::all(client.clone()),
            ours.clone(),
            installation_of,
        )
        .owns(Api::<ConfigMap>::all(client.clone()), ours.clone())
        .owns(Api::<Deployment>::all(client.clone()), ours.clone())
        .owns(Api::<Service>::all(client.clone()), ours.clone())
        .watches(
            Api::<ClusterRole>::all(client.clone()),
            ours.clone(),
            installation_of,
        )
        .watches(
            Api::<ClusterRoleBinding>::all(client.clone()),
            ours.clone(),
            installation_of,
        )
        // A namespace created, deleted or relabelled may start or stop matching a selector.
        .watches(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
            move |_: Namespace| selecting_namespaces(&installations),
        );
    if ctx.capabilities.pod_disruption_budgets {
        controller = controller.owns(
            Api::<PodDisruptionBudget>::all(client.clone()),
            ours.clone(),
        );
    }
    if ctx.capabilities.horizontal_pod_autoscalers {
        controller = controller.owns(Api::<HorizontalPodAutoscaler>::all(client), ours);
    }
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                // A child's event after its installation is gone: nothing to do.
                Err(ControllerError::ObjectNotFound(object)) => {
                    debug!("{object} is gone");
                }
                Err(e) => warn!("controller: {e}"),
            }
        })
        .await;
}
