//! Tracing through real Envoy to real collectors (tests/support/tracing_collector.rs): the
//! gateway's TracingService makes every HTTP listener trace its requests, each a span of the
//! gateway and a child span of its upstream call, reported to a Zipkin collector (JSON v2 over
//! HTTP), an OpenTelemetry one (OTLP over gRPC) or a Datadog agent, with the TracingService's
//! sampling and custom tags (Emissary's `ir/irtracing.py`, `envoy/v3/v3tracing.py`,
//! `envoy/v3/v3listener.py`; its tests: `python/tests/src/tests/kat/t_tracing.py`).
//!
//! Envoy reports spans in batches (every 5 s, or sooner when enough wait): each test sends
//! requests, each on a new connection so that it reaches the listener as the last configuration
//! made it, until the span of one of them arrives.

mod support;

use std::time::Instant;

use pretty_assertions::assert_eq;
use reqwest::Method;
use serde_json::Value;
use support::{
    Upstream, eventually,
    gateway::{self, Gateway, WAIT, document, raw_status, route, served_by},
    tracing_collector::{HttpCollector, OtlpCollector, ReceivedSpan},
};

/// A TracingService in namespace `default`.
fn tracing_service(name: &str, spec: &str) -> String {
    document("TracingService", name, spec)
}

/// A gateway with the TracingService `tracing` (its spec), the Mapping `/app/` to the upstream
/// `app` and the documents `more`, written in one change.
async fn gateway_tracing(tracing: &str, more: &str) -> (Gateway, Upstream) {
    let app = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write(
        "app.yaml",
        &[
            tracing_service("tracing", tracing),
            route("app", &app, "prefix: /app/"),
            more.to_owned(),
        ]
        .concat(),
    );
    (gw, app)
}

/// Sends GET `path` (each on a new connection, with `headers`) until `found` finds what the
/// collector received for one of the requests sent (by its `x-request-id`, as the upstream saw
/// it); returns that request as the upstream echoed it, and what was found.
async fn until_traced<T>(
    gw: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
    found: impl Fn(&str) -> Option<T>,
) -> (Value, T) {
    let start = Instant::now();
    let mut sent: Vec<(String, Value)> = Vec::new();
    let mut headers = headers.to_vec();
    headers.push(("connection", "close"));
    loop {
        let reply = gw.send(Method::GET, path, "example.com", &headers).await;
        if reply.status == 200 {
            let echo = served_by(&reply, "app");
            if let Some(id) = echo["headers"]["x-request-id"].as_str() {
                sent.push((id.to_owned(), echo.clone()));
            }
        }
        for (id, echo) in &sent {
            if let Some(t) = found(id) {
                return (echo.clone(), t);
            }
        }
        if start.elapsed() > WAIT {
            let stats = gw
                .envoy
                .admin_get("/stats?filter=tracing")
                .await
                .map(|r| r.text)
                .unwrap_or_default();
            panic!(
                "no span of {path} reached the collector after {WAIT:?} ({} requests served); \
                 Envoy's tracing statistics:\n{stats}",
                sent.len()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The Zipkin spans of one request, once both are there: the gateway's (tagged with the
/// request's `x-request-id`) and its upstream call's (in the same trace).
fn zipkin_request_spans(collector: &HttpCollector, id: &str) -> Option<Vec<Value>> {
    let spans = collector.zipkin_spans("/api/v2/spans");
    let server = spans
        .iter()
        .find(|s| s["tags"]["guid:x-request-id"] == id)?;
    let trace: Vec<Value> = spans
        .iter()
        .filter(|s| s["traceId"] == server["traceId"])
        .cloned()
        .collect();
    (trace.len() >= 2).then_some(trace)
}

#[tokio::test]
async fn zipkin_receives_the_routes_span_and_its_upstream_call_with_the_custom_tags() {
    let zipkin = HttpCollector::start().await;
    let tracing = format!(
        "driver: zipkin\nservice: {}\n\
         custom_tags:\n\
         - {{tag: team, literal: {{value: shop}}}}\n\
         - {{tag: region, environment: {{name: LEGATE_TEST_UNSET_VARIABLE, default_value: nowhere}}}}\n\
         - {{tag: tenant, request_header: {{name: x-tenant, default_value: none}}}}",
        zipkin.service()
    );
    let (gw, app) = gateway_tracing(&tracing, "").await;
    let (echo, spans) = until_traced(&gw, "/app/traced", &[("x-tenant", "acme")], |id| {
        zipkin_request_spans(&zipkin, id)
    })
    .await;
    let all = serde_json::to_string_pretty(&spans).unwrap_or_default();
    let (server, client): (Vec<&Value>, Vec<&Value>) =
        spans.iter().partition(|s| s["kind"] == "SERVER");
    let ([server], [client]) = (&server[..], &client[..]) else {
        panic!("one server span and one client span: {all}");
    };
    // The gateway's span: the request as it came, and the custom tags.
    let tags = &server["tags"];
    assert_eq!(tags["http.method"], "GET", "{all}");
    assert!(
        tags["http.url"]
            .as_str()
            .is_some_and(|u| u.ends_with("example.com/app/traced")),
        "{all}"
    );
    assert_eq!(tags["http.status_code"], "200", "{all}");
    assert_eq!(tags["team"], "shop", "{all}");
    assert_eq!(tags["region"], "nowhere", "{all}");
    assert_eq!(tags["tenant"], "acme", "{all}");
    // The upstream call: a child of it in the same trace, naming the route's cluster.
    assert_eq!(client["kind"], "CLIENT", "{all}");
    assert_eq!(client["traceId"], server["traceId"], "{all}");
    assert_eq!(client["parentId"], server["id"], "{all}");
    let cluster = client["tags"]["upstream_cluster"]
        .as_str()
        .unwrap_or_default();
    assert!(
        cluster.contains(&format!("_{}_", app.addr.port())),
        "the route's cluster, to {}: {all}",
        app.service()
    );
    assert_eq!(
        client["tags"]["upstream_address"],
        app.service().as_str(),
        "{all}"
    );
    assert_eq!(client["name"], format!("router {cluster} egress"), "{all}");
    assert_eq!(
        tags["guid:x-request-id"], echo["headers"]["x-request-id"],
        "{all}"
    );
    // Emissary's default: 128-bit trace ids.
    assert_eq!(server["traceId"].as_str().map(str::len), Some(32), "{all}");
    // The upstream was called in the upstream call's span (B3 headers).
    let upstream_headers = &echo["headers"];
    assert_eq!(
        upstream_headers["x-b3-traceid"], server["traceId"],
        "{echo}"
    );
    assert_eq!(upstream_headers["x-b3-spanid"], client["id"], "{echo}");
}

/// `sampling: {random: 0}` traces no request of its own accord, nor one a client forces with
/// `x-envoy-force-trace`; a client's `x-client-trace-id` still asks for one (client sampling,
/// 100 % by default), as Envoy documents. The requests go on one connection, so one Envoy
/// worker reports them all: the last one's span arriving means the others' would have too.
#[tokio::test]
async fn random_sampling_zero_traces_nothing_but_what_a_client_asks_for() {
    let zipkin = HttpCollector::start().await;
    let (gw, _app) = gateway_tracing(
        &format!(
            "driver: zipkin\nservice: {}\nsampling: {{random: 0}}",
            zipkin.service()
        ),
        "",
    )
    .await;
    // Tracing is on once a client's request is traced.
    until_traced(&gw, "/app/warm", &[("x-client-trace-id", "warm")], |id| {
        zipkin_request_spans(&zipkin, id)
    })
    .await;
    let answer = gw
        .raw(
            b"GET /app/unsampled HTTP/1.1\r\nHost: example.com\r\n\r\n\
              GET /app/forced HTTP/1.1\r\nHost: example.com\r\nx-envoy-force-trace: true\r\n\r\n\
              GET /app/client HTTP/1.1\r\nHost: example.com\r\nx-client-trace-id: 1234\r\n\
              connection: close\r\n\r\n",
        )
        .await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 3, "{answer}");
    let urls = |spans: &[Value]| -> Vec<String> {
        spans
            .iter()
            .filter_map(|s| s["tags"]["http.url"].as_str().map(str::to_owned))
            .collect()
    };
    eventually("the span of /app/client", WAIT, || {
        let spans = zipkin.zipkin_spans("/api/v2/spans");
        let seen = urls(&spans).iter().any(|u| u.ends_with("/app/client"));
        async move { seen.then_some(()) }
    })
    .await;
    let urls = urls(&zipkin.zipkin_spans("/api/v2/spans"));
    assert!(
        !urls.iter().any(|u| u.ends_with("/app/unsampled")),
        "random: 0 traced a request: {urls:?}"
    );
    // Envoy honours it from internal requests only, and no client address is internal to the
    // gateway (Envoy's `internal_address_config` is left empty).
    assert!(
        !urls.iter().any(|u| u.ends_with("/app/forced")),
        "x-envoy-force-trace from a client was obeyed: {urls:?}"
    );
}

#[tokio::test]
async fn opentelemetry_receives_the_routes_spans_over_otlp_grpc() {
    let otlp = OtlpCollector::start().await;
    let (gw, app) = gateway_tracing(
        &format!(
            "driver: opentelemetry\nservice: {}\nconfig: {{service_name: shop-gateway}}\n\
                 custom_tags: [{{tag: team, literal: {{value: shop}}}}]",
            otlp.service()
        ),
        "",
    )
    .await;
    // The gateway's span (tagged with the request's `x-request-id`) and its upstream call's.
    let of_request = |id: &str| -> Option<Vec<ReceivedSpan>> {
        let spans = otlp.spans();
        let server = spans
            .iter()
            .find(|s| s.attributes.get("guid:x-request-id").map(String::as_str) == Some(id))?;
        let trace: Vec<ReceivedSpan> = spans
            .iter()
            .filter(|s| s.trace_id == server.trace_id)
            .cloned()
            .collect();
        (trace.len() >= 2).then_some(trace)
    };
    let (echo, spans) = until_traced(&gw, "/app/otel", &[], of_request).await;
    let all = format!("{spans:#?}");
    // OTLP's SpanKind: 2 SERVER, 3 CLIENT.
    let server = spans.iter().find(|s| s.kind == 2).expect(&all);
    let client = spans.iter().find(|s| s.kind == 3).expect(&all);
    assert_eq!(
        server.resource.get("service.name").map(String::as_str),
        Some("shop-gateway"),
        "{all}"
    );
    assert!(
        server
            .attributes
            .get("http.url")
            .is_some_and(|u| u.ends_with("/app/otel")),
        "{all}"
    );
    assert_eq!(
        server.attributes.get("team").map(String::as_str),
        Some("shop"),
        "{all}"
    );
    assert_eq!(client.trace_id, server.trace_id, "{all}");
    assert_eq!(client.parent_span_id, server.span_id, "{all}");
    // The upstream was called in the upstream call's span (W3C trace context).
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        echo["headers"]["traceparent"],
        format!("00-{}-{}-01", hex(&server.trace_id), hex(&client.span_id)),
        "{echo}"
    );
    assert!(
        client
            .attributes
            .get("upstream_cluster")
            .is_some_and(|c| c.contains(&app.addr.port().to_string())),
        "{all}"
    );
}

/// Envoy's Datadog tracer posts its traces (MessagePack) to the agent's `/v0.4/traces`; with
/// `envoy_log_type: json`, each access-log line carries the trace's ids, as Emissary's does.
#[tokio::test]
async fn datadog_posts_the_routes_spans_to_the_agent_and_logs_their_ids() {
    let agent = HttpCollector::start().await;
    let (gw, _app) = gateway_tracing(
        &format!(
            "driver: datadog\nservice: {}\nconfig: {{service_name: shop-gateway}}",
            agent.service()
        ),
        &gateway::module("envoy_log_type: json"),
    )
    .await;
    let (echo, _) = until_traced(&gw, "/app/datadog", &[], |id| {
        agent
            .posts()
            .into_iter()
            .filter(|p| p.path == "/v0.4/traces")
            .find(|p| {
                // MessagePack strings are their UTF-8 bytes.
                let body = String::from_utf8_lossy(&p.body);
                body.contains("shop-gateway") && body.contains(id)
            })
    })
    .await;
    let id = echo["headers"]["x-request-id"].as_str().unwrap_or_default();
    let line = eventually("the request's JSON access-log line", WAIT, || {
        let log = gw.envoy.log();
        async move {
            log.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|o| o["request_id"] == id)
        }
    })
    .await;
    // What the upstream was sent: the trace, and the upstream call's span as parent.
    assert_eq!(
        line["dd.trace_id"], echo["headers"]["x-datadog-trace-id"],
        "{line}"
    );
    assert_eq!(
        line["dd.span_id"], echo["headers"]["x-datadog-parent-id"],
        "{line}"
    );
    assert!(
        line["dd.trace_id"].as_str().is_some_and(|t| !t.is_empty()),
        "{line}"
    );
}

/// A TracingService that cannot be used is refused naming the field, and the routes keep
/// serving, untraced; so does a second one, refused as the Conflict it is.
#[tokio::test]
async fn a_refused_tracing_service_leaves_the_routes_serving() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write(
        "tracing.yaml",
        &[
            tracing_service(
                "lightstep",
                "driver: lightstep\nservice: lightstep:80\nconfig: {access_token_file: /token}",
            ),
            tracing_service("second", "driver: zipkin\nservice: zipkin:9411"),
        ]
        .concat(),
    );
    gw.write("app.yaml", &route("app", &app, "prefix: /app/"));
    gw.wait_upstream("/app/still", "app").await;
    let refused = eventually("the TracingService refused", WAIT, || {
        let log = gw.agent.log();
        async move {
            log.lines()
                .find(|l| l.contains("driver: lightstep was removed from Envoy"))
                .map(str::to_owned)
        }
    })
    .await;
    assert!(
        refused.contains("TracingService default/lightstep"),
        "{refused}"
    );
    let answer = gw
        .raw(b"GET /app/raw HTTP/1.1\r\nHost: example.com\r\nconnection: close\r\n\r\n")
        .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert_eq!(gw.agent.nacks().await, 0.0);
}
