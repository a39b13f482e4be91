//! The input: the text of the files under `config/`, and the YAML documents kustomizations list.
//!
//! Reading the disk happens once, in [`ConfigTree::load`]; everything after it is a pure function
//! of the tree, so tests can generate a bundle from an edited copy held in memory.

use std::{
    collections::BTreeMap,
    path::{Component, Path, PathBuf},
};

use serde_json::Value;

use crate::error::{Error, Location, Result};

/// Files by path relative to the repository root, with `/` separators (`config/rbac/role.yaml`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigTree {
    files: BTreeMap<String, String>,
}

impl ConfigTree {
    /// Reads every YAML file under `root/config/`. Hidden files and folders are skipped: editors
    /// leave swap files there (`.role.yaml.swp`), which are not text.
    pub fn load(root: &Path) -> Result<Self> {
        let mut tree = Self::default();
        let mut pending = vec![PathBuf::from("config")];
        while let Some(relative) = pending.pop() {
            let absolute = root.join(&relative);
            let read_err = |source| Error::Read {
                file: slash_path(&relative),
                source,
            };
            if absolute.is_dir() {
                for entry in std::fs::read_dir(&absolute).map_err(read_err)? {
                    let name = entry.map_err(read_err)?.file_name();
                    if !name.to_string_lossy().starts_with('.') {
                        pending.push(relative.join(name));
                    }
                }
            } else if relative
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml")
            {
                let text = std::fs::read_to_string(&absolute).map_err(read_err)?;
                tree.insert(slash_path(&relative), text);
            }
        }
        Ok(tree)
    }

    pub fn insert(&mut self, path: impl Into<String>, text: impl Into<String>) {
        self.files.insert(path.into(), text.into());
    }

    pub fn text(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// The non-empty documents of one YAML file.
    pub fn documents(&self, path: &str) -> Result<Vec<Document>> {
        let text = self.text(path).ok_or_else(|| Error::Read {
            file: path.to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        parse_documents(path, text)
    }

    /// Every document of the `resources` a kustomization in `dir` lists, in its order; a
    /// resource that is a directory is that directory's kustomization, as kustomize reads it.
    pub fn kustomize(&self, dir: &str) -> Result<Vec<Document>> {
        let kustomization = format!("{dir}/kustomization.yaml");
        let listed = self.documents(&kustomization)?;
        let Some(first) = listed.first() else {
            return Err(Error::Field {
                at: Location::file(&kustomization),
                message: "is empty".into(),
            });
        };
        let mut documents = Vec::new();
        for (i, resource) in first.list("resources")?.iter().enumerate() {
            let Some(resource) = resource.as_str() else {
                return Err(first.error(&format!("resources[{i}]"), "must be a path"));
            };
            let path = normalize(&format!("{dir}/{resource}"));
            if self.text(&format!("{path}/kustomization.yaml")).is_some() {
                documents.extend(self.kustomize(&path)?);
            } else if self.text(&path).is_some() {
                documents.extend(self.documents(&path)?);
            } else {
                return Err(Error::NotFound {
                    file: path,
                    listed_in: kustomization,
                });
            }
        }
        Ok(documents)
    }
}

/// Parses multi-document YAML, skipping empty documents (a trailing `---`).
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Document>> {
    let values: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| Error::Yaml {
        file: file.to_owned(),
        message: e.to_string(),
    })?;
    Ok(values
        .into_iter()
        .enumerate()
        .filter(|(_, value)| !value.is_null())
        .map(|(i, value)| Document {
            file: file.to_owned(),
            index: i + 1,
            value,
        })
        .collect())
}

/// One YAML document and where it came from, so any field can be reported precisely.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub file: String,
    /// 1-based position in the file.
    pub index: usize,
    pub value: Value,
}

impl Document {
    pub fn error(&self, field: &str, message: &str) -> Error {
        Error::Field {
            at: Location {
                file: self.file.clone(),
                document: Some(self.index),
                field: Some(field.to_owned()),
            },
            message: message.to_owned(),
        }
    }

    /// The value at a dotted path (`spec.template.spec.containers[0].image`), if present.
    pub fn get(&self, field: &str) -> Option<&Value> {
        field.split('.').try_fold(&self.value, |value, segment| {
            match segment.strip_suffix(']').and_then(|s| s.split_once('[')) {
                Some((key, index)) => value.get(key)?.get(index.parse::<usize>().ok()?),
                None => value.get(segment),
            }
        })
    }

    /// The value at a dotted path, or an error naming the field.
    pub fn field(&self, field: &str) -> Result<&Value> {
        self.get(field)
            .ok_or_else(|| self.error(field, "is required"))
    }

    pub fn str(&self, field: &str) -> Result<&str> {
        self.field(field)?
            .as_str()
            .ok_or_else(|| self.error(field, "must be a string"))
    }

    pub fn list(&self, field: &str) -> Result<&Vec<Value>> {
        self.field(field)?
            .as_array()
            .ok_or_else(|| self.error(field, "must be a list"))
    }

    /// `kind`, or empty when absent: callers match on it and report unknown kinds themselves.
    pub fn kind(&self) -> &str {
        self.get("kind").and_then(Value::as_str).unwrap_or_default()
    }

    /// The API group of `apiVersion` (empty for the core group).
    pub fn group(&self) -> &str {
        let api_version = self
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        api_version.rsplit_once('/').map_or("", |(group, _)| group)
    }

    pub fn name(&self) -> Result<&str> {
        self.str("metadata.name")
    }
}

fn slash_path(path: &Path) -> String {
    let parts: Vec<_> = path.iter().map(|p| p.to_string_lossy()).collect();
    parts.join("/")
}

/// Resolves `.` and `..` in a `/`-separated relative path (`config/default/../crd` → `config/crd`).
fn normalize(path: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kustomize_follows_directories_and_parent_paths() {
        let mut tree = ConfigTree::default();
        tree.insert(
            "config/default/kustomization.yaml",
            "resources: [../rbac]\n",
        );
        tree.insert("config/rbac/kustomization.yaml", "resources:\n  - a.yaml\n");
        tree.insert("config/rbac/a.yaml", "kind: A\n---\nkind: B\n---\n");
        let documents = tree.kustomize("config/default").unwrap();
        let kinds: Vec<_> = documents
            .iter()
            .map(|d| (d.file.as_str(), d.index, d.kind()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("config/rbac/a.yaml", 1, "A"),
                ("config/rbac/a.yaml", 2, "B")
            ]
        );
    }

    #[test]
    fn a_listed_file_that_is_missing_names_the_kustomization() {
        let mut tree = ConfigTree::default();
        tree.insert("config/x/kustomization.yaml", "resources: [gone.yaml]\n");
        let error = tree.kustomize("config/x").unwrap_err().to_string();
        assert_eq!(
            error,
            "config/x/gone.yaml: not found (listed in config/x/kustomization.yaml)"
        );
    }

    #[test]
    fn a_missing_field_is_reported_with_file_document_and_path() {
        let documents = parse_documents("f.yaml", "kind: A\n---\nkind: B\nspec: {}\n").unwrap();
        let error = documents[1].str("spec.template.name").unwrap_err();
        assert_eq!(
            error.to_string(),
            "f.yaml: document 2: spec.template.name: is required"
        );
    }

    #[test]
    fn group_of_core_and_named_api_versions() {
        let documents =
            parse_documents("f.yaml", "apiVersion: v1\n---\napiVersion: apps/v1\n").unwrap();
        assert_eq!(documents[0].group(), "");
        assert_eq!(documents[1].group(), "apps");
    }
}
