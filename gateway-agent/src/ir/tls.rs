//! TLS termination (Emissary §1.2, §1.4, §2.5): which Hosts terminate TLS, with which certificate
//! and settings, and the SNI-matched chains that serve them on Listeners whose protocol stack has
//! TLS.
//!
//! A Host's certificate comes from a `kubernetes.io/tls` Secret in the Host's own namespace,
//! named by `tlsSecret` or by the TLSContext the Host names; its settings from that TLSContext or
//! the inline `tls`. Departures from Emissary, each for the user:
//! - A Host whose TLS cannot be served (missing Secret, another namespace, unsupported setting) is
//!   not dropped as in Emissary: its TLS is rejected with the reason and it keeps its cleartext
//!   side, by its insecure action. An HTTP-01 challenge (`/.well-known/acme-challenge/`, always
//!   routed) can then still be answered while the certificate is being issued.
//! - A Secret in another namespace is refused: Emissary allows it, Legate's security rule does
//!   not, and there is no delegation mechanism (yet).
//! - Certificate and key files (`cert_chain_file`/`private_key_file`) are refused: keys reach
//!   Envoy over SDS only, never through files.
//! - Client certificates (`ca_secret`, `crl_secret`, `cert_required`) are
//!   [`super::client_certs`]'s; a Host whose client-certificate settings cannot be served gets
//!   no TLS rather than TLS without the check it asked for.

use std::{collections::BTreeMap, sync::Arc};

use legate_crds::{
    ObjectRef, Resource, TlsSecret, host::HostTls, secret::PrivateKeyPem,
    tls_context::TlsContextSpec, tls_context::TlsVersion,
};

use super::{
    Listener, Reason, Rejection, VirtualHost,
    client_certs::{self, ClientCertError, ClientCertificates, ValidationContext},
    envoy_rules,
    host::Host,
};

/// A certificate and its key, as SDS serves them.
#[derive(Clone, Debug, PartialEq)]
pub struct Certificate {
    /// The Secret it comes from.
    pub source: ObjectRef,
    /// PEM, the leaf first.
    pub chain: String,
    pub key: PrivateKeyPem,
}

/// How a chain terminates TLS: Envoy's `DownstreamTlsContext`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownstreamTls {
    /// The SDS name of the certificate: its Secret's `namespace/name`, so a rotated Secret
    /// changes the secret alone (SDS), never the listener, and no connection is drained.
    pub certificate: String,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    pub cipher_suites: Vec<String>,
    pub ecdh_curves: Vec<String>,
    pub signature_algorithms: Vec<String>,
    /// ALPN protocols offered, in order of preference; none unless configured, as in Emissary.
    pub alpn_protocols: Vec<String>,
    /// Client certificates asked for, and the SDS name of what they are verified against.
    pub client_certificates: Option<ClientCertificates>,
}

/// A TLS filter chain of a Listener: connections whose SNI matches, decrypted with `tls`, then
/// routed by the virtual hosts of the Hosts with that SNI.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsChain {
    /// Stable: derived from the listener and the SNI name, never from a position.
    pub name: String,
    /// SNI names matched (Envoy `server_names`); empty matches any (a `*` Host).
    pub server_names: Vec<String>,
    pub tls: DownstreamTls,
    pub virtual_hosts: Vec<Arc<VirtualHost>>,
}

/// Why a Host's TLS is not served; each names the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("tlsContext: TLSContext {0} not found")]
    ContextNotFound(String),
    #[error(
        "tlsContext: TLSContext {context} uses Secret {theirs}, not the Host's tlsSecret {mine}"
    )]
    SecretMismatch {
        context: String,
        theirs: String,
        mine: String,
    },
    #[error("no certificate: set tlsSecret to a kubernetes.io/tls Secret")]
    NoCertificate,
    #[error(
        "tlsSecret: Secret {secret} is in another namespace; a Host may use Secrets of its own \
         namespace ({namespace}) only, and Legate has no cross-namespace delegation"
    )]
    OtherNamespace { secret: String, namespace: String },
    #[error(
        "tlsSecret: Secret {0} not found (or not a valid kubernetes.io/tls Secret: see the \
         loader's errors)"
    )]
    SecretNotFound(String),
    #[error(
        "cert_chain_file/private_key_file: keys reach Envoy over SDS only, never through files; \
         use tlsSecret"
    )]
    KeyFiles,
    #[error(
        "tlsSecret: Secret {0} has no tls.key (an Opaque Secret holds a CA or a CRL, not a \
         certificate to serve)"
    )]
    NoKey(String),
    #[error(transparent)]
    ClientCertificates(#[from] ClientCertError),
    #[error("hostname {0:?}: SNI can match an exact name, `*.` and a domain, or `*` only")]
    Sni(String),
    #[error("SNI {sni:?} is already terminated on port {port} with other TLS settings")]
    SniTaken { sni: String, port: u16 },
    #[error(transparent)]
    Setting(#[from] envoy_rules::Violation),
}

/// What each Host terminates with, and the certificates that can be used.
#[derive(Debug, Default)]
pub struct Terminations {
    by_host: BTreeMap<ObjectRef, Termination>,
    certificates: BTreeMap<String, Certificate>,
    /// Client-certificate validation contexts, by SDS name.
    pub(super) validation_contexts: BTreeMap<String, ValidationContext>,
}

#[derive(Clone, Debug, PartialEq)]
struct Termination {
    server_names: Vec<String>,
    tls: DownstreamTls,
}

/// Resolves the TLS of every Host that asks for it. A Host whose TLS cannot be served gets a
/// rejection with the reason (it keeps serving cleartext). Settings accepted and ignored
/// (`tls.sni`, ...) are [`super::unsupported`]'s to note.
pub fn resolve(resources: &[&Resource], rejections: &mut Vec<Rejection>) -> Terminations {
    let mut secrets = BTreeMap::new();
    let mut contexts = BTreeMap::new();
    for r in resources {
        match r {
            Resource::Secret(s) => {
                secrets.insert(key(&s.metadata), s);
            }
            Resource::TLSContext(c) => {
                contexts.insert(key(&c.metadata), &c.spec);
            }
            _ => {}
        }
    }
    let mut out = Terminations::default();
    for r in resources {
        let Resource::Host(h) = r else { continue };
        if h.spec.tls_secret.is_none() && h.spec.tls_context.is_none() && h.spec.tls.is_none() {
            continue;
        }
        let object = r.object_ref();
        let namespace = h.metadata.namespace.clone().unwrap_or_default();
        let hostname = h.spec.hostname.as_deref().unwrap_or("*");
        let found = terminate(h, &namespace, &contexts, &secrets)
            .and_then(|(tls, secret)| Ok((server_names(hostname)?, tls, secret)));
        match found {
            Ok((server_names, tls, (certificate, validation))) => {
                out.certificates
                    .entry(tls.certificate.clone())
                    .or_insert(certificate);
                if let (Some(c), Some(v)) = (&tls.client_certificates, validation) {
                    out.validation_contexts
                        .entry(c.validation.clone())
                        .or_insert(v);
                }
                out.by_host
                    .insert(object, Termination { server_names, tls });
            }
            Err(e) => rejections.push(refusal(object, &e)),
        }
    }
    out
}

/// Adds the TLS chains of every Listener whose protocol stack has TLS (`tls_ports`), one per SNI
/// name, each with the virtual host the Host has on that Listener. Two Hosts with the same SNI
/// (`a.com` and `a.com:8443`) share a chain if their TLS is the same; otherwise the later one's
/// TLS is rejected there. Returns the certificates the chains use, by SDS name.
pub fn add_chains(
    listeners: &mut [Listener],
    tls_ports: &[u16],
    hosts: &[Host],
    terminations: &Terminations,
    rejections: &mut Vec<Rejection>,
) -> BTreeMap<String, Certificate> {
    let by_hostname: BTreeMap<&str, &Host> =
        hosts.iter().map(|h| (h.hostname.as_str(), h)).collect();
    let mut used = BTreeMap::new();
    for l in listeners.iter_mut().filter(|l| tls_ports.contains(&l.port)) {
        let mut chains: BTreeMap<Vec<String>, TlsChain> = BTreeMap::new();
        for v in &l.virtual_hosts {
            let Some(host) = v.domains.first().and_then(|d| by_hostname.get(d.as_str())) else {
                continue;
            };
            let Some(t) = terminations.by_host.get(&host.source) else {
                continue;
            };
            let chain = chains
                .entry(t.server_names.clone())
                .or_insert_with(|| TlsChain {
                    name: format!(
                        "{}-tls-{}",
                        l.name,
                        t.server_names.first().map_or("*", String::as_str)
                    ),
                    server_names: t.server_names.clone(),
                    tls: t.tls.clone(),
                    virtual_hosts: Vec::new(),
                });
            if chain.tls != t.tls {
                let sni = t
                    .server_names
                    .first()
                    .map_or("*", String::as_str)
                    .to_owned();
                let e = TlsError::SniTaken { sni, port: l.port };
                rejections.push(refusal(host.source.clone(), &e));
                continue;
            }
            chain.virtual_hosts.push(v.clone());
            if let Some(c) = terminations.certificates.get(&t.tls.certificate) {
                used.insert(t.tls.certificate.clone(), c.clone());
            }
        }
        l.tls_chains = chains.into_values().collect();
    }
    used
}

impl Terminations {
    /// The TLS the Host `source` terminates with and its certificate, when it terminates any.
    pub(super) fn of_host(&self, source: &ObjectRef) -> Option<(&DownstreamTls, &Certificate)> {
        let t = self.by_host.get(source)?;
        Some((&t.tls, self.certificates.get(&t.tls.certificate)?))
    }
}

fn refusal(object: ObjectRef, e: &TlsError) -> Rejection {
    Rejection::new(
        object,
        e.reason(),
        format!("TLS is not served, the Host answers cleartext only: {e}"),
    )
}

impl TlsError {
    fn reason(&self) -> Reason {
        match self {
            Self::ContextNotFound(_) | Self::SecretNotFound(_) => Reason::SecretNotFound,
            Self::SecretMismatch { .. } | Self::NoCertificate | Self::Sni(_) | Self::Setting(_) => {
                Reason::Invalid
            }
            Self::OtherNamespace { .. } => Reason::RefNotPermitted,
            Self::NoKey(_) => Reason::Invalid,
            Self::ClientCertificates(e) => e.reason(),
            Self::KeyFiles => Reason::NotSupported,
            Self::SniTaken { .. } => Reason::Conflict,
        }
    }
}

/// A Secret as namespace and name.
type Key = (String, String);

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The Host's TLS settings, its certificate and its client-certificate validation, or why it
/// cannot terminate TLS.
fn terminate(
    h: &legate_crds::Host,
    namespace: &str,
    contexts: &BTreeMap<Key, &TlsContextSpec>,
    secrets: &BTreeMap<Key, &TlsSecret>,
) -> Result<(DownstreamTls, (Certificate, Option<ValidationContext>)), TlsError> {
    let inline;
    let (context, named_by_context) = match (&h.spec.tls_context, &h.spec.tls) {
        (Some(c), _) => {
            let spec = contexts
                .get(&(namespace.to_owned(), c.name.clone()))
                .ok_or_else(|| TlsError::ContextNotFound(format!("{namespace}/{}", c.name)))?;
            let secret = spec
                .secret
                .as_deref()
                .map(|s| context_secret(spec, s, namespace));
            (*spec, secret)
        }
        (None, Some(t)) => {
            inline = HostTls::to_context(t);
            (&inline, None)
        }
        (None, None) => {
            inline = TlsContextSpec::default();
            (&inline, None)
        }
    };
    refuse_unsupported(context)?;
    let host_secret = h.spec.tls_secret.as_ref().map(|s| {
        (
            s.namespace.clone().unwrap_or_else(|| namespace.to_owned()),
            s.name.clone(),
        )
    });
    let (secret_ns, secret_name) = match (host_secret, named_by_context) {
        (Some(mine), Some(theirs)) if mine != theirs => {
            let context = h.spec.tls_context.as_ref().map_or("", |c| c.name.as_str());
            return Err(TlsError::SecretMismatch {
                context: format!("{namespace}/{context}"),
                theirs: format!("{}/{}", theirs.0, theirs.1),
                mine: format!("{}/{}", mine.0, mine.1),
            });
        }
        (Some(s), _) | (None, Some(s)) => s,
        (None, None) => return Err(TlsError::NoCertificate),
    };
    let secret_ref = format!("{secret_ns}/{secret_name}");
    if secret_ns != namespace {
        return Err(TlsError::OtherNamespace {
            secret: secret_ref,
            namespace: namespace.to_owned(),
        });
    }
    let secret = secrets
        .get(&(secret_ns, secret_name))
        .ok_or_else(|| TlsError::SecretNotFound(secret_ref.clone()))?;
    let certificate = certificate(secret).ok_or_else(|| TlsError::NoKey(secret_ref.clone()))?;
    let (client_certificates, validation) = client_certs::resolve(context, namespace, secrets)?
        .map_or((None, None), |(c, v)| (Some(c), Some(v)));
    let tls = downstream(context, secret_ref, client_certificates);
    settings(&tls)?;
    Ok((tls, (certificate, validation)))
}

/// How a chain terminates TLS with `context`'s settings and the certificate `certificate` (its
/// SDS name); [`settings`] says whether Envoy would take them.
pub(crate) fn downstream(
    context: &TlsContextSpec,
    certificate: String,
    client_certificates: Option<ClientCertificates>,
) -> DownstreamTls {
    let list = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
    DownstreamTls {
        certificate,
        min_version: context.min_tls_version,
        max_version: context.max_tls_version,
        cipher_suites: list(&context.cipher_suites),
        ecdh_curves: list(&context.ecdh_curves),
        signature_algorithms: list(&context.signature_algorithms),
        alpn_protocols: context
            .alpn_protocols
            .iter()
            .flat_map(|a| a.split(','))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
        client_certificates,
    }
}

/// Names BoringSSL must know, and ALPN protocols it can offer: one it refuses fails the
/// listener, and the whole update with it.
pub(crate) fn settings(tls: &DownstreamTls) -> Result<(), envoy_rules::Violation> {
    names(
        &tls.cipher_suites,
        &tls.ecdh_curves,
        &tls.signature_algorithms,
        &tls.alpn_protocols,
    )
}

/// A TLS context's lists, each entry by the rule of its field (termination and origination
/// alike): an entry Envoy refuses fails the listener or cluster, and the whole update with it.
pub(crate) fn names(
    cipher_suites: &[String],
    ecdh_curves: &[String],
    signature_algorithms: &[String],
    alpn_protocols: &[String],
) -> Result<(), envoy_rules::Violation> {
    let checks: [(&str, &[String], envoy_rules::Check); 4] = [
        ("cipher_suites", cipher_suites, envoy_rules::cipher_suite),
        ("ecdh_curves", ecdh_curves, envoy_rules::ecdh_curve),
        (
            "signature_algorithms",
            signature_algorithms,
            envoy_rules::signature_algorithm,
        ),
        ("alpn_protocols", alpn_protocols, envoy_rules::alpn_protocol),
    ];
    checks
        .into_iter()
        .try_for_each(|(field, values, check)| values.iter().try_for_each(|v| check(field, v)))
}

/// A TLSContext's `secret`: `name`, or `name.namespace` unless `secret_namespacing: false`.
pub(crate) fn context_secret(spec: &TlsContextSpec, secret: &str, namespace: &str) -> Key {
    match secret.split_once('.') {
        Some((name, ns)) if spec.secret_namespacing != Some(false) => {
            (ns.to_owned(), name.to_owned())
        }
        _ => (namespace.to_owned(), secret.to_owned()),
    }
}

/// Settings that put keys on disk.
fn refuse_unsupported(c: &TlsContextSpec) -> Result<(), TlsError> {
    if c.cert_chain_file.is_some() || c.private_key_file.is_some() {
        return Err(TlsError::KeyFiles);
    }
    Ok(())
}

/// The SNI names a hostname matches: none for `*` (any), the name without its port otherwise.
/// Envoy's `server_names` know a leading `*.` only.
fn server_names(hostname: &str) -> Result<Vec<String>, TlsError> {
    let name = hostname
        .rsplit_once(':')
        .map_or(hostname, |(n, _)| n)
        .to_ascii_lowercase();
    match name.as_str() {
        "" | "*" => Ok(Vec::new()),
        n if !n.contains('*') || (n.starts_with("*.") && !n[2..].contains('*')) => Ok(vec![name]),
        _ => Err(TlsError::Sni(hostname.to_owned())),
    }
}

/// `None` for a Secret without a key (an `Opaque` CA or CRL).
pub(crate) fn certificate(s: &TlsSecret) -> Option<Certificate> {
    Some(Certificate {
        source: ObjectRef {
            kind: "Secret".into(),
            namespace: s.metadata.namespace.clone(),
            name: s.metadata.name.clone().unwrap_or_default(),
        },
        chain: s.certificate_chain.clone(),
        key: s.private_key.clone()?,
    })
}

#[cfg(test)]
mod tests {
    use super::server_names;

    #[test]
    fn sni_names_follow_the_hostname_without_its_port() {
        assert_eq!(server_names("*"), Ok(vec![]));
        assert_eq!(
            server_names("A.example.com:8443"),
            Ok(vec!["a.example.com".to_owned()])
        );
        assert_eq!(
            server_names("*.example.com"),
            Ok(vec!["*.example.com".to_owned()])
        );
        assert!(server_names("api.*").is_err());
        assert!(server_names("*foo.com").is_err());
    }
}
