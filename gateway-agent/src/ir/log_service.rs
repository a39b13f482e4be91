//! LogServices: gRPC access-log services (`envoy.service.accesslog.v3.AccessLogService`) Envoy
//! reports every request (driver `http`, Envoy's `http_grpc` logger) or every request and
//! connection (driver `tcp`, `tcp_grpc`) to, beside the Module's file access log
//! ([`super::access_log`]). Emissary's code: `ir/irlogservice.py` (fields, defaults and checks)
//! and `envoy/v3/v3listener.py` `access_log` (the loggers on every HTTP connection manager).
//!
//! Each LogService the gateway serves is one more logger, in the order of their namespace and
//! name, on every HTTP listener; the `tcp` ones also on every TCPMapping listener. Its service
//! is resolved as a Mapping's `service` ([`super::external_service`]: a Kubernetes Service over
//! EDS, else DNS; `https://` for TLS; `stats_name`), always over HTTP/2.
//!
//! A LogService whose settings cannot be used (v2, `grpc: false`, a header name Envoy would
//! refuse, headers with driver `tcp`, an unusable `service`) is refused naming the field and
//! left out: losing a log stream never affects traffic. One whose service is down only loses
//! its entries (Envoy buffers, then drops them).
//!
//! Deliberate differences from Emissary: several LogServices all log (Emissary names each
//! `logservice` and keeps the first, "Duplicate LogService"), each under its own `log_name`
//! (`namespace/name`); an absent `protocol_version` means v3 (Emissary refuses it as v2); an
//! absent `grpc` means true (Emissary then calls a gRPC service over HTTP/1.1, which fails).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use legate_crds::{
    LogService, ObjectRef, Resource,
    auth_service::ProtocolVersion,
    log_service::{AdditionalLogHeader, LogDriver},
};

use super::{
    Reason, Rejection,
    external_service::{self, Context, Target},
    service::Cluster,
};

/// Envoy's (and Emissary's) `buffer_flush_interval` default.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Envoy's (and Emissary's) `buffer_size_bytes` default.
pub const DEFAULT_BUFFER_BYTES: u32 = 16384;

/// One gRPC access logger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcLog {
    /// `namespace/name`: the `log_name` the service receives, telling loggers apart.
    pub log_name: String,
    pub driver: Driver,
    /// The cluster the service is reached through.
    pub cluster: String,
    pub flush_interval: Duration,
    pub buffer_bytes: u32,
    /// Driver `http`: the extra headers logged from requests, responses and trailers.
    pub request_headers: Vec<String>,
    pub response_headers: Vec<String>,
    pub trailer_headers: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Driver {
    Http,
    Tcp,
}

/// The loggers of every listener: all of them on HTTP listeners, the `tcp` ones on TCP
/// listeners (an HTTP entry has nothing to say about a connection).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcLogs {
    pub http: Arc<[Arc<GrpcLog>]>,
    pub tcp: Arc<[Arc<GrpcLog>]>,
}

/// Builds every LogService of `resources` (those this gateway serves) into its logger and
/// cluster; those that cannot be used are refused, naming the field.
pub(super) fn build(
    resources: &[&Resource],
    cx: &Context<'_, '_>,
    clusters: &mut BTreeMap<String, Arc<Cluster>>,
    rejections: &mut Vec<Rejection>,
    unreachable: &mut Vec<Rejection>,
) -> (GrpcLogs, Vec<(ObjectRef, String)>) {
    let mut services: Vec<(ObjectRef, &LogService)> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::LogService(l) => Some((r.object_ref(), l)),
            _ => None,
        })
        .collect();
    // The order of the loggers, the same on every replica and after every restart.
    services.sort_by(|a, b| a.0.cmp(&b.0));
    let mut all = Vec::new();
    let mut used = Vec::new();
    for (object, service) in services {
        let namespace = object
            .namespace
            .clone()
            .unwrap_or_else(|| cx.settings.namespace.clone());
        match compile(service, &namespace, cx) {
            Ok((log, cluster, note)) => {
                if let Some(note) = note {
                    unreachable.push(Rejection::new(object.clone(), note.reason, note.message));
                }
                used.push((object, cluster.name.clone()));
                clusters
                    .entry(cluster.name.clone())
                    .or_insert_with(|| Arc::new(cluster));
                all.push(Arc::new(log));
            }
            Err((reason, problems)) => rejections.push(Rejection::new(
                object,
                reason,
                format!(
                    "{}; this LogService is not used (traffic is not affected)",
                    problems.join("; ")
                ),
            )),
        }
    }
    let tcp = all
        .iter()
        .filter(|l| l.driver == Driver::Tcp)
        .cloned()
        .collect();
    let logs = GrpcLogs {
        http: all.into(),
        tcp,
    };
    (logs, used)
}

type Compiled = (GrpcLog, Cluster, Option<super::Refusal>);

/// One LogService's logger and cluster, or every problem found (each naming its field).
fn compile(
    service: &LogService,
    namespace: &str,
    cx: &Context<'_, '_>,
) -> Result<Compiled, (Reason, Vec<String>)> {
    let spec = &service.spec;
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let mut problems = Vec::new();
    // `irlogservice.py` refuses v2; Envoy speaks only v3 (absent means v3 here).
    if spec.protocol_version == Some(ProtocolVersion::V2) {
        problems
            .push("protocol_version: v2 is not supported; use v3 (Envoy speaks only v3)".into());
    }
    if spec.grpc == Some(false) {
        problems.push(
            "grpc: false: a LogService is a gRPC service (envoy.service.accesslog.v3), called \
             over HTTP/2; set grpc: true or leave it out"
                .into(),
        );
    }
    // Emissary: absent means tcp (`if al.driver == "http" ... else` tcp).
    let driver = match spec.driver {
        Some(LogDriver::Http) => Driver::Http,
        Some(LogDriver::Tcp) | None => Driver::Tcp,
    };
    let written: &[AdditionalLogHeader] = spec
        .driver_config
        .as_ref()
        .and_then(|c| c.additional_log_headers.as_deref())
        .unwrap_or_default();
    let mut headers = Headers::default();
    if driver == Driver::Tcp && !written.is_empty() {
        problems.push(
            "driver_config.additional_log_headers: only driver http logs headers (driver is \
             tcp, the default)"
                .into(),
        );
    }
    for (i, h) in written.iter().enumerate() {
        match header_name(&h.header_name) {
            Ok(()) => headers.add(h),
            Err(why) => problems.push(format!(
                "driver_config.additional_log_headers[{i}].header_name {}: {why}",
                super::envoy_rules::shown(&h.header_name)
            )),
        }
    }
    let mut reason = Reason::Invalid;
    let target = Target {
        field: "service",
        text: &spec.service,
        namespace,
        http2: true,
        tls: None,
        stats_name: &spec.stats_name,
        circuit_breakers: None,
    };
    let found = external_service::cluster_or_problem(&target, cx, &mut reason, &mut problems);
    let Some((cluster, note)) = found.filter(|_| problems.is_empty()) else {
        return Err((reason, problems));
    };
    let log = GrpcLog {
        log_name: [namespace, "/", name].concat(),
        driver,
        cluster: cluster.name.clone(),
        flush_interval: spec
            .flush_interval_time
            .map_or(DEFAULT_FLUSH_INTERVAL, |s| {
                Duration::from_secs(u64::try_from(s.get()).unwrap_or(1))
            }),
        buffer_bytes: spec
            .flush_interval_byte_size
            .and_then(|b| u32::try_from(b.get()).ok())
            .unwrap_or(DEFAULT_BUFFER_BYTES),
        request_headers: headers.request,
        response_headers: headers.response,
        trailer_headers: headers.trailer,
    };
    Ok((log, cluster, note))
}

/// The extra headers by where they are logged from, in the order written, each once.
#[derive(Default)]
struct Headers {
    request: Vec<String>,
    response: Vec<String>,
    trailer: Vec<String>,
}

impl Headers {
    /// Emissary's defaults: each `during_*` absent is true.
    fn add(&mut self, h: &AdditionalLogHeader) {
        // Envoy matches header names without case.
        let name = h.header_name.to_ascii_lowercase();
        for (during, list) in [
            (h.during_request, &mut self.request),
            (h.during_response, &mut self.response),
            (h.during_trailer, &mut self.trailer),
        ] {
            if during != Some(false) && !list.contains(&name) {
                list.push(name.clone());
            }
        }
    }
}

/// An HTTP header name (RFC 9110 token), or an HTTP/2 pseudo-header (`:authority`).
fn header_name(name: &str) -> Result<(), &'static str> {
    let token = name.strip_prefix(':').unwrap_or(name);
    if token.is_empty() {
        return Err("every additional log header needs a name");
    }
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !token.bytes().all(tchar) {
        return Err("not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use legate_crds::loader::load_str;

    use super::*;
    use crate::ir::{
        Settings, defaults::MappingDefaults, endpoints::ServiceIndex, resolver::Resolvers,
    };

    /// Builds the LogServices of `yaml` as the IR does.
    fn built(yaml: &str) -> (GrpcLogs, BTreeMap<String, Arc<Cluster>>, Vec<Rejection>) {
        let loaded = load_str("test.yaml", yaml).unwrap();
        assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
        let resources: Vec<&Resource> = loaded.resources.iter().collect();
        let settings = Settings::default();
        let resolvers = Resolvers::new(&resources, None, &settings.namespace);
        let arcs: Vec<Arc<Resource>> = loaded.resources.iter().cloned().map(Arc::new).collect();
        let refs: Vec<&Arc<Resource>> = arcs.iter().collect();
        let services = ServiceIndex::new(&refs, &settings.namespace);
        let defaults = MappingDefaults::default();
        let cx = Context {
            settings: &settings,
            resolvers: &resolvers,
            services: &services,
            defaults: &defaults,
        };
        let mut clusters = BTreeMap::new();
        let mut rejections = Vec::new();
        let mut unreachable = Vec::new();
        let (logs, _) = build(
            &resources,
            &cx,
            &mut clusters,
            &mut rejections,
            &mut unreachable,
        );
        (logs, clusters, rejections)
    }

    fn doc(name: &str, spec: &str) -> String {
        format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: LogService\n\
             metadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
        )
    }

    #[test]
    fn an_http_log_service_logs_its_headers_where_asked_with_emissarys_defaults() {
        let (logs, clusters, rejections) = built(&doc(
            "als",
            "{service: \"als:3000\", driver: http, grpc: true, protocol_version: v3, \
             driver_config: {additional_log_headers: [{header_name: X-Team}, \
             {header_name: x-req, during_response: false, during_trailer: false}, \
             {header_name: grpc-status, during_request: false, during_response: false}]}}",
        ));
        assert_eq!(rejections, vec![]);
        let [log] = &*logs.http else {
            panic!("one logger: {logs:?}")
        };
        assert!(logs.tcp.is_empty());
        assert_eq!(
            **log,
            GrpcLog {
                log_name: "default/als".into(),
                driver: Driver::Http,
                cluster: log.cluster.clone(),
                flush_interval: Duration::from_secs(1),
                buffer_bytes: 16384,
                request_headers: vec!["x-team".into(), "x-req".into()],
                response_headers: vec!["x-team".into()],
                trailer_headers: vec!["x-team".into(), "grpc-status".into()],
            }
        );
        let cluster = &clusters[&log.cluster];
        assert!(cluster.http2, "{cluster:?}");
        assert_eq!((cluster.host.as_str(), cluster.port), ("als", 3000));
    }

    #[test]
    fn several_log_in_name_order_and_tcp_ones_log_connections_too() {
        let yaml = [
            doc(
                "zeta",
                "{service: \"z:1\", driver: tcp, flush_interval_time: 5, flush_interval_byte_size: 0}",
            ),
            doc("alpha", "{service: \"a:1\", driver: http}"),
            // No driver: Emissary's tcp.
            doc("mid", "{service: \"m:1\"}"),
        ]
        .concat();
        let (logs, _, rejections) = built(&yaml);
        assert_eq!(rejections, vec![]);
        let names =
            |l: &[Arc<GrpcLog>]| -> Vec<String> { l.iter().map(|l| l.log_name.clone()).collect() };
        assert_eq!(
            names(&logs.http),
            ["default/alpha", "default/mid", "default/zeta"]
        );
        assert_eq!(names(&logs.tcp), ["default/mid", "default/zeta"]);
        let zeta = &logs.tcp[1];
        assert_eq!(
            (zeta.flush_interval, zeta.buffer_bytes),
            (Duration::from_secs(5), 0)
        );
    }

    #[test]
    fn what_cannot_be_used_is_refused_naming_each_field_and_the_others_still_log() {
        let yaml = [
            doc(
                "bad",
                "{service: \"als:3000\", driver: http, grpc: false, protocol_version: v2, \
                 driver_config: {additional_log_headers: [{header_name: \"\"}, \
                 {header_name: \"x a\"}, {header_name: x-ok}]}}",
            ),
            doc(
                "tcp-headers",
                "{service: \"als:3000\", driver_config: {additional_log_headers: [{header_name: x-a}]}}",
            ),
            doc("bad-service", "{service: \"http://\", driver: http}"),
            doc("good", "{service: \"als:3000\", driver: http}"),
        ]
        .concat();
        let (logs, _, rejections) = built(&yaml);
        assert_eq!(logs.http.len(), 1);
        assert_eq!(logs.http[0].log_name, "default/good");
        let messages: BTreeMap<&str, &str> = rejections
            .iter()
            .map(|r| (r.object.name.as_str(), r.message.as_str()))
            .collect();
        assert_eq!(messages.len(), 3, "{rejections:#?}");
        for expected in [
            "protocol_version: v2 is not supported",
            "grpc: false: a LogService is a gRPC service",
            "driver_config.additional_log_headers[0].header_name \"\": every additional log header needs a name",
            "driver_config.additional_log_headers[1].header_name \"x a\": not an HTTP header name",
            "this LogService is not used (traffic is not affected)",
        ] {
            assert!(messages["bad"].contains(expected), "{}", messages["bad"]);
        }
        assert!(
            messages["tcp-headers"]
                .starts_with("driver_config.additional_log_headers: only driver http"),
            "{}",
            messages["tcp-headers"]
        );
        assert!(
            messages["bad-service"].starts_with("service: "),
            "{}",
            messages["bad-service"]
        );
        assert!(rejections.iter().all(|r| r.reason == Reason::Invalid));
    }

    /// Through the whole build: a LogService naming a Kubernetes Service the gateway watches is
    /// served over EDS, noted `ServiceNotFound` while it is missing, and its logger is on every
    /// HTTP listener, calling that cluster.
    #[test]
    fn a_missing_kubernetes_service_is_noted_and_its_logger_still_installed() {
        let yaml = [
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Listener\n\
             metadata: {name: http, namespace: default}\n\
             spec: {port: 8080, protocol: HTTP, securityModel: XFP, \
             hostBinding: {namespace: {from: ALL}}}\n"
                .to_owned(),
            doc("als", "{service: \"als:3000\", driver: http}"),
        ]
        .concat();
        let loaded = load_str("test.yaml", &yaml).unwrap();
        let settings = Settings {
            service_namespaces: Some(crate::ir::ServiceNamespaces::All),
            ..Settings::default()
        };
        let ir = crate::ir::build(&loaded.resources, &settings);
        assert_eq!(ir.rejections, vec![]);
        let notes: Vec<(&str, Reason)> = ir
            .unreachable
            .iter()
            .filter(|r| r.object.kind == "LogService")
            .map(|r| (r.object.name.as_str(), r.reason))
            .collect();
        assert_eq!(notes, [("als", Reason::ServiceNotFound)]);
        let [listener] = ir.listeners.as_slice() else {
            panic!("one listener: {:?}", ir.listeners)
        };
        let [log] = &*listener.log_services else {
            panic!("one logger: {:?}", listener.log_services)
        };
        let cluster = &ir.clusters[&log.cluster];
        assert!(cluster.service.is_some() && cluster.http2, "{cluster:?}");
    }

    #[test]
    fn header_names_are_tokens_or_pseudo_headers() {
        for ok in ["x-a", "X_B", ":authority", "grpc-status"] {
            assert_eq!(header_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", ":", "x a", "x:y", "a\nb", "é"] {
            assert!(header_name(bad).is_err(), "{bad:?}");
        }
    }
}
