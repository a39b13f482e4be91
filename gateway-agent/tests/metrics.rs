//! One scrape target per pod: the agent's `/metrics` carries its own metrics and its Envoy's
//! statistics, read from the listener the bootstrap binds for them (`GET /stats/prometheus`
//! only; Envoy's admin interface stays on loopback, unexposed). Every scrape is read by
//! Prometheus' reference parser (`support::prometheus`).

mod support;

use support::{
    Upstream, free_addr,
    gateway::{Gateway, HOST_ANY, WAIT, mapping, route, served_by},
    prometheus::{Sample, find, parse},
};

/// The one sample `name{labels…}` of a scrape of `gw`'s agent, once `ready` holds for it.
async fn sample_when(
    gw: &Gateway,
    name: &str,
    labels: &[(&str, &str)],
    ready: impl Fn(f64) -> bool,
) -> Sample {
    support::eventually(&format!("{name} {labels:?}"), WAIT, || async {
        let samples = parse(&gw.agent.metrics().await);
        find(&samples, name, labels)
            .first()
            .filter(|s| ready(s.value))
            .map(|s| (*s).clone())
    })
    .await
}

#[tokio::test]
async fn a_scrape_of_the_agent_carries_envoys_per_cluster_request_counters_after_traffic() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start_observed(HOST_ANY).await;
    // stats_name gives the Mapping's upstream statistics a readable name (Emissary's).
    gw.write(
        "app.yaml",
        &route("app", &app, "prefix: /app/\nstats_name: team-a-app"),
    );
    let reply = gw.wait_upstream("/app/", "app").await;
    served_by(&reply, "app");
    for _ in 0..4 {
        served_by(&gw.get("/app/x", "example.com").await, "app");
    }

    let requests = sample_when(
        &gw,
        "envoy_cluster_upstream_rq_total",
        &[("envoy_cluster_name", "team-a-app")],
        |v| v >= 5.0,
    )
    .await;
    assert_eq!(requests.kind, "counter");
    // Envoy's `envoy_cluster_upstream_rq` by response code: the parser names every counter's
    // samples `_total`, as OpenMetrics does.
    let ok = sample_when(
        &gw,
        "envoy_cluster_upstream_rq_total",
        &[
            ("envoy_cluster_name", "team-a-app"),
            ("envoy_response_code", "200"),
        ],
        |v| v >= 5.0,
    )
    .await;
    assert_eq!(ok.kind, "counter");

    // The agent's own, in the same scrape.
    let samples = parse(&gw.agent.metrics().await);
    let one = |name: &str, labels: &[(&str, &str)]| {
        let found = find(&samples, name, labels);
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    };
    assert_eq!(one("legate_agent_envoy_stats_up", &[]), 1.0);
    assert_eq!(
        one(
            "legate_agent_resources",
            &[("kind", "Mapping"), ("verdict", "served")]
        ),
        2.0,
        "the test's Mapping and the harness' probe"
    );
    assert!(one("legate_agent_xds_acks_total", &[("type", "cds")]) >= 1.0);
    assert!(one("legate_agent_xds_acks_total", &[("type", "lds")]) >= 1.0);
    assert_eq!(one("legate_agent_xds_nacks_total", &[("type", "cds")]), 0.0);
    assert!(one("legate_agent_change_to_ack_seconds_count", &[]) >= 1.0);
    assert!(one("legate_agent_build_seconds_count", &[]) >= 1.0);
    assert_eq!(one("legate_agent_xds_connected_streams", &[]), 1.0);
}

/// Only example.com, plain HTTP routed.
const EXAMPLE_COM: &str = r#"
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: example, namespace: default}
spec: {hostname: example.com, requestPolicy: {insecure: {action: Route}}}
"#;

#[tokio::test]
async fn resources_are_counted_by_verdict_and_rejections_by_reason() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start_observed(EXAMPLE_COM).await;
    gw.write("app.yaml", &route("app", &app, "prefix: /app/"));
    // Invalid: a regex that does not compile.
    gw.write(
        "bad.yaml",
        &route("bad", &app, "prefix: \"/x/([0-9\"\nprefix_regex: true"),
    );
    // Accepted, but no Host matches its hostname.
    gw.write(
        "stray.yaml",
        &mapping(
            "stray",
            "hostname: stray.example.org\nprefix: /stray/\nservice: 127.0.0.1:1",
        ),
    );
    gw.wait_upstream("/app/", "app").await;

    let rejected = sample_when(
        &gw,
        "legate_agent_resources",
        &[("kind", "Mapping"), ("verdict", "rejected")],
        |v| v == 1.0,
    )
    .await;
    assert_eq!(rejected.kind, "gauge");
    sample_when(
        &gw,
        "legate_agent_rejections",
        &[("reason", "Invalid")],
        |v| v == 1.0,
    )
    .await;
    let samples = parse(&gw.agent.metrics().await);
    let value = |verdict| {
        find(
            &samples,
            "legate_agent_resources",
            &[("kind", "Mapping"), ("verdict", verdict)],
        )
        .first()
        .map(|s| s.value)
    };
    assert_eq!(value("served"), Some(2.0), "app and the probe");
    assert_eq!(value("not_served"), Some(1.0), "stray");
}

#[tokio::test]
async fn envoys_statistics_listener_serves_nothing_else_of_the_admin_interface() {
    let (stats, admin) = (free_addr(), free_addr());
    let dir = tempfile::tempdir().unwrap();
    let agent = support::Agent::start(dir.path()).await;
    let mut envoy = support::Envoy::start_observed(agent.ads_address, stats, admin).await;
    // Envoy binds its static listeners once its first configuration is in.
    envoy.wait_ready().await;
    let client = support::Client::new();
    let url = |path: &str| format!("http://{stats}{path}");

    let reply = client.get(&url("/stats/prometheus"), None).await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(
        reply.text.contains("# TYPE envoy_server_live gauge"),
        "{}",
        reply.text
    );
    for path in [
        "/config_dump",
        "/clusters",
        "/stats",
        "/",
        "/stats/prometheus/x",
    ] {
        let reply = client.get(&url(path), None).await.unwrap();
        assert_eq!(reply.status, 404, "GET {path}: {}", reply.text);
    }
    // Not even the statistics' own path with another method: no admin POST gets through.
    for path in ["/stats/prometheus", "/quitquitquit"] {
        let reply = client
            .send(reqwest::Method::POST, &url(path), None, &[], None)
            .await
            .unwrap();
        assert_eq!(reply.status, 404, "POST {path}: {}", reply.text);
    }
    assert!(
        envoy.admin_get("/ready").await.is_some(),
        "Envoy still runs"
    );
}

#[tokio::test]
async fn without_its_envoy_the_agent_still_serves_its_own_metrics_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there.
    let nowhere = free_addr().to_string();
    let agent =
        support::Agent::start_with_args(dir.path(), &["--envoy-stats-address", &nowhere]).await;
    let samples = parse(&agent.metrics().await);
    assert_eq!(
        find(&samples, "legate_agent_envoy_stats_up", &[])
            .first()
            .map(|s| s.value),
        Some(0.0)
    );
    assert!(!find(&samples, "legate_agent_xds_connected_streams", &[]).is_empty());
}
