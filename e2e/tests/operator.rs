//! The operator against a real API server: installed from `config/default`, run as a local
//! process acting as its own ServiceAccount (impersonation, so `config/rbac` is what it gets),
//! it turns the sample installation into a gateway fleet, tells the story in conditions and
//! Events, corrects a hand edit, writes nothing when nothing changed, and on deletion every child
//! is collected, cluster-scoped ones included.
//!
//! Kubernetes 1.20 (kube-local) serves neither `policy/v1` nor `autoscaling/v2`: there the sample,
//! which asks for a PDB and an HPA, must be `Degraded` with that reason and everything else must
//! still serve.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result, bail};
use legate_crds::gateway_installation::GatewayInstallation;
use legate_e2e::{
    Access, Operator, TestNamespace, can, client, install_default, kubectl_ok, read_docs,
    repo_root, server_minor, unique_name, wait_for,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
/// Every kind the operator may create, for `kubectl get`.
const CHILD_KINDS: &str = "serviceaccounts,configmaps,services,deployments.apps,\
    roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io,\
    clusterroles.rbac.authorization.k8s.io,clusterrolebindings.rbac.authorization.k8s.io,\
    poddisruptionbudgets.policy,horizontalpodautoscalers.autoscaling";

/// A child as `kubectl get` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    kind: String,
    name: String,
    resource_version: String,
    owner_uid: Option<String>,
}

/// Every object the operator made for the installation in `namespace`.
fn children(namespace: &str) -> Result<BTreeMap<(String, String), Seen>> {
    let out = kubectl_ok(&[
        "get",
        CHILD_KINDS,
        "-A",
        "-l",
        "app.kubernetes.io/managed-by=legate-operator",
        "-o",
        "json",
    ])?;
    let list: Value = serde_json::from_str(&out)?;
    let mut seen = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let meta = &item["metadata"];
        let mine = meta["namespace"] == namespace
            || meta["labels"]["legate.dev/owner-namespace"] == namespace;
        if !mine {
            continue;
        }
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let child = Seen {
            kind: s(&item["kind"]),
            name: s(&meta["name"]),
            resource_version: s(&meta["resourceVersion"]),
            owner_uid: meta["ownerReferences"][0]["uid"]
                .as_str()
                .map(str::to_owned),
        };
        seen.insert((child.kind.clone(), child.name.clone()), child);
    }
    Ok(seen)
}

fn installation(namespace: &str) -> Result<Value> {
    let out = kubectl_ok(&["get", "gwi", "edge", "-n", namespace, "-o", "json"])?;
    Ok(serde_json::from_str(&out)?)
}

/// (status, reason, message) of the installation's condition `type_`.
fn condition(gwi: &Value, type_: &str) -> Option<(String, String, String)> {
    let c = gwi["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    Some((s("status"), s("reason"), s("message")))
}

/// Who holds the operator's Lease.
fn lease_holder() -> Result<String> {
    kubectl_ok(&[
        "get",
        "lease",
        "legate-operator",
        "-n",
        "legate-system",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
async fn two_operators_never_both_reconcile_and_a_stopped_leader_hands_over() -> Result<()> {
    let client = client().await?;
    install_default(server_minor(&client).await?)?;
    let a = Operator::start("e2e-a")?;
    let b = Operator::start("e2e-b")?;
    let first = wait_for("a lease holder", WAIT, || async {
        let holder = lease_holder()?;
        Ok(["e2e-a", "e2e-b"]
            .contains(&holder.as_str())
            .then_some(holder))
    })
    .await
    .with_context(|| format!("a:\n{}\nb:\n{}", a.log(), b.log()))?;
    // Give the other one time to (wrongly) start too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leading = |o: &Operator| o.log().contains("holding the lease");
    assert_eq!(
        (leading(&a), leading(&b)),
        (first == "e2e-a", first == "e2e-b")
    );

    // A stopped leader releases the lease on its way out; the standby, which looks again when
    // the lease would have expired (15 s), takes over.
    let (mut leader, standby, next) = if first == "e2e-a" {
        (a, b, "e2e-b")
    } else {
        (b, a, "e2e-a")
    };
    let status = leader.stop()?;
    assert!(
        status.success(),
        "the leader exited with {status}:\n{}",
        leader.log()
    );
    let holder = lease_holder()?;
    assert!(
        holder.is_empty() || holder == next,
        "still held by {holder:?}"
    );
    wait_for(
        "the standby to take over",
        Duration::from_secs(25),
        || async { Ok((lease_holder()? == next).then_some(())) },
    )
    .await
    .with_context(|| standby.log())?;
    wait_for("the standby reconciling", WAIT, || async {
        Ok(leading(&standby).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
async fn an_installation_becomes_a_fleet_is_kept_in_shape_and_is_collected() -> Result<()> {
    let client = client().await?;
    let minor = server_minor(&client).await?;

    install_default(minor)?;
    let operator = Operator::start("e2e-operator")?;

    // The sample installation, in a namespace of the test's own.
    let ns = TestNamespace::create(&client, "legate-e2e-operator").await?;
    let sample = repo_root().join("config/samples/legate_v1alpha1_gatewayinstallation.yaml");
    let mut gwi = read_docs(&sample)?.remove(0).value;
    gwi["metadata"]["namespace"] = json!(ns.name);
    // A label no namespace carries, so which RoleBindings exist does not depend on what other
    // tests left behind (the selector's own test is `a_selector_grants_...` below).
    gwi["spec"]["allowedRoutes"]["namespaces"]["selector"] =
        json!({"matchLabels": {"legate.dev/e2e-gateway": ns.name}});
    let manifest = std::env::temp_dir().join(format!("{}.json", unique_name("legate-e2e-gwi")));
    std::fs::write(&manifest, serde_json::to_string(&gwi)?)?;
    kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()])?;
    let uid = installation(&ns.name)?["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();

    // Every child, namespaced ones owned by the installation, cluster-scoped ones labelled.
    let scaled = minor >= 23;
    let mut expected = vec![
        ("Role", "edge".to_owned()),
        ("RoleBinding", "edge".to_owned()),
        ("ClusterRole", format!("legate-{}-edge", ns.name)),
        ("ClusterRole", format!("legate-{}-edge-namespaces", ns.name)),
        (
            "ClusterRoleBinding",
            format!("legate-{}-edge-namespaces", ns.name),
        ),
        ("ConfigMap", "edge-bootstrap".to_owned()),
        ("Deployment", "edge".to_owned()),
        ("Service", "edge".to_owned()),
        ("ServiceAccount", "edge".to_owned()),
    ];
    if minor >= 21 {
        expected.push(("PodDisruptionBudget", "edge".to_owned()));
    }
    if scaled {
        expected.push(("HorizontalPodAutoscaler", "edge".to_owned()));
    }
    let mut expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n))
        .collect();
    expected.sort();
    let seen = wait_for("every child of the installation", WAIT, || async {
        let seen = children(&ns.name)?;
        Ok((seen.keys().cloned().collect::<Vec<_>>() == expected).then_some(seen))
    })
    .await
    .with_context(|| operator.log())?;
    for child in seen.values() {
        let cluster_scoped = child.kind.starts_with("Cluster");
        let owner = child.owner_uid.as_deref();
        assert_eq!(
            owner,
            (!cluster_scoped).then_some(uid.as_str()),
            "owner of {child:?}"
        );
    }

    // The controller-manager acts on the Deployment: its ReplicaSet appears.
    wait_for("the Deployment's ReplicaSet", WAIT, || async {
        let out = kubectl_ok(&["get", "replicasets", "-n", &ns.name, "-o", "json"])?;
        let list: Value = serde_json::from_str(&out)?;
        Ok(list["items"]
            .as_array()
            .is_some_and(|items| {
                items
                    .iter()
                    .any(|rs| rs["metadata"]["ownerReferences"][0]["name"] == "edge")
            })
            .then_some(()))
    })
    .await?;

    // Conditions: no kubelet runs the pods, so not ready, still progressing; on 1.20, degraded
    // over the PDB and HPA.
    let gwi = wait_for("the installation's settled status", WAIT, || async {
        let gwi = installation(&ns.name)?;
        let progressing = condition(&gwi, "Progressing");
        let settled = progressing.is_some_and(|c| c.1 == "WaitingForReplicas");
        Ok(settled.then_some(gwi))
    })
    .await
    .with_context(|| operator.log())?;
    let (ready, reason, _) = condition(&gwi, "Ready").unwrap();
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ReplicasNotReady")
    );
    assert_eq!(gwi["status"]["observedGeneration"], 1);
    let degraded = condition(&gwi, "Degraded").unwrap();
    if minor < 21 {
        assert_eq!(degraded.0, "True");
        assert_eq!(degraded.1, "UnsupportedByServer");
        assert!(
            degraded
                .2
                .contains("spec.podDisruptionBudget: the API server does not serve policy/v1"),
            "{degraded:?}"
        );
        assert!(degraded.2.contains("spec.autoscaling"), "{degraded:?}");
    } else if scaled {
        assert_eq!(degraded.0, "False", "{degraded:?}");
    }

    // `kubectl describe` tells the story.
    let described = kubectl_ok(&["describe", "gwi", "edge", "-n", &ns.name])?;
    for line in [
        "Created Deployment",
        "Created ClusterRole",
        "ReplicasNotReady",
    ] {
        assert!(
            described.contains(line),
            "describe lacks {line:?}:\n{described}"
        );
    }
    if minor < 21 {
        assert!(described.contains("UnsupportedByServer"), "{described}");
    }

    // Nothing changed: a reconcile (woken by a metadata-only edit) writes nothing.
    let before = children(&ns.name)?;
    let status_before = installation(&ns.name)?["status"].clone();
    kubectl_ok(&[
        "annotate",
        "gwi",
        "edge",
        "-n",
        &ns.name,
        "example.com/poke=1",
    ])?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(children(&ns.name)?, before, "children were written");
    assert_eq!(installation(&ns.name)?["status"], status_before);

    // A hand edit is put back; a hand-deleted Deployment comes back.
    kubectl_ok(&[
        "patch",
        "service",
        "edge",
        "-n",
        &ns.name,
        "--type=merge",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ])?;
    wait_for("the Service's type put back", WAIT, || async {
        let out = kubectl_ok(&["get", "service", "edge", "-n", &ns.name, "-o", "json"])?;
        let service: Value = serde_json::from_str(&out)?;
        Ok((service["spec"]["type"] == "LoadBalancer").then_some(()))
    })
    .await
    .with_context(|| operator.log())?;
    kubectl_ok(&[
        "delete",
        "deployment",
        "edge",
        "-n",
        &ns.name,
        "--wait=true",
    ])?;
    wait_for("the Deployment recreated", WAIT, || async {
        let seen = children(&ns.name)?;
        let key = ("Deployment".to_owned(), "edge".to_owned());
        Ok(seen
            .get(&key)
            .is_some_and(|d| d.resource_version != before[&key].resource_version)
            .then_some(()))
    })
    .await
    .with_context(|| operator.log())?;

    let metrics = operator.metrics()?;
    assert!(
        metrics.contains("legate_operator_reconciles_total{outcome=\"success\"}"),
        "{metrics}"
    );

    // Deletion: the finalizer removes the cluster-scoped children, the garbage collector the rest.
    kubectl_ok(&["delete", "gwi", "edge", "-n", &ns.name, "--wait=false"])?;
    wait_for(
        "every child collected",
        Duration::from_secs(120),
        || async {
            let seen = children(&ns.name)?;
            let gone = kubectl_ok(&["get", "gwi", "-n", &ns.name, "-o", "name"])?
                .trim()
                .is_empty();
            Ok((seen.is_empty() && gone).then_some(()))
        },
    )
    .await
    .with_context(|| operator.log())?;
    if operator.log().contains("panicked") {
        bail!("the operator panicked:\n{}", operator.log());
    }
    Ok(())
}

/// What a user may do, asked of the API server's authorizer; wrong answers collected.
struct Checks {
    client: kube::Client,
    user: String,
    failures: Vec<String>,
}

impl Checks {
    async fn may(&self, access: &Access<'_>) -> Result<bool> {
        can(&self.client, &self.user, access).await
    }

    /// Records a failure unless the answer to `access` is `allowed`.
    async fn expect(&mut self, access: Access<'_>, allowed: bool) -> Result<()> {
        if self.may(&access).await? != allowed {
            let should = if allowed { "should" } else { "should not" };
            self.failures
                .push(format!("{} {should} be allowed to {access}", self.user));
        }
        Ok(())
    }
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
async fn a_selector_grants_the_agent_exactly_the_namespaces_it_admits() -> Result<()> {
    let client = client().await?;
    install_default(server_minor(&client).await?)?;
    let operator = Operator::start("e2e-selector")?;

    let own = TestNamespace::create(&client, "legate-e2e-own").await?;
    // The label is unique to this run: no other namespace matches.
    let key = "legate.dev/e2e-admitted-by";
    let value = own.name.as_str();
    let a = TestNamespace::labelled(&client, "legate-e2e-team-a", &[(key, value)]).await?;
    let b = TestNamespace::labelled(&client, "legate-e2e-team-b", &[(key, value)]).await?;
    let c = TestNamespace::labelled(&client, "legate-e2e-team-c", &[]).await?;
    let gwi: GatewayInstallation = serde_json::from_value(json!({
        "apiVersion": "legate.dev/v1alpha1",
        "kind": "GatewayInstallation",
        "metadata": {"name": "edge", "namespace": own.name},
        "spec": {"allowedRoutes": {"namespaces": {
            "from": "Selector",
            "selector": {"matchLabels": {key: value}},
        }}},
    }))?;
    kube::Api::<GatewayInstallation>::namespaced(client.clone(), &own.name)
        .create(&Default::default(), &gwi)
        .await
        .context("creating the installation")?;

    let agent = Checks {
        client: client.clone(),
        user: format!("system:serviceaccount:{}:edge", own.name),
        failures: Vec::new(),
    };
    let (own_ns, a_ns, b_ns, c_ns) = (
        own.name.as_str(),
        a.name.as_str(),
        b.name.as_str(),
        c.name.as_str(),
    );
    fn secrets(ns: &str) -> Access<'_> {
        Access::new("list", "", "secrets", ns)
    }
    fn mappings(ns: &str) -> Access<'_> {
        Access::new("watch", "getambassador.io", "mappings", ns)
    }
    fn everywhere(access: Access<'_>) -> Access<'_> {
        Access {
            namespace: None,
            ..access
        }
    }

    // The operator applies the namespaced grants and the cluster-wide one (namespaces) one
    // after the other: wait for all of them before judging any.
    let namespaces = Access::new("watch", "", "namespaces", "");
    wait_for(
        "the agent admitted to both labelled namespaces",
        WAIT,
        || async {
            Ok((agent.may(&secrets(a_ns)).await?
                && agent.may(&secrets(b_ns)).await?
                && agent.may(&everywhere(namespaces.clone())).await?)
                .then_some(()))
        },
    )
    .await
    .with_context(|| operator.log())?;

    let mut agent = agent;
    for ns in [a_ns, b_ns] {
        agent.expect(secrets(ns), true).await?;
        agent.expect(mappings(ns), true).await?;
        agent
            .expect(Access::new("list", "", "endpoints", ns), true)
            .await?;
        let slices = Access::new("watch", "discovery.k8s.io", "endpointslices", ns);
        agent.expect(slices, true).await?;
        agent
            .expect(Access::new("create", "events.k8s.io", "events", ns), true)
            .await?;
        let delete = Access::new("delete", "getambassador.io", "mappings", ns);
        agent.expect(delete, false).await?;
    }
    let mapping_status = Access {
        subresource: Some("status"),
        name: Some("api"),
        ..Access::new("patch", "getambassador.io", "mappings", a_ns)
    };
    agent.expect(mapping_status, true).await?;
    // Not admitted: an unlabelled namespace, kube-system, and (unlabelled too) its own.
    for ns in [c_ns, "kube-system", own_ns] {
        agent.expect(secrets(ns), false).await?;
        agent.expect(mappings(ns), false).await?;
    }
    agent.expect(everywhere(secrets("")), false).await?;
    // Namespaces, cluster-wide, to evaluate the selector.
    agent.expect(everywhere(namespaces), true).await?;
    // Its own installation: read, and its status written; no other installation's status.
    let installations = Access::new("watch", "legate.dev", "gatewayinstallations", own_ns);
    agent.expect(installations, true).await?;
    let status_of = |name| Access {
        subresource: Some("status"),
        name: Some(name),
        ..Access::new("patch", "legate.dev", "gatewayinstallations", own_ns)
    };
    agent.expect(status_of("edge"), true).await?;
    agent.expect(status_of("another"), false).await?;
    // The Lease electing the status writer: created, renewed; no other Lease renewed.
    let create_lease = |ns| Access::new("create", "coordination.k8s.io", "leases", ns);
    agent.expect(create_lease(own_ns), true).await?;
    agent.expect(create_lease(a_ns), false).await?;
    let lease = |name| Access {
        name: Some(name),
        ..Access::new("update", "coordination.k8s.io", "leases", own_ns)
    };
    agent.expect(lease("edge-agent-status"), true).await?;
    agent.expect(lease("legate-operator"), false).await?;
    assert!(agent.failures.is_empty(), "{}", agent.failures.join("\n"));

    // A namespace labelled later is admitted soon after; one unlabelled, no longer.
    kubectl_ok(&["label", "namespace", c_ns, &format!("{key}={value}")])?;
    wait_for(
        "the agent admitted to a newly labelled namespace",
        WAIT,
        || async {
            Ok(
                (agent.may(&secrets(c_ns)).await? && agent.may(&mappings(c_ns)).await?)
                    .then_some(()),
            )
        },
    )
    .await
    .with_context(|| operator.log())?;
    kubectl_ok(&["label", "namespace", a_ns, &format!("{key}-")])?;
    wait_for(
        "the agent shut out of an unlabelled namespace",
        WAIT,
        || async {
            Ok(
                (!agent.may(&secrets(a_ns)).await? && !agent.may(&mappings(a_ns)).await?)
                    .then_some(()),
            )
        },
    )
    .await
    .with_context(|| operator.log())?;
    assert!(agent.may(&secrets(b_ns)).await?, "b stays admitted");

    // Deleted: the finalizer removes the RoleBindings in the admitted namespaces too.
    kubectl_ok(&["delete", "gwi", "edge", "-n", own_ns, "--wait=false"])?;
    wait_for(
        "every RoleBinding of the installation gone",
        WAIT,
        || async {
            let out = kubectl_ok(&[
                "get",
                "rolebindings.rbac.authorization.k8s.io",
                "-A",
                "-l",
                &format!("legate.dev/owner-namespace={own_ns}"),
                "-o",
                "name",
            ])?;
            Ok(out.trim().is_empty().then_some(()))
        },
    )
    .await
    .with_context(|| operator.log())?;
    wait_for("the agent shut out everywhere", WAIT, || async {
        Ok((!agent.may(&secrets(b_ns)).await? && !agent.may(&secrets(c_ns)).await?).then_some(()))
    })
    .await?;
    if operator.log().contains("panicked") {
        bail!("the operator panicked:\n{}", operator.log());
    }
    Ok(())
}
