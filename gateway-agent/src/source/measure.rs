//! Measurements, not tests: how long 10,000 one-Mapping files take to load, and how long one
//! changed file takes from its write to a published snapshot. Run with
//! `cargo test --workspace --lib source::measure -- --ignored --nocapture`.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::watch;

use super::*;

const MAPPINGS: usize = 10_000;

fn mapping(i: usize, prefix: &str) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: m-{i}, namespace: default}}\nspec: {{hostname: \"*\", prefix: {prefix}, service: backend}}\n"
    )
}

fn gateway(dir: &Path) {
    std::fs::write(
        dir.join("listener.yaml"),
        "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: http, namespace: default}\nspec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}\n---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: any, namespace: default}\nspec: {hostname: \"*\", requestPolicy: {insecure: {action: Route}}}\n",
    )
    .unwrap();
    for i in 0..MAPPINGS {
        std::fs::write(
            dir.join(format!("m-{i}.yaml")),
            mapping(i, &format!("/svc-{i}/")),
        )
        .unwrap();
    }
}

/// Polls tightly: the point is the latency.
fn until(
    rx: &watch::Receiver<Arc<SourceSnapshot>>,
    ok: impl Fn(&SourceSnapshot) -> bool,
) -> Arc<SourceSnapshot> {
    let start = Instant::now();
    loop {
        let s = rx.borrow().clone();
        if ok(&s) {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "timed out");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn ten_thousand_files() {
    let dir = tempfile::tempdir().unwrap();
    gateway(dir.path());

    let start = Instant::now();
    let listed = legate_crds::loader::yaml_files(dir.path()).unwrap();
    println!("listing {} files: {:?}", listed.len(), start.elapsed());

    let mut loads = Vec::new();
    let mut snapshots = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let mut state = DirectoryState::new(dir.path().to_owned());
        state.rescan().unwrap();
        loads.push(start.elapsed());
        let start = Instant::now();
        let s = state.snapshot();
        snapshots.push(start.elapsed());
        assert_eq!(s.resources.len(), MAPPINGS + 2);
    }
    println!(
        "full load of {MAPPINGS} files: median {:?} ({loads:?}); snapshot(): median {:?}",
        median(loads.clone()),
        median(snapshots)
    );

    // The parts of one change, without the watcher.
    let mut state = DirectoryState::new(dir.path().to_owned());
    state.rescan().unwrap();
    let before = state.snapshot();
    let changed = dir.path().join("m-5.yaml");
    std::fs::write(&changed, mapping(5, "/parts/")).unwrap();
    let start = Instant::now();
    state.refresh([&changed]).unwrap();
    let refreshed = start.elapsed();
    let start = Instant::now();
    let after = state.snapshot();
    let snapshot = start.elapsed();
    let start = Instant::now();
    assert!(!after.same_content(&before));
    println!(
        "one change: refresh {refreshed:?}, snapshot() {snapshot:?}, same_content {:?}",
        start.elapsed()
    );
    std::fs::write(&changed, mapping(5, "/svc-5/")).unwrap();

    let start = Instant::now();
    let (rx, guard) =
        DirectorySource::spawn(dir.path().to_owned(), Duration::from_millis(100)).unwrap();
    let spawned = start.elapsed();
    until(&rx, |s| s.resources.len() == MAPPINGS + 2);
    println!(
        "spawn returned after {spawned:?}; first snapshot after {:?}",
        start.elapsed()
    );

    let mut changes = Vec::new();
    for round in 0..20 {
        // Quiet before each change, as an operator's edits are.
        std::thread::sleep(Duration::from_millis(300));
        let i = round * 37;
        let prefix = format!("/changed-{round}/");
        let start = Instant::now();
        std::fs::write(dir.path().join(format!("m-{i}.yaml")), mapping(i, &prefix)).unwrap();
        until(&rx, |s| {
            s.resources.iter().any(|r| match &**r {
                legate_crds::Resource::Mapping(m) => m.spec.prefix == prefix,
                _ => false,
            })
        });
        changes.push(start.elapsed());
    }
    println!(
        "one changed file, write to snapshot: median {:?}, max {:?}",
        median(changes.clone()),
        changes.iter().max().unwrap()
    );
    guard.stop();
}
