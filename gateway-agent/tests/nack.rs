//! When the real Envoy refuses (NACKs) a configuration anyway.
//!
//! 1. The ADS server alone: after a NACK, a later update always reaches Envoy, the refused type
//!    included (Envoy applied part of it; a refusal can depend on more than content).
//! 2. The agent: it finds the resources responsible (bisecting when it must), refuses them with
//!    Envoy's message, serves the rest, and tries a quarantined resource again once it changes.
//!
//! Envoy is made to refuse in two ways no in-process validation can foresee: a Listener on a
//! port another process holds, and (the agent in process) a test-only fault that adds a cluster
//! Envoy's own validation refuses to every configuration built from a chosen resource.

mod support;

use std::{collections::BTreeSet, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use legate_agent::{
    bootstrap::AdsApi,
    ir::{Reason, Settings},
    pipeline::{Configuration, Fault},
    run::{Agent, Options, SourceOptions},
    status::Built,
    xds::{AckStatus, ResourceSet, Xds},
};
use legate_common::Readiness;
use legate_crds::Resource;
use prometheus_client::registry::Registry;
use support::{Client, Envoy, Upstream, eventually, free_addr, free_port, write_config as write};
use tokio::sync::{oneshot, watch};

/// How long one configuration may take to reach Envoy and be answered.
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Resources

/// A Listener named `name` on `port` admitting every Host.
fn listener(name: &str, port: u16) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{port: {port}, protocol: HTTP, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}\n"
    )
}

/// The Host `*`, routing plain HTTP.
const HOST: &str = "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\n\
    metadata: {name: any, namespace: default}\n\
    spec: {hostname: \"*\", requestPolicy: {insecure: {action: Route}}}\n";

/// A Mapping `name` of `prefix` to `service`, on every host.
fn mapping(name: &str, prefix: &str, service: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{hostname: \"*\", prefix: {prefix}, service: \"{service}\"}}\n"
    )
}

/// The Envoy resources the agent makes of `yaml`.
fn envoy_config(yaml: &str) -> ResourceSet {
    let loaded = legate_crds::loader::load_str("test.yaml", yaml).expect("YAML");
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    Configuration::build(&loaded.resources, &Settings::default()).resources
}

// ---------------------------------------------------------------------------------------------
// Traffic

/// Waits until `url` answers 200 from `upstream`.
async fn expect_routed(client: &Client, url: &str, upstream: &str) {
    eventually(
        &format!("{url} to answer 200 from {upstream}"),
        WAIT,
        || async {
            let r = client.get(url, None).await.ok()?;
            (r.status == 200 && r.upstream() == Some(upstream)).then_some(())
        },
    )
    .await;
}

/// The listeners Envoy has, active or warming (not those it holds only as an error).
async fn listeners(envoy: &Envoy) -> BTreeSet<String> {
    let dump = envoy
        .admin_get("/config_dump?resource=dynamic_listeners")
        .await
        .expect("Envoy admin answers")
        .json();
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| !l["active_state"].is_null() || !l["warming_state"].is_null())
        .filter_map(|l| l["name"].as_str().map(str::to_owned))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. The ADS server alone

/// The ADS server in process, on a free loopback port.
struct Server {
    xds: Xds,
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Server {
    async fn start() -> Self {
        let xds = Xds::new(&mut Registry::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(xds.clone().serve_on(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            xds,
            addr,
            _stop: stop,
        }
    }

    /// Publishes `set`; returns its configuration version.
    fn publish(&self, set: ResourceSet) -> String {
        self.xds.publish(set);
        self.xds.published_version().expect("a published version")
    }

    async fn status_until(&self, what: &str, check: impl Fn(&AckStatus) -> bool) -> AckStatus {
        let mut rx = self.xds.status();
        let reached = tokio::time::timeout(WAIT, rx.wait_for(|s| check(s)))
            .await
            .map(|r| r.expect("the ADS server runs").clone());
        reached.unwrap_or_else(|_| {
            panic!(
                "timed out waiting for {what}: {:?}",
                *self.xds.status().borrow()
            )
        })
    }

    async fn acked(&self, version: &str) {
        self.status_until(&format!("Envoy to acknowledge {version}"), |s| {
            s.acked_version.as_deref() == Some(version)
        })
        .await;
    }

    async fn refused(&self, version: &str) -> AckStatus {
        self.status_until(&format!("Envoy to refuse {version}"), |s| {
            s.last_nack
                .as_ref()
                .is_some_and(|n| n.config_version == version)
        })
        .await
    }
}

/// Envoy applies the listeners it can of a refused update: going back to the configuration it
/// acknowledged must remove them, and a later update with the very listener it refused (the port
/// since freed) must go through, and the routes behind it.
async fn a_later_update_reaches_envoy_after_a_nack(api: AdsApi) {
    let up = Upstream::start("up").await;
    let server = Server::start().await;
    let mut envoy = Envoy::start_with(server.addr, api).await;
    let client = Client::new();
    let (port, extra) = (free_port(), free_port());
    let occupied = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let taken = occupied.local_addr().unwrap().port();
    let good = format!(
        "{}{HOST}{}",
        listener("http", port),
        mapping("a", "/a/", &up.service())
    );

    let a = server.publish(envoy_config(&good));
    server.acked(&a).await;
    envoy.wait_ready().await;
    expect_routed(&client, &format!("http://127.0.0.1:{port}/a/x"), "up").await;
    let acked = listeners(&envoy).await;

    // A listener on a free port and one on a port another process holds: Envoy refuses the
    // update, having opened the first.
    let bad = format!(
        "{good}{}{}",
        listener("extra", extra),
        listener("occupied", taken)
    );
    let b = server.publish(envoy_config(&bad));
    let nack = server.refused(&b).await.last_nack.unwrap();
    assert!(
        nack.message.contains("Address already in use"),
        "Envoy's message: {nack:?}"
    );

    // Back to the acknowledged configuration: the extra listener goes.
    server.publish(envoy_config(&good));
    server.acked(&a).await;
    eventually(
        "Envoy to hold the acknowledged listeners only",
        WAIT,
        || async { (listeners(&envoy).await == acked).then_some(()) },
    )
    .await;

    // The same refused listener again, the port now free, with a new route: all of it serves.
    let b = server.publish(envoy_config(&bad));
    server.refused(&b).await;
    drop(occupied);
    let c = server.publish(envoy_config(&format!(
        "{bad}{}",
        mapping("b", "/b/", &up.service())
    )));
    server.acked(&c).await;
    expect_routed(&client, &format!("http://127.0.0.1:{port}/b/x"), "up").await;
    expect_routed(&client, &format!("http://127.0.0.1:{taken}/a/x"), "up").await;
    envoy.process.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_a_later_update_reaches_envoy_after_a_nack() {
    a_later_update_reaches_envoy_after_a_nack(AdsApi::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_a_later_update_reaches_envoy_after_a_nack() {
    a_later_update_reaches_envoy_after_a_nack(AdsApi::DeltaGrpc).await;
}

// ---------------------------------------------------------------------------------------------
// 2. The agent

/// Mappings `m0`… of `/m{i}/` to `service`, one file; those in `refused` carry the label the
/// test-only fault makes Envoy refuse.
fn mappings(n: usize, refused: &[usize], service: &str) -> String {
    (0..n)
        .map(|i| {
            let labels = if refused.contains(&i) {
                format!("labels: {{{FAULT_LABEL}: \"true\"}}, ")
            } else {
                String::new()
            };
            format!(
                "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
                 metadata: {{{labels}name: m{i}, namespace: default}}\n\
                 spec: {{hostname: \"*\", prefix: /m{i}/, service: \"{service}\"}}\n"
            )
        })
        .collect()
}

/// The label that makes Envoy refuse a resource's configuration (see [`fault`]).
const FAULT_LABEL: &str = "test.legate.dev/envoy-refuses";

/// Test-only: a resource labelled [`FAULT_LABEL`] brings a cluster Envoy refuses.
fn fault() -> Fault {
    Arc::new(|r: &Resource| {
        r.meta()
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(FAULT_LABEL))
    })
}

/// The agent in process (the fault is injected into it), serving a directory.
struct InProcessAgent {
    ads_address: SocketAddr,
    registry: Registry,
    built: watch::Receiver<Option<Built>>,
    _stop: oneshot::Sender<()>,
}

impl InProcessAgent {
    fn start(dir: &Path) -> Self {
        let ads_address = free_addr();
        let mut registry = Registry::with_prefix("legate_agent");
        let options = Options {
            source: SourceOptions::Directory {
                dir: dir.to_owned(),
                debounce: Duration::from_millis(20),
            },
            ads_address,
            settings: Settings::default(),
        };
        let mut agent = Agent::new(options, &mut registry).expect("the agent starts");
        agent.inject_fault(fault());
        let built = agent.built();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(agent.run(Readiness::new("starting"), async move {
            let _ = stopped.await;
        }));
        Self {
            ads_address,
            registry,
            built,
            _stop: stop,
        }
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.parse().ok())
    }

    /// Waits until the configuration served refuses exactly `objects` (`Kind ns/name`) as
    /// Envoy refused them; returns their messages.
    async fn refused_by_envoy(&mut self, objects: &[&str]) -> Vec<String> {
        let mut last = Vec::new();
        let reached = tokio::time::timeout(
            WAIT,
            self.built.wait_for(|b| {
                last = b.as_ref().map_or_else(Vec::new, |b| {
                    b.ir.rejections
                        .iter()
                        .filter(|r| r.reason == Reason::RefusedByEnvoy)
                        .map(|r| (r.object.to_string(), r.message.clone()))
                        .collect()
                });
                last.iter()
                    .map(|(o, _)| o.as_str())
                    .eq(objects.iter().copied())
            }),
        )
        .await;
        assert!(
            reached.is_ok(),
            "timed out waiting for {objects:?} to be refused by Envoy; refused: {last:?}"
        );
        last.into_iter().map(|(_, m)| m).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_one_mapping_envoy_refuses_among_many_is_refused_and_the_rest_served() {
    one_mapping_envoy_refuses_among_many_is_refused_and_the_rest_served(AdsApi::DeltaGrpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_one_mapping_envoy_refuses_among_many_is_refused_and_the_rest_served() {
    one_mapping_envoy_refuses_among_many_is_refused_and_the_rest_served(AdsApi::Grpc).await;
}

async fn one_mapping_envoy_refuses_among_many_is_refused_and_the_rest_served(api: AdsApi) {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    write(
        d,
        "gateway.yaml",
        &format!("{}{HOST}", listener("http", port)),
    );
    write(d, "mappings.yaml", &mappings(40, &[23], &up.service()));
    let mut agent = InProcessAgent::start(d);
    let mut envoy = Envoy::start_with(agent.ads_address, api).await;
    let client = Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    // On a fresh start Envoy refuses everything; the agent finds m23 and serves the rest.
    let messages = agent.refused_by_envoy(&["Mapping default/m23"]).await;
    assert!(
        messages[0].starts_with("Envoy refused the configuration this resource produces: ")
            && messages[0].contains("Expected positive duration"),
        "the refusal carries Envoy's message: {messages:?}"
    );
    envoy.wait_ready().await;
    for i in [0, 22, 24, 39] {
        expect_routed(&client, &url(&format!("/m{i}/x")), "up").await;
    }
    let reply = client.get(&url("/m23/x"), None).await.unwrap();
    assert_eq!(reply.status, 404, "the refused Mapping is not served");
    assert_eq!(agent.metric("legate_agent_quarantined"), Some(1.0));
    let trials = agent
        .metric("legate_agent_quarantine_trials_total")
        .unwrap_or_default();
    assert!(
        (1.0..=9.0).contains(&trials),
        "about log2(42) trials: {trials}"
    );

    // A later good update goes through at once, the bad Mapping still refused.
    write(d, "more.yaml", &mapping("new", "/new/", &up.service()));
    expect_routed(&client, &url("/new/x"), "up").await;
    agent.refused_by_envoy(&["Mapping default/m23"]).await;

    // Edited to be good, the Mapping is tried again and serves.
    write(d, "mappings.yaml", &mappings(40, &[], &up.service()));
    agent.refused_by_envoy(&[]).await;
    expect_routed(&client, &url("/m23/x"), "up").await;
    assert_eq!(agent.metric("legate_agent_quarantined"), Some(0.0));
    envoy.process.assert_running();
}
