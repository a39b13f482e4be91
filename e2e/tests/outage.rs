//! The API server goes away under a gateway serving traffic, and comes back.
//!
//! Only on a cluster of the test run's own (`e2e/run.sh` started kube-local and says so with
//! `LEGATE_E2E_KUBE_LOCAL=1`): the test stops etcd, the API server and the controller-manager
//! with `e2e/kube-local down` and starts them again on the same data with `e2e/kube-local up`.
//! Anywhere else (a user's `KUBECONFIG`) it says why and does nothing.
//!
//! A gateway pod started from the operator's Deployment template (as in `gateway.rs`) serves
//! three Mappings while a loop sends requests through its Envoy. While the API server is down,
//! not one request fails, Envoy keeps its configuration, the agent stays alive and ready and
//! pushes nothing. Once it is back, a Mapping is changed at once: the agent's watches reconnect
//! (kube-runtime's backoff, which grew during the outage, decides when), it serves the change
//! and writes that Mapping's status for its new generation, and the two unchanged Mappings get
//! no status write. Not one request fails throughout. The cluster is left up even when the test
//! fails (a guard restarts it).

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams},
};
use legate_e2e::gateway::{
    ACCEPTED, Moved, PROGRAMMED, Pod, Traffic, expect_route, fleet, get, mapping_resource,
    summary_verdict, verdicts, wait_verdict,
};
use legate_e2e::{
    HttpUpstream, Operator, TestNamespace, client, http_get, install_default, kubectl_apply,
    kubectl_ok, repo_root, server_minor, wait_for,
};
use serde_json::Value;

/// The hostname the Host serves; requests carry it.
const HOST_HEADER: &str = "shop.example.com";
const LISTENER_PORT: u16 = 8080;
const UPSTREAM: &str = "outage upstream";
/// How long the API server stays down: longer than the status lease (15 s), so the agent
/// loses it and must take it again, and long enough for the watches' backoff to grow.
const OUTAGE: Duration = Duration::from_secs(20);
/// How long the agent may take to see a change made right after the API server is back:
/// kube-runtime's watch backoff reaches ~13–26 s (jittered, 30 s at most) during the outage.
const RECONNECT: Duration = Duration::from_secs(120);
const WRITES: &str = "legate_agent_status_writes_total";
const PUSHES: &str = "legate_agent_xds_pushes_total";
/// How long "nothing is written" is watched for after the change is served.
const QUIET: Duration = Duration::from_secs(3);

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
async fn a_gateway_rides_out_an_api_server_outage() -> Result<()> {
    if std::env::var_os("LEGATE_E2E_KUBE_LOCAL").is_none() {
        println!(
            "skipped: this test stops and restarts the API server, which it does only on the \
             cluster e2e/run.sh started itself (LEGATE_E2E_KUBE_LOCAL=1), not on KUBECONFIG's"
        );
        return Ok(());
    }
    let mut world = World::default();
    let result = scenario(&mut world).await;
    if result.is_err() {
        world.print_logs();
    }
    result
}

/// Everything the scenario started. Fields drop in order: the traffic stops, the API server
/// is back (if the test stopped it), then the processes stop and the namespaces go.
#[derive(Default)]
struct World {
    traffic: Option<Traffic>,
    api_server: Option<ApiServer>,
    operator: Option<Operator>,
    pod: Option<Pod>,
    upstream: Option<HttpUpstream>,
    namespaces: Vec<TestNamespace>,
}

impl World {
    fn print_logs(&self) {
        if let Some(o) = &self.operator {
            o.process.print_log();
        }
        if let Some(pod) = &self.pod {
            pod.agent.print_log();
            pod.envoy.print_log();
        }
    }
}

async fn scenario(world: &mut World) -> Result<()> {
    let client = client().await?;
    install_default(server_minor(&client).await?)?;
    world.operator = Some(Operator::start("e2e-outage")?);

    // A gateway admitting a team namespace by label (so Namespaces are watched too), its pod.
    let gw_ns = TestNamespace::create(&client, "legate-e2e-outage-gw").await?;
    let gw = gw_ns.name.clone();
    world.namespaces.push(gw_ns);
    let team_ns = TestNamespace::labelled(
        &client,
        "legate-e2e-outage-team",
        &[("legate.dev/e2e-outage", &gw)],
    )
    .await?;
    let team = team_ns.name.clone();
    world.namespaces.push(team_ns);
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
        matchLabels: {{legate.dev/e2e-outage: {gw}}}
"#
    ))?;
    let (deployment, bootstrap) = fleet(&gw, "edge").await?;
    let pod = world.pod.insert(Pod::start(
        &deployment,
        &bootstrap,
        "edge-0",
        &Moved::default(),
    )?);
    pod.wait_ready().await?;

    // Three Mappings to one upstream: two stay as they are, one moves after the outage.
    let upstream = world.upstream.insert(HttpUpstream::start(UPSTREAM)?);
    let service = upstream.address();
    let mut routes = format!(
        r#"
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: http, namespace: {team}}}
spec:
  port: {LISTENER_PORT}
  protocol: HTTP
  securityModel: XFP
  hostBinding:
    namespace: {{from: ALL}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {{name: shop, namespace: {team}}}
spec:
  hostname: "*.example.com"
  requestPolicy:
    insecure: {{action: Route}}
"#
    );
    for name in ["steady", "kept", "moving"] {
        routes.push_str(&format!(
            r#"---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: {name}, namespace: {team}}}
spec:
  hostname: "*"
  prefix: /{name}/
  service: {service}
"#
        ));
    }
    kubectl_apply(&routes)?;
    for name in ["steady", "kept", "moving"] {
        wait_verdict(&client, &team, name, ACCEPTED, PROGRAMMED).await?;
        expect_route(LISTENER_PORT, &format!("/{name}/"), HOST_HEADER, UPSTREAM).await?;
    }
    // Settled: the status writes answered, Envoy acknowledged what the statuses say.
    let pod = world.pod.as_ref().expect("started");
    wait_for(
        "the status writes to settle",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            let team = team.clone();
            async move {
                let before = mappings(&client, &team).await?;
                let writes = pod.metric(WRITES)?;
                tokio::time::sleep(Duration::from_secs(2)).await;
                let after = mappings(&client, &team).await?;
                Ok((before == after && pod.metric(WRITES)? == writes).then_some(()))
            }
        },
    )
    .await?;

    // Traffic from here to the end, on the routes that stay where they are.
    let traffic = world.traffic.insert(Traffic::start(
        LISTENER_PORT,
        HOST_HEADER,
        &["/steady/", "/kept/"],
        &[UPSTREAM],
        40_000,
        Duration::from_secs(300),
    ));
    traffic.more(50).await?;
    traffic.check("the outage")?;

    let before = mappings(&client, &team).await?;
    let served = pod.served_version()?;
    let pushes = pod.metric_sum(PUSHES)?;
    let writes = pod.metric(WRITES)?;
    let envoy_config = envoy_versions(&pod.admin)?;
    ensure!(
        !envoy_config.is_empty(),
        "Envoy's config dump has no versions"
    );
    let log_before = pod.agent.log().len();

    // The outage.
    let down_at = Instant::now();
    let api_server = world.api_server.insert(ApiServer::stop()?);
    ensure!(
        kubectl_ok(&["get", "namespaces"]).is_err(),
        "the API server still answers after kube-local down"
    );
    let sent_before = traffic.stats().sent;
    let pod = world.pod.as_mut().expect("started");
    let mut watch_failed = false;
    while down_at.elapsed() < OUTAGE {
        for p in [&mut pod.agent, &mut pod.envoy] {
            if let Some(status) = p.exited() {
                bail!("{} exited with {status} during the outage", p.name);
            }
        }
        let ready = http_get(&pod.metrics, "/readyz", None)?;
        ensure!(
            ready.status == 200,
            "the agent is not ready during the outage: {ready:?}"
        );
        let now = pod.served_version()?;
        ensure!(
            now == served,
            "the agent serves {now} during the outage, {served} before"
        );
        let pushed = pod.metric_sum(PUSHES)?;
        ensure!(
            pushed == pushes,
            "the agent pushed {} responses to Envoy during the outage",
            pushed - pushes
        );
        traffic.check("the API server came back")?;
        watch_failed |= pod.agent.log()[log_before..].contains("watch failed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(
        watch_failed,
        "the agent logged no failed watch in {OUTAGE:?} without an API server"
    );
    ensure!(
        envoy_versions(&pod.admin)? == envoy_config,
        "Envoy's configuration changed during the outage"
    );
    ensure!(
        pod.metric(WRITES)? == writes,
        "the agent counted status writes while the API server was down"
    );
    let during = traffic.check("the API server came back")?;
    ensure!(
        during.sent - sent_before >= 100,
        "only {} requests during the outage",
        during.sent - sent_before
    );
    println!(
        "outage: {:?} without an API server, {} requests, none failed",
        down_at.elapsed(),
        during.sent - sent_before
    );

    // Back, and a change right away: /moving/ moves to /moved/.
    api_server.start()?;
    let back_at = Instant::now();
    let client = legate_e2e::client().await?;
    wait_for(
        "the patch of Mapping moving",
        Duration::from_secs(30),
        || async {
            Ok(kubectl_ok(&[
                "patch",
                "mapping",
                "moving",
                "-n",
                &team,
                "--type=merge",
                "-p",
                r#"{"spec":{"prefix":"/moved/"}}"#,
            ])
            .ok())
        },
    )
    .await?;
    let pod = world.pod.as_ref().expect("started");
    let moved = wait_for(
        "the agent to serve /moved/ and say so in the status",
        RECONNECT,
        || async {
            let m = get(&client, &mapping_resource(), &team, "moving").await?;
            let programmed = summary_verdict(&m) == Some(verdicts(ACCEPTED, PROGRAMMED))
                && m["status"]["observedGeneration"] == 2;
            let answer = legate_e2e::gateway::through(LISTENER_PORT, "/moved/", HOST_HEADER)?;
            Ok((programmed && answer.status == 200 && answer.body == UPSTREAM).then_some(m))
        },
    )
    .await
    .with_context(|| {
        format!(
            "{:?} after the API server came back; agent log since the outage:\n{}",
            back_at.elapsed(),
            &pod.agent.log()[log_before..]
        )
    })?;
    println!(
        "back: the change served and its status written {:?} after the API server answered",
        back_at.elapsed()
    );
    ensure!(
        pod.served_version()? != served,
        "the agent still serves {served}"
    );

    // The unchanged Mappings: not written (the same resourceVersions as before the outage).
    let start = Instant::now();
    loop {
        let now = mappings(&client, &team).await?;
        for name in ["steady", "kept"] {
            ensure!(
                now.get(name) == before.get(name),
                "Mapping {name} was written after the outage:\n{:#}\n  became\n{:#}",
                before[name],
                now[name]
            );
        }
        ensure!(
            now["moving"]["rv"] != before["moving"]["rv"],
            "the changed Mapping kept its resourceVersion"
        );
        if start.elapsed() >= QUIET {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(moved["spec"]["prefix"], "/moved/");

    // What the agent's log says about the way back.
    let log = pod.agent.log();
    let since = &log[log_before..];
    let relisted = since.contains("too old resource version");
    println!(
        "agent: {} failed watches logged, {}",
        since.matches("watch failed").count(),
        if relisted {
            "a watch relisted (too old resource version)"
        } else {
            "the watches resumed where they were"
        }
    );

    let stats = world.traffic.as_mut().expect("started").check("the end")?;
    println!(
        "traffic: {} requests, none failed, from start to end",
        stats.sent
    );
    world.traffic.as_mut().expect("started").stop();

    // The operator that lived through the outage reconciles again: deleting the installation
    // goes through its finalizer within the minute. (Its controller's watches share one
    // backoff; with kube-runtime's default, up to 30 s per watch in turn, this took six.)
    kubectl_ok(&["delete", "gwi", "--all", "-n", &gw, "--timeout=60s"])?;
    Ok(())
}

/// Each Mapping of `ns` by name: its resourceVersion and status.
async fn mappings(client: &Client, ns: &str) -> Result<BTreeMap<String, Value>> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &mapping_resource());
    let mut out = BTreeMap::new();
    for m in api.list(&ListParams::default()).await? {
        let m = serde_json::to_value(m)?;
        let name = m["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        out.insert(
            name,
            serde_json::json!({"rv": m["metadata"]["resourceVersion"], "status": m["status"]}),
        );
    }
    Ok(out)
}

/// Every `version_info` and `last_updated` in Envoy's config dump: they change with any
/// update Envoy takes.
fn envoy_versions(admin: &str) -> Result<Vec<String>> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k == "version_info" || k == "last_updated" {
                        out.push(format!("{k}={x}"));
                    }
                    walk(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let dump = http_get(admin, "/config_dump", None)?;
    ensure!(dump.status == 200, "Envoy's /config_dump: {}", dump.status);
    let dump: Value = serde_json::from_str(&dump.body).context("Envoy's /config_dump")?;
    let mut out = Vec::new();
    walk(&dump, &mut out);
    out.sort();
    Ok(out)
}

/// The local control plane stopped by the test (`e2e/kube-local down`); started again on the
/// same data by [`ApiServer::start`], or when dropped, so the tests after this one find it up.
struct ApiServer {
    down: bool,
}

impl ApiServer {
    fn stop() -> Result<Self> {
        kube_local("down")?;
        Ok(Self { down: true })
    }

    fn start(&mut self) -> Result<()> {
        kube_local("up")?;
        self.down = false;
        Ok(())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if self.down {
            eprintln!("note: starting the API server the test stopped");
            if let Err(e) = kube_local("up") {
                eprintln!("error: {e:#}");
            }
        }
    }
}

/// `e2e/kube-local COMMAND` with e2e/run.sh's environment (its KUBE_LOCAL_* settings, if any).
fn kube_local(command: &str) -> Result<String> {
    let script = repo_root().join("e2e/kube-local");
    let out = Command::new(&script)
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} {command}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(anyhow!(
            "kube-local {command} failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(stdout)
}
