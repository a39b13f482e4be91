//! The `ambassador` Module's HTTP connection manager settings on the data path: real Envoy,
//! configured as Emissary configures it (`python/ambassador/src/ambassador/envoy/v3/
//! v3listener.py`, `base_http_config` and `compute_http_routes`; `v3httpfilter.py`,
//! `V3HTTPFilter_router` and `V3HTTPFilter_buffer`; defaults in `ir/irambassador.py`).
//!
//! Each test has its own gateway. A test first sees the behaviour without the Module, then
//! waits for an answer only the Module it wrote can produce before it asserts anything else, so
//! a negative answer never comes from a configuration that has not arrived yet.

mod support;

use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use reqwest::Method;
use support::{
    Upstream,
    gateway::{Gateway, WAIT, describe, module, raw_status as status, route, served_by},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Serves the echo upstream `name` under `prefix`, waited for; keep it while it must answer.
async fn serving(gw: &Gateway, name: &str, prefix: &str) -> Upstream {
    let up = Upstream::start(name).await;
    gw.write(
        &format!("{name}.yaml"),
        &route(name, &up, &format!("prefix: {prefix}")),
    );
    gw.wait_upstream(prefix, name).await;
    up
}

/// What the echo upstream saw of a request header.
fn seen<'a>(echo: &'a serde_json::Value, header: &str) -> Option<&'a str> {
    echo["headers"][header].as_str()
}

#[tokio::test]
async fn server_name_is_the_server_response_header() {
    // Emissary's default is Envoy's `envoy`; `server_name` replaces it (t_basics.py's
    // ServerNameTest).
    let gw = Gateway::start().await;
    let _up = serving(&gw, "sn", "/sn/").await;
    let reply = gw.get("/sn/", "example.com").await;
    assert_eq!(
        reply.header("server"),
        Some("envoy"),
        "{}",
        describe(&reply)
    );

    gw.write("module.yaml", &module("server_name: test-server"));
    let reply = gw
        .wait_for("/sn/", "server: test-server", |r| {
            r.header("server") == Some("test-server")
        })
        .await;
    served_by(&reply, "sn");
}

#[tokio::test]
async fn strip_matching_host_port_routes_the_listeners_port_as_the_bare_host() {
    let hosts = r#"
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: a, namespace: default}
spec: {hostname: a.example.com, requestPolicy: {insecure: {action: Route}}}
"#;
    let gw = Gateway::start_with_hosts(hosts).await;
    let up = Upstream::start("strip").await;
    gw.write("strip.yaml", &route("strip", &up, "prefix: /strip/"));
    gw.wait_for_request(
        Method::GET,
        "/strip/",
        "a.example.com",
        &[],
        "a.example.com to be served",
        |r| r.status == 200,
    )
    .await;
    // t_mappingtests_default.py's HostHeaderMappingStripMatchingHostPort.
    let with_port = format!("a.example.com:{}", gw.port);
    // Without the setting, the port is part of the host: no Host `a.example.com:PORT`, 404
    // (Legate's deliberate default, Emissary's #4791).
    let reply = gw.get("/strip/", &with_port).await;
    assert_eq!(reply.status, 404, "{}", describe(&reply));

    gw.write("module.yaml", &module("strip_matching_host_port: true"));
    let reply = gw
        .wait_for_request(
            Method::GET,
            "/strip/",
            &with_port,
            &[],
            "the listener's port to be stripped",
            |r| r.status == 200,
        )
        .await;
    let echo = served_by(&reply, "strip");
    assert_eq!(seen(&echo, "host"), Some("a.example.com"), "{echo}");
    // Only the listener's own port is stripped.
    let reply = gw.get("/strip/", "a.example.com:1234").await;
    assert_eq!(reply.status, 404, "{}", describe(&reply));
}

#[tokio::test]
async fn merge_slashes_and_reject_requests_with_escaped_slashes() {
    // t_mappingtests_default.py's MergeSlashesEnabled and
    // RejectRequestsWithEscapedSlashesEnabled; unit/test_hcm.py.
    let gw = Gateway::start().await;
    let up = Upstream::start("ms").await;
    gw.write("ms.yaml", &route("ms", &up, "prefix: /ms/\nrewrite: /ms/"));
    gw.wait_upstream("/ms/", "ms").await;
    // Without the settings: `//ms//a` matches no prefix, `%2F` goes upstream as written.
    assert_eq!(gw.get("//ms//a//b", "example.com").await.status, 404);
    let echo = served_by(&gw.get("/ms/a%2Fb", "example.com").await, "ms");
    assert_eq!(echo["path"], "/ms/a%2Fb");

    gw.write(
        "module.yaml",
        &module("merge_slashes: true\nreject_requests_with_escaped_slashes: true"),
    );
    let reply = gw
        .wait_for("//ms//a//b", "slashes to be merged", |r| r.status == 200)
        .await;
    let echo = served_by(&reply, "ms");
    assert_eq!(echo["path"], "/ms/a/b");
    let reply = gw.get("/ms/a%2Fb", "example.com").await;
    assert_eq!(reply.status, 400, "{}", describe(&reply));
    let reply = gw.get("/ms/a%5Cb", "example.com").await;
    assert_eq!(reply.status, 400, "{}", describe(&reply));
}

#[tokio::test]
async fn a_header_block_over_max_request_headers_kb_gets_431() {
    let gw = Gateway::start().await;
    // t_max_req_header_kb.py: over the limit 431, under it 200.
    let _up = serving(&gw, "kb", "/kb/").await;
    let big = "x".repeat(2048);
    let headers = [("x-big", big.as_str())];
    // Envoy's default is 60 KiB.
    let reply = gw.send(Method::GET, "/kb/", "example.com", &headers).await;
    served_by(&reply, "kb");

    gw.write("module.yaml", &module("max_request_headers_kb: 1"));
    gw.wait_for_request(Method::GET, "/kb/", "example.com", &headers, "431", |r| {
        r.status == 431
    })
    .await;
    served_by(&gw.get("/kb/", "example.com").await, "kb");
}

#[tokio::test]
async fn http_10_is_answered_426_unless_enable_http10() {
    let gw = Gateway::start().await;
    // unit/test_listener_http_protocol_options.py: `accept_http_10` from `enable_http10`.
    let _up = serving(&gw, "h10", "/h10/").await;
    let request = "GET /h10/ HTTP/1.0\r\nHost: example.com\r\n\r\n";
    // Emissary's default (`enable_http10: false`) is Envoy's: 426 Upgrade Required.
    let answer = gw.raw(request.as_bytes()).await;
    assert_eq!(status(&answer), 426, "{answer}");

    gw.write("module.yaml", &module("enable_http10: true"));
    let answer = gw
        .wait_raw(request.as_bytes(), "HTTP/1.0 to be served", |a| {
            status(a) == 200
        })
        .await;
    assert!(answer.contains("x-upstream: h10"), "{answer}");
}

#[tokio::test]
async fn headers_with_underscores_are_dropped_or_the_request_rejected() {
    let gw = Gateway::start().await;
    // t_headerswithunderscoresaction.py.
    let _up = serving(&gw, "us", "/us/").await;
    let headers = [("x_under", "1"), ("x-dash", "2")];
    // Envoy's and Emissary's default: ALLOW.
    let echo = served_by(
        &gw.send(Method::GET, "/us/", "example.com", &headers).await,
        "us",
    );
    assert_eq!(seen(&echo, "x_under"), Some("1"), "{echo}");

    gw.write(
        "module.yaml",
        &module("headers_with_underscores_action: DROP_HEADER"),
    );
    let reply = gw
        .wait_for_request(
            Method::GET,
            "/us/",
            "example.com",
            &headers,
            "x_under to be dropped",
            |r| r.status == 200 && !r.text.contains("x_under"),
        )
        .await;
    let echo = served_by(&reply, "us");
    assert_eq!(seen(&echo, "x-dash"), Some("2"), "{echo}");

    gw.write(
        "module.yaml",
        &module("headers_with_underscores_action: REJECT_REQUEST"),
    );
    gw.wait_for_request(
        Method::GET,
        "/us/",
        "example.com",
        &headers,
        "a request with x_under to be rejected",
        |r| r.status == 400,
    )
    .await;
    served_by(
        &gw.send(Method::GET, "/us/", "example.com", &[("x-dash", "2")])
            .await,
        "us",
    );
}

#[tokio::test]
async fn xff_num_trusted_hops_takes_the_client_address_from_x_forwarded_for() {
    let gw = Gateway::start().await;
    let _up = serving(&gw, "xff", "/xff/").await;
    let headers = [("x-forwarded-for", "203.0.113.7")];
    let external = |r: &support::Reply| r.json()["headers"]["x-envoy-external-address"].clone();
    // Without trusted hops the client is the connection's address; the client's
    // X-Forwarded-For is only kept, with the gateway's own address appended (`use_remote_address`,
    // Emissary's default).
    let reply = gw.send(Method::GET, "/xff/", "example.com", &headers).await;
    let echo = served_by(&reply, "xff");
    assert_eq!(
        seen(&echo, "x-envoy-external-address"),
        Some("127.0.0.1"),
        "{echo}"
    );
    assert!(
        seen(&echo, "x-forwarded-for").is_some_and(|xff| xff.starts_with("203.0.113.7,")),
        "{echo}"
    );

    gw.write("module.yaml", &module("xff_num_trusted_hops: 1"));
    let reply = gw
        .wait_for_request(
            Method::GET,
            "/xff/",
            "example.com",
            &headers,
            "the client address from X-Forwarded-For",
            |r| r.status == 200 && external(r) == "203.0.113.7",
        )
        .await;
    served_by(&reply, "xff");

    // `use_remote_address: false`: Envoy is not the edge; X-Forwarded-For goes on as it came.
    gw.write(
        "module.yaml",
        &module("xff_num_trusted_hops: 1\nuse_remote_address: false"),
    );
    let reply = gw
        .wait_for_request(
            Method::GET,
            "/xff/",
            "example.com",
            &headers,
            "X-Forwarded-For without the gateway's address",
            |r| r.status == 200 && r.json()["headers"]["x-forwarded-for"] == "203.0.113.7",
        )
        .await;
    served_by(&reply, "xff");
}

#[tokio::test]
async fn a_listeners_l7_depth_wins_over_the_modules_xff_num_trusted_hops() {
    // Emissary writes `l7Depth` when above 0 (`v3listener.py`); its documentation makes the
    // Module's value the fallback. Two trusted hops take the second address from the right.
    let gw = Gateway::start_with(support::gateway::HOST_ANY, "l7Depth: 2, ").await;
    let _up = serving(&gw, "l7", "/l7/").await;
    gw.write(
        "module.yaml",
        &module("xff_num_trusted_hops: 1\nserver_name: module-applied"),
    );
    let headers = [("x-forwarded-for", "203.0.113.7, 198.51.100.9")];
    let reply = gw
        .wait_for_request(
            Method::GET,
            "/l7/",
            "example.com",
            &headers,
            "the Module to be applied",
            |r| r.header("server") == Some("module-applied"),
        )
        .await;
    let echo = served_by(&reply, "l7");
    assert_eq!(
        seen(&echo, "x-envoy-external-address"),
        Some("203.0.113.7"),
        "l7Depth 2, not the Module's 1 (which would give 198.51.100.9): {echo}"
    );
}

#[tokio::test]
async fn suppress_envoy_headers_and_preserve_external_request_id() {
    let gw = Gateway::start().await;
    // t_request_header.py's SuppressEnvoyHeadersTest; unit/test_hcm.py.
    let _up = serving(&gw, "se", "/se/").await;
    let headers = [("x-request-id", "client-chosen-id")];
    let reply = gw.send(Method::GET, "/se/", "example.com", &headers).await;
    // Envoy's defaults: its own headers both ways, and a new request id at the edge.
    assert!(reply.header("x-envoy-upstream-service-time").is_some());
    let echo = served_by(&reply, "se");
    assert!(
        seen(&echo, "x-envoy-expected-rq-timeout-ms").is_some(),
        "{echo}"
    );
    assert_ne!(
        seen(&echo, "x-request-id"),
        Some("client-chosen-id"),
        "{echo}"
    );

    gw.write(
        "module.yaml",
        &module("suppress_envoy_headers: true\npreserve_external_request_id: true"),
    );
    let reply = gw
        .wait_for_request(
            Method::GET,
            "/se/",
            "example.com",
            &headers,
            "no x-envoy-upstream-service-time",
            |r| r.status == 200 && r.header("x-envoy-upstream-service-time").is_none(),
        )
        .await;
    let echo = served_by(&reply, "se");
    assert_eq!(
        seen(&echo, "x-envoy-expected-rq-timeout-ms"),
        None,
        "{echo}"
    );
    assert_eq!(
        seen(&echo, "x-request-id"),
        Some("client-chosen-id"),
        "{echo}"
    );
}

#[tokio::test]
async fn a_request_body_over_buffer_max_request_bytes_gets_413() {
    // Emissary's `IRBuffer` (`ir/irbuffer.py`) and `V3HTTPFilter_buffer`: Envoy's buffer filter
    // with `max_request_bytes`, which answers 413 above it.
    let gw = Gateway::start().await;
    let _up = serving(&gw, "buf", "/buf/").await;
    let post = |body: &str| {
        let body = body.to_owned();
        let gw = &gw;
        async move {
            gw.client
                .send(
                    Method::POST,
                    &gw.url("/buf/"),
                    Some("example.com"),
                    &[],
                    Some(body),
                )
                .await
                .unwrap_or_else(|e| panic!("POST /buf/: {e}"))
        }
    };
    let large = "y".repeat(64);
    served_by(&post(&large).await, "buf");

    gw.write("module.yaml", &module("buffer: {max_request_bytes: 16}"));
    let start = Instant::now();
    while post(&large).await.status != 413 {
        assert!(start.elapsed() < WAIT, "timed out waiting for 413");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let echo = served_by(&post("small").await, "buf");
    assert_eq!(echo["body"], "small");
}

#[tokio::test]
async fn allow_chunked_length_serves_a_request_with_both_lengths() {
    let gw = Gateway::start().await;
    // t_chunked_length.py.
    let _up = serving(&gw, "cl", "/cl/").await;
    let request = "POST /cl/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\
                   Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    // Envoy's default: both lengths is a malformed request.
    let answer = gw.raw(request.as_bytes()).await;
    assert_eq!(status(&answer), 400, "{answer}");

    gw.write("module.yaml", &module("allow_chunked_length: true"));
    let answer = gw
        .wait_raw(request.as_bytes(), "the request to be served", |a| {
            status(a) == 200
        })
        .await;
    assert!(answer.contains("\"body\":\"hello\""), "{answer}");
}

#[tokio::test]
async fn listener_idle_timeout_ms_closes_an_idle_connection() {
    let gw = Gateway::start().await;
    // t_listeneridletimeout.py.
    let _up = serving(&gw, "idle", "/idle/").await;
    gw.write(
        "module.yaml",
        &module("listener_idle_timeout_ms: 300\nserver_name: module-applied"),
    );
    gw.wait_for("/idle/", "the Module to be applied", |r| {
        r.header("server") == Some("module-applied")
    })
    .await;

    // A kept-alive connection, answered once, then left idle: Envoy closes it (its default is
    // an hour). Reading to the end returns once it does.
    let mut stream = TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /idle/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await
        .expect("write");
    let start = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "the connection stayed open; read {answer:?}");
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "closed after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_server_name_envoy_would_refuse_is_rejected_naming_the_field_and_the_rest_serves() {
    let gw = Gateway::start().await;
    let _up = serving(&gw, "bad", "/bad/").await;
    // A CR LF in `server_name` would be a header injection; Envoy refuses it, which would NACK
    // every listener. The Module is rejected for that field alone: merge_slashes applies.
    gw.write(
        "module.yaml",
        &module("server_name: \"evil\\r\\nx-injected: 1\"\nmerge_slashes: true"),
    );
    let reply = gw
        .wait_for("//bad//x", "merge_slashes to be applied", |r| {
            r.status == 200
        })
        .await;
    served_by(&reply, "bad");
    assert_eq!(
        reply.header("server"),
        Some("envoy"),
        "{}",
        describe(&reply)
    );

    let start = Instant::now();
    let expected = "rejected: Module default/ambassador (Invalid): spec.config.server_name:";
    while !gw.agent.log().contains(expected) {
        assert!(
            start.elapsed() < WAIT,
            "the agent never logged {expected:?}:\n{}",
            gw.agent.process.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = gw
        .envoy
        .admin_get("/stats?filter=update_rejected$")
        .await
        .expect("Envoy's admin answers")
        .text;
    assert!(
        stats.lines().all(|l| l.ends_with(": 0")),
        "Envoy rejected an update:\n{stats}"
    );
}

#[tokio::test]
async fn proper_case_sends_http1_header_names_in_proper_case() {
    let gw = Gateway::start().await;
    let _up = serving(&gw, "case", "/case/").await;
    let request = b"GET /case/ HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n";
    let answer = gw.raw(request).await;
    assert!(answer.contains("\r\nx-upstream: case\r\n"), "{answer}");

    gw.write(
        "module.yaml",
        &module("proper_case: true\nbuffer_limit_bytes: 65536"),
    );
    let answer = gw
        .wait_raw(request, "Proper-Case header names", |a| {
            a.contains("\r\nX-Upstream: case\r\n")
        })
        .await;
    assert!(answer.contains("\r\nContent-Type: "), "{answer}");
    // The per-connection buffer limit is a listener setting, seen in Envoy's configuration.
    let dump = gw.envoy.config_dump().await.to_string();
    assert!(
        dump.contains(r#""per_connection_buffer_limit_bytes":65536"#),
        "no buffer limit in Envoy's listener"
    );
}

/// Emissary's `defaults` (`irhttpmapping.py`, `IRResource.lookup_default`): a Mapping that does
/// not write a header setting takes `defaults.httpmapping`'s, else `defaults`'; one that writes
/// it, even empty, keeps its own.
#[tokio::test]
async fn the_modules_defaults_give_header_settings_to_mappings_without_their_own() {
    let gw = Gateway::start().await;
    let up = Upstream::start("echo").await;
    gw.write(
        "routes.yaml",
        &[
            route("plain", &up, "prefix: /plain/"),
            route("own", &up, "prefix: /own/\nadd_response_headers: {}"),
        ]
        .concat(),
    );
    gw.wait_upstream("/own/", "echo").await;
    gw.write(
        "module.yaml",
        &module(
            "defaults: {add_request_headers: {x-team: platform}, \
             httpmapping: {add_response_headers: {x-served-by: legate}}}",
        ),
    );
    let reply = gw
        .wait_for("/plain/", "the Module's defaults", |r| {
            r.header("x-served-by") == Some("legate")
        })
        .await;
    assert_eq!(served_by(&reply, "echo")["headers"]["x-team"], "platform");
    let own = served_by(&gw.get("/own/", "example.com").await, "echo");
    assert_eq!(own["headers"]["x-team"], "platform");
    let reply = gw.get("/own/", "example.com").await;
    assert_eq!(reply.header("x-served-by"), None, "{}", describe(&reply));
}

/// Emissary always writes `normalize_path: true` (`v3listener.py`): dot segments are resolved
/// before routing, so `/public/../shop/` is the shop's route and `/shop/../admin` is not.
#[tokio::test]
async fn paths_are_normalized_before_they_are_routed() {
    let gw = Gateway::start().await;
    let _up = serving(&gw, "shop", "/shop/").await;
    let request = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
    };
    let answer = gw.raw(request("/public/../shop/cart").as_bytes()).await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(answer.contains("\"path\":\"/cart\""), "{answer}");
    let answer = gw.raw(request("/shop/../admin").as_bytes()).await;
    assert_eq!(status(&answer), 404, "{answer}");
}

/// Emissary's `regex_max_size` (default 200, `v3route.py`) is the limit on a regex's RE2
/// program, not Envoy's default of 100: the bootstrap lifts Envoy's, the agent holds each regex
/// to the Module's and refuses a larger one on its Mapping, naming the limit.
#[tokio::test]
async fn regex_max_size_is_the_modules_limit_not_envoys_default() {
    let gw = Gateway::start().await;
    let up = Upstream::start("big").await;
    // About 150 RE2 instructions: over Envoy's default 100, within Emissary's 200.
    gw.write(
        "big.yaml",
        &route(
            "big",
            &up,
            "prefix: \"/big/a{140}\"\nprefix_regex: true\nrewrite: \"\"",
        ),
    );
    let path = format!("/big/{}", "a".repeat(140));
    served_by(&gw.wait_status(&path, 200).await, "big");
    assert_eq!(gw.agent.nacks().await, 0.0, "Envoy took the regex");

    gw.write("module.yaml", &module("regex_max_size: 100"));
    gw.wait_status(&path, 404).await;
    assert_eq!(gw.agent.nacks().await, 0.0);
}
