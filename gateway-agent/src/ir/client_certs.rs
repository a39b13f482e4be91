//! Client certificates at the edge (mTLS termination): a TLSContext's (or a Host's inline `tls`)
//! `ca_secret`, `crl_secret` and `cert_required`.
//!
//! Emissary (`ir/irtlscontext.py` `resolve`, `envoy/v3/v3tls.py` `add_context`) reads the CA from
//! the `tls.crt` of the `ca_secret` Secret and the CRL from the `crl.pem` of the `crl_secret`
//! one (`Opaque` Secrets, as its documentation creates them; `kubernetes.io/tls` ones too), each
//! in the context's namespace unless named `name.namespace`, and writes them as the
//! `DownstreamTlsContext`'s `validation_context` (`trusted_ca`, `crl`); `cert_required` becomes
//! `require_client_certificate`. Without it a client certificate is requested and, if one is
//! presented, verified; a client without one is served.
//!
//! Here the CA and CRL reach Envoy as one SDS validation-context secret with its own name (the
//! Secrets it comes from), so rotating the CA changes that secret only: no listener changes and
//! no connection is drained. Departures from Emissary, each for the user:
//! - `cacert_chain_file` is refused: CAs reach Envoy over SDS only, never through files.
//! - A Secret in another namespace is refused (Legate's rule, as for `secret`).
//! - `crl_secret` without `ca_secret` is refused (Envoy would refuse the listener), and so is
//!   `cert_required` without `ca_secret` (Envoy would then accept any certificate at all).
//! - A `cert_required` key inside the CA Secret (an Emissary quirk) is not read: the TLSContext
//!   says whether a certificate is required.

use std::collections::BTreeMap;

use legate_crds::{ObjectRef, TlsSecret, tls_context::TlsContextSpec};

use super::{Listener, Reason, tls::Terminations};

/// How a chain asks for client certificates: part of [`super::DownstreamTls`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificates {
    /// The SDS name of the [`ValidationContext`]: derived from its Secrets, never from a Host.
    pub validation: String,
    /// Envoy's `require_client_certificate`: a client without a certificate is refused at the
    /// handshake. Otherwise one is requested and verified if presented.
    pub required: bool,
}

/// The CA (and CRL) client certificates are verified against, as SDS serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationContext {
    /// The Secret the CA comes from.
    pub ca_source: ObjectRef,
    /// PEM CA certificates (a bundle trusts each).
    pub trusted_ca: String,
    /// The Secret the CRL comes from, and its PEM CRLs.
    pub crl: Option<(ObjectRef, String)>,
}

/// Why client-certificate validation cannot be served; each names the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientCertError {
    #[error(
        "cacert_chain_file: CA certificates reach Envoy over SDS only, never through files; use \
         ca_secret"
    )]
    CaFile,
    #[error("crl_secret: a CRL needs the CA whose certificates it revokes: set ca_secret too")]
    CrlWithoutCa,
    #[error(
        "cert_required: needs ca_secret (without a CA to verify against, any certificate would \
         be accepted)"
    )]
    RequiredWithoutCa,
    #[error(
        "{field}: Secret {secret} is in another namespace; a TLS context may use Secrets of its \
         own namespace ({namespace}) only, and Legate has no cross-namespace delegation"
    )]
    OtherNamespace {
        field: &'static str,
        secret: String,
        namespace: String,
    },
    #[error("{field}: Secret {secret} not found (or not a valid Secret: see the loader's errors)")]
    NotFound { field: &'static str, secret: String },
    #[error("ca_secret: Secret {0} has no tls.crt (the CA certificates)")]
    NoCa(String),
    #[error("crl_secret: Secret {0} has no crl.pem (the certificate revocation list)")]
    NoCrl(String),
}

impl ClientCertError {
    pub(super) fn reason(&self) -> Reason {
        match self {
            Self::CaFile => Reason::NotSupported,
            Self::CrlWithoutCa | Self::RequiredWithoutCa | Self::NoCa(_) | Self::NoCrl(_) => {
                Reason::Invalid
            }
            Self::OtherNamespace { .. } => Reason::RefNotPermitted,
            Self::NotFound { .. } => Reason::SecretNotFound,
        }
    }
}

/// A Secret as namespace and name.
type Key = (String, String);

/// What a TLS context asks of client certificates: nothing, or a CA (and CRL) and whether one is
/// required; the validation context is returned to be served under [`ClientCertificates::validation`].
pub(super) fn resolve(
    context: &TlsContextSpec,
    namespace: &str,
    secrets: &BTreeMap<Key, &TlsSecret>,
) -> Result<Option<(ClientCertificates, ValidationContext)>, ClientCertError> {
    if context.cacert_chain_file.is_some() {
        return Err(ClientCertError::CaFile);
    }
    let required = context.cert_required == Some(true);
    let Some(ca_name) = context.ca_secret.as_deref() else {
        return match (&context.crl_secret, required) {
            (Some(_), _) => Err(ClientCertError::CrlWithoutCa),
            (None, true) => Err(ClientCertError::RequiredWithoutCa),
            (None, false) => Ok(None),
        };
    };
    let lookup = |field: &'static str, name: &str| {
        let (ns, name) = secret_key(context, name, namespace);
        let secret = format!("{ns}/{name}");
        if ns != namespace {
            return Err(ClientCertError::OtherNamespace {
                field,
                secret,
                namespace: namespace.to_owned(),
            });
        }
        match secrets.get(&(ns, name)) {
            Some(s) => Ok((*s, secret)),
            None => Err(ClientCertError::NotFound { field, secret }),
        }
    };
    let (ca, ca_ref) = lookup("ca_secret", ca_name)?;
    if ca.certificate_chain.is_empty() {
        return Err(ClientCertError::NoCa(ca_ref));
    }
    let mut validation = format!("ca:{ca_ref}");
    let crl = match context.crl_secret.as_deref() {
        None => None,
        Some(name) => {
            let (s, crl_ref) = lookup("crl_secret", name)?;
            let pem = s
                .crl
                .clone()
                .ok_or(ClientCertError::NoCrl(crl_ref.clone()))?;
            validation.push_str(&format!("+crl:{crl_ref}"));
            Some((object(s), pem))
        }
    };
    Ok(Some((
        ClientCertificates {
            validation,
            required,
        },
        ValidationContext {
            ca_source: object(ca),
            trusted_ca: ca.certificate_chain.clone(),
            crl,
        },
    )))
}

/// The validation contexts the listeners' TLS chains use, by SDS name.
pub(super) fn used(
    listeners: &[Listener],
    terminations: &Terminations,
) -> BTreeMap<String, ValidationContext> {
    listeners
        .iter()
        .flat_map(|l| &l.tls_chains)
        .filter_map(|c| c.tls.client_certificates.as_ref())
        .filter_map(|c| {
            let v = terminations.validation_contexts.get(&c.validation)?;
            Some((c.validation.clone(), v.clone()))
        })
        .collect()
}

/// `name`, or `name.namespace` unless `secret_namespacing: false`, as Emissary resolves every
/// Secret of a TLSContext (`IRTLSContext.resolve_secret`).
fn secret_key(context: &TlsContextSpec, name: &str, namespace: &str) -> Key {
    match name.rsplit_once('.') {
        Some((name, ns)) if context.secret_namespacing != Some(false) => {
            (ns.to_owned(), name.to_owned())
        }
        _ => (namespace.to_owned(), name.to_owned()),
    }
}

fn object(s: &TlsSecret) -> ObjectRef {
    ObjectRef {
        kind: "Secret".into(),
        namespace: s.metadata.namespace.clone(),
        name: s.metadata.name.clone().unwrap_or_default(),
    }
}
