//! The command-line contract (DESIGN.md): what the agent refuses before it starts.

use std::process::Command;

fn agent(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_legate-agent"))
        .args(args)
        .output()
        .expect("run legate-agent");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn ads_and_envoy_admin_listen_on_loopback_only() {
    let (code, text) = agent(&[
        "run",
        "--config-dir",
        ".",
        "--ads-address",
        "0.0.0.0:18000",
        "--metrics-address",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("--ads-address 0.0.0.0:18000: the ADS server listens on loopback only"),
        "{text}"
    );

    let (code, text) = agent(&[
        "bootstrap",
        "--ads-address",
        "127.0.0.1:18000",
        "--admin-address",
        "0.0.0.0:19000",
        "--node-id",
        "n",
    ]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("0.0.0.0:19000"), "{text}");
}

/// An HTTP Listener.
const LISTENER: &str = "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: http, namespace: default}\n\
    spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}\n";

/// [`LISTENER`] and a Host for every hostname: what serves the Mappings `validate` judges.
const GATEWAY: &str = "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: http, namespace: default}\n\
    spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}\n---\n\
    apiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: any, namespace: default}\n\
    spec: {hostname: \"*\", requestPolicy: {insecure: {action: Route}}}\n";

/// `validate` on a directory holding [`GATEWAY`] and `routes`.
fn validate(routes: &str) -> (Option<i32>, String) {
    validate_with(GATEWAY, routes)
}

fn validate_with(gateway: &str, routes: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.yaml"), gateway).unwrap();
    std::fs::write(dir.path().join("routes.yaml"), routes).unwrap();
    agent(&["validate", dir.path().to_str().unwrap()])
}

#[test]
fn validate_reports_each_rejected_document_and_fails() {
    let (code, text) = validate(
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: ok, namespace: default}\nspec: {hostname: \"*\", prefix: /ok/, service: ok}\n---\n\
         apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: heavy, namespace: default}\nspec: {prefix: /h/, service: h, weight: 150}\n",
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("ok: Mapping default/ok"), "{text}");
    assert!(
        text.contains(
            "document 2 (Mapping default/heavy): spec.weight: must be at most 100, got 150"
        ),
        "{text}"
    );
    assert!(
        text.contains("3 accepted, 1 rejected, 0 not served"),
        "{text}"
    );
}

#[test]
fn validate_warns_of_what_run_would_accept_but_not_apply() {
    let (code, text) = validate(
        "apiVersion: getambassador.io/v3alpha1\nkind: AuthService\nmetadata: {name: auth, namespace: default}\nspec: {auth_service: auth, proto: grpc, protocol_version: v3, path_prefix: /x}\n---\n\
         apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: quote, namespace: default}\nspec: {hostname: \"*\", prefix: /q/, service: q, docs: {path: /docs}}\n",
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(
            "warning: AuthService default/auth: not applied to a gRPC AuthService (proto: grpc): \
             spec.path_prefix"
        ),
        "{text}"
    );
    assert!(
        text.contains("warning: Mapping default/quote: not applied yet: spec.docs"),
        "{text}"
    );
    assert!(
        text.contains("4 accepted, 0 rejected, 0 not served"),
        "{text}"
    );
}

#[test]
fn what_a_user_wrote_cannot_forge_a_line_of_output() {
    let dir = tempfile::tempdir().unwrap();
    let forged = "FORGED: Mapping default/admin accepted";
    std::fs::write(
        dir.path().join("hostile.yaml"),
        format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: \"x\\n{forged}\", namespace: default}}\nspec: {{prefix: /a/, service: a}}\n---\n\
             apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: keys, namespace: default}}\nspec: {{prefix: /k/, service: k, \"x\\u2028{forged}\": 1}}\n---\n\
             apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: value, namespace: default}}\nspec: {{prefix: /v/, service: v, load_balancer: {{policy: \"x\\r\\n{forged}\"}}}}\n"
        ),
    )
    .unwrap();
    let (code, text) = agent(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(1), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("FORGED")), "{text}");
    assert!(!text.contains(['\r', '\u{2028}']), "{text}");
    assert!(
        text.contains(&format!("\"x\\n{forged}\" is not a DNS-1123 subdomain")),
        "{text}"
    );
    assert!(
        text.contains(&format!("spec.x\\u{{2028}}{forged}: unknown field")),
        "{text}"
    );
    assert!(text.contains(&format!("x\\r\\n{forged}")), "{text}");
}

#[test]
fn validate_reports_what_run_would_refuse_after_loading() {
    let (code, text) = validate(
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: ok, namespace: default}\nspec: {hostname: \"*\", prefix: /ok/, service: ok}\n---\n\
         apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: regex, namespace: default}\nspec: {prefix: \"/(?<v>x)/\", prefix_regex: true, service: r}\n",
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("ok: Mapping default/ok"), "{text}");
    assert!(!text.contains("ok: Mapping default/regex"), "{text}");
    assert!(
        text.contains("error: Mapping default/regex (Invalid): "),
        "{text}"
    );
    assert!(
        text.contains("3 accepted, 1 rejected, 0 not served"),
        "{text}"
    );
}

/// What `run` accepts but would not serve fails validation too, with `run`'s reason: a Mapping
/// no Host admits would answer 404 in production.
#[test]
fn validate_fails_on_a_mapping_no_host_admits_and_names_it() {
    let (code, text) = validate_with(
        LISTENER,
        "apiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: shop, namespace: default}\n\
         spec: {hostname: shop.example.com, mappingNamespaces: {from: Same}}\n---\n\
         apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: quote, namespace: default}\nspec: {hostname: \"*\", prefix: /q/, service: q}\n---\n\
         apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: stray, namespace: team-b}\nspec: {hostname: shop.example.com, prefix: /s/, service: s}\n---\n\
         apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: nowhere, namespace: default}\nspec: {hostname: api.example.org, prefix: /n/, service: nowhere}\n",
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("ok: Mapping default/quote"), "{text}");
    assert!(
        text.contains("not served: Mapping team-b/stray (NotAllowedByHost): "),
        "{text}"
    );
    assert!(
        text.contains("not served: Mapping default/nowhere (NoMatchingHost): "),
        "{text}"
    );
    assert!(
        text.contains("3 accepted, 0 rejected, 2 not served"),
        "{text}"
    );
}

#[test]
fn convert_rewrites_emissary_v2_yaml_saying_what_changed_and_fails_on_what_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.yaml");
    std::fs::write(
        &old,
        "apiVersion: getambassador.io/v2
kind: Mapping
metadata: {name: quote, namespace: default}
spec: {prefix: /quote/, service: quote, host: quote.example.com}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: current, namespace: default}
spec: {hostname: quote.example.com}
",
    )
    .unwrap();
    let (code, text) = agent(&["convert", old.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        text,
        "---
# apiVersion: getambassador.io/v2 → getambassador.io/v3alpha1
# spec.host: quote.example.com → spec.hostname
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: quote
  namespace: default
spec:
  hostname: quote.example.com
  prefix: /quote/
  service: quote
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata:
  name: current
  namespace: default
spec:
  hostname: quote.example.com
"
    );
    // What it prints loads as it is.
    let converted = dir.path().join("converted");
    std::fs::create_dir(&converted).unwrap();
    std::fs::write(converted.join("all.yaml"), &text).unwrap();
    std::fs::write(converted.join("listener.yaml"), LISTENER).unwrap();
    let (code, out) = agent(&["validate", converted.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: getambassador.io/v2
kind: Mapping
metadata: {name: wild, namespace: default}
spec: {prefix: /, service: s, host: \"*.example.com\"}
",
    )
    .unwrap();
    let (code, text) = agent(&["convert", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "error: {}: document 1: spec.host: \"*.example.com\" is an exact host in v2",
            bad.display()
        )),
        "{text}"
    );
}
