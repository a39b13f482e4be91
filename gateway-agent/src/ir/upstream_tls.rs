//! TLS origination with a TLSContext: a Mapping's `tls: <TLSContext name>` (Emissary §1.1, §1.4;
//! `ir/ircluster.py`, `ir/irtlscontext.py`, `envoy/v3/v3tls.py`).
//!
//! What Emissary does, and what Legate does:
//! - `tls: <name>` originates TLS with that context (no scheme, or `https://`); `http://` with a
//!   context is refused (Emissary posts an error and originates anyway). `tls: true` is
//!   Emissary's null context: TLS, no certificate, no verification (unchanged, [`super::service`]).
//! - The context's `secret` is the client certificate, served over SDS under its own name
//!   ([`certificate_name`]), so a rotated Secret changes that secret alone, never the cluster.
//! - `ca_secret` verifies the upstream's certificate chain: the CA bundle is the `tls.crt` of that
//!   Secret (Emissary reads `cert_path` of the CA secret), served over SDS as a validation
//!   context ([`validation_name`]). Emissary checks the chain only, never the upstream's name.
//!   Legate does the same unless the context sets `sni`: then the upstream's certificate must
//!   also name it (a DNS SAN), since a gateway that names the upstream it expects should not
//!   accept any other server the same CA signed.
//! - `sni` is sent as SNI. Without it Emissary sends none; Legate sends the service's host, as it
//!   does for `tls: true` (servers pick their certificate by SNI).
//! - `alpn_protocols` (comma-separated, as Emissary's string), `min_tls_version`,
//!   `max_tls_version`, `cipher_suites`, `ecdh_curves`, `signature_algorithms` are applied as
//!   Emissary's `V3TLSContext` does, except that `min_tls_version: v1.3` without a maximum
//!   raises Envoy's client default maximum (1.2) to 1.3 rather than fail every handshake. Without `alpn_protocols`, an HTTP/2 (`grpc: true`) cluster
//!   offers `h2`: gRPC servers refuse TLS without it (Emissary offers nothing).
//! - Termination-only settings (`hosts`, `cert_required`, `redirect_cleartext_from`) do not apply
//!   to origination and are ignored here: one context may serve both.
//!
//! Departures for the user, each refused with the field named rather than weakened:
//! - Emissary looks contexts up by name in every namespace; Legate in the Mapping's own
//!   namespace, and the context's Secrets in that namespace too (Legate's security rule: a key
//!   is used only by its own namespace). A context of that name elsewhere is named in the refusal.
//! - Files (`cert_chain_file`, `private_key_file`, `cacert_chain_file`) are refused: keys and CAs
//!   reach Envoy over SDS only. `crl_secret` is refused for origination (not served yet).
//! - A `ca_secret` without a `secret` verifies the upstream without presenting a certificate
//!   (Emissary refuses such a context: "cannot validate client certs without TLS termination").
//!
//! Every Mapping compiles with [`Contexts`], so the builder starts from scratch when a TLSContext
//! changes or one of its Secrets appears or goes (see [`super::defaults`]); a Secret's content
//! is read at the end of each build ([`secrets`]), and only changes the SDS secret.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use legate_crds::{Resource, TlsSecret, tls_context::TlsContextSpec, tls_context::TlsVersion};

use super::{Certificate, Reason, Refusal, envoy_rules, service::Cluster};

/// How a cluster originates TLS with a TLSContext: Envoy's `UpstreamTlsContext`. Part of the
/// cluster's identity: two contexts never share a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// The TLSContext, `namespace/name`.
    pub context: String,
    /// The SDS name of the client certificate, if the context has a `secret`.
    pub certificate: Option<String>,
    /// The SDS name of the CA bundle the upstream's certificate must chain to (`ca_secret`).
    pub validation: Option<String>,
    /// `sni`: sent as SNI and, with a CA, the DNS name the upstream's certificate must have.
    pub sni: Option<String>,
    pub alpn_protocols: Vec<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    pub cipher_suites: Vec<String>,
    pub ecdh_curves: Vec<String>,
    pub signature_algorithms: Vec<String>,
}

impl UpstreamTls {
    /// The text a cluster's name is hashed with: every parameter, unambiguously separated.
    fn key(&self) -> String {
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "\u{1}".to_owned());
        let version = |v: Option<TlsVersion>| format!("{v:?}");
        [
            "otls".to_owned(),
            self.context.clone(),
            opt(&self.certificate),
            opt(&self.validation),
            opt(&self.sni),
            self.alpn_protocols.join(","),
            version(self.min_version),
            version(self.max_version),
            self.cipher_suites.join(":"),
            self.ecdh_curves.join(":"),
            self.signature_algorithms.join(":"),
        ]
        .join("\0")
    }
}

/// Why a Mapping's `tls` context cannot be used; each names the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("tls: TLSContext {0} not found")]
    NotFound(String),
    #[error(
        "tls: TLSContext {wanted} not found; a Mapping originates with TLSContexts of its own \
         namespace only, and {elsewhere} is in another"
    )]
    OtherNamespace { wanted: String, elsewhere: String },
    #[error(
        "tls: TLSContext {context} {field}: Secret {secret} is in another namespace; a TLSContext \
         may use Secrets of its own namespace only"
    )]
    SecretElsewhere {
        context: String,
        field: &'static str,
        secret: String,
    },
    #[error(
        "tls: TLSContext {context} {field}: Secret {secret} not found (or not a valid \
         kubernetes.io/tls or CA Secret: see the loader's errors)"
    )]
    SecretNotFound {
        context: String,
        field: &'static str,
        secret: String,
    },
    #[error(
        "tls: TLSContext {context} secret: Secret {secret} has no tls.key, so it holds no client \
         certificate to present"
    )]
    NoKey { context: String, secret: String },
    #[error(
        "tls: TLSContext {context} {field}: keys and CAs reach Envoy over SDS only, never \
         through files; use a Secret"
    )]
    Files {
        context: String,
        field: &'static str,
    },
    #[error(
        "tls: TLSContext {context} crl_secret: revocation lists are not applied to origination yet"
    )]
    Crl { context: String },
    #[error("tls: TLSContext {context}: min_tls_version {min:?} is above max_tls_version {max:?}")]
    Versions {
        context: String,
        min: TlsVersion,
        max: TlsVersion,
    },
    #[error("tls: TLSContext {context} {violation}")]
    Setting {
        context: String,
        violation: envoy_rules::Violation,
    },
}

impl ContextError {
    fn reason(&self) -> Reason {
        match self {
            Self::NotFound(_) | Self::SecretNotFound { .. } => Reason::SecretNotFound,
            Self::OtherNamespace { .. } | Self::SecretElsewhere { .. } => Reason::RefNotPermitted,
            Self::Files { .. } | Self::Crl { .. } => Reason::NotSupported,
            Self::Versions { .. } | Self::Setting { .. } | Self::NoKey { .. } => Reason::Invalid,
        }
    }
}

impl From<ContextError> for Refusal {
    fn from(e: ContextError) -> Self {
        Self {
            reason: e.reason(),
            message: e.to_string(),
        }
    }
}

/// Every TLSContext of the gateway resolved for origination, by `(namespace, name)`: what the
/// Mappings compile with. Equal when nothing a Mapping would compile differently changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contexts {
    by_name: BTreeMap<(String, String), Result<UpstreamTls, ContextError>>,
}

/// A Secret (or TLSContext) as namespace and name.
type Key = (String, String);

impl Contexts {
    /// A resource without a namespace (a file of the directory source) is in
    /// `gateway_namespace`, as a Mapping without one is.
    pub fn new(resources: &[&Resource], gateway_namespace: &str) -> Self {
        let secrets = tls_secrets(resources, gateway_namespace);
        let by_name = resources
            .iter()
            .filter_map(|r| match r {
                Resource::TLSContext(c) => {
                    let key = key(&c.metadata, gateway_namespace);
                    let resolved = resolve(&key, &c.spec, &secrets);
                    Some((key, resolved))
                }
                _ => None,
            })
            .collect();
        Self { by_name }
    }

    /// The origination a Mapping in `namespace` asks for with `tls: <name>`.
    pub fn lookup(&self, namespace: &str, name: &str) -> Result<UpstreamTls, Refusal> {
        let wanted = (namespace.to_owned(), name.to_owned());
        match self.by_name.get(&wanted) {
            Some(found) => found.clone().map_err(Refusal::from),
            None => {
                let elsewhere = self.by_name.keys().find(|(_, n)| n == name);
                let wanted = format!("{namespace}/{name}");
                Err(match elsewhere {
                    Some((ns, n)) => ContextError::OtherNamespace {
                        wanted,
                        elsewhere: format!("{ns}/{n}"),
                    },
                    None => ContextError::NotFound(wanted),
                }
                .into())
            }
        }
    }
}

fn key(meta: &ObjectMeta, gateway_namespace: &str) -> Key {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| gateway_namespace.to_owned()),
        meta.name.clone().unwrap_or_default(),
    )
}

fn tls_secrets<'a>(
    resources: &[&'a Resource],
    gateway_namespace: &str,
) -> BTreeMap<Key, &'a TlsSecret> {
    resources
        .iter()
        .filter_map(|r| match r {
            Resource::Secret(s) => Some((key(&s.metadata, gateway_namespace), s)),
            _ => None,
        })
        .collect()
}

fn resolve(
    (namespace, name): &Key,
    spec: &TlsContextSpec,
    secrets: &BTreeMap<Key, &TlsSecret>,
) -> Result<UpstreamTls, ContextError> {
    let context = format!("{namespace}/{name}");
    let files = [
        ("cert_chain_file", spec.cert_chain_file.is_some()),
        ("private_key_file", spec.private_key_file.is_some()),
        ("cacert_chain_file", spec.cacert_chain_file.is_some()),
    ];
    if let Some((field, _)) = files.into_iter().find(|(_, set)| *set) {
        return Err(ContextError::Files { context, field });
    }
    if spec.crl_secret.is_some() {
        return Err(ContextError::Crl { context });
    }
    // `name`, or `name.namespace` unless `secret_namespacing: false`, as for termination; only
    // the context's own namespace may be named.
    let secret = |field: &'static str, value: &Option<String>| {
        let Some(value) = value else {
            return Ok(None);
        };
        let (ns, secret) = super::tls::context_secret(spec, value, namespace);
        let shown = format!("{ns}/{secret}");
        if ns != *namespace {
            return Err(ContextError::SecretElsewhere {
                context: context.clone(),
                field,
                secret: shown,
            });
        }
        let Some(found) = secrets.get(&(ns, secret)) else {
            return Err(ContextError::SecretNotFound {
                context: context.clone(),
                field,
                secret: shown,
            });
        };
        // A CA-only (`Opaque`) Secret has no key to present.
        if field == "secret" && found.private_key.is_none() {
            return Err(ContextError::NoKey {
                context: context.clone(),
                secret: shown,
            });
        }
        Ok(Some(shown))
    };
    let certificate = secret("secret", &spec.secret)?.map(|s| certificate_name(&s));
    let validation = secret("ca_secret", &spec.ca_secret)?.map(|s| validation_name(&s));
    if let (Some(min), Some(max)) = (spec.min_tls_version, spec.max_tls_version)
        && min > max
    {
        return Err(ContextError::Versions { context, min, max });
    }
    let list = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
    let tls = UpstreamTls {
        context: context.clone(),
        certificate,
        validation,
        sni: spec.sni.clone(),
        alpn_protocols: spec
            .alpn_protocols
            .iter()
            .flat_map(|a| a.split(','))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
        min_version: spec.min_tls_version,
        // Envoy's clients stop at TLS 1.2 unless told otherwise: a minimum of 1.3 alone would
        // fail every handshake (as it does in Emissary), so it raises the maximum too.
        max_version: spec
            .max_tls_version
            .or(spec.min_tls_version.filter(|v| *v == TlsVersion::V1_3)),
        cipher_suites: list(&spec.cipher_suites),
        ecdh_curves: list(&spec.ecdh_curves),
        signature_algorithms: list(&spec.signature_algorithms),
    };
    settings(&tls).map_err(|violation| ContextError::Setting { context, violation })?;
    Ok(tls)
}

/// What Envoy would refuse, and so NACK the whole update for: names BoringSSL does not know, an
/// ALPN protocol it cannot offer, an SNI that is not a host name.
fn settings(tls: &UpstreamTls) -> Result<(), envoy_rules::Violation> {
    if let Some(sni) = &tls.sni {
        envoy_rules::upstream_host("sni", sni)?;
    }
    super::tls::names(
        &tls.cipher_suites,
        &tls.ecdh_curves,
        &tls.signature_algorithms,
        &tls.alpn_protocols,
    )
}

/// The SDS name of a client certificate, from its Secret's `namespace/name`: apart from the
/// names termination serves certificates under, so each side's secrets are its own.
pub fn certificate_name(secret: &str) -> String {
    [CERTIFICATE_PREFIX, secret].concat()
}

const CERTIFICATE_PREFIX: &str = "origination/";
const VALIDATION_PREFIX: &str = "origination-ca/";

/// The SDS name of a CA bundle, from its Secret's `namespace/name`.
pub fn validation_name(secret: &str) -> String {
    [VALIDATION_PREFIX, secret].concat()
}

/// The origination a Mapping's `tls` names, in its `namespace`: `None` for none or `tls: true`
/// (the null context, [`super::service`]).
pub fn for_mapping(
    tls: Option<&legate_crds::fields::BoolOrString>,
    namespace: &str,
    contexts: &Contexts,
) -> Result<Option<UpstreamTls>, Refusal> {
    match tls {
        Some(legate_crds::fields::BoolOrString::String(name)) => {
            contexts.lookup(namespace, name).map(Some)
        }
        _ => Ok(None),
    }
}

/// `cluster` originating with `tls`: keyed by it, so that each context gets its own cluster
/// while a cluster without one keeps the name it always had.
pub fn apply(mut cluster: Cluster, tls: Option<UpstreamTls>) -> Cluster {
    if let Some(tls) = tls {
        cluster.name = super::service::with_policy(&cluster.name, &tls.key());
        cluster.upstream_tls = Some(tls);
    }
    cluster
}

/// What the clusters' origination serves over SDS, by SDS name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Secrets {
    /// Client certificates.
    pub certificates: BTreeMap<String, Certificate>,
    /// CA bundles (PEM) upstream certificates must chain to.
    pub authorities: BTreeMap<String, String>,
}

/// The SDS secrets the clusters originate with, read from this build's Secrets. The contexts
/// were resolved from the same resources, so each is there.
pub fn secrets<'a>(
    clusters: impl IntoIterator<Item = &'a Cluster>,
    resources: &[&Resource],
    gateway_namespace: &str,
) -> Secrets {
    let mut out = Secrets::default();
    let wanted: Vec<&UpstreamTls> = clusters
        .into_iter()
        .filter_map(|c| c.upstream_tls.as_ref())
        .collect();
    if wanted.is_empty() {
        return out;
    }
    let by_name: BTreeMap<String, &TlsSecret> = tls_secrets(resources, gateway_namespace)
        .into_iter()
        .map(|((ns, name), s)| ([ns.as_str(), "/", name.as_str()].concat(), s))
        .collect();
    let find = |sds: &str, prefix: &str| sds.strip_prefix(prefix).and_then(|s| by_name.get(s));
    for tls in wanted {
        // Resolving the context checked that the Secret has a key.
        if let Some(name) = &tls.certificate
            && let Some(certificate) =
                find(name, CERTIFICATE_PREFIX).and_then(|s| super::tls::certificate(s))
        {
            out.certificates.entry(name.clone()).or_insert(certificate);
        }
        if let Some(name) = &tls.validation
            && let Some(s) = find(name, VALIDATION_PREFIX)
        {
            out.authorities
                .entry(name.clone())
                .or_insert_with(|| s.certificate_chain.clone());
        }
    }
    out
}
