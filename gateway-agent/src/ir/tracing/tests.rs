//! Which TracingService traces the gateway, what its tracer is, and what one that cannot be
//! used says: resources in, IR out.

use legate_crds::loader::load_str;
use pretty_assertions::assert_eq;

use super::{CustomTag, Provider, Sampling, TagValue, Tracing};
use crate::ir::{self, Ir, Reason, Settings};

const LISTENERS: &str = "---
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http, namespace: default}
spec: {port: 8080, protocol: HTTP, securityModel: INSECURE, hostBinding: {namespace: {from: ALL}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: https, namespace: default}
spec: {port: 8443, protocol: HTTPS, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: app, namespace: default}
spec: {hostname: \"*\", prefix: /app/, service: app}
";

fn tracing_service(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: TracingService\n\
         metadata: {{name: {name}, namespace: {namespace}}}\nspec: {{{spec}}}\n"
    )
}

fn build(docs: &[String]) -> Ir {
    let yaml = [LISTENERS.to_owned()]
        .into_iter()
        .chain(docs.iter().cloned())
        .collect::<String>();
    let loaded = load_str("test.yaml", &yaml).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    ir::build(&loaded.resources, &Settings::default())
}

/// The tracer of every listener, which must be the same on all of them.
fn tracer(ir: &Ir) -> Option<Tracing> {
    let first = ir.listeners[0].tracing.clone();
    assert!(
        ir.listeners.iter().all(|l| l.tracing == first),
        "one tracer"
    );
    first.map(|t| (*t).clone())
}

/// The rejections of TracingServices, as `(name, reason, message)`.
fn refused(ir: &Ir) -> Vec<(String, Reason, String)> {
    ir.rejections
        .iter()
        .filter(|r| r.object.kind == "TracingService")
        .map(|r| (r.object.name.clone(), r.reason, r.message.clone()))
        .collect()
}

/// A refused TracingService leaves the Mapping served, untraced.
#[track_caller]
fn untraced_but_served(ir: &Ir) {
    assert_eq!(tracer(ir), None);
    assert!(
        ir.rejections
            .iter()
            .all(|r| r.object.kind == "TracingService")
    );
    assert_eq!(ir.listeners[0].virtual_hosts[0].routes.len(), 1);
}

#[test]
fn a_zipkin_tracing_service_takes_emissarys_defaults() {
    let ir = build(&[tracing_service(
        "default",
        "zipkin",
        "driver: zipkin, service: zipkin:9411",
    )]);
    assert_eq!(refused(&ir), []);
    let t = tracer(&ir).expect("a tracer");
    let cluster = t.provider.cluster().to_owned();
    assert_eq!(
        t,
        Tracing {
            provider: Provider::Zipkin {
                cluster: cluster.clone(),
                endpoint: "/api/v2/spans".into(),
                proto: false,
                hostname: None,
                trace_id_128bit: true,
                shared_span_context: None,
            },
            sampling: Sampling::default(),
            custom_tags: vec![],
        }
    );
    let c = &ir.clusters[&cluster];
    assert_eq!((c.host.as_str(), c.port, c.http2), ("zipkin", 9411, false));
}

#[test]
fn opentelemetry_calls_its_collector_over_http2_and_names_the_service() {
    let ir = build(&[tracing_service(
        "default",
        "otel",
        "driver: opentelemetry, service: otel-collector:4317, \
         sampling: {client: 50, random: 10, overall: 100}, stats_name: otel",
    )]);
    let t = tracer(&ir).expect("a tracer");
    let Provider::OpenTelemetry {
        cluster,
        service_name,
    } = &t.provider
    else {
        panic!("{t:?}");
    };
    assert_eq!(service_name, "ambassador");
    assert!(ir.clusters[cluster].http2);
    assert_eq!(
        t.sampling,
        Sampling {
            client: Some(50),
            random: Some(10),
            overall: Some(100)
        }
    );
}

#[test]
fn custom_tags_take_each_source_and_tag_headers_stand_in_when_there_are_none() {
    let ir = build(&[tracing_service(
        "default",
        "zipkin",
        "driver: zipkin, service: zipkin:9411, custom_tags: [\
         {tag: team, literal: {value: shop}}, \
         {tag: pod, environment: {name: HOSTNAME}}, \
         {tag: user, request_header: {name: x-user, default_value: anonymous}}]",
    )]);
    assert_eq!(
        tracer(&ir).expect("a tracer").custom_tags,
        vec![
            CustomTag {
                tag: "team".into(),
                value: TagValue::Literal("shop".into())
            },
            CustomTag {
                tag: "pod".into(),
                value: TagValue::Environment {
                    name: "HOSTNAME".into(),
                    default: String::new()
                }
            },
            CustomTag {
                tag: "user".into(),
                value: TagValue::RequestHeader {
                    name: "x-user".into(),
                    default: "anonymous".into()
                }
            },
        ]
    );
    // Emissary's v2 conversion: each header tagged under its own name.
    let ir = build(&[tracing_service(
        "default",
        "zipkin",
        "driver: zipkin, service: zipkin:9411, tag_headers: [x-tenant]",
    )]);
    assert_eq!(
        tracer(&ir).expect("a tracer").custom_tags,
        vec![CustomTag {
            tag: "x-tenant".into(),
            value: TagValue::RequestHeader {
                name: "x-tenant".into(),
                default: String::new()
            }
        }]
    );
}

#[test]
fn of_two_tracing_services_the_one_in_the_gateways_namespace_wins() {
    let ir = build(&[
        tracing_service("team-a", "a", "driver: zipkin, service: a:9411"),
        tracing_service("default", "zz", "driver: zipkin, service: b:9411"),
    ]);
    let t = tracer(&ir).expect("a tracer");
    assert_eq!(ir.clusters[t.provider.cluster()].host, "b");
    assert_eq!(
        refused(&ir),
        [(
            "a".into(),
            Reason::Conflict,
            "TracingService default/zz is the gateway's TracingService, and one gateway uses \
             one (the one in the gateway's namespace wins, then the oldest, then by namespace \
             and name): this one is not used"
                .into()
        )]
    );
}

#[test]
fn lightstep_is_refused_because_envoy_removed_it() {
    let ir = build(&[tracing_service(
        "default",
        "ls",
        "driver: lightstep, service: lightstep:443, config: {access_token_file: /t}",
    )]);
    untraced_but_served(&ir);
    assert_eq!(
        refused(&ir),
        [(
            "ls".into(),
            Reason::NotSupported,
            "driver: lightstep was removed from Envoy (and from Emissary 3.4); Lightstep takes \
             OpenTelemetry: use driver: opentelemetry; requests are not traced"
                .into()
        )]
    );
}

#[test]
fn what_envoy_would_refuse_is_refused_naming_the_field_and_routes_keep_serving() {
    for (spec, message) in [
        (
            "config: {collector_endpoint_version: HTTP_JSON_V1}",
            "config.collector_endpoint_version: HTTP_JSON_V1 (Zipkin's v1 API) is no longer \
             spoken by Envoy; use HTTP_JSON or HTTP_PROTO",
        ),
        (
            "config: {collector_endpoint: api/v2/spans}",
            "config.collector_endpoint: \"api/v2/spans\" is not a path (it starts with / and \
             has no spaces or control characters)",
        ),
        (
            "custom_tags: [{tag: t, request_header: {name: \"\"}}]",
            "custom_tags[0].request_header.name: \"\" is empty; Envoy needs a value here",
        ),
        (
            "custom_tags: [{tag: \"\", literal: {value: v}}]",
            "custom_tags[0].tag: \"\" is empty; Envoy needs a value here",
        ),
        (
            "tag_headers: [\"bad\\nheader\"]",
            "tag_headers[0]: \"bad\\nheader\" contains a NUL, CR or LF character, which Envoy \
             refuses here",
        ),
        ("service: \"http://\"", "service: "),
    ] {
        let spec = if spec.starts_with("service") {
            format!("driver: zipkin, {spec}")
        } else {
            format!("driver: zipkin, service: zipkin:9411, {spec}")
        };
        let ir = build(&[tracing_service("default", "bad", &spec)]);
        untraced_but_served(&ir);
        let refusals = refused(&ir);
        assert_eq!(refusals.len(), 1, "{spec}: {refusals:#?}");
        let (_, reason, got) = &refusals[0];
        assert_eq!(*reason, Reason::Invalid, "{spec}");
        assert!(
            got.starts_with(message) && got.ends_with("; requests are not traced"),
            "{spec}: {got}"
        );
    }
}

#[test]
fn a_missing_kubernetes_service_is_noted_and_traced_to_once_it_appears() {
    let service = "---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: default}
spec: {ports: [{name: http, port: 80}]}
"
    .to_owned();
    let yaml = [
        LISTENERS.to_owned(),
        service,
        tracing_service("default", "zipkin", "driver: zipkin, service: zipkin:9411"),
    ]
    .concat();
    let loaded = load_str("test.yaml", &yaml).unwrap();
    let settings = Settings {
        service_namespaces: Some(ir::ServiceNamespaces::All),
        ..Settings::default()
    };
    let ir = ir::build(&loaded.resources, &settings);
    // Traced all the same: spans are dropped until the Service exists.
    assert!(tracer(&ir).is_some());
    let notes: Vec<_> = ir
        .unreachable
        .iter()
        .filter(|r| r.object.kind == "TracingService")
        .map(|r| r.reason)
        .collect();
    assert_eq!(notes, [Reason::ServiceNotFound]);
}

#[test]
fn without_a_tracing_service_nothing_is_traced() {
    let ir = build(&[]);
    assert_eq!(tracer(&ir), None);
}

#[test]
fn with_datadog_emissarys_json_access_log_carries_the_trace_and_span_ids() {
    let module = "---
apiVersion: getambassador.io/v3alpha1
kind: Module
metadata: {name: ambassador, namespace: default}
spec: {config: {envoy_log_type: json}}
"
    .to_owned();
    let fields = |driver: &str| {
        let ir = build(&[
            module.clone(),
            tracing_service(
                "default",
                "t",
                &format!("driver: {driver}, service: agent:8126"),
            ),
        ]);
        let ir::access_log::Format::Json(fields) = &ir.listeners[0].access_log.format else {
            panic!("JSON");
        };
        fields.clone()
    };
    let datadog = fields("datadog");
    assert_eq!(datadog["dd.trace_id"], "%REQ(X-DATADOG-TRACE-ID)%");
    assert_eq!(datadog["dd.span_id"], "%REQ(X-DATADOG-PARENT-ID)%");
    assert!(!fields("zipkin").contains_key("dd.trace_id"));
}

#[test]
fn a_setting_of_another_driver_is_not_checked_only_named() {
    let ir = build(&[tracing_service(
        "default",
        "otel",
        "driver: opentelemetry, service: otel:4317, \
         config: {collector_endpoint: not-a-path, collector_endpoint_version: HTTP_JSON_V1}",
    )]);
    assert_eq!(refused(&ir), []);
    assert!(tracer(&ir).is_some());
}
