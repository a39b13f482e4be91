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

use crate::{ObjectRef, Resource, printable::escaped};

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
/// files not named `*.yaml`/`*.yml` (`file.yaml~`, `file.yaml.swp`): [`is_yaml_path`].
pub fn yaml_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    list_yaml_files(dir, dir).map(|listing| listing.files)
}

/// What a listing of a directory (or of a subdirectory of it) found.
#[derive(Debug, Default)]
pub struct Listing {
    /// As [`yaml_files`] lists them, sorted.
    pub files: Vec<PathBuf>,
    /// Whether a symbolic link was met on the way: then what one path yields can depend on
    /// another (a link's target, the first of several links to one file).
    pub links: bool,
}

/// [`yaml_files`] of `sub`, a directory at or under `root`, with depth and hidden components
/// counted from `root` (as a listing of `root` would reach `sub`). Links are resolved within
/// this listing only.
pub fn list_yaml_files(root: &Path, sub: &Path) -> io::Result<Listing> {
    let mut listing = Listing::default();
    let Some(depth) = listed_depth(root, sub) else {
        return Ok(listing);
    };
    if depth > MAX_DEPTH {
        return Ok(listing);
    }
    list_yaml(sub, depth, &mut Seen::default(), &mut listing)?;
    // The walk sorts each directory; the whole list is in path order (`a/x.yaml` after
    // `a.yaml`), as it always was.
    listing.files.sort();
    Ok(listing)
}

/// Whether a listing of `root` lists `path` when it is a regular file (or a link to one): the
/// one rule the listing and a watcher of `root` share.
pub fn is_yaml_path(root: &Path, path: &Path) -> bool {
    // A file at depth n is listed from its directory at depth n - 1.
    listed_depth(root, path).is_some_and(|depth| (1..=MAX_DEPTH + 1).contains(&depth))
        && is_yaml_name(path)
}

/// Whether a listing of `root` walks `path` when it is a directory (or a link to one).
pub fn is_listed_dir(root: &Path, path: &Path) -> bool {
    listed_depth(root, path).is_some_and(|depth| depth <= MAX_DEPTH)
}

/// How many components below `root` the listing reaches `path`, if it does: `None` for a path
/// outside `root` or with a hidden component.
fn listed_depth(root: &Path, path: &Path) -> Option<usize> {
    let relative = path.strip_prefix(root).ok()?;
    let mut depth = 0;
    for component in relative.components() {
        match component {
            std::path::Component::Normal(name) if !is_hidden(Path::new(name)) => depth += 1,
            _ => return None,
        }
    }
    Some(depth)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn is_yaml_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

/// A YAML file larger than this is refused whole: one file must not cost the agent its memory
/// (a link to `/dev/zero` once grew it to 1.5 GB). 10,000 Mappings take about 2 MiB.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a regular file (links followed) of at most [`MAX_FILE_BYTES`]. A FIFO, a device or a
/// socket is never opened: reading one blocks, or never ends.
pub fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    read_file_with_metadata(path).map(|(bytes, _)| bytes)
}

/// [`read_file`], and the file's metadata as looked at before reading it: a file changed since
/// has other metadata (its change time, at least).
pub fn read_file_with_metadata(path: &Path) -> io::Result<(Vec<u8>, std::fs::Metadata)> {
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
    // Room for the whole file and the read that finds its end: one read of it, not a probe and
    // a buffer grown by doubling (three more system calls for a Mapping's file).
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).map_or(0, |n| n + 1));
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
    Ok((bytes, meta))
}

/// The real directories and files already listed, so a link loop is walked once and a file
/// that several links point at is read once (under its first path in sorted order).
#[derive(Default)]
struct Seen(std::collections::HashSet<PathBuf>);

impl Seen {
    /// Whether the real path `real` is new; a path that could not be resolved (`None`) counts
    /// as new.
    fn first(&mut self, real: Option<PathBuf>) -> bool {
        real.is_none_or(|real| self.0.insert(real))
    }
}

fn list_yaml(dir: &Path, depth: usize, seen: &mut Seen, listing: &mut Listing) -> io::Result<()> {
    let real_dir = std::fs::canonicalize(dir).ok();
    if !seen.first(real_dir.clone()) {
        return Ok(());
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        // The listing's own type: no extra system call, and not followed.
        entries.push((entry.path(), entry.file_type().ok()));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, kind) in entries {
        if is_hidden(&path) {
            continue;
        }
        // A plain entry is what the listing says, and really is in the real directory; only
        // a link (or an entry of unknown type) is looked at, and resolved. At 10,000 files
        // those looks were a tenth of reading the directory.
        let plain = kind.filter(|k| !k.is_symlink());
        listing.links |= kind.is_some_and(|k| k.is_symlink());
        // Follows symlinks, as a ConfigMap volume's files are links.
        if plain.map_or_else(|| path.is_dir(), |k| k.is_dir()) {
            if depth < MAX_DEPTH {
                // A subdirectory removed while listing is simply gone.
                match list_yaml(&path, depth + 1, seen, listing) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    other => other?,
                }
            }
            continue;
        }
        if !is_yaml_name(&path) {
            continue;
        }
        let real = match (plain, &real_dir, path.file_name()) {
            (Some(_), Some(real_dir), Some(name)) => Some(real_dir.join(name)),
            _ => std::fs::canonicalize(&path).ok(),
        };
        if seen.first(real) {
            listing.files.push(path);
        }
    }
    Ok(())
}

/// What one document may cost, in a file as from the API server. No Kubernetes object is larger
/// than etcd's 1.5 MiB request limit, and a Mapping has about fifty nodes; a document past either
/// bound is refused alone, before it is built in memory (one of a million `ambassador_id`s once
/// grew the agent by 425 MB).
pub const MAX_DOCUMENT_BYTES: usize = 1536 * 1024;
/// See [`MAX_DOCUMENT_BYTES`]: YAML nodes (mappings, sequences and scalars) in one document.
pub const MAX_DOCUMENT_NODES: usize = 10_000;
/// Documents in one file: 10,000 Mappings in one generated file are legitimate; a file of empty
/// documents by the million is not.
pub const MAX_DOCUMENTS: usize = 100_000;

/// Documents over budget in one file before the file is refused whole: each one costs a new
/// start of the parser.
const MAX_DOCUMENTS_OVER_BUDGET: usize = 8;

/// Loads every document of `text`; `origin` names it in messages. Documents are numbered from 1
/// in file order, empty ones (a trailing `---`) not counted.
pub fn load_str(origin: &str, text: &str) -> Result<Loaded, FileError> {
    let Some(documents) = parse_whole(text) else {
        return load_streaming(origin, text);
    };
    let mut loaded = Loaded::default();
    for (index, document) in (1..).zip(documents) {
        load_document(origin, index, document, &mut loaded);
    }
    Ok(loaded)
}

/// [`load_str`] a document at a time, resuming after a document over budget.
fn load_streaming(origin: &str, text: &str) -> Result<Loaded, FileError> {
    let mut loaded = Loaded::default();
    let mut index = 0;
    let mut over_budget = 0;
    let mut resume = 0;
    loop {
        // After a document over budget the parser starts again at the next one, the lines read
        // so far blank so that every line number stays true.
        let padded;
        let rest = if resume == 0 {
            text
        } else {
            let lines = text[..resume].matches('\n').count();
            padded = format!("{}{}", "\n".repeat(lines), &text[resume..]);
            &padded
        };
        let Some(line) = load_documents(origin, rest, &mut index, &mut loaded)? else {
            return Ok(loaded);
        };
        over_budget += 1;
        if over_budget > MAX_DOCUMENTS_OVER_BUDGET {
            return Err(FileError::Yaml {
                origin: origin.to_owned(),
                message: format!(
                    "more than {MAX_DOCUMENTS_OVER_BUDGET} documents larger than a document may \
                     be; the file is refused whole"
                ),
            });
        }
        match next_document_start(text, line) {
            Some(offset) => resume = offset,
            None => return Ok(loaded),
        }
    }
}

/// Every document of `text`, when it parses whole and all of its documents together stay within
/// one document's budget (so each does); `None` sends it through [`load_documents`], which
/// refuses a document over budget alone and tells a file that is not YAML. The parser over a
/// whole string is a third faster than the streaming one, and most files are a few documents.
fn parse_whole(text: &str) -> Option<Vec<Value>> {
    serde_saphyr::from_multiple_with_options::<Value>(text, document_budget())
        .ok()
        .filter(|documents| documents.len() <= MAX_DOCUMENTS)
}

/// What one document may cost the parser, checked as it parses: what breaks it is never built.
fn document_budget() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: MAX_DOCUMENT_NODES,
            max_total_scalar_bytes: MAX_DOCUMENT_BYTES,
            max_events: 4 * MAX_DOCUMENT_NODES,
        },
    }
}

/// Loads the documents of `text` until its end (`None`) or until one over budget, which is
/// refused: then the line where the budget broke.
fn load_documents(
    origin: &str,
    text: &str,
    index: &mut usize,
    loaded: &mut Loaded,
) -> Result<Option<u64>, FileError> {
    // The message and its line and column, never the file's lines around it: the file may be a
    // Secret, and its lines a private key.
    let render = |e: &serde_saphyr::Error| {
        e.render_with_options(serde_saphyr::render_options! {
            snippets: serde_saphyr::SnippetMode::Off,
        })
    };
    let yaml_error = |message| FileError::Yaml {
        origin: origin.to_owned(),
        message,
    };
    // Each document has its own budget.
    let mut bytes = text.as_bytes();
    for document in serde_saphyr::read_with_options::<_, Value>(&mut bytes, document_budget()) {
        *index += 1;
        if *index > MAX_DOCUMENTS {
            return Err(yaml_error(format!(
                "more than {MAX_DOCUMENTS} documents; the file is refused whole"
            )));
        }
        match document {
            Ok(document) => load_document(origin, *index, document, loaded),
            Err(e @ serde_saphyr::Error::Budget { .. }) => {
                loaded.errors.push(DocumentError {
                    origin: origin.to_owned(),
                    index: *index,
                    object: None,
                    problems: vec![problem(
                        "",
                        &format!(
                            "larger than a document may be (at most {MAX_DOCUMENT_NODES} YAML \
                             nodes and {MAX_DOCUMENT_BYTES} bytes of text): {}",
                            render(&e)
                        ),
                    )],
                });
                return match e.location() {
                    Some(at) => Ok(Some(at.line())),
                    None => Err(yaml_error(render(&e))),
                };
            }
            // Not YAML: the whole file is refused, as no document after it can be trusted.
            Err(e) => return Err(yaml_error(render(&e))),
        }
    }
    Ok(None)
}

/// The byte offset of the first document marker (`---` at the start of a line) after line
/// `after` (1-based). YAML forbids such a line inside any scalar, so it always starts the next
/// document.
fn next_document_start(text: &str, after: u64) -> Option<usize> {
    let mut offset = 0;
    for (number, line) in (1u64..).zip(text.split_inclusive('\n')) {
        let marker = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']));
        if number > after && marker {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

/// Loads one object as the API server handed it over (a watch event): the same checks, errors
/// and warnings as a document of a file, with `origin` naming where it came from.
pub fn load_object(origin: &str, object: Value) -> Loaded {
    let mut loaded = Loaded::default();
    if within_budget(&object) {
        load_document(origin, 1, object, &mut loaded);
    } else {
        loaded.errors.push(DocumentError {
            origin: origin.to_owned(),
            index: 1,
            object: identify(&object),
            problems: vec![problem(
                "",
                &format!(
                    "larger than a document may be (at most {MAX_DOCUMENT_NODES} nodes and \
                     {MAX_DOCUMENT_BYTES} bytes of text)"
                ),
            )],
        });
    }
    loaded
}

/// Whether an object costs no more than a document of a file may ([`MAX_DOCUMENT_NODES`],
/// [`MAX_DOCUMENT_BYTES`]); the count stops at the first bound crossed.
fn within_budget(object: &Value) -> bool {
    let mut nodes = 0usize;
    let mut bytes = 0usize;
    let mut pending = vec![object];
    while let Some(value) = pending.pop() {
        nodes += 1;
        match value {
            Value::String(s) => bytes += s.len(),
            Value::Array(items) => pending.extend(items),
            Value::Object(map) => {
                // A key is a scalar node of its own in YAML.
                nodes += map.len();
                bytes += map.keys().map(String::len).sum::<usize>();
                pending.extend(map.values());
            }
            _ => {}
        }
        if nodes > MAX_DOCUMENT_NODES || bytes > MAX_DOCUMENT_BYTES {
            return false;
        }
    }
    true
}

fn load_document(origin: &str, index: usize, mut document: Value, loaded: &mut Loaded) {
    drop_nulls(&mut document);
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
            message: format!(
                "kind {} ({}) is not one Legate serves; skipped",
                escaped(kind),
                escaped(api_version)
            ),
        });
        return;
    };
    // Emissary's v1 and v2 are read through its conversion to v3alpha1, with a warning that
    // says what changed (`legate-agent convert` rewrites the file for good).
    if api_version != served && crate::convert::OLD_VERSIONS.contains(&api_version) {
        let old = api_version.to_owned();
        match crate::convert::convert(&document) {
            Ok(Some(converted)) => {
                loaded.warnings.push(Warning {
                    origin: origin.to_owned(),
                    index,
                    object: object.clone(),
                    message: format!(
                        "{old} is deprecated; read as {served} (`legate-agent convert` rewrites \
                         it){}",
                        match converted.changes.get(1..) {
                            Some(rest) if !rest.is_empty() => format!(": {}", rest.join("; ")),
                            _ => ", nothing else changed".to_owned(),
                        }
                    ),
                });
                return load_document(origin, index, converted.document, loaded);
            }
            Ok(None) => {}
            Err(e) => {
                let message = format!("{old} cannot be read as {served}: {}", e.message);
                return reject(vec![problem(&e.field, &message)], object);
            }
        }
    }
    if api_version != served {
        let message = format!(
            "{} is not served for {kind}; use {served}",
            escaped(api_version)
        );
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
    let Some(name) = str_at(&document, "/metadata/name").filter(|n| !n.is_empty()) else {
        let wrong_type = match (document.get("metadata"), document.pointer("/metadata/name")) {
            (Some(m), _) if !m.is_object() => Some(("metadata", "expected a map")),
            (_, Some(n)) if !n.is_string() => Some(("metadata.name", "expected a string")),
            _ => None,
        };
        let (field, message) = wrong_type.unwrap_or(("metadata.name", "is required"));
        return reject(vec![problem(field, message)], object);
    };
    if let Err(message) = crate::names::check_name(kind, name) {
        return reject(vec![problem("metadata.name", &message)], object);
    }
    if let Some(namespace) = str_at(&document, "/metadata/namespace")
        && let Err(message) = crate::names::check_namespace(namespace)
    {
        return reject(vec![problem("metadata.namespace", &message)], object);
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
            message: format!("{}: unknown field, ignored", escaped(&path)),
        });
    }
    match decoded {
        Err(problems) => reject(problems, object),
        Ok(resource) => {
            if let Some(problem) = crate::structural::type_problem(&kind, &document) {
                return reject(vec![problem], object);
            }
            let broken = crate::validation::cel_problems(&kind, &document);
            if kind == "Service"
                && let Some(message) = crate::service::annotation_config_warning(&document)
            {
                loaded.warnings.push(Warning {
                    origin: origin.to_owned(),
                    index,
                    object: object.clone(),
                    message,
                });
            }
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
        Some(field) if parent.is_empty() => problem(&escaped(field), "is required"),
        Some(field) => problem(&escaped(&format!("{parent}.{field}")), "is required"),
        None => FieldProblem {
            field: escaped(&parent).into_owned(),
            message: escaped(&message).into_owned(),
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

/// Who the document says it is, as far as that can be printed: a name or namespace Kubernetes
/// would refuse is not used (the document is refused for it, the message quoting it escaped).
fn identify(document: &Value) -> Option<ObjectRef> {
    let kind = str_at(document, "/kind")?;
    let name = str_at(document, "/metadata/name")?;
    crate::names::check_name(kind, name).ok()?;
    let namespace = str_at(document, "/metadata/namespace");
    if let Some(namespace) = namespace {
        crate::names::check_namespace(namespace).ok()?;
    }
    Some(ObjectRef {
        kind: escaped(kind).into_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
    })
}

/// The API server drops an optional field set to `null`; so does the loader, before typing and
/// CEL see the document (`per_try_timeout: null` is no timeout, not a type error). Nulls in
/// lists stay, and are refused as the wrong type.
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The text of every file of the test data (`tests/data/corpus` and `tests/data/rejected`),
/// in path order: what the in-crate tests compare two ways of loading on.
#[cfg(test)]
pub(crate) fn test_data_texts() -> Vec<String> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files: Vec<PathBuf> = ["corpus", "rejected"]
        .into_iter()
        .flat_map(|dir| std::fs::read_dir(data.join(dir)).unwrap())
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| std::fs::read_to_string(file).unwrap())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole-string parser is only a faster way to the same documents: every test file,
    /// and files it declines (over budget, not YAML, empty), load as a document at a time.
    #[test]
    fn a_file_parsed_whole_loads_as_it_does_a_document_at_a_time() {
        let mut texts = test_data_texts();
        let big = format!("items: [{}]", vec!["x"; MAX_DOCUMENT_NODES].join(", "));
        let good = texts[0].clone();
        texts.extend([
            String::new(),
            "---\n---\n".to_owned(),
            "a: [\n".to_owned(),
            format!("{good}\n---\n{big}\n---\n{good}"),
            format!("{good}\n---\nkey: : value\n"),
        ]);
        let mut whole = 0;
        for text in &texts {
            whole += usize::from(parse_whole(text).is_some());
            let fast = load_str("f.yaml", text);
            let streamed = load_streaming("f.yaml", text);
            assert_eq!(format!("{fast:?}"), format!("{streamed:?}"), "{text}");
        }
        assert!(whole > texts.len() / 2, "most files parse whole");
        assert!(
            parse_whole(&texts[texts.len() - 2]).is_none(),
            "over budget"
        );
    }
}
