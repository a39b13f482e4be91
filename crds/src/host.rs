//! `Host` (`getambassador.io/v3alpha1`): a hostname (DNS glob) the gateway serves, its TLS
//! termination, its insecure-request policy and which Mappings attach to it, with Emissary's field
//! names and shapes. Semantics: `../shared/EMISSARY.md` §1.2 and §2.4–2.5.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    fields::{AmbassadorId, Bounded},
    tls_context::{PortOrZero, TlsContextSpec, TlsVersion},
};

#[allow(clippy::duplicated_attributes)] // one `printcolumn(...)` per column
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "Host",
    doc = "A hostname the gateway serves: TLS termination, what to do with insecure requests, and which Mappings attach.",
    namespaced,
    derive = "PartialEq",
    status = "HostStatus",
    category = "legate",
    category = "ambassador-crds",
    printcolumn(name = "Hostname", type_ = "string", json_path = ".spec.hostname"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Phase Completed",
        type_ = "string",
        json_path = ".status.phaseCompleted",
        priority = 1
    ),
    printcolumn(
        name = "Phase Pending",
        type_ = "string",
        json_path = ".status.phasePending",
        priority = 1
    )
)]
#[x_kube(validation = Rule::new("!(has(self.tlsContext) && has(self.tls))").message("set tlsContext or tls, not both").field_path(".tls"))]
#[serde(rename_all = "camelCase")]
pub struct HostSpec {
    #[serde(
        default,
        skip_serializing_if = "AmbassadorId::is_empty",
        rename = "ambassador_id"
    )]
    pub ambassador_id: AmbassadorId,

    /// DNS glob this Host serves (a leading or trailing `*` only); absent means `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Mappings whose labels match (`matchLabels` only, every label must match) attach to this Host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping_selector: Option<LabelSelector>,
    /// Deprecated synonym of `mappingSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Kubernetes TLS Secret holding this Host's certificate and key; enables TLS termination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<SecretReference>,
    /// TLSContext (same namespace) to terminate with; its secret must be this Host's `tlsSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_context: Option<LocalObjectReference>,
    /// Inline TLS settings, an implicit TLSContext for this Host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<HostTls>,
    /// What to do with requests that arrive insecure (cleartext, or XFP not `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_policy: Option<RequestPolicy>,
    /// ACME settings; only `authority: none` is meaningful, Legate does no ACME itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_provider: Option<AcmeProvider>,
    /// Service Preview URLs (an Edge Stack feature); accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<PreviewUrl>,
    /// Legate extension: whose Mappings may attach to this Host's hostname. Absent means every
    /// namespace, Emissary's behaviour, so Emissary YAML keeps working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping_namespaces: Option<MappingNamespaces>,
}

/// Which namespaces' Mappings a Host admits (a Legate extension).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MappingNamespaces {
    /// `All` (the default) or `Same`: only Mappings in the Host's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<MappingNamespacesFrom>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MappingNamespacesFrom {
    #[default]
    All,
    Same,
}

/// A Secret by name, in the Host's namespace unless `namespace` is given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretReference {
    /// Name of the Secret.
    pub name: String,
    /// Namespace of the Secret; defaults to the Host's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// An object by name in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the object.
    pub name: String,
}

/// Inline TLS settings of a Host: the TLSContext fields except `hosts`, `secret` and
/// `secret_namespacing`, which come from the Host itself.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new("has(self.cert_chain_file) == has(self.private_key_file)").message("set cert_chain_file and private_key_file together").field_path(".private_key_file"))]
#[x_kube(validation = Rule::new("!has(self.min_tls_version) || !has(self.max_tls_version) || self.min_tls_version <= self.max_tls_version").message("min_tls_version must not be above max_tls_version").field_path(".min_tls_version"))]
pub struct HostTls {
    /// Certificate chain file on the gateway's filesystem, instead of `tlsSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_chain_file: Option<String>,
    /// Private key file on the gateway's filesystem, with `cert_chain_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<String>,
    /// Secret with the CA certificate that client certificates are validated against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<String>,
    /// CA certificate file for client-certificate validation, instead of `ca_secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacert_chain_file: Option<String>,
    /// Secret with a certificate revocation list for client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_secret: Option<String>,
    /// Comma-separated ALPN protocols to offer, e.g. `h2,http/1.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn_protocols: Option<String>,
    /// Refuse clients that present no valid certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_required: Option<bool>,
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
    /// Legacy: redirect cleartext on this port to HTTPS; use a Listener and `requestPolicy` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_cleartext_from: Option<PortOrZero>,
    /// SNI to send when this context originates TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestPolicy {
    /// Policy for insecure requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<InsecureRequestPolicy>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InsecureRequestPolicy {
    /// `Redirect` to HTTPS (the default), `Route` as if secure, or `Reject` (404).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<InsecureAction>,
    /// Legacy: an extra cleartext port to listen on; `-1` or `0` means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_port: Option<Bounded<-1, 65535>>,
}

/// What a Host does with an insecure request. Case-sensitive, as in Emissary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum InsecureAction {
    Redirect,
    Route,
    Reject,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeProvider {
    /// ACME directory URL, or `none` to do no ACME for this Host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Contact email of the ACME account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Secret (same namespace) holding the ACME account's private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_secret: Option<LocalObjectReference>,
    /// ACME registration, normally set automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PreviewUrl {
    /// Whether Preview URLs are enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Kind of Preview URL; only `Path`.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub type_: Option<PreviewUrlType>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PreviewUrlType {
    Path,
}

/// Host status: Emissary's ACME-era fields beside the Kubernetes conditions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostStatus {
    /// Where the Host's certificate comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate_source: Option<TlsCertificateSource>,
    /// `Initial`, `Pending`, `Ready` or `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<HostState>,
    /// Last phase completed, while `Pending` or in `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_completed: Option<HostPhase>,
    /// Phase under way, while `Pending` or in `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_pending: Option<HostPhase>,
    /// Why the Host is in `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    /// When the Host entered `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_timestamp: Option<Time>,
    /// How long to wait before retrying after an error, a Go duration such as `5m0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_backoff: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Each gateway's own verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["installation"]))]
    pub gateways: Vec<crate::status::GatewayVerdict>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TlsCertificateSource {
    Unknown,
    #[serde(rename = "None")]
    NoCertificate,
    Other,
    #[serde(rename = "ACME")]
    Acme,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum HostState {
    Initial,
    Pending,
    Ready,
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum HostPhase {
    #[serde(rename = "NA")]
    Na,
    DefaultsFilled,
    #[serde(rename = "ACMEUserPrivateKeyCreated")]
    AcmeUserPrivateKeyCreated,
    #[serde(rename = "ACMEUserRegistered")]
    AcmeUserRegistered,
    #[serde(rename = "ACMECertificateChallenge")]
    AcmeCertificateChallenge,
}

impl HostTls {
    /// The implicit TLSContext these settings stand for (Emissary: "an inline TLSContext"); the
    /// Host supplies its certificate (`tlsSecret`) and hostname itself.
    pub fn to_context(&self) -> TlsContextSpec {
        let t = self.clone();
        TlsContextSpec {
            cert_chain_file: t.cert_chain_file,
            private_key_file: t.private_key_file,
            ca_secret: t.ca_secret,
            cacert_chain_file: t.cacert_chain_file,
            crl_secret: t.crl_secret,
            alpn_protocols: t.alpn_protocols,
            cert_required: t.cert_required,
            min_tls_version: t.min_tls_version,
            max_tls_version: t.max_tls_version,
            cipher_suites: t.cipher_suites,
            ecdh_curves: t.ecdh_curves,
            redirect_cleartext_from: t.redirect_cleartext_from,
            sni: t.sni,
            ..TlsContextSpec::default()
        }
    }
}
