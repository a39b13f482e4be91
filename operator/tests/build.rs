//! The pure builders, scenario by scenario: an installation (YAML fixture under `golden/`) in,
//! the objects the operator would apply out, compared as data.
//!
//! `golden/<case>.output.yaml` holds every manifest of a case; regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p legate-operator --test build` and review the diff.

use std::{fs, path::PathBuf};

use k8s_openapi::{
    api::{
        core::v1::{Container, Namespace, PodSpec},
        rbac::v1::PolicyRule,
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use legate_crds::gateway_installation::{
    AllowedRoutes, ContainerSettings, FromNamespaces, GatewayInstallation, GatewayPort,
    RouteNamespaces, ServiceSettings,
};
use legate_operator::build::{
    AGENT_CONTAINER, BOOTSTRAP_KEY, BuildError, CONFIG_HASH_ANNOTATION, Desired, ENVOY_CONTAINER,
    RouteAccess, Settings, config_hash, objects,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn golden(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file)
}

fn fixture(case: &str) -> GatewayInstallation {
    let text = fs::read_to_string(golden(&format!("{case}.input.yaml"))).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn build(gwi: &GatewayInstallation) -> Desired {
    objects(gwi, &Settings::default(), &[]).unwrap()
}

/// Every manifest of `desired` against `golden/<case>.output.yaml`.
fn assert_golden(case: &str, desired: &Desired) {
    let actual = Value::Array(desired.manifests());
    let path = golden(&format!("{case}.output.yaml"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&path, serde_saphyr::to_string(&actual).unwrap()).unwrap();
    }
    let expected: Value = serde_saphyr::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(expected, actual, "{} differs", path.display());
}

/// kind, namespace, name of each object, in apply order.
fn identities(desired: &Desired) -> Vec<(String, Option<String>, String)> {
    desired
        .manifests()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_owned(),
                m["metadata"]["namespace"].as_str().map(str::to_owned),
                m["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pod(desired: &Desired) -> &PodSpec {
    desired
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

fn container<'a>(desired: &'a Desired, name: &str) -> &'a Container {
    pod(desired)
        .containers
        .iter()
        .find(|c| c.name == name)
        .unwrap()
}

fn pod_hash(desired: &Desired) -> String {
    let template = &desired.deployment.spec.as_ref().unwrap().template;
    template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[CONFIG_HASH_ANNOTATION]
        .clone()
}

fn no_wildcards(rules: &[PolicyRule]) {
    for rule in rules {
        let mut words = rule.verbs.clone();
        words.extend(rule.resources.clone().unwrap_or_default());
        words.extend(rule.api_groups.clone().unwrap_or_default());
        assert!(
            words.iter().all(|w| !w.contains('*')),
            "wildcard in {rule:?}"
        );
        assert!(rule.non_resource_urls.is_none());
        // A rule limited by name is limited to the agent's own objects.
        for name in rule.resource_names.iter().flatten() {
            assert!(
                ["edge", "edge-agent-status"].contains(&name.as_str()),
                "{rule:?}"
            );
        }
    }
}

/// Which (group, resource) pairs the rules grant `verb` on.
fn granted(rules: &[PolicyRule], verb: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rule in rules.iter().filter(|r| r.verbs.iter().any(|v| v == verb)) {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                out.push((group.clone(), resource.clone()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_minimal_installation_produces_exactly_the_expected_objects() {
    let desired = build(&fixture("minimal"));
    let ns = || Some("gateways".to_owned());
    assert_eq!(
        identities(&desired),
        [
            ("ServiceAccount", ns(), "edge"),
            ("Role", ns(), "edge"),
            ("RoleBinding", ns(), "edge"),
            ("ConfigMap", ns(), "edge-bootstrap"),
            ("Deployment", ns(), "edge"),
            ("Service", ns(), "edge"),
        ]
        .map(|(k, n, name)| (k.to_owned(), n, name.to_owned()))
        .to_vec()
    );
    let owner = json!([{
        "apiVersion": "legate.dev/v1alpha1",
        "kind": "GatewayInstallation",
        "name": "edge",
        "uid": "6c1d5a3e-8f0b-4a4e-9d2c-1f2e3d4c5b6a",
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    let labels = json!({
        "app.kubernetes.io/name": "legate-gateway",
        "app.kubernetes.io/instance": "edge",
        "app.kubernetes.io/managed-by": "legate-operator",
        "app.kubernetes.io/component": "gateway",
    });
    for manifest in desired.manifests() {
        assert_eq!(manifest["metadata"]["ownerReferences"], owner, "{manifest}");
        assert_eq!(manifest["metadata"]["labels"], labels, "{manifest}");
    }
    // Defaults: one replica, a LoadBalancer on 80 and 443, the release's images.
    assert_eq!(desired.deployment.spec.as_ref().unwrap().replicas, Some(1));
    let service = desired.service.spec.as_ref().unwrap();
    assert_eq!(service.type_.as_deref(), Some("LoadBalancer"));
    let ports: Vec<_> = service
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.clone().unwrap(),
                p.port,
                p.target_port.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("http".to_owned(), 80, IntOrString::Int(8080)),
            ("https".to_owned(), 443, IntOrString::Int(8443)),
        ]
    );
    let images: Vec<_> = pod(&desired)
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.image.as_deref().unwrap()))
        .collect();
    assert_eq!(
        images,
        [
            (ENVOY_CONTAINER, "docker.io/envoyproxy/envoy:v1.36.2"),
            (AGENT_CONTAINER, "ghcr.io/legate-dev/legate-agent:0.1.0"),
        ]
    );
    assert!(desired.pod_disruption_budget.is_none() && desired.horizontal_pod_autoscaler.is_none());
    assert_golden("minimal", &desired);
}

#[test]
fn a_full_installation_produces_every_object() {
    let desired = build(&fixture("full"));
    let ns = || Some("infra".to_owned());
    assert_eq!(
        identities(&desired),
        [
            ("ServiceAccount", ns(), "public"),
            ("Role", ns(), "public"),
            ("RoleBinding", ns(), "public"),
            ("ClusterRole", None, "legate-infra-public"),
            ("ClusterRoleBinding", None, "legate-infra-public"),
            ("ConfigMap", ns(), "public-bootstrap"),
            ("Deployment", ns(), "public"),
            ("Service", ns(), "public"),
            ("PodDisruptionBudget", ns(), "public"),
            ("HorizontalPodAutoscaler", ns(), "public"),
        ]
        .map(|(k, n, name)| (k.to_owned(), n, name.to_owned()))
        .to_vec()
    );
    assert_golden("full", &desired);
}

/// The rules of the agent's contract, as JSON, so a test states them exactly.
fn rules_json(rules: &Option<Vec<PolicyRule>>) -> Value {
    serde_json::to_value(rules).unwrap()
}

const READ: [&str; 3] = ["get", "list", "watch"];

/// What the agent of `edge` uses in its own namespace, whatever it admits.
fn own_namespace_rules() -> Value {
    json!([
        {"apiGroups": ["legate.dev"], "resources": ["gatewayinstallations"], "verbs": READ},
        {"apiGroups": ["legate.dev"], "resources": ["gatewayinstallations/status"],
         "resourceNames": ["edge"], "verbs": ["get", "patch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": ["edge-agent-status"], "verbs": ["get", "update", "patch"]},
        // its own Pod, so `/drain` acts only while the Pod is being deleted
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ])
}

/// What the agent uses in each namespace it admits routes from, Events aside.
fn route_rules_without_events() -> Value {
    let kinds = legate_operator::build::ROUTE_RESOURCES;
    let status: Vec<String> = kinds.iter().map(|k| format!("{k}/status")).collect();
    json!([
        {"apiGroups": ["getambassador.io"], "resources": kinds, "verbs": READ},
        {"apiGroups": ["getambassador.io"], "resources": status, "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["services", "secrets", "endpoints"], "verbs": READ},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ},
    ])
}

fn route_rules() -> Value {
    let mut rules = route_rules_without_events();
    let events = own_namespace_rules().as_array().unwrap()[5..].to_vec();
    rules.as_array_mut().unwrap().extend(events);
    rules
}

fn concat(a: Value, b: Value) -> Value {
    let mut out = a.as_array().unwrap().clone();
    out.extend(b.as_array().unwrap().iter().cloned());
    Value::Array(out)
}

/// `minimal`, admitting routes `from` as given.
fn admitting(from: FromNamespaces, selector: Option<LabelSelector>) -> GatewayInstallation {
    let mut gwi = fixture("minimal");
    gwi.spec.allowed_routes = Some(AllowedRoutes {
        namespaces: Some(RouteNamespaces {
            from: Some(from),
            selector,
        }),
    });
    gwi
}

fn namespace(name: &str, labels: Value) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

/// team-a and team-b labelled `legate.dev/gateway: edge`, team-c `internal`, the installation's
/// own namespace unlabelled.
fn cluster_namespaces() -> Vec<Namespace> {
    vec![
        namespace("gateways", json!({})),
        namespace("team-b", json!({"legate.dev/gateway": "edge"})),
        namespace(
            "team-a",
            json!({"legate.dev/gateway": "edge", "tier": "web"}),
        ),
        namespace("team-c", json!({"legate.dev/gateway": "internal"})),
    ]
}

fn edge_selector() -> LabelSelector {
    serde_json::from_value(json!({"matchLabels": {"legate.dev/gateway": "edge"}})).unwrap()
}

const SUBJECTS: fn() -> Value =
    || json!([{"kind": "ServiceAccount", "name": "edge", "namespace": "gateways"}]);

fn role_ref(kind: &str, name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name})
}

fn every_rule(desired: &Desired) -> Vec<PolicyRule> {
    let mut rules = desired.rbac.role.rules.clone().unwrap();
    match &desired.rbac.routes {
        RouteAccess::OwnNamespace => {}
        RouteAccess::AllNamespaces { role, .. } => rules.extend(role.rules.clone().unwrap()),
        RouteAccess::Selected {
            role,
            namespaces_role,
            ..
        } => {
            rules.extend(role.rules.clone().unwrap());
            rules.extend(namespaces_role.rules.clone().unwrap());
        }
    }
    rules
}

#[test]
fn rbac_for_same_namespace_routes_is_one_role_in_that_namespace() {
    let desired = build(&fixture("minimal"));
    let rbac = &desired.rbac;
    assert_eq!(rbac.routes, RouteAccess::OwnNamespace);
    assert_eq!(rbac.role.metadata.namespace.as_deref(), Some("gateways"));
    assert_eq!(
        rules_json(&rbac.role.rules),
        concat(own_namespace_rules(), route_rules_without_events())
    );
    assert_eq!(
        serde_json::to_value(&rbac.binding.role_ref).unwrap(),
        role_ref("Role", "edge")
    );
    assert_eq!(
        serde_json::to_value(&rbac.binding.subjects).unwrap(),
        SUBJECTS()
    );
    // Only namespaced objects: nothing cluster-wide at all.
    assert!(
        desired
            .manifests()
            .iter()
            .all(|m| m["metadata"]["namespace"] == "gateways")
    );
}

#[test]
fn rbac_for_routes_from_all_namespaces_binds_the_route_rules_cluster_wide() {
    // The namespaces are not even looked at.
    let desired = objects(
        &admitting(FromNamespaces::All, None),
        &Settings::default(),
        &cluster_namespaces(),
    )
    .unwrap();
    assert_eq!(rules_json(&desired.rbac.role.rules), own_namespace_rules());
    let RouteAccess::AllNamespaces { role, binding } = &desired.rbac.routes else {
        panic!(
            "expected a ClusterRoleBinding, got {:?}",
            desired.rbac.routes
        );
    };
    assert_eq!(rules_json(&role.rules), route_rules());
    assert_eq!(
        serde_json::to_value(&binding.role_ref).unwrap(),
        role_ref("ClusterRole", "legate-gateways-edge")
    );
    assert_eq!(serde_json::to_value(&binding.subjects).unwrap(), SUBJECTS());
    for metadata in [&role.metadata, &binding.metadata] {
        assert_eq!(metadata.name.as_deref(), Some("legate-gateways-edge"));
        assert_eq!(metadata.namespace, None);
        assert_eq!(metadata.owner_references, None);
        assert_eq!(
            metadata.labels.as_ref().unwrap()["legate.dev/owner-namespace"],
            "gateways"
        );
    }
    // Namespaces are read only to evaluate a selector.
    assert!(!granted(&every_rule(&desired), "list").contains(&("".into(), "namespaces".into())));
    assert_eq!(
        identities(&desired)[..5],
        [
            ("ServiceAccount", Some("gateways"), "edge"),
            ("Role", Some("gateways"), "edge"),
            ("RoleBinding", Some("gateways"), "edge"),
            ("ClusterRole", None, "legate-gateways-edge"),
            ("ClusterRoleBinding", None, "legate-gateways-edge"),
        ]
        .map(|(k, n, name)| (k.to_owned(), n.map(str::to_owned), name.to_owned()))
    );
}

#[test]
fn rbac_for_selected_namespaces_binds_the_route_rules_in_each_matching_namespace_only() {
    let desired = objects(
        &admitting(FromNamespaces::Selector, Some(edge_selector())),
        &Settings::default(),
        &cluster_namespaces(),
    )
    .unwrap();
    assert_eq!(rules_json(&desired.rbac.role.rules), own_namespace_rules());
    let RouteAccess::Selected {
        role,
        bindings,
        namespaces_role,
        namespaces_binding,
    } = &desired.rbac.routes
    else {
        panic!("expected RoleBindings, got {:?}", desired.rbac.routes);
    };
    assert_eq!(rules_json(&role.rules), route_rules());
    assert_eq!(role.metadata.name.as_deref(), Some("legate-gateways-edge"));
    // team-a and team-b, sorted; not team-c, not the installation's own namespace.
    let placed: Vec<_> = bindings
        .iter()
        .map(|b| {
            (
                b.metadata.namespace.as_deref().unwrap(),
                b.metadata.name.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        placed,
        [
            ("team-a", "legate-gateways-edge"),
            ("team-b", "legate-gateways-edge")
        ]
    );
    for binding in bindings {
        assert_eq!(
            serde_json::to_value(&binding.role_ref).unwrap(),
            role_ref("ClusterRole", "legate-gateways-edge")
        );
        assert_eq!(serde_json::to_value(&binding.subjects).unwrap(), SUBJECTS());
        // Kubernetes refuses an owner in another namespace: the labels name the installation.
        assert_eq!(binding.metadata.owner_references, None);
        assert_eq!(
            serde_json::to_value(&binding.metadata.labels).unwrap(),
            json!({
                "app.kubernetes.io/name": "legate-gateway",
                "app.kubernetes.io/instance": "edge",
                "app.kubernetes.io/managed-by": "legate-operator",
                "app.kubernetes.io/component": "gateway",
                "legate.dev/owner-namespace": "gateways",
            })
        );
    }
    // Namespaces, cluster-wide, read only: to evaluate the selector.
    assert_eq!(
        rules_json(&namespaces_role.rules),
        json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": READ}])
    );
    assert_eq!(
        namespaces_role.metadata.name.as_deref(),
        Some("legate-gateways-edge-namespaces")
    );
    assert_eq!(
        serde_json::to_value(&namespaces_binding.role_ref).unwrap(),
        role_ref("ClusterRole", "legate-gateways-edge-namespaces")
    );
    assert_eq!(
        serde_json::to_value(&namespaces_binding.subjects).unwrap(),
        SUBJECTS()
    );
    // Nothing binds the route rules cluster-wide.
    assert!(
        desired
            .manifests()
            .iter()
            .filter(|m| m["kind"] == "ClusterRoleBinding")
            .all(|m| m["roleRef"]["name"] == "legate-gateways-edge-namespaces")
    );
}

#[test]
fn a_selector_admits_by_match_expressions_and_never_a_terminating_namespace() {
    let selector: LabelSelector = serde_json::from_value(json!({"matchExpressions": [
        {"key": "legate.dev/gateway", "operator": "In", "values": ["edge", "internal"]},
        {"key": "tier", "operator": "DoesNotExist"},
    ]}))
    .unwrap();
    let mut namespaces = cluster_namespaces();
    namespaces.push(
        serde_json::from_value(json!({
            "metadata": {"name": "team-d", "labels": {"legate.dev/gateway": "edge"},
                         "deletionTimestamp": "2026-11-22T00:00:00Z"},
            "status": {"phase": "Terminating"},
        }))
        .unwrap(),
    );
    let desired = objects(
        &admitting(FromNamespaces::Selector, Some(selector)),
        &Settings::default(),
        &namespaces,
    )
    .unwrap();
    let RouteAccess::Selected { bindings, .. } = &desired.rbac.routes else {
        panic!("expected RoleBindings");
    };
    let admitted: Vec<_> = bindings
        .iter()
        .map(|b| b.metadata.namespace.clone().unwrap())
        .collect();
    assert_eq!(admitted, ["team-b", "team-c"]);

    // An empty selector admits every namespace, as in Kubernetes.
    let desired = objects(
        &admitting(FromNamespaces::Selector, Some(LabelSelector::default())),
        &Settings::default(),
        &cluster_namespaces(),
    )
    .unwrap();
    let RouteAccess::Selected { bindings, .. } = &desired.rbac.routes else {
        panic!("expected RoleBindings");
    };
    assert_eq!(bindings.len(), 4);
}

#[test]
fn a_selector_the_api_server_would_refuse_names_the_field() {
    let bad = |requirement: Value| -> LabelSelector {
        serde_json::from_value(json!({"matchExpressions": [requirement]})).unwrap()
    };
    let cases = [
        (
            Some(bad(json!({"key": "a", "operator": "In", "values": []}))),
            r#"spec.allowedRoutes.namespaces.selector: matchExpressions[0]: operator "In" needs values"#,
        ),
        (
            Some(bad(
                json!({"key": "a", "operator": "Exists", "values": ["x"]}),
            )),
            r#"spec.allowedRoutes.namespaces.selector: matchExpressions[0]: operator "Exists" takes no values"#,
        ),
        // Before Kubernetes 1.25 the CRD's rule requiring a selector is not enforced.
        (None, "spec.allowedRoutes.namespaces.selector is missing"),
    ];
    for (selector, message) in cases {
        let gwi = admitting(FromNamespaces::Selector, selector);
        let error = objects(&gwi, &Settings::default(), &cluster_namespaces()).unwrap_err();
        assert_eq!(error.field(), "spec.allowedRoutes.namespaces.selector");
        assert_eq!(error.to_string(), message);
    }
    let gwi = admitting(
        FromNamespaces::Selector,
        Some(bad(
            json!({"key": "a", "operator": "Near", "values": ["x"]}),
        )),
    );
    let error = objects(&gwi, &Settings::default(), &[]).unwrap_err();
    assert_eq!(error.field(), "spec.allowedRoutes.namespaces.selector");
}

#[test]
fn the_agent_never_gets_a_wildcard_or_a_destructive_verb() {
    for gwi in [
        fixture("minimal"),
        admitting(FromNamespaces::All, None),
        admitting(FromNamespaces::Selector, Some(edge_selector())),
    ] {
        let desired = objects(&gwi, &Settings::default(), &cluster_namespaces()).unwrap();
        let rules = every_rule(&desired);
        no_wildcards(&rules);
        for verb in [
            "delete",
            "deletecollection",
            "update",
            "escalate",
            "bind",
            "impersonate",
        ] {
            let granted = granted(&rules, verb);
            // `update` only on its own Lease (resourceNames: the Lease elections use PUT).
            let allowed: &[(String, String)] = if verb == "update" {
                &[("coordination.k8s.io".to_owned(), "leases".to_owned())]
            } else {
                &[]
            };
            assert_eq!(granted, allowed, "{verb}");
        }
    }
}

#[test]
fn with_autoscaling_the_deployment_leaves_replicas_to_the_hpa() {
    let desired = build(&fixture("full"));
    assert_eq!(desired.deployment.spec.as_ref().unwrap().replicas, None);
    let hpa = serde_json::to_value(desired.horizontal_pod_autoscaler.as_ref().unwrap()).unwrap();
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(
        hpa["spec"],
        json!({
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "public"},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
            }],
        })
    );
    let pdb = serde_json::to_value(desired.pod_disruption_budget.as_ref().unwrap()).unwrap();
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(
        pdb["spec"],
        json!({
            "minAvailable": 1,
            "selector": {"matchLabels": {
                "app.kubernetes.io/name": "legate-gateway",
                "app.kubernetes.io/instance": "public",
            }},
        })
    );

    // Without autoscaling, replicas come from the spec.
    let mut gwi = fixture("full");
    gwi.spec.autoscaling = None;
    gwi.spec.replicas = Some(legate_crds::fields::Count::new(3).unwrap());
    let desired = build(&gwi);
    assert_eq!(desired.deployment.spec.as_ref().unwrap().replicas, Some(3));
    assert!(desired.horizontal_pod_autoscaler.is_none());
}

#[test]
fn selectors_are_the_stable_instance_labels_only() {
    let expected = json!({
        "app.kubernetes.io/name": "legate-gateway",
        "app.kubernetes.io/instance": "public",
    });
    let desired = build(&fixture("full"));
    let deployment = serde_json::to_value(&desired.deployment).unwrap();
    assert_eq!(
        deployment["spec"]["selector"],
        json!({"matchLabels": expected})
    );
    let service = serde_json::to_value(&desired.service).unwrap();
    assert_eq!(service["spec"]["selector"], expected);
    // The pods carry the selector's labels (and more).
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&pod_labels[key], value);
    }
}

#[test]
fn changing_the_envoy_image_changes_the_deployment_only() {
    let before = build(&fixture("minimal"));
    let mut gwi = fixture("minimal");
    gwi.spec.envoy = Some(ContainerSettings {
        image: Some("docker.io/envoyproxy/envoy:v1.37.0".to_owned()),
        ..ContainerSettings::default()
    });
    let after = build(&gwi);
    assert_ne!(before.deployment, after.deployment);
    assert_eq!(
        container(&after, ENVOY_CONTAINER).image.as_deref(),
        Some("docker.io/envoyproxy/envoy:v1.37.0")
    );
    assert_eq!(
        Desired {
            deployment: before.deployment.clone(),
            ..after
        },
        before
    );
}

#[test]
fn the_settings_supply_default_images() {
    let settings = Settings {
        envoy_image: "mirror.internal/envoy:v1.36.2".to_owned(),
        agent_image: "mirror.internal/legate-agent:0.1.0".to_owned(),
        ..Settings::default()
    };
    let desired = objects(&fixture("minimal"), &settings, &[]).unwrap();
    assert_eq!(
        container(&desired, ENVOY_CONTAINER).image.as_deref(),
        Some("mirror.internal/envoy:v1.36.2")
    );
    assert_eq!(
        container(&desired, AGENT_CONTAINER).image.as_deref(),
        Some("mirror.internal/legate-agent:0.1.0")
    );
}

#[test]
fn the_config_hash_follows_the_bootstrap() {
    let first = build(&fixture("minimal"));
    let second = build(&fixture("minimal"));
    // Stable: the same installation always hashes the same (no churn across restarts).
    assert_eq!(pod_hash(&first), pod_hash(&second));
    let bootstrap = &first.config_map.data.as_ref().unwrap()[BOOTSTRAP_KEY];
    assert_eq!(pod_hash(&first), config_hash(bootstrap));
    assert_eq!(pod_hash(&first).len(), 16);

    // The agent reads the ambassador id from its installation and follows it: changing it
    // changes no object, so no pod rolls.
    let mut gwi = fixture("minimal");
    gwi.spec.ambassador_id = Some("internal".to_owned());
    assert_eq!(build(&gwi), first);

    // The node id and cluster are in the bootstrap: another installation, another hash.
    let mut gwi = fixture("minimal");
    gwi.metadata.name = Some("internal".to_owned());
    let renamed = build(&gwi);
    assert_ne!(pod_hash(&renamed), pod_hash(&first));
    assert_eq!(
        renamed.config_map.data.as_ref().unwrap()[BOOTSTRAP_KEY],
        legate_operator::build::bootstrap_yaml("gateways", "internal")
    );
}

#[test]
fn the_bootstrap_points_envoy_at_the_agent_over_loopback() {
    let desired = build(&fixture("minimal"));
    let yaml = &desired.config_map.data.as_ref().unwrap()[BOOTSTRAP_KEY];
    let bootstrap: Value = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!(
        bootstrap["node"],
        json!({"id": "gateways.edge", "cluster": "edge"})
    );
    assert_eq!(
        bootstrap["admin"]["address"]["socket_address"],
        json!({"address": "127.0.0.1", "port_value": 19000})
    );
    let ads = &bootstrap["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
        [0]["endpoint"]["address"]["socket_address"];
    assert_eq!(ads, &json!({"address": "127.0.0.1", "port_value": 18000}));
    // Mounted where Envoy reads it.
    let envoy = container(&desired, ENVOY_CONTAINER);
    let args = envoy.args.clone().unwrap();
    assert!(
        args.windows(2)
            .any(|w| w == ["-c", "/etc/envoy/bootstrap.yaml"])
    );
    let volume = pod(&desired)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.config_map.is_some())
        .unwrap();
    assert_eq!(volume.config_map.as_ref().unwrap().name, "edge-bootstrap");
    let mount = envoy
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == volume.name)
        .unwrap();
    assert_eq!(mount.mount_path, "/etc/envoy");
}

#[test]
fn both_containers_run_hardened() {
    for case in ["minimal", "full"] {
        let desired = build(&fixture(case));
        let pod = pod(&desired);
        assert_eq!(pod.containers.len(), 2);
        for c in &pod.containers {
            let sc = serde_json::to_value(c.security_context.as_ref().unwrap()).unwrap();
            assert_eq!(sc["runAsNonRoot"], true, "{}", c.name);
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{}", c.name);
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c.name);
            assert_eq!(sc["capabilities"], json!({"drop": ["ALL"]}), "{}", c.name);
            assert_eq!(
                sc["seccompProfile"],
                json!({"type": "RuntimeDefault"}),
                "{}",
                c.name
            );
            assert!(sc["runAsUser"].as_i64().unwrap() > 0, "{}", c.name);
            assert_eq!(sc.get("privileged"), None);
        }
        assert_eq!(
            pod.service_account_name.as_deref(),
            desired.service_account.metadata.name.as_deref()
        );
        assert_eq!(pod.host_network, None);
    }
}

#[test]
fn the_agent_is_probed_and_envoy_drains_before_it_stops() {
    let desired = build(&fixture("minimal"));
    let agent = serde_json::to_value(container(&desired, AGENT_CONTAINER)).unwrap();
    assert_eq!(
        agent["args"],
        json!([
            "run",
            "--ads-address",
            "127.0.0.1:18000",
            "--metrics-address",
            "0.0.0.0:9090",
            "--log-format",
            "json",
            "--envoy-admin-address",
            "127.0.0.1:19000",
            "--envoy-stats-address",
            "127.0.0.1:19001",
            "--drain-seconds",
            "15"
        ])
    );
    // Envoy's statistics listener is where the agent reads them, on loopback.
    let bootstrap: Value =
        serde_saphyr::from_str(&desired.config_map.data.as_ref().unwrap()[BOOTSTRAP_KEY]).unwrap();
    assert_eq!(
        bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"],
        json!({"address": "127.0.0.1", "port_value": 19001})
    );
    // One scrape target per pod: the usual annotations point at the agent's metrics port.
    let annotations = desired
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "9090");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    // The installation by name (the agent takes its ambassador id and allowed namespaces from
    // it), and the pod's namespace and name from the downward API.
    assert_eq!(
        agent["env"],
        json!([
            {"name": "LEGATE_INSTALLATION", "value": "gateways/edge"},
            {"name": "LEGATE_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ])
    );
    assert_eq!(
        agent["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "metrics"})
    );
    assert_eq!(
        agent["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "metrics"})
    );
    assert_eq!(
        agent["ports"],
        json!([{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}])
    );
    // Both containers stop only after the agent's `/drain` answered: an `httpGet`, which needs
    // no shell or client in either image; the port is a number because a named port resolves
    // against the hook's own container, and Envoy's has none.
    let envoy = serde_json::to_value(container(&desired, ENVOY_CONTAINER)).unwrap();
    for c in [&envoy, &agent] {
        assert_eq!(
            c["lifecycle"],
            json!({"preStop": {"httpGet": {"path": "/drain", "port": 9090}}}),
            "{}",
            c["name"]
        );
    }
    // Envoy drains for as long as the agent waits.
    let args = envoy["args"].as_array().unwrap();
    let drain_time = args.iter().position(|a| a == "--drain-time-s").unwrap();
    assert_eq!(args[drain_time + 1], "15");
    // The grace period outlasts the drain.
    assert!(pod(&desired).termination_grace_period_seconds.unwrap() > 15);
}

#[test]
fn the_service_follows_the_spec() {
    let desired = build(&fixture("full"));
    let service = serde_json::to_value(&desired.service).unwrap();
    assert_eq!(
        service["metadata"]["annotations"],
        json!({"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"})
    );
    assert_eq!(service["spec"]["type"], "NodePort");
    assert_eq!(
        service["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
            {"name": "admin-api", "port": 8081, "targetPort": 8081, "protocol": "TCP"},
        ])
    );
    let envoy = serde_json::to_value(container(&desired, ENVOY_CONTAINER)).unwrap();
    assert_eq!(
        envoy["ports"],
        json!([
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"name": "admin-api", "containerPort": 8081, "protocol": "TCP"},
        ])
    );
}

#[test]
fn an_invalid_image_names_the_field() {
    let mut gwi = fixture("minimal");
    gwi.spec.envoy = Some(ContainerSettings {
        image: Some("Envoy Proxy:latest".to_owned()),
        ..ContainerSettings::default()
    });
    let error = objects(&gwi, &Settings::default(), &[]).unwrap_err();
    assert_eq!(error.field(), "spec.envoy.image");
    assert_eq!(
        error.to_string(),
        r#"spec.envoy.image: "Envoy Proxy:latest" is not a valid image reference"#
    );

    let mut gwi = fixture("minimal");
    gwi.spec.agent = Some(ContainerSettings {
        image: Some("ghcr.io/legate-dev/legate-agent:".to_owned()),
        ..ContainerSettings::default()
    });
    let error = objects(&gwi, &Settings::default(), &[]).unwrap_err();
    assert_eq!(error.field(), "spec.agent.image");
}

#[test]
fn a_missing_uid_names_the_field() {
    let mut gwi = fixture("minimal");
    gwi.metadata.uid = None;
    let error = objects(&gwi, &Settings::default(), &[]).unwrap_err();
    assert_eq!(
        error,
        BuildError::Missing {
            field: "metadata.uid"
        }
    );
    assert_eq!(error.to_string(), "metadata.uid is missing");
}

#[test]
fn clashing_ports_name_the_field() {
    let port = |name: &str, port: i64, target: Option<i64>| GatewayPort {
        name: name.to_owned(),
        port: legate_crds::fields::Port::new(port).unwrap(),
        target_port: target.map(|t| legate_crds::fields::Port::new(t).unwrap()),
        node_port: None,
    };
    let cases = [
        (
            vec![port("http", 80, None), port("http", 81, None)],
            "spec.service.ports[1].name",
        ),
        (
            vec![port("http", 80, Some(8080)), port("web", 81, Some(8080))],
            "spec.service.ports[1].targetPort",
        ),
        (
            vec![port("http", 80, Some(8080)), port("web", 80, Some(8081))],
            "spec.service.ports[1].port",
        ),
        (
            vec![port("metrics", 9090, None)],
            "spec.service.ports[0].targetPort",
        ),
        (
            vec![port("admin", 80, Some(19000))],
            "spec.service.ports[0].targetPort",
        ),
        (
            vec![port("a-very-long-port-name", 80, None)],
            "spec.service.ports[0].name",
        ),
    ];
    for (ports, field) in cases {
        let mut gwi = fixture("minimal");
        gwi.spec.service = Some(ServiceSettings {
            ports,
            ..ServiceSettings::default()
        });
        let error = objects(&gwi, &Settings::default(), &[]).unwrap_err();
        assert_eq!(error.field(), field, "{error}");
    }
}

#[test]
fn metadata_the_builders_cannot_do_without_is_named() {
    let mut gwi = fixture("minimal");
    gwi.metadata.namespace = None;
    let error = objects(&gwi, &Settings::default(), &[]).unwrap_err();
    assert_eq!(error.field(), "metadata.namespace");

    // The name becomes the Service's name and a label value: at most 63 characters.
    let mut gwi = fixture("minimal");
    gwi.metadata.name = Some("g".repeat(64));
    let error = objects(&gwi, &Settings::default(), &[]).unwrap_err();
    assert_eq!(error.field(), "metadata.name");
    gwi.metadata.name = Some("g".repeat(63));
    assert!(objects(&gwi, &Settings::default(), &[]).is_ok());
}

#[test]
fn the_agent_is_granted_every_route_kind_the_crds_define() {
    let mut defined: Vec<String> = legate_crds::crds()
        .into_iter()
        .filter(|crd| crd.spec.group == "getambassador.io")
        .map(|crd| crd.spec.names.plural)
        .collect();
    defined.sort();
    let mut granted: Vec<String> = legate_operator::build::ROUTE_RESOURCES
        .iter()
        .map(|r| r.to_string())
        .collect();
    granted.sort();
    assert_eq!(granted, defined);
}
