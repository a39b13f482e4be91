//! `legate-agent convert FILE...`: Emissary `getambassador.io/v1` and `v2` YAML, and the
//! `getambassador.io/config` annotations of Services, rewritten as `v3alpha1` on stdout, each
//! converted document preceded by comments that say what changed. Documents already current are
//! printed as they are. What cannot be converted is reported on stderr naming the file, the
//! document and the field, and makes the exit status 1.

use std::{fmt::Write as _, path::Path};

use legate_crds::convert::{self, Converted};
use serde_json::Value;

/// The converted text of every file, and the problems.
#[derive(Debug, Default)]
pub struct Output {
    pub yaml: String,
    pub errors: Vec<String>,
}

pub fn convert_files(files: &[impl AsRef<Path>]) -> Output {
    let mut out = Output::default();
    for file in files {
        let file = file.as_ref();
        let origin = file.display().to_string();
        match std::fs::read_to_string(file) {
            Ok(text) => convert_text(&origin, &text, &mut out),
            Err(e) => out.errors.push(format!("{origin}: {e}")),
        }
    }
    out
}

pub fn convert_text(origin: &str, text: &str, out: &mut Output) {
    let documents: Vec<Value> = match serde_saphyr::from_multiple(text) {
        Ok(documents) => documents,
        Err(e) => {
            out.errors.push(format!("{origin}: not YAML: {e}"));
            return;
        }
    };
    for (n, document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue;
        }
        let at = format!("{origin}: document {}", n + 1);
        if is_annotated_service(&document) {
            match convert::from_annotation(&document) {
                Ok(resources) => {
                    let mut service = document;
                    if let Some(annotations) = service
                        .pointer_mut("/metadata/annotations")
                        .and_then(Value::as_object_mut)
                    {
                        annotations.remove(legate_crds::service::EMISSARY_CONFIG_ANNOTATION);
                    }
                    push(
                        out,
                        &Converted {
                            document: service,
                            changes: vec![format!(
                                "metadata.annotations[{}]: removed, its {} resource(s) follow",
                                legate_crds::service::EMISSARY_CONFIG_ANNOTATION,
                                resources.len()
                            )],
                        },
                    );
                    for r in &resources {
                        push(out, r);
                    }
                }
                Err(e) => out.errors.push(format!("{at}: {e}")),
            }
            continue;
        }
        match convert::convert(&document) {
            Ok(Some(converted)) => push(out, &converted),
            Ok(None) => push(
                out,
                &Converted {
                    document,
                    changes: Vec::new(),
                },
            ),
            Err(e) => out.errors.push(format!("{at}: {e}")),
        }
    }
}

fn is_annotated_service(document: &Value) -> bool {
    document.get("kind").and_then(Value::as_str) == Some("Service")
        && document
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(legate_crds::service::EMISSARY_CONFIG_ANNOTATION))
            .is_some()
}

fn push(out: &mut Output, converted: &Converted) {
    out.yaml.push_str("---\n");
    for change in &converted.changes {
        let _ = writeln!(out.yaml, "# {change}");
    }
    match serde_saphyr::to_string(&converted.document) {
        Ok(yaml) => out.yaml.push_str(&yaml),
        Err(e) => out
            .errors
            .push(format!("cannot write a document as YAML: {e}")),
    }
}
