//! The state of a directory of YAML files, file by file: what each file last yielded, and which
//! files are currently broken. Pure apart from reading the files; the watcher drives it, with
//! a whole rescan or with the paths its events name.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs::Metadata,
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use legate_crds::{
    ObjectRef, Resource,
    loader::{
        FileError, Loaded, is_listed_dir, is_yaml_path, list_yaml_files, load_str,
        read_file_with_metadata,
    },
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
    /// The file as last read, when it could be.
    stamp: Option<Stamp>,
}

/// What tells that a file changed without reading it: which file it is, its size, and when its
/// content and its inode last changed (any write changes the latter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Every YAML file under one directory, and what each yielded.
#[derive(Debug)]
pub struct DirectoryState {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    /// Whether the last listing met a symbolic link. Then which file a path yields can depend
    /// on other paths (a link's target, the first of several links to one file; a ConfigMap
    /// volume swaps a hidden `..data` link), so any change reads the whole directory again.
    links: bool,
    /// Files read so far, for tests: a change reads only what it must. Shared, so a test can
    /// count the reads of a state the watcher's thread owns.
    reads: Arc<AtomicU64>,
}

/// What a change at one path asks to read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Nothing the directory yields (a hidden file, `notes.txt`, `a.yaml~`).
    Nothing,
    /// That path: a file, or a directory with everything under it.
    Path,
    /// Everything: the change cannot be attributed to paths alone.
    Everything,
}

/// A change that paths alone cannot account for: only reading the whole directory can.
struct NeedsRescan;

/// One file read (and parsed when its text changed), before it is applied to the state.
enum Read {
    Gone,
    Failed(io::Error),
    Unchanged(Stamp),
    Changed {
        text: Vec<u8>,
        parsed: Result<Loaded, FileError>,
        stamp: Stamp,
    },
}

/// Files are read and parsed on this many threads at most (the agent has a core or two).
const MAX_READERS: usize = 4;
/// A thread is worth starting for this many files.
const FILES_PER_READER: usize = 64;

impl DirectoryState {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            files: BTreeMap::new(),
            links: false,
            reads: Arc::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many files this state has read, and will have read: for tests of what a change
    /// reads.
    #[doc(hidden)]
    pub fn files_read(&self) -> Arc<AtomicU64> {
        self.reads.clone()
    }

    /// Reads the directory again: new files are loaded, changed files reloaded, deleted files
    /// dropped. Fails only when the directory itself cannot be listed (the state is then
    /// unchanged).
    pub fn rescan(&mut self) -> Result<(), SourceError> {
        let files = self.relist()?;
        self.load(files);
        Ok(())
    }

    /// [`Self::rescan`] that reads only the files whose metadata changed since they were read
    /// (no unchanged file is opened): what a watch set after the files were read missed.
    pub fn verify(&mut self) -> Result<(), SourceError> {
        let files = self.relist()?;
        let changed = files
            .into_iter()
            .filter(|path| {
                let now = std::fs::metadata(path).ok().map(|m| Stamp::of(&m));
                now.is_none() || self.files.get(path).and_then(|s| s.stamp) != now
            })
            .collect();
        self.load(changed);
        Ok(())
    }

    /// Lists the directory: the files in it now, the others forgotten.
    fn relist(&mut self) -> Result<Vec<PathBuf>, SourceError> {
        let listing =
            list_yaml_files(&self.dir, &self.dir).map_err(|source| SourceError::Directory {
                path: self.dir.clone(),
                source,
            })?;
        self.links = listing.links;
        let present: BTreeSet<&PathBuf> = listing.files.iter().collect();
        self.files.retain(|path, _| present.contains(path));
        Ok(listing.files)
    }

    /// What a change at `path` (as a watcher names it) asks to read again.
    pub fn reach(&self, path: &Path) -> Reach {
        if self.links || path == self.dir || !path.starts_with(&self.dir) {
            return Reach::Everything;
        }
        if is_yaml_path(&self.dir, path) || self.is_tracked_dir(path) {
            return Reach::Path;
        }
        // A directory the listing walks (a new one, or `x.yaml` turned into one), or a
        // path that cannot be looked at: read it to know.
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() && is_listed_dir(&self.dir, path) => Reach::Path,
            Ok(meta) if meta.is_symlink() && is_listed_dir(&self.dir, path) => Reach::Everything,
            Ok(_) => Reach::Nothing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Reach::Nothing,
            Err(_) => Reach::Everything,
        }
    }

    /// Reads again what changed at `paths` (see [`Self::reach`]): files are reloaded or
    /// dropped, directories listed with everything under them. Falls back to [`Self::rescan`]
    /// when one of them cannot be attributed.
    pub fn refresh<'a>(
        &mut self,
        paths: impl IntoIterator<Item = &'a PathBuf>,
    ) -> Result<(), SourceError> {
        let mut read = BTreeSet::new();
        for path in paths {
            let found = match self.reach(path) {
                Reach::Nothing => Ok(Vec::new()),
                Reach::Path => self.list(path),
                Reach::Everything => Err(NeedsRescan),
            };
            match found {
                Ok(files) => read.extend(files),
                Err(NeedsRescan) => return self.rescan(),
            }
        }
        self.load(read.into_iter().collect());
        Ok(())
    }

    /// The files to read for a change at `path`, with the ones no longer there dropped; `Err`
    /// when only a rescan can tell (a link appeared, a directory cannot be listed).
    fn list(&mut self, path: &Path) -> Result<Vec<PathBuf>, NeedsRescan> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.drop_under(path, &BTreeSet::new());
                return Ok(Vec::new());
            }
            Err(_) => return Err(NeedsRescan),
        };
        if meta.is_symlink() {
            return Err(NeedsRescan);
        }
        if !meta.is_dir() {
            // A file, or something `read_file` refuses with a reason (a FIFO, a device).
            self.drop_under(path, &BTreeSet::from([path.to_owned()]));
            return Ok(if is_yaml_path(&self.dir, path) {
                vec![path.to_owned()]
            } else {
                Vec::new()
            });
        }
        match list_yaml_files(&self.dir, path) {
            Ok(listing) if !listing.links => {
                self.drop_under(path, &listing.files.iter().cloned().collect());
                Ok(listing.files)
            }
            Ok(_) => Err(NeedsRescan),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.drop_under(path, &BTreeSet::new());
                Ok(Vec::new())
            }
            Err(_) => Err(NeedsRescan),
        }
    }

    /// Forgets the files at or under `path` except `keep`.
    fn drop_under(&mut self, path: &Path, keep: &BTreeSet<PathBuf>) {
        let gone: Vec<PathBuf> = self
            .files
            .range(path.to_owned()..)
            .map(|(p, _)| p)
            .take_while(|p| p.starts_with(path))
            .filter(|p| !keep.contains(*p))
            .cloned()
            .collect();
        for p in gone {
            self.files.remove(&p);
        }
    }

    /// Whether files are held under `path` (a directory that was there).
    fn is_tracked_dir(&self, path: &Path) -> bool {
        self.files
            .range(path.to_owned()..)
            .next()
            .is_some_and(|(p, _)| p != path && p.starts_with(path))
    }

    /// Reads `paths` (in parallel when there are many) and applies what they hold now.
    fn load(&mut self, paths: Vec<PathBuf>) {
        self.reads.fetch_add(paths.len() as u64, Ordering::Relaxed);
        let wanted = paths.len().div_ceil(FILES_PER_READER).min(MAX_READERS);
        // Asked only when it matters: it reads the cgroup's CPU quota, every time.
        let readers = if wanted > 1 {
            std::thread::available_parallelism().map_or(1, |n| wanted.min(n.get()))
        } else {
            1
        };
        let read: Vec<(PathBuf, Read)> = if readers == 1 {
            paths.into_iter().map(|p| self.read(p)).collect()
        } else {
            let chunk = paths.len().div_ceil(readers);
            let this = &*self;
            std::thread::scope(|scope| {
                let workers: Vec<_> = paths
                    .chunks(chunk)
                    .map(|chunk| {
                        scope.spawn(move || {
                            chunk
                                .iter()
                                .map(|p| this.read(p.clone()))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    // A reader that panicked (a bug, not a file) takes the agent down as it
                    // would have on this thread.
                    .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        };
        for (path, read) in read {
            self.apply(path, read);
        }
    }

    /// Reads one file, and parses it if its text changed. Touches no state: runs on any thread.
    fn read(&self, path: PathBuf) -> (PathBuf, Read) {
        let read = match read_file_with_metadata(&path) {
            Ok((text, meta)) => {
                let stamp = Stamp::of(&meta);
                let last = self.files.get(&path).and_then(|s| s.last_text.as_ref());
                if last == Some(&text) {
                    Read::Unchanged(stamp)
                } else {
                    let origin = path.display().to_string();
                    let parsed = match std::str::from_utf8(&text) {
                        Ok(text) => load_str(&origin, text),
                        Err(e) => Err(FileError::Read {
                            origin,
                            source: io::Error::new(io::ErrorKind::InvalidData, e),
                        }),
                    };
                    Read::Changed {
                        text,
                        parsed,
                        stamp,
                    }
                }
            }
            // Deleted between listing (or the event) and reading.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Read::Gone,
            Err(e) => Read::Failed(e),
        };
        (path, read)
    }

    fn apply(&mut self, path: PathBuf, read: Read) {
        match read {
            Read::Unchanged(stamp) => {
                if let Some(state) = self.files.get_mut(&path) {
                    state.stamp = Some(stamp);
                }
            }
            Read::Gone => {
                self.files.remove(&path);
            }
            Read::Failed(source) => {
                let origin = path.display().to_string();
                let state = self.files.entry(path).or_default();
                state.last_text = None;
                state.stamp = None;
                let kept = state.good.as_ref().map(|g| g.resources.len());
                state.error = Some(Rejection::from_file(
                    &FileError::Read { origin, source },
                    kept,
                ));
            }
            Read::Changed {
                text,
                parsed,
                stamp,
            } => {
                let state = self.files.entry(path).or_default();
                state.last_text = Some(text);
                state.stamp = Some(stamp);
                match parsed {
                    Ok(loaded) => {
                        state.error = None;
                        let previous = state.good.as_ref().map(|g| g.resources.as_slice());
                        state.good = Some(Parsed {
                            resources: reuse_unchanged(
                                loaded.resources,
                                previous.unwrap_or_default(),
                            ),
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
