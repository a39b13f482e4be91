//! The pure builders, scenario by scenario: an installation (YAML fixture under `golden/`) in,
//! the objects the operator would apply out, compared as data.
//!
//! `golden/<case>.output.yaml` holds every manifest of a case; regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p legate-operator --test build` and review the diff.

use std::{fs, path::PathBuf};

use k8s_openapi::{
    api::{
        core::v1::{Container, PodSpec},
        rbac::v1::PolicyRule,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use legate_crds::gateway_installation::{
    ContainerSettings, FromNamespaces, GatewayInstallation, GatewayPort, RouteNamespaces,
    ServiceSettings,
};
use legate_operator::build::{
    AGENT_CONTAINER, BOOTSTRAP_KEY, BuildError, CONFIG_HASH_ANNOTATION, Desired, ENVOY_CONTAINER,
    Rbac, Settings, config_hash, objects,
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
    objects(gwi, &Settings::default()).unwrap()
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

fn rules(desired: &Desired) -> &[PolicyRule] {
    match &desired.rbac {
        Rbac::Namespaced { role, .. } => role.rules.as_deref().unwrap(),
        Rbac::Cluster { role, .. } => role.rules.as_deref().unwrap(),
    }
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
        assert!(rule.non_resource_urls.is_none() && rule.resource_names.is_none());
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

#[test]
fn rbac_for_same_namespace_routes_is_a_namespaced_least_privilege_role() {
    let desired = build(&fixture("minimal"));
    let Rbac::Namespaced { role, binding } = &desired.rbac else {
        panic!("expected a Role, got {:?}", desired.rbac);
    };
    assert_eq!(role.metadata.namespace.as_deref(), Some("gateways"));
    let rules = role.rules.as_deref().unwrap();
    no_wildcards(rules);
    let kinds = [
        "authservices",
        "hosts",
        "listeners",
        "mappings",
        "modules",
        "ratelimitservices",
        "tcpmappings",
        "tlscontexts",
    ];
    let mut read: Vec<(String, String)> = kinds
        .iter()
        .map(|k| ("getambassador.io".to_owned(), (*k).to_owned()))
        .collect();
    read.extend(
        [
            ("", "secrets"),
            ("", "services"),
            ("discovery.k8s.io", "endpointslices"),
        ]
        .map(|(g, r)| (g.to_owned(), r.to_owned())),
    );
    read.sort();
    for verb in ["get", "list", "watch"] {
        assert_eq!(granted(rules, verb), read, "{verb}");
    }
    let status: Vec<_> = kinds
        .iter()
        .map(|k| ("getambassador.io".to_owned(), format!("{k}/status")))
        .collect();
    assert_eq!(granted(rules, "update"), status);
    let mut patch = status.clone();
    patch.extend([
        ("".to_owned(), "events".to_owned()),
        ("events.k8s.io".to_owned(), "events".to_owned()),
    ]);
    patch.sort();
    assert_eq!(granted(rules, "patch"), patch);
    assert_eq!(
        granted(rules, "create"),
        [("", "events"), ("events.k8s.io", "events")].map(|(g, r)| (g.to_owned(), r.to_owned()))
    );
    for verb in [
        "delete",
        "deletecollection",
        "escalate",
        "bind",
        "impersonate",
    ] {
        assert_eq!(granted(rules, verb), [], "{verb}");
    }
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(binding.role_ref.name, "edge");
    let subjects = serde_json::to_value(&binding.subjects).unwrap();
    assert_eq!(
        subjects,
        json!([{"kind": "ServiceAccount", "name": "edge", "namespace": "gateways"}])
    );
}

#[test]
fn rbac_for_routes_from_other_namespaces_is_a_cluster_role_the_finalizer_removes() {
    for from in [FromNamespaces::All, FromNamespaces::Selector] {
        let mut gwi = fixture("minimal");
        gwi.spec.allowed_routes = Some(legate_crds::gateway_installation::AllowedRoutes {
            namespaces: Some(RouteNamespaces {
                from: Some(from),
                selector: None,
            }),
        });
        let desired = build(&gwi);
        let Rbac::Cluster { role, binding } = &desired.rbac else {
            panic!("{from:?}: expected a ClusterRole, got {:?}", desired.rbac);
        };
        for metadata in [&role.metadata, &binding.metadata] {
            assert_eq!(metadata.name.as_deref(), Some("legate-gateways-edge"));
            assert_eq!(metadata.namespace, None);
            assert_eq!(metadata.owner_references, None, "{from:?}");
            assert_eq!(
                metadata.labels.as_ref().unwrap()["legate.dev/owner-namespace"],
                "gateways"
            );
        }
        let rules = rules(&desired);
        no_wildcards(rules);
        assert!(granted(rules, "watch").contains(&("".to_owned(), "namespaces".to_owned())));
        assert!(granted(rules, "watch").contains(&("".to_owned(), "secrets".to_owned())));
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(binding.role_ref.name, "legate-gateways-edge");
        assert_eq!(
            binding.subjects.as_ref().unwrap()[0].namespace.as_deref(),
            Some("gateways")
        );
    }
    // Same namespace only: no namespaces access either.
    let same = build(&fixture("minimal"));
    assert!(!granted(rules(&same), "get").contains(&("".to_owned(), "namespaces".to_owned())));
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
    let desired = objects(&fixture("minimal"), &settings).unwrap();
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

    // The ambassador id is an agent flag, not part of the bootstrap: the agent's args change,
    // the hash does not.
    let mut gwi = fixture("minimal");
    gwi.spec.ambassador_id = Some("internal".to_owned());
    let other_id = build(&gwi);
    assert_eq!(pod_hash(&other_id), pod_hash(&first));
    assert_eq!(other_id.config_map, first.config_map);
    let args = container(&other_id, AGENT_CONTAINER).args.clone().unwrap();
    assert!(
        args.windows(2)
            .any(|w| w == ["--ambassador-id", "internal"])
    );

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
            "--ambassador-id",
            "default",
            "--log-format",
            "json"
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
    let envoy = container(&desired, ENVOY_CONTAINER);
    let hook = envoy.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
    let command = hook
        .exec
        .as_ref()
        .unwrap()
        .command
        .clone()
        .unwrap()
        .join(" ");
    assert!(command.contains("/dev/tcp/127.0.0.1/19000"), "{command}");
    assert!(
        command.contains("POST /drain_listeners?graceful"),
        "{command}"
    );
    assert!(command.ends_with("sleep 15"), "{command}");
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
    let error = objects(&gwi, &Settings::default()).unwrap_err();
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
    let error = objects(&gwi, &Settings::default()).unwrap_err();
    assert_eq!(error.field(), "spec.agent.image");
}

#[test]
fn a_missing_uid_names_the_field() {
    let mut gwi = fixture("minimal");
    gwi.metadata.uid = None;
    let error = objects(&gwi, &Settings::default()).unwrap_err();
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
        let error = objects(&gwi, &Settings::default()).unwrap_err();
        assert_eq!(error.field(), field, "{error}");
    }
}

#[test]
fn metadata_the_builders_cannot_do_without_is_named() {
    let mut gwi = fixture("minimal");
    gwi.metadata.namespace = None;
    let error = objects(&gwi, &Settings::default()).unwrap_err();
    assert_eq!(error.field(), "metadata.namespace");

    // The name becomes the Service's name and a label value: at most 63 characters.
    let mut gwi = fixture("minimal");
    gwi.metadata.name = Some("g".repeat(64));
    let error = objects(&gwi, &Settings::default()).unwrap_err();
    assert_eq!(error.field(), "metadata.name");
    gwi.metadata.name = Some("g".repeat(63));
    assert!(objects(&gwi, &Settings::default()).is_ok());
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
