//! Core v1 `Secret`s of type `kubernetes.io/tls`: the certificates and keys Hosts terminate TLS
//! with. Validated once, where they are read, so a bad one is an error naming its field (bad
//! base64, a missing `tls.crt`/`tls.key`, not PEM, a key that does not match the certificate)
//! and what the rest of Legate holds is known to be usable.
//!
//! The private key is never printed: [`PrivateKeyPem`]'s `Debug` shows its length only, and no
//! message quotes a value (k8s-openapi's base64 errors would, so base64 is checked here first).

use std::fmt;

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use rustls::{
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::Value;

use crate::loader::{self, FieldProblem};

/// The only Secret type Legate reads.
pub const TLS_TYPE: &str = "kubernetes.io/tls";
/// Keys of a `kubernetes.io/tls` Secret.
pub const CERT_KEY: &str = "tls.crt";
pub const KEY_KEY: &str = "tls.key";

/// A validated `kubernetes.io/tls` Secret: a certificate chain and the private key of its first
/// certificate, both PEM.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsSecret {
    pub metadata: ObjectMeta,
    /// `tls.crt`: PEM certificates, the leaf first.
    pub certificate_chain: String,
    /// `tls.key`: the PEM private key.
    pub private_key: PrivateKeyPem,
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
        let type_ = secret.type_.as_deref().unwrap_or("Opaque");
        if type_ != TLS_TYPE {
            return Err(vec![problem(
                "type",
                format!("is {type_:?}; only {TLS_TYPE} Secrets hold certificates for Legate"),
            )]);
        }
        let cert = entry(&secret, CERT_KEY);
        let key = entry(&secret, KEY_KEY);
        let mut problems: Vec<FieldProblem> = [&cert, &key]
            .into_iter()
            .filter_map(|e| e.as_ref().err().cloned())
            .collect();
        let (Ok(cert), Ok(key)) = (cert, key) else {
            return Err(problems);
        };
        let chain = certificates(&cert).map_err(|p| problems.push(p));
        let private = private_key(&key).map_err(|p| problems.push(p));
        let (Ok(chain), Ok(private)) = (chain, private) else {
            return Err(problems);
        };
        if let Err(p) = key_matches(&chain, private, &cert.field, &key.field) {
            return Err(vec![p]);
        }
        Ok(Self {
            metadata: secret.metadata,
            certificate_chain: cert.text,
            private_key: PrivateKeyPem(key.text),
        })
    }
}

/// Why a Secret document is skipped rather than read: it is not of the TLS type.
pub(crate) fn skip_reason(document: &Value) -> Option<String> {
    let type_ = document
        .pointer("/type")
        .and_then(Value::as_str)
        .unwrap_or("Opaque");
    (type_ != TLS_TYPE)
        .then(|| format!("Secret of type {type_:?} skipped: Legate reads only {TLS_TYPE} Secrets"))
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
            (CERT_KEY, self.certificate_chain.as_str()),
            (KEY_KEY, self.private_key.expose()),
        ];
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("apiVersion", "v1")?;
        map.serialize_entry("kind", "Secret")?;
        map.serialize_entry("metadata", &self.metadata)?;
        map.serialize_entry("type", TLS_TYPE)?;
        map.serialize_entry(
            "stringData",
            &string_data
                .into_iter()
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
