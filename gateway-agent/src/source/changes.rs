//! What the watcher's events say to read again, and when each of it is complete enough to read.
//!
//! A file is complete when its writer closes it (inotify's `Close(Write)`), or when it is
//! renamed or removed, or when what was created is neither a regular file nor a directory (a
//! link): those are ready at once. A file written but not closed yet (a bare `Modify`, or a
//! `Create` of a regular file) waits for its close, so a half-written file is never read
//! because of it, or for the debounce period without events, for writers and file systems that
//! never say; a new directory waits for that period too (see [`Changes::note`]).
//! Errors, overflows and events that name no path ask for everything.

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use notify::{
    EventKind,
    event::{AccessKind, AccessMode, ModifyKind},
};
use tracing::{debug, warn};

use super::{DirectoryState, directory::Reach};

/// Changes noted and not built yet.
#[derive(Debug)]
pub struct Changes {
    /// A write not followed by a close settles after this long without events.
    settle_after: Duration,
    /// Read the whole directory again.
    everything: bool,
    /// Complete: read these again.
    ready: BTreeSet<PathBuf>,
    /// Written, not closed yet, with when they were last written.
    unfinished: HashMap<PathBuf, Instant>,
    /// Whether something became ready since [`Self::settle`] last said so.
    fresh: bool,
}

impl Changes {
    pub fn new(settle_after: Duration) -> Self {
        Self {
            settle_after,
            everything: false,
            ready: BTreeSet::new(),
            unfinished: HashMap::new(),
            fresh: false,
        }
    }

    /// Everything must be read again.
    pub fn everything(&mut self) {
        self.everything = true;
        self.fresh = true;
    }

    /// Reading failed: the next build reads everything again, whenever something changes.
    pub fn failed(&mut self) {
        self.everything = true;
    }

    /// Notes one watcher event, received at `now`.
    pub fn note(
        &mut self,
        event: notify::Result<notify::Event>,
        state: &DirectoryState,
        now: Instant,
    ) {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                warn!("directory watch error: {e}; reading the directory again");
                return self.everything();
            }
        };
        if event.need_rescan() || event.paths.is_empty() {
            debug!(?event, "events were lost; reading the directory again");
            return self.everything();
        }
        let complete: fn(&Path) -> bool = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => |_: &Path| true,
            // Reads, ours included, change nothing.
            EventKind::Access(_) => return,
            // A regular file is created empty and written next. A directory is watched only
            // once notify has delivered this event, so what is written into it meanwhile has no
            // event of its own: it is listed once that settled. Anything else is whole.
            EventKind::Create(_) => |path: &Path| {
                !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() || m.is_dir())
            },
            EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => |_: &Path| true,
            EventKind::Modify(_) => |_: &Path| false,
            EventKind::Any | EventKind::Other => return self.everything(),
        };
        for path in event.paths {
            if state.reach(&path) == Reach::Nothing {
                continue;
            }
            if complete(&path) {
                self.unfinished.remove(&path);
                self.ready.insert(path);
                self.fresh = true;
            } else {
                // A newer write: what was ready of it is not any more.
                self.ready.remove(&path);
                self.unfinished.insert(path, now);
            }
        }
    }

    /// Takes writes that have not been closed for the settling period as complete. Returns
    /// whether anything became ready since the last call.
    pub fn settle(&mut self, now: Instant) -> bool {
        let settle_after = self.settle_after;
        let settled: Vec<PathBuf> = self
            .unfinished
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) >= settle_after)
            .map(|(path, _)| path.clone())
            .collect();
        for path in settled {
            self.unfinished.remove(&path);
            self.ready.insert(path);
            self.fresh = true;
        }
        std::mem::take(&mut self.fresh)
    }

    /// When the next unfinished write settles, if any is waiting.
    pub fn settles_at(&self) -> Option<Instant> {
        self.unfinished
            .values()
            .min()
            .map(|at| *at + self.settle_after)
    }

    /// What is ready to read: `None` for everything. Unfinished writes stay.
    pub fn take(&mut self) -> Option<BTreeSet<PathBuf>> {
        let ready = std::mem::take(&mut self.ready);
        (!std::mem::take(&mut self.everything)).then_some(ready)
    }
}
