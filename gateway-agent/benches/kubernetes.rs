//! The Kubernetes source's costs (issue "the agent on Kubernetes"), with 10,000 Mappings:
//! - a relist (a watch that lost its place, an API server back after an outage) of every
//!   object, unchanged: at the same resourceVersions (not decoded again), or at new ones (decoded,
//!   found equal); either way the translator's memos all hit (the figure printed first is the
//!   share of resources the relist handed over as the very same objects);
//! - one watch event (an edited Mapping) → index → snapshot → Envoy resources;
//! - the status pass of a resync: every verdict computed and compared with the live status,
//!   nothing to write.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{api::DynamicObject, runtime::watcher::Event};
use legate_agent::{
    ir::Settings,
    pipeline::Translator,
    source::kubernetes::{Change, Index, StreamKey},
    status::{
        document,
        verdict::{self, Programmed},
    },
};
use legate_crds::Resource;

#[path = "fleet.rs"]
mod fleet;

/// The agent binary's allocator (`src/main.rs`), so the figures are the agent's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEY: StreamKey = StreamKey {
    kind: "Mapping",
    namespace: None,
    selector: None,
};

/// The fleet's Mappings as a watch delivers them (with a uid and a resourceVersion each).
fn objects(resources: &[Resource], version: &str) -> Vec<DynamicObject> {
    resources
        .iter()
        .filter(|r| matches!(r, Resource::Mapping(_)))
        .map(|r| {
            let mut value = r.to_json();
            let name = value["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            value["metadata"]["uid"] = format!("uid-{name}").into();
            value["metadata"]["generation"] = 1.into();
            value["metadata"]["resourceVersion"] = version.into();
            serde_json::from_value(value).unwrap()
        })
        .collect()
}

fn relist(index: &mut Index, objects: &[DynamicObject]) -> Change {
    index.apply(&KEY, Event::Init);
    for o in objects {
        index.apply(&KEY, Event::InitApply(o.clone()));
    }
    index.apply(&KEY, Event::InitDone)
}

fn kubernetes(c: &mut Criterion) {
    let resources = fleet::resources(10_000, 100, 1);
    let (mappings, rest): (Vec<Resource>, Vec<Resource>) = resources
        .into_iter()
        .partition(|r| matches!(r, Resource::Mapping(_)));
    let listed = objects(&mappings, "1");
    let relisted = objects(&mappings, "1");
    let rest: Vec<Arc<Resource>> = rest.into_iter().map(Arc::new).collect();

    let mut index = Index::default();
    index.add_stream(KEY);
    relist(&mut index, &listed);
    let before = index.snapshot();
    let all = |snapshot: &legate_agent::source::SourceSnapshot| -> Vec<Arc<Resource>> {
        rest.iter().chain(&snapshot.resources).cloned().collect()
    };
    let mut translator = Translator::new(Settings::default());
    translator.build(&all(&before));

    // The memo hit rate of a relist: the share handed over as the same objects.
    assert_eq!(
        relist(&mut index, &relisted),
        Change::None,
        "a relist of the same objects is no change"
    );
    let after = index.snapshot();
    let same = before
        .resources
        .iter()
        .zip(&after.resources)
        .filter(|(a, b)| Arc::ptr_eq(a, b))
        .count();
    println!(
        "kubernetes/relist_memo_hit_rate: {same} of {} resources shared ({:.1} %)",
        before.resources.len(),
        100.0 * same as f64 / before.resources.len().max(1) as f64
    );

    let mut group = c.benchmark_group("kubernetes");
    group.sample_size(10);
    // After a reconnect: the same objects at the same resourceVersions.
    group.bench_function("relist_10000_mappings_same_versions_then_build", |b| {
        b.iter(|| {
            relist(&mut index, &relisted);
            translator.build(&all(&index.snapshot()))
        })
    });
    // The same content at new resourceVersions (status writes since): decoded, found equal.
    let mut version = 2u64;
    group.bench_function(
        "relist_10000_mappings_new_versions_same_content_then_build",
        |b| {
            b.iter_batched(
                || {
                    version += 1;
                    objects(&mappings, &version.to_string())
                },
                |objects| {
                    relist(&mut index, &objects);
                    translator.build(&all(&index.snapshot()))
                },
                criterion::BatchSize::LargeInput,
            )
        },
    );

    // One edited Mapping: its event, the index, the snapshot, IR and Envoy resources; then back.
    let mut edited = listed[0].clone();
    edited.data["spec"]["prefix"] = "/edited/".into();
    edited.metadata.resource_version = Some("3".into());
    let original = listed[0].clone();
    let mut flip = false;
    group.bench_function("one_watch_event_among_10000_to_envoy_resources", |b| {
        b.iter(|| {
            flip = !flip;
            let event = if flip { &edited } else { &original };
            index.apply(&KEY, Event::Apply(event.clone()));
            translator.build(&all(&index.snapshot()))
        })
    });

    // A resync's status pass: every Mapping already says what the gateway would write.
    let snapshot = index.snapshot();
    let configuration = translator.build(&all(&snapshot));
    let verdicts = verdict::verdicts(&snapshot, &configuration.ir, "default", &Programmed::Acked);
    let now = Time(Timestamp::now());
    let live: Vec<(serde_json::Value, &verdict::Verdict)> = verdicts
        .values()
        .map(|v| {
            let status = document::desired("Mapping", "gw/edge", Some(v), None, Some(1), &now)
                .unwrap_or_default();
            (status, v)
        })
        .collect();
    group.bench_function("status_resync_10000_mappings_nothing_to_write", |b| {
        b.iter(|| {
            let verdicts =
                verdict::verdicts(&snapshot, &configuration.ir, "default", &Programmed::Acked);
            let writes = live
                .iter()
                .filter(|(status, v)| {
                    document::desired("Mapping", "gw/edge", Some(v), Some(status), Some(1), &now)
                        .is_some()
                })
                .count();
            assert_eq!(writes, 0);
            verdicts.len()
        })
    });
    group.finish();
}

criterion_group!(benches, kubernetes);
criterion_main!(benches);
