//! TLS origination with a TLSContext (a Mapping's `tls: <name>`), through real Envoy to a real
//! TLS upstream (`support::upstream_tls`), as Emissary configures it: the context's `secret` is
//! the client certificate, `sni` the SNI, `ca_secret` the CA the upstream must chain to, its
//! protocol settings Envoy's `UpstreamTlsContext` (Emissary's `ir/ircluster.py`,
//! `ir/irtlscontext.py`, `envoy/v3/v3tls.py`; kat `t_tls.py` `TLSOriginationSecret`). Legate's
//! choices where Emissary's are weaker (the upstream's name checked against `sni`, contexts and
//! Secrets of the Mapping's namespace only) are in `src/ir/upstream_tls.rs`.
//!
//! Certificates are made at test time: `upstream-ca` signs the upstreams' server certificates,
//! `client-ca` the gateway's client certificates.

mod support;

use legate_agent::ir::{self, Ir, Reason, Settings};
use pretty_assertions::assert_eq;
use serde_json::Value;
use support::{
    eventually,
    gateway::{self, Gateway, WAIT, describe},
    tls::{Ca, Leaf, secret_yaml},
    upstream_tls::TlsUpstream,
};

/// A TLSContext in `default`; `spec` is the rest of its spec, one field per line.
fn context(name: &str, spec: &str) -> String {
    gateway::document("TLSContext", name, spec)
}

/// A Mapping of `prefix` to `service`, with `extra` spec lines.
fn mapping(name: &str, prefix: &str, service: &str, extra: &str) -> String {
    gateway::mapping(
        name,
        &format!("hostname: \"*\"\nprefix: {prefix}\nservice: {service}\n{extra}"),
    )
}

fn secret(name: &str, leaf: &Leaf) -> String {
    format!("---\n{}", secret_yaml("default", name, leaf))
}

/// What the TLS upstream saw, once `path` answers 200 from it.
async fn seen(
    gw: &Gateway,
    path: &str,
    upstream: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    gw.wait_for(path, what, |r| {
        r.status == 200 && r.upstream() == Some(upstream) && done(&r.json())
    })
    .await
    .json()
}

/// Two CAs, and an upstream with a `localhost`/`api.internal` certificate from the first that
/// requires a client certificate from the second.
struct Pki {
    upstream_ca: Ca,
    client_ca: Ca,
}

impl Pki {
    fn new() -> Self {
        Self {
            upstream_ca: Ca::new(),
            client_ca: Ca::new(),
        }
    }

    async fn upstream(&self, name: &str) -> TlsUpstream {
        let server = self.upstream_ca.leaf(&["localhost", "api.internal"]);
        TlsUpstream::start(name, &server, Some(self.client_ca.der())).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_context_presents_its_client_certificate_and_without_it_the_handshake_fails() {
    let pki = Pki::new();
    let upstream = pki.upstream("secure").await;
    let service = format!("localhost:{}", upstream.port());
    let gw = Gateway::start().await;
    gw.write(
        "origination.yaml",
        &[
            secret("gateway-a", &pki.client_ca.client_leaf("gateway-a")),
            context("upstream", "secret: gateway-a"),
            // TLSOriginationSecret: `tls: <context>`, no scheme: TLS with the context's cert.
            mapping("with-context", "/with/", &service, "tls: upstream"),
            // The same upstream with gRPC's HTTP/2: ALPN h2 is offered, HTTP/2 spoken.
            mapping("grpc", "/grpc/", &service, "tls: upstream\ngrpc: true"),
            // Emissary's null context: TLS, but no certificate to present.
            mapping("null-context", "/null/", &service, "tls: true"),
        ]
        .concat(),
    );

    let echo = seen(&gw, "/with/", "secure", "the client certificate", |_| true).await;
    assert_eq!(echo["client"], "CN=gateway-a", "{echo}");
    assert_eq!(echo["version"], "HTTP/1.1", "{echo}");
    // No `sni` in the context: the service's host (Emissary would send none).
    assert_eq!(echo["sni"], "localhost", "{echo}");

    let echo = seen(&gw, "/grpc/", "secure", "HTTP/2 with the context", |_| true).await;
    assert_eq!(
        (&echo["client"], &echo["alpn"], &echo["version"]),
        (
            &Value::from("CN=gateway-a"),
            &Value::from("h2"),
            &Value::from("HTTP/2.0")
        ),
        "{echo}"
    );

    // The upstream requires a certificate the null context does not have: the handshake fails.
    let refused = gw.get("/null/", "example.com").await;
    assert_eq!(refused.status, 503, "{}", describe(&refused));
    assert_eq!(gw.agent.nacks().await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_is_the_contexts_and_the_upstream_must_be_signed_by_its_ca_and_named_by_it() {
    let pki = Pki::new();
    let other_ca = Ca::new();
    let upstream = pki.upstream("secure").await;
    // The same name, signed by another CA.
    let impostor = TlsUpstream::start(
        "impostor",
        &other_ca.leaf(&["localhost", "api.internal"]),
        Some(pki.client_ca.der()),
    )
    .await;
    let gw = Gateway::start().await;
    let resources = |ca_secret: &str| {
        [
            secret("gateway-a", &pki.client_ca.client_leaf("gateway-a")),
            secret("upstream-ca", &pki.upstream_ca.as_leaf()),
            secret("other-ca", &other_ca.as_leaf()),
            context(
                "verified",
                &format!("secret: gateway-a\nca_secret: {ca_secret}\nsni: api.internal"),
            ),
            // The upstream's certificate does not name `elsewhere.internal`.
            context(
                "misnamed",
                "secret: gateway-a\nca_secret: upstream-ca\nsni: elsewhere.internal",
            ),
            mapping(
                "secure",
                "/secure/",
                &format!("localhost:{}", upstream.port()),
                "tls: verified",
            ),
            mapping(
                "impostor",
                "/impostor/",
                &format!("localhost:{}", impostor.port()),
                "tls: verified",
            ),
            mapping(
                "misnamed",
                "/misnamed/",
                &format!("localhost:{}", upstream.port()),
                "tls: misnamed",
            ),
        ]
        .concat()
    };
    gw.write("origination.yaml", &resources("upstream-ca"));

    let echo = seen(&gw, "/secure/", "secure", "a verified upstream", |_| true).await;
    assert_eq!(echo["sni"], "api.internal", "{echo}");
    assert_eq!(echo["client"], "CN=gateway-a", "{echo}");
    // Signed by a CA the context does not trust: Envoy refuses the upstream.
    let refused = gw.get("/impostor/", "example.com").await;
    assert_eq!(refused.status, 503, "{}", describe(&refused));
    // Signed by the CA, but not for the name the context expects.
    let refused = gw.get("/misnamed/", "example.com").await;
    assert_eq!(refused.status, 503, "{}", describe(&refused));

    // With the impostor's CA, the impostor is served and the first upstream refused.
    gw.write("origination.yaml", &resources("other-ca"));
    seen(
        &gw,
        "/impostor/",
        "impostor",
        "the impostor, trusted now",
        |_| true,
    )
    .await;
    let refused = gw.get("/secure/", "example.com").await;
    assert_eq!(refused.status, 503, "{}", describe(&refused));
    assert_eq!(gw.agent.nacks().await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_client_certificate_secret_changes_what_the_upstream_sees_not_the_cluster() {
    let pki = Pki::new();
    let upstream = pki.upstream("secure").await;
    let gw = Gateway::start().await;
    let service = format!("localhost:{}", upstream.port());
    gw.write(
        "origination.yaml",
        &[
            context("upstream", "secret: gateway-cert"),
            mapping("with-context", "/with/", &service, "tls: upstream"),
        ]
        .concat(),
    );
    gw.write(
        "secret.yaml",
        &secret("gateway-cert", &pki.client_ca.client_leaf("gateway-a")),
    );
    seen(&gw, "/with/", "secure", "the first certificate", |e| {
        e["client"] == "CN=gateway-a"
    })
    .await;
    let modified = gw
        .envoy
        .stat_sum("^cluster_manager.cluster_modified$")
        .await;

    gw.write(
        "secret.yaml",
        &secret("gateway-cert", &pki.client_ca.client_leaf("gateway-b")),
    );
    // New connections present the new certificate (Envoy keeps idle ones: wait for a new one).
    seen(&gw, "/with/", "secure", "the rotated certificate", |e| {
        e["client"] == "CN=gateway-b"
    })
    .await;
    // Over SDS: the Secret is its own resource, the cluster did not change.
    assert_eq!(
        gw.envoy
            .stat_sum("^cluster_manager.cluster_modified$")
            .await,
        modified
    );

    // The Secret gone: the Mapping is refused (and Envoy keeps what it had, never NACKing).
    gw.remove("secret.yaml");
    eventually(
        "the Mapping refused for its missing Secret",
        WAIT,
        || async {
            gw.agent
                .log()
                .contains("Secret default/gateway-cert not found")
                .then_some(())
        },
    )
    .await;
    assert_eq!(gw.agent.nacks().await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_settings_apply_and_bad_contexts_are_refused_while_envoy_serves_the_rest() {
    let pki = Pki::new();
    let upstream = pki.upstream("secure").await;
    let service = format!("localhost:{}", upstream.port());
    let gw = Gateway::start().await;
    gw.write(
        "origination.yaml",
        &[
            bad_inputs(&pki, &service),
            // v3tls.py: max_tls_version → tls_maximum_protocol_version, cipher_suites as given.
            context(
                "tls12",
                "secret: gateway-a\nmax_tls_version: v1.2\n\
                 cipher_suites: [ECDHE-ECDSA-AES128-GCM-SHA256]",
            ),
            context("tls13", "secret: gateway-a\nmin_tls_version: v1.3"),
            mapping("tls12", "/tls12/", &service, "tls: tls12"),
            mapping("tls13", "/tls13/", &service, "tls: tls13"),
        ]
        .concat(),
    );
    let echo = seen(&gw, "/ok/", "secure", "the good Mapping", |_| true).await;
    assert_eq!(echo["client"], "CN=gateway-a", "{echo}");
    let echo = seen(&gw, "/tls12/", "secure", "TLS 1.2 at most", |_| true).await;
    assert_eq!(echo["tls"], "TLSv1_2", "{echo}");
    let echo = seen(&gw, "/tls13/", "secure", "TLS 1.3 at least", |_| true).await;
    assert_eq!(echo["tls"], "TLSv1_3", "{echo}");
    // The refused Mappings have no route: the listener answers 404 for them.
    for path in ["/unknown/", "/no-ca/", "/garbage-ca/", "/bad-cipher/"] {
        let reply = gw.get(path, "example.com").await;
        assert_eq!(reply.status, 404, "{path}: {}", describe(&reply));
    }
    assert_eq!(gw.agent.nacks().await, 0.0);
}

// ---------------------------------------------------------------------------------------------
// The IR: what is refused, with the field named, and what stays served.

fn build(yaml: &str) -> Ir {
    let loaded = legate_crds::loader::load_str("test.yaml", yaml).unwrap();
    ir::build(&loaded.resources, &Settings::default())
}

const LISTENER: &str = "
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http, namespace: default}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
";

/// The rejection of Mapping `name`: its reason and message.
fn rejection(ir: &Ir, name: &str) -> (Reason, String) {
    ir.rejections
        .iter()
        .find(|r| r.object.kind == "Mapping" && r.object.name == name)
        .map(|r| (r.reason, r.message.clone()))
        .unwrap_or_else(|| panic!("{name} is not rejected: {:#?}", ir.rejections))
}

/// A good context and Mapping (`ok`), and a Mapping for each way origination can be wrong, all to
/// `service`.
fn bad_inputs(pki: &Pki, service: &str) -> String {
    let other =
        |ns: &str, doc: String| doc.replace("namespace: default", &format!("namespace: {ns}"));
    [
        secret("gateway-a", &pki.client_ca.client_leaf("gateway-a")),
        context("good", "secret: gateway-a"),
        context("no-secret", "secret: missing"),
        context("no-ca", "secret: gateway-a\nca_secret: missing-ca"),
        // Not PEM: the loader refuses the Secret (naming its field), so the context has no CA.
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: garbage-ca, namespace: default}\n\
         type: kubernetes.io/tls\nstringData: {tls.crt: garbage, tls.key: garbage}\n"
            .to_owned(),
        context("garbage-ca", "secret: gateway-a\nca_secret: garbage-ca"),
        context("files", "cacert_chain_file: /etc/ca.pem"),
        context("crl", "secret: gateway-a\ncrl_secret: gateway-a"),
        context("elsewhere-secret", "secret: gateway-a.team-b"),
        context(
            "bad-cipher",
            "secret: gateway-a\ncipher_suites: [NOT-A-CIPHER]",
        ),
        other("team-b", context("theirs", "secret: gateway-a")),
        mapping("ok", "/ok/", service, "tls: good"),
        mapping("unknown", "/unknown/", service, "tls: nowhere"),
        mapping("theirs", "/theirs/", service, "tls: theirs"),
        mapping("no-secret", "/no-secret/", service, "tls: no-secret"),
        mapping("no-ca", "/no-ca/", service, "tls: no-ca"),
        mapping("garbage-ca", "/garbage-ca/", service, "tls: garbage-ca"),
        mapping("files", "/files/", service, "tls: files"),
        mapping("crl", "/crl/", service, "tls: crl"),
        mapping("elsewhere-secret", "/es/", service, "tls: elsewhere-secret"),
        mapping("bad-cipher", "/bad-cipher/", service, "tls: bad-cipher"),
        mapping(
            "bad-port",
            "/bad-port/",
            "https://localhost:99999",
            "tls: good",
        ),
        mapping(
            "http-scheme",
            "/http/",
            &format!("http://{service}"),
            "tls: good",
        ),
    ]
    .concat()
}

#[test]
fn bad_origination_is_refused_on_the_mapping_naming_the_field_and_the_rest_serves() {
    let pki = Pki::new();
    let yaml = [LISTENER.to_owned(), bad_inputs(&pki, "localhost:8443")].concat();
    let ir = build(&yaml);

    let cases: [(&str, Reason, &str); 11] = [
        (
            "garbage-ca",
            Reason::SecretNotFound,
            "ca_secret: Secret default/garbage-ca not found (or not a valid kubernetes.io/tls",
        ),
        (
            "unknown",
            Reason::SecretNotFound,
            "tls: TLSContext default/nowhere not found",
        ),
        (
            "theirs",
            Reason::RefNotPermitted,
            "team-b/theirs is in another",
        ),
        (
            "no-secret",
            Reason::SecretNotFound,
            "secret: Secret default/missing not found",
        ),
        (
            "no-ca",
            Reason::SecretNotFound,
            "ca_secret: Secret default/missing-ca not found",
        ),
        (
            "files",
            Reason::NotSupported,
            "cacert_chain_file: keys and CAs reach Envoy over SDS only",
        ),
        ("crl", Reason::NotSupported, "crl_secret"),
        (
            "elsewhere-secret",
            Reason::RefNotPermitted,
            "secret: Secret team-b/gateway-a is in another namespace",
        ),
        ("bad-cipher", Reason::Invalid, "cipher_suites"),
        (
            "bad-port",
            Reason::Invalid,
            "port \"99999\" is not a number from 1 to 65535",
        ),
        ("http-scheme", Reason::Invalid, "http:// contradicts tls"),
    ];
    for (name, reason, text) in cases {
        let (got, message) = rejection(&ir, name);
        assert_eq!(got, reason, "{name}: {message}");
        assert!(message.contains(text), "{name}: {message:?} lacks {text:?}");
    }
    // The good one serves, with its own cluster, and only what it uses is served over SDS.
    let served: Vec<&str> = ir
        .clusters
        .values()
        .filter(|c| c.upstream_tls.is_some())
        .map(|c| c.upstream_tls.as_ref().map_or("", |t| t.context.as_str()))
        .collect();
    assert_eq!(served, ["default/good"]);
    assert_eq!(
        ir.upstream_tls.certificates.keys().collect::<Vec<_>>(),
        ["origination/default/gateway-a"]
    );
}

#[test]
fn each_context_gets_its_own_cluster_and_a_context_change_recompiles_what_uses_it() {
    let pki = Pki::new();
    let base = [
        LISTENER.to_owned(),
        secret("gateway-a", &pki.client_ca.client_leaf("gateway-a")),
        secret("gateway-b", &pki.client_ca.client_leaf("gateway-b")),
        mapping("a", "/a/", "localhost:8443", "tls: ctx-a"),
        mapping("b", "/b/", "localhost:8443", "tls: ctx-b"),
        mapping("plain", "/plain/", "localhost:8443", "tls: true"),
        mapping("verify-only", "/v/", "localhost:8443", "tls: ctx-ca"),
        secret("upstream-ca", &pki.upstream_ca.as_leaf()),
        // A CA and no client certificate: the upstream is verified, nothing is presented
        // (Emissary refuses a ca_secret without a secret, a termination rule).
        context("ctx-ca", "ca_secret: upstream-ca"),
    ]
    .concat();
    let with = |a: &str| {
        [
            base.clone(),
            context("ctx-a", a),
            context("ctx-b", "secret: gateway-b\nsni: b.internal"),
        ]
        .concat()
    };
    let ir = build(&with("secret: gateway-a"));
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    // Same service, four origination settings: four clusters.
    assert_eq!(ir.clusters.len(), 4, "{:#?}", ir.clusters.keys());
    let verify_only = ir
        .clusters
        .values()
        .find_map(|c| {
            c.upstream_tls
                .as_ref()
                .filter(|t| t.context == "default/ctx-ca")
        })
        .expect("the verify-only cluster");
    assert_eq!(
        (
            verify_only.certificate.as_deref(),
            verify_only.validation.as_deref()
        ),
        (None, Some("origination-ca/default/upstream-ca"))
    );
    assert_eq!(
        ir.upstream_tls.authorities.keys().collect::<Vec<_>>(),
        ["origination-ca/default/upstream-ca"]
    );

    // Incremental builds agree with builds from scratch as the context and its Secret change.
    let mut builder = ir::Builder::new(Settings::default());
    for yaml in [
        with("secret: gateway-a"),
        with("secret: gateway-a\nalpn_protocols: h2,http/1.1"),
        with("secret: gateway-b"),
        with("secret: missing"),
        with("secret: gateway-a"),
    ] {
        let loaded = legate_crds::loader::load_str("test.yaml", &yaml).unwrap();
        let shared: Vec<std::sync::Arc<legate_crds::Resource>> = loaded
            .resources
            .iter()
            .cloned()
            .map(std::sync::Arc::new)
            .collect();
        assert_eq!(
            builder.build(&shared),
            ir::build(&loaded.resources, &Settings::default())
        );
    }
}

#[test]
fn resources_without_a_namespace_are_in_the_gateways_as_a_mapping_without_one_is() {
    let pki = Pki::new();
    let unnamespaced = |doc: String| doc.replace(", namespace: default", "");
    let yaml = [
        LISTENER.to_owned(),
        unnamespaced(secret("gateway-a", &pki.client_ca.client_leaf("gateway-a"))),
        unnamespaced(context("ctx", "secret: gateway-a")),
        unnamespaced(mapping("m", "/m/", "localhost:8443", "tls: ctx")),
    ]
    .concat();
    let ir = build(&yaml);
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    assert_eq!(
        ir.upstream_tls.certificates.keys().collect::<Vec<_>>(),
        ["origination/default/gateway-a"]
    );
}

/// A CA-only (`Opaque`) Secret, as `kubectl create secret generic --from-file=tls.crt` makes it,
/// serves as a context's `ca_secret`; as its `secret` it holds no key to present, and the
/// Mapping is refused saying so.
#[test]
fn an_opaque_ca_secret_verifies_upstreams_and_is_no_client_certificate() {
    let pki = Pki::new();
    let yaml = [
        LISTENER.to_owned(),
        support::client_certs::ca_secret_yaml("default", "upstream-ca", &[&pki.upstream_ca]),
        context("verify", "ca_secret: upstream-ca"),
        context("present", "secret: upstream-ca"),
        mapping("verify", "/v/", "localhost:8443", "tls: verify"),
        mapping("present", "/p/", "localhost:8443", "tls: present"),
    ]
    .concat();
    let ir = build(&yaml);
    assert!(
        ir.clusters.values().any(|c| c
            .upstream_tls
            .as_ref()
            .is_some_and(|t| t.validation.is_some())),
        "{:#?}",
        ir.clusters
    );
    assert_eq!(
        rejection(&ir, "present"),
        (
            Reason::Invalid,
            "tls: TLSContext default/present secret: Secret default/upstream-ca has no tls.key, \
             so it holds no client certificate to present"
                .to_owned()
        )
    );
    assert_eq!(ir.upstream_tls.authorities.len(), 1);
}
