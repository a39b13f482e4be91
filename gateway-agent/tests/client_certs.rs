//! Client certificates at the edge (mTLS termination) and `x-forwarded-client-cert`, end to end:
//! CAs and client certificates made at test time, `Opaque` CA and CRL Secrets as Emissary reads
//! them (`tls.crt`, `crl.pem`: `fetch/secret.py`), the agent serving the CA as its own SDS
//! validation-context secret, a real Envoy verifying real client certificates.
//!
//! Emissary's behaviour pinned here: `ir/irtlscontext.py` `resolve` (CA from the `ca_secret`'s
//! `tls.crt`, CRL from the `crl_secret`'s `crl.pem`), `envoy/v3/v3tls.py` `add_context`
//! (`trusted_ca`, `crl`, `cert_required` → `require_client_certificate`; without it a certificate
//! is requested and verified if presented), `envoy/v3/v3listener.py` (the Module's
//! `forward_client_cert_details` and `set_current_client_cert_details` on the HCM).

mod support;

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use legate_agent::bootstrap::AdsApi;
use support::{
    Upstream,
    client_certs::{
        MtlsGateway, ca_secret_yaml, client, client_leaf, crl_pem, crl_secret_yaml,
        opaque_secret_yaml,
    },
    gateway::{WAIT, module},
    tls::{Ca, secret_yaml},
};

/// A Host terminating TLS with `tls-<name>` and the TLSContext `ctx-<name>` (its `extra`
/// settings: `ca_secret`, ...), and a Mapping to `upstream`.
fn mtls_host(name: &str, extra: &str, upstream: &Upstream) -> String {
    format!(
        "---
apiVersion: getambassador.io/v3alpha1
kind: TLSContext
metadata: {{name: ctx-{name}, namespace: default}}
spec: {{hosts: [{name}.example.com], secret: tls-{name}{extra}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {{name: {name}, namespace: default}}
spec: {{hostname: {name}.example.com, tlsSecret: {{name: tls-{name}}}, tlsContext: {{name: ctx-{name}}}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: {name}, namespace: default}}
spec: {{hostname: {name}.example.com, prefix: /, service: {}}}
",
        upstream.service()
    )
}

/// The server certificate of `<name>.example.com`, signed by `server_ca`.
fn server_secret(server_ca: &Ca, name: &str) -> String {
    format!(
        "---\n{}",
        secret_yaml(
            "default",
            &format!("tls-{name}"),
            &server_ca.leaf(&[&format!("{name}.example.com")])
        )
    )
}

/// `cert_required: true`: a client certificate signed by the CA is served, and with
/// `SANITIZE_SET` and `subject`/`uri` the upstream sees its subject, URI and hash in
/// `x-forwarded-client-cert`; no certificate, or one of another CA, is refused at the handshake.
async fn a_certificate_of_the_ca_is_required_and_forwarded(ads: AdsApi) {
    let (server_ca, client_ca, other_ca) =
        (Ca::new(), Ca::named("client CA"), Ca::named("other CA"));
    let up = Upstream::start("a").await;
    let files = [
        (
            "secrets.yaml",
            server_secret(&server_ca, "a") + &ca_secret_yaml("default", "client-ca", &[&client_ca]),
        ),
        (
            "hosts.yaml",
            mtls_host("a", ", ca_secret: client-ca, cert_required: true", &up),
        ),
        (
            "module.yaml",
            module(
                "forward_client_cert_details: SANITIZE_SET
set_current_client_cert_details: {subject: true, uri: true}",
            ),
        ),
    ];
    let gw = MtlsGateway::start(&files, ads).await;
    let alice = client_leaf(&client_ca, "alice", "spiffe://example.com/alice", 1);

    let reply = gw
        .wait_served(&client(&server_ca, Some(&alice)), "a.example.com", "a")
        .await;
    let echoed: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let xfcc = echoed["headers"]["x-forwarded-client-cert"]
        .as_str()
        .unwrap_or_else(|| panic!("the upstream sees x-forwarded-client-cert: {echoed}"));
    // Envoy's XFCC: `Hash=<sha256 of the DER>;Subject="CN=alice";URI=spiffe://...`.
    assert!(xfcc.starts_with("Hash="), "{xfcc}");
    assert!(xfcc.contains(";Subject=\"CN=alice\""), "{xfcc}");
    assert!(xfcc.contains(";URI=spiffe://example.com/alice"), "{xfcc}");

    let anonymous = gw.get(&client(&server_ca, None), "a.example.com").await;
    assert!(anonymous.is_err(), "no certificate: {anonymous:?}");
    gw.wait_ssl_failure("fail_verify_no_cert").await;

    let mallory = client_leaf(&other_ca, "mallory", "spiffe://example.com/mallory", 1);
    let stranger = gw
        .get(&client(&server_ca, Some(&mallory)), "a.example.com")
        .await;
    assert!(stranger.is_err(), "another CA's certificate: {stranger:?}");
    gw.wait_ssl_failure("fail_verify_error").await;
    assert_eq!(gw.agent.nacks().await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_the_ca_is_required_and_forwarded_delta() {
    a_certificate_of_the_ca_is_required_and_forwarded(AdsApi::DeltaGrpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_the_ca_is_required_and_forwarded_state_of_the_world() {
    a_certificate_of_the_ca_is_required_and_forwarded(AdsApi::Grpc).await;
}

/// Without `cert_required` (a Host's inline `tls` this time), a client certificate is asked for
/// and verified when presented: a client without one is served, one with another CA's is
/// refused. Without the Module's settings Envoy sanitizes: no XFCC reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cert_required_a_certificate_is_optional_but_verified() {
    let (server_ca, client_ca, other_ca) =
        (Ca::new(), Ca::named("client CA"), Ca::named("other CA"));
    let up = Upstream::start("b").await;
    let files = [
        (
            "secrets.yaml",
            server_secret(&server_ca, "b") + &ca_secret_yaml("default", "client-ca", &[&client_ca]),
        ),
        (
            "hosts.yaml",
            format!(
                "apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {{name: b, namespace: default}}
spec: {{hostname: b.example.com, tlsSecret: {{name: tls-b}}, tls: {{ca_secret: client-ca}}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: b, namespace: default}}
spec: {{hostname: b.example.com, prefix: /, service: {}}}
",
                up.service()
            ),
        ),
    ];
    let gw = MtlsGateway::start(&files, AdsApi::DeltaGrpc).await;

    let reply = gw
        .wait_served(&client(&server_ca, None), "b.example.com", "b")
        .await;
    let echoed: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert!(
        echoed["headers"].get("x-forwarded-client-cert").is_none(),
        "{echoed}"
    );
    let bob = client_leaf(&client_ca, "bob", "spiffe://example.com/bob", 1);
    let reply = gw
        .get(&client(&server_ca, Some(&bob)), "b.example.com")
        .await
        .expect("a certificate of the CA is accepted");
    assert_eq!(reply.status, 200);
    let mallory = client_leaf(&other_ca, "mallory", "spiffe://example.com/mallory", 1);
    let stranger = gw
        .get(&client(&server_ca, Some(&mallory)), "b.example.com")
        .await;
    assert!(stranger.is_err(), "another CA's certificate: {stranger:?}");
    gw.wait_ssl_failure("fail_verify_error").await;
}

/// `crl_secret`: a certificate the CA revoked (serial 2) is refused, the others are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused() {
    let (server_ca, client_ca) = (Ca::new(), Ca::named("client CA"));
    let up = Upstream::start("c").await;
    let files = [
        (
            "secrets.yaml",
            server_secret(&server_ca, "c")
                + &ca_secret_yaml("default", "client-ca", &[&client_ca])
                + &crl_secret_yaml("default", "client-crl", &crl_pem(&client_ca, &[2])),
        ),
        (
            "hosts.yaml",
            mtls_host(
                "c",
                ", ca_secret: client-ca, crl_secret: client-crl, cert_required: true",
                &up,
            ),
        ),
    ];
    let gw = MtlsGateway::start(&files, AdsApi::DeltaGrpc).await;
    let good = client_leaf(&client_ca, "good", "spiffe://example.com/good", 1);
    let revoked = client_leaf(&client_ca, "revoked", "spiffe://example.com/revoked", 2);

    gw.wait_served(&client(&server_ca, Some(&good)), "c.example.com", "c")
        .await;
    let refused = gw
        .get(&client(&server_ca, Some(&revoked)), "c.example.com")
        .await;
    assert!(refused.is_err(), "a revoked certificate: {refused:?}");
    gw.wait_ssl_failure("fail_verify_error").await;
}

/// Client-certificate settings that cannot be served lose that Host's TLS alone, with the reason
/// naming the field; the Host with good settings serves throughout and Envoy never NACKs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_client_certificate_settings_lose_that_hosts_tls_alone() {
    let (server_ca, client_ca) = (Ca::new(), Ca::named("client CA"));
    let up = Upstream::start("a").await;
    let mut secrets = ca_secret_yaml("default", "client-ca", &[&client_ca])
        + &opaque_secret_yaml(
            "default",
            "garbage-ca",
            &[(
                "tls.crt",
                "-----BEGIN CERTIFICATE-----\nbm9w\n-----END CERTIFICATE-----\n",
            )],
        );
    for name in ["a", "b", "c", "d", "e"] {
        secrets += &server_secret(&server_ca, name);
    }
    let files = [
        ("secrets.yaml", secrets),
        (
            "hosts.yaml",
            mtls_host("a", ", ca_secret: client-ca, cert_required: true", &up)
                + &mtls_host("b", ", ca_secret: missing-ca", &up)
                + &mtls_host("c", ", ca_secret: garbage-ca", &up)
                + &mtls_host("d", ", crl_secret: client-ca", &up)
                + &mtls_host("e", ", cacert_chain_file: /etc/ca.pem", &up),
        ),
    ];
    let gw = MtlsGateway::start(&files, AdsApi::DeltaGrpc).await;
    let alice = client_leaf(&client_ca, "alice", "spiffe://example.com/alice", 1);
    gw.wait_served(&client(&server_ca, Some(&alice)), "a.example.com", "a")
        .await;

    let refused = "TLS is not served, the Host answers cleartext only";
    gw.wait_log(&format!(
        "rejected: Host default/b (SecretNotFound): {refused}: ca_secret: Secret \
         default/missing-ca not found"
    ))
    .await;
    gw.wait_log("(Secret default/garbage-ca): data.tls.crt:")
        .await;
    gw.wait_log(&format!(
        "rejected: Host default/c (SecretNotFound): {refused}: ca_secret: Secret \
         default/garbage-ca not found"
    ))
    .await;
    gw.wait_log(&format!(
        "rejected: Host default/d (Invalid): {refused}: crl_secret: a CRL needs the CA"
    ))
    .await;
    gw.wait_log(&format!(
        "rejected: Host default/e (NotSupported): {refused}: cacert_chain_file: CA certificates \
         reach Envoy over SDS only"
    ))
    .await;
    for name in ["b", "c", "d", "e"] {
        let host = format!("{name}.example.com");
        let e = gw.get(&client(&server_ca, Some(&alice)), &host).await;
        assert!(e.is_err(), "{host} must have no TLS: {e:?}");
    }
    assert_eq!(gw.agent.nacks().await, 0.0);
    assert!(!gw.agent.log().contains("BEGIN"), "no PEM in the logs");
}

/// Rotating the CA under load: clients with a CA1 certificate keep sending (some on kept-alive
/// connections, some on a new connection each time) while `ca_secret` becomes the CA1+CA2
/// bundle; then a CA2 certificate is accepted. Not one request fails, no kept-alive connection
/// is closed, and the listener is never updated (the CA travels alone, as an SDS secret).
async fn rotating_the_ca_under_load_fails_no_request(ads: AdsApi) {
    let (server_ca, ca1, ca2) = (
        Ca::new(),
        Ca::named("client CA 1"),
        Ca::named("client CA 2"),
    );
    let up = Upstream::start("a").await;
    let files = [
        ("secrets.yaml", server_secret(&server_ca, "a")),
        ("ca.yaml", ca_secret_yaml("default", "client-ca", &[&ca1])),
        (
            "hosts.yaml",
            mtls_host("a", ", ca_secret: client-ca, cert_required: true", &up),
        ),
    ];
    let gw = Arc::new(MtlsGateway::start(&files, ads).await);
    let one = client(
        &server_ca,
        Some(&client_leaf(&ca1, "one", "spiffe://x/one", 1)),
    );
    let two = client(
        &server_ca,
        Some(&client_leaf(&ca2, "two", "spiffe://x/two", 1)),
    );
    gw.wait_served(&one, "a.example.com", "a").await;
    assert!(
        gw.get(&two, "a.example.com").await.is_err(),
        "CA2 is not trusted yet"
    );
    let listener_updates = gw.envoy.stat("listener_manager.lds.update_success").await;
    assert!(
        listener_updates.is_some_and(|n| n > 0),
        "{listener_updates:?}"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for n in 0..4 {
        let (gw, one, stop) = (gw.clone(), one.clone(), stop.clone());
        let (served, failed) = (served.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            let keep_alive = n % 2 == 0;
            let mut connection = None;
            while !stop.load(Ordering::Relaxed) {
                if connection.is_none() || !keep_alive {
                    connection = one.connect(gw.addr(), "a.example.com").await.ok();
                }
                let ok = match connection.as_mut() {
                    Some(c) => {
                        matches!(c.get("/", "a.example.com").await, Ok(r) if r.status == 200)
                    }
                    None => false,
                };
                let counter = if ok { &served } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
                if !ok && keep_alive {
                    connection = None;
                }
            }
        }));
    }
    support::eventually("load before the rotation", WAIT, || async {
        (served.load(Ordering::Relaxed) >= 40).then_some(())
    })
    .await;

    gw.write(
        "ca.yaml",
        &ca_secret_yaml("default", "client-ca", &[&ca1, &ca2]),
    );
    gw.wait_served(&two, "a.example.com", "a").await;
    let at_rotation = served.load(Ordering::Relaxed);
    support::eventually("load after the rotation", WAIT, || async {
        (served.load(Ordering::Relaxed) >= at_rotation + 40).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request fails");
    assert_eq!(
        gw.envoy.stat("listener_manager.lds.update_success").await,
        listener_updates,
        "a rotated CA changes its SDS secret only, never the listener"
    );
    assert_eq!(
        gw.envoy
            .stat("listener_manager.total_listeners_draining")
            .await,
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_ca_under_load_fails_no_request_delta() {
    rotating_the_ca_under_load_fails_no_request(AdsApi::DeltaGrpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_ca_under_load_fails_no_request_state_of_the_world() {
    rotating_the_ca_under_load_fails_no_request(AdsApi::Grpc).await;
}
