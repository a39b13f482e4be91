//! A Listener's protocol stack and HTTP/2 setting on the data path: `HTTPPROXY` (or a
//! `protocolStack` with `PROXY`) reads the PROXY protocol header a load balancer puts before the
//! request, as Emissary's does (`python/ambassador/src/ambassador/ir/irlistener.py`,
//! `envoy/v3/v3listener.py`: Envoy's `proxy_protocol` listener filter), and
//! `http2MaxConcurrentStreams` bounds the streams of an HTTP/2 connection.

mod support;

use pretty_assertions::assert_eq;
use support::{
    Upstream, eventually,
    gateway::{Gateway, HOST_ANY, WAIT, raw_on, raw_status, route},
};

/// A gateway whose Listener has `listener_spec`, serving the echo upstream at `/shop/`.
async fn gateway(listener_spec: &str) -> (Gateway, Upstream) {
    let gw = Gateway::start_with(HOST_ANY, listener_spec).await;
    let up = Upstream::start("shop").await;
    gw.write("shop.yaml", &route("shop", &up, "prefix: /shop/"));
    (gw, up)
}

const REQUEST: &str = "GET /shop/ HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n";

/// The echo's JSON in a raw answer.
fn echo(answer: &str) -> serde_json::Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON ({e}): {answer}"))
}

#[tokio::test]
async fn a_proxy_listener_takes_the_client_address_from_the_proxy_protocol_header() {
    let (gw, _up) = gateway("protocolStack: [PROXY, HTTP, TCP], ").await;

    // PROXY protocol v1 (text), as an AWS NLB or HAProxy sends it.
    let v1 = format!(
        "PROXY TCP4 203.0.113.9 127.0.0.1 41234 {}\r\n{REQUEST}",
        gw.port
    );
    let answer = gw
        .wait_raw(v1.as_bytes(), "the PROXY listener to route", |a| {
            raw_status(a) == 200
        })
        .await;
    // The header's source is the client Envoy appends to X-Forwarded-For.
    assert_eq!(
        echo(&answer)["headers"]["x-forwarded-for"],
        "203.0.113.9",
        "{answer}"
    );

    // v2 (binary): signature, PROXY command over TCP/IPv4, 12 address bytes.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[198, 51, 100, 4, 127, 0, 0, 1]);
    v2.extend_from_slice(&50_000u16.to_be_bytes());
    v2.extend_from_slice(&gw.port.to_be_bytes());
    v2.extend_from_slice(REQUEST.as_bytes());
    let answer = gw.raw(&v2).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert_eq!(echo(&answer)["headers"]["x-forwarded-for"], "198.51.100.4");

    // A connection without the header is closed unanswered: it did not come through the
    // load balancer.
    assert_eq!(gw.raw(REQUEST.as_bytes()).await, "");
}

#[tokio::test]
async fn the_httpproxy_protocol_is_the_same_stack() {
    let (gw, _up) = gateway("").await;
    // The default gateway's Listener says `protocol: HTTP`; a second one says HTTPPROXY.
    let port = support::free_port();
    gw.write(
        "proxied.yaml",
        &format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Listener\n\
             metadata: {{name: proxied, namespace: default}}\n\
             spec: {{port: {port}, protocol: HTTPPROXY, securityModel: XFP, \
             hostBinding: {{namespace: {{from: ALL}}}}}}\n"
        ),
    );
    let v1 = format!("PROXY TCP4 192.0.2.1 127.0.0.1 1111 {port}\r\n{REQUEST}");
    let answer = eventually("the HTTPPROXY listener to route", WAIT, || async {
        let answer = raw_on(port, v1.as_bytes()).await;
        (raw_status(&answer) == 200).then_some(answer)
    })
    .await;
    assert_eq!(echo(&answer)["headers"]["x-forwarded-for"], "192.0.2.1");
}

#[tokio::test]
async fn http2_max_concurrent_streams_reaches_the_listener() {
    let (gw, _up) = gateway("http2MaxConcurrentStreams: 7, ").await;
    gw.wait_upstream("/shop/", "shop").await;
    let dump = gw.envoy.config_dump().await.to_string();
    assert!(
        dump.contains(r#""max_concurrent_streams":7"#),
        "no max_concurrent_streams 7 in Envoy's config"
    );
    // And HTTP/2 is served on it.
    let reply = gw
        .client
        .get_h2(&gw.url("/shop/"), Some("example.com"))
        .await
        .expect("an HTTP/2 answer");
    assert_eq!(reply.status, 200);
}
