//! The ADS server, spoken to by a tonic ADS client over a real 127.0.0.1 socket, as Envoy would.
//! Each test reads: publish X, Envoy asks/answers Y, expect responses Z.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use legate_agent::xds::{AckStatus, ResourceSet, Xds, type_url};
use pretty_assertions::assert_eq;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(150);

// ---------------------------------------------------------------------------------------------
// Configurations

/// Clusters (with endpoints), one listener `l` and route configurations, each naming the
/// clusters it routes to. `tag` changes the listener's content.
fn config(clusters: &[&str], routes: &[(&str, &[&str])], tag: &str) -> ResourceSet {
    let mut set = ResourceSet::default();
    for c in clusters {
        set.insert(
            *c,
            &Cluster {
                name: c.to_string(),
                ..Default::default()
            },
        );
        set.insert(
            *c,
            &ClusterLoadAssignment {
                cluster_name: c.to_string(),
                ..Default::default()
            },
        );
    }
    set.insert(
        "l",
        &Listener {
            name: "l".into(),
            stat_prefix: tag.into(),
            ..Default::default()
        },
    );
    for (name, to) in routes {
        set.insert(
            *name,
            &RouteConfiguration {
                name: name.to_string(),
                virtual_hosts: vec![VirtualHost {
                    name: to.join(","),
                    domains: vec!["*".into()],
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
    }
    set
}

fn hex16(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The documented scheme, computed independently: hash of sorted (name, hash(bytes)) pairs.
fn expected_type_version(set: &ResourceSet, url: &str) -> String {
    let mut bytes = Vec::new();
    for (name, any) in set.of_type(url) {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(hex16(&any.value).as_bytes());
        bytes.push(0);
    }
    hex16(&bytes)
}

fn names(resp: &DiscoveryResponse) -> BTreeSet<String> {
    resp.resources
        .iter()
        .map(|any| match any.type_url.as_str() {
            type_url::CLUSTER => prost::Message::decode(&any.value[..]).map(|c: Cluster| c.name),
            type_url::ROUTE => {
                prost::Message::decode(&any.value[..]).map(|r: RouteConfiguration| r.name)
            }
            type_url::LISTENER => prost::Message::decode(&any.value[..]).map(|l: Listener| l.name),
            type_url::ENDPOINT => prost::Message::decode(&any.value[..])
                .map(|e: ClusterLoadAssignment| e.cluster_name),
            other => panic!("unexpected {other}"),
        })
        .map(Result::unwrap)
        .collect()
}

fn set_of(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Harness: the server on 127.0.0.1:0, and an Envoy-like client

struct Server {
    xds: Xds,
    addr: SocketAddr,
    registry: Registry,
    _stop: oneshot::Sender<()>,
}

async fn start() -> Server {
    let mut registry = Registry::with_prefix("legate");
    let xds = Xds::new(&mut registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(xds.clone().serve_on(listener, async move {
        let _ = stopped.await;
    }));
    Server {
        xds,
        addr,
        registry,
        _stop: stop,
    }
}

impl Server {
    fn metrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).unwrap();
        out
    }

    async fn status_until(&self, what: impl Fn(&AckStatus) -> bool) -> AckStatus {
        let mut rx = self.xds.status();
        tokio::time::timeout(WAIT, rx.wait_for(|s| what(s)))
            .await
            .expect("status never reached")
            .unwrap()
            .clone()
    }
}

async fn client(addr: SocketAddr) -> AggregatedDiscoveryServiceClient<tonic::transport::Channel> {
    AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

struct Sotw {
    tx: mpsc::UnboundedSender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl Sotw {
    async fn connect(addr: SocketAddr) -> Self {
        let (tx, requests) = mpsc::unbounded_channel();
        let rx = client(addr)
            .await
            .stream_aggregated_resources(UnboundedReceiverStream::new(requests))
            .await
            .unwrap()
            .into_inner();
        Self { tx, rx }
    }

    fn request(&self, url: &str, names: &[&str], version: &str, nonce: &str) {
        self.tx
            .send(DiscoveryRequest {
                type_url: url.into(),
                resource_names: names.iter().map(|s| s.to_string()).collect(),
                version_info: version.into(),
                response_nonce: nonce.into(),
                ..Default::default()
            })
            .unwrap();
    }

    fn subscribe(&self, url: &str, names: &[&str]) {
        self.request(url, names, "", "");
    }

    fn ack(&self, resp: &DiscoveryResponse, names: &[&str]) {
        self.request(&resp.type_url, names, &resp.version_info, &resp.nonce);
    }

    fn nack(&self, resp: &DiscoveryResponse, previous: &str, message: &str) {
        self.tx
            .send(DiscoveryRequest {
                type_url: resp.type_url.clone(),
                version_info: previous.into(),
                response_nonce: resp.nonce.clone(),
                error_detail: Some(RpcStatus {
                    code: 3,
                    message: message.into(),
                    details: vec![],
                }),
                ..Default::default()
            })
            .unwrap();
    }

    async fn recv(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("no response in time")
            .unwrap()
            .expect("stream ended")
    }

    async fn silent(&mut self) {
        if let Ok(msg) = tokio::time::timeout(QUIET, self.rx.message()).await {
            panic!("expected nothing, got {msg:?}");
        }
    }

    /// Subscribes like Envoy to CDS, EDS (for `eds`), LDS and RDS (for `rds`), acknowledging
    /// each response; returns them in arrival order.
    async fn sync_all(&mut self, eds: &[&str], rds: &[&str]) -> Vec<DiscoveryResponse> {
        self.subscribe(type_url::CLUSTER, &[]);
        self.subscribe(type_url::ENDPOINT, eds);
        self.subscribe(type_url::LISTENER, &[]);
        self.subscribe(type_url::ROUTE, rds);
        let mut got = Vec::new();
        for _ in 0..4 {
            let r = self.recv().await;
            let names: &[&str] = match r.type_url.as_str() {
                type_url::ENDPOINT => eds,
                type_url::ROUTE => rds,
                _ => &[],
            };
            self.ack(&r, names);
            got.push(r);
        }
        got
    }
}

struct Delta {
    tx: mpsc::UnboundedSender<DeltaDiscoveryRequest>,
    rx: Streaming<DeltaDiscoveryResponse>,
}

impl Delta {
    async fn connect(addr: SocketAddr) -> Self {
        let (tx, requests) = mpsc::unbounded_channel();
        let rx = client(addr)
            .await
            .delta_aggregated_resources(UnboundedReceiverStream::new(requests))
            .await
            .unwrap()
            .into_inner();
        Self { tx, rx }
    }

    fn send(&self, req: DeltaDiscoveryRequest) {
        self.tx.send(req).unwrap();
    }

    fn ack(&self, resp: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        });
    }

    async fn recv(&mut self) -> DeltaDiscoveryResponse {
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("no response in time")
            .unwrap()
            .expect("stream ended")
    }

    async fn silent(&mut self) {
        if let Ok(msg) = tokio::time::timeout(QUIET, self.rx.message()).await {
            panic!("expected nothing, got {msg:?}");
        }
    }
}

fn delta_names(resp: &DeltaDiscoveryResponse) -> BTreeSet<String> {
    resp.resources.iter().map(|r| r.name.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// State of the world

#[tokio::test]
async fn initial_sotw_stream_gets_cds_eds_lds_rds_in_order_with_content_versions() {
    let server = start().await;
    let mut envoy = Sotw::connect(server.addr).await;
    envoy.subscribe(type_url::CLUSTER, &[]);
    // Nothing is served before the first publish (a restarted agent must not wipe Envoy).
    envoy.silent().await;

    let set = config(&["a", "b"], &[("r", &["a", "b"])], "v1");
    server.xds.publish(set.clone());
    let cds = envoy.recv().await;
    assert_eq!(cds.type_url, type_url::CLUSTER);
    assert_eq!(names(&cds), set_of(&["a", "b"]));
    assert_eq!(
        cds.version_info,
        expected_type_version(&set, type_url::CLUSTER)
    );
    // Envoy asks for the endpoints of the clusters it adds before it acknowledges them (it
    // acknowledges clusters once they have warmed, which takes their endpoints): endpoints go
    // at once, everything after them waits for both ACKs.
    envoy.subscribe(type_url::ENDPOINT, &["a", "b"]);
    let eds = envoy.recv().await;
    assert_eq!(eds.type_url, type_url::ENDPOINT);
    assert_eq!(names(&eds), set_of(&["a", "b"]));
    envoy.subscribe(type_url::LISTENER, &[]);
    envoy.subscribe(type_url::ROUTE, &["r"]);
    envoy.silent().await;
    envoy.ack(&eds, &["a", "b"]);
    envoy.silent().await;
    envoy.ack(&cds, &[]);

    let mut order = vec![cds.type_url.clone(), eds.type_url.clone()];
    for names in [&[][..], &["r"]] {
        let r = envoy.recv().await;
        assert_eq!(r.version_info, expected_type_version(&set, &r.type_url));
        order.push(r.type_url.clone());
        envoy.ack(&r, names);
    }
    assert_eq!(
        order,
        [
            type_url::CLUSTER,
            type_url::ENDPOINT,
            type_url::LISTENER,
            type_url::ROUTE
        ]
    );
    envoy.silent().await;

    // Same inputs, another server (a restarted agent): the same versions.
    let other = start().await;
    other
        .xds
        .publish(config(&["b", "a"], &[("r", &["a", "b"])], "v1"));
    assert_eq!(
        other.xds.published_version(),
        server.xds.published_version()
    );
}

#[tokio::test]
async fn identical_republish_sends_nothing() {
    let server = start().await;
    let set = config(&["a"], &[("r", &["a"])], "v1");
    server.xds.publish(set.clone());
    let mut envoy = Sotw::connect(server.addr).await;
    envoy.sync_all(&["a"], &["r"]).await;
    server.status_until(|s| s.acked_version.is_some()).await;
    let pushes = server.metrics();

    server.xds.publish(set);
    envoy.silent().await;
    assert_eq!(server.metrics(), pushes);
}

#[tokio::test]
async fn ack_updates_acked_version() {
    let server = start().await;
    server.xds.publish(config(&["a"], &[("r", &["a"])], "v1"));
    let v1 = server.xds.published_version().unwrap();
    assert_eq!(*server.xds.status().borrow(), AckStatus::default());

    let mut envoy = Sotw::connect(server.addr).await;
    envoy.sync_all(&["a"], &["r"]).await;
    let status = server.status_until(|s| s.acked_version.is_some()).await;
    assert_eq!(status.acked_version.as_deref(), Some(v1.as_str()));
    assert_eq!(status.connected, 1);
    assert_eq!(status.last_nack, None);
    assert!(
        server
            .metrics()
            .contains("legate_xds_pushes_total{type=\"rds\"} 1")
    );

    server.xds.publish(config(&["a"], &[("r", &["a"])], "v2"));
    let v2 = server.xds.published_version().unwrap();
    let lds = envoy.recv().await;
    assert_eq!(
        lds.type_url,
        type_url::LISTENER,
        "only the changed type is pushed"
    );
    assert_eq!(server.xds.status().borrow().acked_version, Some(v1));
    envoy.ack(&lds, &[]);
    let status = server
        .status_until(|s| s.acked_version.as_ref() == Some(&v2))
        .await;
    assert_eq!(status.acked_version, Some(v2));
}

#[tokio::test]
async fn nack_keeps_last_acked_version_counts_and_does_not_resend() {
    let server = start().await;
    server.xds.publish(config(&["a"], &[("r", &["a"])], "v1"));
    let v1 = server.xds.published_version().unwrap();
    let mut envoy = Sotw::connect(server.addr).await;
    let synced = envoy.sync_all(&["a"], &["r"]).await;
    let eds = synced
        .iter()
        .find(|r| r.type_url == type_url::ENDPOINT)
        .unwrap();
    server.status_until(|s| s.acked_version.is_some()).await;

    // v2 adds a cluster and routes to it; Envoy refuses the clusters.
    server
        .xds
        .publish(config(&["a", "b"], &[("r", &["a", "b"])], "v1"));
    let v2 = server.xds.published_version().unwrap();
    let cds = envoy.recv().await;
    assert_eq!(cds.type_url, type_url::CLUSTER);
    let acked_cds = expected_type_version(&config(&["a"], &[], ""), type_url::CLUSTER);
    envoy.nack(&cds, &acked_cds, "cluster b: bad config");

    let status = server.status_until(|s| s.last_nack.is_some()).await;
    let nack = status.last_nack.unwrap();
    assert_eq!(nack.type_url, type_url::CLUSTER);
    assert_eq!(nack.version, cds.version_info);
    assert_eq!(nack.config_version, v2);
    assert_eq!(nack.message, "cluster b: bad config");
    assert_eq!(status.acked_version, Some(v1));
    assert!(
        server
            .metrics()
            .contains("legate_xds_nacks_total{type=\"cds\"} 1"),
        "{}",
        server.metrics()
    );
    // Not resent, and the routes naming the refused cluster are held back.
    envoy.silent().await;

    // A later publish goes out normally and, once acknowledged, clears the NACK.
    server
        .xds
        .publish(config(&["a", "c"], &[("r", &["a", "c"])], "v1"));
    let v3 = server.xds.published_version().unwrap();
    let cds = envoy.recv().await;
    assert_eq!(names(&cds), set_of(&["a", "c"]));
    // As Envoy does, the EDS subscription for the new cluster goes out before the CDS ACK.
    envoy.request(
        type_url::ENDPOINT,
        &["a", "c"],
        &eds.version_info,
        &eds.nonce,
    );
    envoy.ack(&cds, &[]);
    let eds = envoy.recv().await;
    assert_eq!(eds.type_url, type_url::ENDPOINT);
    envoy.ack(&eds, &["a", "c"]);
    let rds = envoy.recv().await;
    assert_eq!(rds.type_url, type_url::ROUTE);
    envoy.ack(&rds, &["r"]);
    let status = server
        .status_until(|s| s.acked_version.as_ref() == Some(&v3))
        .await;
    assert_eq!(status.last_nack, None);
}

#[tokio::test]
async fn rds_subscription_by_name() {
    let server = start().await;
    server
        .xds
        .publish(config(&["a"], &[("r1", &["a"]), ("r2", &["a"])], "v1"));
    let mut envoy = Sotw::connect(server.addr).await;
    envoy.subscribe(type_url::ROUTE, &["r1"]);
    let r = envoy.recv().await;
    assert_eq!(names(&r), set_of(&["r1"]));
    envoy.ack(&r, &["r1"]);
    envoy.silent().await;

    // Envoy now wants both: same nonce, new names.
    envoy.request(type_url::ROUTE, &["r1", "r2"], &r.version_info, &r.nonce);
    let r = envoy.recv().await;
    assert_eq!(names(&r), set_of(&["r1", "r2"]));
    envoy.ack(&r, &["r1", "r2"]);
    // A name the configuration does not have is simply not there.
    envoy.request(type_url::ROUTE, &["r2", "nope"], &r.version_info, &r.nonce);
    let r = envoy.recv().await;
    assert_eq!(names(&r), set_of(&["r2"]));
}

#[tokio::test]
async fn removed_cluster_stays_until_rds_ack() {
    let server = start().await;
    server
        .xds
        .publish(config(&["a", "b"], &[("r", &["a", "b"])], "v1"));
    let mut envoy = Sotw::connect(server.addr).await;
    for url in [type_url::CLUSTER, type_url::LISTENER] {
        envoy.subscribe(url, &[]);
        let r = envoy.recv().await;
        envoy.ack(&r, &[]);
    }
    envoy.subscribe(type_url::ROUTE, &["r"]);
    let r = envoy.recv().await;
    envoy.ack(&r, &["r"]);
    server.status_until(|s| s.acked_version.is_some()).await;

    // v2 drops b and adds c: the routes move from b to c.
    server
        .xds
        .publish(config(&["a", "c"], &[("r", &["a", "c"])], "v1"));
    let v2 = server.xds.published_version().unwrap();
    let cds = envoy.recv().await;
    assert_eq!(cds.type_url, type_url::CLUSTER);
    assert_eq!(
        names(&cds),
        set_of(&["a", "b", "c"]),
        "b kept, c added first"
    );
    envoy.ack(&cds, &[]);
    let rds = envoy.recv().await;
    assert_eq!(rds.type_url, type_url::ROUTE);
    // Until the routes are acknowledged, b stays.
    envoy.silent().await;
    envoy.ack(&rds, &["r"]);
    let cds = envoy.recv().await;
    assert_eq!(cds.type_url, type_url::CLUSTER);
    assert_eq!(
        names(&cds),
        set_of(&["a", "c"]),
        "b removed after the RDS ACK"
    );
    assert_ne!(server.xds.status().borrow().acked_version, Some(v2.clone()));
    envoy.ack(&cds, &[]);
    server
        .status_until(|s| s.acked_version.as_ref() == Some(&v2))
        .await;
    envoy.silent().await;
}

#[tokio::test]
async fn reconnecting_envoy_with_the_current_versions_gets_nothing() {
    let set = config(&["a"], &[("r", &["a"])], "v1");
    let server = start().await;
    server.xds.publish(set.clone());
    let mut envoy = Sotw::connect(server.addr).await;
    let got = envoy.sync_all(&["a"], &["r"]).await;
    drop(envoy);

    // The agent restarts with the same inputs; Envoy reconnects saying what it has.
    let restarted = start().await;
    restarted.xds.publish(set);
    let mut envoy = Sotw::connect(restarted.addr).await;
    for r in &got {
        let names: &[&str] = match r.type_url.as_str() {
            type_url::ENDPOINT => &["a"],
            type_url::ROUTE => &["r"],
            _ => &[],
        };
        envoy.request(&r.type_url, names, &r.version_info, "");
    }
    envoy.silent().await;
    let status = restarted.status_until(|s| s.acked_version.is_some()).await;
    assert_eq!(status.acked_version, restarted.xds.published_version());
}

#[tokio::test]
async fn disconnect_decrements_the_gauge() {
    let server = start().await;
    server.xds.publish(config(&["a"], &[], "v1"));
    let envoy = Sotw::connect(server.addr).await;
    envoy.subscribe(type_url::CLUSTER, &[]);
    server.status_until(|s| s.connected == 1).await;
    assert!(server.metrics().contains("legate_xds_connected_streams 1"));
    drop(envoy);
    server.status_until(|s| s.connected == 0).await;
    assert!(server.metrics().contains("legate_xds_connected_streams 0"));
}

// ---------------------------------------------------------------------------------------------
// Delta

#[tokio::test]
async fn delta_sends_only_the_changed_resource_and_removed_names() {
    let server = start().await;
    server.xds.publish(config(&["a", "b", "c"], &[], "v1"));
    let mut envoy = Delta::connect(server.addr).await;
    // Legacy wildcard: the first request subscribes to nothing.
    envoy.send(DeltaDiscoveryRequest {
        type_url: type_url::CLUSTER.into(),
        ..Default::default()
    });
    let first = envoy.recv().await;
    assert_eq!(delta_names(&first), set_of(&["a", "b", "c"]));
    assert!(first.removed_resources.is_empty());
    envoy.ack(&first);
    envoy.silent().await;

    // v2: a changes, b goes, c stays.
    let mut v2 = config(&["c"], &[], "v1");
    v2.insert(
        "a",
        &Cluster {
            name: "a".into(),
            alt_stat_name: "changed".into(),
            ..Default::default()
        },
    );
    server.xds.publish(v2);
    let update = envoy.recv().await;
    assert_eq!(delta_names(&update), set_of(&["a"]));
    assert_eq!(update.removed_resources, ["b"]);
    let old_a = first.resources.iter().find(|r| r.name == "a").unwrap();
    assert_ne!(update.resources[0].version, old_a.version);
    envoy.ack(&update);
    envoy.silent().await;
    let status = server.status_until(|s| s.acked_version.is_some()).await;
    assert_eq!(status.acked_version, server.xds.published_version());

    // A reconnect announcing what it has gets only the difference.
    let c = first.resources.iter().find(|r| r.name == "c").unwrap();
    let mut again = Delta::connect(server.addr).await;
    again.send(DeltaDiscoveryRequest {
        type_url: type_url::CLUSTER.into(),
        initial_resource_versions: [
            ("c".to_string(), c.version.clone()),
            ("b".to_string(), "whatever".to_string()),
        ]
        .into(),
        ..Default::default()
    });
    let diff = again.recv().await;
    assert_eq!(delta_names(&diff), set_of(&["a"]));
    assert_eq!(diff.removed_resources, ["b"]);
}

#[tokio::test]
async fn delta_subscribe_and_unsubscribe_by_name() {
    let server = start().await;
    server
        .xds
        .publish(config(&["a"], &[("r1", &["a"]), ("r2", &["a"])], "v1"));
    let mut envoy = Delta::connect(server.addr).await;
    envoy.send(DeltaDiscoveryRequest {
        type_url: type_url::ROUTE.into(),
        resource_names_subscribe: vec!["r1".into()],
        ..Default::default()
    });
    let r = envoy.recv().await;
    assert_eq!(delta_names(&r), set_of(&["r1"]));
    envoy.ack(&r);
    envoy.send(DeltaDiscoveryRequest {
        type_url: type_url::ROUTE.into(),
        resource_names_subscribe: vec!["r2".into()],
        resource_names_unsubscribe: vec!["r1".into()],
        response_nonce: r.nonce.clone(),
        ..Default::default()
    });
    let r = envoy.recv().await;
    assert_eq!(
        delta_names(&r),
        set_of(&["r2"]),
        "only the new subscription"
    );
    assert!(r.removed_resources.is_empty());
    envoy.ack(&r);
    envoy.silent().await;
}

#[tokio::test]
async fn delta_nack_is_not_resent() {
    let server = start().await;
    server.xds.publish(config(&["a"], &[], "v1"));
    let mut envoy = Delta::connect(server.addr).await;
    envoy.send(DeltaDiscoveryRequest {
        type_url: type_url::CLUSTER.into(),
        ..Default::default()
    });
    let r = envoy.recv().await;
    envoy.send(DeltaDiscoveryRequest {
        type_url: type_url::CLUSTER.into(),
        response_nonce: r.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: 3,
            message: "no".into(),
            details: vec![],
        }),
        ..Default::default()
    });
    let status = server.status_until(|s| s.last_nack.is_some()).await;
    assert_eq!(status.last_nack.unwrap().message, "no");
    assert_eq!(status.acked_version, None);
    envoy.silent().await;
    assert!(
        server
            .metrics()
            .contains("legate_xds_nacks_total{type=\"cds\"} 1")
    );
}

#[tokio::test]
async fn shutdown_closes_open_streams_and_returns() {
    let mut registry = Registry::default();
    let xds = Xds::new(&mut registry);
    xds.publish(config(&["a"], &[], "v1"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(xds.clone().serve_on(listener, async move {
        let _ = stopped.await;
    }));
    let mut envoy = Sotw::connect(addr).await;
    envoy.subscribe(type_url::CLUSTER, &[]);
    envoy.recv().await;
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, served)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
    let end = tokio::time::timeout(WAIT, envoy.rx.message())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    assert_eq!(xds.status().borrow().connected, 0);
}

#[tokio::test]
async fn one_change_among_ten_thousand_clusters_sends_just_that_cluster() {
    let server = start().await;
    let names: Vec<String> = (0..10_000).map(|i| format!("cluster-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let set = config(&refs, &[], "v1");
    server.xds.publish(set.clone());
    let mut envoy = Delta::connect(server.addr).await;
    envoy.send(DeltaDiscoveryRequest {
        type_url: type_url::CLUSTER.into(),
        ..Default::default()
    });
    let r = envoy.recv().await;
    envoy.ack(&r);
    server.status_until(|s| s.acked_version.is_some()).await;
    let mut changed = set;
    changed.insert(
        "cluster-5",
        &Cluster {
            name: "cluster-5".into(),
            alt_stat_name: "x".into(),
            ..Default::default()
        },
    );
    server.xds.publish(changed);
    let r = envoy.recv().await;
    assert_eq!(
        r.resources.len(),
        1,
        "only the changed cluster goes on the wire"
    );
    assert_eq!(r.resources[0].name, "cluster-5");
    assert!(r.removed_resources.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Endpoints (EDS)

/// `config(clusters, [r → clusters])` with cluster `a`'s assignment holding `endpoints`
/// (addresses on 127.0.0.1, as distinct ports).
fn with_endpoints(endpoints: &[u32]) -> ResourceSet {
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
    use envoy_types::pb::envoy::config::endpoint::v3::{
        Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
    };
    let mut set = config(&["a", "b"], &[("r", &["a", "b"])], "v1");
    let lb_endpoints = endpoints
        .iter()
        .map(|port| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "127.0.0.1".into(),
                        port_specifier: Some(
                            envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(*port),
                        ),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    set.insert(
        "a",
        &ClusterLoadAssignment {
            cluster_name: "a".into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    set
}

#[tokio::test]
async fn sotw_endpoints_changing_are_one_eds_response_and_nothing_else() {
    let server = start().await;
    server.xds.publish(with_endpoints(&[9001, 9002]));
    let mut envoy = Sotw::connect(server.addr).await;
    envoy.sync_all(&["a", "b"], &["r"]).await;
    envoy.silent().await;
    let cds_before = server.metrics();

    // Scale `a` down, then up: each time one EDS response with both assignments (the state of
    // the world of what Envoy subscribed to), no CDS, LDS or RDS.
    for endpoints in [&[9001][..], &[9001, 9002, 9003]] {
        let set = with_endpoints(endpoints);
        server.xds.publish(set.clone());
        let eds = envoy.recv().await;
        assert_eq!(eds.type_url, type_url::ENDPOINT);
        assert_eq!(names(&eds), set_of(&["a", "b"]));
        assert_eq!(
            eds.version_info,
            expected_type_version(&set, type_url::ENDPOINT)
        );
        envoy.ack(&eds, &["a", "b"]);
        envoy.silent().await;
        server
            .status_until(|s| s.acked_version == server.xds.published_version())
            .await;
    }
    let pushes = |metrics: &str, short: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("legate_xds_pushes_total{{type=\"{short}\"}}")))
            .and_then(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.to_owned())
    };
    let after = server.metrics();
    for short in ["cds", "lds", "rds"] {
        assert!(pushes(&after, short).is_some(), "{short} pushes: {after}");
        assert_eq!(pushes(&cds_before, short), pushes(&after, short), "{short}");
    }
    assert_ne!(pushes(&cds_before, "eds"), pushes(&after, "eds"));
}

#[tokio::test]
async fn delta_endpoints_changing_send_only_the_changed_assignment() {
    let server = start().await;
    server.xds.publish(with_endpoints(&[9001, 9002]));
    let mut envoy = Delta::connect(server.addr).await;
    envoy.send(DeltaDiscoveryRequest {
        type_url: type_url::CLUSTER.into(),
        ..Default::default()
    });
    let cds = envoy.recv().await;
    assert_eq!(cds.type_url, type_url::CLUSTER);
    // Endpoints are asked for, and sent, before the clusters are acknowledged (Envoy holds the
    // CDS ACK until its EDS clusters have warmed).
    envoy.send(DeltaDiscoveryRequest {
        type_url: type_url::ENDPOINT.into(),
        resource_names_subscribe: vec!["a".into(), "b".into()],
        ..Default::default()
    });
    let eds = envoy.recv().await;
    assert_eq!(eds.type_url, type_url::ENDPOINT);
    assert_eq!(delta_names(&eds), set_of(&["a", "b"]));
    envoy.ack(&eds);
    envoy.ack(&cds);
    envoy.silent().await;

    server.xds.publish(with_endpoints(&[9001]));
    let update = envoy.recv().await;
    assert_eq!(update.type_url, type_url::ENDPOINT);
    assert_eq!(delta_names(&update), set_of(&["a"]));
    assert!(update.removed_resources.is_empty());
    envoy.ack(&update);
    envoy.silent().await;
    let status = server
        .status_until(|s| s.acked_version == server.xds.published_version())
        .await;
    assert!(status.last_nack.is_none());
}
