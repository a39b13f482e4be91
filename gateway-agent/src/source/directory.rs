//! The state of a directory of YAML files, file by file: what each file last yielded, and which
//! files are currently broken. Pure apart from reading the files; the watcher drives it.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use legate_crds::{
    ObjectRef, Resource,
    loader::{FileError, load_str, read_file, yaml_files},
};

use super::{Rejection, SourceError, SourceSnapshot};

/// What one file yielded the last time it parsed.
#[derive(Clone, Debug, Default)]
struct Parsed {
    resources: Vec<Arc<Resource>>,
    rejected: Vec<Rejection>,
    warnings: Vec<String>,
}

#[derive(Debug, Default)]
struct FileState {
    /// The text last read, good or bad: an unchanged file is not parsed again.
    last_text: Option<Vec<u8>>,
    /// The last contents that parsed as YAML; they keep serving while the file is broken.
    good: Option<Parsed>,
    /// Why the file's current contents are not used.
    error: Option<Rejection>,
}

/// Every YAML file under one directory, and what each yielded.
#[derive(Debug)]
pub struct DirectoryState {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
}

impl DirectoryState {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            files: BTreeMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the directory again: new files are loaded, changed files reloaded, deleted files
    /// dropped. Fails only when the directory itself cannot be listed (the state is then
    /// unchanged).
    pub fn rescan(&mut self) -> Result<(), SourceError> {
        let paths = yaml_files(&self.dir).map_err(|source| SourceError::Directory {
            path: self.dir.clone(),
            source,
        })?;
        let present: BTreeSet<&PathBuf> = paths.iter().collect();
        self.files.retain(|path, _| present.contains(path));
        for path in paths {
            match read_file(&path) {
                Ok(bytes) => self.update(path, bytes),
                // Deleted between listing and reading.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.files.remove(&path);
                }
                Err(source) => {
                    let origin = path.display().to_string();
                    let state = self.files.entry(path).or_default();
                    state.last_text = None;
                    let kept = state.good.as_ref().map(|g| g.resources.len());
                    state.error = Some(Rejection::from_file(
                        &FileError::Read { origin, source },
                        kept,
                    ));
                }
            }
        }
        Ok(())
    }

    fn update(&mut self, path: PathBuf, bytes: Vec<u8>) {
        let origin = path.display().to_string();
        let state = self.files.entry(path).or_default();
        if state.last_text.as_ref() == Some(&bytes) {
            return;
        }
        let parsed = match std::str::from_utf8(&bytes) {
            Ok(text) => load_str(&origin, text),
            Err(e) => Err(FileError::Read {
                origin,
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            }),
        };
        state.last_text = Some(bytes);
        match parsed {
            Ok(loaded) => {
                state.error = None;
                let previous = state.good.as_ref().map(|g| g.resources.as_slice());
                state.good = Some(Parsed {
                    resources: reuse_unchanged(loaded.resources, previous.unwrap_or_default()),
                    rejected: loaded.errors.iter().map(Rejection::from_document).collect(),
                    warnings: loaded.warnings.iter().map(ToString::to_string).collect(),
                });
            }
            Err(e) => {
                let kept = state.good.as_ref().map(|g| g.resources.len());
                state.error = Some(Rejection::from_file(&e, kept));
            }
        }
    }

    /// The current content, with generation 0 (the publisher numbers snapshots).
    pub fn snapshot(&self) -> SourceSnapshot {
        let mut snapshot = SourceSnapshot::default();
        for state in self.files.values() {
            if let Some(error) = &state.error {
                snapshot.rejected.push(error.clone());
            }
            if let Some(good) = &state.good {
                snapshot.resources.extend(good.resources.iter().cloned());
                snapshot.rejected.extend(good.rejected.iter().cloned());
                snapshot.warnings.extend(good.warnings.iter().cloned());
            }
        }
        snapshot
    }
}

/// `parsed`, with every resource equal to one the file held before replaced by that one: a
/// resource that did not change stays the same `Arc` (consumers keep their work on it).
/// Each one is reused once: a file that declares an object twice yields two resources, never
/// one `Arc` twice (a consumer that keeps work by address would count it once).
fn reuse_unchanged(parsed: Vec<Resource>, previous: &[Arc<Resource>]) -> Vec<Arc<Resource>> {
    let mut before: HashMap<ObjectRef, Vec<&Arc<Resource>>> = HashMap::new();
    for r in previous {
        before.entry(r.object_ref()).or_default().push(r);
    }
    parsed
        .into_iter()
        .map(|r| {
            before
                .get_mut(&r.object_ref())
                .and_then(|old| Some(old.remove(old.iter().position(|o| ***o == r)?)))
                .map_or_else(|| Arc::new(r), Arc::clone)
        })
        .collect()
}
