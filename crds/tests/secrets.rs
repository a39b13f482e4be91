//! `kubernetes.io/tls` Secrets through the loader: certificates generated here, at test time;
//! every bad one is an error naming the file, the document, the Secret and the field, and never
//! quoting key material.

use k8s_openapi::ByteString;
use legate_crds::{Resource, loader::load_str};

struct Pair {
    cert: String,
    key: String,
}

fn self_signed(name: &str) -> Pair {
    let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    Pair {
        cert: c.cert.pem(),
        key: c.signing_key.serialize_pem(),
    }
}

fn base64(text: &str) -> String {
    serde_json::to_value(ByteString(text.as_bytes().to_vec()))
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn secret(type_: &str, data: &[(&str, String)]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: tls-a, namespace: team}}\ntype: {type_}\ndata:\n"
    );
    for (k, v) in data {
        out.push_str(&format!("  {k}: {v}\n"));
    }
    out
}

/// The only error of a one-document file, as text.
fn error_of(yaml: &str) -> String {
    let loaded = load_str("secrets.yaml", yaml).unwrap();
    assert!(loaded.resources.is_empty(), "{:?}", loaded.resources);
    assert_eq!(loaded.errors.len(), 1, "{:#?}", loaded.errors);
    loaded.errors[0].to_string()
}

#[test]
fn a_tls_secret_loads_with_its_pem_and_never_prints_its_key() {
    let p = self_signed("a.example.com");
    let yaml = secret(
        "kubernetes.io/tls",
        &[("tls.crt", base64(&p.cert)), ("tls.key", base64(&p.key))],
    );
    let loaded = load_str("secrets.yaml", &yaml).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    let [Resource::Secret(s)] = loaded.resources.as_slice() else {
        panic!("{:?}", loaded.resources)
    };
    assert_eq!(s.certificate_chain, p.cert);
    assert_eq!(
        s.private_key.as_ref().map(|k| k.expose()),
        Some(p.key.as_str())
    );
    assert_eq!(s.crl, None);
    let printed = format!("{:?}", loaded.resources);
    assert!(
        !printed.contains(p.key.lines().nth(1).unwrap()),
        "{printed}"
    );
    assert!(printed.contains("redacted"), "{printed}");

    // Written back (as stringData), it reads back the same.
    let again = serde_saphyr::to_string(&loaded.resources[0].to_json()).unwrap();
    let reloaded = load_str("again.yaml", &again).unwrap();
    assert_eq!(reloaded.resources, loaded.resources);
}

#[test]
fn string_data_serves_as_data_does() {
    let p = self_signed("a.example.com");
    let indent = |t: &str| t.replace('\n', "\n    ");
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: tls-a, namespace: team}}\n\
         type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n    {}\n  tls.key: |\n    {}\n",
        indent(p.cert.trim_end()),
        indent(p.key.trim_end())
    );
    let loaded = load_str("secrets.yaml", &yaml).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    assert_eq!(loaded.resources.len(), 1);
}

#[test]
fn bad_base64_names_the_field_and_not_the_value() {
    let p = self_signed("a.example.com");
    let error = error_of(&secret(
        "kubernetes.io/tls",
        &[
            ("tls.crt", "not*base64!".into()),
            ("tls.key", base64(&p.key)),
        ],
    ));
    assert_eq!(
        error,
        "secrets.yaml: document 1 (Secret team/tls-a): data.tls.crt: is not valid base64"
    );
}

#[test]
fn a_missing_key_is_named() {
    let p = self_signed("a.example.com");
    let error = error_of(&secret(
        "kubernetes.io/tls",
        &[("tls.crt", base64(&p.cert))],
    ));
    assert!(
        error.ends_with(
            "(Secret team/tls-a): data.tls.key: is required in a kubernetes.io/tls Secret"
        ),
        "{error}"
    );
}

#[test]
fn text_that_is_not_pem_is_named() {
    let p = self_signed("a.example.com");
    let error = error_of(&secret(
        "kubernetes.io/tls",
        &[("tls.crt", base64("hello")), ("tls.key", base64(&p.key))],
    ));
    assert!(
        error.ends_with("data.tls.crt: has no PEM CERTIFICATE block"),
        "{error}"
    );
    let error = error_of(&secret(
        "kubernetes.io/tls",
        &[("tls.crt", base64(&p.cert)), ("tls.key", base64(&p.cert))],
    ));
    assert!(
        error.contains("data.tls.key: has no PEM private key block"),
        "{error}"
    );
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let (a, b) = (self_signed("a.example.com"), self_signed("b.example.com"));
    let error = error_of(&secret(
        "kubernetes.io/tls",
        &[("tls.crt", base64(&a.cert)), ("tls.key", base64(&b.key))],
    ));
    assert!(
        error.ends_with("data.tls.key: does not match the first certificate of tls.crt"),
        "{error}"
    );
}

#[test]
fn an_x509_version_1_certificate_is_accepted_and_its_key_checked() {
    // Emissary hands such a Secret to Envoy, which serves it; rustls's own check (webpki) wants
    // v3. The fixture is made by OpenSSL (tests/data/x509-v1/README.md).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/x509-v1");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let (cert, key) = (read("tls.crt"), read("tls.key"));
    let loaded = load_str(
        "secrets.yaml",
        &secret(
            "kubernetes.io/tls",
            &[("tls.crt", base64(&cert)), ("tls.key", base64(&key))],
        ),
    )
    .unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    assert!(matches!(loaded.resources.as_slice(), [Resource::Secret(_)]));

    // The key must still be the certificate's.
    let other = self_signed("other.example.com");
    let error = error_of(&secret(
        "kubernetes.io/tls",
        &[("tls.crt", base64(&cert)), ("tls.key", base64(&other.key))],
    ));
    assert!(
        error.ends_with("data.tls.key: does not match the first certificate of tls.crt"),
        "{error}"
    );
}

#[test]
fn secrets_of_other_types_are_skipped_with_a_warning() {
    let loaded = load_str(
        "secrets.yaml",
        &secret("Opaque", &[("password", base64("hunter2"))]),
    )
    .unwrap();
    assert!(loaded.resources.is_empty() && loaded.errors.is_empty());
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0]
            .to_string()
            .contains("Secret of type \"Opaque\" skipped"),
        "{}",
        loaded.warnings[0]
    );
}

#[test]
fn a_secret_file_that_is_not_yaml_is_refused_without_printing_a_line_of_it() {
    // A tab where YAML wants spaces, in the middle of a key.
    let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: tls, namespace: default}\n\
                type: kubernetes.io/tls\nstringData:\n  tls.key: |\n    -----BEGIN PRIVATE KEY-----\n\
                \tMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n  : [unclosed\n";
    let e = legate_crds::loader::load_str("tls.yaml", text).unwrap_err();
    let message = e.to_string();
    assert!(
        message.starts_with("tls.yaml: not valid YAML: "),
        "{message}"
    );
    for secret in ["MIIE", "PRIVATE KEY", "BEGIN"] {
        assert!(
            !message.contains(secret),
            "the error quotes the key: {message}"
        );
    }
    assert!(message.contains("line"), "it still says where: {message}");
}

/// A client-certificate CA as Emissary's documentation creates it (`kubectl create secret
/// generic ca --from-file=tls.crt=ca.pem`): `Opaque`, `tls.crt` only (Emissary's
/// `fetch/secret.py` reads `tls.crt` and `crl.pem` from `Opaque` Secrets).
#[test]
fn an_opaque_secret_with_a_ca_or_a_crl_is_read_without_a_key() {
    let p = self_signed("ca");
    let loaded = load_str(
        "secrets.yaml",
        &secret("Opaque", &[("tls.crt", base64(&p.cert))]),
    )
    .unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    let [Resource::Secret(s)] = loaded.resources.as_slice() else {
        panic!("{:?}", loaded.resources)
    };
    assert_eq!(
        (s.certificate_chain.as_str(), s.private_key.is_none()),
        (p.cert.as_str(), true)
    );
    let error = error_of(&secret(
        "Opaque",
        &[(
            "crl.pem",
            base64("-----BEGIN X509 CRL-----\nbm90IGEgY3Js\n-----END X509 CRL-----\n"),
        )],
    ));
    assert!(error.contains("data.crl.pem"), "{error}");
    let error = error_of(&secret("Opaque", &[("tls.crt", base64("not pem"))]));
    assert!(error.contains("data.tls.crt"), "{error}");
}
