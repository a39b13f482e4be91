//! The reconciler, scenario by scenario, against a fake API server on kube's `tower-test` mock
//! (support/fake_api.rs): an installation and the objects already there in, the exact writes
//! the reconciler makes and the status it leaves out.

mod support;

use std::sync::Arc;

use http::Method;
use legate_crds::gateway_installation::GatewayInstallation;
use legate_operator::{
    apply::with_applied_hash,
    build::{Settings, objects},
    capabilities::Capabilities,
    children::{ChildKind, Slot, children},
    controller::{Context, FINALIZER, reconcile},
    metrics::Metrics,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use support::fake_api::{Call, FakeApi};

const GWI: &str = "/apis/legate.dev/v1alpha1/namespaces/gateways/gatewayinstallations/edge";

/// `edge` in `gateways`, with `spec` as given, already carrying the finalizer unless `fresh`.
fn installation(spec: Value) -> Value {
    json!({
        "apiVersion": "legate.dev/v1alpha1",
        "kind": "GatewayInstallation",
        "metadata": {
            "name": "edge", "namespace": "gateways", "uid": "6c1d5a3e-8f0b-4a4e-9d2c-1f2e3d4c5b6a",
            "generation": 1, "finalizers": [FINALIZER],
        },
        "spec": spec,
    })
}

/// The path of the object in `slot`.
fn path(slot: &Slot) -> String {
    let resource = slot.kind.api_resource();
    let prefix = if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    };
    match &slot.namespace {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{}/{}", resource.plural, slot.name),
        None => format!("{prefix}/{}/{}", resource.plural, slot.name),
    }
}

fn slot(kind: ChildKind) -> String {
    path(&Slot::of(kind, "gateways", "edge"))
}

struct Scenario {
    api: FakeApi,
    capabilities: Capabilities,
}

impl Scenario {
    fn new(gwi: Value) -> Self {
        let api = FakeApi::default();
        api.put(GWI, gwi);
        Self {
            api,
            capabilities: Capabilities::ALL,
        }
    }

    fn installation(&self) -> GatewayInstallation {
        serde_json::from_value(self.api.get(GWI).unwrap()).unwrap()
    }

    /// One reconcile of the installation as stored; returns the writes it made.
    async fn reconcile(&self) -> Vec<Call> {
        let ctx = Context::new(
            self.api.client(),
            Settings::default(),
            self.capabilities,
            Metrics::default(),
        );
        reconcile(Arc::new(self.installation()), Arc::new(ctx))
            .await
            .unwrap();
        self.api.take_writes()
    }

    /// Edits the stored installation as a user would (the server bumps the generation).
    fn edit(&self, change: impl FnOnce(&mut Value)) {
        let mut gwi = self.api.get(GWI).unwrap();
        change(&mut gwi);
        let generation = gwi["metadata"]["generation"].as_i64().unwrap();
        gwi["metadata"]["generation"] = json!(generation + 1);
        self.api.put(GWI, gwi);
    }

    fn condition(&self, type_: &str) -> (String, String, String) {
        let gwi = self.api.get(GWI).unwrap();
        let conditions = gwi["status"]["conditions"].as_array().unwrap();
        let c = conditions.iter().find(|c| c["type"] == type_).unwrap();
        let field = |k: &str| c[k].as_str().unwrap().to_owned();
        (field("status"), field("reason"), field("message"))
    }
}

fn lines(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::line).collect()
}

/// The Events among `calls`, as (type, reason, note).
fn events(calls: &[Call]) -> Vec<(String, String, String)> {
    calls
        .iter()
        .filter(|c| c.method == Method::POST && c.uri.contains("/events"))
        .map(|c| {
            let b = c.body.as_ref().unwrap();
            let s = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
            (s("type"), s("reason"), s("note"))
        })
        .collect()
}

const EVENTS: &str = "POST /apis/events.k8s.io/v1/namespaces/gateways/events";

#[tokio::test]
async fn a_new_installation_gets_the_finalizer_then_exactly_the_built_children() {
    let mut gwi = installation(json!({}));
    gwi["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("finalizers");
    let scenario = Scenario::new(gwi);

    // First pass: only the finalizer, which wakes the next pass.
    let writes = scenario.reconcile().await;
    assert_eq!(lines(&writes), [format!("PATCH {GWI}")]);
    assert_eq!(
        scenario.installation().metadata.finalizers,
        Some(vec![FINALIZER.to_owned()])
    );

    // Second pass: every child, applied with its hash, in order, each told by an Event; then
    // the status.
    let writes = scenario.reconcile().await;
    let expected = children(&objects(&scenario.installation(), &Settings::default()).unwrap());
    let applies: Vec<&Call> = writes
        .iter()
        .filter(|c| c.method == Method::PATCH && !c.uri.starts_with(GWI))
        .collect();
    assert_eq!(applies.len(), expected.len());
    for (call, child) in applies.iter().zip(&expected) {
        assert_eq!(call.line(), format!("PATCH {}", path(&child.slot)));
        assert_eq!(
            call.body.as_ref(),
            Some(&with_applied_hash(&child.manifest))
        );
    }
    let created: Vec<String> = events(&writes).into_iter().map(|e| e.2).collect();
    assert_eq!(
        created,
        [
            "Created ServiceAccount gateways/edge",
            "Created Role gateways/edge",
            "Created RoleBinding gateways/edge",
            "Created ConfigMap gateways/edge-bootstrap",
            "Created Deployment gateways/edge",
            "Created Service gateways/edge",
        ]
    );
    assert_eq!(writes.last().unwrap().line(), format!("PATCH {GWI}/status"));
    assert_eq!(
        scenario.condition("Ready"),
        (
            "False".into(),
            "ReplicasNotReady".into(),
            "0/1 replicas ready".into()
        )
    );
    assert_eq!(
        scenario.condition("Degraded"),
        (
            "False".into(),
            "AsExpected".into(),
            "the spec is honoured".into()
        )
    );
    assert_eq!(
        scenario.installation().status.unwrap().observed_generation,
        Some(1)
    );
}

#[tokio::test]
async fn a_second_reconcile_with_nothing_changed_writes_nothing() {
    let scenario = Scenario::new(installation(json!({"replicas": 2})));
    assert!(!scenario.reconcile().await.is_empty());

    assert_eq!(lines(&scenario.reconcile().await), Vec::<String>::new());
    assert_eq!(lines(&scenario.reconcile().await), Vec::<String>::new());
}

#[tokio::test]
async fn a_spec_change_updates_only_what_changed() {
    let scenario = Scenario::new(installation(json!({})));
    scenario.reconcile().await;

    scenario.edit(|gwi| {
        gwi["spec"]["service"] = json!({"annotations": {"example.com/team": "edge"}});
    });
    let writes = scenario.reconcile().await;
    assert_eq!(
        lines(&writes),
        [
            format!("PATCH {}", slot(ChildKind::Service)),
            EVENTS.to_owned(),
            format!("PATCH {GWI}/status"),
        ]
    );
    assert_eq!(
        events(&writes),
        [(
            "Normal".into(),
            "Updated".into(),
            "Updated Service gateways/edge".into()
        )]
    );
    assert_eq!(
        scenario.installation().status.unwrap().observed_generation,
        Some(2)
    );
}

#[tokio::test]
async fn a_deployment_deleted_by_hand_is_recreated() {
    let scenario = Scenario::new(installation(json!({})));
    scenario.reconcile().await;

    scenario.api.remove(&slot(ChildKind::Deployment));
    let writes = scenario.reconcile().await;
    assert_eq!(
        lines(&writes),
        [
            format!("PATCH {}", slot(ChildKind::Deployment)),
            EVENTS.to_owned()
        ]
    );
    assert!(scenario.api.get(&slot(ChildKind::Deployment)).is_some());
}

#[tokio::test]
async fn a_child_edited_by_hand_is_put_back() {
    let scenario = Scenario::new(installation(json!({})));
    scenario.reconcile().await;

    let service = slot(ChildKind::Service);
    let mut edited = scenario.api.get(&service).unwrap();
    edited["spec"]["type"] = json!("NodePort");
    scenario.api.put(&service, edited);
    let writes = scenario.reconcile().await;
    assert_eq!(
        lines(&writes),
        [format!("PATCH {service}"), EVENTS.to_owned()]
    );
    assert_eq!(
        scenario.api.get(&service).unwrap()["spec"]["type"],
        "LoadBalancer"
    );
}

#[tokio::test]
async fn routes_from_all_namespaces_swap_the_role_for_a_cluster_role() {
    let scenario = Scenario::new(installation(json!({})));
    scenario.reconcile().await;

    scenario.edit(|gwi| {
        gwi["spec"]["allowedRoutes"] = json!({"namespaces": {"from": "All"}});
    });
    let writes = scenario.reconcile().await;
    let told: Vec<String> = events(&writes).into_iter().map(|e| e.2).collect();
    assert_eq!(
        told,
        [
            "Created ClusterRole legate-gateways-edge",
            "Created ClusterRoleBinding legate-gateways-edge",
            "Deleted Role gateways/edge",
            "Deleted RoleBinding gateways/edge",
        ]
    );
    assert!(scenario.api.get(&slot(ChildKind::Role)).is_none());
    assert!(scenario.api.get(&slot(ChildKind::ClusterRole)).is_some());
}

#[tokio::test]
async fn deletion_removes_the_cluster_scoped_children_and_then_the_finalizer() {
    let scenario = Scenario::new(installation(
        json!({"allowedRoutes": {"namespaces": {"from": "All"}}}),
    ));
    scenario.reconcile().await;
    // Someone else's ClusterRole by a name we would never give: left alone.
    scenario.api.put(
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/unrelated",
        json!({"metadata": {"name": "unrelated"}}),
    );

    scenario.edit(|gwi| {
        gwi["metadata"]["deletionTimestamp"] = json!("2026-11-22T00:00:00Z");
    });
    let writes = scenario.reconcile().await;
    assert_eq!(
        lines(&writes),
        [
            format!("DELETE {}", slot(ChildKind::ClusterRole)),
            EVENTS.to_owned(),
            format!("DELETE {}", slot(ChildKind::ClusterRoleBinding)),
            EVENTS.to_owned(),
            format!("PATCH {GWI}"),
        ]
    );
    assert_eq!(scenario.installation().metadata.finalizers, Some(vec![]));
    assert!(
        scenario
            .api
            .get(&slot(ChildKind::ClusterRoleBinding))
            .is_none()
    );
}

#[tokio::test]
async fn an_invalid_spec_is_degraded_with_the_field_and_an_event_and_keeps_the_last_good_children()
{
    let scenario = Scenario::new(installation(json!({})));
    scenario.reconcile().await;
    let deployment = scenario.api.get(&slot(ChildKind::Deployment));

    scenario.edit(|gwi| gwi["spec"]["envoy"] = json!({"image": "Not An Image!"}));
    let writes = scenario.reconcile().await;
    assert_eq!(
        lines(&writes),
        [EVENTS.to_owned(), format!("PATCH {GWI}/status")]
    );
    let message = r#"spec.envoy.image: "Not An Image!" is not a valid image reference"#;
    assert_eq!(
        events(&writes),
        [("Warning".into(), "InvalidSpec".into(), message.to_owned())]
    );
    assert_eq!(
        scenario.condition("Degraded"),
        ("True".into(), "InvalidSpec".into(), message.to_owned())
    );
    assert_eq!(scenario.api.get(&slot(ChildKind::Deployment)), deployment);

    // Not retried into a write storm: the same problem again writes nothing.
    assert_eq!(lines(&scenario.reconcile().await), Vec::<String>::new());
}

#[tokio::test]
async fn conditions_follow_the_deployment() {
    let scenario = Scenario::new(installation(json!({"replicas": 2})));
    scenario.reconcile().await;
    let deployment = slot(ChildKind::Deployment);
    let set_status = |status: Value| {
        let mut d = scenario.api.get(&deployment).unwrap();
        d["status"] = status;
        scenario.api.put(&deployment, d);
    };

    set_status(json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2}));
    scenario.reconcile().await;
    assert_eq!(
        scenario.condition("Ready"),
        (
            "False".into(),
            "ReplicasNotReady".into(),
            "0/2 replicas ready".into()
        )
    );
    assert_eq!(
        scenario.condition("Progressing"),
        (
            "True".into(),
            "WaitingForReplicas".into(),
            "0/2 replicas ready".into()
        )
    );

    set_status(json!({
        "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
    }));
    scenario.reconcile().await;
    assert_eq!(
        scenario.condition("Ready"),
        (
            "True".into(),
            "AllReplicasReady".into(),
            "2/2 replicas ready".into()
        )
    );
    assert_eq!(
        scenario.condition("Progressing"),
        (
            "False".into(),
            "RolloutComplete".into(),
            "2 replicas up to date".into()
        )
    );
    let status = scenario.installation().status.unwrap();
    assert_eq!((status.replicas, status.ready_replicas), (Some(2), Some(2)));

    // A new rollout: the Deployment has not seen its new generation yet.
    set_status(json!({
        "observedGeneration": 1, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2,
    }));
    let mut d = scenario.api.get(&deployment).unwrap();
    d["metadata"]["generation"] = json!(2);
    scenario.api.put(&deployment, d);
    scenario.reconcile().await;
    assert_eq!(scenario.condition("Progressing").1, "RollingOut");
    assert_eq!(scenario.condition("Ready").0, "False");
}

#[tokio::test]
async fn without_policy_v1_or_autoscaling_v2_a_pdb_or_hpa_is_degraded_not_retried() {
    let mut scenario = Scenario::new(installation(json!({
        "podDisruptionBudget": {"minAvailable": 1},
        "autoscaling": {"maxReplicas": 4},
    })));
    scenario.capabilities = Capabilities {
        pod_disruption_budgets: false,
        horizontal_pod_autoscalers: false,
    };
    let writes = scenario.reconcile().await;
    assert!(
        writes
            .iter()
            .all(|c| !c.uri.contains("poddisruptionbudgets")
                && !c.uri.contains("horizontalpodautoscalers")),
        "{:?}",
        lines(&writes)
    );
    let (status, reason, message) = scenario.condition("Degraded");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "UnsupportedByServer")
    );
    assert!(
        message.starts_with("spec.podDisruptionBudget: the API server does not serve policy/v1")
    );
    assert!(message.contains("spec.autoscaling: the API server does not serve autoscaling/v2"));
    let warnings: Vec<String> = events(&writes)
        .into_iter()
        .filter(|e| e.0 == "Warning")
        .map(|e| e.1)
        .collect();
    assert_eq!(warnings, ["UnsupportedByServer"]);
    // Everything else serves.
    assert!(scenario.api.get(&slot(ChildKind::Deployment)).is_some());
    assert_eq!(lines(&scenario.reconcile().await), Vec::<String>::new());
}

#[tokio::test]
async fn a_pdb_no_longer_asked_for_is_deleted() {
    let scenario = Scenario::new(installation(
        json!({"podDisruptionBudget": {"minAvailable": 1}}),
    ));
    scenario.reconcile().await;
    assert!(
        scenario
            .api
            .get(&slot(ChildKind::PodDisruptionBudget))
            .is_some()
    );

    scenario.edit(|gwi| {
        gwi["spec"]
            .as_object_mut()
            .unwrap()
            .remove("podDisruptionBudget");
    });
    let writes = scenario.reconcile().await;
    assert_eq!(
        lines(&writes),
        [
            format!("DELETE {}", slot(ChildKind::PodDisruptionBudget)),
            EVENTS.to_owned(),
            format!("PATCH {GWI}/status"),
        ]
    );
}
