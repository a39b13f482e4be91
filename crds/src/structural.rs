//! The CRDs' structural types, checked in-process as the API server checks them before anything
//! else. Typed decoding catches nearly every wrong type, but serde reads a struct from a list of
//! its fields in order (`retry_policy: [5xx]` would be a retry policy); the schema says
//! `object`, and so does this check.

use serde_json::Value;

use crate::loader::FieldProblem;

/// The first value of `object` (a whole object of `kind`) whose JSON type is not its schema's.
pub(crate) fn type_problem(kind: &str, object: &Value) -> Option<FieldProblem> {
    check(crate::crd::schemas().get(kind)?, object, &mut String::new())
}

fn check(schema: &Value, value: &Value, path: &mut String) -> Option<FieldProblem> {
    if value.is_null() {
        // Nulls are dropped before typing; one in a list is refused by the typed decoding.
        return None;
    }
    let expected = schema.get("type").and_then(Value::as_str);
    let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let fits = match expected {
        _ if int_or_string => value.is_i64() || value.is_u64() || value.is_string(),
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        // No type: `x-kubernetes-preserve-unknown-fields`, anything goes.
        _ => true,
    };
    if !fits {
        return Some(FieldProblem {
            field: path.clone(),
            message: format!(
                "must be of type {}, got {}",
                expected.unwrap_or("integer or string"),
                json_type(value)
            ),
        });
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, item) in map {
                let Some(item_schema) = properties.and_then(|p| p.get(key)).or(additional) else {
                    continue; // unknown fields are warned about by the typed decoding
                };
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&crate::printable::escaped(key));
                let problem = check(item_schema, item, path);
                path.truncate(len);
                if problem.is_some() {
                    return problem;
                }
            }
            None
        }
        Value::Array(items) => {
            let item_schema = schema.get("items")?;
            items.iter().enumerate().find_map(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let problem = check(item_schema, item, path);
                path.truncate(len);
                problem
            })
        }
        _ => None,
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::type_problem;

    fn problem(spec: serde_json::Value) -> Option<String> {
        let object = serde_json::json!({
            "apiVersion": "getambassador.io/v3alpha1",
            "kind": "Mapping",
            "metadata": {"name": "m"},
            "spec": spec,
        });
        type_problem("Mapping", &object).map(|p| p.to_string())
    }

    #[test]
    fn a_list_where_an_object_is_expected_is_refused() {
        assert_eq!(
            problem(serde_json::json!({"prefix": "/", "service": "s", "retry_policy": ["5xx"]})),
            Some("spec.retry_policy: must be of type object, got array".into())
        );
    }

    #[test]
    fn what_the_schema_allows_passes() {
        assert_eq!(
            problem(serde_json::json!({
                "prefix": "/", "service": "s", "tls": true, "timeout_ms": 30,
                "headers": {"x-a": "b"}, "ambassador_id": ["a"],
                "envoy_override": {"anything": [1, {"x": null}]},
            })),
            None
        );
        assert_eq!(
            problem(serde_json::json!({"prefix": "/", "service": "s", "ambassador_id": [1]})),
            Some("spec.ambassador_id[0]: must be of type string, got integer".into())
        );
    }
}
