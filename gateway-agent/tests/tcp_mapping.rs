//! TCPMapping: real Envoy forwarding real TCP (and TLS) connections, as Emissary does it
//! (`python/ambassador/src/ambassador/ir/irtcpmapping.py`, `irtcpmappinggroup.py`,
//! `envoy/v3/v3listener.py` `compute_tcpchains`/`finalize_tcp`; its tests:
//! `python/tests/src/tests/kat/t_tcpmapping.py`), and what the IR refuses, with its reasons.
//!
//! Each data-path test has its own gateway and waits for a connection that only the
//! configuration it wrote can serve before it asserts anything else.

mod support;

use std::time::{Duration, Instant};

use legate_agent::ir::{self, Ir, Reason, Settings};
use pretty_assertions::assert_eq;
use support::{
    Upstream, eventually, free_port,
    gateway::{Gateway, WAIT, route},
    tcp::{TcpEcho, exchange, round_trip},
    tls::{Ca, secret_yaml},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCPMapping document in `default`.
fn tcp_mapping(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: TCPMapping\n\
         metadata: {{name: {name}, namespace: default}}\nspec:\n{spec}\n"
    )
}

fn local(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits until a connection to `port` is echoed by the upstream `name`.
async fn wait_served(port: u16, name: &str) {
    let farewell = format!("\nbye from {name}");
    eventually(
        &format!("port {port} forwarded to {name}"),
        WAIT,
        || async {
            match round_trip(local(port), b"ping").await {
                Ok((echo, bye)) if echo == b"ping" && bye == farewell => Some(()),
                _ => None,
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_tcp_mapping_forwards_bytes_both_ways_and_a_half_close() {
    let gw = Gateway::start().await;
    let db = TcpEcho::start("db").await;
    let port = free_port();
    gw.write(
        "db.yaml",
        &tcp_mapping("db", &format!("  port: {port}\n  service: {}", db.addr)),
    );
    wait_served(port, "db").await;

    // The client writes, reads the echo, then half-closes: the upstream sees the end of its
    // input and can still answer (its farewell) before it closes in turn.
    let (echo, bye) = round_trip(local(port), b"hello, upstream")
        .await
        .expect("a connection through Envoy");
    assert_eq!(echo, b"hello, upstream");
    assert_eq!(bye, "\nbye from db");
    assert!(
        String::from_utf8_lossy(&db.received()).contains("hello, upstream"),
        "the upstream got the bytes as sent"
    );
    assert_eq!(gw.agent.nacks().await, 0.0);
}

#[tokio::test]
async fn a_tcp_mapping_naming_a_kubernetes_service_reaches_its_ready_endpoints() {
    // As a Mapping's `service`: a Service of the snapshot is served from its endpoints (EDS),
    // on the Service port named, at each endpoint's target port.
    let gw = Gateway::start().await;
    let db = TcpEcho::start("pod").await;
    let port = free_port();
    gw.write(
        "db.yaml",
        &format!(
            "---
apiVersion: v1
kind: Service
metadata: {{name: db, namespace: default}}
spec: {{ports: [{{name: pg, port: 5432}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: db-x7k2p, namespace: default, labels: {{kubernetes.io/service-name: db}}}}
addressType: IPv4
ports: [{{name: pg, port: {}}}]
endpoints: [{{addresses: [\"127.0.0.1\"], conditions: {{ready: true}}}}]
{}",
            db.addr.port(),
            tcp_mapping("db", &format!("  port: {port}\n  service: db:5432"))
        ),
    );
    wait_served(port, "pod").await;
    assert_eq!(gw.agent.nacks().await, 0.0);
}

#[tokio::test]
async fn tcp_mappings_on_one_port_share_its_connections_by_weight() {
    let gw = Gateway::start().await;
    let (blue, green) = (TcpEcho::start("blue").await, TcpEcho::start("green").await);
    let port = free_port();
    gw.write(
        "blue.yaml",
        &tcp_mapping(
            "blue",
            &format!("  port: {port}\n  service: {}\n  weight: 50", blue.addr),
        ),
    );
    gw.write(
        "green.yaml",
        &tcp_mapping(
            "green",
            &format!("  port: {port}\n  service: {}", green.addr),
        ),
    );
    // Half each: after enough connections, each has had some (1 in 2^k to fail after k).
    eventually("connections reaching both upstreams", WAIT, || async {
        let _ = round_trip(local(port), b"x").await;
        (blue.connections() > 0 && green.connections() > 0).then_some(())
    })
    .await;
    assert_eq!(gw.agent.nacks().await, 0.0);
}

#[tokio::test]
async fn idle_timeout_ms_closes_a_connection_idle_that_long() {
    let gw = Gateway::start().await;
    let db = TcpEcho::start("idle").await;
    let port = free_port();
    gw.write(
        "db.yaml",
        &tcp_mapping(
            "idle",
            &format!(
                "  port: {port}\n  service: {}\n  idle_timeout_ms: \"500\"",
                db.addr
            ),
        ),
    );
    wait_served(port, "idle").await;

    let mut stream = tokio::net::TcpStream::connect(local(port)).await.unwrap();
    stream.write_all(b"x").await.unwrap();
    let mut echo = [0u8; 1];
    stream.read_exact(&mut echo).await.unwrap();
    let idle_since = Instant::now();
    // Envoy's default is an hour: a close within seconds is the TCPMapping's.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .expect("Envoy closes the idle connection");
    assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
    assert!(
        idle_since.elapsed() >= Duration::from_millis(400),
        "closed after {:?}, before the timeout",
        idle_since.elapsed()
    );
}

#[tokio::test]
async fn sni_picks_the_tcp_mapping_terminating_tls_for_one_host_and_passing_it_through_for_another()
{
    let gw = Gateway::start().await;
    let ca = Ca::new();
    // `term.example.com`: a Host with a certificate for it, so Envoy terminates TLS and the
    // upstream speaks cleartext. `pass.example.com`: nothing terminates it, so the upstream
    // (a TLS server) gets the client's own handshake.
    let term_leaf = ca.leaf(&["term.example.com"]);
    let pass_leaf = ca.leaf(&["pass.example.com"]);
    let term = TcpEcho::start("term").await;
    let pass = TcpEcho::start_tls("pass", &pass_leaf).await;
    let port = free_port();
    gw.write(
        "tls.yaml",
        &format!(
            "{}---\napiVersion: getambassador.io/v3alpha1\nkind: Host\n\
             metadata: {{name: term, namespace: default}}\n\
             spec: {{hostname: term.example.com, tlsSecret: {{name: term-cert}}}}\n{}{}",
            secret_yaml("default", "term-cert", &term_leaf),
            tcp_mapping(
                "term",
                &format!(
                    "  port: {port}\n  host: term.example.com\n  service: {}",
                    term.addr
                )
            ),
            tcp_mapping(
                "pass",
                &format!(
                    "  port: {port}\n  host: pass.example.com\n  service: {}",
                    pass.addr
                )
            ),
        ),
    );
    let client = ca.client();
    let exchange_with = |sni: &'static str| {
        let client = client.clone();
        async move {
            let mut stream = client.connect_stream(local(port), sni).await?;
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first().cloned());
            let (echo, bye) = exchange(&mut stream, b"hello").await?;
            std::io::Result::Ok((peer, echo, bye))
        }
    };

    let (peer, echo, bye) = eventually("TLS terminated for term.example.com", WAIT, || async {
        exchange_with("term.example.com").await.ok()
    })
    .await;
    assert_eq!(
        peer,
        Some(term_leaf.der.clone()),
        "Envoy presents the Host's certificate"
    );
    assert_eq!(
        (echo.as_slice(), bye.as_str()),
        (&b"hello"[..], "\nbye from term")
    );
    assert!(
        String::from_utf8_lossy(&term.received()).contains("hello"),
        "the upstream of a terminated chain reads cleartext"
    );

    let (peer, echo, bye) = exchange_with("pass.example.com")
        .await
        .expect("TLS passed through to the upstream");
    assert_eq!(
        peer,
        Some(pass_leaf.der.clone()),
        "the upstream's own certificate"
    );
    assert_eq!(
        (echo.as_slice(), bye.as_str()),
        (&b"hello"[..], "\nbye from pass")
    );
    assert_eq!(pass.sni(), [Some("pass.example.com".to_owned())]);

    // A name neither matches reaches neither.
    assert!(exchange_with("other.example.com").await.is_err());
    assert_eq!(gw.agent.nacks().await, 0.0);
}

#[tokio::test]
async fn a_tcp_mapping_on_a_listeners_port_is_refused_and_http_keeps_serving() {
    let gw = Gateway::start().await;
    let web = Upstream::start("web").await;
    gw.write("web.yaml", &route("web", &web, "prefix: /web/"));
    gw.wait_upstream("/web/", "web").await;
    let db = TcpEcho::start("db").await;
    let port = free_port();
    gw.write(
        "tcp.yaml",
        &format!(
            "{}{}",
            tcp_mapping(
                "clash",
                &format!("  port: {}\n  service: {}", gw.port, db.addr)
            ),
            tcp_mapping("db", &format!("  port: {port}\n  service: {}", db.addr)),
        ),
    );
    // Written together: once `db` is served, so is whatever `clash` became.
    wait_served(port, "db").await;
    let reply = gw.get("/web/", "example.com").await;
    assert_eq!((reply.status, reply.upstream()), (200, Some("web")));
    assert_eq!(gw.agent.nacks().await, 0.0);
}

#[tokio::test]
async fn bad_tcp_mappings_are_refused_and_the_others_keep_serving() {
    let gw = Gateway::start().await;
    let db = TcpEcho::start("good").await;
    let port = free_port();
    let bad =
        |name: &str, spec: &str| tcp_mapping(name, &format!("  port: {}\n{spec}", free_port()));
    gw.write(
        "tcp.yaml",
        &[
            bad("no-port", "  service: 127.0.0.1"),
            bad("scheme", "  service: http://127.0.0.1:80"),
            bad("bad-host", "  host: \"a b.com\"\n  service: 127.0.0.1:80"),
            bad(
                "bad-address",
                "  address: localhost\n  service: 127.0.0.1:80",
            ),
            tcp_mapping("good", &format!("  port: {port}\n  service: {}", db.addr)),
        ]
        .concat(),
    );
    wait_served(port, "good").await;
    assert_eq!(gw.agent.nacks().await, 0.0);
}

// ---------------------------------------------------------------------------------------------
// What the IR refuses, and why

fn build(yaml: &str) -> Ir {
    let loaded = legate_crds::loader::load_str("test.yaml", yaml).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    ir::build(&loaded.resources, &Settings::default())
}

/// The refusals of one resource: `(reason, message)`.
fn refusals(ir: &Ir, object: &str) -> Vec<(Reason, String)> {
    ir.rejections
        .iter()
        .filter(|r| r.object.to_string() == object)
        .map(|r| (r.reason, r.message.clone()))
        .collect()
}

const LISTENER: &str = "---
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http, namespace: default}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
";

#[test]
fn each_bad_field_is_refused_with_its_name_and_the_rest_is_served() {
    let ir = build(
        &[
            tcp_mapping("no-port", "  port: 9001\n  service: db"),
            tcp_mapping("scheme", "  port: 9002\n  service: https://db:443"),
            tcp_mapping(
                "bad-host",
                "  port: 9003\n  host: \"db:5432\"\n  service: db:5432",
            ),
            tcp_mapping(
                "bad-address",
                "  port: 9004\n  address: any\n  service: db:5432",
            ),
            tcp_mapping("context", "  port: 9005\n  tls: origin\n  service: db:5432"),
            tcp_mapping("bad-service", "  port: 9006\n  service: \"db:5432/path\""),
            tcp_mapping("good", "  port: 9007\n  service: db:5432"),
        ]
        .concat(),
    );
    let reason_and_start = |object: &str| -> Vec<(Reason, String)> {
        refusals(&ir, object)
            .into_iter()
            .map(|(r, m)| (r, m.split(':').next().unwrap_or_default().to_owned()))
            .collect()
    };
    assert_eq!(
        reason_and_start("TCPMapping default/no-port"),
        [(Reason::Invalid, "service \"db\"".to_owned())]
    );
    assert_eq!(
        reason_and_start("TCPMapping default/scheme"),
        [(Reason::Invalid, "service \"https".to_owned())]
    );
    assert_eq!(
        reason_and_start("TCPMapping default/bad-host"),
        [(Reason::Invalid, "host \"db".to_owned())]
    );
    assert_eq!(
        reason_and_start("TCPMapping default/bad-address"),
        [(Reason::Invalid, "address \"any\"".to_owned())]
    );
    assert_eq!(
        reason_and_start("TCPMapping default/context"),
        [(Reason::NotSupported, "tls".to_owned())]
    );
    assert_eq!(
        reason_and_start("TCPMapping default/bad-service"),
        [(Reason::Invalid, "service \"db".to_owned())]
    );
    let ports: Vec<u16> = ir.tcp_listeners.iter().map(|l| l.port).collect();
    assert_eq!(ports, [9007]);
}

#[test]
fn a_port_out_of_range_is_refused_by_the_loader() {
    for port in ["0", "65536"] {
        let loaded = legate_crds::loader::load_str(
            "test.yaml",
            &tcp_mapping("db", &format!("  port: {port}\n  service: db:5432")),
        )
        .unwrap();
        assert!(loaded.resources.is_empty(), "port {port}");
        let errors = format!("{:?}", loaded.errors);
        assert!(errors.contains("port"), "port {port}: {errors}");
    }
}

#[test]
fn of_a_listener_and_tcp_mappings_on_one_port_the_older_keeps_it() {
    // Without timestamps (a directory of YAML) the Listener keeps its port.
    let ir = build(&format!(
        "{LISTENER}{}",
        tcp_mapping("db", "  port: 8080\n  service: db:5432")
    ));
    assert_eq!(
        refusals(&ir, "TCPMapping default/db"),
        [(
            Reason::Conflict,
            "port 8080 is already served by the HTTP Listener default/http; a port serves \
             either HTTP or TCPMappings: use another port"
                .to_owned()
        )]
    );
    assert!(ir.tcp_listeners.is_empty());
    assert_eq!(ir.listeners.len(), 1);

    // A TCPMapping serving the port before the Listener was made keeps it.
    let dated = |kind: &str, name: &str, created: &str, spec: &str| {
        format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: {kind}\n\
             metadata: {{name: {name}, namespace: default, creationTimestamp: \"{created}\"}}\n\
             spec: {spec}\n"
        )
    };
    let ir = build(
        &[
            dated(
                "Listener",
                "http",
                "2024-02-01T00:00:00Z",
                "{port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}",
            ),
            dated("TCPMapping", "db", "2024-01-01T00:00:00Z", "{port: 8080, service: \"db:5432\"}"),
        ]
        .concat(),
    );
    assert_eq!(
        refusals(&ir, "Listener default/http"),
        [(
            Reason::Conflict,
            "port 8080 is already served by TCPMapping default/db (older); a port serves \
             either HTTP or TCPMappings"
                .to_owned()
        )]
    );
    assert!(ir.listeners.is_empty());
    assert_eq!(ir.tcp_listeners.len(), 1);
}

#[test]
fn a_group_agrees_on_what_it_applies_as_a_whole_and_binds_one_address_per_port() {
    let ir = build(
        &[
            tcp_mapping(
                "a",
                "  port: 9000\n  service: a:1\n  idle_timeout_ms: \"1000\"",
            ),
            tcp_mapping(
                "b",
                "  port: 9000\n  service: b:1\n  idle_timeout_ms: \"2000\"",
            ),
            tcp_mapping("c", "  port: 9000\n  address: 127.0.0.1\n  service: c:1"),
            tcp_mapping(
                "d",
                "  port: 9000\n  service: d:1\n  weight: 80\n  idle_timeout_ms: \"1000\"",
            ),
            tcp_mapping(
                "e",
                "  port: 9000\n  service: e:1\n  weight: 30\n  idle_timeout_ms: \"1000\"",
            ),
        ]
        .concat(),
    );
    let reasons: Vec<(String, Reason)> = ir
        .rejections
        .iter()
        .map(|r| (r.object.name.clone(), r.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("b".to_owned(), Reason::Conflict),
            ("c".to_owned(), Reason::Conflict),
            ("e".to_owned(), Reason::Conflict)
        ],
        "{:#?}",
        ir.rejections
    );
    // `a` without a weight shares what `d` leaves.
    let chain = &ir.tcp_listeners[0].chains[0];
    let weights: Vec<u32> = chain.clusters.iter().map(|(_, w)| *w).collect();
    assert_eq!(weights, [20, 80]);
    assert_eq!(chain.idle_timeout, Some(Duration::from_millis(1000)));
}

#[test]
fn a_host_whose_tls_is_broken_refuses_the_tcp_mapping_rather_than_passing_tls_through() {
    let ir = build(&format!(
        "---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {{name: db, namespace: default}}
spec: {{hostname: db.example.com, tlsSecret: {{name: missing}}}}
{}",
        tcp_mapping(
            "db",
            "  port: 9000\n  host: db.example.com\n  service: db:5432"
        )
    ));
    let refused = refusals(&ir, "TCPMapping default/db");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, Reason::SecretNotFound);
    assert!(ir.tcp_listeners.is_empty());
}

#[test]
fn validate_reports_each_tcp_mapping_accepted_or_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tcp.yaml"),
        [
            LISTENER.to_owned(),
            tcp_mapping("good", "  port: 9000\n  service: db:5432"),
            tcp_mapping("clash", "  port: 8080\n  service: db:5432"),
            tcp_mapping(
                "bad-host",
                "  port: 9001\n  host: \"*\"\n  service: db:5432",
            ),
            tcp_mapping("port-zero", "  port: 0\n  service: db:5432"),
        ]
        .concat(),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_legate-agent"))
        .args(["validate", dir.path().to_str().unwrap()])
        .output()
        .expect("run legate-agent");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for expected in [
        "ok: TCPMapping default/good",
        "error: TCPMapping default/clash (Conflict): port 8080 is already served by the HTTP \
         Listener default/http",
        "error: TCPMapping default/bad-host (Invalid): host \"*\": must be a DNS name",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("port-zero") && l.contains("port")),
        "the loader names the port: {text}"
    );
}

#[test]
fn a_tcp_or_tls_listener_names_its_ports_statistics_and_says_when_no_tcp_mapping_uses_it() {
    // Emissary YAML often declares the Listener a TCPMapping uses (Emissary synthesizes one
    // otherwise, as here); its `statsPrefix` applies, and one no TCPMapping uses says so
    // (Emissary: "No matching Hosts/TCPMappings found, disabling!").
    let listener = |name: &str, spec: &str| {
        format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Listener\n\
             metadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
        )
    };
    let ir = build(
        &[
            listener(
                "db",
                "{port: 5432, protocol: TCP, securityModel: SECURE, statsPrefix: postgres, hostBinding: {namespace: {from: SELF}}}",
            ),
            listener("idle", "{port: 5433, protocol: TLS, securityModel: SECURE, hostBinding: {namespace: {from: SELF}}}"),
            listener(
                "proxied",
                "{port: 5434, protocolStack: [PROXY, TCP], securityModel: SECURE, hostBinding: {namespace: {from: SELF}}}",
            ),
            tcp_mapping("db", "  port: 5432\n  service: db:5432"),
        ]
        .concat(),
    );
    let prefixes: Vec<(u16, &str)> = ir
        .tcp_listeners
        .iter()
        .map(|l| (l.port, l.stats_prefix.as_str()))
        .collect();
    assert_eq!(prefixes, [(5432, "postgres")]);
    let idle: Vec<(Reason, String)> = ir
        .unreachable
        .iter()
        .filter(|r| r.object.to_string() == "Listener default/idle")
        .map(|r| (r.reason, r.message.clone()))
        .collect();
    assert_eq!(
        idle,
        [(
            Reason::NoHost,
            "no TCPMapping on port 5433: nothing is served there".to_owned()
        )]
    );
    assert!(refusals(&ir, "Listener default/db").is_empty());
    assert_eq!(
        refusals(&ir, "Listener default/proxied")
            .iter()
            .map(|(r, _)| *r)
            .collect::<Vec<_>>(),
        [Reason::NotSupported]
    );
}
