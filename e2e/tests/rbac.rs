//! The operator's RBAC (`config/rbac`) lets it do its job and hand agents their permissions, and
//! nothing more. The manifests are created under unique names in a test namespace, then the test
//! acts as the operator's ServiceAccount through impersonation (`kubectl --as`).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use legate_e2e::{
    Resolver, TestNamespace, client, create, error_message, install_crds, kubectl, read_dir_docs,
    repo_root, unique_name,
};
use serde_json::{Value, json};

/// The permissions the operator grants each gateway's agent (in a ClusterRole it creates).
fn agent_cluster_role(name: &str) -> Value {
    let kinds = legate_operator::build::ROUTE_RESOURCES;
    let status: Vec<String> = kinds.iter().map(|k| format!("{k}/status")).collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [
            {"apiGroups": ["getambassador.io"], "resources": kinds, "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["getambassador.io"], "resources": status, "verbs": ["patch", "update"]},
            {"apiGroups": [""], "resources": ["services", "secrets", "namespaces"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        ],
    })
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
    // the lease role is namespaced: nothing outside the operator's namespace
    let out = kubectl(&[
        "auth",
        "can-i",
        "update",
        "leases.coordination.k8s.io",
        &as_operator,
        "-n",
        "default",
    ])?;
    if String::from_utf8_lossy(&out.stdout).trim() == "yes" {
        failures.push("the operator can update leases outside its namespace".into());
    }

    // it can hand an agent its permissions (RBAC refuses to grant what the granter lacks)
    let role = agent_cluster_role(&format!("legate-agent-{suffix}"));
    let file = std::env::temp_dir().join(format!("legate-agent-role-{suffix}.json"));
    std::fs::write(&file, serde_json::to_vec(&role)?).context("writing the agent role")?;
    let out = kubectl(&[
        "create",
        "--dry-run=server",
        "-f",
        file.to_str().unwrap_or_default(),
        &as_operator,
    ])?;
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        failures.push(format!(
            "the operator may not create the agent's ClusterRole: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
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
