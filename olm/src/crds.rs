//! The CRDs of `config/crd/`: copied into the bundle, and described in the CSV's
//! `customresourcedefinitions.owned` with descriptors derived from their schemas, so a field added
//! to a type shows up in the OLM console without anyone editing the CSV.

use serde_json::{Value, json};

use crate::{error::Result, source::Document};

#[derive(Clone, Debug, PartialEq)]
pub struct Crd {
    /// `<group>_<plural>.yaml`, as kubebuilder and `make crds` name it.
    pub file_name: String,
    pub object: Value,
    /// One `owned` entry per served version.
    pub owned: Vec<Value>,
    pub group: String,
    pub kind: String,
}

pub fn crds(documents: &[Document]) -> Result<Vec<Crd>> {
    documents
        .iter()
        .filter(|d| d.kind() == "CustomResourceDefinition")
        .map(crd)
        .collect()
}

fn crd(document: &Document) -> Result<Crd> {
    let name = document.name()?;
    let group = document.str("spec.group")?;
    let kind = document.str("spec.names.kind")?;
    let plural = document.str("spec.names.plural")?;
    let mut owned = Vec::new();
    for (i, version) in document.list("spec.versions")?.iter().enumerate() {
        if version.get("served") != Some(&Value::Bool(true)) {
            continue;
        }
        let at = format!("spec.versions[{i}]");
        let Some(version_name) = version.get("name").and_then(Value::as_str) else {
            return Err(document.error(&format!("{at}.name"), "is required"));
        };
        let schema = version.pointer("/schema/openAPIV3Schema").ok_or_else(|| {
            document.error(&format!("{at}.schema.openAPIV3Schema"), "is required")
        })?;
        let Some(description) = schema.get("description").and_then(Value::as_str) else {
            return Err(document.error(
                &format!("{at}.schema.openAPIV3Schema.description"),
                "is required: it is the CRD's description in the CSV (a doc comment on the type)",
            ));
        };
        owned.push(json!({
            "name": name,
            "version": version_name,
            "kind": kind,
            "displayName": display_name(kind),
            "description": description,
            "specDescriptors": descriptors(schema, "spec"),
            "statusDescriptors": descriptors(schema, "status"),
        }));
    }
    Ok(Crd {
        file_name: format!("{group}_{plural}.yaml"),
        object: document.value.clone(),
        owned,
        group: group.to_owned(),
        kind: kind.to_owned(),
    })
}

/// One descriptor per top-level field of `spec` or `status`, sorted by path.
fn descriptors(schema: &Value, section: &str) -> Vec<Value> {
    let Some(properties) = schema
        .pointer(&format!("/properties/{section}/properties"))
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    let mut paths: Vec<&String> = properties.keys().collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let property = &properties[path];
            let mut descriptor = json!({"path": path, "displayName": display_name(path)});
            if let Some(description) = property.get("description") {
                descriptor["description"] = description.clone();
            }
            if let Some(x) = x_descriptor(section, path, property) {
                descriptor["x-descriptors"] = json!([x]);
            }
            descriptor
        })
        .collect()
}

/// The console widget for a field: conditions get the conditions table, scalars a matching
/// input; structured fields get none (the console then offers its YAML editor).
fn x_descriptor(section: &str, path: &str, property: &Value) -> Option<&'static str> {
    let type_ = property.get("type").and_then(Value::as_str);
    match (section, path, type_) {
        ("status", "conditions", _) => Some("urn:alm:descriptor:io.kubernetes.conditions"),
        ("status", _, Some("string" | "integer" | "number" | "boolean")) => {
            Some("urn:alm:descriptor:text")
        }
        ("spec", "replicas", Some("integer")) => {
            Some("urn:alm:descriptor:com.tectonic.ui:podCount")
        }
        ("spec", _, Some("integer" | "number")) => {
            Some("urn:alm:descriptor:com.tectonic.ui:number")
        }
        ("spec", _, Some("boolean")) => Some("urn:alm:descriptor:com.tectonic.ui:booleanSwitch"),
        ("spec", _, Some("string")) => Some("urn:alm:descriptor:com.tectonic.ui:text"),
        _ => None,
    }
}

/// Words for people from a kind or field name: `GatewayInstallation` → `Gateway Installation`,
/// `TLSContext` → `TLS Context`, `timeout_ms` → `Timeout Ms`.
pub fn display_name(identifier: &str) -> String {
    let chars: Vec<char> = identifier.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' {
            words.push(std::mem::take(&mut word));
            continue;
        }
        let previous = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1);
        // A new word at lower→Upper (`gatewayInstallation`) and at the last capital of an
        // acronym followed by lower case (`TLSContext`).
        let boundary = c.is_uppercase()
            && previous.is_some_and(|p| {
                p.is_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_uppercase() && next.is_some_and(|n| n.is_lowercase()))
            });
        if boundary {
            words.push(std::mem::take(&mut word));
        }
        word.push(c);
    }
    words.push(word);
    words
        .into_iter()
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
            first.unwrap_or_default() + chars.as_str()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::parse_documents;

    #[test]
    fn display_names() {
        for (identifier, expected) in [
            ("GatewayInstallation", "Gateway Installation"),
            ("TLSContext", "TLS Context"),
            ("TCPMapping", "TCP Mapping"),
            ("RateLimitService", "Rate Limit Service"),
            ("LogService", "Log Service"),
            ("timeout_ms", "Timeout Ms"),
            ("allowedRoutes", "Allowed Routes"),
            ("observedGeneration", "Observed Generation"),
            ("tls", "Tls"),
        ] {
            assert_eq!(display_name(identifier), expected, "{identifier}");
        }
    }

    const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.org}
spec:
  group: example.org
  names: {kind: Widget, plural: widgets}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        description: A widget.
        properties:
          spec:
            properties:
              size: {type: integer, description: How big.}
              labels: {type: object}
          status:
            properties:
              conditions: {type: array}
  - name: v0
    served: false
    storage: false
"#;

    #[test]
    fn owned_entry_per_served_version_with_descriptors() {
        let documents = parse_documents("crd.yaml", CRD).unwrap();
        let crd = crd(&documents[0]).unwrap();
        assert_eq!(crd.file_name, "example.org_widgets.yaml");
        assert_eq!(
            crd.owned,
            [json!({
                "name": "widgets.example.org",
                "version": "v1",
                "kind": "Widget",
                "displayName": "Widget",
                "description": "A widget.",
                "specDescriptors": [
                    {"path": "labels", "displayName": "Labels"},
                    {"path": "size", "displayName": "Size", "description": "How big.",
                     "x-descriptors": ["urn:alm:descriptor:com.tectonic.ui:number"]},
                ],
                "statusDescriptors": [
                    {"path": "conditions", "displayName": "Conditions",
                     "x-descriptors": ["urn:alm:descriptor:io.kubernetes.conditions"]},
                ],
            })]
        );
    }

    #[test]
    fn a_crd_without_a_description_names_the_field() {
        let text = CRD.replace("description: A widget.", "");
        let documents = parse_documents("crd.yaml", &text).unwrap();
        let error = crd(&documents[0]).unwrap_err().to_string();
        assert!(
            error.starts_with(
                "crd.yaml: document 1: spec.versions[0].schema.openAPIV3Schema.description: is required"
            ),
            "{error}"
        );
    }
}
