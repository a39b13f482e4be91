//! Kubernetes Services through the real Envoy: a Mapping to a Service is served over EDS from
//! the Service's EndpointSlice, and scaling the backend while requests flow reaches Envoy as a
//! new ClusterLoadAssignment alone: no request fails, no cluster is rebuilt. Over delta and
//! state-of-the-world ADS.
//!
//! The "pods" are echo upstreams on 127.0.0.2, .3 and .4 (all loopback on Linux), one port for
//! all, as the endpoints of one EndpointSlice share their ports.

mod support;

use std::{
    collections::BTreeSet,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use legate_agent::bootstrap::AdsApi;
use support::{
    Agent, Client, Envoy, Upstream, eventually, free_port, pods, slice, write_config as write,
};

/// How long a change may take to reach Envoy.
const WAIT: Duration = Duration::from_secs(20);

fn gateway_yaml(port: u16) -> String {
    format!(
        r#"apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: http, namespace: default}}
spec: {{port: {port}, protocol: HTTP, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {{name: any, namespace: default}}
spec: {{hostname: "*", requestPolicy: {{insecure: {{action: Route}}}}}}
"#
    )
}

/// Service `name` (port 80, `http`, to the pods' `target` port) and a Mapping `/{name}/` to it.
fn service_and_mapping(name: &str, service: &str, target: u16) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: {target}}}]
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: {name}, namespace: default}}
spec: {{hostname: "*", prefix: /{name}/, service: "{service}"}}
"#
    )
}

/// Requests to one URL, on a keep-alive connection and on new connections, until stopped:
/// every answer that is not a 200 (or no answer) is a failure; the pods that answered are kept.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<BTreeSet<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(url: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let tasks = [true, false]
            .into_iter()
            .map(|keep_alive| {
                let builder = reqwest::Client::builder()
                    .no_proxy()
                    .http1_only()
                    .timeout(Duration::from_secs(5));
                let client = if keep_alive {
                    builder
                } else {
                    builder.pool_max_idle_per_host(0)
                }
                .build()
                .expect("a client");
                let (stop, ok, failures, seen, url) = (
                    stop.clone(),
                    ok.clone(),
                    failures.clone(),
                    seen.clone(),
                    url.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match client.get(&url).send().await {
                            Ok(r) if r.status() == 200 => {
                                let from = r
                                    .headers()
                                    .get("x-upstream")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned();
                                let _ = r.bytes().await;
                                seen.lock().unwrap().insert(from);
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => {
                                let status = r.status();
                                let body = r.text().await;
                                failures.lock().unwrap().push(format!("{status}: {body:?}"));
                            }
                            Err(e) => failures.lock().unwrap().push(format!("no answer: {e:?}")),
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            ok,
            failures,
            seen,
            tasks,
        }
    }

    /// Forgets which pods answered so far.
    fn reset_seen(&self) {
        self.seen.lock().unwrap().clear();
    }

    fn seen(&self) -> BTreeSet<String> {
        self.seen.lock().unwrap().clone()
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a load task does not panic");
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Waits until, after a reset, the load has been answered by exactly `pods` (each at least
/// once, no other) over at least 30 requests.
async fn wait_answered_by(load: &Load, pods: &[&str]) {
    eventually(&format!("answers from exactly {pods:?}"), WAIT, || async {
        let before = load.ok.load(Ordering::Relaxed);
        load.reset_seen();
        // Enough requests for every pod to be met by round robin (or give up on this round:
        // failing requests are reported at the end).
        let round = std::time::Instant::now();
        while load.ok.load(Ordering::Relaxed) < before + 30 {
            if round.elapsed() > Duration::from_secs(2) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (load.seen() == set(pods)).then_some(())
    })
    .await;
}

/// The EDS cluster's membership as Envoy has it (`membership_total` of the `echo` cluster).
async fn membership(envoy: &Envoy) -> u64 {
    envoy
        .stat_sum(r"^cluster\.cluster_echo_default_80_[0-9a-f]+\.membership_total$")
        .await
}

async fn scale_under_load(api: AdsApi) {
    let [a, b, c]: [Upstream; 3] = pods(&["a", "b", "c"])
        .await
        .try_into()
        .unwrap_or_else(|_| unreachable!("three pods"));
    let dir = tempfile::tempdir().expect("a config directory");
    let d: &Path = dir.path();
    let port = free_port();
    write(d, "gateway.yaml", &gateway_yaml(port));
    write(
        d,
        "echo.yaml",
        &service_and_mapping("echo", "echo.default:80", a.addr.port()),
    );
    write(d, "echo-slice.yaml", &slice("echo", &[&a, &b]));

    let agent = Agent::start(d).await;
    let mut envoy = Envoy::start_with(agent.ads_address, api).await;
    envoy.wait_ready().await;
    agent.wait_ready().await;
    let url = format!("http://127.0.0.1:{port}/echo/");
    let load = Load::start(url);
    wait_answered_by(&load, &["a", "b"]).await;

    let eds = r"^cluster\.cluster_echo_default_80_[0-9a-f]+\.update_success$";
    let before = (
        envoy.stat_sum("^cluster_manager.cluster_modified$").await,
        envoy.stat_sum("^cluster_manager.cluster_added$").await,
        envoy.stat_sum("^cluster_manager.cds.update_success$").await,
        envoy.stat_sum(eds).await,
    );

    // Scale down to one pod, then up to three, while requests flow.
    write(d, "echo-slice.yaml", &slice("echo", &[&a]));
    eventually("Envoy to have 1 endpoint", WAIT, || async {
        (membership(&envoy).await == 1).then_some(())
    })
    .await;
    wait_answered_by(&load, &["a"]).await;
    write(d, "echo-slice.yaml", &slice("echo", &[&a, &b, &c]));
    eventually("Envoy to have 3 endpoints", WAIT, || async {
        (membership(&envoy).await == 3).then_some(())
    })
    .await;
    wait_answered_by(&load, &["a", "b", "c"]).await;

    let (ok, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} of {} requests failed while the backend scaled: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(10)]
    );
    let after = (
        envoy.stat_sum("^cluster_manager.cluster_modified$").await,
        envoy.stat_sum("^cluster_manager.cluster_added$").await,
        envoy.stat_sum("^cluster_manager.cds.update_success$").await,
        envoy.stat_sum(eds).await,
    );
    // No cluster modified or added, not even a CDS response: only the assignment moved.
    // (`cluster_updated` counts membership updates, EDS's included: not a measure of CDS.)
    assert_eq!(
        (after.0, after.1, after.2),
        (before.0, before.1, before.2),
        "(clusters modified, added, CDS updates) changed while only endpoints did"
    );
    assert!(
        after.3 >= before.3 + 2,
        "two EDS updates expected, Envoy counted {} then {}",
        before.3,
        after.3
    );
    assert!(ok >= 90, "too little traffic to mean anything: {ok}");

    // A new Service and its Mapping: served from its first request after Envoy acknowledged
    // it, as its endpoints reach Envoy before the route to it does.
    let acked = |body: &str| {
        body.split("serving configuration ")
            .nth(1)
            .map(str::to_owned)
    };
    let version = acked(&agent.readyz().await.1);
    write(d, "more-slice.yaml", &slice("more", &[&b]));
    write(
        d,
        "more.yaml",
        &service_and_mapping("more", "more", b.addr.port()),
    );
    let client = Client::new();
    // Well within Envoy's 15 s initial fetch timeout: the new cluster's endpoints must not
    // wait for the acknowledgement of the cluster, which Envoy gives only once it has them.
    let within = Duration::from_secs(8);
    eventually("the agent to serve the new Service", within, || async {
        let (status, body) = agent.readyz().await;
        let now = acked(&body);
        (status == 200 && now.is_some() && now != version).then_some(())
    })
    .await;
    let reply = client
        .get(&format!("http://127.0.0.1:{port}/more/x"), None)
        .await
        .expect("Envoy answers");
    // The route may lag the acknowledgement only as Envoy applies RDS on its workers; never a
    // 503 for a cluster without endpoints.
    assert_ne!(reply.status, 503, "{reply:?}");
    eventually("/more/ to answer from b", WAIT, || async {
        let r = client
            .get(&format!("http://127.0.0.1:{port}/more/x"), None)
            .await
            .ok()?;
        (r.status == 200 && r.upstream() == Some("b")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_a_service_updates_only_its_assignment_over_delta_ads() {
    scale_under_load(AdsApi::DeltaGrpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_a_service_updates_only_its_assignment_over_sotw_ads() {
    scale_under_load(AdsApi::Grpc).await;
}
