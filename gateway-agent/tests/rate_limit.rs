//! Rate limiting through real Envoy and a real `envoy.service.ratelimit.v3` gRPC server
//! (`support/rate_limit_server.rs`), as Emissary configures it: a `RateLimitService`
//! (`python/ambassador/src/ambassador/ir/irratelimit.py`), Envoy's `ratelimit` filter
//! (`envoy/v3/v3httpfilter.py`, `V3HTTPFilter_ratelimit`), Mapping `labels` →
//! each route's `rate_limits` (`envoy/v3/v3route.py`, `envoy/v3/v3ratelimitaction.py`) and the
//! Module's `default_labels` put first (`ir/irhttpmappinggroup.py`). Emissary's tests:
//! `python/tests/src/tests/kat/t_ratelimit.py`, `python/tests/src/tests/unit/test_irratelimit.py`.
//!
//! Each test has its own gateway and servers, writes its whole configuration as one file, and
//! waits for the first call the server receives (or a stat Envoy counts) before asserting: a
//! call proves the filter and the route's labels have both arrived.

mod support;

use std::time::Duration;

use legate_agent::ir::{self, Settings};
use pretty_assertions::assert_eq;
use reqwest::Method;
use support::{
    Upstream, eventually, free_port,
    gateway::{self, Gateway, WAIT},
    health::GrpcHealth,
    rate_limit_server::{Call, RateLimitServer},
};
use tonic_health::ServingStatus;

/// A RateLimitService named `name` in `default` calling `service`, with `spec` (flow style,
/// without braces) added. A long timeout: a busy test machine must not fail a call open.
fn service(name: &str, service: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: RateLimitService\n\
         metadata: {{name: {name}, namespace: default}}\n\
         spec: {{service: \"{service}\", protocol_version: v3, timeout_ms: 5000{spec}}}\n"
    )
}

/// A Mapping for `prefix` to `upstream`, every hostname, with `labels` (YAML, indented under
/// `labels:` by two spaces).
fn labelled(name: &str, prefix: &str, upstream: &Upstream, labels: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
         metadata: {{name: {name}, namespace: default}}\nspec:\n  hostname: \"*\"\n  \
         prefix: {prefix}\n  service: {}\n  labels:\n{}",
        upstream.service(),
        indent(labels, "    ")
    )
}

/// The Mapping `app` (`/app/`) whose one label group sends `generic_key=app`.
fn app(upstream: &Upstream) -> String {
    labelled(
        "app",
        "/app/",
        upstream,
        "ambassador:\n- all:\n  - generic_key: {value: app}",
    )
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{by}{l}\n"))
        .collect()
}

/// `(key, value)` pairs, as the server records a descriptor.
fn entries(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The name of the cluster a Mapping's `service: host:port` gets (its `destination_cluster`).
fn cluster_of(upstream: &Upstream) -> String {
    ir::service::cluster_name(
        &upstream.addr.ip().to_string(),
        upstream.addr.port(),
        false,
        false,
        ir::DEFAULT_CONNECT_TIMEOUT,
    )
}

/// Sends GET `path` (with `headers`) until the server has received a call for it, and returns
/// that one call and the answer. The server's record is cleared first.
async fn first_call(
    gw: &Gateway,
    server: &RateLimitServer,
    path: &str,
    headers: &[(&str, &str)],
) -> (Call, u16) {
    server.clear();
    eventually(&format!("a rate-limit call for {path}"), WAIT, || async {
        let reply = gw.send(Method::GET, path, "example.com", headers).await;
        let calls = server.calls();
        match calls.as_slice() {
            [] => None,
            [call] => Some((call.clone(), reply.status)),
            more => panic!("one request made {} calls: {more:?}", more.len()),
        }
    })
    .await
}

/// The call one request makes, once the configuration is known to be there.
async fn call(
    gw: &Gateway,
    server: &RateLimitServer,
    path: &str,
    headers: &[(&str, &str)],
) -> Vec<Call> {
    server.clear();
    let reply = gw.send(Method::GET, path, "example.com", headers).await;
    assert_eq!(reply.status, 200, "{}", gateway::describe(&reply));
    server.calls()
}

/// Every label kind, in v3alpha1 shapes, and the Module's `default_labels` first in every
/// group; a group whose header is absent is not sent (Emissary leaves `skip_if_absent` out);
/// labels of another domain are not sent.
#[tokio::test]
async fn the_server_receives_exactly_the_descriptors_emissary_would_send() {
    let server = RateLimitServer::start(1000).await;
    let upstream = Upstream::start("app").await;
    let gw = Gateway::start().await;
    let labels = "ambassador:
- everything:
  - source_cluster: {key: source_cluster}
  - destination_cluster: {key: destination_cluster}
  - remote_address: {key: remote_address}
  - generic_key: {value: gv}
  - generic_key: {key: custom, value: cv}
  - request_headers: {key: user, header_name: x-user}
- tenant_only:
  - request_headers: {key: tenant, header_name: x-tenant}
other:
- never_sent:
  - remote_address: {key: remote_address}";
    gw.write(
        "rl.yaml",
        &[
            gateway::module(
                "default_labels: {ambassador: {defaults: [{generic_key: {value: from-module}}]}}",
            ),
            service("rl", &server.service(), ""),
            labelled("app", "/app/", &upstream, labels),
        ]
        .concat(),
    );
    let (first, status) = first_call(&gw, &server, "/app/", &[("x-user", "alice")]).await;
    assert_eq!(status, 200);
    let module = ("generic_key", "from-module");
    let cluster = cluster_of(&upstream);
    let everything = entries(&[
        module,
        // Envoy's own cluster: the bootstrap's `node.cluster`.
        ("source_cluster", "legate"),
        ("destination_cluster", &cluster),
        ("remote_address", "127.0.0.1"),
        ("generic_key", "gv"),
        ("custom", "cv"),
        ("user", "alice"),
    ]);
    assert_eq!(
        first,
        Call {
            domain: "ambassador".into(),
            descriptors: vec![everything.clone()],
        }
    );
    // Both headers: both groups.
    assert_eq!(
        call(
            &gw,
            &server,
            "/app/",
            &[("x-user", "alice"), ("x-tenant", "acme")]
        )
        .await,
        [Call {
            domain: "ambassador".into(),
            descriptors: vec![everything, entries(&[module, ("tenant", "acme")])],
        }]
    );
    // Neither: no descriptor at all, so Envoy makes no call.
    assert_eq!(call(&gw, &server, "/app/", &[]).await, []);
}

/// A Mapping written as Emissary v2 YAML with v2's label shorthands (converted as
/// `Convert_v2_MappingLabelSpecifier_To_v3alpha1_MappingLabelSpecifier` does), and a Mapping
/// without labels, which sends the Module's defaults alone.
#[tokio::test]
async fn v2_shorthands_and_a_mapping_without_labels_send_what_emissary_sends() {
    let server = RateLimitServer::start(1000).await;
    let upstream = Upstream::start("app").await;
    let gw = Gateway::start().await;
    let v2 = format!(
        "---
apiVersion: getambassador.io/v2
kind: Mapping
metadata: {{name: v2, namespace: default}}
spec:
  prefix: /v2/
  service: {}
  labels:
    ambassador:
    - v2_group:
      - source_cluster
      - remote_address
      - a-literal
      - {{generic_key: gk}}
      - {{tenant: {{header: x-tenant}}}}
",
        upstream.service()
    );
    let bare = gateway::route("bare", &upstream, "prefix: /bare/");
    gw.write(
        "rl.yaml",
        &[
            gateway::module("default_labels: {ambassador: {defaults: [remote_address]}}"),
            service("rl", &server.service(), ""),
            v2,
            bare,
        ]
        .concat(),
    );
    let (v2_call, _) = first_call(&gw, &server, "/v2/", &[("x-tenant", "acme")]).await;
    assert_eq!(
        v2_call,
        Call {
            domain: "ambassador".into(),
            descriptors: vec![entries(&[
                ("remote_address", "127.0.0.1"),
                ("source_cluster", "legate"),
                ("remote_address", "127.0.0.1"),
                ("generic_key", "a-literal"),
                ("generic_key", "gk"),
                ("tenant", "acme"),
            ])],
        }
    );
    assert_eq!(
        call(&gw, &server, "/bare/", &[]).await,
        [Call {
            domain: "ambassador".into(),
            descriptors: vec![entries(&[("remote_address", "127.0.0.1")])],
        }]
    );
}

/// Past the server's limit Envoy answers 429 and the upstream never sees the request.
#[tokio::test]
async fn past_the_limit_envoy_answers_429_without_reaching_the_upstream() {
    let server = RateLimitServer::start(2).await;
    let upstream = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write(
        "rl.yaml",
        &[
            service("rl", &server.service(), ""),
            labelled(
                "app",
                "/app/",
                &upstream,
                "ambassador:\n- per_route:\n  - generic_key: {value: app}",
            ),
        ]
        .concat(),
    );
    // The first call is the first the server counts: requests before the configuration
    // arrived made none.
    let (_, status) = first_call(&gw, &server, "/app/", &[]).await;
    assert_eq!(status, 200);
    let second = gw.get("/app/", "example.com").await;
    assert_eq!(second.status, 200, "{}", gateway::describe(&second));
    let reached = upstream.requests();
    let third = gw.get("/app/", "example.com").await;
    assert_eq!(third.status, 429, "{}", gateway::describe(&third));
    assert_eq!(
        upstream.requests(),
        reached,
        "a limited request reached the upstream"
    );
    assert_eq!(server.calls().len(), 3);
}

/// `failure_mode_deny: false` (the default): with the server gone, requests pass; Envoy counts
/// each as `ratelimit.failure_mode_allowed`.
#[tokio::test]
async fn with_the_server_down_requests_pass_unless_failure_mode_deny() {
    let mut server = RateLimitServer::start(1000).await;
    let upstream = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write(
        "rl.yaml",
        &[service("rl", &server.service(), ""), app(&upstream)].concat(),
    );
    first_call(&gw, &server, "/app/", &[]).await;
    server.stop().await;
    eventually("a request let through without its check", WAIT, || async {
        let reply = gw.get("/app/", "example.com").await;
        assert_eq!(reply.status, 200, "{}", gateway::describe(&reply));
        let allowed = gw.envoy.stat_sum("ratelimit.failure_mode_allowed").await;
        (allowed > 0).then_some(())
    })
    .await;

    // `failure_mode_deny: true`, against a port where nothing listens: 500.
    let nothing = format!("127.0.0.1:{}", free_port());
    gw.write(
        "rl.yaml",
        &[
            service("rl", &nothing, ", failure_mode_deny: true"),
            app(&upstream),
        ]
        .concat(),
    );
    gw.wait_status("/app/", 500).await;
}

/// Of two RateLimitServices one is used (the first by namespace and name when neither is in
/// another namespace or older) and the other says Conflict in its status, naming it; Emissary
/// would disable rate limiting altogether.
#[tokio::test]
async fn a_second_rate_limit_service_is_refused_and_the_first_is_used() {
    let first = RateLimitServer::start(1000).await;
    let second = RateLimitServer::start(1000).await;
    let upstream = Upstream::start("app").await;
    let gw = Gateway::start().await;
    let yaml = [
        service("b-second", &second.service(), ""),
        service("a-first", &first.service(), ""),
        app(&upstream),
    ]
    .concat();
    gw.write("rl.yaml", &yaml);
    first_call(&gw, &first, "/app/", &[]).await;
    assert_eq!(second.calls(), []);

    let status = |name: &str| support::verdict::accepted(&yaml, "RateLimitService", name);
    assert_eq!(
        status("b-second"),
        (
            "False",
            "Conflict".to_owned(),
            "RateLimitService default/a-first is the gateway's RateLimitService, and one gateway \
             uses one (the one in the gateway's namespace wins, then the oldest, then by \
             namespace and name): this one is not used"
                .to_owned()
        )
    );
    assert_eq!(
        status("a-first"),
        ("True", "Accepted".to_owned(), "accepted".to_owned())
    );
}

/// Without `domain`, the Module's `default_label_domain` is the domain: its labels are sent,
/// under it.
#[tokio::test]
async fn the_domain_defaults_to_the_modules_default_label_domain() {
    let server = RateLimitServer::start(1000).await;
    let upstream = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write(
        "rl.yaml",
        &[
            gateway::module("default_label_domain: shop"),
            service("rl", &server.service(), ""),
            labelled(
                "app",
                "/app/",
                &upstream,
                "shop:\n- checkout:\n  - generic_key: {value: cart}\nambassador:\n- not_this:\n  - remote_address: {key: remote_address}",
            ),
        ]
        .concat(),
    );
    let (call, _) = first_call(&gw, &server, "/app/", &[]).await;
    assert_eq!(
        call,
        Call {
            domain: "shop".into(),
            descriptors: vec![entries(&[("generic_key", "cart")])],
        }
    );
}

/// A RateLimitService that cannot be used (its TLSContext is missing) is refused naming the
/// field, and its filter stays, calling a cluster without endpoints: with `failure_mode_deny`
/// requests are refused, never silently let through unlimited; Envoy accepts all of it.
/// (`protocol_version: v2` never gets this far: the CRD's rule, which the loader applies too,
/// refuses the document.)
#[tokio::test]
async fn an_unusable_rate_limit_service_is_refused_and_still_fails_closed() {
    let upstream = Upstream::start("app").await;
    let gw = Gateway::start().await;
    let yaml = [
        service(
            "rl",
            "127.0.0.1:1",
            ", tls: missing, failure_mode_deny: true",
        ),
        app(&upstream),
    ]
    .concat();
    gw.write("rl.yaml", &yaml);
    gw.wait_status("/app/", 500).await;
    assert_eq!(gw.agent.nacks().await, 0.0);
    let loaded = legate_crds::loader::load_str("rl.yaml", &yaml).expect("the YAML loads");
    let ir = ir::build(&loaded.resources, &Settings::default());
    let refused: Vec<(String, String)> = ir
        .rejections
        .iter()
        .map(|r| (r.object.to_string(), r.message.clone()))
        .collect();
    assert_eq!(
        refused,
        [(
            "RateLimitService default/rl".to_owned(),
            "tls: TLSContext default/missing not found; rate-limit checks fail until it is \
             fixed (failure_mode_deny true: requests are refused with 500)"
                .to_owned()
        )]
    );
}

/// The RateLimitService's Service, read as a Mapping's is: missing (where the source has
/// authority over Services) or without a ready endpoint, it is served anyway and its status
/// says why checks fail (`Programmed: False`); with endpoints, its EDS cluster has them.
#[test]
fn its_service_missing_or_without_ready_endpoints_is_noted() {
    let rls = service("rl", "ratelimit:grpc", "");
    let svc = "---\napiVersion: v1\nkind: Service\nmetadata: {name: ratelimit, namespace: default}\n\
               spec: {ports: [{name: grpc, port: 8081}]}\n";
    let slice = |ready: bool| {
        format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: ratelimit-a\n  \
             namespace: default\n  labels: {{kubernetes.io/service-name: ratelimit}}\naddressType: IPv4\n\
             ports: [{{name: grpc, port: 8081}}]\nendpoints:\n- {{addresses: [\"10.0.0.7\"], conditions: {{ready: {ready}}}}}\n"
        )
    };
    let kubernetes = Settings {
        service_namespaces: Some(ir::ServiceNamespaces::All),
        ..Settings::default()
    };
    let notes = |yaml: &str| -> Vec<(ir::Reason, String)> {
        let loaded = legate_crds::loader::load_str("rl.yaml", yaml).expect("the YAML loads");
        assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
        let ir = ir::build(&loaded.resources, &kubernetes);
        assert_eq!(ir.rejections, []);
        ir.unreachable
            .iter()
            .filter(|n| n.object.kind == "RateLimitService")
            .map(|n| (n.reason, n.message.clone()))
            .collect()
    };
    assert_eq!(
        notes(&rls),
        [(
            ir::Reason::ServiceNotFound,
            "service \"ratelimit:grpc\": Service default/ratelimit does not exist; calls to it \
             fail until it does"
                .to_owned()
        )]
    );
    assert_eq!(
        notes(&[rls.clone(), svc.to_owned(), slice(false)].concat()),
        [(
            ir::Reason::NoReadyEndpoints,
            "Service default/ratelimit has no ready endpoint; calls to it fail until it has"
                .to_owned()
        )]
    );
    assert_eq!(notes(&[rls, svc.to_owned(), slice(true)].concat()), []);
}

/// `grpc.use_resource_exhausted_code: true` (Envoy's `rate_limited_as_resource_exhausted`): a
/// rate-limited gRPC call ends `RESOURCE_EXHAUSTED`; without it, `UNAVAILABLE` (the gRPC
/// reading of Envoy's 429). Emissary documents the field but reads another key, so there it
/// never applies; here it does.
#[tokio::test]
async fn a_limited_grpc_call_ends_resource_exhausted_with_use_resource_exhausted_code() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    // Every call is over the limit.
    let server = RateLimitServer::start(0).await;
    let health = GrpcHealth::start_on("127.0.0.1:0".parse().unwrap(), "", ServingStatus::Serving)
        .await
        .expect("a gRPC server");
    let grpc = health.addr;
    let gw = Gateway::start().await;
    let mapping = format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
         metadata: {{name: health, namespace: default}}\nspec:\n  hostname: \"*\"\n  \
         prefix: /grpc.health.v1.Health/\n  rewrite: /grpc.health.v1.Health/\n  \
         service: {grpc}\n  grpc: true\n  labels:\n    ambassador:\n    - all:\n      \
         - generic_key: {{value: grpc}}\n"
    );
    let channel = tonic::transport::Endpoint::from_shared(gw.url(""))
        .expect("the gateway's URL")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    let client = HealthClient::new(channel);
    let ends = |code: tonic::Code| {
        let client = client.clone();
        async move {
            eventually(&format!("a gRPC Check to end {code:?}"), WAIT, || {
                let mut client = client.clone();
                async move {
                    let request = HealthCheckRequest {
                        service: String::new(),
                    };
                    match client.check(request).await {
                        Err(status) if status.code() == code => Some(()),
                        _ => None,
                    }
                }
            })
            .await
        }
    };
    gw.write(
        "rl.yaml",
        &[
            service(
                "rl",
                &server.service(),
                ", grpc: {use_resource_exhausted_code: true}",
            ),
            mapping.clone(),
        ]
        .concat(),
    );
    ends(tonic::Code::ResourceExhausted).await;
    gw.write(
        "rl.yaml",
        &[service("rl", &server.service(), ""), mapping].concat(),
    );
    ends(tonic::Code::Unavailable).await;
}
