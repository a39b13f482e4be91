//! The operator's RBAC (`config/rbac`) lets it do its job and hand agents their permissions, and
//! nothing more. The manifests are created under unique names in a test namespace, then the test
//! acts as the operator's ServiceAccount through impersonation (`kubectl --as`).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use legate_crds::gateway_installation::GatewayInstallation;
use legate_e2e::{
    Resolver, TestNamespace, client, create, error_message, install_crds, kubectl, read_dir_docs,
    repo_root, unique_name,
};
use legate_operator::build::{Settings, objects};
use serde_json::{Value, json};

/// The RBAC objects the operator builds for an installation `name` in `namespace` admitting routes
/// as `allowed_routes` says, with `namespace` itself labelled so a selector admits it (so every
/// RoleBinding lands in a namespace that exists).
fn agent_rbac(namespace: &str, name: &str, allowed_routes: Value) -> Result<Vec<Value>> {
    let gwi: GatewayInstallation = serde_json::from_value(json!({
        "apiVersion": "legate.dev/v1alpha1",
        "kind": "GatewayInstallation",
        "metadata": {"name": name, "namespace": namespace, "uid": "00000000-0000-0000-0000-000000000001"},
        "spec": {"allowedRoutes": allowed_routes},
    }))?;
    let labelled: Namespace = serde_json::from_value(json!({
        "metadata": {"name": namespace, "labels": {"legate.dev/e2e-rbac": "admitted"}},
    }))?;
    let desired = objects(&gwi, &Settings::default(), &[labelled])?;
    Ok(desired
        .manifests()
        .into_iter()
        .filter(|m| m["apiVersion"] == "rbac.authorization.k8s.io/v1")
        .map(|mut m| {
            // No such owner exists here: the garbage collector would delete the Role before its
            // RoleBinding is created. (tests/operator.rs has the real operator set owners.)
            if let Some(metadata) = m["metadata"].as_object_mut() {
                metadata.remove("ownerReferences");
            }
            m
        })
        .collect())
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
async fn operator_rbac_is_sufficient_and_least_privilege() -> Result<()> {
    let client = client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "legate-e2e-rbac").await?;
    let mut resolver = Resolver::new(client.clone());
    let suffix = unique_name("e2e");

    // config/rbac, renamed: cluster-scoped names get a suffix, the namespace is the test's
    let docs = read_dir_docs(&repo_root().join("config/rbac"), false)?;
    let mut renamed = BTreeMap::new();
    let mut created_cluster = Vec::new();
    for doc in docs.iter().filter(|d| d.kind() != "Kustomization") {
        let mut v = doc.value.clone();
        if matches!(doc.kind(), "ClusterRole" | "ClusterRoleBinding") {
            let name = v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let new = format!("{name}-{suffix}");
            renamed.insert(name, new.clone());
            v["metadata"]["name"] = json!(new);
            created_cluster.push((doc.kind().to_string(), v["metadata"]["name"].clone()));
        }
        if doc.kind() == "ClusterRoleBinding" {
            let role = v["roleRef"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            v["roleRef"]["name"] = json!(renamed.get(&role).cloned().unwrap_or(role));
        }
        for s in v["subjects"].as_array_mut().into_iter().flatten() {
            if s.get("namespace").is_some() {
                s["namespace"] = json!(ns.name);
            }
        }
        let res = create(&mut resolver, &v, &ns.name, false).await?;
        if let Err(e) = res {
            panic!("{}: refused: {}", doc.describe(), error_message(&e));
        }
    }

    let cleanup = ClusterCleanup(created_cluster);
    let as_operator = format!("--as=system:serviceaccount:{}:legate-operator", ns.name);
    let can_i = |verb: &str, resource: &str, namespaced: bool| -> Result<bool> {
        let mut args = vec!["auth", "can-i", verb, resource, as_operator.as_str()];
        if namespaced {
            args.extend(["-n", ns.name.as_str()]);
        }
        let out = kubectl(&args)?;
        Ok(String::from_utf8_lossy(&out.stdout).trim() == "yes")
    };

    let allowed = [
        ("watch", "gatewayinstallations.legate.dev"),
        ("patch", "gatewayinstallations.legate.dev/status"),
        ("create", "deployments.apps"),
        ("delete", "services"),
        ("create", "poddisruptionbudgets.policy"),
        ("create", "horizontalpodautoscalers.autoscaling"),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
        ("create", "events"),
        ("create", "events.events.k8s.io"),
        ("update", "leases.coordination.k8s.io"),
        // what it grants agents
        ("watch", "endpoints"),
        ("watch", "endpointslices.discovery.k8s.io"),
        ("watch", "namespaces"),
        ("create", "leases.coordination.k8s.io"),
    ];
    let denied = [
        ("delete", "secrets"),
        ("create", "secrets"),
        ("list", "nodes"),
        ("create", "pods"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
        ("create", "mappings.getambassador.io"),
        ("delete", "gatewayinstallations.legate.dev"),
    ];
    let mut failures = Vec::new();
    for (verb, res) in allowed {
        if !can_i(verb, res, true)? {
            failures.push(format!("the operator cannot {verb} {res}, and needs to"));
        }
    }
    for (verb, res) in denied {
        if can_i(verb, res, true)? {
            failures.push(format!("the operator can {verb} {res}, and should not"));
        }
    }
    // Leases: only what agents need of theirs (the operator's own election aside), no delete.
    if can_i("delete", "leases.coordination.k8s.io", true)? {
        failures.push("the operator can delete leases".into());
    }

    // It can hand an agent its permissions in every mode (RBAC refuses to grant what the granter
    // lacks): each object the operator builds, created as the operator, then deleted.
    let mut granted_cluster = Vec::new();
    for (name, allowed_routes) in [
        ("same", json!({})),
        ("all", json!({"namespaces": {"from": "All"}})),
        (
            "selected",
            json!({"namespaces": {"from": "Selector", "selector": {"matchLabels": {"legate.dev/e2e-rbac": "admitted"}}}}),
        ),
    ] {
        for manifest in agent_rbac(&ns.name, name, allowed_routes)? {
            let what = format!(
                "{} {}",
                manifest["kind"].as_str().unwrap_or_default(),
                manifest["metadata"]["name"].as_str().unwrap_or_default()
            );
            if manifest["metadata"].get("namespace").is_none() {
                granted_cluster.push((
                    manifest["kind"].as_str().unwrap_or_default().to_owned(),
                    manifest["metadata"]["name"].clone(),
                ));
            }
            let file =
                std::env::temp_dir().join(format!("{}.json", unique_name("legate-agent-rbac")));
            std::fs::write(&file, serde_json::to_vec(&manifest)?)
                .context("writing the agent's RBAC")?;
            let out = kubectl(&[
                "create",
                "-f",
                file.to_str().unwrap_or_default(),
                &as_operator,
            ])?;
            let _ = std::fs::remove_file(&file);
            if !out.status.success() {
                failures.push(format!(
                    "the operator may not create the agent's {what} ({name}): {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    let granted_cleanup = ClusterCleanup(granted_cluster);
    drop(granted_cleanup);
    drop(cleanup);
    assert!(
        failures.is_empty(),
        "RBAC problems:\n{}",
        failures.join("\n")
    );
    Ok(())
}

/// Deletes the cluster-scoped objects the test created, when dropped.
struct ClusterCleanup(Vec<(String, Value)>);

impl Drop for ClusterCleanup {
    fn drop(&mut self) {
        for (kind, name) in &self.0 {
            let name = name.as_str().unwrap_or_default();
            let what = format!("{}/{name}", kind.to_lowercase());
            let _ = kubectl(&["delete", &what, "--ignore-not-found"]);
        }
    }
}
