//! How fast the directory source can read a large configuration: N Mappings across 100 hosts
//! as one multi-document YAML file, parsed, type-checked and CEL-validated.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn mappings_yaml(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata:\n  name: route-{i}\n  namespace: team-{}\n\
                 spec:\n  hostname: host-{}.example.com\n  prefix: /service-{i}/\n  service: backend-{i}:8080\n  \
                 timeout_ms: 5000\n  add_request_headers:\n    x-route: route-{i}\n---\n",
                i % 10,
                i % 100,
            )
        })
        .collect()
}

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load_mappings");
    group.sample_size(10);
    for n in [100, 1_000, 10_000] {
        let text = mappings_yaml(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &text, |b, text| {
            b.iter(|| {
                let loaded = legate_crds::loader::load_str("bench.yaml", text).unwrap();
                assert_eq!(loaded.resources.len(), n);
            })
        });
    }
    group.finish();
}

/// The YAML parse alone, to tell its share from typing and validation.
fn parse_only(c: &mut Criterion) {
    let text = mappings_yaml(10_000);
    c.bench_function("parse_yaml/10000", |b| {
        b.iter(|| {
            let options = serde_saphyr::options! {
                budget: serde_saphyr::budget! { max_documents: 1_000_000, max_nodes: 50_000_000, max_events: 100_000_000 },
            };
            let docs = serde_saphyr::from_multiple_with_options::<serde_json::Value>(&text, options).unwrap();
            assert_eq!(docs.len(), 10_000);
        })
    });
}

criterion_group!(benches, load, parse_only);
criterion_main!(benches);
