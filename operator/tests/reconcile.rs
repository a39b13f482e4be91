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
    let expected = children(&objects(&scenario.installation(), &Settings::default(), &[]).unwrap());
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
async fn routes_from_all_namespaces_add_a_cluster_role_binding_and_shrink_the_role() {
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
            // The route rules move from the Role to the ClusterRole; the Role's binding, whose
            // roleRef could not change anyway, stays as it is.
            "Updated Role gateways/edge",
            "Created ClusterRole legate-gateways-edge",
            "Created ClusterRoleBinding legate-gateways-edge",
        ]
    );
    let role = scenario.api.get(&slot(ChildKind::Role)).unwrap();
    let resources: Vec<&str> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap())
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(!resources.contains(&"secrets"), "{resources:?}");
    assert!(scenario.api.get(&slot(ChildKind::ClusterRole)).is_some());
}

/// The path of a Namespace.
fn namespace(name: &str) -> String {
    format!("/api/v1/namespaces/{name}")
}

/// Stores Namespace `name` with `labels`.
fn put_namespace(api: &FakeApi, name: &str, labels: Value) {
    api.put(
        &namespace(name),
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
            "status": {"phase": "Active"},
        }),
    );
}

/// The RoleBinding that admits routes from namespace `ns` into `gateways/edge`.
fn admitting(ns: &str) -> String {
    format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/legate-gateways-edge")
}

const NAMESPACES_ROLE: &str =
    "/apis/rbac.authorization.k8s.io/v1/clusterroles/legate-gateways-edge-namespaces";
const NAMESPACES_BINDING: &str =
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/legate-gateways-edge-namespaces";

/// `edge` admitting the namespaces labelled `legate.dev/gateway: edge`, with team-a and team-b
/// labelled so, team-c not.
fn selecting() -> Scenario {
    let scenario = Scenario::new(installation(json!({"allowedRoutes": {"namespaces": {
        "from": "Selector",
        "selector": {"matchLabels": {"legate.dev/gateway": "edge"}},
    }}})));
    put_namespace(
        &scenario.api,
        "team-a",
        json!({"legate.dev/gateway": "edge"}),
    );
    put_namespace(
        &scenario.api,
        "team-b",
        json!({"legate.dev/gateway": "edge", "x": "y"}),
    );
    put_namespace(
        &scenario.api,
        "team-c",
        json!({"legate.dev/gateway": "internal"}),
    );
    scenario
}

#[tokio::test]
async fn a_selector_admits_each_matching_namespace_by_a_role_binding_there() {
    let scenario = selecting();
    let writes = scenario.reconcile().await;
    let told: Vec<String> = events(&writes).into_iter().map(|e| e.2).collect();
    assert_eq!(
        told,
        [
            "Created ServiceAccount gateways/edge",
            "Created Role gateways/edge",
            "Created RoleBinding gateways/edge",
            "Created ClusterRole legate-gateways-edge",
            "Created RoleBinding team-a/legate-gateways-edge",
            "Created RoleBinding team-b/legate-gateways-edge",
            "Created ClusterRole legate-gateways-edge-namespaces",
            "Created ClusterRoleBinding legate-gateways-edge-namespaces",
            "Created ConfigMap gateways/edge-bootstrap",
            "Created Deployment gateways/edge",
            "Created Service gateways/edge",
        ]
    );
    let binding = scenario.api.get(&admitting("team-a")).unwrap();
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "legate-gateways-edge"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "edge", "namespace": "gateways"}])
    );
    // Cross-namespace: no owner reference, the labels say whose it is.
    assert_eq!(binding["metadata"].get("ownerReferences"), None);
    assert_eq!(
        binding["metadata"]["labels"]["legate.dev/owner-namespace"],
        "gateways"
    );
    assert!(scenario.api.get(&admitting("team-c")).is_none());
    // No cluster-wide binding of the route rules: Secrets elsewhere stay out of reach.
    assert!(
        scenario
            .api
            .get(&slot(ChildKind::ClusterRoleBinding))
            .is_none()
    );
    assert!(scenario.api.get(NAMESPACES_BINDING).is_some());

    assert_eq!(lines(&scenario.reconcile().await), Vec::<String>::new());
}

#[tokio::test]
async fn a_relabelled_namespace_loses_its_role_binding_and_a_newly_labelled_one_gains_one() {
    let scenario = selecting();
    scenario.reconcile().await;

    put_namespace(&scenario.api, "team-b", json!({"x": "y"}));
    put_namespace(
        &scenario.api,
        "team-c",
        json!({"legate.dev/gateway": "edge"}),
    );
    let writes = scenario.reconcile().await;
    assert_eq!(
        lines(&writes),
        [
            format!("PATCH {}", admitting("team-c")),
            EVENTS.to_owned(),
            format!("DELETE {}", admitting("team-b")),
            EVENTS.to_owned(),
        ]
    );
    let told: Vec<String> = events(&writes).into_iter().map(|e| e.2).collect();
    assert_eq!(
        told,
        [
            "Created RoleBinding team-c/legate-gateways-edge",
            "Deleted RoleBinding team-b/legate-gateways-edge",
        ]
    );
    assert!(scenario.api.get(&admitting("team-a")).is_some());
    assert!(scenario.api.get(&admitting("team-b")).is_none());

    // Settled: nothing to write.
    assert_eq!(lines(&scenario.reconcile().await), Vec::<String>::new());
}

#[tokio::test]
async fn a_terminating_namespace_gets_no_role_binding() {
    let scenario = selecting();
    let mut team_b = scenario.api.get(&namespace("team-b")).unwrap();
    team_b["metadata"]["deletionTimestamp"] = json!("2026-11-22T00:00:00Z");
    team_b["status"]["phase"] = json!("Terminating");
    scenario.api.put(&namespace("team-b"), team_b);

    scenario.reconcile().await;
    assert!(scenario.api.get(&admitting("team-a")).is_some());
    assert!(scenario.api.get(&admitting("team-b")).is_none());
}

#[tokio::test]
async fn leaving_the_selector_for_the_own_namespace_prunes_every_binding_elsewhere() {
    let scenario = selecting();
    scenario.reconcile().await;

    scenario.edit(|gwi| {
        gwi["spec"].as_object_mut().unwrap().remove("allowedRoutes");
    });
    let writes = scenario.reconcile().await;
    let told: Vec<String> = events(&writes).into_iter().map(|e| e.2).collect();
    assert_eq!(
        told,
        [
            "Updated Role gateways/edge",
            "Deleted ClusterRole legate-gateways-edge",
            "Deleted ClusterRole legate-gateways-edge-namespaces",
            "Deleted ClusterRoleBinding legate-gateways-edge-namespaces",
            "Deleted RoleBinding team-a/legate-gateways-edge",
            "Deleted RoleBinding team-b/legate-gateways-edge",
        ]
    );
    assert!(scenario.api.get(NAMESPACES_ROLE).is_none());
    assert!(scenario.api.get(&slot(ChildKind::RoleBinding)).is_some());
}

#[tokio::test]
async fn the_role_binding_of_a_namesake_installation_in_another_namespace_is_left_alone() {
    let scenario = selecting();
    // `edge` in namespace `elsewhere` admits team-c: its binding has our instance label but
    // another namespace label.
    let theirs =
        "/apis/rbac.authorization.k8s.io/v1/namespaces/team-c/rolebindings/legate-elsewhere-edge";
    scenario.api.put(
        theirs,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "legate-elsewhere-edge", "namespace": "team-c", "labels": {
                "app.kubernetes.io/managed-by": "legate-operator",
                "app.kubernetes.io/instance": "edge",
                "legate.dev/owner-namespace": "elsewhere",
            }},
        }),
    );
    scenario.reconcile().await;
    scenario.edit(|gwi| {
        gwi["spec"].as_object_mut().unwrap().remove("allowedRoutes");
    });
    scenario.reconcile().await;
    assert!(scenario.api.get(theirs).is_some());
    assert!(scenario.api.get(&admitting("team-a")).is_none());
}

#[tokio::test]
async fn deletion_with_a_selector_removes_the_role_bindings_in_admitted_namespaces() {
    let scenario = selecting();
    scenario.reconcile().await;

    scenario.edit(|gwi| {
        gwi["metadata"]["deletionTimestamp"] = json!("2026-11-22T00:00:00Z");
    });
    let writes = scenario.reconcile().await;
    let deleted: Vec<String> = lines(&writes)
        .into_iter()
        .filter(|l| l.starts_with("DELETE"))
        .collect();
    assert_eq!(
        deleted,
        [
            format!("DELETE {}", slot(ChildKind::ClusterRole)),
            format!("DELETE {NAMESPACES_ROLE}"),
            format!("DELETE {NAMESPACES_BINDING}"),
            format!("DELETE {}", admitting("team-a")),
            format!("DELETE {}", admitting("team-b")),
        ]
    );
    assert_eq!(writes.last().unwrap().line(), format!("PATCH {GWI}"));
    assert_eq!(scenario.installation().metadata.finalizers, Some(vec![]));
}

#[tokio::test]
async fn a_selector_matching_the_own_namespace_binds_there_too_and_deletion_removes_it() {
    let scenario = selecting();
    put_namespace(
        &scenario.api,
        "gateways",
        json!({"legate.dev/gateway": "edge"}),
    );
    scenario.reconcile().await;
    // Beside the RoleBinding of the Role every installation has.
    assert!(scenario.api.get(&admitting("gateways")).is_some());
    assert!(scenario.api.get(&slot(ChildKind::RoleBinding)).is_some());

    scenario.edit(|gwi| {
        gwi["metadata"]["deletionTimestamp"] = json!("2026-11-22T00:00:00Z");
    });
    scenario.reconcile().await;
    // No owner reference would have collected it.
    assert!(scenario.api.get(&admitting("gateways")).is_none());
    assert_eq!(scenario.installation().metadata.finalizers, Some(vec![]));
}

#[tokio::test]
async fn an_invalid_selector_is_degraded_naming_the_field() {
    let scenario = Scenario::new(installation(json!({"allowedRoutes": {"namespaces": {
        "from": "Selector",
        "selector": {"matchExpressions": [{"key": "team", "operator": "In", "values": []}]},
    }}})));
    let writes = scenario.reconcile().await;
    assert_eq!(
        lines(&writes),
        [EVENTS.to_owned(), format!("PATCH {GWI}/status")]
    );
    let (status, reason, message) = scenario.condition("Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "InvalidSpec"));
    assert_eq!(
        message,
        r#"spec.allowedRoutes.namespaces.selector: matchExpressions[0]: operator "In" needs values"#
    );
}

/// The agents' field manager for `gateways/edge`.
const AGENT_MANAGER: &str = "legate-agent/gateways/edge";

#[tokio::test]
async fn the_operator_neither_clears_nor_claims_what_the_agents_write_in_the_status() {
    let scenario = Scenario::new(installation(json!({})));
    scenario.reconcile().await;
    let agents = json!({"configVersion": "v1-0a1b2c", "routes": {"accepted": 7, "rejected": 1}});
    scenario
        .api
        .apply_status(GWI, AGENT_MANAGER, agents.clone());

    // Something for the operator to write: a new generation.
    scenario.edit(|gwi| gwi["spec"]["replicas"] = json!(2));
    let writes = scenario.reconcile().await;
    let status_write = writes
        .iter()
        .find(|c| c.line() == format!("PATCH {GWI}/status"))
        .unwrap();
    let applied = &status_write.body.as_ref().unwrap()["status"];
    let mut fields: Vec<&String> = applied.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "conditions",
            "observedGeneration",
            "readyReplicas",
            "replicas"
        ]
    );
    let status = scenario.api.get(GWI).unwrap()["status"].clone();
    assert_eq!(status["configVersion"], agents["configVersion"]);
    assert_eq!(status["routes"], agents["routes"]);
    assert_eq!(status["observedGeneration"], 2);

    // The agents move on: nothing for the operator to write.
    scenario.api.apply_status(
        GWI,
        AGENT_MANAGER,
        json!({"configVersion": "v2-3d4e5f", "routes": {"accepted": 8, "rejected": 0}}),
    );
    assert_eq!(lines(&scenario.reconcile().await), Vec::<String>::new());
    let status = scenario.api.get(GWI).unwrap()["status"].clone();
    assert_eq!(status["configVersion"], "v2-3d4e5f");
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
