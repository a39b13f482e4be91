//! Reads resources from multi-document YAML, as the agent's directory mode and the tests do.
//!
//! A file that is not YAML is an error for that file ([`FileError`]). Within a file each
//! document stands alone: a bad one becomes a [`DocumentError`] naming the file, the document's
//! position, the object and the field, and the others still load. Documents of kinds Legate
//! does not serve, and fields it does not know, are [`Warning`]s.

use std::{
    fmt, io,
    path::{Path, PathBuf},
};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{ObjectRef, Resource};

/// What one file yielded.
#[derive(Debug, Default)]
pub struct Loaded {
    pub resources: Vec<Resource>,
    pub errors: Vec<DocumentError>,
    pub warnings: Vec<Warning>,
}

/// The whole file could not be read or is not YAML.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
        source: std::io::Error,
    },
    #[error("{origin}: not valid YAML: {message}")]
    Yaml { origin: String, message: String },
}

/// One field of one document, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    /// Dotted path from the document's root, e.g. `spec.retry_policy.retry_on`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// A document that was rejected; the rest of its file is unaffected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct DocumentError {
    pub origin: String,
    /// 1-based position of the document in its file.
    pub index: usize,
    /// As far as the document says who it is.
    pub object: Option<ObjectRef>,
    pub problems: Vec<FieldProblem>,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.origin, self.index)?;
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        f.write_str(": ")?;
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Something skipped or ignored, worth a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub origin: String,
    pub index: usize,
    pub object: Option<ObjectRef>,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.origin, self.index)?;
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What a directory yielded: every file's documents, and the files that could not be read.
#[derive(Debug, Default)]
pub struct DirectoryLoad {
    pub loaded: Loaded,
    pub file_errors: Vec<FileError>,
}

/// Loads every `*.yaml`/`*.yml` file under `dir` ([`yaml_files`]), in path order (so the
/// result does not depend on the file system's listing order).
pub fn load_dir(dir: &Path) -> Result<DirectoryLoad, FileError> {
    let files = yaml_files(dir).map_err(|source| FileError::Read {
        origin: dir.display().to_string(),
        source,
    })?;
    let mut result = DirectoryLoad::default();
    for file in files {
        match load_file(&file) {
            Ok(loaded) => {
                result.loaded.resources.extend(loaded.resources);
                result.loaded.errors.extend(loaded.errors);
                result.loaded.warnings.extend(loaded.warnings);
            }
            Err(e) => result.file_errors.push(e),
        }
    }
    Ok(result)
}

/// Loads one file ([`read_file`]'s limits); `origin` in messages is the path as given.
pub fn load_file(path: &Path) -> Result<Loaded, FileError> {
    let origin = path.display().to_string();
    let read = |source| FileError::Read {
        origin: origin.clone(),
        source,
    };
    let bytes = read_file(path).map_err(read)?;
    let text = String::from_utf8(bytes)
        .map_err(|e| read(io::Error::new(io::ErrorKind::InvalidData, e.utf8_error())))?;
    load_str(&origin, &text)
}

/// Directories nested deeper than this are not read.
const MAX_DEPTH: usize = 32;

/// Every `*.yaml`/`*.yml` file under `dir`, recursively, sorted. Links are followed (a
/// ConfigMap volume's files are links), but each real directory is walked once and each real
/// file listed once, under its first path: a link loop ends, and a file many links point at is
/// read once. Hidden files and folders are skipped (editors and `kubectl` leave swap and
/// temporary files there, and a ConfigMap volume keeps its real files under `..data`), as are
/// files not named `*.yaml`/`*.yml` (`file.yaml~`, `file.yaml.swp`).
pub fn yaml_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    list_yaml(dir, 0, &mut Seen::default(), &mut out)?;
    // The walk sorts each directory; the whole list is in path order (`a/x.yaml` after
    // `a.yaml`), as it always was.
    out.sort();
    Ok(out)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// A YAML file larger than this is refused whole: one file must not cost the agent its memory
/// (a link to `/dev/zero` once grew it to 1.5 GB). 10,000 Mappings take about 2 MiB.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a regular file (links followed) of at most [`MAX_FILE_BYTES`]. A FIFO, a device or a
/// socket is never opened: reading one blocks, or never ends.
pub fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or socket is never read)",
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} bytes, more than the {MAX_FILE_BYTES} a file may have",
                meta.len()
            ),
        ));
    }
    let mut bytes = Vec::new();
    // The size can grow between the look and the read: never read past the limit.
    io::Read::read_to_end(
        &mut io::Read::take(std::fs::File::open(path)?, MAX_FILE_BYTES + 1),
        &mut bytes,
    )?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("more than the {MAX_FILE_BYTES} bytes a file may have"),
        ));
    }
    Ok(bytes)
}

/// The real directories and files already listed, so a link loop is walked once and a file
/// that several links point at is read once (under its first path in sorted order).
#[derive(Default)]
struct Seen(std::collections::HashSet<PathBuf>);

impl Seen {
    /// Whether `path` (resolved) is new; a path that cannot be resolved counts as new.
    fn first(&mut self, path: &Path) -> bool {
        match std::fs::canonicalize(path) {
            Ok(real) => self.0.insert(real),
            Err(_) => true,
        }
    }
}

fn list_yaml(dir: &Path, depth: usize, seen: &mut Seen, out: &mut Vec<PathBuf>) -> io::Result<()> {
    if !seen.first(dir) {
        return Ok(());
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        entries.push(entry?.path());
    }
    entries.sort();
    for path in entries {
        if is_hidden(&path) {
            continue;
        }
        // Follows symlinks, as a ConfigMap volume's files are links.
        if path.is_dir() {
            if depth < MAX_DEPTH {
                // A subdirectory removed while listing is simply gone.
                match list_yaml(&path, depth + 1, seen, out) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    other => other?,
                }
            }
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") && seen.first(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Loads every document of `text`; `origin` names it in messages.
pub fn load_str(origin: &str, text: &str) -> Result<Loaded, FileError> {
    // serde-saphyr's default budget stops at 1,024 documents and 250,000 nodes; a generated
    // configuration of 10,000 Mappings in one file is legitimate. Alias limits stay as they are.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: 1_000_000,
            max_nodes: 50_000_000,
            max_events: 100_000_000,
        },
    };
    let documents: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| FileError::Yaml {
            origin: origin.to_owned(),
            // The message and its line and column, never the file's lines around it: the file
            // may be a Secret, and its lines a private key.
            message: e.render_with_options(serde_saphyr::render_options! {
                snippets: serde_saphyr::SnippetMode::Off,
            }),
        })?;
    let mut loaded = Loaded::default();
    for (i, document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue; // an empty document, e.g. a trailing `---`
        }
        load_document(origin, i + 1, document, &mut loaded);
    }
    Ok(loaded)
}

/// Loads one object as the API server handed it over (a watch event): the same checks, errors
/// and warnings as a document of a file, with `origin` naming where it came from.
pub fn load_object(origin: &str, object: Value) -> Loaded {
    let mut loaded = Loaded::default();
    load_document(origin, 1, object, &mut loaded);
    loaded
}

fn load_document(origin: &str, index: usize, document: Value, loaded: &mut Loaded) {
    let object = identify(&document);
    let mut reject = |problems: Vec<FieldProblem>, object: Option<ObjectRef>| {
        loaded.errors.push(DocumentError {
            origin: origin.to_owned(),
            index,
            object,
            problems,
        });
    };
    if !document.is_object() {
        return reject(
            vec![problem("", "expected a Kubernetes object (a YAML mapping)")],
            None,
        );
    }
    let (api_version, kind) = match (str_at(&document, "/apiVersion"), str_at(&document, "/kind")) {
        (Some(a), Some(k)) => (a, k),
        (None, _) => return reject(vec![problem("apiVersion", "is required")], object),
        (_, None) => return reject(vec![problem("kind", "is required")], object),
    };
    let Some(served) = crate::api_version_of(kind) else {
        loaded.warnings.push(Warning {
            origin: origin.to_owned(),
            index,
            object,
            message: format!("kind {kind} ({api_version}) is not one Legate serves; skipped"),
        });
        return;
    };
    if api_version != served {
        let message = format!("{api_version} is not served for {kind}; use {served}");
        return reject(vec![problem("apiVersion", &message)], object);
    }
    // Secrets of other types (service-account tokens, Opaque, ...) are common in a dumped
    // namespace and none of Legate's business.
    if kind == "Secret"
        && let Some(message) = crate::secret::skip_reason(&document)
    {
        loaded.warnings.push(Warning {
            origin: origin.to_owned(),
            index,
            object,
            message,
        });
        return;
    }
    if str_at(&document, "/metadata/name").is_none_or(str::is_empty) {
        return reject(vec![problem("metadata.name", "is required")], object);
    }

    let kind = kind.to_owned();
    let mut unknown = Vec::new();
    let decoded = crate::decode_kind(&kind, document.clone(), &mut |path| unknown.push(path))
        .expect("api_version_of and decode_kind list the same kinds");
    for path in unknown {
        loaded.warnings.push(Warning {
            origin: origin.to_owned(),
            index,
            object: object.clone(),
            message: format!("{path}: unknown field, ignored"),
        });
    }
    match decoded {
        Err(problems) => reject(problems, object),
        Ok(resource) => {
            let broken = crate::validation::cel_problems(&kind, &document);
            if broken.is_empty() {
                loaded.resources.push(resource);
            } else {
                reject(broken, object);
            }
        }
    }
}

/// Typed decoding that reports the failing field's path and every field it ignored.
pub(crate) fn decode<T: DeserializeOwned>(
    value: Value,
    warn: &mut dyn FnMut(String),
) -> Result<T, Vec<FieldProblem>> {
    let mut on_ignored = |path: serde_ignored::Path<'_>| {
        let path = path.to_string();
        // The derived root types check apiVersion and kind without keeping them as fields.
        if path != "apiVersion" && path != "kind" {
            warn(path);
        }
    };
    let ignored = serde_ignored::Deserializer::new(value, &mut on_ignored);
    serde_path_to_error::deserialize(ignored).map_err(|e| {
        let parent = e.path().to_string();
        let message = e.inner().to_string();
        vec![field_problem(parent, message)]
    })
}

/// serde reports a missing field at its parent ("spec: missing field `prefix`"); name the field
/// itself instead ("spec.prefix: is required").
fn field_problem(parent: String, message: String) -> FieldProblem {
    let parent = if parent == "." { String::new() } else { parent };
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'));
    match missing {
        Some(field) if parent.is_empty() => problem(field, "is required"),
        Some(field) => problem(&format!("{parent}.{field}"), "is required"),
        None => FieldProblem {
            field: parent,
            message,
        },
    }
}

fn problem(field: &str, message: &str) -> FieldProblem {
    FieldProblem {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn identify(document: &Value) -> Option<ObjectRef> {
    Some(ObjectRef {
        kind: str_at(document, "/kind")?.to_owned(),
        namespace: str_at(document, "/metadata/namespace").map(str::to_owned),
        name: str_at(document, "/metadata/name")?.to_owned(),
    })
}
