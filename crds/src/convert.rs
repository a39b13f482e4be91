//! `getambassador.io/v1` and `v2` documents rewritten as `v3alpha1`, as Emissary's own conversion
//! does it (its `pkg/api/getambassador.io/v2/handwritten.conversion.go` and the generated
//! field-by-field part; v1 has v2's fields). Used by `legate-agent convert`, which prints the
//! result, and by the loader, which reads an old document through it with a warning. There is no
//! conversion webhook (Emissary's users' pain: EMISSARY.md §6).
//!
//! What changes, per kind (everything else is copied as it is):
//! - every kind: `apiVersion` becomes `getambassador.io/v3alpha1`;
//! - Mapping: `host` becomes `hostname` (unless `host_regex: true`, which keeps `host`), and a
//!   Mapping without one gets `hostname: "*"` (v2 Mappings matched every Host); a header or
//!   query parameter `true` (present) becomes a `regex_headers`/`regex_query_parameters` `.*`;
//! - Mapping, TCPMapping, AuthService, RateLimitService: `tls: true` becomes an `https://`
//!   service (TCPMappings keep `tls: true`: v2 gave them no scheme); `tls: false` is dropped;
//! - Host: `ambassadorId` joins `ambassador_id`, and `selector` becomes `mappingSelector`;
//! - Mapping and Module: a CORS `origins` written as one comma-separated string becomes the list
//!   v3alpha1 takes (v2's `OriginList` split it on commas the same way);
//! - TracingService: `v3StatsName`, `v3CustomTags` and `config.v3PropagationModes` become
//!   `stats_name`, `custom_tags` and `config.propagation_modes`; `tag_headers` becomes a
//!   `request_header` custom tag each (tagged under the header's name) when there are no custom
//!   tags, and is dropped when there are.
//!
//! A document that cannot be converted is refused naming the field: a v2 `host` with a `*` in
//! a name and `host_regex` unset (v2 read it as an exact name, v3alpha1 would read a glob;
//! Emissary converts it silently, Legate asks the user to decide).
//!
//! [`from_annotation`] does the same for Emissary 1.x's `getambassador.io/config` annotation on
//! a Service: each YAML document in it (flat, `ambassador/v0`/`v1` or `getambassador.io/v1`/`v2`)
//! becomes a v3alpha1 resource in the Service's namespace.

use serde_json::{Map, Value};
use thiserror::Error;

use crate::printable::escaped;

/// The versions Emissary converts from.
pub const OLD_VERSIONS: [&str; 2] = ["getambassador.io/v2", "getambassador.io/v1"];
/// The version it converts to.
pub const V3: &str = "getambassador.io/v3alpha1";

/// A converted document and what changed, one line per change (`spec.host: ... → ...`).
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    pub document: Value,
    pub changes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct ConvertError {
    pub field: String,
    pub message: String,
}

/// Whether `document` is a getambassador.io v1 or v2 object, which [`convert`] rewrites.
pub fn is_old(document: &Value) -> bool {
    document
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| OLD_VERSIONS.contains(&v))
}

/// Converts a v1 or v2 document to v3alpha1; `None` for any other document.
pub fn convert(document: &Value) -> Result<Option<Converted>, ConvertError> {
    if !is_old(document) {
        return Ok(None);
    }
    let mut out = document.clone();
    let mut changes = Vec::new();
    let old = document["apiVersion"].as_str().unwrap_or_default();
    changes.push(format!("apiVersion: {old} → {V3}"));
    out["apiVersion"] = Value::from(V3);
    let kind = document.get("kind").and_then(Value::as_str).unwrap_or("");
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        match kind {
            "Mapping" => {
                mapping_host(spec, &mut changes)?;
                present_to_regex(spec, "headers", "regex_headers", &mut changes);
                present_to_regex(
                    spec,
                    "query_parameters",
                    "regex_query_parameters",
                    &mut changes,
                );
                tls_to_scheme(spec, "service", true, &mut changes);
                comma_origins(spec, "spec", &mut changes);
            }
            "Module" => {
                if let Some(config) = spec.get_mut("config").and_then(Value::as_object_mut) {
                    comma_origins(config, "spec.config", &mut changes);
                }
            }
            "AuthService" => tls_to_scheme(spec, "auth_service", true, &mut changes),
            "RateLimitService" => tls_to_scheme(spec, "service", true, &mut changes),
            "TCPMapping" => tls_to_scheme(spec, "service", false, &mut changes),
            "Host" => host(spec, &mut changes),
            "TracingService" => tracing_service(spec, &mut changes),
            _ => {}
        }
    }
    Ok(Some(Converted {
        document: out,
        changes,
    }))
}

fn mapping_host(
    spec: &mut Map<String, Value>,
    changes: &mut Vec<String>,
) -> Result<(), ConvertError> {
    let regex = spec.get("host_regex").and_then(Value::as_bool) == Some(true);
    match spec.get("host").and_then(Value::as_str).map(str::to_owned) {
        // A regex stays the deprecated `host` with `host_regex`, as Emissary keeps it.
        Some(_) if regex => {}
        Some(host) if host != "*" && host.contains('*') => {
            return Err(ConvertError {
                field: "spec.host".into(),
                message: format!(
                    "\"{}\" is an exact host in v2 and would be a glob as hostname; write \
                     hostname yourself",
                    escaped(&host)
                ),
            });
        }
        Some(host) => {
            spec.remove("host");
            changes.push(format!("spec.host: {} → spec.hostname", escaped(&host)));
            spec.insert("hostname".into(), Value::from(host));
        }
        None if !spec.contains_key("hostname") => {
            changes
                .push("spec.hostname: \"*\" (a v2 Mapping without host matched every Host)".into());
            spec.insert("hostname".into(), Value::from("*"));
        }
        None => {}
    }
    Ok(())
}

/// `headers: {x-canary: true}` (present) → `regex_headers: {x-canary: ".*"}`.
fn present_to_regex(
    spec: &mut Map<String, Value>,
    field: &str,
    regex_field: &str,
    changes: &mut Vec<String>,
) {
    let Some(map) = spec.get_mut(field).and_then(Value::as_object_mut) else {
        return;
    };
    let present: Vec<String> = map
        .iter()
        .filter(|(_, v)| v.as_bool() == Some(true))
        .map(|(k, _)| k.clone())
        .collect();
    if present.is_empty() {
        return;
    }
    for name in &present {
        map.remove(name);
    }
    if map.is_empty() {
        spec.remove(field);
    }
    let regex = spec
        .entry(regex_field)
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(regex) = regex.as_object_mut() {
        for name in present {
            changes.push(format!(
                "spec.{field}.{}: true → spec.{regex_field}: \".*\"",
                escaped(&name)
            ));
            regex.entry(name).or_insert_with(|| Value::from(".*"));
        }
    }
}

/// v2's `cors.origins: "a,b"` is v3alpha1's `[a, b]`: split on every comma, as v2's Go type
/// did (`strings.Split`, nothing trimmed).
fn comma_origins(parent: &mut Map<String, Value>, path: &str, changes: &mut Vec<String>) {
    let Some(cors) = parent.get_mut("cors").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(Value::String(origins)) = cors.get("origins") else {
        return;
    };
    let list: Vec<Value> = origins.split(',').map(Value::from).collect();
    changes.push(format!(
        "{path}.cors.origins: {:?} → a list of {}",
        escaped(origins),
        list.len()
    ));
    cors.insert("origins".into(), Value::Array(list));
}

/// v2's `tls: true` originates TLS; v3alpha1 says it with an `https://` service.
fn tls_to_scheme(
    spec: &mut Map<String, Value>,
    service_field: &str,
    schemes: bool,
    changes: &mut Vec<String>,
) {
    match spec.get("tls") {
        Some(Value::Bool(false)) => {
            spec.remove("tls");
            changes.push("spec.tls: false dropped (the default)".into());
        }
        Some(Value::Bool(true)) if schemes => {
            let Some(service) = spec.get(service_field).and_then(Value::as_str) else {
                return;
            };
            // Schemes compare without regard to case (`Http://` is `http://`), as Emissary's.
            let bare = match service.get(..7) {
                Some(scheme) if scheme.eq_ignore_ascii_case("http://") => &service[7..],
                _ => service,
            };
            if !bare.to_ascii_lowercase().starts_with("https://") {
                let https = format!("https://{bare}");
                changes.push(format!(
                    "spec.tls: true → spec.{service_field}: {}",
                    escaped(&https)
                ));
                spec.insert(service_field.into(), Value::from(https));
            } else {
                changes.push("spec.tls: true dropped (the service says https://)".into());
            }
            spec.remove("tls");
        }
        _ => {}
    }
}

fn host(spec: &mut Map<String, Value>, changes: &mut Vec<String>) {
    if let Some(ids) = spec.remove("ambassadorId") {
        let mut all: Vec<Value> = match spec.remove("ambassador_id") {
            Some(Value::Array(list)) => list,
            Some(Value::String(one)) => vec![Value::from(one)],
            _ => Vec::new(),
        };
        match ids {
            Value::Array(list) => all.extend(list),
            other => all.push(other),
        }
        changes.push("spec.ambassadorId → spec.ambassador_id".into());
        spec.insert("ambassador_id".into(), Value::Array(all));
    }
    if !spec.contains_key("mappingSelector")
        && let Some(selector) = spec.remove("selector")
    {
        changes.push("spec.selector → spec.mappingSelector".into());
        spec.insert("mappingSelector".into(), selector);
    }
}

fn tracing_service(spec: &mut Map<String, Value>, changes: &mut Vec<String>) {
    let mut rename = |object: &mut Map<String, Value>, prefix: &str, from: &str, to: &str| {
        if let Some(value) = object.remove(from) {
            changes.push(format!("{prefix}{from} → {prefix}{to}"));
            object.insert(to.into(), value);
        }
    };
    rename(spec, "spec.", "v3StatsName", "stats_name");
    rename(spec, "spec.", "v3CustomTags", "custom_tags");
    if let Some(config) = spec.get_mut("config").and_then(Value::as_object_mut) {
        rename(
            config,
            "spec.config.",
            "v3PropagationModes",
            "propagation_modes",
        );
    }
    let Some(headers) = spec.remove("tag_headers") else {
        return;
    };
    if spec.contains_key("custom_tags") {
        changes.push("spec.tag_headers: dropped, as spec.custom_tags is set".into());
        return;
    }
    let tags: Vec<Value> = headers
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| serde_json::json!({"tag": h, "request_header": {"name": h}}))
        .collect();
    changes.push("spec.tag_headers → spec.custom_tags (request_header)".into());
    spec.insert("custom_tags".into(), Value::Array(tags));
}

/// The resources an Emissary 1.x `getambassador.io/config` annotation on `service` declares,
/// converted to v3alpha1, in order.
pub fn from_annotation(service: &Value) -> Result<Vec<Converted>, ConvertError> {
    let annotation = crate::service::EMISSARY_CONFIG_ANNOTATION;
    let field = format!("metadata.annotations[{annotation}]");
    let Some(text) = service
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(annotation))
        .and_then(Value::as_str)
    else {
        return Ok(Vec::new());
    };
    let namespace = service
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| ConvertError {
        field: field.clone(),
        message: format!("is not YAML: {}", escaped(&e.to_string())),
    })?;
    let mut out = Vec::new();
    for (n, document) in documents.into_iter().filter(|d| !d.is_null()).enumerate() {
        let at = |what: &str| format!("{field}: document {}{what}", n + 1);
        let Value::Object(mut flat) = document else {
            return Err(ConvertError {
                field: at(""),
                message: "expected a map".into(),
            });
        };
        let text = |flat: &mut Map<String, Value>, key: &str| match flat.remove(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let (Some(kind), Some(name)) = (text(&mut flat, "kind"), text(&mut flat, "name")) else {
            return Err(ConvertError {
                field: at(""),
                message: "needs kind and name".into(),
            });
        };
        let api_version = text(&mut flat, "apiVersion").unwrap_or_default();
        let doc_namespace = text(&mut flat, "namespace").unwrap_or_else(|| namespace.to_owned());
        let mut changes = vec![format!(
            "{field} of Service {namespace}/{}: {kind} {name}",
            escaped(
                service
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )
        )];
        // Annotation names were free text (`quote_mapping`); a resource's is a DNS name.
        let dns_name: String = name
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let dns_name = dns_name.trim_matches(|c| c == '-' || c == '.').to_owned();
        if dns_name.is_empty() {
            return Err(ConvertError {
                field: at(".name"),
                message: format!(
                    "{} has no letter or digit to name a resource by",
                    escaped(&name)
                ),
            });
        }
        if dns_name != name {
            changes.push(format!(
                "name: {} → metadata.name {dns_name}",
                escaped(&name)
            ));
        }
        let mut document = serde_json::json!({
            "apiVersion": "getambassador.io/v2",
            "kind": kind,
            "metadata": {"name": dns_name, "namespace": doc_namespace},
            "spec": Value::Object(flat),
        });
        if !api_version.is_empty() && !api_version.starts_with("getambassador.io/v") {
            changes.push(format!(
                "apiVersion: {} (annotation form)",
                escaped(&api_version)
            ));
        }
        let converted = convert(&document)?.map(|c| {
            changes.extend(c.changes.into_iter().skip(1));
            c.document
        });
        if let Some(c) = converted {
            document = c;
        }
        out.push(Converted { document, changes });
    }
    Ok(out)
}
