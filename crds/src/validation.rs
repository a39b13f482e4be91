//! The CRDs' CEL rules (`x-kubernetes-validations`), evaluated in-process so the file loader
//! refuses what the API server refuses. Kubernetes before 1.25 ignores CEL; Legate does not.

use std::collections::BTreeMap;

use kube::core::cel::{CompiledSchema, compile_schema, validate_compiled};
use serde_json::Value;

use crate::{loader::FieldProblem, printable::escaped};

/// Built once for the process: compiling them costs more than loading a thousand files.
static SCHEMAS: std::sync::LazyLock<BTreeMap<String, CompiledSchema>> =
    std::sync::LazyLock::new(|| {
        crate::crds()
            .into_iter()
            .filter_map(|crd| {
                let schema = crd
                    .spec
                    .versions
                    .first()?
                    .schema
                    .as_ref()?
                    .open_api_v3_schema
                    .as_ref()?;
                let mut schema = serde_json::to_value(schema).ok()?;
                escape_rules(&mut schema);
                Some((crd.spec.names.kind, compile_schema(&schema)))
            })
            .collect()
    });

/// The CEL rules `value` (a whole object of `kind`) breaks, each with its field path.
pub(crate) fn cel_problems(kind: &str, value: &Value) -> Vec<FieldProblem> {
    let Some(schema) = SCHEMAS.get(kind) else {
        return Vec::new();
    };
    match validate_compiled(schema, value, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| FieldProblem {
                field: escaped(e.field_path.trim_start_matches('.')).into_owned(),
                message: escaped(&e.message).into_owned(),
            })
            .collect(),
    }
}

/// kube-cel 0.8 escapes every `_` in a property name to `__` before binding it, where the API
/// server leaves a single `_` alone; so `self.source_ip`, right for Kubernetes, finds nothing
/// in-process. Rewrite the rules' field accesses to kube-cel's spelling. The rejected-document
/// tests fail loudly if kube-cel changes its escaping.
fn escape_rules(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get_mut("x-kubernetes-validations") {
                for rule in rules {
                    if let Some(Value::String(text)) = rule.get_mut("rule") {
                        *text = escape_field_accesses(text);
                    }
                }
            }
            map.values_mut().for_each(escape_rules);
        }
        Value::Array(items) => items.iter_mut().for_each(escape_rules),
        _ => {}
    }
}

/// Doubles the underscores of every `.field` access outside string literals.
fn escape_field_accesses(rule: &str) -> String {
    let mut out = String::with_capacity(rule.len() + 8);
    let mut quote: Option<char> = None;
    let mut after_dot = false;
    let mut escaped = false;
    for c in rule.chars() {
        if let Some(q) = quote {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                after_dot = false;
                out.push(c);
            }
            '.' => {
                after_dot = true;
                out.push(c);
            }
            '_' if after_dot => out.push_str("__"),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => {
                after_dot = false;
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_field_accesses;

    #[test]
    fn escapes_field_accesses_but_not_strings_or_functions() {
        assert_eq!(
            escape_field_accesses(
                "has(self.source_ip) && self.policy == 'ring_hash' && self.a.b_c.size() > 0"
            ),
            "has(self.source__ip) && self.policy == 'ring_hash' && self.a.b__c.size() > 0"
        );
        assert_eq!(
            escape_field_accesses(r"self.matches('^[0-9]+(\\.[0-9_]+)?$')"),
            r"self.matches('^[0-9]+(\\.[0-9_]+)?$')"
        );
    }
}
