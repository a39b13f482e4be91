//! LogServices through real Envoy and a real `envoy.service.accesslog.v3` gRPC receiver
//! (`support/access_log_receiver.rs`), as Emissary configures them (`ir/irlogservice.py`,
//! `envoy/v3/v3listener.py` `access_log`; its tests: `python/tests/src/tests/kat/t_logservice.py`,
//! `python/tests/src/tests/unit/test_irlogservice.py`), and TCPMappings' connections in the
//! file access log.
//!
//! Each test has its own gateway and receivers, and waits for the entries of requests only the
//! configuration it wrote serves: Envoy sends entries in batches (every second by default).

mod support;

use pretty_assertions::assert_eq;
use reqwest::Method;
use support::{
    Upstream,
    access_log_receiver::{AccessLogReceiver, HttpEntry},
    eventually, free_port,
    gateway::{self, Gateway, WAIT, route, served_by},
    tcp::round_trip,
};

/// A LogService named `name` in `default` calling `receiver`, with `spec` (flow style, without
/// braces) added.
fn log_service(name: &str, service: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: LogService\n\
         metadata: {{name: {name}, namespace: default}}\n\
         spec: {{service: \"{service}\", grpc: true, protocol_version: v3{spec}}}\n"
    )
}

/// A TCPMapping from `port` to `service`.
fn tcp_mapping(name: &str, port: u16, service: &str) -> String {
    gateway::document(
        "TCPMapping",
        name,
        &format!("port: {port}\nservice: {service}"),
    )
}

/// Sends GET `path` with `headers` (each on a new connection, which reaches the listener as
/// the last configuration made it) until `receiver` has an HTTP entry for it, and returns the
/// first. Every answer must be `app`'s.
async fn logged(
    gw: &Gateway,
    receiver: &AccessLogReceiver,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpEntry {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .copied()
        .chain([("connection", "close")])
        .collect();
    let what = format!("an HTTP access-log entry for {path}");
    eventually(&what, WAIT, || async {
        if let Some(found) = receiver.http().into_iter().find(|e| e.path == path) {
            return Some(found);
        }
        let reply = gw.send(Method::GET, path, "example.com", &headers).await;
        // Until the route arrives: 404.
        if reply.status != 404 {
            served_by(&reply, "app");
        }
        None
    })
    .await
}

fn map(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn driver_http_sends_each_request_with_the_additional_headers_where_asked() {
    let app = Upstream::start("app").await;
    let receiver = AccessLogReceiver::start().await;
    let gw = Gateway::start().await;
    gw.write(
        "logs.yaml",
        &[
            log_service(
                "als",
                &receiver.service(),
                ", driver: http, driver_config: {additional_log_headers: [\
                 {header_name: x-team, during_response: false, during_trailer: false}, \
                 {header_name: X-Upstream, during_request: false, during_trailer: false}]}",
            ),
            route("app", &app, "prefix: /app/"),
        ]
        .concat(),
    );
    let entry = logged(&gw, &receiver, "/app/logged", &[("x-team", "shop")]).await;
    assert_eq!(
        entry,
        HttpEntry {
            log_name: "default/als".into(),
            method: "GET".into(),
            path: "/app/logged".into(),
            upstream_path: "/logged".into(),
            authority: "example.com".into(),
            status: 200,
            request_headers: map(&[("x-team", "shop")]),
            response_headers: map(&[("x-upstream", "app")]),
            response_trailers: map(&[]),
            upstream_cluster: entry.upstream_cluster.clone(),
        }
    );
    assert!(!entry.upstream_cluster.is_empty(), "{entry:?}");
    assert_eq!(receiver.tcp(), []);
    assert_eq!(gw.agent.nacks().await, 0.0);
}

#[tokio::test]
async fn two_log_services_both_receive_every_request() {
    let app = Upstream::start("app").await;
    let first = AccessLogReceiver::start().await;
    let second = AccessLogReceiver::start().await;
    let gw = Gateway::start().await;
    gw.write(
        "logs.yaml",
        &[
            log_service("first", &first.service(), ", driver: http"),
            log_service("second", &second.service(), ", driver: http"),
            route("app", &app, "prefix: /app/"),
        ]
        .concat(),
    );
    let a = logged(&gw, &first, "/app/both", &[]).await;
    let b = logged(&gw, &second, "/app/both", &[]).await;
    assert_eq!((a.log_name.as_str(), a.status), ("default/first", 200));
    assert_eq!((b.log_name.as_str(), b.status), ("default/second", 200));
}

/// Driver `tcp` (also Emissary's when none is written): a TCP entry for each HTTP request, and
/// one for each connection a TCPMapping forwards, with its bytes.
#[tokio::test]
async fn driver_tcp_sends_requests_and_tcp_mapping_connections() {
    let app = Upstream::start("app").await;
    let echo = support::tcp::TcpEcho::start("db").await;
    let receiver = AccessLogReceiver::start().await;
    let gw = Gateway::start().await;
    let port = free_port();
    gw.write(
        "logs.yaml",
        &[
            log_service("connections", &receiver.service(), ""),
            route("app", &app, "prefix: /app/"),
            tcp_mapping("db", port, &echo.addr.to_string()),
        ]
        .concat(),
    );
    let message = b"seventeen bytes!!";
    let farewell = "\nbye from db";
    let (echoed, bye) = eventually("the TCPMapping to forward", WAIT, || async {
        round_trip(([127, 0, 0, 1], port).into(), message)
            .await
            .ok()
    })
    .await;
    assert_eq!((echoed.as_slice(), bye.as_str()), (&message[..], farewell));
    let connection = eventually("the connection's TCP entry", WAIT, || {
        let found = receiver
            .tcp()
            .into_iter()
            .find(|e| e.received_bytes == message.len() as u64);
        async move { found }
    })
    .await;
    assert_eq!(connection.log_name, "default/connections");
    assert_eq!(
        connection.sent_bytes,
        (message.len() + farewell.len()) as u64
    );
    // An HTTP request's entry: a TCP one too, with its cluster.
    eventually("a request's TCP entry", WAIT, || async {
        let found = receiver
            .tcp()
            .into_iter()
            .find(|e| e.upstream_cluster != connection.upstream_cluster);
        if found.is_none() {
            let reply = gw
                .send(
                    Method::GET,
                    "/app/tcp",
                    "example.com",
                    &[("connection", "close")],
                )
                .await;
            assert!(
                reply.status == 200 || reply.status == 404,
                "{}",
                gateway::describe(&reply)
            );
        }
        found
    })
    .await;
    assert_eq!(receiver.http(), []);
    assert_eq!(gw.agent.nacks().await, 0.0);
}

/// A LogService that cannot be used is refused naming the field, and everything else serves
/// and logs; one whose service is down loses only its entries.
#[tokio::test]
async fn a_refused_or_unreachable_log_service_does_not_affect_traffic() {
    let app = Upstream::start("app").await;
    let good = AccessLogReceiver::start().await;
    let gw = Gateway::start().await;
    let down = format!("127.0.0.1:{}", free_port());
    let yaml = [
        log_service(
            "bad",
            &good.service(),
            ", driver: http, driver_config: {additional_log_headers: [{header_name: \"x team\"}]}",
        ),
        log_service("down", &down, ", driver: http, flush_interval_byte_size: 0"),
        log_service("good", &good.service(), ", driver: http"),
        route("app", &app, "prefix: /app/"),
    ]
    .concat();
    gw.write("logs.yaml", &yaml);
    let entry = logged(&gw, &good, "/app/served", &[]).await;
    assert_eq!(entry.log_name, "default/good");
    // Only the good one reaches this receiver: the bad one, naming it too, is not used.
    assert!(
        good.http().iter().all(|e| e.log_name == "default/good"),
        "{:?}",
        good.http()
    );
    assert_eq!(gw.agent.nacks().await, 0.0);
    let refused = eventually("the refusal in the agent's log", WAIT, || {
        let log = gw.agent.log();
        async move {
            log.lines()
                .find(|l| l.contains("LogService default/bad"))
                .map(str::to_owned)
        }
    })
    .await;
    assert!(
        refused.contains("driver_config.additional_log_headers[0].header_name")
            && refused.contains("x team"),
        "{refused}"
    );

    // The status each would get.
    let status = |name: &str| support::verdict::accepted(&yaml, "LogService", name);
    assert_eq!(
        status("bad"),
        (
            "False",
            "Invalid".to_owned(),
            "driver_config.additional_log_headers[0].header_name \"x team\": not an HTTP header \
             name (letters, digits and !#$%&'*+-.^_`|~); this LogService is not used (traffic \
             is not affected)"
                .to_owned()
        )
    );
    for name in ["down", "good"] {
        assert_eq!(
            status(name),
            ("True", "Accepted".to_owned(), "accepted".to_owned())
        );
    }
}

/// TCPMappings' connections are logged to the Module's file access log too, one line each when
/// it closes: in a format for connections by default, in the Module's own when it writes one
/// (Envoy writes `-` for what a connection lacks).
#[tokio::test]
async fn a_tcp_mapping_connection_is_a_line_of_the_file_access_log() {
    let echo = support::tcp::TcpEcho::start("db").await;
    let gw = Gateway::start().await;
    let port = free_port();
    gw.write("db.yaml", &tcp_mapping("db", port, &echo.addr.to_string()));
    let message = b"nineteen bytes long";
    eventually("the TCPMapping to forward", WAIT, || async {
        round_trip(([127, 0, 0, 1], port).into(), message)
            .await
            .ok()
    })
    .await;
    // ACCESS [START_TIME] TCP FLAGS RECEIVED SENT DURATION "CLIENT" "SNI" "UPSTREAM_HOST"
    let line = line_with(&gw, " TCP - 19 ").await;
    let format = regex::Regex::new(
        r#"^ACCESS \[[^\]]+\] TCP - 19 31 \d+ "127\.0\.0\.1:\d+" "-" "([^"]+)"$"#,
    )
    .unwrap();
    let captures = format
        .captures(&line)
        .unwrap_or_else(|| panic!("not the TCP format: {line}"));
    assert_eq!(&captures[1], echo.addr.to_string(), "{line}");

    gw.write(
        "module.yaml",
        &gateway::module("envoy_log_format: \"CONN %REQ(:METHOD)% %BYTES_RECEIVED% %PROTOCOL%\""),
    );
    let line = eventually("a line in the Module's format", WAIT, || async {
        round_trip(([127, 0, 0, 1], port).into(), message)
            .await
            .ok()?;
        gw.envoy
            .log()
            .lines()
            .find(|l| l.starts_with("CONN "))
            .map(str::to_owned)
    })
    .await;
    assert_eq!(line, "CONN - 19 -");

    // JSON: Emissary's fields a connection has.
    gw.write(
        "module.yaml",
        &gateway::module("envoy_log_type: typed_json"),
    );
    let object = eventually("a JSON line for a connection", WAIT, || async {
        round_trip(([127, 0, 0, 1], port).into(), message)
            .await
            .ok()?;
        gw.envoy
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|o| o["bytes_received"] == 19)
    })
    .await;
    let mut fields: Vec<&str> = object
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "bytes_received",
            "bytes_sent",
            "downstream_local_address",
            "downstream_remote_address",
            "duration",
            "requested_server_name",
            "response_flags",
            "start_time",
            "upstream_cluster",
            "upstream_host",
            "upstream_local_address",
            "upstream_transport_failure_reason",
        ],
        "{object}"
    );
    assert_eq!(object["bytes_sent"], 31, "{object}");
    assert_eq!(gw.agent.nacks().await, 0.0);
}

/// The first line of Envoy's output that holds `needle`.
async fn line_with(gw: &Gateway, needle: &str) -> String {
    eventually(&format!("an access log line with {needle:?}"), WAIT, || {
        let text = gw.envoy.log();
        async move { text.lines().find(|l| l.contains(needle)).map(str::to_owned) }
    })
    .await
}
