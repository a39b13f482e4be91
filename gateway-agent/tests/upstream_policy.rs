//! Upstream connection policy on the data path, through real Envoy, as Emissary applies it
//! (`python/ambassador/src/ambassador/ir/ircluster.py`, `irbasemapping.py`,
//! `irhttpmappinggroup.py`, `envoy/v3/v3cluster.py`, `v3route.py`; its tests:
//! `python/tests/kat/t_circuitbreaker.py`, `t_retrypolicy.py`, `t_loadbalancer.py`): circuit
//! breakers overflow into 503s, idle and old upstream connections are replaced, the Module's
//! request timeout and retry policy apply where a Mapping sets none, and a hash policy keeps a
//! key on one upstream.
//!
//! Each test writes its Module and Mappings in one file (one snapshot) and waits for an answer
//! only that configuration gives before asserting anything else.

mod support;

use std::collections::BTreeSet;

use pretty_assertions::assert_eq;
use reqwest::Method;
use support::{
    Upstream, eventually,
    gateway::{Gateway, WAIT, describe, mapping, module, route, served_by},
    pods, slice,
};

/// The upstream connection a request came on (the echo's numbering).
fn connection(reply: &support::Reply) -> u64 {
    reply.json()["connection"]
        .as_u64()
        .expect("a connection number")
}

/// `t_circuitbreaker.py`: with one request allowed and one pending, a burst of slow requests
/// overflows, and Envoy answers the overflow 503 with `x-envoy-overloaded`, while the admitted
/// requests are served.
#[tokio::test(flavor = "multi_thread")]
async fn requests_beyond_the_circuit_breakers_limits_get_503_overloaded() {
    let gw = Gateway::start().await;
    let slow = Upstream::start("slow").await;
    gw.write(
        "breaker.yaml",
        &route(
            "breaker",
            &slow,
            "prefix: /breaker/\ntimeout_ms: 20000\n\
             circuit_breakers: [{max_connections: 1, max_pending_requests: 1, max_requests: 1}]",
        ),
    );
    gw.wait_upstream("/breaker/", "slow").await;

    let (served, overloaded) = burst(&gw, "/breaker/slow?ms=1500", 5).await;
    // One active and one pending at most at any time: of five at once, most overflow.
    assert!(served >= 1, "{served} served, {overloaded} overloaded");
    assert!(overloaded >= 2, "{served} served, {overloaded} overloaded");
}

/// Sends `n` requests for `path` at once; how many were served and how many overflowed.
async fn burst(gw: &Gateway, path: &str, n: usize) -> (usize, usize) {
    let requests: Vec<_> = (0..n)
        .map(|_| {
            let client = gw.client.clone();
            let url = gw.url(path);
            tokio::spawn(async move { client.get(&url, Some("example.com")).await })
        })
        .collect();
    let (mut served, mut overloaded) = (0, 0);
    for request in requests {
        let reply = request.await.unwrap().expect("Envoy answers");
        match (reply.status, reply.header("x-envoy-overloaded")) {
            (200, None) => served += 1,
            (503, Some("true")) => overloaded += 1,
            _ => panic!("neither served nor overloaded: {}", describe(&reply)),
        }
    }
    (served, overloaded)
}

/// A Mapping's `priority: high` counts its requests against the cluster's `high` thresholds
/// (Emissary: `v3route.py` writes the route's `priority`, `v3cluster.py` one threshold per
/// priority): two Mappings on one cluster, the default one overflows, the high one does not.
#[tokio::test(flavor = "multi_thread")]
async fn a_high_priority_mapping_has_the_clusters_high_priority_limits() {
    let gw = Gateway::start().await;
    let slow = Upstream::start("slow").await;
    let breakers = "timeout_ms: 20000
circuit_breakers: [{max_pending_requests: 1, \
                    max_requests: 1}, {priority: high, max_requests: 50}]";
    gw.write(
        "prio.yaml",
        &[
            route("normal", &slow, &format!("prefix: /normal/\n{breakers}")),
            route(
                "vip",
                &slow,
                &format!("prefix: /vip/\npriority: HIGH\n{breakers}"),
            ),
        ]
        .concat(),
    );
    gw.wait_upstream("/normal/", "slow").await;
    gw.wait_upstream("/vip/", "slow").await;

    let (served, overloaded) = burst(&gw, "/vip/slow?ms=1000", 5).await;
    assert_eq!((served, overloaded), (5, 0), "high priority");
    let (_, overloaded) = burst(&gw, "/normal/slow?ms=1000", 5).await;
    assert!(overloaded >= 2, "default priority: {overloaded} overloaded");
}

/// `v3cluster.py`: the Module's `cluster_idle_timeout_ms` closes an idle upstream connection
/// (the next request opens a new one), while a Mapping's own value wins for its cluster.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_upstream_connection_closes_after_the_modules_idle_timeout_unless_the_mapping_sets_its_own()
 {
    let gw = Gateway::start().await;
    let (short, long) = (
        Upstream::start("short").await,
        Upstream::start("long").await,
    );
    gw.write(
        "idle.yaml",
        &[
            module("cluster_idle_timeout_ms: 300"),
            route("short", &short, "prefix: /short/"),
            route(
                "long",
                &long,
                "prefix: /long/\ncluster_idle_timeout_ms: 3600000",
            ),
        ]
        .concat(),
    );
    let before = connection(&gw.wait_upstream("/short/", "short").await);
    gw.wait_upstream("/long/", "long").await;
    // Counted per cluster: Envoy's workers (two here) each keep their own connections, so
    // which connection a request comes on says nothing by itself. A cluster is named after
    // its upstream's address (`cluster_127_0_0_1_PORT_...`).
    let idle_closed = |upstream: &Upstream| {
        let cluster = upstream.service().replace(['.', ':'], "_");
        let filter = format!("^cluster\\.cluster_{cluster}_[0-9a-f]+\\.upstream_cx_idle_timeout$");
        let envoy = &gw.envoy;
        async move { envoy.stat_sum(&filter).await }
    };
    eventually(
        "the short cluster's connection to close idle",
        WAIT,
        || async { (idle_closed(&short).await >= 1).then_some(()) },
    )
    .await;
    let after = connection(&gw.get("/short/", "example.com").await);
    assert_ne!(after, before, "short: a new connection after idling");
    assert_eq!(
        idle_closed(&long).await,
        0,
        "long: no connection closed idle"
    );
}

/// `v3cluster.py`: `cluster_max_connection_lifetime_ms` retires a connection that old, busy or
/// not: the next request comes on a new one.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_connection_is_replaced_after_its_max_lifetime() {
    let gw = Gateway::start().await;
    let aging = Upstream::start("aging").await;
    gw.write(
        "lifetime.yaml",
        &route(
            "aging",
            &aging,
            "prefix: /aging/\ncluster_max_connection_lifetime_ms: 300",
        ),
    );
    let first = connection(&gw.wait_upstream("/aging/", "aging").await);
    eventually("a connection to reach its lifetime", WAIT, || async {
        (gw.envoy.stat_sum("upstream_cx_max_duration_reached").await >= 1).then_some(())
    })
    .await;
    let next = connection(&served_reply(&gw, "/aging/", "aging").await);
    assert_ne!(next, first);
}

async fn served_reply(gw: &Gateway, path: &str, upstream: &str) -> support::Reply {
    let reply = gw.get(path, "example.com").await;
    served_by(&reply, upstream);
    reply
}

/// `v3route.py`: a route's timeout is its Mapping's `timeout_ms`, else the Module's
/// `cluster_request_timeout_ms` (3000 ms without either).
#[tokio::test(flavor = "multi_thread")]
async fn the_modules_request_timeout_applies_where_a_mapping_sets_none() {
    let gw = Gateway::start().await;
    let slow = Upstream::start("slow").await;
    gw.write(
        "timeouts.yaml",
        &[
            module("cluster_request_timeout_ms: 300"),
            route("default", &slow, "prefix: /default/"),
            route("own", &slow, "prefix: /own/\ntimeout_ms: 5000"),
        ]
        .concat(),
    );
    // 1 s is well within Emissary's own default: only the Module's 300 ms gives this 504.
    gw.wait_status("/default/slow?ms=1000", 504).await;
    served_by(&gw.get("/default/slow?ms=10", "example.com").await, "slow");
    served_by(&gw.get("/own/slow?ms=1000", "example.com").await, "slow");
}

/// `v3route.py`: the Module's `retry_policy` is the route's where the Mapping has none; a
/// Mapping's own policy replaces it whole.
#[tokio::test(flavor = "multi_thread")]
async fn the_modules_retry_policy_retries_a_mapping_without_its_own() {
    let gw = Gateway::start().await;
    let flaky = Upstream::start("flaky").await;
    gw.write(
        "retries.yaml",
        &[
            module("retry_policy: {retry_on: 5xx, num_retries: 1}"),
            route("inherits", &flaky, "prefix: /inherits/"),
            route(
                "own",
                &flaky,
                "prefix: /own/\nretry_policy: {retry_on: connect-failure}",
            ),
        ]
        .concat(),
    );
    gw.wait_upstream("/inherits/", "flaky").await;
    gw.wait_upstream("/own/", "flaky").await;

    let before = flaky.requests();
    let retried = gw.get("/inherits/?fail_once=a", "example.com").await;
    served_by(&retried, "flaky");
    assert_eq!(flaky.requests() - before, 2, "the 503, then the retry");

    let not_retried = gw.get("/own/?fail_once=b", "example.com").await;
    assert_eq!(not_retried.status, 503, "{}", describe(&not_retried));
}

/// Service `name` with `pods` ready behind its port 80 (`http`), over EDS.
fn service(name: &str, pods: &[Upstream]) -> String {
    let port = pods[0].addr.port();
    let pods: Vec<&Upstream> = pods.iter().collect();
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{selector: {{app: {name}}}, ports: [{{name: http, port: 80, targetPort: {port}}}]}}\n{}",
        slice(name, &pods)
    )
}

/// `t_loadbalancer.py`: `ring_hash` on a header sends one key to one endpoint every time, and
/// spreads keys over the endpoints; a cookie with a `ttl` makes Envoy set the cookie it hashes.
#[tokio::test(flavor = "multi_thread")]
async fn ring_hash_keeps_a_key_on_one_endpoint() {
    let gw = Gateway::start().await;
    let backends = pods(&["pod-a", "pod-b"]).await;
    gw.write(
        "hashed.yaml",
        &[
            service("sticky", &backends),
            mapping(
                "by-user",
                "hostname: \"*\"\nprefix: /by-user/\nservice: sticky\n\
                 load_balancer: {policy: ring_hash, header: x-user}",
            ),
            mapping(
                "by-cookie",
                "hostname: \"*\"\nprefix: /by-cookie/\nservice: sticky\n\
                 load_balancer: {policy: ring_hash, cookie: {name: sticky-session, ttl: 60s}}",
            ),
        ]
        .concat(),
    );
    // Both endpoints are in the cluster before anything is asserted (they come in one
    // snapshot with the route: fresh keys find both at once).
    gw.wait_for("/by-user/", "the hashed route", |r| r.status == 200)
        .await;
    let mut seen = BTreeSet::new();
    for n in 0..200 {
        let key = format!("probe-{n}");
        let reply = gw
            .send(Method::GET, "/by-user/", "example.com", &[("x-user", &key)])
            .await;
        assert_eq!(reply.status, 200, "{}", describe(&reply));
        seen.extend(reply.upstream().map(str::to_owned));
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "200 keys all on {seen:?}");

    let upstream_of = |key: String| {
        let (client, url) = (gw.client.clone(), gw.url("/by-user/"));
        async move {
            let reply = client
                .send(
                    Method::GET,
                    &url,
                    Some("example.com"),
                    &[("x-user", &key)],
                    None,
                )
                .await
                .expect("Envoy answers");
            assert_eq!(reply.status, 200, "{}", describe(&reply));
            reply.upstream().expect("x-upstream").to_owned()
        }
    };
    let alice = upstream_of("alice".into()).await;
    for _ in 0..100 {
        assert_eq!(upstream_of("alice".into()).await, alice);
    }
    let mut spread = BTreeSet::new();
    for user in 0..32 {
        spread.insert(upstream_of(format!("user-{user}")).await);
    }
    assert_eq!(spread.len(), 2, "32 keys over two endpoints: {spread:?}");

    let first = gw.get("/by-cookie/", "example.com").await;
    let cookie = first
        .header("set-cookie")
        .unwrap_or_else(|| panic!("Envoy sets the cookie: {}", describe(&first)));
    assert!(cookie.starts_with("sticky-session="), "{cookie}");
}
