//! A [`Translator`] keeps work from one build to the next; what it builds must be exactly what a
//! build from scratch gives, whatever changed in between. Driven by the golden inputs: every
//! resource is removed, then put back, one after the other, through one translator.

use std::{path::PathBuf, sync::Arc};

use legate_agent::{
    ir::{ServiceNamespaces, Settings},
    pipeline::{Configuration, Translator},
};
use legate_crds::Resource;

fn golden_inputs() -> Vec<Vec<Resource>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut inputs = Vec::new();
    for case in std::fs::read_dir(root).unwrap() {
        let case = case.unwrap().path();
        let loaded = if case.join("input").is_dir() {
            legate_crds::loader::load_dir(&case.join("input"))
                .unwrap()
                .loaded
        } else {
            legate_crds::loader::load_file(&case.join("input.yaml")).unwrap()
        };
        inputs.push(loaded.resources);
    }
    inputs
}

fn assert_as_from_scratch(translator: &mut Translator, resources: &[Arc<Resource>]) {
    assert_as_from_scratch_with(translator, resources, &Settings::default());
}

fn assert_as_from_scratch_with(
    translator: &mut Translator,
    resources: &[Arc<Resource>],
    settings: &Settings,
) {
    let owned: Vec<Resource> = resources.iter().map(|r| Resource::clone(r)).collect();
    let expected = Configuration::build(&owned, settings);
    assert_eq!(translator.build(resources), expected);
}

/// As a directory of YAML (no authority over Services), and as Kubernetes (authority over
/// every namespace: a Service removed is then a missing Service, not a DNS name).
fn both_settings() -> [Settings; 2] {
    [
        Settings::default(),
        Settings {
            service_namespaces: Some(ServiceNamespaces::All),
            ..Settings::default()
        },
    ]
}

#[test]
fn every_build_equals_a_build_from_scratch() {
    for settings in both_settings() {
        for input in golden_inputs() {
            let all: Vec<Arc<Resource>> = input.into_iter().map(Arc::new).collect();
            let mut translator = Translator::new(settings.clone());
            let check = |t: &mut Translator, r: &[Arc<Resource>]| {
                assert_as_from_scratch_with(t, r, &settings)
            };
            check(&mut translator, &all);
            for i in 0..all.len() {
                let mut without = all.clone();
                without.remove(i);
                check(&mut translator, &without);
                // Back as a new resource with the same content: recomputed, same result.
                let mut again = all.clone();
                again[i] = Arc::new(Resource::clone(&all[i]));
                check(&mut translator, &again);
                check(&mut translator, &all);
            }
        }
    }
}

#[test]
fn many_changes_at_once_equal_a_build_from_scratch() {
    for input in golden_inputs() {
        let all: Vec<Arc<Resource>> = input.into_iter().map(Arc::new).collect();
        let mut translator = Translator::new(Settings::default());
        assert_as_from_scratch(&mut translator, &all);
        // Every other resource new, the first dropped, then the reverse; then back to all.
        for parity in [0, 1] {
            let changed: Vec<Arc<Resource>> = all
                .iter()
                .enumerate()
                .skip(1 - parity)
                .map(|(i, r)| {
                    if i % 2 == parity {
                        Arc::new(Resource::clone(r))
                    } else {
                        r.clone()
                    }
                })
                .collect();
            assert_as_from_scratch(&mut translator, &changed);
        }
        assert_as_from_scratch(&mut translator, &all);
    }
}

/// A file that declares the same Mapping twice, reloaded after another of its documents
/// changed: each declaration stays a resource of its own, as a build from scratch counts them
/// (the source once handed both the one `Arc` kept from before, which the translator counted
/// once: one canary member instead of two, one note instead of two).
#[test]
fn a_file_declaring_a_mapping_twice_builds_as_from_scratch_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.yaml");
    let twice = |service: &str| {
        format!(
            "apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: http, namespace: default}}
spec: {{port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: twice, namespace: default}}
spec: {{hostname: \"*\", prefix: /twice/, service: twice}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: twice, namespace: default}}
spec: {{hostname: \"*\", prefix: /twice/, service: twice}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: other, namespace: default}}
spec: {{hostname: \"*\", prefix: /other/, service: {service}}}
"
        )
    };
    let mut source = legate_agent::source::DirectoryState::new(dir.path().to_owned());
    let mut translator = Translator::new(Settings::default());
    for service in ["other", "changed"] {
        std::fs::write(&file, twice(service)).unwrap();
        source.rescan().unwrap();
        assert_as_from_scratch(&mut translator, &source.snapshot().resources);
    }
}

/// One Mapping declared twice with different services (two files of a directory can): both join
/// its group, in an order that depends on neither the order of the resources nor the builds
/// that added them (the incremental group kept the order it had grown in).
#[test]
fn a_mapping_declared_twice_builds_as_from_scratch_in_any_order() {
    let declared = |service: &str| {
        format!(
            "---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: twice, namespace: default}}
spec: {{hostname: \"*\", prefix: /twice/, service: {service}}}
"
        )
    };
    let text = format!(
        "apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: http, namespace: default}}
spec: {{port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}
{}{}",
        declared("first"),
        declared("second")
    );
    let resources = legate_crds::loader::load_str("twice", &text)
        .unwrap()
        .resources;
    let all: Vec<Arc<Resource>> = resources.into_iter().map(Arc::new).collect();
    let mut translator = Translator::new(Settings::default());
    assert_as_from_scratch(&mut translator, &all);
    let reversed: Vec<Arc<Resource>> = all.iter().rev().cloned().collect();
    assert_as_from_scratch(&mut translator, &reversed);
}

/// Every compiled Mapping depends on the gateway Module's defaults (`ir/upstream_policy.rs`):
/// when they change while the Mappings stay the same resources, every Mapping is compiled
/// again, as from scratch.
#[test]
fn a_changed_module_default_recompiles_mappings_that_did_not_change() {
    let load = |yaml: &str| -> Vec<Arc<Resource>> {
        legate_crds::loader::load_str("test.yaml", yaml)
            .unwrap()
            .resources
            .into_iter()
            .map(Arc::new)
            .collect()
    };
    let module = |config: &str| {
        load(&format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata: {{name: ambassador, namespace: default}}\nspec:\n  config: {config}\n"
        ))
    };
    let mappings = load(
        "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: http, namespace: default}\n\
         spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}\n---\n\
         apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: a, namespace: default}\n\
         spec: {hostname: \"*\", prefix: /a/, service: a}\n---\n\
         apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: b, namespace: default}\n\
         spec: {hostname: \"*\", prefix: /b/, service: b, timeout_ms: 10}\n",
    );
    let mut translator = Translator::new(Settings::default());
    for config in [
        "{}",
        "{cluster_request_timeout_ms: 500, retry_policy: {retry_on: 5xx}}",
        "{cluster_request_timeout_ms: 500, circuit_breakers: [{max_requests: 1}]}",
        "{keepalive: {probes: 3}, load_balancer: {policy: least_request}, cluster_idle_timeout_ms: 1}",
        "{keepalive: {probes: 300}}",
        // ir/cluster_tuning.rs: the address families.
        "{enable_ipv6: true}",
        "{enable_ipv4: false, enable_ipv6: true}",
        "{enable_ipv4: false}",
        "{}",
    ] {
        let all: Vec<Arc<Resource>> = mappings.iter().cloned().chain(module(config)).collect();
        assert_as_from_scratch(&mut translator, &all);
    }
}
