//! Nothing a user writes is dropped in silence: every field set that the gateway does not apply,
//! and every kind it does not implement, is named in one `NotSupported` note per resource,
//! while the resource keeps serving. The tables of applied and not-applied fields must cover
//! every field of every CRD.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use legate_agent::ir::{
    self, Builder, Ir, Reason, Rejection, Settings,
    unsupported::{self, TABLES, Table},
};
use legate_crds::Resource;
use serde_json::Value;

const LISTENER: &str = "
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http, namespace: default}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
";

fn load(yaml: &str) -> Vec<Resource> {
    let loaded = legate_crds::loader::load_str("test.yaml", yaml).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    loaded.resources
}

fn ir(yaml: &str) -> Ir {
    ir::build(&load(yaml), &Settings::default())
}

fn doc(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: {kind}\nmetadata: {{name: {name}, namespace: default}}\nspec:\n{spec}\n"
    )
}

/// The notes of not-applied settings, as (object, message).
fn notes(ir: &Ir) -> Vec<(String, String)> {
    ir.unreachable
        .iter()
        .filter(|n| n.reason == Reason::NotSupported)
        .map(|n| (n.object.to_string(), n.message.clone()))
        .collect()
}

fn note_of(ir: &Ir, object: &str) -> Vec<String> {
    notes(ir)
        .into_iter()
        .filter(|(o, _)| o == object)
        .map(|(_, m)| m)
        .collect()
}

#[test]
fn a_mapping_with_docs_and_outlier_detection_gets_one_note_naming_both_and_still_serves() {
    let ir = ir(&format!(
        "{LISTENER}{}",
        doc(
            "Mapping",
            "quote",
            "  hostname: \"*\"\n  prefix: /quote/\n  service: quote\n  docs: {path: /docs}\n  outlier_detection: x"
        )
    ));
    assert_eq!(
        notes(&ir),
        [(
            "Mapping default/quote".to_owned(),
            "not applied yet: spec.docs, spec.outlier_detection (Emissary does not support it \
             either)"
                .to_owned()
        )]
    );
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    let served = &ir.listeners[0].virtual_hosts[0].routes;
    assert!(served.iter().any(|r| r.route.source.name == "quote"));
}

#[test]
fn a_mapping_with_only_applied_fields_gets_no_note() {
    let ir = ir(&format!(
        "{LISTENER}{}",
        doc(
            "Mapping",
            "full",
            "  hostname: \"*\"
  prefix: /full/
  case_sensitive: false
  method: GET
  headers: {x-team: a}
  query_parameters: {debug: \"1\"}
  precedence: 2
  service: https://full:8443
  grpc: true
  timeout_ms: 5000
  idle_timeout_ms: 60000
  connect_timeout_ms: 1000
  retry_policy: {retry_on: 5xx, num_retries: 2, per_try_timeout: 1s}
  rewrite: /v2/
  host_rewrite: full.internal
  add_request_headers: {x-a: b}
  add_response_headers: {x-c: {value: d, append: false}}
  remove_request_headers: [x-e]
  remove_response_headers: [server]
  allow_upgrade: [websocket]
  health_checks: [{health_check: {grpc: {upstream_name: full}}}]
  dns_type: logical_dns
  respect_dns_ttl: true
  enable_ipv6: true
  cluster_tag: blue
  stats_name: full"
        )
    ));
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    assert!(notes(&ir).is_empty(), "{:#?}", notes(&ir));
}

#[test]
fn a_value_that_asks_for_what_the_gateway_does_anyway_is_not_reported() {
    let ir = ir(&doc(
        "Mapping",
        "explicit",
        "  prefix: /e/
  service: e
  bypass_auth: false
  add_linkerd_headers: false
  enable_ipv4: true
  enable_ipv6: false
  respect_dns_ttl: false
  dns_type: strict_dns
  priority: default
  resolver: kubernetes-service
  load_balancer: {policy: round_robin}
  circuit_breakers: []
  labels: {}",
    ));
    assert!(notes(&ir).is_empty(), "{:#?}", notes(&ir));
}

#[test]
fn an_auth_service_names_what_its_proto_does_not_use() {
    let ir = ir(&doc(
        "AuthService",
        "auth",
        "  auth_service: auth:3000\n  proto: grpc\n  protocol_version: v3\n  path_prefix: /x\n  \
         allowed_request_headers: [x-a]\n  include_body: {max_bytes: 10, allow_partial: true}\n  \
         allow_request_body: true",
    ));
    assert_eq!(
        note_of(&ir, "AuthService default/auth"),
        [
            "not applied because spec.include_body is set: spec.allow_request_body; not \
             applied to a gRPC AuthService (proto: grpc): spec.path_prefix, \
             spec.allowed_request_headers"
        ]
    );
}

/// Every RateLimitService field is applied (`ir/rate_limit.rs`); a label's
/// `omit_if_not_present: true` is named, since Emissary does not apply it either.
#[test]
fn a_rate_limit_service_gets_no_note_and_omit_if_not_present_is_named() {
    let yaml = [
        doc(
            "RateLimitService",
            "rl",
            "  service: rl:8081\n  domain: d\n  timeout_ms: 50\n  protocol_version: v3\n  failure_mode_deny: true\n  grpc: {use_resource_exhausted_code: true}\n  stats_name: rl",
        ),
        doc(
            "Mapping",
            "m",
            "  prefix: /m/\n  service: m\n  labels:\n    d:\n    - g:\n      - request_headers: {key: user, header_name: x-user, omit_if_not_present: true}",
        ),
    ]
    .concat();
    let ir = ir(&yaml);
    assert_eq!(
        note_of(&ir, "RateLimitService default/rl"),
        Vec::<String>::new()
    );
    assert_eq!(
        note_of(&ir, "Mapping default/m"),
        [
            "not applied, as in Emissary: spec.labels (omit_if_not_present: true: a label group \
          whose header is absent is not sent, whatever it says)"
        ]
    );
}

/// Every LogService field is applied (`ir/log_service.rs`): one setting them all gets no note.
#[test]
fn a_log_service_gets_no_note() {
    let ir = ir(&doc(
        "LogService",
        "als",
        "  service: als:3000\n  driver: http\n  driver_config: {additional_log_headers: [{header_name: x-a, during_request: true, during_response: false, during_trailer: false}]}\n  flush_interval_time: 2\n  flush_interval_byte_size: 1024\n  grpc: true\n  protocol_version: v3\n  stats_name: als\n  ambassador_id: [default]",
    ));
    assert_eq!(ir.rejections, vec![]);
    assert_eq!(note_of(&ir, "LogService default/als"), Vec::<String>::new());
}

/// Every TCPMapping field is applied: its tag, stats name and address families tune its
/// cluster as a Mapping's do (`ir/cluster_tuning.rs`).
#[test]
fn a_tcp_mapping_gets_no_note_and_its_tuning_reaches_its_cluster() {
    let ir = ir(&doc(
        "TCPMapping",
        "db",
        "  port: 5432\n  service: db:5432\n  idle_timeout_ms: \"5000\"\n  cluster_tag: blue\n  \
         stats_name: db\n  enable_ipv6: true",
    ));
    assert_eq!(note_of(&ir, "TCPMapping default/db"), Vec::<String>::new());
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    let tuned = ir
        .clusters
        .values()
        .find(|c| c.host == "db")
        .expect("the TCPMapping's cluster");
    assert_eq!(tuned.tuning.tag.as_deref(), Some("blue"));
    assert_eq!(tuned.tuning.stats_name.as_deref(), Some("db"));
    assert!(
        format!("{:?}", tuned.tuning.dns).contains("Auto"),
        "{:?}",
        tuned.tuning
    );
}

#[test]
fn a_module_names_each_key_not_applied() {
    // `gzip`, `server_name`, `use_remote_address` and `ip_allow` are applied (ir/compression.rs,
    // ir/http_options.rs, ir/ip_filter.rs), so they are not named.
    let ir = ir(&doc(
        "Module",
        "ambassador",
        "  config:
    server_name: envoy
    use_remote_address: true
    cluster_request_timeout_ms: 3000
    gzip: {}
    ip_allow: [{peer: 10.0.0.0/8}]
    lua_scripts: \"function envoy_on_request(h) end\"
    admin_port: 8001",
    ));
    assert_eq!(
        note_of(&ir, "Module default/ambassador"),
        [
            "not applied yet: spec.config.lua_scripts (a script cannot be checked before Envoy loads it); \
          legacy, not applied: spec.config.admin_port"
        ]
    );
}

/// A TracingService's settings of other drivers are named with its own; `tag_headers` beside
/// `custom_tags` is overridden, as Emissary's conversion has it.
#[test]
fn a_tracing_service_names_what_its_driver_does_not_use() {
    let ir = ir(&doc(
        "TracingService",
        "tracing",
        "  driver: opentelemetry
  service: otel:4317
  tag_headers: [x-tenant]
  custom_tags: [{tag: team, literal: {value: shop}}]
  config: {service_name: edge, collector_endpoint: /spans, trace_id_128bit: true, collector_cluster: mine}",
    ));
    assert_eq!(
        note_of(&ir, "TracingService default/tracing"),
        [
            "not applied because spec.custom_tags is set: spec.tag_headers; not applied: \
             spec.config.collector_cluster (the gateway calls the collector named by \
             spec.service, as Emissary does); not applied by the opentelemetry driver: \
             spec.config.collector_endpoint, spec.config.trace_id_128bit"
        ]
    );
}

#[test]
fn a_host_names_its_legacy_and_origination_settings_in_one_note() {
    let ir = ir(&format!(
        "{LISTENER}{}",
        doc(
            "Host",
            "shop",
            "  hostname: shop.example.com
  tls: {sni: shop.example.com, redirect_cleartext_from: 8080}
  requestPolicy: {insecure: {action: Route, additionalPort: -1}}
  acmeProvider: {authority: none}
  previewUrl: {enabled: false}"
        )
    ));
    assert_eq!(
        note_of(&ir, "Host default/shop"),
        [
            "legacy, not applied: spec.tls.redirect_cleartext_from (use a Listener and \
          requestPolicy.insecure.action instead); not applied (for TLS origination only): \
          spec.tls.sni"
        ]
    );
}

#[test]
fn a_host_asking_for_acme_is_told_the_gateway_does_none() {
    let ir = ir(&doc(
        "Host",
        "shop",
        "  hostname: shop.example.com\n  acmeProvider: {email: ops@example.com}",
    ));
    assert_eq!(
        note_of(&ir, "Host default/shop"),
        [
            "not applied yet: spec.acmeProvider (Legate does no ACME: issue the certificate \
          elsewhere and name it in tlsSecret)"
        ]
    );
}

#[test]
fn a_listener_with_both_protocol_and_stack_says_the_stack_wins() {
    let ir = ir(&doc(
        "Listener",
        "proxied",
        "  port: 8080
  protocol: HTTPPROXY
  protocolStack: [PROXY, HTTP, TCP]
  securityModel: XFP
  http2MaxConcurrentStreams: 100
  hostBinding: {namespace: {from: ALL}}",
    ));
    assert_eq!(
        note_of(&ir, "Listener default/proxied"),
        ["not applied because spec.protocolStack is set: spec.protocol"]
    );
}

#[test]
fn a_tls_context_says_its_hosts_do_not_attach_it() {
    let ir = ir(&doc(
        "TLSContext",
        "ctx",
        "  secret: cert\n  hosts: [shop.example.com]\n  min_tls_version: v1.2",
    ));
    assert_eq!(
        note_of(&ir, "TLSContext default/ctx"),
        [
            "not applied yet: spec.hosts (a Host uses a TLSContext only when its tlsContext names it; a TCPMapping's host does pair with it)"
        ]
    );
}

#[test]
fn a_redirect_names_the_upstream_settings_it_cannot_use() {
    let ir = ir(&doc(
        "Mapping",
        "old",
        "  prefix: /old/\n  service: new.example.com\n  host_redirect: true\n  timeout_ms: 500\n  rewrite: /new/",
    ));
    assert_eq!(
        note_of(&ir, "Mapping default/old"),
        ["not applied to a host_redirect Mapping: spec.timeout_ms, spec.rewrite"]
    );
}

#[test]
fn a_shadow_names_the_route_settings_its_group_route_decides() {
    let ir = ir(&format!(
        "{}{}",
        doc("Mapping", "main", "  prefix: /a/\n  service: a"),
        doc(
            "Mapping",
            "mirror",
            "  prefix: /a/\n  service: a-next\n  shadow: true\n  rewrite: /b/\n  add_request_headers: {x-shadow: \"1\"}\n  cors: {}",
        )
    ));
    assert_eq!(
        note_of(&ir, "Mapping default/mirror"),
        [
            "not applied to a shadow Mapping (it mirrors to its service only): spec.rewrite, \
          spec.add_request_headers, spec.cors"
        ]
    );
    assert_eq!(note_of(&ir, "Mapping default/main"), Vec::<String>::new());
}

#[test]
fn resources_for_another_gateway_get_no_note() {
    let ir = ir(&doc(
        "AuthService",
        "auth",
        "  ambassador_id: [other]\n  auth_service: auth:3000",
    ));
    assert!(notes(&ir).is_empty(), "{:#?}", notes(&ir));
}

#[test]
fn a_kept_builder_notes_what_changed_and_forgets_what_went() {
    let with_keepalive = Arc::new(
        load(&doc(
            "Mapping",
            "m",
            "  prefix: /m/\n  service: m\n  docs: {path: /docs}",
        ))
        .remove(0),
    );
    let without = Arc::new(load(&doc("Mapping", "m", "  prefix: /m/\n  service: m")).remove(0));
    let auth = Arc::new(
        load(&doc(
            "AuthService",
            "a",
            "  auth_service: a\n  proto: grpc\n  protocol_version: v3\n  path_prefix: /a",
        ))
        .remove(0),
    );
    let mut builder = Builder::new(Settings::default());
    let objects = |ir: &Ir| -> Vec<String> { notes(ir).into_iter().map(|(o, _)| o).collect() };
    let ir = builder.build(&[with_keepalive.clone(), auth.clone()]);
    assert_eq!(objects(&ir), ["AuthService default/a", "Mapping default/m"]);
    let ir = builder.build(&[without.clone(), auth.clone()]);
    assert_eq!(objects(&ir), ["AuthService default/a"]);
    let ir = builder.build(std::slice::from_ref(&without));
    assert_eq!(objects(&ir), Vec::<String>::new());
    let ir = builder.build(&[with_keepalive, auth]);
    assert_eq!(objects(&ir), ["AuthService default/a", "Mapping default/m"]);
}

#[test]
fn a_kept_builder_gives_the_notes_of_a_build_from_scratch_after_many_changes() {
    let mapping = |i: usize, extra: &str| {
        Arc::new(
            load(&doc(
                "Mapping",
                &format!("m{i:02}"),
                &format!("  prefix: /m{i}/\n  service: m{i}{extra}"),
            ))
            .remove(0),
        )
    };
    let first: Vec<Arc<Resource>> = (0..60).map(|i| mapping(i, "\n  keepalive: {}")).collect();
    // A third kept, a third changed (half of them no longer noted), a third gone, and new ones.
    let mut second: Vec<Arc<Resource>> = first[..20].to_vec();
    second.extend((20..40).map(|i| mapping(i, if i % 2 == 0 { "" } else { "\n  priority: high" })));
    second.extend((60..90).map(|i| mapping(i, "\n  docs: {}")));
    let mut builder = Builder::new(Settings::default());
    for resources in [&first, &second, &first[..3].to_vec(), &second, &first] {
        let kept = builder.build(resources);
        let owned: Vec<Resource> = resources.iter().map(|r| Resource::clone(r)).collect();
        assert_eq!(kept, ir::build(&owned, &Settings::default()));
    }
}

// --- The tables against the CRDs ---------------------------------------------------------------

fn table(kind: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.kind == kind)
}

/// The `spec` schema of each route and policy kind, by kind.
fn spec_schemas() -> BTreeMap<String, Value> {
    legate_crds::crds()
        .into_iter()
        // The operator's kind: the agent's IR is never given what it says.
        .filter(|crd| crd.spec.group == "getambassador.io")
        .map(|crd| {
            let version = &crd.spec.versions[0];
            let schema = serde_json::to_value(
                version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .unwrap(),
            )
            .unwrap();
            (crd.spec.names.kind, schema["properties"]["spec"].clone())
        })
        .collect()
}

/// Properties of `schema` the table does not decide, as `spec.<path>`: a property is decided
/// when listed, or when the table lists fields inside it (then each of those must be).
fn undecided(table: &Table, schema: &Value, prefix: &str, out: &mut Vec<String>) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    for (name, property) in properties {
        let path = format!("{prefix}{name}");
        let listed = |p: &str| table.applied.contains(&p) || table.not_applied.contains(&p);
        if listed(&path) {
            continue;
        }
        let inside = format!("{path}.");
        let nested = table
            .applied
            .iter()
            .chain(table.not_applied)
            .any(|e| e.starts_with(&inside));
        if nested && property["properties"].is_object() {
            undecided(table, property, &inside, out);
        } else {
            out.push(format!("{} spec.{path}", table.kind));
        }
    }
}

#[test]
fn every_field_of_every_crd_is_decided_applied_or_not() {
    let mut problems = Vec::new();
    for (kind, spec) in spec_schemas() {
        let Some(table) = table(&kind) else {
            problems.push(format!("{kind}: no table in ir/unsupported.rs"));
            continue;
        };
        undecided(table, &spec, "", &mut problems);
        // And nothing decided that the CRD does not have (a typo, a field removed).
        for entry in table.applied.iter().chain(table.not_applied) {
            let found = entry
                .split('.')
                .try_fold(&spec, |schema, name| {
                    schema["properties"].get(name).filter(|p| !p.is_null())
                })
                .is_some();
            if !found {
                problems.push(format!("{kind}: {entry:?} is not a field of the CRD"));
            }
            if table.applied.contains(entry) && table.not_applied.contains(entry) {
                problems.push(format!("{kind}: {entry:?} is both applied and not"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "decide each in ir/unsupported.rs's TABLES:\n{}",
        problems.join("\n")
    );
}

/// Resources of each kind that fully configured set every field the tables list as not
/// applied (two Modules: `ip_allow` and `ip_deny` exclude each other).
const EVERYTHING: &str = "
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: everything, namespace: default}
spec:
  prefix: /all/
  service: all
  resolver: endpoint
  cluster_idle_timeout_ms: 1000
  cluster_max_connection_lifetime_ms: 1000
  circuit_breakers: [{max_connections: 10}]
  health_checks: [{health_check: {http: {path: /health}}}]
  load_balancer: {policy: least_request}
  keepalive: {probes: 3}
  dns_type: logical_dns
  respect_dns_ttl: true
  enable_ipv4: false
  enable_ipv6: true
  cluster_tag: blue
  stats_name: all
  add_linkerd_headers: true
  priority: high
  cors: {origins: [\"https://a.example\"]}
  labels: {ambassador: [{group: [remote_address]}]}
  docs: {path: /docs}
  outlier_detection: consecutive_5xx
  envoy_override: {per_filter_config: {}}
  error_response_overrides: [{on_status_code: 404}]
  bypass_error_response_overrides: true
  modules: [{cors: {}}]
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: everything, namespace: default}
spec:
  hostname: a.example.com
  tlsSecret: {name: cert}
  tls: {sni: a.example.com, redirect_cleartext_from: 8080}
  requestPolicy: {insecure: {action: Redirect, additionalPort: 8080}}
  acmeProvider: {authority: \"https://acme.example\"}
  previewUrl: {enabled: true}
---
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: everything, namespace: default}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, http2MaxConcurrentStreams: 100, hostBinding: {namespace: {from: ALL}}}
---
apiVersion: getambassador.io/v3alpha1
kind: TLSContext
metadata: {name: everything, namespace: default}
spec: {secret: cert, hosts: [a.example.com], sni: a.example.com, redirect_cleartext_from: 8080}
---
apiVersion: getambassador.io/v3alpha1
kind: Module
metadata: {name: ambassador, namespace: default}
spec:
  config:
    cluster_request_timeout_ms: 5000
    cluster_idle_timeout_ms: 1000
    cluster_max_connection_lifetime_ms: 1000
    listener_idle_timeout_ms: 1000
    keepalive: {probes: 3}
    defaults: {httpmapping: {timeout_ms: 1000}}
    circuit_breakers: [{max_connections: 1}]
    load_balancer: {policy: least_request}
    retry_policy: {retry_on: 5xx}
    cors: {origins: [a.example]}
    add_linkerd_headers: true
    resolver: endpoint
    default_label_domain: mine
    default_labels: {ambassador: {defaults: [remote_address]}}
    enable_ipv4: false
    enable_ipv6: true
    use_ambassador_namespace_for_service_resolution: true
    diagnostics: {enabled: true}
    liveness_probe: {enabled: true}
    readiness_probe: {prefix: /ready}
    use_remote_address: false
    xff_num_trusted_hops: 1
    use_proxy_proto: true
    x_forwarded_proto_redirect: true
    enable_http10: true
    allow_chunked_length: true
    max_request_headers_kb: 96
    headers_with_underscores_action: REJECT_REQUEST
    server_name: legate
    preserve_external_request_id: true
    forward_client_cert_details: FORWARD_ONLY
    set_current_client_cert_details: {subject: true}
    strip_matching_host_port: true
    merge_slashes: true
    reject_requests_with_escaped_slashes: true
    proper_case: true
    suppress_envoy_headers: true
    buffer_limit_bytes: 1024
    envoy_log_type: json
    envoy_log_format: {start: \"%START_TIME%\"}
    envoy_log_path: /dev/stderr
    ip_allow: [{peer: 127.0.0.1}]
    lua_scripts: \"function envoy_on_request(h) end\"
    gzip: {}
    buffer: {max_request_bytes: 1024}
    enable_grpc_http11_bridge: true
    enable_grpc_web: true
    grpc_stats: {all_methods: true}
    regex_max_size: 200
    regex_type: unsafe
    envoy_validation_timeout: 30
    runtime_flags: {re2.max_program_size.error_level: 200}
    service_port: 8080
    admin_port: 8001
    diag_port: 8877
    prune_unreachable_routes: false
    header_case_overrides: [X-Foo]
    error_response_overrides: [{on_status_code: 404}]
---
apiVersion: getambassador.io/v3alpha1
kind: Module
metadata: {name: deny, namespace: default}
spec:
  config:
    ip_deny: [{remote: 10.0.0.0/8}]
---
apiVersion: getambassador.io/v3alpha1
kind: TracingService
metadata: {name: everything, namespace: default}
spec:
  driver: zipkin
  service: zipkin:9411
  sampling: {random: 10}
  custom_tags: [{tag: team, literal: {value: shop}}]
  stats_name: zipkin
  config:
    collector_endpoint: /api/v2/spans
    collector_endpoint_version: HTTP_PROTO
    collector_hostname: zipkin.example.com
    trace_id_128bit: false
    shared_span_context: true
    collector_cluster: my-zipkin
    access_token_file: /var/run/token
    propagation_modes: [B3]
";

#[test]
fn every_field_listed_as_not_applied_is_named_when_set() {
    let mut named: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for r in load(EVERYTHING) {
        for u in unsupported::unapplied(&r) {
            assert!(
                u.why.never_applied(),
                "{} {}: {:?} for a field set on its own",
                r.kind(),
                u.field,
                u.why
            );
            named
                .entry(r.kind())
                .or_default()
                .insert(u.field.trim_start_matches("spec.").to_owned());
        }
    }
    for t in TABLES.iter().filter(|t| !named_whole(t.kind)) {
        let listed: BTreeSet<String> = t.not_applied.iter().map(|f| f.to_string()).collect();
        assert_eq!(
            named.remove(t.kind).unwrap_or_default(),
            listed,
            "{}: what is named when every field is set, against the table",
            t.kind
        );
    }
}

/// Kinds whose note names the kind, not its fields.
fn named_whole(kind: &str) -> bool {
    ["TCPMapping", "ConsulResolver"].contains(&kind)
}

#[test]
fn a_field_unused_only_by_this_resource_is_one_the_tables_call_applied() {
    let yaml = [
        doc(
            "Mapping",
            "redirect",
            "  prefix: /r/\n  service: r\n  host_redirect: true\n  tls: true\n  grpc: true\n  timeout_ms: 1\n  idle_timeout_ms: 1\n  connect_timeout_ms: 1\n  retry_policy: {num_retries: 1}\n  rewrite: /\n  host_rewrite: h\n  auto_host_rewrite: true\n  allow_upgrade: [websocket]\n  use_websocket: true",
        ),
        doc(
            "Mapping",
            "shadow",
            "  prefix: /s/\n  service: s\n  shadow: true\n  case_sensitive: false\n  timeout_ms: 1\n  regex_rewrite: {pattern: a, substitution: b}\n  add_response_headers: {x-a: v}\n  remove_request_headers: [x]\n  remove_response_headers: [x-b]",
        ),
        doc(
            "Host",
            "selectors",
            "  mappingSelector: {matchLabels: {a: b}}\n  selector: {matchLabels: {c: d}}",
        ),
        doc(
            "AuthService",
            "grpc",
            "  auth_service: a\n  proto: grpc\n  protocol_version: v3\n  path_prefix: /a\n  allowed_request_headers: [x-a]\n  allowed_authorization_headers: [x-b]\n  add_auth_headers: {x-c: c}\n  add_linkerd_headers: true\n  include_body: {max_bytes: 1, allow_partial: true}\n  allow_request_body: true",
        ),
        doc(
            "Mapping",
            "open",
            "  prefix: /o/\n  service: o\n  bypass_auth: true\n  auth_context_extensions: {a: b}\n  auth_service_ref: {name: a}",
        ),
        doc(
            "Listener",
            "stack",
            "  port: 8080\n  protocol: HTTP\n  protocolStack: [PROXY, HTTP, TCP]\n  securityModel: XFP\n  hostBinding: {namespace: {from: ALL}}",
        ),
    ]
    .concat();
    let mut seen = 0;
    for r in load(&yaml) {
        let table = table(r.kind()).unwrap();
        for u in unsupported::unapplied(&r) {
            assert!(!u.why.never_applied(), "{u:?}");
            let field = u.field.trim_start_matches("spec.");
            let inside = format!("{field}.");
            assert!(
                table
                    .applied
                    .iter()
                    .any(|e| *e == field || e.starts_with(&inside)),
                "{} {field}",
                r.kind()
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 11 + 6 + 1 + 1 + 6 + 2);
}

#[test]
fn a_note_is_a_rejection_of_reason_not_supported_on_the_resource() {
    let r = &load(&doc(
        "ConsulResolver",
        "consul",
        "  address: consul:8500\n  datacenter: dc1",
    ))[0];
    assert_eq!(
        unsupported::note(r),
        Some(Rejection::new(
            r.object_ref(),
            Reason::NotSupported,
            unsupported::CONSUL_RESOLVER
        ))
    );
}
