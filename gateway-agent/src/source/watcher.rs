//! Watches a directory and publishes a new [`SourceSnapshot`] after each burst of changes.
//!
//! The work runs on one plain thread: notify delivers its events from its own thread, the
//! rebuild is blocking file I/O and parsing, and `watch::Sender::send_replace` needs no runtime.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use notify::{
    EventKind, RecommendedWatcher, RecursiveMode, Watcher,
    event::{AccessKind, AccessMode},
};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{DirectoryState, SourceError, SourceSnapshot};

/// A burst of changes is rebuilt at most this many quiet periods after it started, even if
/// files keep changing.
const MAX_DELAY_FACTOR: u32 = 10;

enum Msg {
    Fs(notify::Result<notify::Event>),
    Rescan,
    Stop,
}

/// A directory of YAML files as a source of resources.
pub struct DirectorySource;

impl DirectorySource {
    /// Loads `dir` now (the first snapshot is in the receiver when this returns), then watches
    /// it recursively and publishes a new snapshot once the directory has been quiet for
    /// `debounce` after a change. Snapshots whose content did not change are not published.
    /// Stops when the returned guard is dropped.
    pub fn spawn(
        dir: PathBuf,
        debounce: Duration,
    ) -> Result<(watch::Receiver<Arc<SourceSnapshot>>, SourceGuard), SourceError> {
        let meta = std::fs::metadata(&dir).map_err(|source| SourceError::Directory {
            path: dir.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(SourceError::Directory {
                path: dir,
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            });
        }

        // Watch before the first load, so nothing written in between is missed.
        let (events, inbox) = mpsc::channel();
        let notify_tx = events.clone();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = notify_tx.send(Msg::Fs(event));
        })
        .map_err(|source| SourceError::Watch {
            path: dir.clone(),
            source,
        })?;
        watcher
            .watch(&dir, RecursiveMode::Recursive)
            .map_err(|source| SourceError::Watch {
                path: dir.clone(),
                source,
            })?;

        let mut state = DirectoryState::new(dir);
        state.rescan()?;
        let mut first = state.snapshot();
        first.generation = 1;
        log_changes(&SourceSnapshot::default(), &first);
        info!(
            dir = %state.dir().display(),
            generation = first.generation,
            resources = first.resources.len(),
            rejected = first.rejected.len(),
            "loaded configuration directory"
        );
        let (tx, rx) = watch::channel(Arc::new(first));

        let thread = std::thread::Builder::new()
            .name("legate-dir-source".into())
            .spawn(move || run(state, debounce, inbox, tx))
            .map_err(SourceError::Thread)?;
        Ok((
            rx,
            SourceGuard {
                inbox: events,
                watcher: Some(watcher),
                thread: Some(thread),
            },
        ))
    }
}

/// Keeps the directory watched; dropping it stops the watcher.
pub struct SourceGuard {
    inbox: mpsc::Sender<Msg>,
    watcher: Option<RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl SourceGuard {
    /// Reads the directory again now (after the debounce period), changed or not: for a
    /// file system whose events are unreliable, or a reload signal.
    pub fn rescan(&self) {
        let _ = self.inbox.send(Msg::Rescan);
    }

    /// Stops watching and waits for the worker thread to finish.
    pub fn stop(mut self) {
        let _ = self.inbox.send(Msg::Stop);
        self.watcher.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        let _ = self.inbox.send(Msg::Stop);
        self.watcher.take();
    }
}

/// Whether an event can change what the directory yields. Reads (our own included) cannot;
/// a closed writer can. Errors trigger a rescan too: an event may have been lost.
fn relevant(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(event) => match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            _ => true,
        },
        Err(e) => {
            warn!("directory watch error: {e}; reading the directory again");
            true
        }
    }
}

fn run(
    mut state: DirectoryState,
    debounce: Duration,
    inbox: mpsc::Receiver<Msg>,
    tx: watch::Sender<Arc<SourceSnapshot>>,
) {
    let max_delay = debounce * MAX_DELAY_FACTOR;
    loop {
        // Wait for the first change of a burst.
        match inbox.recv() {
            Ok(Msg::Fs(event)) if relevant(&event) => {}
            Ok(Msg::Fs(_)) => continue,
            Ok(Msg::Rescan) => {}
            Ok(Msg::Stop) | Err(_) => return,
        }
        // Then for a quiet period.
        let started = Instant::now();
        loop {
            let wait = debounce.min(max_delay.saturating_sub(started.elapsed()));
            if wait.is_zero() {
                break;
            }
            match inbox.recv_timeout(wait) {
                Ok(Msg::Fs(event)) if !relevant(&event) => {
                    // Our own reads must not hold the rebuild back.
                }
                // Another change: the quiet period starts again (up to `max_delay`).
                Ok(Msg::Fs(_) | Msg::Rescan) => {}
                Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
            }
        }
        if let Err(e) = state.rescan() {
            warn!("{e}; keeping the last configuration");
            continue;
        }
        let current = tx.borrow().clone();
        let mut next = state.snapshot();
        if next.same_content(&current) {
            debug!(dir = %state.dir().display(), "directory changed, configuration did not");
            continue;
        }
        next.generation = current.generation + 1;
        log_changes(&current, &next);
        info!(
            dir = %state.dir().display(),
            generation = next.generation,
            resources = next.resources.len(),
            rejected = next.rejected.len(),
            "configuration directory changed"
        );
        tx.send_replace(Arc::new(next));
    }
}

/// Logs each rejection and warning once, when it appears, and says when a rejection is gone.
fn log_changes(previous: &SourceSnapshot, next: &SourceSnapshot) {
    let before: HashSet<String> = previous.rejected.iter().map(ToString::to_string).collect();
    let after: HashSet<String> = next.rejected.iter().map(ToString::to_string).collect();
    for r in &next.rejected {
        let text = r.to_string();
        if !before.contains(&text) {
            warn!(origin = %r.origin, object = ?r.object.as_ref().map(ToString::to_string), "rejected: {text}");
        }
    }
    for r in &previous.rejected {
        let text = r.to_string();
        if !after.contains(&text) {
            info!("no longer rejected: {text}");
        }
    }
    let before: HashSet<&String> = previous.warnings.iter().collect();
    for w in &next.warnings {
        if !before.contains(w) {
            warn!("{w}");
        }
    }
}
