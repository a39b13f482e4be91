//! gRPC through real Envoy: a Mapping with `grpc: true` in front of a real gRPC server (tonic's
//! `grpc.health.v1.Health`: unary `Check`, server-streaming `Watch`), and the gateway Module's
//! `enable_grpc_web`, `enable_grpc_http11_bridge` and `grpc_stats`, as Emissary configures them
//! (`python/ambassador/src/ambassador/ir/irambassador.py`, `envoy/v3/v3httpfilter.py`; its tests:
//! `python/tests/src/tests/kat/t_grpc.py`, `t_grpc_web.py`, `t_grpc_bridge.py`,
//! `t_grpc_stats.py`).
//!
//! Each test has its own gateway, and waits for an answer only the configuration it wrote can
//! give before asserting anything else.

mod support;

use std::{net::SocketAddr, time::Duration};

use prost::Message;
use support::{
    eventually,
    gateway::{self, Gateway, WAIT},
};
use tokio_stream::StreamExt;
use tonic_health::{
    ServingStatus,
    pb::{
        HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus as Status,
        health_client::HealthClient,
    },
    server::HealthReporter,
};

/// A real gRPC server (HTTP/2 over cleartext) answering `grpc.health.v1.Health`.
async fn grpc_server() -> (SocketAddr, HealthReporter) {
    let (reporter, service) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the gRPC server");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (address, reporter)
}

/// The Mapping Emissary's documentation gives for a gRPC service: its package and service as
/// the prefix, kept as it is (`rewrite`), HTTP/2 to the upstream (`grpc: true`).
fn grpc_mapping(server: SocketAddr) -> String {
    gateway::mapping(
        "health",
        &format!(
            "hostname: \"*\"\nprefix: /grpc.health.v1.Health/\nrewrite: /grpc.health.v1.Health/\n\
             service: {server}\ngrpc: true"
        ),
    )
}

/// A gateway routing `grpc.health.v1.Health` to a fresh server, with `module` (Module config
/// lines) when not empty; returns once a real gRPC `Check` through Envoy succeeds.
async fn gateway_with(module: &str) -> (Gateway, HealthReporter) {
    let (server, reporter) = grpc_server().await;
    let gw = Gateway::start().await;
    if !module.is_empty() {
        gw.write("module.yaml", &gateway::module(module));
    }
    gw.write("health.yaml", &grpc_mapping(server));
    let client = client(&gw).await;
    eventually("a gRPC Check through Envoy", WAIT, || {
        let mut client = client.clone();
        async move { client.check(request("")).await.ok() }
    })
    .await;
    (gw, reporter)
}

async fn client(gw: &Gateway) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(gw.url(""))
        .expect("the gateway's URL")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    HealthClient::new(channel)
}

fn request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

#[tokio::test]
async fn a_unary_and_a_streaming_grpc_call_go_through_envoy_over_http2() {
    let (gw, reporter) = gateway_with("").await;
    let mut client = client(&gw).await;

    // Unary: the server's overall status.
    let answer = client.check(request("")).await.expect("Check").into_inner();
    assert_eq!(answer.status(), Status::Serving);

    // Server streaming: each change of a service's status arrives while the call stays open.
    reporter
        .set_service_status("legate.Shop", ServingStatus::Serving)
        .await;
    let mut watch = client
        .watch(request("legate.Shop"))
        .await
        .expect("Watch")
        .into_inner();
    let first = watch
        .next()
        .await
        .expect("a first message")
        .expect("no error");
    assert_eq!(first.status(), Status::Serving);
    reporter
        .set_service_status("legate.Shop", ServingStatus::NotServing)
        .await;
    let second = watch
        .next()
        .await
        .expect("a second message")
        .expect("no error");
    assert_eq!(second.status(), Status::NotServing);

    // A gRPC error status comes back as itself, not as an HTTP error.
    let unknown = client.check(request("legate.Unknown")).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
}

/// A gRPC message in its length-prefixed frame (flag 0: data).
fn frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The frames of a gRPC(-Web) body: (flag, payload).
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let end = (5 + len).min(body.len());
        out.push((body[0], body[5..end].to_vec()));
        body = &body[end..];
    }
    out
}

/// POSTs a `Check` to the gateway over HTTP/1.1 with `content-type`, as a browser (gRPC-Web) or
/// an HTTP/1.1 gRPC client (the bridge) would.
async fn post_check(
    gw: &Gateway,
    content_type: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let client = gw.client.http1();
    let response = client
        .post(gw.url("/grpc.health.v1.Health/Check"))
        .header("content-type", content_type)
        .header("x-grpc-web", "1")
        .header("te", "trailers")
        .body(frame(&request("")))
        .send()
        .await
        .expect("an answer from Envoy");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("a body").to_vec();
    (status, headers, body)
}

/// A gRPC-Web answer: its message and its trailers, which come in the body.
fn grpc_web_answer(body: &[u8]) -> Option<(HealthCheckResponse, String)> {
    let frames = frames(body);
    let message = frames.iter().find(|(flag, _)| *flag == 0)?;
    let trailers = frames.iter().find(|(flag, _)| flag & 0x80 != 0)?;
    Some((
        HealthCheckResponse::decode(&message.1[..]).ok()?,
        String::from_utf8_lossy(&trailers.1).to_lowercase(),
    ))
}

#[tokio::test]
async fn grpc_web_from_a_browser_is_translated_by_envoy_when_the_module_enables_it() {
    let (gw, _reporter) = gateway_with("").await;
    // Without the filter Envoy passes gRPC-Web through untranslated: the gRPC server does not
    // answer it as gRPC-Web.
    let (_, _, body) = post_check(&gw, "application/grpc-web+proto").await;
    assert_eq!(grpc_web_answer(&body), None, "{body:?}");

    gw.write("module.yaml", &gateway::module("enable_grpc_web: true"));
    let (status, headers, body) = eventually("gRPC-Web to be translated", WAIT, || async {
        let answer = post_check(&gw, "application/grpc-web+proto").await;
        grpc_web_answer(&answer.2).is_some().then_some(answer)
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/grpc-web+proto")
    );
    let (message, trailers) = grpc_web_answer(&body).expect("a gRPC-Web answer");
    assert_eq!(message.status(), Status::Serving);
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");

    // `false` is off (Emissary would turn the filter on for the key's mere presence).
    gw.write("module.yaml", &gateway::module("enable_grpc_web: false"));
    eventually("gRPC-Web to be untranslated again", WAIT, || async {
        let answer = post_check(&gw, "application/grpc-web+proto").await;
        grpc_web_answer(&answer.2).is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_http11_bridge_answers_an_http1_grpc_client_with_the_status_in_headers() {
    let (gw, _reporter) = gateway_with("").await;
    // Over HTTP/1.1 without the bridge, the gRPC status (a trailer) is lost.
    let (_, headers, _) = post_check(&gw, "application/grpc").await;
    assert_eq!(headers.get("grpc-status"), None, "{headers:?}");

    gw.write(
        "module.yaml",
        &gateway::module("enable_grpc_http11_bridge: true"),
    );
    let (status, headers, body) = eventually("the bridge to answer", WAIT, || async {
        let answer = post_check(&gw, "application/grpc").await;
        answer.1.contains_key("grpc-status").then_some(answer)
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("grpc-status").and_then(|v| v.to_str().ok()),
        Some("0")
    );
    let frames = frames(&body);
    let message = HealthCheckResponse::decode(&frames[0].1[..]).expect("the answer's message");
    assert_eq!(message.status(), Status::Serving);
}

#[tokio::test]
async fn grpc_stats_count_each_method_the_module_names() {
    let (gw, _reporter) = gateway_with(
        "grpc_stats: {upstream_stats: true, services: [{name: grpc.health.v1.Health, \
         method_names: [Check]}]}",
    )
    .await;
    let mut client = client(&gw).await;
    for _ in 0..3 {
        client.check(request("")).await.expect("Check");
    }
    let successes = eventually("Envoy to count the calls by method", WAIT, || async {
        let n = gw
            .envoy
            .stat_sum(r"grpc\.health\.v1\.Health\.Check\.success$")
            .await;
        (n >= 3).then_some(n)
    })
    .await;
    assert!(successes >= 3);
    // Upstream request times, asked for with `upstream_stats`.
    let timed = gw
        .envoy
        .admin_get("/stats?filter=grpc.health.v1.Health.Check.upstream_rq_time")
        .await
        .expect("Envoy's stats");
    assert!(timed.text.contains("upstream_rq_time"), "{}", timed.text);
}

#[tokio::test]
async fn a_grpc_stats_envoy_would_refuse_leaves_the_other_grpc_settings_working() {
    // A service without methods: Envoy would refuse the filter; the Module is rejected for it
    // (ir/grpc.rs) and its gRPC-Web setting still applies.
    let (gw, _reporter) = gateway_with(
        "enable_grpc_web: true\ngrpc_stats: {services: [{name: grpc.health.v1.Health}]}",
    )
    .await;
    eventually("gRPC-Web to be translated", WAIT, || async {
        let answer = post_check(&gw, "application/grpc-web+proto").await;
        grpc_web_answer(&answer.2).map(|(m, _)| m.status() == Status::Serving)
    })
    .await;
    assert_eq!(gw.agent.nacks().await, 0.0, "Envoy refused nothing");
}
