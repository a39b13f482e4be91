//! The test harness itself: each part starts, answers, and goes away when dropped.

mod support;

use std::time::Duration;

use pretty_assertions::assert_eq;
use support::{Agent, Client, Envoy, Upstream, free_addr};

#[tokio::test]
async fn upstream_echoes_the_request_as_json() {
    let upstream = Upstream::start("alpha").await;
    let client = Client::new();
    let url = format!("{}/some/path?x=1&y=two", upstream.url());
    let reply = client
        .send(
            reqwest::Method::POST,
            &url,
            Some("example.com"),
            &[("x-test", "yes")],
            Some("hello".into()),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.upstream(), Some("alpha"));
    let body = reply.json();
    assert_eq!(body["upstream"], "alpha");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/some/path");
    assert_eq!(body["query"], "x=1&y=two");
    assert_eq!(body["version"], "HTTP/1.1");
    assert_eq!(body["headers"]["host"], "example.com");
    assert_eq!(body["headers"]["x-test"], "yes");
    assert_eq!(body["body"], "hello");

    // h2c with prior knowledge; the authority stands in for Host.
    let reply = client
        .get_h2(&upstream.url(), Some("h2.example"))
        .await
        .unwrap();
    let body = reply.json();
    assert_eq!(body["version"], "HTTP/2.0");
    assert_eq!(body["path"], "/");
    assert_eq!(body["query"], serde_json::Value::Null);
    assert_eq!(body["headers"]["host"], "h2.example");

    // Chosen status, and a slow answer.
    let reply = client
        .get(&format!("{}/x?status=503", upstream.url()), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 503);
    let start = std::time::Instant::now();
    let reply = client
        .get(&format!("{}/slow?ms=300", upstream.url()), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(upstream.requests(), 4);

    let addr = upstream.addr;
    drop(upstream);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the upstream stops listening when dropped"
    );
}

#[tokio::test]
async fn envoy_admin_answers_and_envoy_dies_with_its_handle() {
    // Nothing serves ADS here: Envoy starts, keeps initializing, and its admin answers.
    let ads = free_addr();
    let envoy = Envoy::start(ads).await;
    let (status, body) = envoy.ready().await;
    assert!(
        status == 200 || status == 503,
        "unexpected /ready answer: {status} {body}"
    );
    let dump = envoy.config_dump().await;
    let configs = dump["configs"].as_array().expect("config_dump has configs");
    let bootstrap = configs
        .iter()
        .find(|c| {
            c["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with("BootstrapConfigDump"))
        })
        .expect("a bootstrap config dump");
    assert_eq!(bootstrap["bootstrap"]["node"]["id"], envoy.node_id.as_str());
    assert_eq!(
        bootstrap["bootstrap"]["dynamic_resources"]["ads_config"]["api_type"],
        "DELTA_GRPC"
    );

    let pid = envoy.process.id();
    let admin = envoy.admin_address;
    drop(envoy);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "Envoy (pid {pid}) is gone after drop"
    );
    assert!(tokio::net::TcpStream::connect(admin).await.is_err());
}

#[tokio::test]
async fn agent_serves_healthz_on_its_metrics_address() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.yaml"),
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata:\n  name: m\n  namespace: default\nspec:\n  prefix: /m/\n  service: 127.0.0.1:1\n",
    )
    .unwrap();
    let agent = Agent::start(dir.path()).await;
    assert_eq!(agent.healthz().await, Some(200));
    let (status, _) = agent.readyz().await;
    assert!(status == 200 || status == 503, "/readyz answered {status}");
    assert!(agent.metrics().await.contains("legate_agent"));

    let pid = agent.process.id();
    drop(agent);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the agent (pid {pid}) is gone after drop"
    );
}

#[tokio::test]
async fn a_failing_test_still_tears_envoy_down() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let failed = tokio::spawn(async move {
        let envoy = Envoy::start(free_addr()).await;
        tx.send(envoy.process.id()).unwrap();
        panic!("a test failing while Envoy runs (expected)");
    })
    .await;
    assert!(failed.unwrap_err().is_panic());
    let pid = rx.await.unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "Envoy (pid {pid}) is gone after the panic"
    );
}
