//! The translation budgets in DESIGN.md:
//! - from scratch (resources → IR → Envoy resources → encoded, versioned ADS set, with nothing
//!   kept from an earlier build; freeing it is not timed): 10,000 Mappings < 100 ms; Emissary
//!   #4471's shape (1,500 Mappings, 1,000 Hosts, 2 Listeners) < 200 ms;
//! - one changed Mapping among 10,000 → the update received on a delta ADS stream: < 20 ms;
//! - and, not a budget of its own but the same path: one Service scaled (its EndpointSlice
//!   rewritten) among 1,000 Services that 10,000 Mappings send to → the ClusterLoadAssignment
//!   received on a delta ADS stream.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
};
use legate_agent::{
    ir::Settings,
    pipeline::Translator,
    xds::{Xds, type_url},
};
use legate_crds::Resource;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

#[path = "fleet.rs"]
mod fleet;

/// The agent binary's allocator (`src/main.rs`), so the figures are the agent's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn shared(resources: Vec<Resource>) -> Vec<Arc<Resource>> {
    resources.into_iter().map(Arc::new).collect()
}

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
        let resources = shared(fleet::resources(mappings, hosts, listeners));
        let id = BenchmarkId::from_parameter(format!(
            "{mappings}_mappings_{hosts}_hosts_{listeners}_listeners"
        ));
        group.bench_with_input(id, &resources, |b, resources| {
            // A new translator each time: nothing is kept from the last iteration. Freeing the
            // result (and the translator) is not translating, so it is left out of the time.
            b.iter_with_large_drop(|| {
                let mut translator = Translator::new(settings.clone());
                let configuration = translator.build(resources);
                (translator, configuration)
            })
        });
    }
    group.finish();
}

/// Waits until the client has acknowledged what `xds` publishes now.
fn acknowledged(rt: &tokio::runtime::Runtime, xds: &Xds) {
    let published = xds.published_version();
    rt.block_on(async {
        let mut status = xds.status();
        let wait = status.wait_for(|s| s.acked_version == published);
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("the client acknowledged the configuration")
            .unwrap();
    })
}

/// One changed Mapping among 10,000, the way an edit travels: the source's new snapshot (the
/// changed Mapping a new resource, the others shared) → IR → Envoy resources → published →
/// received by an Envoy-like delta ADS client over 127.0.0.1, which acknowledges every response
/// (clusters first, then routes). Timed until the route configuration arrives; the clean-up of
/// the cluster no longer used follows untimed.
fn one_change(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut resources = shared(fleet::resources(10_000, 100, 1));
    let index = resources
        .iter()
        .position(|r| matches!(**r, Resource::Mapping(_)))
        .expect("the fleet has Mappings");
    let mut translator = Translator::new(Settings::default());
    let xds = Xds::new(&mut prometheus_client::registry::Registry::default());
    xds.publish(translator.build(&resources).resources);
    let mut received = rt.block_on(envoy_like_client(&xds, false));
    let converged = |xds: &Xds| acknowledged(&rt, xds);
    converged(&xds);
    while received.try_recv().is_ok() {}

    let mut flip = false;
    c.bench_function("one_change_among_10000_to_ads", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                flip = !flip;
                let mut changed = (*resources[index]).clone();
                if let Resource::Mapping(m) = &mut changed {
                    m.spec.service = if flip {
                        "changed:8080"
                    } else {
                        "backend-0:8080"
                    }
                    .into();
                }
                resources[index] = Arc::new(changed);

                let started = Instant::now();
                xds.publish(translator.build(&resources).resources);
                rt.block_on(async {
                    while received.recv().await.expect("the stream is open") != type_url::ROUTE {}
                });
                timed += started.elapsed();
                converged(&xds);
                while received.try_recv().is_ok() {}
            }
            timed
        })
    });
}

/// 10,000 Mappings (the fleet's) sending to 1,000 Services (`svc-N` in the Mappings' namespaces),
/// each Service with an EndpointSlice of three ready endpoints.
fn service_fleet() -> Vec<Resource> {
    const SERVICES: usize = 1_000;
    let mut resources = fleet::resources(10_000, 100, 1);
    for (m, r) in resources
        .iter_mut()
        .filter_map(|r| match r {
            Resource::Mapping(m) => Some(m),
            _ => None,
        })
        .enumerate()
    {
        r.spec.service = format!("svc-{}", m % SERVICES);
    }
    let mut yaml = String::new();
    for s in 0..SERVICES {
        yaml += &fleet::service_yaml(s, 0, 3);
    }
    let loaded = legate_crds::loader::load_str("services.yaml", &yaml).expect("YAML");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors.first());
    resources.extend(loaded.resources);
    resources
}

/// One Service scaled among 1,000 that 10,000 Mappings send to: its EndpointSlice a new
/// resource (the rest shared) → IR → Envoy resources → published → the ClusterLoadAssignment
/// received by an Envoy-like delta ADS client. Nothing but endpoints changes.
fn one_endpoint_change(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut resources = shared(service_fleet());
    let index = resources
        .iter()
        .position(|r| matches!(**r, Resource::EndpointSlice(_)))
        .expect("the fleet has EndpointSlices");
    let slice_at = |base: usize| {
        let yaml = fleet::service_yaml(0, base, 3);
        let loaded = legate_crds::loader::load_str("slice.yaml", &yaml).expect("YAML");
        Arc::new(loaded.resources[1].clone())
    };
    let mut translator = Translator::new(Settings::default());
    let xds = Xds::new(&mut prometheus_client::registry::Registry::default());
    xds.publish(translator.build(&resources).resources);
    let mut received = rt.block_on(envoy_like_client(&xds, true));
    let converged = |xds: &Xds| acknowledged(&rt, xds);
    converged(&xds);
    while received.try_recv().is_ok() {}

    let mut base = 0;
    c.bench_function(
        "one_endpoint_change_among_1000_services_10000_mappings_to_ads",
        |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    base += 1;
                    resources[index] = slice_at(base);
                    let started = Instant::now();
                    xds.publish(translator.build(&resources).resources);
                    rt.block_on(async {
                        let first = received.recv().await.expect("the stream is open");
                        assert_eq!(first, type_url::ENDPOINT, "only endpoints changed");
                    });
                    timed += started.elapsed();
                    converged(&xds);
                    assert!(received.try_recv().is_err(), "one response, EDS alone");
                }
                timed
            })
        },
    );
}

/// Connects like Envoy with the delta protocol (clusters and listeners by wildcard, the route
/// configuration by name, and with `endpoints` every assignment), acknowledges every response,
/// and reports each response's type.
async fn envoy_like_client(xds: &Xds, endpoints: bool) -> mpsc::UnboundedReceiver<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(xds.clone().serve_on(listener, std::future::pending()));
    let (requests, outgoing) = mpsc::unbounded_channel();
    // Envoy's HTTP/2 receive windows (`Http2ProtocolOptions` defaults, which the ADS cluster of
    // our bootstrap keeps): 256 MiB per stream and per connection. With tonic's defaults a
    // route configuration of a few MB would wait for window updates Envoy never makes it wait for.
    const ENVOY_WINDOW: u32 = 256 * 1024 * 1024;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .initial_stream_window_size(ENVOY_WINDOW)
        .initial_connection_window_size(ENVOY_WINDOW)
        .connect()
        .await
        .unwrap();
    let mut stream = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .delta_aggregated_resources(UnboundedReceiverStream::new(outgoing))
        .await
        .unwrap()
        .into_inner();
    let eds = endpoints.then_some((type_url::ENDPOINT, vec![]));
    for (url, names) in [
        (type_url::CLUSTER, vec![]),
        (type_url::LISTENER, vec![]),
        (type_url::ROUTE, vec!["listener-8080-routes".to_owned()]),
    ]
    .into_iter()
    .chain(eds)
    {
        requests
            .send(DeltaDiscoveryRequest {
                type_url: url.into(),
                resource_names_subscribe: names,
                ..Default::default()
            })
            .unwrap();
    }
    let (report, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(response)) = stream.message().await {
            // Reported before it is acknowledged: once the server sees everything acknowledged,
            // every response is reported.
            let _ = report.send(response.type_url.clone());
            let _ = requests.send(DeltaDiscoveryRequest {
                type_url: response.type_url,
                response_nonce: response.nonce,
                ..Default::default()
            });
        }
    });
    received
}

criterion_group!(benches, translate, one_change, one_endpoint_change);
criterion_main!(benches);
