//! `TLSContext` (`getambassador.io/v3alpha1`): reusable TLS settings, for termination (through a
//! Host or `hosts`) and for origination (a Mapping's or TCPMapping's `tls`), with Emissary's
//! snake_case field names. Semantics: `../shared/EMISSARY.md` §1.4.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::{
    fields::{AmbassadorId, Bounded},
    status::ResourceStatus,
};

/// A port, or `0` for none (Emissary's `redirect_cleartext_from: 0`).
pub type PortOrZero = Bounded<0, 65535>;

#[allow(clippy::duplicated_attributes)] // one `printcolumn(...)` per column
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "TLSContext",
    doc = "Reusable TLS settings (certificates, versions, ciphers, ALPN, client certificates) for terminating or originating TLS.",
    root = "TlsContext",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    category = "legate",
    category = "ambassador-crds",
    printcolumn(name = "Hosts", type_ = "string", json_path = ".spec.hosts"),
    printcolumn(name = "Secret", type_ = "string", json_path = ".spec.secret"),
    printcolumn(
        name = "Min TLS",
        type_ = "string",
        json_path = ".spec.min_tls_version",
        priority = 1
    ),
    printcolumn(
        name = "Max TLS",
        type_ = "string",
        json_path = ".spec.max_tls_version",
        priority = 1
    )
)]
#[x_kube(validation = Rule::new("!(has(self.secret) && (has(self.cert_chain_file) || has(self.private_key_file)))").message("set secret or cert_chain_file/private_key_file, not both").field_path(".secret"))]
#[x_kube(validation = Rule::new("has(self.cert_chain_file) == has(self.private_key_file)").message("set cert_chain_file and private_key_file together").field_path(".private_key_file"))]
#[x_kube(validation = Rule::new("!has(self.min_tls_version) || !has(self.max_tls_version) || self.min_tls_version <= self.max_tls_version").message("min_tls_version must not be above max_tls_version").field_path(".min_tls_version"))]
pub struct TlsContextSpec {
    #[serde(default, skip_serializing_if = "AmbassadorId::is_empty")]
    pub ambassador_id: AmbassadorId,

    // --- Termination --------------------------------------------------------------------
    /// SNI names this context terminates, matched exactly (not as globs) against Hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Kubernetes TLS Secret with the certificate and key: `name`, or `name.namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Whether `secret` may name a namespace as `name.namespace`; defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_namespacing: Option<bool>,
    /// Certificate chain file on the gateway's filesystem, instead of `secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_chain_file: Option<String>,
    /// Private key file on the gateway's filesystem, with `cert_chain_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<String>,

    // --- Client certificates ------------------------------------------------------------
    /// Secret with the CA certificate that peer certificates are validated against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<String>,
    /// CA certificate file for peer-certificate validation, instead of `ca_secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacert_chain_file: Option<String>,
    /// Secret with a certificate revocation list for peer certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_secret: Option<String>,
    /// Refuse clients that present no valid certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_required: Option<bool>,

    // --- Protocol -----------------------------------------------------------------------
    /// Comma-separated ALPN protocols to offer, e.g. `h2,http/1.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn_protocols: Option<String>,
    /// Lowest TLS version accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tls_version: Option<TlsVersion>,
    /// Highest TLS version accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tls_version: Option<TlsVersion>,
    /// OpenSSL-style cipher suites for TLS 1.2 and below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher_suites: Option<Vec<String>>,
    /// Elliptic curves for ECDH key exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecdh_curves: Option<Vec<String>>,
    /// Signature algorithms to offer, e.g. `ecdsa_secp256r1_sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_algorithms: Option<Vec<String>>,

    // --- Origination and legacy ---------------------------------------------------------
    /// SNI to send when this context originates TLS to an upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Legacy: redirect cleartext on this port to HTTPS; use a Listener and a Host's `requestPolicy` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_cleartext_from: Option<PortOrZero>,
}

/// A TLS protocol version; the names sort in version order, which the CEL rules rely on.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum TlsVersion {
    #[serde(rename = "v1.0")]
    V1_0,
    #[serde(rename = "v1.1")]
    V1_1,
    #[serde(rename = "v1.2")]
    V1_2,
    #[serde(rename = "v1.3")]
    V1_3,
}
