//! What a careless or hostile team can write costs a bounded amount, is refused alone with the
//! field named, and never forges or breaks a line of the agent's output.

use legate_crds::{
    Resource,
    loader::{MAX_DOCUMENT_BYTES, MAX_DOCUMENT_NODES, MAX_DOCUMENTS, load_object, load_str},
};

const GOOD: &str = "\
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: good, namespace: default}
spec: {prefix: /good/, service: good}
";

fn mapping_with(extra_spec: &str) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: hostile, \
         namespace: default}}\nspec:\n  prefix: /hostile/\n  service: hostile\n{extra_spec}"
    )
}

/// The hostile document between two good ones: it is refused alone, and both good ones load.
fn refused_between_good_ones(hostile: &str) -> legate_crds::loader::DocumentError {
    let text = format!(
        "{GOOD}---\n{hostile}\n---\n{}",
        GOOD.replace("good", "after")
    );
    let loaded = load_str("hostile.yaml", &text).unwrap();
    let names: Vec<_> = loaded
        .resources
        .iter()
        .map(|r| r.object_ref().name)
        .collect();
    assert_eq!(names, ["good", "after"], "{:#?}", loaded.errors);
    assert_eq!(loaded.errors.len(), 1, "{:#?}", loaded.errors);
    loaded.errors.into_iter().next().unwrap()
}

#[test]
fn a_million_ambassador_ids_are_refused_before_they_are_built() {
    let ids = "  - blue\n".repeat(1_000_000);
    let error = refused_between_good_ones(&mapping_with(&format!("  ambassador_id:\n{ids}")));
    assert_eq!(error.index, 2);
    let line = error.to_string();
    assert!(
        line.contains(&format!("at most {MAX_DOCUMENT_NODES} YAML nodes")),
        "{line}"
    );
}

#[test]
fn a_document_of_more_text_than_kubernetes_stores_is_refused() {
    let huge = "x".repeat(MAX_DOCUMENT_BYTES + 1);
    let error = refused_between_good_ones(&mapping_with(&format!("  host_rewrite: {huge}")));
    assert!(error.to_string().contains("larger than a document may be"));
}

#[test]
fn a_file_of_more_documents_than_allowed_is_refused_whole() {
    let text = "--- 1\n".repeat(MAX_DOCUMENTS + 1);
    let e = load_str("many.yaml", &text).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "many.yaml: not valid YAML: more than {MAX_DOCUMENTS} documents"
        )),
        "{e}"
    );
}

#[test]
fn an_object_from_the_api_server_has_the_same_budget() {
    let mut object: serde_json::Value = serde_saphyr::from_str(&mapping_with("")).unwrap();
    object["spec"]["ambassador_id"] = vec!["blue"; MAX_DOCUMENT_NODES].into();
    let loaded = load_object("watch", object);
    assert!(loaded.resources.is_empty());
    assert_eq!(
        loaded.errors[0].to_string(),
        format!(
            "watch: document 1 (Mapping default/hostile): larger than a document may be (at most \
             {MAX_DOCUMENT_NODES} nodes and {MAX_DOCUMENT_BYTES} bytes of text)"
        )
    );
}

#[test]
fn null_is_absent_as_the_api_server_has_it() {
    let with_nulls = "\
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: quote, namespace: default, labels: null}
spec:
  prefix: /quote/
  service: quote
  timeout_ms: null
  retry_policy: {retry_on: 5xx, per_try_timeout: null}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: example, namespace: default}
spec:
  hostname: example.com
  tls: {min_tls_version: v1.2, max_tls_version: null}
";
    let without = "\
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: quote, namespace: default}
spec:
  prefix: /quote/
  service: quote
  retry_policy: {retry_on: 5xx}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: example, namespace: default}
spec:
  hostname: example.com
  tls: {min_tls_version: v1.2}
";
    let loaded = load_str("nulls.yaml", with_nulls).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let expected: Vec<Resource> = load_str("plain.yaml", without).unwrap().resources;
    assert_eq!(loaded.resources, expected);
}

#[test]
fn a_name_kubernetes_would_refuse_is_refused_and_cannot_forge_a_line() {
    let hostile = GOOD.replace(
        "name: good",
        "name: \"x\\nplain.yaml: document 9 (Mapping default/y): forged\"",
    );
    let error = refused_between_good_ones(&hostile);
    let line = error.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(error.object.is_none(), "{error:?}");
    assert_eq!(error.problems[0].field, "metadata.name");
    assert!(
        line.contains(
            r#""x\nplain.yaml: document 9 (Mapping default/y): forged" is not a DNS-1123 subdomain"#
        ),
        "{line}"
    );

    let hostile = GOOD.replace("namespace: default", "namespace: Team-A");
    let error = refused_between_good_ones(&hostile);
    assert_eq!(error.problems[0].field, "metadata.namespace");
    assert!(
        error
            .to_string()
            .contains(r#""Team-A" is not a DNS-1123 label"#)
    );
}

#[test]
fn what_a_user_wrote_is_printed_escaped() {
    // A value in a type error, a key of an unknown field, an unknown kind: all user text.
    let value = refused_between_good_ones(&mapping_with(
        "  load_balancer: {policy: \"evil\\u2028line\\nnext\"}",
    ));
    let line = value.to_string();
    assert!(line.contains(r"evil\u{2028}line\nnext"), "{line}");

    let text = format!(
        "{}\n---\napiVersion: v1\nkind: \"Evil\\nKind\"\nmetadata: {{name: x}}\n",
        mapping_with("  \"bad\\rkey\": 1")
    );
    let loaded = load_str("keys.yaml", &text).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    for w in &warnings {
        assert!(!w.contains(['\n', '\r', '\u{2028}']), "{w}");
    }
    assert!(
        warnings[0].contains(r"spec.bad\rkey: unknown field"),
        "{warnings:#?}"
    );
    assert!(
        warnings[1].contains(r"kind Evil\nKind (v1)"),
        "{warnings:#?}"
    );
}

#[test]
fn after_a_document_over_budget_line_numbers_stay_true() {
    let hostile = mapping_with(&format!(
        "  ambassador_id:\n{}",
        "  - blue\n".repeat(20_000)
    ));
    let text = format!("{GOOD}---\n{hostile}---\n{GOOD}---\nkind: [unclosed\n");
    let line = text.lines().count();
    let e = load_str("lines.yaml", &text).unwrap_err();
    assert!(e.to_string().contains(&format!("line {line}")), "{e}");
}

#[test]
fn a_file_of_many_documents_over_budget_is_refused_whole() {
    let hostile = mapping_with(&format!(
        "  ambassador_id:\n{}",
        "  - blue\n".repeat(20_000)
    ));
    let text = format!("{hostile}---\n").repeat(9);
    let e = load_str("bombs.yaml", &text).unwrap_err();
    assert!(
        e.to_string().contains("more than 8 documents larger"),
        "{e}"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_refused_naming_the_field_and_what_it_must_be() {
    let cases = [
        ("metadata: 5", "metadata: expected a map"),
        ("metadata: {name: [1]}", "metadata.name: expected a string"),
        ("spec: 5", "spec: invalid type: integer `5`"),
        (
            "spec: {prefix: /a/, service: a, tls: 5}",
            "spec.tls: expected a boolean or a string",
        ),
        (
            "spec: {prefix: /a/, service: a, add_request_headers: {x: [1]}}",
            "spec.add_request_headers.x: expected a string, or a map with `value`",
        ),
        (
            "spec: {prefix: /a/, service: a, query_parameters: {a: {b: 1}}}",
            "spec.query_parameters.a: expected a boolean or a string",
        ),
        (
            "spec: {prefix: /a/, service: {a: 1}}",
            "spec.service: invalid type: map, expected a string",
        ),
        (
            "spec: {prefix: /a/, service: a, retry_policy: [5xx]}",
            "spec.retry_policy: must be of type object, got array",
        ),
    ];
    for (yaml, expected) in cases {
        let mut doc = String::from("apiVersion: getambassador.io/v3alpha1\nkind: Mapping\n");
        if !yaml.starts_with("metadata") {
            doc.push_str("metadata: {name: m, namespace: default}\n");
        }
        doc.push_str(yaml);
        if yaml.starts_with("metadata") {
            doc.push_str("\nspec: {prefix: /a/, service: a}");
        }
        let error = refused_between_good_ones(&doc);
        assert!(error.to_string().contains(expected), "{yaml}: {error}");
    }
}
