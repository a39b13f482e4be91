//! Translation from scratch (resources → IR → Envoy resources → encoded ADS set), against the
//! budgets in DESIGN.md: 10,000 Mappings < 100 ms; Emissary #4471's shape (1,500 Mappings,
//! 1,000 Hosts, 2 Listeners) < 200 ms.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use legate_agent::{ir::Settings, pipeline::Configuration};

#[path = "fleet.rs"]
mod fleet;

fn translate(c: &mut Criterion) {
    let settings = Settings::default();
    let mut group = c.benchmark_group("translate_from_scratch");
    group.sample_size(10);
    for (mappings, hosts, listeners) in [
        (100, 100, 1),
        (1_000, 100, 1),
        (10_000, 100, 1),
        (1_500, 1_000, 2),
    ] {
        let resources = fleet::resources(mappings, hosts, listeners);
        let id = BenchmarkId::from_parameter(format!(
            "{mappings}_mappings_{hosts}_hosts_{listeners}_listeners"
        ));
        group.bench_with_input(id, &resources, |b, resources| {
            b.iter(|| {
                let config = Configuration::build(resources, &settings);
                config.resource_set()
            })
        });
    }
    group.finish();
}

/// One changed Mapping among 10,000 → the new configuration published to the ADS server
/// (build, encode, version and diff against what Envoy has): budget < 20 ms.
fn one_change(c: &mut Criterion) {
    let settings = Settings::default();
    let mut resources = fleet::resources(10_000, 100, 1);
    let xds = legate_agent::xds::Xds::new(&mut prometheus_client::registry::Registry::default());
    xds.publish(Configuration::build(&resources, &settings).resource_set());
    let index = resources
        .iter()
        .position(|r| matches!(r, legate_crds::Resource::Mapping(_)))
        .expect("the fleet has Mappings");
    let mut flip = false;
    c.bench_function("one_change_among_10000_to_ads", |b| {
        b.iter(|| {
            flip = !flip;
            if let legate_crds::Resource::Mapping(m) = &mut resources[index] {
                m.spec.service = if flip {
                    "changed:8080".into()
                } else {
                    "backend-0:8080".into()
                };
            }
            xds.publish(Configuration::build(&resources, &settings).resource_set());
        })
    });
}

criterion_group!(benches, translate, one_change);
criterion_main!(benches);
