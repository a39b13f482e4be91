//! TLS termination end to end: `kubernetes.io/tls` Secrets in the config directory, certificates
//! made at test time by a test CA, the agent serving them over SDS (delta and state of the world),
//! a real Envoy terminating real TLS, and a rustls client that verifies what it is shown.

mod support;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use legate_agent::bootstrap::AdsApi;
use rustls::pki_types::CertificateDer;
use support::{
    Agent, Client, Envoy, Upstream,
    client_certs::MtlsGateway,
    tls::{Ca, Leaf, TlsClient, TlsReply, secret_yaml},
    write_config,
};

/// How long a configuration change may take to reach Envoy's data path.
const WAIT: Duration = Duration::from_secs(20);

/// A gateway with an HTTPS Listener (XFP), fed by a config directory.
struct Gateway {
    envoy: Envoy,
    agent: Agent,
    port: u16,
    dir: tempfile::TempDir,
    https: TlsClient,
    http: Client,
}

impl Gateway {
    async fn start(ca: &Ca, files: &[(&str, String)], ads: AdsApi) -> Self {
        let MtlsGateway {
            envoy,
            agent,
            port,
            dir,
        } = MtlsGateway::start(files, ads).await;
        Self {
            envoy,
            agent,
            port,
            dir,
            https: ca.client(),
            http: Client::new(),
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn write(&self, name: &str, yaml: &str) {
        write_config(self.dir.path(), name, yaml);
    }

    /// GET `path` over HTTPS with SNI and `Host` `name` until `done` holds; returns the
    /// certificate shown and the answer.
    async fn https_until(
        &self,
        name: &str,
        path: &str,
        done: impl Fn(&CertificateDer<'_>, &TlsReply) -> bool,
    ) -> (CertificateDer<'static>, TlsReply) {
        let start = Instant::now();
        loop {
            let last = match self.https.get(self.addr(), name, path).await {
                Ok((cert, reply)) if done(&cert, &reply) => return (cert, reply),
                Ok((_, reply)) => format!("{} {:?}", reply.status, reply.body),
                Err(e) => format!("error: {e}"),
            };
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for https://{name}{path}; last: {last}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `https://name/` is answered by `upstream` with `leaf`'s certificate.
    async fn wait_served(&self, name: &str, upstream: &str, leaf: &Leaf) -> TlsReply {
        self.https_until(name, "/", |cert, r| {
            r.status == 200 && r.header("x-upstream") == Some(upstream) && *cert == leaf.der
        })
        .await
        .1
    }

    /// Waits until `log` contains `text`.
    async fn wait_log(&self, text: &str) {
        let start = Instant::now();
        while !self.agent.log().contains(text) {
            assert!(
                start.elapsed() < WAIT,
                "the agent never logged {text:?}; log:\n{}",
                self.agent.process.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Plain HTTP on the same Listener.
    async fn http_get(&self, host: &str, path: &str) -> support::Reply {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        self.http
            .get(&url, Some(host))
            .await
            .expect("HTTP through Envoy")
    }
}

fn host(name: &str, hostname: &str, tls_secret: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\n\
         metadata: {{name: {name}, namespace: default}}\n\
         spec: {{hostname: {hostname}, tlsSecret: {tls_secret}}}\n"
    )
}

/// Certificates of `ca` for `a.example.com` and `b.example.com`, and the file holding them as
/// Secrets `tls-a` and `tls-b`.
fn two_certificates(ca: &Ca) -> (Leaf, Leaf, (&'static str, String)) {
    let (leaf_a, leaf_b) = (ca.leaf(&["a.example.com"]), ca.leaf(&["b.example.com"]));
    let secrets = format!(
        "{}---\n{}",
        secret_yaml("default", "tls-a", &leaf_a),
        secret_yaml("default", "tls-b", &leaf_b)
    );
    (leaf_a, leaf_b, ("secrets.yaml", secrets))
}

fn mapping(name: &str, hostname: &str, upstream: &Upstream) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
         metadata: {{name: {name}, namespace: default}}\n\
         spec: {{hostname: {hostname}, prefix: /, service: {}}}\n",
        upstream.service()
    )
}

/// Two TLS Hosts on one HTTPS listener: each name gets its own certificate (by SNI) and its own
/// routes; plain HTTP on the same port gets the Hosts' insecure action, a redirect to HTTPS.
async fn sni_picks_the_certificate_and_cleartext_is_redirected(ads: AdsApi) {
    let ca = Ca::new();
    let (leaf_a, leaf_b, secrets) = two_certificates(&ca);
    let (up_a, up_b) = (Upstream::start("a").await, Upstream::start("b").await);
    let files = [
        secrets,
        (
            "hosts.yaml",
            host("a", "a.example.com", "{name: tls-a}")
                + &host("b", "b.example.com", "{name: tls-b}"),
        ),
        (
            "mappings.yaml",
            mapping("a", "a.example.com", &up_a) + &mapping("b", "b.example.com", &up_b),
        ),
    ];
    let gw = Gateway::start(&ca, &files, ads).await;

    let a = gw.wait_served("a.example.com", "a", &leaf_a).await;
    let echoed: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(
        echoed["headers"]["x-forwarded-proto"], "https",
        "the upstream learns the request was secure: {echoed}"
    );
    gw.wait_served("b.example.com", "b", &leaf_b).await;

    // A name no Host terminates has no certificate: the handshake fails.
    assert!(gw.https.get(gw.addr(), "c.example.com", "/").await.is_err());

    let plain = gw.http_get("a.example.com", "/some/path?q=1").await;
    assert_eq!(plain.status, 301, "{plain:?}");
    assert_eq!(
        plain.header("location"),
        Some("https://a.example.com/some/path?q=1")
    );
    assert!(up_a.requests() > 0 && up_b.requests() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_cleartext_is_redirected_delta() {
    sni_picks_the_certificate_and_cleartext_is_redirected(AdsApi::DeltaGrpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_cleartext_is_redirected_state_of_the_world() {
    sni_picks_the_certificate_and_cleartext_is_redirected(AdsApi::Grpc).await;
}

/// A Host whose Secret is missing, in another namespace, or refused by the loader loses its TLS
/// (with the reason logged) and keeps its cleartext side; the other Host serves throughout.
/// HTTP/2 from clients over TLS: a Host whose TLS offers ALPN `h2` (Emissary's
/// `alpn_protocols`, offered as written) serves HTTP/2; one that offers nothing serves a client
/// asking for `h2` over HTTP/1.1, as Emissary's does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_h2_serves_http2_over_tls() {
    let ca = Ca::new();
    let (leaf_a, leaf_b, secrets) = two_certificates(&ca);
    let up = Upstream::start("up").await;
    let files = [
        secrets,
        (
            "hosts.yaml",
            host("a", "a.example.com", "{name: tls-a}").replace(
                "tlsSecret:",
                "tls: {alpn_protocols: \"h2,http/1.1\"}, tlsSecret:",
            ) + &host("b", "b.example.com", "{name: tls-b}"),
        ),
        (
            "mappings.yaml",
            mapping("a", "a.example.com", &up) + &mapping("b", "b.example.com", &up),
        ),
    ];
    let gw = Gateway::start(&ca, &files, AdsApi::DeltaGrpc).await;
    gw.wait_served("a.example.com", "up", &leaf_a).await;
    gw.wait_served("b.example.com", "up", &leaf_b).await;

    let h2 = ca.client_offering(&["h2", "http/1.1"]);
    let (alpn, reply) = h2
        .get_negotiated(gw.addr(), "a.example.com", "/")
        .await
        .expect("an HTTP/2 answer");
    assert_eq!((alpn.as_deref(), reply.status), (Some("h2"), 200));
    assert_eq!(reply.header("x-upstream"), Some("up"));
    let (alpn, reply) = h2
        .get_negotiated(gw.addr(), "b.example.com", "/")
        .await
        .expect("an HTTP/1.1 answer");
    assert_eq!((alpn, reply.status), (None, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_a_usable_secret_loses_tls_alone() {
    let ca = Ca::new();
    let leaf_a = ca.leaf(&["a.example.com"]);
    let leaf_c = ca.leaf(&["c.example.com"]);
    let up = Upstream::start("a").await;
    let bad = secret_yaml("default", "tls-d", &ca.leaf(&["d.example.com"])).replacen(
        "tls.crt: ",
        "tls.crt: not*base64!",
        1,
    );
    let files = [
        ("secrets.yaml", secret_yaml("default", "tls-a", &leaf_a)),
        ("other.yaml", secret_yaml("other", "tls-c", &leaf_c)),
        ("bad.yaml", bad),
        (
            "hosts.yaml",
            host("a", "a.example.com", "{name: tls-a}")
                + &host("b", "b.example.com", "{name: tls-missing}")
                + &host("c", "c.example.com", "{name: tls-c, namespace: other}")
                + &host("d", "d.example.com", "{name: tls-d}"),
        ),
        (
            "mappings.yaml",
            mapping("a", "a.example.com", &up)
                + &mapping("b", "b.example.com", &up)
                + &mapping("c", "c.example.com", &up)
                + &mapping("d", "d.example.com", &up),
        ),
    ];
    let gw = Gateway::start(&ca, &files, AdsApi::DeltaGrpc).await;
    gw.wait_served("a.example.com", "a", &leaf_a).await;

    gw.wait_log("bad.yaml: document 1 (Secret default/tls-d): data.tls.crt: is not valid base64")
        .await;
    gw.wait_log(
        "rejected: Host default/b (SecretNotFound): TLS is not served, the Host answers cleartext only: \
         tlsSecret: Secret default/tls-missing not found",
    )
    .await;
    gw.wait_log("rejected: Host default/c (RefNotPermitted): TLS is not served, the Host answers cleartext only: tlsSecret: Secret other/tls-c is in another namespace")
        .await;
    gw.wait_log("rejected: Host default/d (SecretNotFound): TLS is not served")
        .await;
    assert!(!gw.agent.log().contains("BEGIN"), "no PEM in the logs");

    for name in ["b.example.com", "c.example.com", "d.example.com"] {
        let e = gw.https.get(gw.addr(), name, "/").await;
        assert!(
            e.is_err(),
            "{name} must have no certificate: {:?}",
            e.map(|r| r.1)
        );
        // The cleartext side follows the Host's insecure action (Redirect).
        let plain = gw.http_get(name, "/").await;
        assert_eq!(plain.status, 301, "{name}: {plain:?}");
    }
}

/// Rewriting a Secret's file rotates the certificate: new connections get the new one, an open
/// connection keeps working, and the listener is not touched (the secret travels alone, SDS).
async fn a_rotated_secret_is_served_without_a_restart_or_a_dropped_connection(ads: AdsApi) {
    let ca = Ca::new();
    let (old, new) = (ca.leaf(&["a.example.com"]), ca.leaf(&["a.example.com"]));
    let up = Upstream::start("a").await;
    let files = [
        ("secret.yaml", secret_yaml("default", "tls-a", &old)),
        ("hosts.yaml", host("a", "a.example.com", "{name: tls-a}")),
        ("mappings.yaml", mapping("a", "a.example.com", &up)),
    ];
    let gw = Gateway::start(&ca, &files, ads).await;
    gw.wait_served("a.example.com", "a", &old).await;
    let mut open = gw.https.connect(gw.addr(), "a.example.com").await.unwrap();
    assert_eq!(open.peer, old.der);
    assert_eq!(open.get("/", "a.example.com").await.unwrap().status, 200);
    let listener_updates = gw.envoy.stat("listener_manager.lds.update_success").await;
    assert!(
        listener_updates.is_some_and(|n| n > 0),
        "{listener_updates:?}"
    );

    gw.write("secret.yaml", &secret_yaml("default", "tls-a", &new));
    gw.wait_served("a.example.com", "a", &new).await;

    let again = open
        .get("/", "a.example.com")
        .await
        .expect("the open connection survives");
    assert_eq!(again.status, 200);
    assert_eq!(
        gw.envoy.stat("listener_manager.lds.update_success").await,
        listener_updates,
        "a rotation changes the secret only, never the listener"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_is_served_without_a_restart_or_a_dropped_connection_delta() {
    a_rotated_secret_is_served_without_a_restart_or_a_dropped_connection(AdsApi::DeltaGrpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_is_served_without_a_restart_or_a_dropped_connection_state_of_the_world() {
    a_rotated_secret_is_served_without_a_restart_or_a_dropped_connection(AdsApi::Grpc).await;
}
