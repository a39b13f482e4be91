//! Core v1 `Secret`s Legate reads: `kubernetes.io/tls` Secrets (the certificates and keys Hosts
//! terminate TLS with) and, as Emissary reads them (`fetch/secret.py`, `SecretInfo` in
//! `utils.py`), `Opaque` Secrets holding a CA certificate in `tls.crt` (a TLSContext's
//! `ca_secret`) or a certificate revocation list in `crl.pem` (its `crl_secret`). Validated once,
//! where they are read, so a bad one is an error naming its field (bad base64, a missing
//! `tls.crt`/`tls.key`, not PEM, a key that does not match the certificate) and what the rest of
//! Legate holds is known to be usable.
//!
//! The private key is never printed: [`PrivateKeyPem`]'s `Debug` shows its length only, and no
//! message quotes a value (k8s-openapi's base64 errors would, so base64 is checked here first).

use std::fmt;

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use rustls::{
    crypto::ring,
    pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, pem::PemObject},
};
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::Value;

use crate::loader::{self, FieldProblem};

/// The Secret type of certificates and keys.
pub const TLS_TYPE: &str = "kubernetes.io/tls";
/// The Secret type of CA certificates and CRLs (without a key), as Emissary reads them.
pub const OPAQUE_TYPE: &str = "Opaque";
/// Keys of a `kubernetes.io/tls` Secret; `tls.crt` is also where Emissary reads a CA from.
pub const CERT_KEY: &str = "tls.crt";
pub const KEY_KEY: &str = "tls.key";
/// Where Emissary reads a certificate revocation list from (`crl_secret`).
pub const CRL_KEY: &str = "crl.pem";

/// A validated Secret: a certificate chain and the private key of its first certificate, both
/// PEM (`kubernetes.io/tls`); or, in an `Opaque` Secret, CA certificates or a CRL.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsSecret {
    pub metadata: ObjectMeta,
    /// `tls.crt`: PEM certificates, the leaf first. Empty in an `Opaque` Secret with a CRL only.
    pub certificate_chain: String,
    /// `tls.key`: the PEM private key; `None` in an `Opaque` Secret (a CA), which then cannot
    /// serve as a Host's certificate.
    pub private_key: Option<PrivateKeyPem>,
    /// `crl.pem`: PEM certificate revocation lists, if the Secret has them.
    pub crl: Option<String>,
}

/// A PEM private key that does not print itself.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    /// The key itself, for the one place that hands it to Envoy.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKeyPem(<{} bytes, redacted>)", self.0.len())
    }
}

impl TlsSecret {
    /// Validates a Secret as Kubernetes holds it (`data` already decoded; `stringData` wins
    /// over `data` for the same key, as the API server merges them).
    pub fn from_secret(secret: Secret) -> Result<Self, Vec<FieldProblem>> {
        let type_ = secret.type_.as_deref().unwrap_or(OPAQUE_TYPE);
        if type_ != TLS_TYPE && type_ != OPAQUE_TYPE {
            return Err(vec![problem(
                "type",
                format!(
                    "is {type_:?}; only {TLS_TYPE} Secrets (and {OPAQUE_TYPE} ones with a CA or \
                     a CRL) hold certificates for Legate"
                ),
            )]);
        }
        let crl = match entry(&secret, CRL_KEY) {
            Ok(e) => Some(revocation_lists(&e).map(|()| e.text)),
            Err(_) => None,
        };
        if type_ == OPAQUE_TYPE {
            return opaque(secret, crl);
        }
        let cert = entry(&secret, CERT_KEY);
        let key = entry(&secret, KEY_KEY);
        let mut problems: Vec<FieldProblem> = [&cert, &key]
            .into_iter()
            .filter_map(|e| e.as_ref().err().cloned())
            .chain(crl.iter().filter_map(|c| c.as_ref().err().cloned()))
            .collect();
        let (Ok(cert), Ok(key)) = (cert, key) else {
            return Err(problems);
        };
        let chain = certificates(&cert).map_err(|p| problems.push(p));
        let private = private_key(&key).map_err(|p| problems.push(p));
        let (Ok(chain), Ok(private), true) = (chain, private, problems.is_empty()) else {
            return Err(problems);
        };
        if let Err(p) = key_matches(&chain, private, &cert.field, &key.field) {
            return Err(vec![p]);
        }
        Ok(Self {
            metadata: secret.metadata,
            certificate_chain: cert.text,
            private_key: Some(PrivateKeyPem(key.text)),
            crl: crl.and_then(Result::ok),
        })
    }
}

/// An `Opaque` Secret: CA certificates in `tls.crt` (every one X.509), a CRL in `crl.pem`, or
/// both; a `tls.key` beside them is not read (a CA's key has no business in a gateway).
fn opaque(
    secret: Secret,
    crl: Option<Result<String, FieldProblem>>,
) -> Result<TlsSecret, Vec<FieldProblem>> {
    let cert = entry(&secret, CERT_KEY).ok();
    let chain = cert.as_ref().map(|c| {
        let chain = certificates(c)?;
        chain.iter().enumerate().try_for_each(|(n, der)| {
            x509_parser::parse_x509_certificate(der)
                .map(|_| ())
                .map_err(|e| {
                    problem(
                        &c.field,
                        format!("unusable: certificate {} is not X.509: {e}", n + 1),
                    )
                })
        })
    });
    let problems: Vec<FieldProblem> = chain
        .iter()
        .filter_map(|c| c.as_ref().err().cloned())
        .chain(crl.iter().filter_map(|c| c.as_ref().err().cloned()))
        .collect();
    if !problems.is_empty() {
        return Err(problems);
    }
    if cert.is_none() && crl.is_none() {
        return Err(vec![problem(
            &format!("data.{CERT_KEY}"),
            format!("or data.{CRL_KEY} is required in an {OPAQUE_TYPE} Secret Legate reads"),
        )]);
    }
    Ok(TlsSecret {
        metadata: secret.metadata,
        certificate_chain: cert.map(|c| c.text).unwrap_or_default(),
        private_key: None,
        crl: crl.and_then(Result::ok),
    })
}

/// Why a Secret document is skipped rather than read: it is neither of the TLS type nor an
/// `Opaque` Secret with a CA (`tls.crt`) or a CRL (`crl.pem`), the keys Emissary reads.
pub(crate) fn skip_reason(document: &Value) -> Option<String> {
    let type_ = document
        .pointer("/type")
        .and_then(Value::as_str)
        .unwrap_or(OPAQUE_TYPE);
    let has = |key: &str| {
        ["/data", "/stringData"]
            .iter()
            .any(|at| document.pointer(at).and_then(|d| d.get(key)).is_some())
    };
    let read = type_ == TLS_TYPE || (type_ == OPAQUE_TYPE && (has(CERT_KEY) || has(CRL_KEY)));
    (!read).then(|| {
        format!(
            "Secret of type {type_:?} skipped: Legate reads only {TLS_TYPE} Secrets and \
             {OPAQUE_TYPE} ones with {CERT_KEY} (a CA) or {CRL_KEY}"
        )
    })
}

/// Decodes and validates a Secret document (the loader's entry point).
pub(crate) fn decode(
    value: Value,
    warn: &mut dyn FnMut(String),
) -> Result<TlsSecret, Vec<FieldProblem>> {
    let bad_base64: Vec<FieldProblem> = value
        .pointer("/data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, v)| {
            v.is_string() && serde_json::from_value::<ByteString>((*v).clone()).is_err()
        })
        .map(|(k, _)| problem(&format!("data.{k}"), "is not valid base64".into()))
        .collect();
    if !bad_base64.is_empty() {
        return Err(bad_base64);
    }
    TlsSecret::from_secret(loader::decode::<Secret>(value, warn)?)
}

/// Written back as Kubernetes would take it, with `stringData` (PEM is text).
impl Serialize for TlsSecret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let string_data = [
            Some((CERT_KEY, self.certificate_chain.as_str())).filter(|(_, c)| !c.is_empty()),
            self.private_key.as_ref().map(|k| (KEY_KEY, k.expose())),
            self.crl.as_deref().map(|c| (CRL_KEY, c)),
        ];
        let type_ = if self.private_key.is_some() {
            TLS_TYPE
        } else {
            OPAQUE_TYPE
        };
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("apiVersion", "v1")?;
        map.serialize_entry("kind", "Secret")?;
        map.serialize_entry("metadata", &self.metadata)?;
        map.serialize_entry("type", type_)?;
        map.serialize_entry(
            "stringData",
            &string_data
                .into_iter()
                .flatten()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )?;
        map.end()
    }
}

/// One key's value and the field it came from.
#[derive(Clone)]
struct Entry {
    field: String,
    text: String,
}

fn entry(secret: &Secret, key: &str) -> Result<Entry, FieldProblem> {
    let (field, bytes) = if let Some(s) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        (format!("stringData.{key}"), s.as_bytes().to_vec())
    } else if let Some(b) = secret.data.as_ref().and_then(|d| d.get(key)) {
        (format!("data.{key}"), b.0.clone())
    } else {
        return Err(problem(
            &format!("data.{key}"),
            format!("is required in a {TLS_TYPE} Secret"),
        ));
    };
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Entry { field, text }),
        Err(_) => Err(problem(&field, "is not PEM (not even text)".into())),
    }
}

fn certificates(e: &Entry) -> Result<Vec<CertificateDer<'static>>, FieldProblem> {
    let chain = CertificateDer::pem_slice_iter(e.text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| problem(&e.field, format!("is not PEM: {err}")))?;
    if chain.is_empty() {
        return Err(problem(&e.field, "has no PEM CERTIFICATE block".into()));
    }
    Ok(chain)
}

/// PEM CRLs, each one a CRL Envoy can load (it refuses the whole listener update otherwise).
fn revocation_lists(e: &Entry) -> Result<(), FieldProblem> {
    let crls = CertificateRevocationListDer::pem_slice_iter(e.text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| problem(&e.field, format!("is not PEM: {err}")))?;
    if crls.is_empty() {
        return Err(problem(&e.field, "has no PEM X509 CRL block".into()));
    }
    crls.iter().enumerate().try_for_each(|(n, der)| {
        x509_parser::parse_x509_crl(der).map(|_| ()).map_err(|err| {
            problem(
                &e.field,
                format!("unusable: CRL {} is not an X.509 CRL: {err}", n + 1),
            )
        })
    })
}

fn private_key(e: &Entry) -> Result<PrivateKeyDer<'static>, FieldProblem> {
    PrivateKeyDer::from_pem_slice(e.text.as_bytes()).map_err(|err| {
        let what = match err {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "has no PEM private key block (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
                    .to_owned()
            }
            other => format!("is not PEM: {other}"),
        };
        problem(&e.field, what)
    })
}

/// Every certificate parses and the key is the first one's. X.509 v1 certificates too, which
/// Envoy serves and Emissary accepts (rustls's own check, through webpki, wants v3).
fn key_matches(
    chain: &[CertificateDer<'static>],
    private: PrivateKeyDer<'static>,
    cert_field: &str,
    key_field: &str,
) -> Result<(), FieldProblem> {
    let mut leaf_key = None;
    for (n, der) in chain.iter().enumerate() {
        match x509_parser::parse_x509_certificate(der) {
            Ok((_, parsed)) => {
                if n == 0 {
                    leaf_key = Some(parsed.public_key().raw.to_vec());
                }
            }
            Err(e) => {
                return Err(problem(
                    cert_field,
                    format!("unusable: certificate {} is not X.509: {e}", n + 1),
                ));
            }
        }
    }
    let signing = ring::default_provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| problem(key_field, format!("unusable: {e}")))?;
    // A key type whose public half rustls cannot derive is left to Envoy to check.
    match (signing.public_key(), leaf_key) {
        (Some(public), Some(leaf)) if public.as_ref() != leaf.as_slice() => Err(problem(
            key_field,
            format!("does not match the first certificate of {CERT_KEY}"),
        )),
        _ => Ok(()),
    }
}

fn problem(field: &str, message: String) -> FieldProblem {
    FieldProblem {
        field: field.to_owned(),
        message,
    }
}
