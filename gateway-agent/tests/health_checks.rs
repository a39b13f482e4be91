//! Active health checks and the cluster's DNS and naming options, through real Envoy, as
//! Emissary applies them (`python/ambassador/src/ambassador/ir/irhealthchecks.py`,
//! `ir/ircluster.py`, `ir/irhttpmappinggroup.py`, `envoy/v3/v3cluster.py`; its tests:
//! `python/tests/kat/t_active_health_check.py`, `t_dns_type.py`,
//! `python/tests/unit/test_healthchecks.py`): an endpoint whose health check fails stops getting
//! traffic without a request failing, and gets it again once it passes; a gRPC health check asks
//! a real `grpc.health.v1` server; `dns_type`, the address families and `stats_name` reach the
//! cluster; `cluster_tag` keeps otherwise identical clusters apart; bad values are refused
//! naming the field, and Envoy takes everything the agent sends.

mod support;

use std::{net::SocketAddr, time::Duration};

use legate_agent::ir::{self, Reason, Settings};
use pretty_assertions::assert_eq;
use serde_json::Value;
use support::{
    Upstream, eventually, free_port,
    gateway::{Gateway, WAIT, describe, mapping, route},
    health::GrpcHealth,
    pods, slice,
    upstream::HEALTH_PATH,
};
use tonic_health::ServingStatus;

/// Service `name` (port 80, `http`) and its EndpointSlice with `pods` ready.
fn service(name: &str, pods: &[&Upstream]) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{selector: {{app: {name}}}, ports: [{{name: http, port: 80}}]}}\n{}",
        slice(name, pods)
    )
}

/// Envoy's health flags for the endpoint at `addr` (admin `/clusters`): `healthy`, or the
/// reasons it is not (`/failed_active_hc`, ...). `None` while Envoy has no such endpoint.
async fn health_flags(gw: &Gateway, addr: SocketAddr) -> Option<String> {
    let reply = gw.envoy.admin_get("/clusters").await?;
    let wanted = format!("::{addr}::health_flags::");
    reply.text.lines().find_map(|l| {
        l.split_once(&wanted)
            .map(|(_, flags)| flags.trim().to_owned())
    })
}

async fn wait_flags(gw: &Gateway, addr: SocketAddr, what: &str, done: impl Fn(&str) -> bool) {
    eventually(&format!("{addr} to be {what}"), WAIT, || async {
        health_flags(gw, addr).await.filter(|f| done(f)).map(|_| ())
    })
    .await;
}

fn failing_active_hc(flags: &str) -> bool {
    flags.contains("failed_active_hc")
}

/// The active clusters of Envoy's `config_dump`.
async fn clusters(gw: &Gateway) -> Vec<Value> {
    let dump = gw.envoy.config_dump().await;
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["dynamic_active_clusters"].as_array())
        .flatten()
        .map(|c| c["cluster"].clone())
        .collect()
}

/// The port of a cluster's only address (static and DNS clusters carry it in the cluster).
fn port_of(cluster: &Value) -> Option<u64> {
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"]["port_value"]
        .as_u64()
}

/// `t_active_health_check.py`: with `health_checks`, Envoy stops sending to an endpoint whose
/// check fails. Here the failing pod still answers its traffic, as a pod being drained does: its
/// traffic moves to the other pod while requests keep flowing, and not one of them fails
/// (`expected_statuses` lets the check's 200 pass; one other status fails it at once, as
/// Envoy does). Once its check passes again, it gets traffic again.
#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_failing_its_health_check_loses_its_traffic_without_a_failed_request() {
    let gw = Gateway::start().await;
    let backends = pods(&["pod-a", "pod-b"]).await;
    let (a, b) = (&backends[0], &backends[1]);
    gw.write(
        "pool.yaml",
        &[
            service("pool", &[a, b]),
            mapping(
                "pool",
                &format!(
                    "hostname: \"*\"\nprefix: /pool/\nservice: pool\n\
                     health_checks: [{{interval: 200ms, timeout: 1s, unhealthy_threshold: 1, \
                     health_check: {{http: {{path: {HEALTH_PATH}, \
                     expected_statuses: [{{min: 200, max: 200}}]}}}}}}]"
                ),
            ),
        ]
        .concat(),
    );
    gw.wait_upstream("/pool/", "pod-a").await;
    gw.wait_upstream("/pool/", "pod-b").await;
    wait_flags(&gw, b.addr, "healthy", |f| f == "healthy").await;

    // Requests flow, one after the other, while pod-b's check starts failing.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flow = {
        let (client, url, stop) = (gw.client.clone(), gw.url("/pool/"), stop.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let reply = client.get(&url, Some("example.com")).await;
                answers.push(reply.map(|r| (r.status, describe(&r))));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            answers
        })
    };
    b.set_healthy(false);
    wait_flags(
        &gw,
        b.addr,
        "failing its active health check",
        failing_active_hc,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await; // a few more requests on the way
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = flow.await.unwrap();
    assert!(answers.len() >= 5, "{} requests only", answers.len());
    for answer in &answers {
        match answer {
            Ok((200, _)) => {}
            other => panic!("a request failed while pod-b went unhealthy: {other:?}"),
        }
    }
    for _ in 0..40 {
        let reply = gw.get("/pool/", "example.com").await;
        assert_eq!(reply.upstream(), Some("pod-a"), "{}", describe(&reply));
    }

    b.set_healthy(true);
    wait_flags(&gw, b.addr, "healthy again", |f| f == "healthy").await;
    gw.wait_upstream("/pool/", "pod-b").await;
}

/// gRPC health checks (`irhealthchecks.py` `grpc_health_check`): Envoy asks each endpoint's
/// `grpc.health.v1.Health/Check` for `upstream_name`; `SERVING` is healthy, anything else not.
#[tokio::test(flavor = "multi_thread")]
async fn a_grpc_health_check_asks_a_real_health_server_for_the_upstream_name() {
    let gw = Gateway::start().await;
    // Two servers on one port of two loopback addresses: a Service's endpoints.
    let (serving, not_serving) = loop {
        let port = free_port();
        let at = |last: u8| SocketAddr::from(([127, 0, 0, last], port));
        let Ok(serving) = GrpcHealth::start_on(at(2), "quote", ServingStatus::Serving).await else {
            continue;
        };
        if let Ok(other) = GrpcHealth::start_on(at(3), "quote", ServingStatus::NotServing).await {
            break (serving, other);
        }
    };
    let endpoints: String = [serving.addr, not_serving.addr]
        .iter()
        .map(|a| {
            format!(
                "- {{addresses: [\"{}\"], conditions: {{ready: true}}}}\n",
                a.ip()
            )
        })
        .collect();
    gw.write(
        "grpc.yaml",
        &format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: quote, namespace: default}}\n\
             spec: {{ports: [{{name: grpc, port: 80}}]}}\n\
             ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata: {{name: quote-1, namespace: default, labels: {{kubernetes.io/service-name: quote}}}}\n\
             addressType: IPv4\nports: [{{name: grpc, port: {}}}]\nendpoints:\n{endpoints}{}",
            serving.addr.port(),
            mapping(
                "quote",
                "hostname: \"*\"\nprefix: /grpc.health.v1.Health/\nrewrite: \"\"\nservice: quote\n\
                 grpc: true\nhealth_checks: [{interval: 200ms, health_check: {grpc: \
                 {upstream_name: quote, authority: quote.internal}}}]"
            )
        ),
    );
    wait_flags(&gw, serving.addr, "healthy", |f| f == "healthy").await;
    wait_flags(&gw, not_serving.addr, "failing", failing_active_hc).await;

    // No traffic has gone to the cluster: Envoy would wait a minute before checking again
    // (`no_traffic_interval`), but the interval asked for is kept.
    not_serving.set("quote", ServingStatus::Serving).await;
    serving.set("quote", ServingStatus::NotServing).await;
    wait_flags(&gw, not_serving.addr, "healthy", |f| f == "healthy").await;
    wait_flags(&gw, serving.addr, "failing", failing_active_hc).await;
}

/// `v3cluster.py` and `t_dns_type.py`: `dns_type: logical_dns` makes a name's cluster
/// `LOGICAL_DNS`, `respect_dns_ttl` and the address families reach it (IPv4 alone:
/// `V4_ONLY`), and `stats_name` is the name its statistics are kept under.
#[tokio::test(flavor = "multi_thread")]
async fn dns_options_and_stats_name_reach_a_dns_cluster() {
    let gw = Gateway::start().await;
    let up = Upstream::start("resolved").await;
    gw.write(
        "dns.yaml",
        &mapping(
            "dns",
            &format!(
                "hostname: \"*\"\nprefix: /dns/\nservice: localhost:{}\n\
                 dns_type: logical_dns\nrespect_dns_ttl: true\nenable_ipv4: true\n\
                 stats_name: resolved_by_name",
                up.addr.port()
            ),
        ),
    );
    gw.wait_upstream("/dns/", "resolved").await;
    let all = clusters(&gw).await;
    let cluster = all
        .iter()
        .find(|c| c["alt_stat_name"] == "resolved_by_name")
        .unwrap_or_else(|| panic!("a cluster with the stats name: {all:#?}"));
    assert_eq!(cluster["type"], "LOGICAL_DNS", "{cluster:#}");
    assert_eq!(cluster["dns_lookup_family"], "V4_ONLY", "{cluster:#}");
    assert_eq!(cluster["respect_dns_ttl"], true, "{cluster:#}");
    let served = gw
        .envoy
        .stat("cluster.resolved_by_name.upstream_rq_total")
        .await;
    assert!(served.is_some_and(|n| n >= 1), "{served:?}");
}

/// `irhttpmappinggroup.py` (the cluster `marker`): Mappings to one upstream share a cluster;
/// with different `cluster_tag`s they get one each.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_tags_keep_otherwise_identical_clusters_apart() {
    let gw = Gateway::start().await;
    let up = Upstream::start("shared").await;
    gw.write(
        "tags.yaml",
        &[
            route("plain-a", &up, "prefix: /plain-a/"),
            route("plain-b", &up, "prefix: /plain-b/"),
            route("blue", &up, "prefix: /blue/\ncluster_tag: blue"),
            route("green", &up, "prefix: /green/\ncluster_tag: green"),
        ]
        .concat(),
    );
    for path in ["/plain-a/", "/plain-b/", "/blue/", "/green/"] {
        gw.wait_upstream(path, "shared").await;
    }
    let to_upstream = clusters(&gw)
        .await
        .into_iter()
        .filter(|c| port_of(c) == Some(u64::from(up.addr.port())))
        .count();
    assert_eq!(to_upstream, 3, "one shared by the untagged, one per tag");
}

/// Every value that reaches Envoy, at the edges of what is allowed, is taken (no NACK), on
/// every kind of cluster: EDS, static and DNS.
#[tokio::test(flavor = "multi_thread")]
async fn envoy_takes_every_health_check_the_agent_accepts() {
    let gw = Gateway::start().await;
    let up = Upstream::start("edge").await;
    let checks = "health_checks:\n\
        - {timeout: 1ms, interval: 1h, healthy_threshold: 2147483647, unhealthy_threshold: 1, \
           health_check: {http: {path: /, hostname: \"\", expected_statuses: [{min: 100, max: 599}, {min: 204, max: 204}], \
           add_request_headers: {x-a: \"%HOSTNAME%\", x-b: {value: b, append: false}}, remove_request_headers: [user-agent]}}}";
    let other =
        "health_checks: [{health_check: {http: {path: \"/h?x=1\", hostname: checks.example}}}]";
    gw.write(
        "edge.yaml",
        &[
            route("static", &up, &format!("prefix: /static/\n{checks}")),
            mapping(
                "dns",
                &format!(
                    "hostname: \"*\"\nprefix: /dns/\nservice: localhost:{}\n\
                     enable_ipv4: false\nenable_ipv6: true\n{other}",
                    up.addr.port()
                ),
            ),
            route(
                "grpc",
                &up,
                "prefix: /grpc/\ngrpc: true\nhealth_checks: [{health_check: {grpc: {upstream_name: \"\"}}}]",
            ),
            service("edge", &[&up]),
            mapping(
                "eds",
                &format!("hostname: \"*\"\nprefix: /eds/\nservice: edge\n{checks}"),
            ),
        ]
        .concat(),
    );
    gw.wait_upstream("/static/", "edge").await;
    gw.wait_upstream("/eds/", "edge").await;
    let all = clusters(&gw).await;
    let checked = all
        .iter()
        .filter(|c| c["health_checks"].as_array().is_some_and(|h| !h.is_empty()))
        .count();
    assert_eq!(checked, 4, "{all:#?}");
    let v6 = all.iter().find(|c| c["dns_lookup_family"] == "V6_ONLY");
    assert!(v6.is_some(), "{all:#?}");
    assert_eq!(gw.agent.nacks().await, 0.0, "{}", gw.agent.log());
}

// --- Refused ----------------------------------------------------------------------------------

fn build(yaml: &str) -> ir::Ir {
    let loaded = legate_crds::loader::load_str("test.yaml", yaml).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    ir::build(&loaded.resources, &Settings::default())
}

/// Emissary skips a bad health check with an error (`irhealthchecks.py`); here the Mapping is
/// refused, naming the field, and nothing else is: the other Mappings keep serving.
#[test]
fn bad_health_checks_and_dns_options_refuse_the_mapping_naming_the_field() {
    let cases = [
        (
            "zero-interval",
            "health_checks: [{interval: 0s, health_check: {http: {path: /h}}}]",
            "health_checks[0].interval: ",
        ),
        (
            "zero-threshold",
            "health_checks: [{unhealthy_threshold: 0, health_check: {http: {path: /h}}}]",
            "health_checks[0].unhealthy_threshold: ",
        ),
        (
            "empty-range",
            "health_checks: [{health_check: {http: {path: /h, expected_statuses: [{min: 500, max: 200}]}}}]",
            "health_checks[0].health_check.http.expected_statuses[0]: ",
        ),
        (
            "relative-path",
            "health_checks: [{health_check: {http: {path: h}}}]",
            "health_checks[0].health_check.http.path: ",
        ),
        (
            "two",
            "health_checks: [{health_check: {http: {path: /a}}}, {health_check: {http: {path: /b}}}]",
            "health_checks: ",
        ),
        (
            "grpc-over-http1",
            "health_checks: [{health_check: {grpc: {upstream_name: q}}}]",
            "health_checks[0].health_check.grpc: ",
        ),
        ("no-family", "enable_ipv4: false", "enable_ipv4: "),
    ];
    let mut yaml = String::from(
        "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: http, namespace: default}\n\
         spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}\n",
    );
    yaml.push_str(&mapping(
        "good",
        "hostname: \"*\"\nprefix: /good/\nservice: good",
    ));
    for (name, spec, _) in &cases {
        yaml.push_str(&mapping(
            name,
            &format!("hostname: \"*\"\nprefix: /{name}/\nservice: bad\n{spec}"),
        ));
    }
    let ir = build(&yaml);
    for (name, _, field) in &cases {
        let rejection = ir
            .rejections
            .iter()
            .find(|r| r.object.name == *name)
            .unwrap_or_else(|| panic!("{name} refused: {:#?}", ir.rejections));
        assert_eq!(rejection.reason, Reason::Invalid, "{rejection:?}");
        assert!(rejection.message.starts_with(field), "{rejection:?}");
    }
    assert_eq!(ir.rejections.len(), cases.len(), "{:#?}", ir.rejections);
    let served: std::collections::BTreeSet<&str> = ir.listeners[0].virtual_hosts[0]
        .routes
        .iter()
        .map(|r| r.route.source.name.as_str())
        .collect();
    assert_eq!(served, ["good"].into());
}

/// A negative threshold, a status outside 100–599, or both kinds of check (or neither) in one
/// is refused as the file is read, naming the field, as the CRD's schema refuses it in
/// Kubernetes.
#[test]
fn out_of_range_numbers_are_refused_when_read() {
    for (spec, field) in [
        (
            "health_checks: [{healthy_threshold: -1, health_check: {http: {path: /}}}]",
            "healthy_threshold",
        ),
        (
            "health_checks: [{health_check: {http: {path: /, expected_statuses: [{min: 99, max: 200}]}}}]",
            "min",
        ),
        (
            "health_checks: [{health_check: {http: {path: /, expected_statuses: [{min: 200, max: 600}]}}}]",
            "max",
        ),
        (
            "health_checks: [{health_check: {http: {path: /h}, grpc: {upstream_name: q}}}]",
            "health_check",
        ),
        ("health_checks: [{health_check: {}}]", "health_check"),
    ] {
        let yaml = mapping("m", &format!("prefix: /\nservice: s\n{spec}"));
        let loaded = legate_crds::loader::load_str("test.yaml", &yaml).unwrap();
        let errors = format!("{:?}", loaded.errors);
        assert!(
            loaded.resources.is_empty() && errors.contains(field),
            "{spec}: {errors}"
        );
    }
}

/// Emissary posts "outlier_detection is not supported" (`irhttpmapping.py`) and serves the
/// Mapping: so does the gateway, in the Mapping's note.
#[test]
fn outlier_detection_is_reported_as_not_supported_and_the_mapping_serves() {
    let ir = build(&format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {{name: http, namespace: default}}\n\
         spec: {{port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}\n{}",
        mapping(
            "od",
            "hostname: \"*\"\nprefix: /od/\nservice: od\noutlier_detection: consecutive_5xx"
        )
    ));
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    let notes: Vec<&str> = ir
        .unreachable
        .iter()
        .filter(|n| n.object.name == "od" && n.reason == Reason::NotSupported)
        .map(|n| n.message.as_str())
        .collect();
    assert_eq!(
        notes,
        ["not applied yet: spec.outlier_detection (Emissary does not support it either)"]
    );
    assert!(!ir.listeners[0].virtual_hosts[0].routes.is_empty());
}
