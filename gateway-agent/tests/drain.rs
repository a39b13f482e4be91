//! The preStop drain, `GET /drain` on the agent (both containers of a gateway pod call it before
//! they get SIGTERM): Envoy drains its listeners, every open connection is told to close,
//! requests in flight finish, new connections are still served, and `/drain` answers only when
//! the drain period is over — after which Envoy's listeners are closed.
//! (On Kubernetes `/drain` also requires the agent's Pod to be terminating: e2e/tests/node.rs.)

mod support;

use std::time::{Duration, Instant};

use legate_agent::bootstrap::AdsApi;
use support::{Agent, Client, Envoy, Upstream, eventually, free_addr, free_port, write_config};

const DRAIN: Duration = Duration::from_secs(3);

fn routes(port: u16, service: &str) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: http, namespace: default}}
spec:
  port: {port}
  protocol: HTTP
  securityModel: XFP
  hostBinding: {{namespace: {{from: ALL}}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {{name: any, namespace: default}}
spec:
  hostname: \"*\"
  requestPolicy: {{insecure: {{action: Route}}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: app, namespace: default}}
spec:
  hostname: \"*\"
  prefix: /app/
  service: {service}
"
    )
}

#[tokio::test]
async fn drain_closes_connections_gracefully_and_answers_when_the_period_is_over() {
    let upstream = Upstream::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_config(
        dir.path(),
        "routes.yaml",
        &routes(port, &upstream.service()),
    );
    let ads = free_addr();
    let seconds = DRAIN.as_secs().to_string();
    let envoy = Envoy::start_with_args(
        ads,
        AdsApi::DeltaGrpc,
        &["--drain-time-s", &seconds, "--drain-strategy", "immediate"],
    )
    .await;
    let admin = envoy.admin_address.to_string();
    let agent = Agent::start_inner(
        dir.path(),
        Some(ads),
        &["--envoy-admin-address", &admin, "--drain-seconds", &seconds],
    )
    .await;
    agent.wait_ready().await;

    let url = format!("http://127.0.0.1:{port}/app/");
    let client = Client::new();
    eventually(
        "the route serves, keeping connections open",
        DRAIN * 5,
        || {
            let client = client.clone();
            let url = url.clone();
            async move {
                let reply = client.get(&url, None).await.ok()?;
                (reply.status == 200 && reply.header("connection").is_none()).then_some(())
            }
        },
    )
    .await;

    // A request in flight when the drain begins, and two hooks calling at once (one per
    // container; one as kubelets before 1.23 send it, `//drain`).
    let slow = tokio::spawn({
        let client = client.clone();
        let url = format!("{url}slow?ms=1500");
        async move { client.get(&url, None).await }
    });
    let started = Instant::now();
    let hooks: Vec<_> = ["/drain", "//drain"]
        .into_iter()
        .map(|path| {
            let url = format!("{}{path}", agent.metrics_url);
            tokio::spawn(async move { Client::with_timeout(DRAIN * 4).get(&url, None).await })
        })
        .collect();

    // While draining, Envoy tells each client on a kept-alive connection to close it, and
    // still accepts new connections.
    eventually("responses carry Connection: close", DRAIN, || {
        let client = client.clone();
        let url = url.clone();
        async move {
            let reply = client.get(&url, None).await.ok()?;
            (reply.status == 200 && reply.header("connection") == Some("close")).then_some(())
        }
    })
    .await;
    let fresh = Client::new()
        .get(&url, None)
        .await
        .expect("a new connection");
    assert_eq!(fresh.status, 200);
    let slow = slow.await.unwrap().expect("the request in flight");
    assert_eq!(slow.status, 200, "the request in flight finishes");

    for hook in hooks {
        let reply = hook.await.unwrap().expect("GET /drain");
        assert_eq!((reply.status, reply.text.as_str()), (200, "drained\n"));
    }
    assert!(
        started.elapsed() >= DRAIN,
        "/drain answered after {:?}, before the drain period of {DRAIN:?} was over",
        started.elapsed()
    );

    // The period over, Envoy has closed its listeners; `/drain` again answers at once.
    eventually("the listener closes", DRAIN * 2, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let again = Client::new()
        .get(&format!("{}/drain", agent.metrics_url), None)
        .await
        .unwrap();
    assert_eq!(again.status, 200);
}
