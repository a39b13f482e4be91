//! Legate on a real node: nothing here runs as a local process. e2e/node.sh starts kube-local
//! with a node (kubelet, containerd, the CNI bridge), imports the images `make images` built,
//! and runs this test, which
//!
//! - installs Legate with `kubectl apply -k config/default`: the operator runs as a Pod;
//! - runs two teams' backends as Pods behind Services, each with a Mapping, in namespaces the
//!   installation admits by label, and a GatewayInstallation with two replicas whose Pods are
//!   Ready only once their Envoy acknowledged a configuration;
//! - sends requests from the host to the gateway Pods' IPs (the bridge is the test's own
//!   network), spread over the gateway Service's ready endpoints as a load balancer spreads
//!   them, and each reaches its team's backend through EDS;
//! - scales the backends and the gateway, rolls the gateway to another Envoy image tag, and
//!   deletes a gateway Pod, all under that load and without a failed request (the preStop
//!   drain);
//! - reads what the runtime runs: every Legate container non-root, read-only root filesystem,
//!   no capabilities, no privilege escalation.

use std::{future::Future, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use legate_e2e::{
    HttpResponse, TestNamespace, apply_default, client,
    gateway::{Requests, Traffic, condition},
    http_get, kubectl_apply, kubectl_json, kubectl_ok,
    node::{NodeEnv, ReadyEndpoints, backend, backend_pod, containers},
    server_minor, wait_for,
};
use serde_json::Value;

const SYSTEM: &str = "legate-system";
const GATEWAY: &str = "edge";
/// Pods start in seconds here; a rollout of three gateway Pods that each drain for 5 s takes
/// about half a minute.
const WAIT: Duration = Duration::from_secs(180);
const LABEL: (&str, &str) = ("legate.dev/gateway", "edge");

#[tokio::test]
#[ignore = "needs a cluster with a node and Legate's images: run e2e/node.sh"]
async fn legate_runs_on_a_real_node() -> Result<()> {
    let env = NodeEnv::from_env()?;
    // Every phase on one clock, and the endpoints' story on it too (failures count from the
    // traffic's start, also shown).
    let started = std::time::Instant::now();
    let step = |what: &str| println!("{:?}: {what}", started.elapsed());
    let client = client().await?;
    let minor = server_minor(&client).await?;

    // Legate, as a user installs it: the operator is a Pod of the node.
    apply_default(minor)?;
    rollout(SYSTEM, "legate-operator").await?;
    step("the operator is ready");

    // Two teams, in namespaces the installation admits by label, each a backend of Pods.
    let alpha = TestNamespace::labelled(&client, "team-alpha", &[LABEL]).await?;
    let beta = TestNamespace::labelled(&client, "team-beta", &[LABEL]).await?;
    kubectl_apply(&backend(&alpha.name, "alpha", &env.upstream_image, 1))?;
    kubectl_apply(&backend(&beta.name, "beta", &env.upstream_image, 1))?;

    // The Listener and Host live with a team too: the installation reads only the namespaces
    // it admits.
    kubectl_apply(&format!(
        r#"
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: http, namespace: {team}}}
spec:
  port: 8080
  protocol: HTTP
  securityModel: XFP
  hostBinding: {{namespace: {{from: ALL}}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {{name: any, namespace: {team}}}
spec:
  hostname: "*"
  requestPolicy: {{insecure: {{action: Route}}}}
---
apiVersion: legate.dev/v1alpha1
kind: GatewayInstallation
metadata: {{name: {GATEWAY}, namespace: {SYSTEM}}}
spec:
  replicas: 2
  envoy: {{image: {envoy}, imagePullPolicy: Never}}
  agent: {{imagePullPolicy: Never}}
  service:
    type: ClusterIP
    ports: [{{name: http, port: 80, targetPort: 8080}}]
  allowedRoutes:
    namespaces:
      from: Selector
      selector: {{matchLabels: {{{label}: {value}}}}}
  podDisruptionBudget: {{minAvailable: 1}}
  # Long enough for the endpoints to follow a Pod being deleted, and a short test.
  drainSeconds: 5
"#,
        envoy = env.envoy_image,
        team = alpha.name,
        label = LABEL.0,
        value = LABEL.1,
    ))?;
    wait_for("the gateway Deployment", WAIT, || async {
        Ok(kubectl_json(&["get", "deployment", GATEWAY, "-n", SYSTEM]).ok())
    })
    .await?;
    rollout(SYSTEM, GATEWAY).await?;
    step("the gateway is ready");
    rollout(&alpha.name, "alpha").await?;
    rollout(&beta.name, "beta").await?;
    step("the backends are ready");

    // A PodDisruptionBudget where the server serves policy/v1; on 1.20 `Degraded` says why not.
    if minor >= 21 {
        kubectl_ok(&["get", "poddisruptionbudget", GATEWAY, "-n", SYSTEM])?;
    } else {
        let (status, reason, message) = wait_for("Degraded on the installation", WAIT, || async {
            let gwi = kubectl_json(&["get", "gatewayinstallation", GATEWAY, "-n", SYSTEM])?;
            Ok(condition(&gwi["status"], "Degraded"))
        })
        .await?;
        ensure!(
            status == "True"
                && reason == "UnsupportedByServer"
                && message.contains("spec.podDisruptionBudget"),
            "Degraded: {status} {reason}: {message}"
        );
    }

    // Each gateway Pod routes each team's path to that team's backend, found through EDS.
    let paths = ["/alpha/", "/beta/"];
    for ip in gateway_pod_ips().await? {
        for path in paths {
            expect_backend(&format!("{ip}:8080"), path).await?;
        }
        // `/drain` (the preStop hook) does nothing to a Pod that is not being deleted.
        let drain = http_get(&format!("{ip}:9090"), "/drain", None)?;
        ensure!(
            drain.status == 409 && drain.body.contains("not being deleted"),
            "GET /drain on a running gateway Pod: {drain:?}"
        );
    }

    step("each gateway Pod routes to both teams");

    // From here on, requests never stop, spread over the gateway Service's ready endpoints.
    let endpoints = ReadyEndpoints::follow(client.clone(), SYSTEM, GATEWAY, "http", started);
    wait_for("2 ready gateway endpoints", WAIT, || async {
        Ok((endpoints.current().len() == 2).then_some(()))
    })
    .await?;
    step("traffic starts");
    let mut traffic = Traffic::send(
        Requests {
            targets: endpoints.targets(),
            host: "example.com".to_owned(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            answered_by: std::sync::Arc::new(backend_pod),
        },
        u64::MAX,
        Duration::from_secs(900),
    );
    traffic.more(20).await?;

    // More backend Pods: EDS brings each gateway the new endpoint.
    step("scaling the backend");
    kubectl_ok(&[
        "scale",
        "deployment/alpha",
        "-n",
        &alpha.name,
        "--replicas=2",
    ])?;
    under_load(&traffic, "answers from two alpha Pods", || async {
        let s = traffic.stats();
        Ok(s.answers.keys().filter(|p| p.starts_with("alpha-")).count() >= 2)
    })
    .await?;

    // A third gateway replica joins the Service once its Envoy is configured.
    step("scaling the gateway");
    patch_gateway(r#"{"spec":{"replicas":3}}"#)?;
    under_load(&traffic, "3 ready gateway endpoints", || async {
        Ok(endpoints.current().len() == 3)
    })
    .await?;
    traffic.more(20).await?;

    // Another Envoy image tag: a rolling update, each old Pod draining before it stops.
    let patch = format!(
        r#"{{"spec":{{"envoy":{{"image":"{}"}}}}}}"#,
        env.envoy_image_next
    );
    step("rolling the gateway");
    patch_gateway(&patch)?;
    under_load(
        &traffic,
        "every gateway Pod on the new image, the old ones gone",
        || async {
            let images = gateway_pod_images()?;
            Ok(images.len() == 3 && images.iter().all(|i| *i == env.envoy_image_next))
        },
    )
    .await?;
    rollout(SYSTEM, GATEWAY).await?;
    traffic.more(20).await?;

    // A gateway Pod deleted under load: the Service's other Pods keep serving while it drains.
    let victim = gateway_pods()?
        .into_iter()
        .next()
        .context("no gateway Pod")?;
    step(&format!("deleting {victim}"));
    kubectl_ok(&["delete", "pod", &victim, "-n", SYSTEM, "--wait=false"])?;
    under_load(&traffic, &format!("{victim} gone and replaced"), || async {
        Ok(!gateway_pods()?.contains(&victim) && endpoints.current().len() == 3)
    })
    .await?;
    traffic.more(20).await?;
    let stats = traffic.stop();
    ensure!(
        stats.failed == 0,
        "{} of {} requests failed:\n{}",
        stats.failed,
        stats.sent,
        stats.failures.join("\n")
    );
    println!(
        "requests: {} sent, answered by {:?}",
        stats.sent, stats.answers
    );

    // What the runtime runs: Legate's containers hold nothing beyond an unprivileged process.
    let running = containers(&env.containerd, SYSTEM)?;
    let mut checked = 0;
    for c in &running {
        println!("{c:?}");
        ensure!(
            c.excess().is_empty(),
            "{}/{} holds more than it should: {}",
            c.pod,
            c.name,
            c.excess().join("; ")
        );
        let allowed: &[&str] = match c.name.as_str() {
            "envoy" => &["/tmp"],
            _ => &[],
        };
        ensure!(
            c.writable_mounts
                .iter()
                .all(|m| allowed.contains(&m.as_str())),
            "{}/{} can write {:?}",
            c.pod,
            c.name,
            c.writable_mounts
        );
        checked += 1;
    }
    // The operator, and Envoy and the agent in each of three gateway Pods.
    ensure!(checked == 7, "checked {checked} containers: {running:#?}");

    step("the containers are checked");
    kubectl_ok(&["delete", "gatewayinstallation", GATEWAY, "-n", SYSTEM])?;
    step("the installation is deleted");
    Ok(())
}

/// Waits until `done` holds, failing at once when a request of `traffic` fails meanwhile.
async fn under_load<F, Fut>(traffic: &Traffic, what: &str, mut done: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    wait_for(what, WAIT, || {
        let check = done();
        async move {
            if let Err(failed) = traffic.check(&format!("waiting for {what}")) {
                return Ok(Some(Err(failed)));
            }
            Ok(check.await?.then_some(Ok(())))
        }
    })
    .await?
}

/// Waits until a Deployment's rollout is complete.
async fn rollout(namespace: &str, name: &str) -> Result<()> {
    let timeout = format!("--timeout={}s", WAIT.as_secs());
    let deployment = format!("deployment/{name}");
    kubectl_ok(&["rollout", "status", &deployment, "-n", namespace, &timeout])
        .with_context(|| format!("rollout of {namespace}/{name}"))?;
    Ok(())
}

fn patch_gateway(patch: &str) -> Result<String> {
    kubectl_ok(&[
        "patch",
        "gatewayinstallation",
        GATEWAY,
        "-n",
        SYSTEM,
        "--type=merge",
        "-p",
        patch,
    ])
}

fn gateway_pod_list() -> Result<Vec<Value>> {
    let list = kubectl_json(&[
        "get",
        "pods",
        "-n",
        SYSTEM,
        "-l",
        &format!("app.kubernetes.io/instance={GATEWAY}"),
    ])?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

/// The gateway Pods' names, terminating ones included.
fn gateway_pods() -> Result<Vec<String>> {
    Ok(gateway_pod_list()?
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect())
}

/// Each gateway Pod's Envoy image, terminating Pods included.
fn gateway_pod_images() -> Result<Vec<String>> {
    let mut out = Vec::new();
    for pod in gateway_pod_list()? {
        let containers = pod["spec"]["containers"].as_array().cloned();
        for c in containers.into_iter().flatten() {
            if c["name"] == "envoy" {
                out.push(c["image"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    Ok(out)
}

/// The IPs of the gateway Pods, once each has one.
async fn gateway_pod_ips() -> Result<Vec<String>> {
    wait_for("the gateway Pods' IPs", WAIT, || async {
        let ips: Vec<String> = gateway_pod_list()?
            .iter()
            .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_owned))
            .collect();
        Ok((ips.len() == 2).then_some(ips))
    })
    .await
}

/// Waits until `GET path` on `target` answers from the backend `path` names.
async fn expect_backend(target: &str, path: &str) -> Result<()> {
    let mut last: Option<HttpResponse> = None;
    let found = wait_for(&format!("GET {path} via {target}"), WAIT, || {
        let answer = http_get(target, path, Some("example.com"));
        if let Ok(a) = &answer {
            last = Some(a.clone());
        }
        async move {
            let answer = answer?;
            Ok(backend_pod(path, &answer))
        }
    })
    .await;
    match found {
        Ok(_) => Ok(()),
        Err(e) => bail!("{e:#}; last answer: {last:?}"),
    }
}
