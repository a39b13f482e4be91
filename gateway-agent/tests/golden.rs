//! Golden tests of the pure stages: each folder under `tests/golden/` holds resources
//! (`input.yaml`, or an `input/` directory) and what they become: `ir.txt` (the IR) and
//! `envoy.txt` (the Envoy resources), both as Rust's `{:#?}` of the values; what ADS serves must
//! be those Envoy resources, encoded. Reviewed by eye once; a change shows as a diff.
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites them.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use prost::Message;

use legate_agent::{
    envoy,
    ir::Settings,
    pipeline::Configuration,
    xds::{Res, ResourceSet},
};

fn load(input: &Path) -> Vec<legate_crds::Resource> {
    let loaded = if input.is_dir() {
        let d = legate_crds::loader::load_dir(input).unwrap();
        assert!(d.file_errors.is_empty(), "{:?}", d.file_errors);
        d.loaded
    } else {
        legate_crds::loader::load_file(input).unwrap()
    };
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    loaded.resources
}

fn check(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or(0);
        failures.push(format!(
            "{} differs from line {}: expected {:?}, got {:?} (UPDATE_GOLDEN=1 to accept)",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        ));
    }
}

fn encoded(messages: &envoy::EnvoyConfig) -> ResourceSet {
    let mut set = ResourceSet::new();
    for c in &messages.clusters {
        set.insert(c.name.clone(), c);
    }
    for e in &messages.endpoints {
        set.insert(e.cluster_name.clone(), e);
    }
    for s in &messages.secrets {
        set.insert(s.0.name.clone(), &s.0);
    }
    for l in &messages.listeners {
        set.insert(l.name.clone(), l);
    }
    // A route table's version is the hash of its name and its virtual hosts' hashes.
    for r in &messages.routes {
        let digests: Vec<[u8; 32]> = r
            .virtual_hosts
            .iter()
            .map(|v| Res::digest(&v.encode_to_vec()))
            .collect();
        let mut res = Res::encode(r);
        res.version = Res::version_of_parts(&r.name, &digests);
        set.insert_res(r.name.clone(), Arc::new(res));
    }
    set
}

#[test]
fn pure_stages_match_their_golden_files() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut failures = Vec::new();
    let mut cases = 0;
    for case in std::fs::read_dir(&root).unwrap() {
        let case = case.unwrap().path();
        let input = [case.join("input.yaml"), case.join("input")]
            .into_iter()
            .find(|p| p.exists())
            .unwrap();
        let config = Configuration::build(&load(&input), &Settings::default());
        check(
            &case.join("ir.txt"),
            &format!("{:#?}\n", config.ir),
            &mut failures,
        );
        let messages = envoy::translate(&config.ir);
        // Prost keeps `typed_per_filter_config` in a HashMap, printed and encoded in hash order:
        // a route with two entries (CORS and a check, say) would print differently each run.
        // ADS writes them in key order (envoy/route.rs); tests/auth.rs covers such routes.
        for r in messages
            .routes
            .iter()
            .flat_map(|t| &t.virtual_hosts)
            .flat_map(|v| &v.routes)
        {
            assert!(
                r.typed_per_filter_config.len() < 2,
                "{}: route {} has several typed_per_filter_config entries, which print in hash \
                 order; keep golden cases to one per route",
                case.display(),
                r.name
            );
        }
        check(
            &case.join("envoy.txt"),
            &format!("{messages:#?}\n"),
            &mut failures,
        );
        // What ADS serves is exactly those messages, encoded.
        assert_eq!(config.resources, encoded(&messages), "{}", case.display());
        cases += 1;
    }
    assert!(cases >= 2);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
