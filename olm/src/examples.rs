//! `alm-examples`: the objects of `config/samples/` whose kinds the bundle owns, which the OLM
//! console offers as templates. Objects of other APIs there (the teams' Namespaces) are skipped.

use serde_json::Value;

use crate::{crds::Crd, error::Result, source::Document};

pub fn examples(samples: &[Document], crds: &[Crd]) -> Result<Vec<Value>> {
    let mut examples = Vec::new();
    for sample in samples {
        let group = sample.group();
        if !crds.iter().any(|crd| crd.group == group) {
            continue;
        }
        // A kind in one of our groups that no CRD declares is a typo, not someone else's API.
        if !crds
            .iter()
            .any(|crd| crd.group == group && crd.kind == sample.kind())
        {
            return Err(sample.error(
                "kind",
                &format!(
                    "{:?} is not a kind of the bundle's CRDs in {group}",
                    sample.kind()
                ),
            ));
        }
        let mut example = sample.value.clone();
        // The console creates an example in the namespace the user is looking at; the samples'
        // own namespaces (team-a, legate-system) need not exist there.
        if let Some(metadata) = example.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("namespace");
        }
        examples.push(example);
    }
    Ok(examples)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::source::parse_documents;

    fn widget_crd() -> Crd {
        Crd {
            file_name: String::new(),
            object: json!({}),
            owned: Vec::new(),
            group: "example.org".into(),
            kind: "Widget".into(),
        }
    }

    #[test]
    fn owned_kinds_become_examples_without_namespace() {
        let samples = parse_documents(
            "s.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\
             apiVersion: example.org/v1\nkind: Widget\nmetadata: {name: w, namespace: a}\n",
        )
        .unwrap();
        let examples = examples(&samples, &[widget_crd()]).unwrap();
        assert_eq!(
            examples,
            [json!({"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w"}})]
        );
    }

    #[test]
    fn an_unknown_kind_in_an_owned_group_is_an_error() {
        let samples =
            parse_documents("s.yaml", "apiVersion: example.org/v1\nkind: Widgit\n").unwrap();
        let error = examples(&samples, &[widget_crd()]).unwrap_err().to_string();
        assert_eq!(
            error,
            "s.yaml: document 1: kind: \"Widgit\" is not a kind of the bundle's CRDs in example.org"
        );
    }
}
