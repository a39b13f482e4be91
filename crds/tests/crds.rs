//! The generated CRDs: structural (the API server's rules for `openAPIV3Schema`), each with a
//! status subresource, printer columns and the `legate` category, and the committed YAML under
//! `config/crd/` equal to what the types generate (`make crds` rewrites it).

use std::path::PathBuf;

use legate_crds::crds;
use serde_json::Value;

/// Collects every violation of the structural-schema rules under `node`.
fn structural_problems(path: &str, node: &Value, problems: &mut Vec<String>) {
    let Some(map) = node.as_object() else {
        return problems.push(format!("{path}: schema node is not an object"));
    };
    for forbidden in [
        "$ref",
        "definitions",
        "$defs",
        "oneOf",
        "anyOf",
        "allOf",
        "not",
        "const",
    ] {
        if map.contains_key(forbidden) {
            problems.push(format!(
                "{path}: `{forbidden}` is not allowed in a structural schema"
            ));
        }
    }
    let escape = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !map.contains_key("type") && !escape {
        problems.push(format!("{path}: no `type`"));
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        problems.push(format!(
            "{path}: both `properties` and `additionalProperties`"
        ));
    }
    if map.get("additionalProperties") == Some(&Value::Bool(true)) {
        problems.push(format!("{path}: `additionalProperties: true` lets the server prune what is below; use x-kubernetes-preserve-unknown-fields"));
    }
    if map.get("type").and_then(Value::as_str) == Some("array") && !map.contains_key("items") {
        problems.push(format!("{path}: array without `items`"));
    }
    if let Some(Value::Object(properties)) = map.get("properties") {
        for (name, schema) in properties {
            structural_problems(&format!("{path}.{name}"), schema, problems);
        }
    }
    if let Some(items) = map.get("items") {
        structural_problems(&format!("{path}[]"), items, problems);
    }
    if let Some(additional @ Value::Object(_)) = map.get("additionalProperties") {
        structural_problems(&format!("{path}{{}}"), additional, problems);
    }
}

#[test]
fn every_crd_is_structural_with_status_columns_and_category() {
    let crds = crds();
    assert_eq!(crds.len(), 14);
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap();
        assert_eq!(crd.spec.scope, "Namespaced", "{name}");
        assert!(
            crd.spec
                .names
                .categories
                .as_ref()
                .unwrap()
                .contains(&"legate".to_owned()),
            "{name}"
        );
        assert_eq!(crd.spec.versions.len(), 1, "{name}");
        let version = &crd.spec.versions[0];
        assert!(version.served && version.storage, "{name}");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{name}: no status subresource"
        );
        let columns = version.additional_printer_columns.as_ref().unwrap();
        assert!(
            columns.iter().any(|c| c.json_path.starts_with(".status")),
            "{name}: no status column"
        );
        assert!(
            columns.iter().any(|c| c.name == "Age"),
            "{name}: no Age column"
        );

        let schema = serde_json::to_value(
            version
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(schema["type"], "object", "{name}");
        let mut problems = Vec::new();
        structural_problems(&name, &schema, &mut problems);
        assert!(
            problems.is_empty(),
            "{name} is not structural:\n{}",
            problems.join("\n")
        );
        let status = &schema["properties"]["status"]["properties"];
        assert_eq!(
            status["conditions"]["type"], "array",
            "{name}: status.conditions"
        );
        for field in ["type", "status", "reason", "message", "lastTransitionTime"] {
            assert!(
                status["conditions"]["items"]["properties"]
                    .get(field)
                    .is_some(),
                "{name}: conditions lack {field}"
            );
        }
        assert_eq!(
            status["observedGeneration"]["type"], "integer",
            "{name}: status.observedGeneration"
        );
    }
}

#[test]
fn committed_crd_yaml_is_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/crd");
    for (name, yaml) in legate_crds::crd::rendered().unwrap() {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == yaml,
            "config/crd/{name} differs from what the types generate: run `make crds` and commit the result"
        );
    }
}
