//! The directory source against real files in temporary directories.

use std::{
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use pretty_assertions::assert_eq;
use tokio::sync::watch;

use super::*;

const DEBOUNCE: Duration = Duration::from_millis(50);
const WAIT: Duration = Duration::from_secs(10);

fn mapping(name: &str, prefix: &str) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  prefix: {prefix}\n  service: upstream:80\n"
    )
}

fn docs(docs: &[String]) -> String {
    docs.join("---\n")
}

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn names(snapshot: &SourceSnapshot) -> Vec<String> {
    snapshot
        .resources
        .iter()
        .map(|r| r.meta().name.clone().unwrap_or_default())
        .collect()
}

/// Waits (boundedly) until a published snapshot satisfies `ok`.
fn wait_for(
    rx: &watch::Receiver<Arc<SourceSnapshot>>,
    what: &str,
    ok: impl Fn(&SourceSnapshot) -> bool,
) -> Arc<SourceSnapshot> {
    wait_within(WAIT, rx, what, ok)
}

/// Waits until a published snapshot satisfies `ok`, failing after `deadline`.
fn wait_within(
    deadline: Duration,
    rx: &watch::Receiver<Arc<SourceSnapshot>>,
    what: &str,
    ok: impl Fn(&SourceSnapshot) -> bool,
) -> Arc<SourceSnapshot> {
    within(deadline, || {
        let snapshot = rx.borrow().clone();
        if ok(&snapshot) {
            Ok(snapshot)
        } else {
            Err(format!("{what}; last snapshot: {snapshot:#?}"))
        }
    })
}

/// Polls `check` until it gives a value, failing after `deadline` with what it last said.
fn within<T>(deadline: Duration, check: impl Fn() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(value) => return value,
            Err(waiting_for) => assert!(
                start.elapsed() < deadline,
                "timed out after {deadline:?} waiting for {waiting_for}"
            ),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The first snapshot, the directory as it was loaded, once the directory is watched (a change
/// from then on is seen by its events).
fn first(rx: &watch::Receiver<Arc<SourceSnapshot>>, guard: &SourceGuard) -> Arc<SourceSnapshot> {
    let s = wait_for(rx, "the first load", |s| s.generation > 0);
    assert_eq!(s.generation, 1);
    within(WAIT, || {
        guard
            .watching()
            .then_some(())
            .ok_or_else(|| "the directory to be watched".to_owned())
    });
    s
}

#[test]
fn the_first_load_is_published_as_generation_1() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "b.yaml",
        &docs(&[mapping("b1", "/b1/"), mapping("b2", "/b2/")]),
    );
    write(dir.path(), "a.yml", &mapping("a", "/a/"));
    write(dir.path(), "nested/deeper/c.yaml", &mapping("c", "/c/"));
    let (rx, guard) = DirectorySource::spawn(dir.path().to_owned(), DEBOUNCE).unwrap();
    let snapshot = first(&rx, &guard);
    // By file path, then document index.
    assert_eq!(names(&snapshot), ["a", "b1", "b2", "c"]);
    assert!(snapshot.rejected.is_empty(), "{:?}", snapshot.rejected);
}

#[test]
fn missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = DirectorySource::spawn(dir.path().join("nope"), DEBOUNCE)
        .err()
        .expect("a missing directory fails");
    assert!(matches!(err, SourceError::Directory { .. }), "{err}");
    let file = dir.path().join("file.yaml");
    write(dir.path(), "file.yaml", "");
    assert!(DirectorySource::spawn(file, DEBOUNCE).is_err());
}

#[test]
fn added_changed_and_removed_files_are_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    let (rx, guard) = DirectorySource::spawn(dir.path().to_owned(), DEBOUNCE).unwrap();
    first(&rx, &guard);

    write(dir.path(), "b.yaml", &mapping("b", "/b/"));
    let s = wait_for(&rx, "b added", |s| names(s) == ["a", "b"]);
    assert_eq!(s.generation, 2);

    write(dir.path(), "a.yaml", &mapping("a-renamed", "/a/"));
    wait_for(&rx, "a changed", |s| names(s) == ["a-renamed", "b"]);

    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    wait_for(&rx, "a removed", |s| names(s) == ["b"]);

    // A new nested directory, created after the watch started.
    write(dir.path(), "team/x/c.yaml", &mapping("c", "/c/"));
    wait_for(&rx, "nested file added", |s| names(s) == ["b", "c"]);

    std::fs::remove_dir_all(dir.path().join("team")).unwrap();
    let s = wait_for(&rx, "nested directory removed", |s| names(s) == ["b"]);
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
}

#[test]
fn a_bad_document_is_rejected_while_its_neighbours_load() {
    let dir = tempfile::tempdir().unwrap();
    let bad_version = "apiVersion: getambassador.io/v1alpha9\nkind: Mapping\nmetadata:\n  name: old\n  namespace: default\nspec:\n  prefix: /old/\n  service: x\n".to_owned();
    let no_service = "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata:\n  name: noservice\n  namespace: team\nspec:\n  prefix: /n/\n".to_owned();
    write(
        dir.path(),
        "mixed.yaml",
        &docs(&[
            mapping("first", "/1/"),
            bad_version,
            mapping("last", "/2/"),
            no_service,
        ]),
    );
    let (rx, guard) = DirectorySource::spawn(dir.path().to_owned(), DEBOUNCE).unwrap();
    let s = first(&rx, &guard);
    assert_eq!(names(&s), ["first", "last"]);
    assert_eq!(s.rejected.len(), 2, "{:#?}", s.rejected);
    let old = &s.rejected[0];
    assert_eq!(old.scope, RejectionScope::Document);
    assert_eq!(old.index, Some(2));
    assert_eq!(
        old.object.as_ref().unwrap().to_string(),
        "Mapping default/old"
    );
    assert!(old.message.contains("apiVersion"), "{old}");
    let noservice = &s.rejected[1];
    assert_eq!(noservice.index, Some(4));
    assert_eq!(
        noservice.object.as_ref().unwrap().to_string(),
        "Mapping team/noservice"
    );
    assert!(noservice.message.contains("spec.service"), "{noservice}");
    assert!(noservice.origin.ends_with("mixed.yaml"));
}

#[test]
fn unknown_kinds_are_warnings() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        &docs(&[
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n".to_owned(),
            mapping("a", "/a/"),
        ]),
    );
    let (rx, guard) = DirectorySource::spawn(dir.path().to_owned(), DEBOUNCE).unwrap();
    let s = first(&rx, &guard);
    assert_eq!(names(&s), ["a"]);
    assert!(s.rejected.is_empty());
    assert_eq!(s.warnings.len(), 1);
    assert!(s.warnings[0].contains("ConfigMap"), "{:?}", s.warnings);
}

#[test]
fn a_half_written_file_keeps_its_last_good_resources() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        &docs(&[mapping("a1", "/a1/"), mapping("a2", "/a2/")]),
    );
    write(dir.path(), "b.yaml", &mapping("b", "/b/"));
    let (rx, guard) = DirectorySource::spawn(dir.path().to_owned(), DEBOUNCE).unwrap();
    assert_eq!(names(&first(&rx, &guard)), ["a1", "a2", "b"]);

    // Not YAML at all: an unterminated flow mapping.
    write(
        dir.path(),
        "a.yaml",
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: a1, namespace: default\n",
    );
    let s = wait_for(&rx, "the file error", |s| !s.rejected.is_empty());
    assert_eq!(
        names(&s),
        ["a1", "a2", "b"],
        "the last good contents keep serving"
    );
    assert_eq!(s.rejected.len(), 1, "{:#?}", s.rejected);
    let r = &s.rejected[0];
    assert_eq!(r.scope, RejectionScope::File);
    assert!(r.origin.ends_with("a.yaml"));
    assert!(r.message.contains("not valid YAML"), "{r}");
    assert!(
        r.message
            .contains("keeping its last good contents: 2 resources"),
        "{r}"
    );

    // Neighbours still change while it is broken.
    write(dir.path(), "b.yaml", &mapping("b2", "/b/"));
    wait_for(&rx, "b changed", |s| {
        names(s) == ["a1", "a2", "b2"] && s.rejected.len() == 1
    });

    // Fixed: the new contents replace the old, and the error is gone.
    write(dir.path(), "a.yaml", &mapping("a3", "/a3/"));
    wait_for(&rx, "a fixed", |s| {
        names(s) == ["a3", "b2"] && s.rejected.is_empty()
    });
}

#[test]
fn a_new_broken_file_is_reported_and_serves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.yaml", "key: [unclosed\n");
    write(dir.path(), "binary.yaml", "");
    std::fs::write(dir.path().join("binary.yaml"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    write(dir.path(), "good.yaml", &mapping("good", "/g/"));
    let (rx, guard) = DirectorySource::spawn(dir.path().to_owned(), DEBOUNCE).unwrap();
    let s = first(&rx, &guard);
    assert_eq!(names(&s), ["good"]);
    assert_eq!(s.rejected.len(), 2, "{:#?}", s.rejected);
    assert!(s.rejected.iter().all(|r| r.scope == RejectionScope::File));
    assert!(s.rejected.iter().all(|r| !r.message.contains("keeping")));
}

#[test]
fn hidden_and_temporary_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    write(dir.path(), ".a.yaml.swp", "garbage: [");
    write(dir.path(), ".hidden.yaml", &mapping("hidden", "/h/"));
    write(dir.path(), ".git/config.yaml", &mapping("in-git", "/g/"));
    write(dir.path(), "a.yaml~", &mapping("backup", "/b/"));
    write(dir.path(), "#a.yaml#", &mapping("emacs", "/e/"));
    write(dir.path(), "notes.txt", "not yaml: [");
    let (rx, guard) = DirectorySource::spawn(dir.path().to_owned(), DEBOUNCE).unwrap();
    let s = first(&rx, &guard);
    assert_eq!(names(&s), ["a"]);
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);

    // Writing ignored files publishes nothing new; a real change after them still does.
    write(dir.path(), ".b.yaml.swp", "more garbage: [");
    write(dir.path(), "b.yaml~", &mapping("backup2", "/b/"));
    guard.rescan();
    write(dir.path(), "z.yaml", &mapping("z", "/z/"));
    let s = wait_for(&rx, "z added", |s| names(s) == ["a", "z"]);
    assert_eq!(s.generation, 2, "ignored files did not publish snapshots");
}

#[test]
fn unchanged_content_is_not_published_again() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    let (rx, guard) = DirectorySource::spawn(dir.path().to_owned(), DEBOUNCE).unwrap();
    first(&rx, &guard);
    // Rewrite with the same bytes, and touch a second copy in and out of existence.
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    guard.rescan();
    std::thread::sleep(DEBOUNCE * 6);
    assert_eq!(rx.borrow().generation, 1);
    write(dir.path(), "a.yaml", &mapping("a", "/changed/"));
    wait_for(&rx, "a changed", |s| s.generation == 2);
}

#[test]
fn a_burst_of_writes_is_coalesced() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, guard) =
        DirectorySource::spawn(dir.path().to_owned(), Duration::from_millis(300)).unwrap();
    assert!(first(&rx, &guard).resources.is_empty());
    for i in 0..20 {
        write(
            dir.path(),
            &format!("m{i:02}.yaml"),
            &mapping(&format!("m{i:02}"), &format!("/m{i}/")),
        );
    }
    let s = wait_for(&rx, "all twenty", |s| s.resources.len() == 20);
    let expected: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    assert_eq!(names(&s), expected);
    // The first write at once, the rest of the burst together once it is over.
    assert!(
        s.generation <= 3,
        "{} snapshots for one burst",
        s.generation - 1
    );
    guard.stop();
}

/// A Kubernetes ConfigMap volume: the visible files are links through `..data`, which the
/// kubelet swaps atomically to a new hidden directory on every update.
#[cfg(unix)]
#[test]
fn a_configmap_volume_update_is_picked_up() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "..2024_01/routes.yaml", &mapping("v1", "/v1/"));
    symlink("..2024_01", d.join("..data")).unwrap();
    symlink("..data/routes.yaml", d.join("routes.yaml")).unwrap();
    let (rx, guard) = DirectorySource::spawn(d.to_owned(), DEBOUNCE).unwrap();
    assert_eq!(
        names(&first(&rx, &guard)),
        ["v1"],
        "read once, through the link"
    );

    write(d, "..2024_02/routes.yaml", &mapping("v2", "/v2/"));
    symlink("..2024_02", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    std::fs::remove_dir_all(d.join("..2024_01")).unwrap();
    let s = wait_for(&rx, "the swapped contents", |s| names(s) == ["v2"]);
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
}

#[test]
fn dropping_the_guard_stops_publishing() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, guard) = DirectorySource::spawn(dir.path().to_owned(), DEBOUNCE).unwrap();
    first(&rx, &guard);
    guard.stop();
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    std::thread::sleep(DEBOUNCE * 6);
    assert_eq!(rx.borrow().generation, 1);
    assert!(rx.has_changed().is_err(), "the sender is gone");
}

/// Hostile files in the directory: none of them hangs, bloats or multiplies the load, and the
/// good file beside them still serves.
#[test]
fn fifos_devices_link_loops_and_many_links_to_one_file_cost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.yaml", &mapping("good", "/good/"));
    // Reading a FIFO blocks until someone writes: it is never opened.
    let fifo = dir.path().join("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A link to a device that never ends.
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.yaml")).unwrap();
    // A directory that contains itself, twice over.
    std::os::unix::fs::symlink(".", dir.path().join("loop")).unwrap();
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink("..", dir.path().join("sub/up")).unwrap();
    // Many links to one file: read once.
    for i in 0..5 {
        std::os::unix::fs::symlink("good.yaml", dir.path().join(format!("link-{i}.yaml"))).unwrap();
    }

    let mut state = DirectoryState::new(dir.path().to_owned());
    state.rescan().unwrap();
    let snapshot = state.snapshot();
    assert_eq!(names(&snapshot), ["good"], "one Mapping, loaded once");
    let refused: Vec<(String, &str)> = snapshot
        .rejected
        .iter()
        .map(|r| {
            let file = Path::new(&r.origin)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (file, r.message.as_str())
        })
        .collect();
    assert_eq!(
        refused,
        [
            (
                "fifo.yaml".to_owned(),
                "cannot read: not a regular file (a FIFO, device or socket is never read)"
            ),
            (
                "zero.yaml".to_owned(),
                "cannot read: not a regular file (a FIFO, device or socket is never read)"
            ),
        ]
    );
}

#[test]
fn a_file_over_the_size_limit_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let file = std::fs::File::create(&big).unwrap();
    // Sparse: the limit is checked before anything is read.
    file.set_len(legate_crds::loader::MAX_FILE_BYTES + 1)
        .unwrap();
    write(dir.path(), "good.yaml", &mapping("good", "/good/"));
    let mut state = DirectoryState::new(dir.path().to_owned());
    state.rescan().unwrap();
    let snapshot = state.snapshot();
    assert_eq!(names(&snapshot), ["good"]);
    assert!(
        snapshot.rejected[0]
            .message
            .contains("more than the 67108864 a file may have"),
        "{}",
        snapshot.rejected[0].message
    );
}

/// Longer than any test waits for a change it expects: a change that arrives is not waiting
/// out the debounce period.
const LONG_DEBOUNCE: Duration = Duration::from_secs(10);
/// Well under [`LONG_DEBOUNCE`].
const PROMPTLY: Duration = Duration::from_secs(3);

#[test]
fn one_write_after_quiet_is_published_without_waiting_for_the_debounce() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    let (rx, guard) = DirectorySource::spawn(dir.path().to_owned(), LONG_DEBOUNCE).unwrap();
    first(&rx, &guard);
    write(dir.path(), "b.yaml", &mapping("b", "/b/"));
    let s = wait_within(PROMPTLY, &rx, "b, before the debounce", |s| {
        names(s) == ["a", "b"]
    });
    assert_eq!(s.generation, 2);
}

#[test]
fn verify_reads_only_what_changed_since_it_was_read() {
    // What the watcher does for the changes made before its watch was set.
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c"] {
        write(dir.path(), &format!("{name}.yaml"), &mapping(name, "/m/"));
    }
    let mut state = DirectoryState::new(dir.path().to_owned());
    let reads = state.files_read();
    state.rescan().unwrap();
    assert_eq!(reads.load(Ordering::Relaxed), 3);

    write(dir.path(), "b.yaml", &mapping("b2", "/m/"));
    write(dir.path(), "sub/d.yaml", &mapping("d", "/m/"));
    std::fs::remove_file(dir.path().join("c.yaml")).unwrap();
    state.verify().unwrap();
    assert_eq!(names(&state.snapshot()), ["a", "b2", "d"]);
    assert_eq!(reads.load(Ordering::Relaxed), 5, "b and d, not a");

    state.verify().unwrap();
    assert_eq!(reads.load(Ordering::Relaxed), 5, "nothing changed since");
}

#[test]
fn only_the_file_written_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..50 {
        write(
            dir.path(),
            &format!("team/m{i:02}.yaml"),
            &mapping(&format!("m{i:02}"), "/m/"),
        );
    }
    write(dir.path(), "notes.txt", "not yaml: [");
    let state = DirectoryState::new(dir.path().to_owned());
    let reads = state.files_read();
    let (rx, guard) = DirectorySource::spawn_state(state, DEBOUNCE).unwrap();
    assert_eq!(first(&rx, &guard).resources.len(), 50);
    assert_eq!(reads.load(Ordering::Relaxed), 50);

    write(dir.path(), "team/m07.yaml", &mapping("seven", "/m/"));
    wait_for(&rx, "m07 changed", |s| {
        names(s).contains(&"seven".to_owned())
    });
    assert_eq!(reads.load(Ordering::Relaxed), 51, "m07 alone");

    // Files it does not read cost no reads; a new one costs one.
    write(dir.path(), "notes.txt", "still not yaml: [");
    write(dir.path(), ".hidden.yaml", &mapping("hidden", "/h/"));
    write(dir.path(), "new.yaml", &mapping("new", "/n/"));
    wait_for(&rx, "new added", |s| names(s).contains(&"new".to_owned()));
    assert_eq!(reads.load(Ordering::Relaxed), 52);

    // A removed file is dropped without reading anything.
    std::fs::remove_file(dir.path().join("team/m08.yaml")).unwrap();
    wait_for(&rx, "m08 removed", |s| s.resources.len() == 50);
    assert_eq!(reads.load(Ordering::Relaxed), 52);
}

#[test]
fn a_half_written_file_is_not_read_before_its_writer_closes_it() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    let state = DirectoryState::new(dir.path().to_owned());
    let reads = state.files_read();
    // Long enough that the unfinished file does not settle (and get read) meanwhile.
    let (rx, guard) = DirectorySource::spawn_state(state, Duration::from_secs(5)).unwrap();
    first(&rx, &guard);

    let text = mapping("half", "/half/");
    let (head, tail) = text.split_at(text.len() / 2);
    let mut file = std::fs::File::create(dir.path().join("half.yaml")).unwrap();
    file.write_all(head.as_bytes()).unwrap();
    file.flush().unwrap();
    // A complete change after it is published at once, without the unfinished file.
    write(dir.path(), "b.yaml", &mapping("b", "/b/"));
    let s = wait_within(PROMPTLY, &rx, "b", |s| names(s) == ["a", "b"]);
    assert!(
        s.rejected.is_empty(),
        "half.yaml was read: {:?}",
        s.rejected
    );
    assert_eq!(reads.load(Ordering::Relaxed), 2, "a, then b");

    // Closed right after b: the two are a burst, published once it is over.
    file.write_all(tail.as_bytes()).unwrap();
    drop(file);
    let s = wait_for(&rx, "half.yaml, once closed", |s| {
        names(s) == ["a", "b", "half"]
    });
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
}

#[test]
fn a_write_that_is_never_closed_is_read_after_the_debounce() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (rx, guard) = DirectorySource::spawn(dir.path().to_owned(), DEBOUNCE).unwrap();
    first(&rx, &guard);
    let mut file = std::fs::File::create(dir.path().join("open.yaml")).unwrap();
    file.write_all(mapping("open", "/open/").as_bytes())
        .unwrap();
    file.flush().unwrap();
    wait_for(&rx, "the file still open", |s| names(s) == ["open"]);
    drop(file);
}

#[test]
fn renamed_files_move_and_files_renamed_away_drop_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "a.yaml", &mapping("a", "/a/"));
    write(d, "team/b.yaml", &mapping("b", "/b/"));
    write(d, "c.txt", &mapping("c", "/c/"));
    let (rx, guard) = DirectorySource::spawn(d.to_owned(), DEBOUNCE).unwrap();
    assert_eq!(names(&first(&rx, &guard)), ["a", "b"]);

    // An editor's atomic save: a hidden temporary file renamed over the real one.
    write(d, ".a.yaml.tmp", &mapping("a2", "/a/"));
    std::fs::rename(d.join(".a.yaml.tmp"), d.join("a.yaml")).unwrap();
    wait_for(&rx, "a saved", |s| names(s) == ["a2", "b"]);

    std::fs::rename(d.join("c.txt"), d.join("c.yaml")).unwrap();
    // By path: c.yaml before team/b.yaml.
    wait_for(&rx, "c renamed into view", |s| names(s) == ["a2", "c", "b"]);

    std::fs::rename(d.join("a.yaml"), d.join("a.yaml.bak")).unwrap();
    wait_for(&rx, "a renamed out of view", |s| names(s) == ["c", "b"]);

    // A directory renamed: its files move with it (alpha/b.yaml sorts before c.yaml).
    std::fs::rename(d.join("team"), d.join("alpha")).unwrap();
    let s = wait_for(&rx, "team renamed", |s| names(s) == ["b", "c"]);
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);

    // Into a hidden directory: gone.
    std::fs::rename(d.join("alpha"), d.join(".trash")).unwrap();
    wait_for(&rx, "squad hidden", |s| names(s) == ["c"]);

    std::fs::remove_file(d.join("c.yaml")).unwrap();
    let s = wait_for(&rx, "c removed", |s| s.resources.is_empty());
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
}

#[test]
fn a_directory_made_with_files_in_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, guard) = DirectorySource::spawn(dir.path().to_owned(), DEBOUNCE).unwrap();
    first(&rx, &guard);
    // Made elsewhere and moved in whole: the only event is the directory's.
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "x/deep/m.yaml", &mapping("mm", "/m/"));
    write(outside.path(), "x/n.yml", &mapping("nn", "/n/"));
    std::fs::rename(outside.path().join("x"), dir.path().join("x")).unwrap();
    let s = wait_for(&rx, "the moved-in directory", |s| names(s) == ["mm", "nn"]);
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
}

/// The watcher decides from a path alone whether a change concerns a file the listing reads:
/// the two must agree on every name.
#[test]
fn the_watcher_reads_exactly_the_paths_the_listing_lists() {
    use legate_crds::loader::{is_yaml_path, yaml_files};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = [
        "a.yaml",
        "b.yml",
        "c.YAML",
        "notes.txt",
        "a.yaml~",
        "#a.yaml#",
        ".a.yaml.swp",
        ".hidden.yaml",
        ".git/config.yaml",
        "team/x.yaml",
        "team/.cache/y.yaml",
        "team/deep/er/z.yml",
        "yaml/plain",
        "dir.yaml/inside.yaml",
    ];
    for f in files {
        write(d, f, &mapping("m", "/m/"));
    }
    let listed = yaml_files(d).unwrap();
    let mut read: Vec<_> = files
        .iter()
        .map(|f| d.join(f))
        .filter(|p| is_yaml_path(d, p))
        .collect();
    read.sort();
    assert_eq!(read, listed);
    assert_eq!(listed.len(), 5, "{listed:?}");
}

/// A link is complete when it is made (no writer closes it), and from then on what one path
/// yields depends on another: the directory is read whole.
#[cfg(unix)]
#[test]
fn a_link_made_later_is_followed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &mapping("a", "/a/"));
    write(outside.path(), "x.yaml", &mapping("x", "/x/"));
    let (rx, guard) = DirectorySource::spawn(dir.path().to_owned(), LONG_DEBOUNCE).unwrap();
    first(&rx, &guard);
    symlink(outside.path().join("x.yaml"), dir.path().join("x.yaml")).unwrap();
    let s = wait_within(PROMPTLY, &rx, "the linked file", |s| names(s) == ["a", "x"]);
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
}
