//! The CRDs' CEL rules (`x-kubernetes-validations`), evaluated in-process so the file loader
//! refuses what the API server refuses. Kubernetes before 1.25 ignores CEL; Legate does not.

use std::collections::BTreeMap;

use kube::core::cel::{CompiledSchema, compile_schema, validate_compiled};

use crate::loader::FieldProblem;

thread_local! {
    static SCHEMAS: BTreeMap<String, CompiledSchema> = crate::crds()
        .into_iter()
        .filter_map(|crd| {
            let schema = crd.spec.versions.first()?.schema.as_ref()?.open_api_v3_schema.as_ref()?;
            let schema = serde_json::to_value(schema).ok()?;
            Some((crd.spec.names.kind, compile_schema(&schema)))
        })
        .collect();
}

/// The CEL rules `value` (a whole object of `kind`) breaks, each with its field path.
pub(crate) fn cel_problems(kind: &str, value: &serde_json::Value) -> Vec<FieldProblem> {
    SCHEMAS.with(|schemas| {
        let Some(schema) = schemas.get(kind) else {
            return Vec::new();
        };
        match validate_compiled(schema, value, None) {
            Ok(()) => Vec::new(),
            Err(errors) => errors
                .into_vec()
                .into_iter()
                .map(|e| FieldProblem {
                    field: e.field_path.trim_start_matches('.').to_owned(),
                    message: e.message,
                })
                .collect(),
        }
    })
}
