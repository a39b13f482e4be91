//! The CRDs' CEL rules (`x-kubernetes-validations`), evaluated in-process so the file loader
//! refuses what the API server refuses. Kubernetes before 1.25 ignores CEL; Legate does not.

use std::collections::{BTreeMap, HashSet};

use kube::core::cel::{CompiledSchema, ValidationError, compile_schema, validate_compiled};
use serde_json::{Map, Value};

use crate::{loader::FieldProblem, printable::escaped};

/// Built once for the process: compiling them costs more than loading a thousand files.
static RULES: std::sync::LazyLock<BTreeMap<String, RuleTree>> = std::sync::LazyLock::new(|| {
    crate::crd::schemas()
        .iter()
        .filter_map(|(kind, schema)| Some((kind.clone(), RuleTree::new(&escaped_rules(schema))?)))
        .collect()
});

/// `schema` with its rules in kube-cel's spelling.
fn escaped_rules(schema: &Value) -> Value {
    let mut schema = schema.clone();
    escape_rules(&mut schema);
    schema
}

/// The CEL rules `value` (a whole object of `kind`) breaks, each with its field path.
pub(crate) fn cel_problems(kind: &str, value: &Value) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if let Some(tree) = RULES.get(kind) {
        tree.check(value, "", &mut |path, e| {
            problems.push(FieldProblem {
                field: escaped(under(path, &e.field_path).trim_start_matches('.')).into_owned(),
                message: escaped(&e.message).into_owned(),
            });
        });
    }
    problems
}

/// The paths of a schema that lead to rules, and the rules' subschemas compiled alone.
///
/// kube-cel walks a whole object and turns the value at every node it passes into a CEL value,
/// rules or not: a Mapping was converted once for itself, once for its spec, and again for
/// every object under it, and CEL took a quarter of loading a file. Handing kube-cel only the
/// subtrees that hold rules finds the same errors: a rule sees its own node and what is under
/// it, and the schemas have no `default` (which would let a parent add a node a rule sees;
/// [`RuleTree::new`] compiles a schema with one whole).
#[derive(Default)]
struct RuleTree {
    /// Rules at this node: kube-cel validates it, and everything under it, from here.
    rules: Option<CompiledSchema>,
    properties: Vec<(String, RuleTree)>,
    /// Every declared property: `additionalProperties` covers the others.
    declared: HashSet<String>,
    items: Option<Box<RuleTree>>,
    additional: Option<Box<RuleTree>>,
    /// `allOf`, `oneOf` and `anyOf`: each applies to this same node.
    branches: Vec<RuleTree>,
}

impl RuleTree {
    /// The tree of `schema`; `None` when no rule is under it. A schema with a `default` is
    /// compiled whole, as kube-cel applies defaults before it walks.
    fn new(schema: &Value) -> Option<Self> {
        if has_default(schema) {
            return Some(Self {
                rules: Some(compile_schema(schema)),
                ..Self::default()
            });
        }
        Self::leading_to_rules(schema)
    }

    fn leading_to_rules(schema: &Value) -> Option<Self> {
        let node = schema.as_object()?;
        let has_rules = node
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .is_some_and(|rules| !rules.is_empty());
        if has_rules {
            return Some(Self {
                rules: Some(compile_schema(schema)),
                ..Self::default()
            });
        }
        let declared = node.get("properties").and_then(Value::as_object);
        let preserves_unknown =
            node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        let tree = Self {
            rules: None,
            properties: declared
                .into_iter()
                .flatten()
                .filter_map(|(name, child)| Some((name.clone(), Self::leading_to_rules(child)?)))
                .collect(),
            declared: declared.into_iter().flat_map(Map::keys).cloned().collect(),
            items: node
                .get("items")
                .and_then(Self::leading_to_rules)
                .map(Box::new),
            additional: node
                .get("additionalProperties")
                .filter(|_| !preserves_unknown)
                .and_then(Self::leading_to_rules)
                .map(Box::new),
            branches: ["allOf", "oneOf", "anyOf"]
                .into_iter()
                .filter_map(|key| node.get(key).and_then(Value::as_array))
                .flatten()
                .filter_map(Self::leading_to_rules)
                .collect(),
        };
        let empty = tree.properties.is_empty()
            && tree.items.is_none()
            && tree.additional.is_none()
            && tree.branches.is_empty();
        (!empty).then_some(tree)
    }

    /// Reports each rule `value` (at `path`) breaks, with the path of the node it was checked at.
    fn check(&self, value: &Value, path: &str, report: &mut dyn FnMut(&str, ValidationError)) {
        if let Some(rules) = &self.rules {
            if let Err(errors) = validate_compiled(rules, value, None) {
                errors.into_vec().into_iter().for_each(|e| report(path, e));
            }
            return;
        }
        if let Some(object) = value.as_object() {
            for (name, child) in &self.properties {
                if let Some(value) = object.get(name) {
                    child.check(value, &under(path, name), report);
                }
            }
            if let Some(additional) = &self.additional {
                for (key, value) in object {
                    if !self.declared.contains(key) {
                        additional.check(value, &under(path, key), report);
                    }
                }
            }
        }
        if let (Some(items), Some(array)) = (&self.items, value.as_array()) {
            for (index, item) in array.iter().enumerate() {
                items.check(item, &format!("{path}[{index}]"), report);
            }
        }
        for branch in &self.branches {
            branch.check(value, path, report);
        }
    }
}

/// `relative` (a field path as kube-cel gives it, from the node it validated) under `path`, as
/// kube-cel writes paths: `a.b`, `a[0]`, and a rule's own `fieldPath` appended (`.x`).
fn under(path: &str, relative: &str) -> String {
    if path.is_empty() || relative.is_empty() || relative.starts_with(['.', '[']) {
        format!("{path}{relative}")
    } else {
        format!("{path}.{relative}")
    }
}

/// Whether any node of `schema` has a `default` (a keyword, not a property named so).
fn has_default(schema: &Value) -> bool {
    let Some(node) = schema.as_object() else {
        return false;
    };
    node.contains_key("default")
        || node
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| p.values().any(has_default))
        || ["items", "additionalProperties"]
            .into_iter()
            .any(|key| node.get(key).is_some_and(has_default))
        || ["allOf", "oneOf", "anyOf"].into_iter().any(|key| {
            node.get(key)
                .and_then(Value::as_array)
                .is_some_and(|branches| branches.iter().any(has_default))
        })
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
    use super::*;

    /// Every document of the test data, good and refused, and a few that break rules deep
    /// down: the rule tree finds exactly what kube-cel's walk of the whole object finds.
    #[test]
    fn the_rule_tree_finds_what_a_whole_walk_finds() {
        let mut documents: Vec<Value> = crate::loader::test_data_texts()
            .iter()
            .flat_map(|text| serde_saphyr::from_multiple::<Value>(text).unwrap())
            .collect();
        documents.extend([
            serde_json::json!({"kind": "Mapping", "spec": {"prefix": "no-slash",
                "rewrite": "/", "regex_rewrite": {"pattern": "a", "substitution": "b"},
                "load_balancer": {"policy": "round_robin", "cookie": {"name": "c"}},
                "timeout": "soon"}}),
            serde_json::json!({"kind": "Listener", "spec": {"port": 0, "protocol": "TCP",
                "hostBinding": {"namespace": {"from": "SELECTOR"}}}}),
        ]);
        let whole: BTreeMap<&str, CompiledSchema> = crate::crd::schemas()
            .iter()
            .map(|(kind, schema)| (kind.as_str(), compile_schema(&escaped_rules(schema))))
            .collect();
        let mut broken = 0;
        for document in documents.iter().filter(|d| !d.is_null()) {
            let kind = document["kind"].as_str().unwrap_or_default();
            let Some(schema) = whole.get(kind) else {
                continue;
            };
            let mut expected: Vec<(String, String)> =
                match validate_compiled(schema, document, None) {
                    Ok(()) => Vec::new(),
                    Err(errors) => errors
                        .into_vec()
                        .into_iter()
                        .map(|e| (e.field_path.trim_start_matches('.').to_owned(), e.message))
                        .collect(),
                };
            let mut found: Vec<(String, String)> = cel_problems(kind, document)
                .into_iter()
                .map(|p| (p.field, p.message))
                .collect();
            expected.sort();
            found.sort();
            assert_eq!(found, expected, "{document}");
            broken += usize::from(!found.is_empty());
        }
        assert!(broken >= 15, "only {broken} documents break a rule");
    }

    #[test]
    fn a_schema_with_a_default_is_validated_whole() {
        let schema = serde_json::json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "inner": {"type": "object", "default": {"n": 0},
                    "properties": {"n": {"type": "integer"}},
                    "x-kubernetes-validations": [{"rule": "self.n > 0"}]}}}}});
        let tree = RuleTree::new(&schema).unwrap();
        assert!(
            tree.rules.is_some(),
            "compiled whole, so kube-cel applies the default"
        );
        let mut paths = Vec::new();
        tree.check(&serde_json::json!({"spec": {}}), "", &mut |path, e| {
            paths.push(under(path, &e.field_path));
        });
        assert_eq!(paths, ["spec.inner"], "the defaulted node breaks its rule");
    }

    #[test]
    fn paths_join_as_kube_cel_writes_them() {
        assert_eq!(under("", "spec"), "spec");
        assert_eq!(under("spec", ""), "spec");
        assert_eq!(under("spec", "prefix"), "spec.prefix");
        assert_eq!(under("spec.list", "[0].x"), "spec.list[0].x");
        assert_eq!(under("spec", ".fieldPath"), "spec.fieldPath");
    }

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
