//! Watches a directory and publishes a new [`SourceSnapshot`] after each change.
//!
//! The work runs on one plain thread: notify delivers its events from its own thread, the
//! rebuild is blocking file I/O and parsing, and `watch::Sender::send_replace` needs no runtime.
//! That thread also loads the directory the first time, so the agent serves ADS (and Envoy
//! connects) while it loads.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{DirectoryState, SourceError, SourceSnapshot, changes::Changes, pacing::Pacer};

/// A burst of changes is rebuilt at most this many debounce periods after it started, even if
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
    /// Watches `dir` recursively and loads it on a thread of its own: the receiver holds an
    /// empty snapshot with generation 0 until the first load is published as generation 1.
    /// Then a change is published as soon as the files it touched are complete (closed by
    /// their writer, renamed, removed) when it comes after `debounce` of quiet, and a burst of
    /// changes once it has been quiet for `debounce` (at the latest ten times that after it
    /// began). Snapshots whose content did not change are not published. Fails when `dir` is
    /// not a directory that can be listed and watched. Stops when the returned guard is
    /// dropped.
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

        let (tx, rx) = watch::channel(Arc::new(SourceSnapshot::default()));
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
    /// Reads the whole directory again, changed or not (paced like any change): for a file
    /// system whose events are unreliable, or a reload signal.
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

fn run(
    mut state: DirectoryState,
    debounce: Duration,
    inbox: mpsc::Receiver<Msg>,
    tx: watch::Sender<Arc<SourceSnapshot>>,
) {
    let mut pacer = Pacer::new(debounce, debounce * MAX_DELAY_FACTOR);
    let mut changes = Changes::new(debounce);
    // The first load is no edit: it does not count against the quiet period.
    let mut result = state.rescan();
    loop {
        match result {
            Ok(()) => publish(&state, &tx),
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
        if !wait_until_due(&inbox, &state, &mut pacer, &mut changes) {
            return;
        }
        pacer.built();
        result = match changes.take() {
            None => state.rescan(),
            Some(paths) => state.refresh(&paths),
        };
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
