//! Every manifest under `config/` parses and looks like a Kubernetes object: each YAML document
//! has `apiVersion`, `kind` and `metadata.name` (kustomize's `kustomization.yaml`, kind
//! `Kustomization`, needs only `apiVersion` and `kind`). No server needed; the e2e tests check
//! what a real API server thinks of them.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

fn non_empty_str(v: &Value) -> bool {
    v.as_str().is_some_and(|s| !s.is_empty())
}

#[test]
fn every_config_manifest_has_api_version_kind_and_name() {
    let root = config_dir();
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no YAML files under {}", root.display());

    let mut failures = Vec::new();
    let mut documents = 0;
    for file in &files {
        let rel = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading config/{rel}: {e}"));
        let docs: Vec<Value> = match serde_saphyr::from_multiple(&text) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("config/{rel}: not valid YAML: {e}"));
                continue;
            }
        };
        let is_kustomization = file
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("kustomization."));
        for (index, doc) in docs.iter().enumerate().filter(|(_, d)| !d.is_null()) {
            documents += 1;
            let what = format!("config/{rel} document #{index}");
            if !doc.is_object() {
                failures.push(format!("{what}: not a mapping"));
                continue;
            }
            if !non_empty_str(&doc["apiVersion"]) {
                failures.push(format!("{what}: no apiVersion"));
            }
            if !non_empty_str(&doc["kind"]) {
                failures.push(format!("{what}: no kind"));
            }
            if is_kustomization {
                if doc["kind"] != "Kustomization" {
                    failures.push(format!(
                        "{what}: a kustomization.yaml must have kind Kustomization, got {}",
                        doc["kind"]
                    ));
                }
            } else if !non_empty_str(&doc["metadata"]["name"]) {
                failures.push(format!("{what} (kind {}): no metadata.name", doc["kind"]));
            }
        }
    }
    assert!(documents > 0, "no YAML documents under {}", root.display());
    assert!(
        failures.is_empty(),
        "{} problem(s) in config/:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
