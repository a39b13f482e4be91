//! The whole chain as a user runs it, against a real API server (no kubelet: no Pod runs).
//!
//! `config/default` is installed and the operator runs as a local process acting as its
//! ServiceAccount. A GatewayInstallation admits two team namespaces by label; the operator makes
//! its Deployment and bootstrap ConfigMap. The test then does what a kubelet would: it starts the
//! pod from the Deployment's template — the agent container's `args` and `env` exactly
//! (`fieldRef`s resolved), acting as the template's ServiceAccount so the operator's RBAC is all
//! it gets, and Envoy with the container's args and the ConfigMap's bootstrap. Two teams apply
//! routes to small HTTP servers on 127.0.0.1; real requests go through Envoy, and every verdict
//! is read back from the API as a user would see it (`kubectl get`, `kubectl describe`).
//!
//! Then the status writes: none on a resync, none from a second replica, a standby that takes
//! the Lease when the leader stops and follows a later change; two installations with different
//! `ambassadorId`s sharing a route, each with its own entry; a burst of 1,000 Mappings built in a
//! handful of configurations. Slowest parts last.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams},
};
use legate_e2e::gateway::{
    self, ACCEPTED, Moved, PROGRAMMED, Pod, WAIT, condition, entry_verdict, fleet, get,
    gwi_resource, installations, mapping_resource, owned_entries, summary_verdict, verdicts,
    wait_verdict,
};
use legate_e2e::{
    HttpResponse, HttpUpstream, Operator, TestNamespace, client, http_get, install_default,
    kubectl_apply, kubectl_json, kubectl_ok, server_minor, wait_for,
};
use serde_json::Value;

/// The hostname the team-a Host serves (`*.example.com`); requests carry it.
const HOST_HEADER: &str = "shop.example.com";
/// The port the team-a Listener asks Envoy to listen on.
const LISTENER_PORT: u16 = 8080;
/// The port of the Listener only the `internal` gateway serves.
const INTERNAL_PORT: u16 = 8081;
const WRITES: &str = "legate_agent_status_writes_total";
const BUILDS: &str = "legate_agent_build_seconds_count";
/// How long "nothing is written" is watched for: the writer answers a change in milliseconds.
const QUIET: Duration = Duration::from_secs(3);

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
async fn two_teams_route_through_a_gateway_the_operator_installed() -> Result<()> {
    let mut world = World::default();
    let result = scenario(&mut world).await;
    if result.is_err() {
        world.print_logs();
    }
    result
}

/// Everything the scenario started, stopped when dropped (after its logs are printed on failure).
#[derive(Default)]
struct World {
    operator: Option<Operator>,
    pods: Vec<Pod>,
    upstreams: Vec<HttpUpstream>,
    namespaces: Vec<TestNamespace>,
}

impl World {
    fn print_logs(&self) {
        if let Some(o) = &self.operator {
            o.process.print_log();
        }
        for pod in &self.pods {
            pod.agent.print_log();
            pod.envoy.print_log();
        }
    }

    fn pod(&mut self, name: &str) -> &mut Pod {
        self.pods
            .iter_mut()
            .find(|p| p.name == name)
            .expect("a pod the scenario started")
    }
}

async fn scenario(world: &mut World) -> Result<()> {
    let client = client().await?;
    // 1. Installed as a user installs it; the operator acts as its own ServiceAccount.
    install_default(server_minor(&client).await?)?;
    world.operator = Some(Operator::start("e2e-gateway")?);

    // 2. A gateway admitting two team namespaces by label.
    let gw_ns = TestNamespace::create(&client, "legate-e2e-gw").await?;
    let gw = gw_ns.name.clone();
    world.namespaces.push(gw_ns);
    // Named so team-a sorts first: a conflict between equally old Mappings goes to the first
    // by namespace/name.
    let team_a = TestNamespace::labelled(
        &client,
        "legate-e2e-team-a",
        &[("legate.dev/e2e-gateway", &gw)],
    )
    .await?;
    let team_b = TestNamespace::labelled(
        &client,
        "legate-e2e-team-b",
        &[
            ("legate.dev/e2e-gateway", &gw),
            ("legate.dev/e2e-internal", &gw),
        ],
    )
    .await?;
    let (a, b) = (team_a.name.clone(), team_b.name.clone());
    world.namespaces.extend([team_a, team_b]);

    kubectl_apply(&format!(
        r#"
apiVersion: legate.dev/v1alpha1
kind: GatewayInstallation
metadata: {{name: edge, namespace: {gw}}}
spec:
  ambassadorId: default
  allowedRoutes:
    namespaces:
      from: Selector
      selector:
        matchLabels: {{legate.dev/e2e-gateway: {gw}}}
"#
    ))?;
    let (deployment, bootstrap) = fleet(&gw, "edge").await?;

    // 3. The pod, as a kubelet would start it from the template.
    let pod = Pod::start(&deployment, &bootstrap, "edge-0", &Moved::default())?;
    world.pods.push(pod);
    world.pod("edge-0").wait_ready().await?;

    // 4. Two teams' routes, to two upstreams.
    let up_a = HttpUpstream::start("team-a upstream")?;
    let up_b = HttpUpstream::start("team-b upstream")?;
    let (svc_a, svc_b) = (up_a.address(), up_b.address());
    world.upstreams.extend([up_a, up_b]);
    kubectl_apply(&format!(
        r#"
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: http, namespace: {a}}}
spec:
  port: {LISTENER_PORT}
  protocol: HTTP
  securityModel: XFP
  hostBinding:
    namespace: {{from: ALL}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {{name: shop, namespace: {a}}}
spec:
  hostname: "*.example.com"
  requestPolicy:
    insecure: {{action: Route}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: shop, namespace: {a}}}
spec:
  hostname: "*"
  prefix: /a/
  service: {svc_a}
"#
    ))?;
    // team-a's Mapping is the older one: it owns /a/.
    wait_verdict(&client, &a, "shop", ACCEPTED, PROGRAMMED).await?;
    kubectl_apply(&format!(
        r#"
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: billing, namespace: {b}}}
spec:
  hostname: "*"
  prefix: /b/
  service: {svc_b}
---
# The same prefix as team-a's, as a 50% canary: it must not siphon team-a's traffic.
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: siphon, namespace: {b}}}
spec:
  hostname: "*"
  prefix: /a/
  weight: 50
  service: {svc_b}
---
# A hostname no Host admits (team-a's Host serves *.example.com).
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: lost, namespace: {b}}}
spec:
  hostname: nowhere.test
  prefix: /lost/
  service: {svc_b}
"#
    ))?;

    // 5. Status, read back with the API.
    let shop = wait_verdict(&client, &a, "shop", ACCEPTED, PROGRAMMED).await?;
    assert_eq!(shop["status"]["state"], "Running", "{shop:#}");
    assert_eq!(
        shop["status"]["gateways"][0]["installation"],
        format!("{gw}/edge"),
        "{shop:#}"
    );
    wait_verdict(&client, &b, "billing", ACCEPTED, PROGRAMMED).await?;
    let siphon = wait_verdict(
        &client,
        &b,
        "siphon",
        ("False", "Conflict"),
        ("False", "Conflict"),
    )
    .await?;
    let (_, _, message) = condition(&siphon["status"], "Accepted").unwrap();
    assert!(
        message.contains(&format!("Mapping {a}/shop")),
        "the loser names the winner: {message}"
    );
    assert_eq!(siphon["status"]["state"], "Inactive", "{siphon:#}");
    assert_eq!(siphon["status"]["reason"], message.as_str(), "{siphon:#}");
    wait_verdict(&client, &b, "lost", ACCEPTED, ("False", "NoMatchingHost")).await?;

    // Real requests through Envoy: /a/ always reaches team-a, never team-b; /b/ team-b.
    expect_route(LISTENER_PORT, "/a/", "team-a upstream").await?;
    for _ in 0..20 {
        let answer = through(LISTENER_PORT, "/a/ordered")?;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "team-a upstream")
        );
    }
    expect_route(LISTENER_PORT, "/b/", "team-b upstream").await?;
    assert_eq!(through(LISTENER_PORT, "/lost/")?.status, 404);

    // What a user sees: `kubectl describe` and `kubectl get`.
    // The Warning Event follows the status write: wait for it.
    let described = wait_for("a Warning Event with reason Conflict", WAIT, || async {
        let described = kubectl_ok(&["describe", "mapping", "siphon", "-n", &b])?;
        let event = described
            .lines()
            .any(|l| l.contains("Warning") && l.contains("Conflict"));
        Ok(event.then_some(described))
    })
    .await?;
    for needle in [
        "Accepted",
        "Programmed",
        "Conflict",
        &format!("Mapping {a}/shop"),
    ] {
        assert!(
            described.contains(needle),
            "describe lacks {needle:?}:\n{described}"
        );
    }
    let table = kubectl_ok(&["get", "mappings", "-A"])?;
    let rows = columns(&table, &["NAMESPACE", "NAME", "ACCEPTED", "PROGRAMMED"])?;
    for (ns, name, accepted, programmed) in [
        (&a, "shop", "True", "True"),
        (&b, "billing", "True", "True"),
        (&b, "siphon", "False", "False"),
        (&b, "lost", "True", "False"),
    ] {
        let row = vec![ns.clone(), name.into(), accepted.into(), programmed.into()];
        assert!(rows.contains(&row), "{row:?} not in:\n{table}");
    }

    // The pod's one scrape target: the agent's metrics and its Envoy's, from the template's
    // flags and the ConfigMap's bootstrap.
    let metrics = http_get(&world.pod("edge-0").metrics, "/metrics", None)?.body;
    for needle in [
        "legate_agent_resources{kind=\"Mapping\",verdict=\"served\"}",
        "legate_agent_envoy_stats_up 1",
        "envoy_cluster_upstream_rq_total{",
    ] {
        assert!(metrics.contains(needle), "/metrics lacks {needle:?}");
    }
    // The diagnostics page (the test calls from the pod's loopback): the installation and the
    // verdicts status carries.
    let diag: Value = serde_json::from_str(
        &http_get(&world.pod("edge-0").metrics, "/diag/?json=true", None)?.body,
    )?;
    assert_eq!(
        diag["gateway"]["source"],
        format!("installation {gw}/edge"),
        "{diag:#}"
    );
    let siphon_row = diag["resources"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "siphon"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(siphon_row["accepted"]["reason"], "Conflict", "{diag:#}");

    // AuthServices: one whose Service does not exist says so (and, with failure_mode_allow,
    // lets requests through meanwhile); a second default one is not used, says which is, and
    // warns on the installation, since what it was meant to check may not be.
    kubectl_apply(&format!(
        r#"apiVersion: getambassador.io/v3alpha1
kind: AuthService
metadata: {{name: auth, namespace: {a}}}
spec: {{auth_service: "auth.{a}:3000", failure_mode_allow: true}}
"#
    ))?;
    wait_for(
        "the AuthService's verdict: Programmed False ServiceNotFound",
        WAIT,
        || async {
            let auth = kubectl_json(&["get", "authservice", "auth", "-n", &a])?;
            Ok(condition(&auth["status"], "Programmed")
                .filter(|(status, reason, _)| status == "False" && reason == "ServiceNotFound"))
        },
    )
    .await?;
    kubectl_apply(&format!(
        r#"apiVersion: getambassador.io/v3alpha1
kind: AuthService
metadata: {{name: auth-too, namespace: {b}}}
spec: {{auth_service: "auth.{b}:3000", failure_mode_allow: true}}
"#
    ))?;
    wait_for(
        "the second AuthService's verdict: Accepted False Conflict",
        WAIT,
        || async {
            let auth = kubectl_json(&["get", "authservice", "auth-too", "-n", &b])?;
            Ok(condition(&auth["status"], "Accepted")
                .filter(|(status, reason, _)| status == "False" && reason == "Conflict"))
        },
    )
    .await?;
    wait_for(
        "a Warning on the installation: not authenticated as intended",
        WAIT,
        || async {
            let described = kubectl_ok(&["describe", "gwi", "edge", "-n", &gw])?;
            Ok(described
                .lines()
                .any(|l| l.contains("Warning") && l.contains("NOT be authenticated"))
                .then_some(()))
        },
    )
    .await?;
    kubectl_ok(&["delete", "authservice", "auth", "-n", &a])?;
    kubectl_ok(&["delete", "authservice", "auth-too", "-n", &b])?;

    // Resolvers are watched and judged like routes: a Kubernetes one is accepted and programmed,
    // a ConsulResolver says it is not implemented (a Mapping naming it would be refused).
    kubectl_apply(&format!(
        r#"apiVersion: getambassador.io/v3alpha1
kind: KubernetesServiceResolver
metadata: {{name: cluster-ip, namespace: {a}}}
spec: {{}}
---
apiVersion: getambassador.io/v3alpha1
kind: ConsulResolver
metadata: {{name: consul-dc2, namespace: {a}}}
spec: {{address: "consul:8500", datacenter: dc2}}
"#
    ))?;
    for (kind, name, status, reason) in [
        (
            "kubernetesserviceresolver",
            "cluster-ip",
            "True",
            "Programmed",
        ),
        ("consulresolver", "consul-dc2", "False", "NotSupported"),
    ] {
        wait_for(
            &format!("the {kind}'s verdict: Programmed {status} {reason}"),
            WAIT,
            || async {
                let resolver = kubectl_json(&["get", kind, name, "-n", &a])?;
                Ok(condition(&resolver["status"], "Programmed")
                    .filter(|(s, r, _)| s == status && r == reason))
            },
        )
        .await?;
    }

    // The installation: routes counted, the version Envoy serves, the operator's conditions kept.
    let gwi = installation_settled(&client, &gw, "edge", world.pod("edge-0"), (3, 1)).await?;
    for type_ in ["Ready", "Progressing", "Degraded"] {
        assert!(
            condition(&gwi["status"], type_).is_some(),
            "the operator's {type_} condition is gone: {:#}",
            gwi["status"]
        );
    }

    // 6. Writes: none on a resync, none from a second replica; a standby takes over.
    let settled_writes = world.pod("edge-0").metric(WRITES)?;
    assert!(settled_writes > 0.0);
    let teams = [a.as_str(), b.as_str()];
    let settled = written(&client, &[world.pod("edge-0")], &teams, &gw).await?;
    kubectl_ok(&["label", "gwi", "edge", "-n", &gw, "example.com/poke=1"])?;
    {
        let pod0: &Pod = world.pod("edge-0");
        stays_unwritten(
            "a label-only edit of the installation",
            &settled,
            &client,
            &[pod0],
            &teams,
            &gw,
        )
        .await?;
    }

    // A second replica of the same template. In a cluster each pod has its own network
    // namespace; here both share the machine's, so its ADS, admin and metrics ports move (its
    // bootstrap follows); Envoy listens on the Listener's port in both (SO_REUSEPORT).
    let moved = Moved::free()?;
    let replica = Pod::start(&deployment, &bootstrap, "edge-1", &moved)?;
    world.pods.push(replica);
    world.pod("edge-1").wait_ready().await?;
    {
        let (pod0, replica) = (&world.pods[0], &world.pods[1]);
        assert_eq!(
            (pod0.name.as_str(), replica.name.as_str()),
            ("edge-0", "edge-1")
        );
        let before = written(&client, &[pod0, replica], &teams, &gw).await?;
        assert_eq!(before.writes[1].1, 0.0, "the second replica wrote");
        stays_unwritten(
            "a second replica",
            &before,
            &client,
            &[pod0, replica],
            &teams,
            &gw,
        )
        .await?;
        assert_eq!(lease_holder(&gw, "edge")?, "edge-0");
    }

    // The leader stops (SIGTERM): the standby takes the Lease, writes nothing it need not, and
    // follows a change made afterwards.
    {
        let pod0 = world.pod("edge-0");
        let status = pod0.agent.stop()?;
        ensure!(status.success(), "the leader's agent exited with {status}");
        pod0.envoy.stop()?;
    }
    wait_for(
        "the standby to take the status Lease",
        Duration::from_secs(30),
        || async { Ok((lease_holder(&gw, "edge")? == "edge-1").then_some(())) },
    )
    .await?;
    {
        let replica: &Pod = world.pod("edge-1");
        // What the old leader wrote is what the new one finds: nothing to change.
        let mut before = written(&client, &[replica], &teams, &gw).await?;
        before.statuses = settled.statuses.clone();
        // Neither the Mappings nor the installation: the new leader reads both as they are.
        assert!(
            before.writes[0].1 == 0.0,
            "the new leader wrote {} statuses already written",
            before.writes[0].1
        );
        stays_unwritten("the new leader", &before, &client, &[replica], &teams, &gw).await?;
    }
    kubectl_ok(&[
        "patch",
        "mapping",
        "siphon",
        "-n",
        &b,
        "--type=merge",
        "-p",
        r#"{"spec":{"prefix":"/siphon/"}}"#,
    ])?;
    let fixed = wait_verdict(&client, &b, "siphon", ACCEPTED, PROGRAMMED).await?;
    assert_eq!(fixed["status"]["observedGeneration"], 2, "{fixed:#}");
    assert!(world.pod("edge-1").metric(WRITES)? > 0.0);
    expect_route(LISTENER_PORT, "/siphon/", "team-b upstream").await?;
    expect_route(LISTENER_PORT, "/a/", "team-a upstream").await?;

    // 7. A second installation, `ambassadorId: internal`, admitting team-b only; a Mapping
    // for both gateways, one for the internal gateway only.
    kubectl_apply(&format!(
        r#"
apiVersion: legate.dev/v1alpha1
kind: GatewayInstallation
metadata: {{name: internal, namespace: {gw}}}
spec:
  ambassadorId: internal
  allowedRoutes:
    namespaces:
      from: Selector
      selector:
        matchLabels: {{legate.dev/e2e-internal: {gw}}}
"#
    ))?;
    for (name, id) in [("edge", "default"), ("internal", "internal")] {
        let gwi = get(&client, &gwi_resource(), &gw, name).await?;
        assert_eq!(gwi["spec"]["ambassadorId"], id, "{name}");
    }
    let (internal_deployment, internal_bootstrap) = fleet(&gw, "internal").await?;
    // Its own pod from its own template (so its own ServiceAccount), ports moved as above.
    let internal = Pod::start(
        &internal_deployment,
        &internal_bootstrap,
        "internal-0",
        &Moved::free()?,
    )?;
    world.pods.push(internal);
    world.pod("internal-0").wait_ready().await?;
    kubectl_apply(&format!(
        r#"
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: internal-http, namespace: {b}}}
spec:
  ambassador_id: [internal]
  port: {INTERNAL_PORT}
  protocol: HTTP
  securityModel: XFP
  hostBinding:
    namespace: {{from: ALL}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: both, namespace: {b}}}
spec:
  ambassador_id: [default, internal]
  hostname: "*"
  prefix: /both/
  service: {svc_b}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: internal-only, namespace: {b}}}
spec:
  ambassador_id: [internal]
  hostname: "*"
  prefix: /internal/
  service: {svc_b}
"#
    ))?;
    let edge_entry = format!("{gw}/edge");
    let internal_entry = format!("{gw}/internal");
    let both = wait_for("both gateways' verdicts on `both`", WAIT, || async {
        let m = get(&client, &mapping_resource(), &b, "both").await?;
        let ok = [&edge_entry, &internal_entry]
            .iter()
            .all(|i| entry_verdict(&m, i) == Some(verdicts(ACCEPTED, PROGRAMMED)));
        Ok(ok.then_some(m))
    })
    .await?;
    assert_eq!(
        installations(&both),
        vec![edge_entry.clone(), internal_entry.clone()],
        "{both:#}"
    );
    let only = wait_verdict(&client, &b, "internal-only", ACCEPTED, PROGRAMMED).await?;
    assert_eq!(
        installations(&only),
        vec![internal_entry.clone()],
        "{only:#}"
    );
    let billing = get(&client, &mapping_resource(), &b, "billing").await?;
    assert_eq!(installations(&billing), vec![edge_entry.clone()]);
    // Each gateway's entry is its own under server-side apply: its field manager owns it.
    for (manager, own, other) in [
        ("edge", &edge_entry, &internal_entry),
        ("internal", &internal_entry, &edge_entry),
    ] {
        let owned = owned_entries(&both, &format!("legate-agent/{gw}/{manager}"));
        assert!(
            owned.contains(own) && !owned.contains(other),
            "{manager} owns {owned:?}"
        );
    }
    expect_route(INTERNAL_PORT, "/internal/", "team-b upstream").await?;
    expect_route(INTERNAL_PORT, "/both/", "team-b upstream").await?;
    expect_route(LISTENER_PORT, "/both/", "team-b upstream").await?;
    assert_eq!(through(LISTENER_PORT, "/internal/")?.status, 404);
    // Neither flips the other's fields back and forth.
    installation_settled(&client, &gw, "edge", world.pod("edge-1"), (5, 0)).await?;
    installation_settled(&client, &gw, "internal", world.pod("internal-0"), (2, 0)).await?;
    {
        let (edge, internal) = (&world.pods[1], &world.pods[2]);
        assert_eq!(
            (edge.name.as_str(), internal.name.as_str()),
            ("edge-1", "internal-0")
        );
        let before = written(&client, &[edge, internal], &teams, &gw).await?;
        stays_unwritten(
            "two gateways sharing routes",
            &before,
            &client,
            &[edge, internal],
            &teams,
            &gw,
        )
        .await?;
    }

    // 8. A burst: 1,000 Mappings in one `kubectl apply`, built in a handful of configurations,
    // each Mapping's status written once.
    const BURST: usize = 1_000;
    let builds_before = world.pod("edge-1").metric(BUILDS)?;
    let writes_before = world.pod("edge-1").metric(WRITES)?;
    let mut burst = String::new();
    for i in 0..BURST {
        burst.push_str(&format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
             metadata: {{name: burst-{i:04}, namespace: {a}, labels: {{burst: \"yes\"}}}}\n\
             spec: {{hostname: \"*\", prefix: /burst-{i:04}/, service: {svc_a}}}\n"
        ));
    }
    let started = Instant::now();
    kubectl_apply(&burst)?;
    let applied_in = started.elapsed();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &a, &mapping_resource());
    wait_for(
        "every Mapping of the burst Programmed",
        Duration::from_secs(120),
        || async {
            let list = api.list(&ListParams::default().labels("burst=yes")).await?;
            let programmed = list
                .items
                .iter()
                .filter(|m| {
                    let m = serde_json::to_value(m).unwrap_or_default();
                    summary_verdict(&m) == Some(verdicts(ACCEPTED, PROGRAMMED))
                })
                .count();
            Ok((programmed == BURST).then_some(()))
        },
    )
    .await?;
    let builds = world.pod("edge-1").metric(BUILDS)? - builds_before;
    let writes = world.pod("edge-1").metric(WRITES)? - writes_before;
    println!(
        "burst: {BURST} Mappings applied in {applied_in:?}, all Programmed after {:?}, \
         in {builds} builds and {writes} status writes",
        started.elapsed()
    );
    assert!(
        builds <= 20.0,
        "{builds} configurations built for {BURST} edits"
    );
    // One per Mapping, and a few of the installation's counts as they grow.
    assert!(
        writes <= (BURST + 20) as f64,
        "{writes} status writes for {BURST} new Mappings"
    );
    expect_route(LISTENER_PORT, "/burst-0999/", "team-a upstream").await?;

    // Deleted while the operator runs, so its finalizer removes the cluster-scoped RBAC and the
    // namespaces can go.
    kubectl_ok(&["delete", "gwi", "--all", "-n", &gw, "--timeout=60s"])?;
    Ok(())
}

/// Waits for installation `gw/name` to count `(accepted, rejected)` Mappings and to report
/// the configuration `pod`'s Envoy serves. Envoy's config dump carries a version per resource
/// type (delta ADS); the configuration's version, a digest of them all, is the one the pod's
/// `/readyz` says its Envoy acknowledged.
async fn installation_settled(
    client: &Client,
    gw: &str,
    name: &str,
    pod: &Pod,
    (accepted, rejected): (i64, i64),
) -> Result<Value> {
    let last = RefCell::new(String::new());
    wait_for(
        &format!("installation {name}: {accepted} Mappings accepted, {rejected} rejected"),
        WAIT,
        || async {
            let gwi = get(client, &gwi_resource(), gw, name).await?;
            let routes = &gwi["status"]["routes"];
            let served = pod.served_version()?;
            *last.borrow_mut() = format!("Envoy serves {served:?}; status {:#}", gwi["status"]);
            let settled = routes["accepted"] == accepted
                && routes["rejected"] == rejected
                && gwi["status"]["configVersion"] == served.as_str();
            Ok(settled.then_some(gwi))
        },
    )
    .await
    .with_context(|| last.borrow().clone())
}

/// What a status write would change: each pod's count of writes, and every Mapping's
/// resourceVersion and status in the team namespaces and every installation's status.
#[derive(Clone, Debug, PartialEq)]
struct Written {
    writes: Vec<(String, f64)>,
    statuses: BTreeMap<String, Value>,
}

async fn written(client: &Client, pods: &[&Pod], teams: &[&str], gw: &str) -> Result<Written> {
    let mut writes = Vec::new();
    for pod in pods {
        writes.push((pod.name.clone(), pod.metric(WRITES)?));
    }
    let mut statuses = BTreeMap::new();
    for (resource, namespaces) in [
        (mapping_resource(), teams.to_vec()),
        (gwi_resource(), vec![gw]),
    ] {
        for ns in namespaces {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
            for o in api.list(&ListParams::default()).await? {
                let o = serde_json::to_value(o)?;
                let key = format!("{} {ns}/{}", resource.kind, o["metadata"]["name"]);
                // An installation's own metadata changes (a label edit); a Mapping's does not.
                let rv = if resource.kind == "Mapping" {
                    o["metadata"]["resourceVersion"].clone()
                } else {
                    Value::Null
                };
                statuses.insert(key, serde_json::json!({"rv": rv, "status": o["status"]}));
            }
        }
    }
    Ok(Written { writes, statuses })
}

/// Watches for [`QUIET`] that nothing is written after `after`; fails at the first write,
/// naming what changed.
async fn stays_unwritten(
    after: &str,
    before: &Written,
    client: &Client,
    pods: &[&Pod],
    teams: &[&str],
    gw: &str,
) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < QUIET {
        let now = written(client, pods, teams, gw).await?;
        if now != *before {
            let mut changed: Vec<String> = before
                .writes
                .iter()
                .zip(&now.writes)
                .filter(|(b, n)| b != n)
                .map(|(b, n)| format!("{}: {} status writes, then {}", b.0, b.1, n.1))
                .collect();
            for (key, was) in &before.statuses {
                let is = now.statuses.get(key).unwrap_or(&Value::Null);
                if is != was {
                    changed.push(format!("{key}: {was:#}\n  became {is:#}"));
                }
            }
            bail!(
                "status written after {after} ({:?} later):\n{}",
                start.elapsed(),
                changed.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// Who holds the installation's status Lease.
fn lease_holder(ns: &str, installation: &str) -> Result<String> {
    kubectl_ok(&[
        "get",
        "lease",
        &format!("{installation}-agent-status"),
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
}

/// A request through Envoy's Listener on `port`, for the team-a Host's domain.
fn through(port: u16, path: &str) -> Result<HttpResponse> {
    gateway::through(port, path, HOST_HEADER)
}

/// Waits until `path` on `port` answers 200 from `upstream` (a route just acknowledged may
/// take a moment to reach Envoy's workers).
async fn expect_route(port: u16, path: &str, upstream: &str) -> Result<()> {
    gateway::expect_route(port, path, HOST_HEADER, upstream).await
}

/// The named columns of a `kubectl get` table, row by row (cells contain no spaces here).
fn columns(table: &str, names: &[&str]) -> Result<Vec<Vec<String>>> {
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| anyhow!("an empty table"))?
        .split_whitespace()
        .collect();
    let index: Vec<usize> = names
        .iter()
        .map(|n| {
            header
                .iter()
                .position(|h| h == n)
                .ok_or_else(|| anyhow!("no column {n} in {header:?}"))
        })
        .collect::<Result<_>>()?;
    Ok(lines
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            index
                .iter()
                .map(|&i| cells.get(i).copied().unwrap_or_default().to_owned())
                .collect()
        })
        .collect())
}
