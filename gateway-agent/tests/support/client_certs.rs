//! Client certificates for the mTLS tests (tests/client_certs.rs): client CAs made at test time,
//! the client certificates they sign (a subject and a URI SAN, a chosen serial), CRLs revoking
//! serials, the `Opaque` Secrets Emissary reads them from (`tls.crt`, `crl.pem`), and HTTPS
//! clients presenting a certificate (or none) while verifying the gateway's.

use std::sync::Arc;

use k8s_openapi::ByteString;
use rcgen::{
    CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType, KeyIdMethod,
    KeyPair, RevokedCertParams, SanType, SerialNumber, date_time_ymd, string::Ia5String,
};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

use super::tls::{Ca, Leaf, TlsClient};

/// A client certificate signed by `ca`: subject `CN=<cn>`, a URI SAN, serial `serial`.
pub fn client_leaf(ca: &Ca, cn: &str, uri: &str, serial: u64) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, cn);
    params.distinguished_name = subject;
    params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(uri).unwrap())];
    params.serial_number = Some(SerialNumber::from(serial));
    let cert = params.signed_by(&key, ca.issuer()).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

/// A CRL of `ca` revoking the certificates with these serials, PEM.
pub fn crl_pem(ca: &Ca, revoked: &[u64]) -> String {
    let params = CertificateRevocationListParams {
        this_update: date_time_ymd(2024, 1, 1),
        next_update: date_time_ymd(2099, 1, 1),
        crl_number: SerialNumber::from(1),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|&serial| RevokedCertParams {
                serial_number: SerialNumber::from(serial),
                revocation_time: date_time_ymd(2024, 1, 1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(ca.issuer()).unwrap().pem().unwrap()
}

/// An `Opaque` Secret with `data` (key, text), as `kubectl create secret generic` makes it.
pub fn opaque_secret_yaml(namespace: &str, name: &str, data: &[(&str, &str)]) -> String {
    let mut out = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         type: Opaque\ndata:\n"
    );
    for (key, text) in data {
        let b64 = serde_json::to_value(ByteString(text.as_bytes().to_vec())).unwrap();
        out.push_str(&format!("  {key}: {}\n", b64.as_str().unwrap()));
    }
    out
}

/// A client CA Secret trusting each of `cas` (a bundle when more than one), in `tls.crt`.
pub fn ca_secret_yaml(namespace: &str, name: &str, cas: &[&Ca]) -> String {
    let bundle: String = cas.iter().map(|ca| ca.cert_pem()).collect();
    opaque_secret_yaml(namespace, name, &[("tls.crt", &bundle)])
}

/// A CRL Secret, in `crl.pem`.
pub fn crl_secret_yaml(namespace: &str, name: &str, crl: &str) -> String {
    opaque_secret_yaml(namespace, name, &[("crl.pem", crl)])
}

/// An HTTPS client verifying the gateway against `server_ca` and presenting `leaf` (or no
/// certificate at all).
pub fn client(server_ca: &Ca, leaf: Option<&Leaf>) -> TlsClient {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server_ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = match leaf {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsClient::from_config(config)
}

/// A gateway with an HTTPS Listener (XFP) on a config directory, for the TLS and mTLS tests.
pub struct MtlsGateway {
    pub envoy: super::Envoy,
    pub agent: super::Agent,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl MtlsGateway {
    pub async fn start(files: &[(&str, String)], ads: legate_agent::bootstrap::AdsApi) -> Self {
        let dir = tempfile::tempdir().expect("a config directory");
        let port = super::free_port();
        super::write_config(
            dir.path(),
            "listener.yaml",
            &format!(
                "apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: https, namespace: default}}
spec: {{port: {port}, protocol: HTTPS, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}
"
            ),
        );
        for (name, yaml) in files {
            super::write_config(dir.path(), name, yaml);
        }
        let agent = super::Agent::start(dir.path()).await;
        let mut envoy = super::Envoy::start_with(agent.ads_address, ads).await;
        envoy.wait_ready().await;
        agent.wait_ready().await;
        Self {
            envoy,
            agent,
            port,
            dir,
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn write(&self, name: &str, yaml: &str) {
        super::write_config(self.dir.path(), name, yaml);
    }

    /// One GET of `https://{name}/` on a new connection by `client`; an error when the
    /// handshake fails (with TLS 1.3 a refused client certificate can surface on the request).
    pub async fn get(
        &self,
        client: &TlsClient,
        name: &str,
    ) -> std::io::Result<super::tls::TlsReply> {
        let mut c = client.connect(self.addr(), name).await?;
        c.get("/", name).await
    }

    /// Waits until `client` is answered 200 by `upstream` at `https://{name}/`.
    pub async fn wait_served(
        &self,
        client: &TlsClient,
        name: &str,
        upstream: &str,
    ) -> super::tls::TlsReply {
        let what = format!("https://{name}/ answered by {upstream}");
        super::eventually(&what, super::gateway::WAIT, || async {
            self.get(client, name)
                .await
                .ok()
                .filter(|r| r.status == 200 && r.header("x-upstream") == Some(upstream))
        })
        .await
    }

    /// Waits until the agent has logged `text`.
    pub async fn wait_log(&self, text: &str) {
        let what = format!("the agent to log {text:?}");
        super::eventually(&what, super::gateway::WAIT, || async {
            self.agent.log().contains(text).then_some(())
        })
        .await
    }

    /// Waits until this gateway's listener has counted a TLS failure `stat`
    /// (`fail_verify_no_cert`, `fail_verify_error`): Envoy counts it as it closes the
    /// connection, which can be after the client saw the alert.
    pub async fn wait_ssl_failure(&self, stat: &str) {
        let regex = format!("listener.*_{}.ssl.{stat}", self.port);
        super::eventually(
            &format!("Envoy to count {stat}"),
            super::gateway::WAIT,
            || async { (self.envoy.stat_sum(&regex).await > 0).then_some(()) },
        )
        .await
    }
}
