//! Emissary v1 and v2 YAML, in the style of Emissary's documentation, converted to v3alpha1 as
//! Emissary's own conversion does (pkg/api/getambassador.io/v2/handwritten.conversion.go), then
//! loaded: each converts, says what changed, and loads without an error.

use legate_crds::{
    Resource,
    convert::{self, Converted},
    loader::load_str,
};
use serde_json::{Value, json};

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap()
}

fn converted(text: &str) -> Converted {
    convert::convert(&yaml(text))
        .unwrap()
        .expect("an old document")
}

/// Loads a converted document as the directory source would, and returns it.
#[track_caller]
fn loads(c: &Converted) -> Resource {
    let text = serde_saphyr::to_string(&c.document).unwrap();
    let loaded = load_str("converted.yaml", &text).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    loaded.resources.into_iter().next().unwrap()
}

#[test]
fn a_v2_mapping_gets_hostname_regex_headers_and_an_https_service() {
    let c = converted(
        "apiVersion: getambassador.io/v2
kind: Mapping
metadata: {name: quote-backend, namespace: default}
spec:
  prefix: /backend/
  host: quote.example.com
  headers: {x-canary: true, x-team: blue}
  query_parameters: {debug: true}
  service: quote:8443
  tls: true
",
    );
    assert_eq!(
        c.document["spec"],
        json!({
            "prefix": "/backend/",
            "hostname": "quote.example.com",
            "headers": {"x-team": "blue"},
            "regex_headers": {"x-canary": ".*"},
            "regex_query_parameters": {"debug": ".*"},
            "service": "https://quote:8443",
        })
    );
    assert_eq!(c.document["apiVersion"], "getambassador.io/v3alpha1");
    assert_eq!(
        c.changes,
        [
            "apiVersion: getambassador.io/v2 → getambassador.io/v3alpha1",
            "spec.host: quote.example.com → spec.hostname",
            "spec.headers.x-canary: true → spec.regex_headers: \".*\"",
            "spec.query_parameters.debug: true → spec.regex_query_parameters: \".*\"",
            "spec.tls: true → spec.service: https://quote:8443",
        ]
    );
    loads(&c);
}

#[test]
fn a_v1_mapping_without_host_matches_every_host_and_a_regex_host_stays() {
    // Emissary: `out.Hostname = "*"` when v2 had no host; a host_regex keeps `host`.
    let c = converted(
        "apiVersion: getambassador.io/v1
kind: Mapping
metadata: {name: qotm, namespace: default}
spec: {prefix: /qotm/, service: qotm}
",
    );
    assert_eq!(c.document["spec"]["hostname"], "*");
    loads(&c);
    let c = converted(
        "apiVersion: getambassador.io/v2
kind: Mapping
metadata: {name: regex-host, namespace: default}
spec: {prefix: /r/, service: r, host: \"^[a-z]+\\\\.example\\\\.com$\", host_regex: true}
",
    );
    assert_eq!(c.document["spec"]["host"], "^[a-z]+\\.example\\.com$");
    assert_eq!(c.document["spec"].get("hostname"), None);
    loads(&c);
}

#[test]
fn a_v2_host_gets_ambassador_id_and_mapping_selector() {
    let c = converted(
        "apiVersion: getambassador.io/v2
kind: Host
metadata: {name: example, namespace: default}
spec:
  ambassadorId: [edge]
  hostname: example.com
  selector: {matchLabels: {app: quote}}
  tlsSecret: {name: example-cert}
",
    );
    assert_eq!(
        c.document["spec"],
        json!({
            "ambassador_id": ["edge"],
            "hostname": "example.com",
            "mappingSelector": {"matchLabels": {"app": "quote"}},
            "tlsSecret": {"name": "example-cert"},
        })
    );
    loads(&c);
}

#[test]
fn a_v2_tracing_service_gets_its_v3_fields_and_tag_headers_as_custom_tags() {
    let c = converted(
        "apiVersion: getambassador.io/v2
kind: TracingService
metadata: {name: tracing, namespace: default}
spec:
  service: zipkin:9411
  driver: zipkin
  tag_headers: [x-tenant]
  v3StatsName: zipkin
  config: {v3PropagationModes: [B3]}
",
    );
    assert_eq!(
        c.document["spec"],
        json!({
            "service": "zipkin:9411",
            "driver": "zipkin",
            "custom_tags": [{"tag": "x-tenant", "request_header": {"name": "x-tenant"}}],
            "stats_name": "zipkin",
            "config": {"propagation_modes": ["B3"]},
        })
    );
    loads(&c);
    // With custom tags, Emissary ignores tag_headers.
    let c = converted(
        "apiVersion: getambassador.io/v2
kind: TracingService
metadata: {name: tracing, namespace: default}
spec:
  service: zipkin:9411
  driver: zipkin
  tag_headers: [x-tenant]
  v3CustomTags: [{tag: team, literal: {value: shop}}]
",
    );
    assert_eq!(
        c.document["spec"]["custom_tags"],
        json!([{"tag": "team", "literal": {"value": "shop"}}])
    );
    assert!(c.document["spec"].get("tag_headers").is_none());
    assert!(
        c.changes.iter().any(|l| l.contains("tag_headers: dropped")),
        "{:?}",
        c.changes
    );
    loads(&c);
}

#[test]
fn tls_true_becomes_a_scheme_except_on_a_tcpmapping() {
    let c = converted(
        "apiVersion: getambassador.io/v2
kind: AuthService
metadata: {name: authentication, namespace: default}
spec: {auth_service: example-auth:3000, proto: http, tls: true}
",
    );
    assert_eq!(
        c.document["spec"]["auth_service"],
        "https://example-auth:3000"
    );
    assert_eq!(c.document["spec"].get("tls"), None);
    loads(&c);
    // A scheme is read without regard to case: `Http://` with `tls: true` is an https service.
    let c = converted(
        "apiVersion: getambassador.io/v2
kind: Mapping
metadata: {name: mixed-case, namespace: default}
spec: {prefix: /m/, service: Http://quote:8443, tls: true}
",
    );
    assert_eq!(c.document["spec"]["service"], "https://quote:8443");
    loads(&c);
    // v2 gave TCPMappings no scheme: `tls: true` stays (Emissary's TCPMapping conversion).
    let c = converted(
        "apiVersion: getambassador.io/v2
kind: TCPMapping
metadata: {name: db, namespace: default}
spec: {port: 5432, service: db:5432, tls: true}
",
    );
    assert_eq!(c.document["spec"]["tls"], true);
    assert_eq!(c.changes.len(), 1, "{:?}", c.changes);
    loads(&c);
}

#[test]
fn a_v2_host_glob_in_host_is_refused_naming_the_field() {
    let e = convert::convert(&yaml(
        "apiVersion: getambassador.io/v2
kind: Mapping
metadata: {name: wild, namespace: default}
spec: {prefix: /, service: s, host: \"*.example.com\"}
",
    ))
    .unwrap_err();
    assert_eq!(e.field, "spec.host");
    assert!(e.message.contains("write hostname yourself"), "{e}");
}

#[test]
fn an_annotated_service_becomes_v3alpha1_resources_in_its_namespace() {
    let service = yaml(
        "apiVersion: v1
kind: Service
metadata:
  name: quote
  namespace: shop
  annotations:
    getambassador.io/config: |
      ---
      apiVersion: ambassador/v1
      kind: Mapping
      name: quote_mapping
      prefix: /quote/
      service: quote
      ---
      apiVersion: getambassador.io/v2
      kind: Mapping
      name: quote-admin
      host: admin.example.com
      prefix: /admin/
      service: quote:9000
spec:
  ports: [{port: 80}]
",
    );
    let resources = convert::from_annotation(&service).unwrap();
    let documents: Vec<&Value> = resources.iter().map(|c| &c.document).collect();
    assert_eq!(
        documents,
        [
            &json!({
                "apiVersion": "getambassador.io/v3alpha1",
                "kind": "Mapping",
                "metadata": {"name": "quote-mapping", "namespace": "shop"},
                "spec": {"prefix": "/quote/", "service": "quote", "hostname": "*"},
            }),
            &json!({
                "apiVersion": "getambassador.io/v3alpha1",
                "kind": "Mapping",
                "metadata": {"name": "quote-admin", "namespace": "shop"},
                "spec": {"prefix": "/admin/", "service": "quote:9000", "hostname": "admin.example.com"},
            }),
        ]
    );
    assert!(
        resources[0]
            .changes
            .iter()
            .any(|c| c == "name: quote_mapping → metadata.name quote-mapping"),
        "{:?}",
        resources[0].changes
    );
    for r in &resources {
        loads(r);
    }
}

#[test]
fn the_loader_reads_a_v2_document_through_the_conversion_with_a_warning() {
    let loaded = load_str(
        "old.yaml",
        "apiVersion: getambassador.io/v2
kind: Mapping
metadata: {name: quote, namespace: default}
spec: {prefix: /quote/, service: quote, host: quote.example.com}
",
    )
    .unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    let [Resource::Mapping(m)] = loaded.resources.as_slice() else {
        panic!("{:#?}", loaded.resources);
    };
    assert_eq!(m.spec.hostname.as_deref(), Some("quote.example.com"));
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "old.yaml: document 1 (Mapping default/quote): getambassador.io/v2 is deprecated; read \
          as getambassador.io/v3alpha1 (`legate-agent convert` rewrites it): spec.host: \
          quote.example.com → spec.hostname"
        ]
    );
}

#[test]
fn a_comma_separated_cors_origins_becomes_a_list_on_a_mapping_and_the_module() {
    // v2's OriginList (pkg/api/getambassador.io/v2/crd_mapping.go) read a string as
    // `strings.Split(s, ",")`; v3alpha1 takes only the list. From Emissary's own conversion
    // testdata (pkg/api/getambassador.io/v2/testdata/mappings.yaml, `cors-origins-string`).
    let mapping = converted(
        "apiVersion: getambassador.io/v2
kind: Mapping
metadata: {name: cors-origins-string, namespace: ambassador}
spec:
  prefix: /cors/
  service: cors
  cors: {origins: 'ffs,ffs2', methods: [GET]}
",
    );
    assert_eq!(
        mapping.document["spec"]["cors"],
        json!({"origins": ["ffs", "ffs2"], "methods": ["GET"]})
    );
    assert!(
        mapping
            .changes
            .contains(&"spec.cors.origins: \"ffs,ffs2\" → a list of 2".to_owned()),
        "{:?}",
        mapping.changes
    );
    loads(&mapping);

    let module = converted(
        "apiVersion: getambassador.io/v2
kind: Module
metadata: {name: ambassador, namespace: ambassador}
spec:
  config:
    cors: {origins: 'https://a.example'}
",
    );
    assert_eq!(
        module.document["spec"]["config"]["cors"]["origins"],
        json!(["https://a.example"])
    );
    loads(&module);
}

/// A v2 LogService has v3alpha1's shape: only its `apiVersion` changes, and it loads.
#[test]
fn a_v2_log_service_changes_only_its_api_version() {
    let spec = json!({"service": "als:3000", "driver": "http", "driver_config":
        {"additional_log_headers": [{"header_name": "x-a", "during_trailer": false}]},
        "flush_interval_time": 5, "flush_interval_byte_size": 1024, "grpc": true});
    let c = converted(&format!(
        "apiVersion: getambassador.io/v2
kind: LogService
metadata: {{name: als, namespace: ambassador}}
spec: {spec}
"
    ));
    assert_eq!(c.document["spec"], spec);
    assert_eq!(
        c.changes,
        ["apiVersion: getambassador.io/v2 → getambassador.io/v3alpha1"]
    );
    loads(&c);
}

#[test]
fn a_v2_resolver_keeps_its_kind_and_fields() {
    for (kind, spec) in [
        ("KubernetesEndpointResolver", json!({})),
        ("KubernetesServiceResolver", json!({})),
        (
            "ConsulResolver",
            json!({"address": "consul-server.default.svc.cluster.local:8500", "datacenter": "dc1"}),
        ),
    ] {
        let c = converted(&format!(
            "apiVersion: getambassador.io/v2
kind: {kind}
metadata: {{name: resolver, namespace: ambassador}}
spec: {spec}
"
        ));
        assert_eq!(c.document["spec"], spec, "{kind}");
        assert_eq!(loads(&c).kind(), kind);
    }
}
