//! Reconfiguration through the real Envoy: 100 changes under load without a failed request, a
//! Listener Envoy refuses (NACK) set aside while the rest keeps serving, and an agent
//! restart that serves the same (content-derived) versions while Envoy keeps routing.

mod support;

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use support::{
    Agent, Client, Envoy, Upstream, eventually, free_addr, free_port, write_config as write,
};

/// How long one configuration may take to reach Envoy and be acknowledged.
const ACK_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Configuration files

fn remove(dir: &Path, name: &str) {
    std::fs::remove_file(dir.join(name)).unwrap_or_else(|e| panic!("remove {name}: {e}"));
}

/// A Listener on `port` admitting every Host, and a Host `*` that routes plain HTTP.
fn listener_and_host(port: u16) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata:
  name: http
  namespace: default
spec:
  port: {port}
  protocol: HTTP
  securityModel: XFP
  hostBinding:
    namespace:
      from: ALL
---
{}",
        host("any", "*")
    )
}

fn host(name: &str, hostname: &str) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1
kind: Host
metadata:
  name: {name}
  namespace: default
spec:
  hostname: \"{hostname}\"
  requestPolicy:
    insecure:
      action: Route
"
    )
}

/// A Mapping on hostname `*`; `extra` is more spec lines, each indented by two spaces.
fn mapping(name: &str, prefix: &str, service: &str, extra: &[&str]) -> String {
    let mut out = format!(
        "apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: {name}
  namespace: default
spec:
  hostname: \"*\"
  prefix: {prefix}
  service: {service}
"
    );
    for line in extra {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// What the agent says

/// The configuration version `/readyz` reports as acknowledged, when it reports one.
fn serving_version(body: &str) -> Option<String> {
    let rest = body.split("serving configuration ").nth(1)?;
    let version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!version.is_empty()).then_some(version)
}

/// Waits until `/readyz` (fetched by `readyz`) answers 200, serving a version other than
/// `previous`, with no refusal noted; returns that version.
async fn wait_acked<F, Fut>(what: &str, previous: Option<&str>, mut readyz: F) -> String
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (u16, String)>,
{
    let start = Instant::now();
    loop {
        let last = readyz().await;
        let fresh = serving_version(&last.1).filter(|v| previous != Some(v.as_str()));
        if let Some(v) = fresh.filter(|_| last.0 == 200 && !last.1.contains("refused")) {
            return v;
        }
        assert!(
            start.elapsed() < ACK_TIMEOUT,
            "{what}: Envoy did not acknowledge a new configuration within {ACK_TIMEOUT:?} \
             (previous {previous:?}); last /readyz: {} {}",
            last.0,
            last.1.trim()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Load

/// Requests to one route from a few tasks until stopped; every answer that is not a 200 from
/// the expected upstream (or no answer at all) is a failure, kept with its details.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    started: Instant,
}

/// What one load run measured.
struct LoadReport {
    ok: usize,
    failed: usize,
    failures: Vec<String>,
    duration: Duration,
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// HTTP/1.1 on a pooled keep-alive connection.
    KeepAlive,
    /// HTTP/2 (h2c, prior knowledge) on one multiplexed connection.
    H2,
    /// A new HTTP/1.1 connection for every request.
    NewConnection,
}

impl Load {
    fn start(url: String, upstream: &str, modes: &[Mode]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let tasks = modes
            .iter()
            .enumerate()
            .map(|(n, &mode)| {
                let builder = reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(5))
                    .connect_timeout(Duration::from_secs(2));
                let client = match mode {
                    Mode::KeepAlive => builder.http1_only(),
                    Mode::H2 => builder.http2_prior_knowledge(),
                    Mode::NewConnection => builder.http1_only().pool_max_idle_per_host(0),
                }
                .build()
                .expect("a client");
                let (stop, ok, failed, failures) =
                    (stop.clone(), ok.clone(), failed.clone(), failures.clone());
                let (url, upstream) = (url.clone(), upstream.to_owned());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let url = format!("{url}{n}-{i}");
                        let outcome = match client.get(&url).send().await {
                            Err(e) => Err(format!("{mode:?} {url}: no answer: {e:?}")),
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let from = r
                                    .headers()
                                    .get("x-upstream")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned);
                                match r.text().await {
                                    Err(e) => Err(format!("{mode:?} {url}: {status}, body: {e:?}")),
                                    Ok(_)
                                        if status == 200 && from.as_deref() == Some(&upstream) =>
                                    {
                                        Ok(())
                                    }
                                    Ok(body) => Err(format!(
                                        "{mode:?} {url}: {status} from {from:?}: {body}"
                                    )),
                                }
                            }
                        };
                        match outcome {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                let mut f = failures.lock().unwrap();
                                if f.len() < 20 {
                                    f.push(e);
                                }
                            }
                        }
                        // New connections are paced: thousands of sockets in TIME_WAIT per
                        // second would test the kernel, not the gateway.
                        let pause = match mode {
                            Mode::NewConnection => 5,
                            Mode::KeepAlive | Mode::H2 => 1,
                        };
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            ok,
            failures,
            failed,
            tasks,
            started: Instant::now(),
        }
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    async fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("a load task stops within 10 s")
                .expect("a load task does not panic");
        }
        let failures = self.failures.lock().unwrap().clone();
        LoadReport {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            failures,
            duration: self.started.elapsed(),
        }
    }
}

/// A GET through Envoy that must answer 200 from `upstream`; bounded.
async fn expect_routed(client: &Client, url: &str, upstream: &str) -> serde_json::Value {
    eventually(
        &format!("{url} to answer 200 from {upstream}"),
        Duration::from_secs(10),
        || async {
            let r = client.get(url, None).await.ok()?;
            (r.status == 200 && r.upstream() == Some(upstream)).then(|| r.json())
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// 1. Zero-drop reconfiguration

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_changes_under_load_drop_no_request() {
    let stable = Upstream::start("stable").await;
    let other = Upstream::start("other").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    write(d, "base.yaml", &listener_and_host(port));
    write(
        d,
        "stable.yaml",
        &mapping("stable", "/stable/", &stable.service(), &[]),
    );
    write(
        d,
        "edit.yaml",
        &mapping("edit", "/edit/", &other.service(), &[]),
    );
    let canary = |weight: u32| {
        format!(
            "{}---\n{}",
            mapping("canary-main", "/canary/", &stable.service(), &[]),
            mapping(
                "canary-next",
                "/canary/",
                &other.service(),
                &[&format!("weight: {weight}")]
            )
        )
    };
    write(d, "canary.yaml", &canary(10));

    let agent = Agent::start(d).await;
    let mut envoy = Envoy::start(agent.ads_address).await;
    envoy.wait_ready().await;
    let readyz = || agent.readyz();
    let mut version = wait_acked("the first configuration", None, readyz).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new();
    expect_routed(&client, &format!("{base}/stable/x"), "stable").await;

    let rejected_before = envoy.stat_sum("update_rejected").await;
    let listener_modified_before = envoy.stat_sum("^listener_manager.listener_modified$").await;
    let rds_before = envoy.stat_sum("rds.*update_success").await;
    let listener_stat = format!("^listener.0.0.0.0_{port}.downstream_cx_total$");
    let connections_before = envoy.stat_sum(&listener_stat).await;

    let load = Load::start(
        format!("{base}/stable/r"),
        "stable",
        &[
            Mode::KeepAlive,
            Mode::H2,
            Mode::NewConnection,
            Mode::NewConnection,
        ],
    );
    // Some traffic before the first change.
    eventually("the load to get going", Duration::from_secs(10), || async {
        (load.ok() + load.failed() >= 20).then_some(())
    })
    .await;

    let services = [stable.service(), other.service()];
    let mut added: Vec<String> = Vec::new();
    let mut clusters: Vec<String> = Vec::new();
    let mut kinds = [0usize; 7];
    let changes_started = Instant::now();
    const CHANGES: usize = 100;
    for i in 0..CHANGES {
        let kind = if i == CHANGES - 1 { 0 } else { i % 7 };
        kinds[kind] += 1;
        let what = match kind {
            // Add a Mapping.
            0 => {
                let name = format!("added-{i}.yaml");
                let prefix = if i == CHANGES - 1 {
                    "/final/".to_owned()
                } else {
                    format!("/added-{i}/")
                };
                write(
                    d,
                    &name,
                    &mapping(&format!("added-{i}"), &prefix, &other.service(), &[]),
                );
                added.push(name);
                format!("add Mapping {prefix}")
            }
            // Edit another Mapping's service, rewrite and timeout.
            1 => {
                write(
                    d,
                    "edit.yaml",
                    &mapping(
                        "edit",
                        "/edit/",
                        &services[i % 2],
                        &[
                            &format!("rewrite: /r{i}/"),
                            &format!("timeout_ms: {}", 2000 + i),
                        ],
                    ),
                );
                "edit Mapping edit (service, rewrite, timeout)".to_owned()
            }
            // Remove a Mapping added earlier.
            2 => {
                let name = added.remove(0);
                remove(d, &name);
                format!("remove {name}")
            }
            // Add a Host.
            3 => {
                write(
                    d,
                    &format!("host-{i}.yaml"),
                    &host(&format!("host-{i}"), &format!("h{i}.example.com")),
                );
                format!("add Host h{i}.example.com")
            }
            // Change the canary weight.
            4 => {
                write(d, "canary.yaml", &canary(((i * 7) % 90 + 5) as u32));
                "change the canary weight".to_owned()
            }
            // A Mapping on a new cluster (its own connect timeout makes it one).
            5 => {
                let name = format!("cluster-{i}.yaml");
                write(
                    d,
                    &name,
                    &mapping(
                        &format!("cluster-{i}"),
                        &format!("/cluster-{i}/"),
                        &other.service(),
                        &[&format!("connect_timeout_ms: {}", 1000 + i)],
                    ),
                );
                clusters.push(name);
                format!("add a cluster (/cluster-{i}/)")
            }
            // Remove a cluster: the only Mapping using it goes.
            _ => {
                let name = clusters.remove(0);
                remove(d, &name);
                format!("remove a cluster ({name})")
            }
        };
        version = wait_acked(
            &format!("change {} of {CHANGES} ({what})", i + 1),
            Some(&version),
            readyz,
        )
        .await;
        envoy.process.assert_running();
    }
    let changes_took = changes_started.elapsed();
    // A little traffic after the last change, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = load.finish().await;

    let per_change = changes_took / CHANGES as u32;
    let rds = envoy.stat_sum("rds.*update_success").await - rds_before;
    let connections = envoy.stat_sum(&listener_stat).await - connections_before;
    let cds = envoy.stat_sum("^cluster_manager.cds.update_success$").await;
    let lds = envoy
        .stat_sum("^listener_manager.lds.update_success$")
        .await;
    let listener_modified =
        envoy.stat_sum("^listener_manager.listener_modified$").await - listener_modified_before;
    eprintln!(
        "zero-drop: {CHANGES} changes (kinds add/edit/remove/host/canary/+cluster/-cluster = \
         {kinds:?}) in {changes_took:?} ({per_change:?} per change, each acknowledged); \
         {} requests to /stable/ in {:?} ({:.0}/s) on {connections} connections, {} failed; \
         Envoy updates: cds {cds}, lds {lds}, rds {rds} during the changes, listeners modified \
         {listener_modified}",
        report.ok + report.failed,
        report.duration,
        (report.ok + report.failed) as f64 / report.duration.as_secs_f64(),
        report.failed,
    );
    assert!(
        rds >= CHANGES as u64,
        "every change altered the routes, yet Envoy applied only {rds} RDS updates"
    );
    assert!(
        connections >= 200,
        "some requests came on new connections: only {connections} connections"
    );
    assert_eq!(
        report.failed,
        0,
        "{} of {} requests to the unchanged route /stable/ failed during the changes; first \
         failures:\n{}",
        report.failed,
        report.ok + report.failed,
        report.failures.join("\n")
    );
    assert!(
        report.ok >= 500,
        "too little traffic to mean anything: {} requests",
        report.ok
    );
    assert!(
        stable.requests() >= report.ok,
        "the stable upstream answered {} requests, fewer than the {} that succeeded",
        stable.requests(),
        report.ok
    );
    assert_eq!(
        envoy.stat_sum("update_rejected").await,
        rejected_before,
        "Envoy rejected an update during the changes"
    );

    // The changes really reached Envoy: the route added last answers, one removed does not.
    let reply = client.get(&format!("{base}/final/x"), None).await.unwrap();
    assert_eq!(
        (reply.status, reply.upstream()),
        (200, Some("other")),
        "/final/ (added by the last change) answers from `other`: {reply:?}"
    );
    assert_eq!(reply.json()["path"], "/x", "/final/x is rewritten to /x");
    let reply = client
        .get(&format!("{base}/added-0/x"), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 404, "/added-0/ was removed: {reply:?}");
    let last_edit = (0..CHANGES - 1).rev().find(|i| i % 7 == 1).unwrap();
    let reply = client.get(&format!("{base}/edit/x"), None).await.unwrap();
    assert_eq!(reply.status, 200, "/edit/ answers: {reply:?}");
    assert_eq!(
        reply.json()["path"],
        format!("/r{last_edit}/x"),
        "/edit/ has the last rewrite"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. NACK

/// A Listener that validates in the agent but that Envoy cannot take when its port is already
/// bound by another process (the test), which no in-process check can know.
fn refused_listener(port: u16) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {{name: occupied, namespace: default}}\n\
         spec: {{port: {port}, protocol: HTTP, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}\n"
    )
}

/// What Envoy says about it.
const ENVOY_ERROR: &str = "Address already in use";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_envoy_refuses_is_set_aside_and_the_rest_keeps_serving() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    write(d, "base.yaml", &listener_and_host(port));
    write(
        d,
        "good.yaml",
        &mapping("good", "/good/", &up.service(), &[]),
    );
    let agent = Agent::start(d).await;
    let mut envoy = Envoy::start(agent.ads_address).await;
    envoy.wait_ready().await;
    let good_version = wait_acked("the good configuration", None, || agent.readyz()).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new();
    expect_routed(&client, &format!("{base}/good/x"), "up").await;
    assert_eq!(agent.nacks().await, 0.0, "no NACK before the bad Listener");

    // Hold a port the way another process on the node would.
    let occupied = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    write(
        d,
        "bad.yaml",
        &refused_listener(occupied.local_addr().unwrap().port()),
    );
    // Envoy refuses it; the agent finds the Listener responsible and rejects it, naming
    // Envoy's error.
    let rejected = eventually(
        "the agent to reject the Listener Envoy refused",
        ACK_TIMEOUT,
        || async {
            agent
                .log()
                .lines()
                .find(|l| l.contains("rejected: Listener default/occupied (RefusedByEnvoy)"))
                .map(str::to_owned)
        },
    )
    .await;
    assert!(
        rejected.contains(ENVOY_ERROR),
        "the rejection carries Envoy's error ({ENVOY_ERROR:?}): {rejected}"
    );
    let counted = agent.nacks().await;
    assert!(
        counted >= 1.0,
        "legate_agent_xds_nacks_total counts the refusal ({counted}); metrics:\n{}",
        agent.metrics().await
    );
    assert!(
        agent
            .metric("legate_agent_xds_nacks_total{type=\"lds\"}")
            .await
            .is_some_and(|n| n >= 1.0),
        "the refusal is counted for LDS"
    );
    assert_eq!(
        agent.metric("legate_agent_quarantined").await,
        Some(1.0),
        "one resource set aside"
    );
    let log = agent.log();
    assert!(
        log.lines()
            .any(|l| l.contains("NACK") && l.contains(ENVOY_ERROR)),
        "the agent logs the NACK with Envoy's error ({ENVOY_ERROR:?}); log:\n{log}"
    );
    assert!(
        envoy.stat_sum("lds.*update_rejected").await >= 1,
        "Envoy's LDS update_rejected counter"
    );
    // What is left is what Envoy had: the same version, acknowledged, nothing refused.
    let (status, body) = agent.readyz().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serving_version(&body).as_deref(),
        Some(good_version.as_str()),
        "{body}"
    );
    for _ in 0..20 {
        let reply = client.get(&format!("{base}/good/x"), None).await.unwrap();
        assert_eq!(
            (reply.status, reply.upstream()),
            (200, Some("up")),
            "/good/ keeps answering after the NACK: {reply:?}"
        );
    }
    envoy.process.assert_running();

    // A later good update goes through, the Listener still set aside.
    write(d, "new.yaml", &mapping("new", "/new/", &up.service(), &[]));
    let version = wait_acked(
        "the configuration with the new Mapping",
        Some(&good_version),
        || agent.readyz(),
    )
    .await;
    expect_routed(&client, &format!("{base}/new/x"), "up").await;

    // Edited to a free port, the Listener is tried again and serves.
    let moved = free_port();
    write(d, "bad.yaml", &refused_listener(moved));
    wait_acked(
        "the configuration with the Listener moved",
        Some(&version),
        || agent.readyz(),
    )
    .await;
    expect_routed(&client, &format!("http://127.0.0.1:{moved}/good/x"), "up").await;
    expect_routed(&client, &format!("{base}/good/x"), "up").await;
    assert_eq!(agent.metric("legate_agent_quarantined").await, Some(0.0));
    drop(occupied);
}

// ---------------------------------------------------------------------------------------------
// 3. Restart

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_serves_the_same_versions_and_traffic_never_stops() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    write(d, "base.yaml", &listener_and_host(port));
    write(
        d,
        "good.yaml",
        &mapping("good", "/good/", &up.service(), &[]),
    );
    write(
        d,
        "more.yaml",
        &mapping("more", "/more/", &up.service(), &["rewrite: /v1/"]),
    );
    let ads = free_addr();
    let mut a = Agent::start_on(d, ads).await;
    let mut envoy = Envoy::start(ads).await;
    envoy.wait_ready().await;
    let version_a = wait_acked("agent A's configuration", None, || a.readyz()).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new();
    expect_routed(&client, &format!("{base}/good/x"), "up").await;

    let churn = [
        "^listener_manager.listener_modified$",
        "^listener_manager.listener_added$",
        "^listener_manager.listener_removed$",
        "^cluster_manager.cluster_modified$",
        "^cluster_manager.cluster_added$",
        "^cluster_manager.cluster_removed$",
    ];
    let mut before = Vec::new();
    for s in churn {
        before.push(envoy.stat_sum(s).await);
    }
    let route_config_before = envoy
        .admin_get("/config_dump?resource=dynamic_route_configs")
        .await
        .unwrap()
        .json()["configs"][0]["route_config"]
        .clone();

    let load = Load::start(
        format!("{base}/good/r"),
        "up",
        &[Mode::KeepAlive, Mode::NewConnection],
    );
    a.process.kill();
    let killed = Instant::now();
    eventually(
        "Envoy to notice the agent is gone",
        Duration::from_secs(10),
        || async { (envoy.stat_sum("^control_plane.connected_state$").await == 0).then_some(()) },
    )
    .await;
    // Envoy keeps routing on what it has while nothing serves ADS.
    let ok_when_killed = load.ok();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        load.ok() > ok_when_killed + 10,
        "requests keep succeeding while the agent is gone ({} then {})",
        ok_when_killed,
        load.ok()
    );
    assert_eq!(load.failed(), 0, "no request fails while the agent is gone");

    let b = Agent::start_on(d, ads).await;
    let version_b = wait_acked("agent B's configuration", None, || b.readyz()).await;
    let gap = killed.elapsed();
    eventually(
        "Envoy to be connected to agent B",
        Duration::from_secs(15),
        || async { (envoy.stat_sum("^control_plane.connected_state$").await == 1).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = load.finish().await;
    eprintln!(
        "restart: version {version_a} before, {version_b} after; agent gone and back in \
         {gap:?}; {} requests, {} failed",
        report.ok + report.failed,
        report.failed
    );
    assert_eq!(
        version_b, version_a,
        "the restarted agent serves the same, content-derived, configuration version"
    );
    assert_eq!(
        report.failed,
        0,
        "requests failed across the restart:\n{}",
        report.failures.join("\n")
    );
    let mut after = Vec::new();
    for s in churn {
        after.push(envoy.stat_sum(s).await);
    }
    assert_eq!(
        churn
            .iter()
            .zip(&after)
            .map(|(s, n)| (*s, *n))
            .collect::<Vec<_>>(),
        churn
            .iter()
            .zip(&before)
            .map(|(s, n)| (*s, *n))
            .collect::<Vec<_>>(),
        "Envoy rebuilt no listener or cluster after the restart"
    );
    let route_config_after = envoy
        .admin_get("/config_dump?resource=dynamic_route_configs")
        .await
        .unwrap()
        .json()["configs"][0]["route_config"]
        .clone();
    assert_eq!(
        route_config_after, route_config_before,
        "the routes Envoy holds are unchanged"
    );
    expect_routed(&client, &format!("{base}/more/x"), "up").await;

    // B is live: a change goes through it.
    write(
        d,
        "late.yaml",
        &mapping("late", "/late/", &up.service(), &[]),
    );
    wait_acked("a change served by agent B", Some(&version_b), || {
        b.readyz()
    })
    .await;
    expect_routed(&client, &format!("{base}/late/x"), "up").await;
}

/// Mappings Envoy would refuse ("RE2 program size of 1004 > max program size of 100",
/// ":-prefixed or host headers may not be modified"): the agent must refuse them itself.
fn refused_mappings(service: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "prefix_regex over RE2's program size",
            mapping(
                "bad",
                "^/bad/[a-z]{1000}$",
                service,
                &["prefix_regex: true"],
            ),
        ),
        (
            "add_request_headers on :path",
            mapping(
                "bad",
                "/bad/",
                service,
                &["add_request_headers:", "  \":path\": /elsewhere"],
            ),
        ),
    ]
}

/// DESIGN.md: "A bad resource never takes the others down"; issue 3: "the translation is
/// validated in-process so Envoy never receives what it would reject". Were a Mapping above
/// accepted, Envoy would refuse the whole route configuration and, while it exists, no other
/// route change would reach Envoy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_envoy_would_refuse_is_rejected_alone() {
    let up = Upstream::start("up").await;
    let mut failures = Vec::new();
    for (n, (what, yaml)) in refused_mappings(&up.service()).into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        write(d, "base.yaml", &listener_and_host(port));
        write(
            d,
            "good.yaml",
            &mapping("good", "/good/", &up.service(), &[]),
        );
        let agent = Agent::start(d).await;
        let mut envoy = Envoy::start(agent.ads_address).await;
        envoy.wait_ready().await;
        let version = wait_acked(what, None, || agent.readyz()).await;
        let base = format!("http://127.0.0.1:{port}");
        let client = Client::new();
        expect_routed(&client, &format!("{base}/good/x"), "up").await;

        write(d, "bad.yaml", &yaml);
        write(
            d,
            "other.yaml",
            &mapping(&format!("other-{n}"), "/other/", &up.service(), &[]),
        );
        // The neighbour added next to the bad Mapping is served (bounded wait), because the
        // agent rejected the bad one itself and Envoy refused nothing.
        let other_url = format!("{base}/other/x");
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while !reached_now(&client, &other_url).await {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        let (status, body) = agent.readyz().await;
        let other = client.get(&other_url, None).await.unwrap().status;
        let nacked = agent.nacks().await;
        let rejected = agent.metric("legate_agent_rejected").await.unwrap_or(0.0);
        let new_version = serving_version(&body).is_some_and(|v| v != version);
        if other != 200
            || body.contains("refused")
            || !new_version
            || nacked > 0.0
            || rejected < 1.0
        {
            failures.push(format!(
                "{what}: /other/ answered {other} (want 200), NACKs {nacked} (want 0), \
                 legate_agent_rejected {rejected} (want >= 1), /readyz {status} {}",
                body.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "a Mapping Envoy would refuse reached Envoy and held back its neighbours:\n{}",
        failures.join("\n")
    );
}

async fn reached_now(client: &Client, url: &str) -> bool {
    client.get(url, None).await.is_ok_and(|r| r.status == 200)
}
