//! Watches a directory and publishes a new [`SourceSnapshot`] after each change.
//!
//! The work runs on one plain thread: notify delivers its events from its own thread, the
//! rebuild is blocking file I/O and parsing, and `watch::Sender::send_replace` needs no runtime.
//! That thread also loads the directory the first time, so the agent serves ADS (and Envoy
//! connects) while it loads.
//!
//! The watch is set [`WATCH_AFTER`] the first load, once its configuration had time to be
//! built: inotify reports every file opened, ours too, and reading 10,000 files under a watch
//! cost the agent's one core ~40 ms of events to discard (and setting a recursive watch looks
//! at every file, ~20 ms more) before Envoy got its first configuration. What changed before
//! the watch was set is found by the files' metadata ([`DirectoryState::verify`]) and read as
//! the first load reads: a file still being written then is read as it is, and read again
//! once its writer closes it.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::{DirectoryState, SourceError, SourceSnapshot, changes::Changes, pacing::Pacer};

/// A burst of changes is rebuilt at most this many debounce periods after it started, even if
/// files keep changing.
const MAX_DELAY_FACTOR: u32 = 10;
/// Between attempts to watch the directory, when it cannot be watched.
const WATCH_RETRY: Duration = Duration::from_secs(5);
/// From the first load to the watch: the build of 10,000 Mappings takes ~60 ms, their push
/// ~10 ms more.
const WATCH_AFTER: Duration = Duration::from_millis(100);

enum Msg {
    Fs(notify::Result<notify::Event>),
    Rescan,
    Stop,
}

/// A directory of YAML files as a source of resources.
pub struct DirectorySource;

impl DirectorySource {
    /// Watches `dir` recursively and loads it on a thread of its own: the receiver holds an
    /// empty snapshot with generation 0 until the first load is published as generation 1.
    /// Then a change is published as soon as the files it touched are complete (closed by
    /// their writer, renamed, removed) when it comes after `debounce` of quiet, and a burst of
    /// changes once it has been quiet for `debounce` (at the latest ten times that after it
    /// began). Snapshots whose content did not change are not published. Fails when `dir` is
    /// not a directory that can be listed, or no watcher can be made (the machine is out of
    /// inotify instances); a directory that cannot be watched is an error logged, and tried
    /// again, until it can be. Stops when the returned guard is dropped.
    pub fn spawn(
        dir: PathBuf,
        debounce: Duration,
    ) -> Result<(watch::Receiver<Arc<SourceSnapshot>>, SourceGuard), SourceError> {
        Self::spawn_state(DirectoryState::new(dir), debounce)
    }

    /// [`Self::spawn`] with a state made by the caller (tests count its reads).
    pub(crate) fn spawn_state(
        state: DirectoryState,
        debounce: Duration,
    ) -> Result<(watch::Receiver<Arc<SourceSnapshot>>, SourceGuard), SourceError> {
        let dir = state.dir().to_owned();
        // What the load would fail on, found before this returns: a missing directory, a file,
        // one that cannot be listed.
        std::fs::read_dir(&dir).map_err(|source| SourceError::Directory {
            path: dir.clone(),
            source,
        })?;

        // The watcher (an inotify instance) now, so a machine out of them fails here; what it
        // watches is set by the thread after the first load.
        let (events, inbox) = mpsc::channel();
        let notify_tx = events.clone();
        let watcher = notify::recommended_watcher(move |event| {
            let _ = notify_tx.send(Msg::Fs(event));
        })
        .map_err(|source| SourceError::Watch {
            path: dir.clone(),
            source,
        })?;

        let (tx, rx) = watch::channel(Arc::new(SourceSnapshot::default()));
        let watching = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            watcher,
            debounce,
            inbox,
            tx,
            watching: watching.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("legate-dir-source".into())
            .spawn(move || worker.run(state))
            .map_err(SourceError::Thread)?;
        Ok((
            rx,
            SourceGuard {
                inbox: events,
                thread: Some(thread),
                watching,
            },
        ))
    }
}

/// Keeps the directory watched; dropping it stops the watcher (with the thread that owns it).
pub struct SourceGuard {
    inbox: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    watching: Arc<AtomicBool>,
}

impl SourceGuard {
    /// Whether the directory is watched and what changed before is read: a change from now on
    /// is seen by its events alone. For tests of what events do.
    #[doc(hidden)]
    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::Acquire)
    }

    /// Reads the whole directory again, changed or not (paced like any change): for a file
    /// system whose events are unreliable, or a reload signal.
    pub fn rescan(&self) {
        let _ = self.inbox.send(Msg::Rescan);
    }

    /// Stops watching and waits for the worker thread to finish.
    pub fn stop(mut self) {
        let _ = self.inbox.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        let _ = self.inbox.send(Msg::Stop);
    }
}

/// The thread's half of the source.
struct Worker {
    /// Owned here: dropped (and so stopped) when the thread ends.
    watcher: RecommendedWatcher,
    debounce: Duration,
    inbox: mpsc::Receiver<Msg>,
    tx: watch::Sender<Arc<SourceSnapshot>>,
    watching: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self, mut state: DirectoryState) {
        let (inbox, tx) = (&self.inbox, &self.tx);
        // The first load is no edit: it does not count against the quiet period.
        let mut result = state.rescan();
        if result.is_ok() {
            publish(&state, tx);
        }
        if !pause(inbox, WATCH_AFTER) || !start_watching(&mut self.watcher, state.dir(), inbox) {
            return;
        }
        if result.is_ok() {
            result = state.verify();
        }
        self.watching.store(true, Ordering::Release);
        run(state, self.debounce, result, inbox, tx);
    }
}

/// Publishes what the last read gave, and reads again what changes, until the source stops.
fn run(
    mut state: DirectoryState,
    debounce: Duration,
    mut result: Result<(), SourceError>,
    inbox: &mpsc::Receiver<Msg>,
    tx: &watch::Sender<Arc<SourceSnapshot>>,
) {
    let mut pacer = Pacer::new(debounce, debounce * MAX_DELAY_FACTOR);
    let mut changes = Changes::new(debounce);
    loop {
        match result {
            Ok(()) => publish(&state, tx),
            Err(e) => {
                warn!("{e}; keeping the last configuration");
                // The next change reads everything again; before the first load, that is now
                // (paced like a burst, so a directory that stays unreadable is not read in a
                // tight loop).
                changes.failed();
                if tx.borrow().generation == 0 {
                    pacer.changed(Instant::now());
                }
            }
        }
        if !wait_until_due(inbox, &state, &mut pacer, &mut changes) {
            return;
        }
        pacer.built();
        result = match changes.take() {
            None => state.rescan(),
            Some(paths) => state.refresh(&paths),
        };
    }
}

/// Waits `time`, or until the source stops (`false`). Nothing but a stop can come before the
/// watch is set; a rescan asked for meanwhile is done by the verification that follows it.
fn pause(inbox: &mpsc::Receiver<Msg>, time: Duration) -> bool {
    let until = Instant::now() + time;
    loop {
        match inbox.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => return true,
        }
    }
}

/// Watches `dir` recursively, trying again every [`WATCH_RETRY`] while it cannot be (changes
/// are then not seen, and an error says so); `false` when the source stops meanwhile.
fn start_watching(
    watcher: &mut RecommendedWatcher,
    dir: &std::path::Path,
    inbox: &mpsc::Receiver<Msg>,
) -> bool {
    loop {
        match watcher.watch(dir, RecursiveMode::Recursive) {
            Ok(()) => return true,
            Err(e) => {
                error!(dir = %dir.display(), error = %e, "cannot watch the directory: changes are not seen until it can be; trying again");
                if !pause(inbox, WATCH_RETRY) {
                    return false;
                }
            }
        }
    }
}

/// Notes events until a build is due; `false` when the source is stopping.
fn wait_until_due(
    inbox: &mpsc::Receiver<Msg>,
    state: &DirectoryState,
    pacer: &mut Pacer<Instant>,
    changes: &mut Changes,
) -> bool {
    loop {
        let wake = [pacer.due(), changes.settles_at()]
            .into_iter()
            .flatten()
            .min();
        let first = match wake {
            None => match inbox.recv() {
                Ok(msg) => Some(msg),
                Err(mpsc::RecvError) => return false,
            },
            Some(at) => match inbox.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(msg) => Some(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            },
        };
        // Everything already queued joins this round: a build never leaves out what came with
        // the change that started it.
        for msg in first
            .into_iter()
            .chain(std::iter::from_fn(|| inbox.try_recv().ok()))
        {
            match msg {
                Msg::Fs(event) => changes.note(event, state, Instant::now()),
                Msg::Rescan => changes.everything(),
                Msg::Stop => return false,
            }
        }
        let now = Instant::now();
        if changes.settle(now) {
            pacer.changed(now);
        }
        if pacer.is_due(now) {
            return true;
        }
    }
}

/// Publishes the state's content, numbered, unless it is what is published already.
fn publish(state: &DirectoryState, tx: &watch::Sender<Arc<SourceSnapshot>>) {
    let current = tx.borrow().clone();
    let mut next = state.snapshot();
    // The first load is published even when empty: it is what the directory holds.
    if current.generation > 0 && next.same_content(&current) {
        debug!(dir = %state.dir().display(), "directory changed, configuration did not");
        return;
    }
    next.generation = current.generation + 1;
    log_changes(&current, &next);
    info!(
        dir = %state.dir().display(),
        generation = next.generation,
        resources = next.resources.len(),
        rejected = next.rejected.len(),
        "{}",
        if next.generation == 1 {
            "loaded configuration directory"
        } else {
            "configuration directory changed"
        }
    );
    tx.send_replace(Arc::new(next));
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
