//! Tracing, as Emissary does it: the gateway's one `TracingService` becomes Envoy's tracer on the
//! HTTP connection manager of every HTTP listener (its sampling and custom tags), each request a
//! server span and its upstream call a child span, reported to the collector named by `service`
//! through a cluster of its own ([`super::external_service`]).
//!
//! Emissary's code: `python/ambassador/src/ambassador/ir/irtracing.py` (the fields, the zipkin
//! defaults, the refusal of lightstep and of Zipkin's v1 API), `envoy/v3/v3tracing.py` (the
//! drivers' typed configs, `service_name` defaulting to `ambassador`), `envoy/v3/v3listener.py`
//! (sampling and custom tags on the connection manager) and `envoy/v3/v3httpfilter.py`
//! (`start_child_span` on the router).
//!
//! Deliberate differences: of several TracingServices one is used (see
//! [`super::external_service::ranked`]) and the others are refused with `Conflict`, where
//! Emissary then traces nothing; `tag_headers` becomes the `request_header` custom tags
//! Emissary's own v2 conversion makes of it (Emissary's v3 code reads it and does nothing); a
//! TracingService that cannot be used is refused naming the field and nothing is traced, the
//! routes served as without it.

use std::{collections::BTreeMap, sync::Arc};

use legate_crds::{
    Module, ObjectRef, Resource, TracingService,
    tracing_service::{CollectorEndpointVersion, TracingCustomTag, TracingDriver},
};

use super::{
    Reason, Rejection,
    access_log::{AccessLog, Format},
    envoy_rules,
    external_service::{self, Context, Target},
    service::Cluster,
};

/// Zipkin's default `collector_endpoint` (`irtracing.py`): its v2 API.
pub const ZIPKIN_ENDPOINT: &str = "/api/v2/spans";
/// The service spans are reported for when `config.service_name` is not set (`v3tracing.py`).
pub const DEFAULT_SERVICE_NAME: &str = "ambassador";

/// Envoy's tracer, the same on every HTTP listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracing {
    pub provider: Provider,
    pub sampling: Sampling,
    pub custom_tags: Vec<CustomTag>,
}

/// The driver and its settings; `cluster` is the collector's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provider {
    Zipkin {
        cluster: String,
        endpoint: String,
        /// Protobuf rather than JSON (`HTTP_PROTO`).
        proto: bool,
        /// The `Host` of the requests to the collector; `None`: the cluster's name.
        hostname: Option<String>,
        trace_id_128bit: bool,
        /// `None`: Envoy's default (shared).
        shared_span_context: Option<bool>,
    },
    /// OTLP over gRPC.
    OpenTelemetry {
        cluster: String,
        service_name: String,
    },
    Datadog {
        cluster: String,
        service_name: String,
        hostname: Option<String>,
    },
}

impl Provider {
    pub fn cluster(&self) -> &str {
        match self {
            Self::Zipkin { cluster, .. }
            | Self::OpenTelemetry { cluster, .. }
            | Self::Datadog { cluster, .. } => cluster,
        }
    }
}

/// Envoy's sampling percentages; `None`: Envoy's default, 100.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sampling {
    pub client: Option<u8>,
    pub random: Option<u8>,
    pub overall: Option<u8>,
}

/// A tag added to every span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomTag {
    pub tag: String,
    pub value: TagValue,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagValue {
    Literal(String),
    /// An environment variable of Envoy's process, else `default`.
    Environment {
        name: String,
        default: String,
    },
    /// A request header, else `default`.
    RequestHeader {
        name: String,
        default: String,
    },
}

/// The TracingService used, and its tracer.
#[derive(Debug)]
pub struct Chosen {
    pub object: ObjectRef,
    pub tracing: Arc<Tracing>,
}

/// Chooses the gateway's TracingService among `resources` (those this gateway serves), refuses
/// the others, and builds its tracer and its collector's cluster (added to `clusters`). `None`
/// when there is none, or the one chosen cannot be used (it is then refused, naming the field).
pub(super) fn build(
    resources: &[&Resource],
    cx: &Context<'_, '_>,
    clusters: &mut BTreeMap<String, Arc<Cluster>>,
    rejections: &mut Vec<Rejection>,
    unreachable: &mut Vec<Rejection>,
) -> Option<Chosen> {
    let winner = external_service::the_one(
        resources,
        |r| matches!(r, Resource::TracingService(_)),
        &cx.settings.namespace,
        "the gateway's TracingService",
        rejections,
    )?;
    let Resource::TracingService(service) = winner else {
        // Only TracingServices were ranked.
        return None;
    };
    let object = winner.object_ref();
    match compile(service, &object, cx) {
        Ok((tracing, cluster, note)) => {
            // Its Service is missing or has no endpoint: spans are dropped until it has.
            if let Some(note) = note {
                unreachable.push(Rejection::new(object.clone(), note.reason, note.message));
            }
            clusters
                .entry(cluster.name.clone())
                .or_insert_with(|| Arc::new(cluster));
            Some(Chosen {
                object,
                tracing: Arc::new(tracing),
            })
        }
        Err((reason, problems)) => {
            rejections.push(Rejection::new(
                object,
                reason,
                format!("{}; requests are not traced", problems.join("; ")),
            ));
            None
        }
    }
}

type Compiled = (Tracing, Cluster, Option<super::Refusal>);

/// The tracer and the collector's cluster, or every problem found (each naming its field) and
/// the reason of the first.
fn compile(
    service: &TracingService,
    object: &ObjectRef,
    cx: &Context<'_, '_>,
) -> Result<Compiled, (Reason, Vec<String>)> {
    let spec = &service.spec;
    let namespace = object
        .namespace
        .as_deref()
        .unwrap_or(&cx.settings.namespace);
    let config = spec.config.clone().unwrap_or_default();
    let mut problems: Vec<(Reason, String)> = Vec::new();
    let mut invalid = |message: String| problems.push((Reason::Invalid, message));
    // A setting of another driver is not checked: it is named as not applied (ir/unsupported.rs).
    let zipkin = spec.driver == TracingDriver::Zipkin;
    let zipkin_endpoint = match config.collector_endpoint.as_deref() {
        // `irtracing.py`: `if not driver_config.get("collector_endpoint")`.
        None | Some("") => ZIPKIN_ENDPOINT.to_owned(),
        Some(path) => {
            if let (true, Err(e)) = (zipkin, collector_endpoint(path)) {
                invalid(e);
            }
            path.to_owned()
        }
    };
    let hostname = match config.collector_hostname.as_deref() {
        None | Some("") => None,
        Some(host) => {
            let used = zipkin || spec.driver == TracingDriver::Datadog;
            if let (true, Err(e)) = (
                used,
                envoy_rules::header_value("config.collector_hostname", host),
            ) {
                invalid(e.into());
            }
            Some(host.to_owned())
        }
    };
    let custom_tags = custom_tags(spec.custom_tags.as_deref(), spec.tag_headers.as_deref())
        .unwrap_or_else(|e| {
            invalid(e);
            Vec::new()
        });
    let service_name = config
        .service_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());

    let http2 = match spec.driver {
        TracingDriver::Opentelemetry => true,
        TracingDriver::Zipkin | TracingDriver::Datadog => false,
        TracingDriver::Lightstep => {
            problems.push((
                Reason::NotSupported,
                "driver: lightstep was removed from Envoy (and from Emissary 3.4); Lightstep \
                 takes OpenTelemetry: use driver: opentelemetry"
                    .to_owned(),
            ));
            false
        }
    };
    let zipkin_proto = match config.collector_endpoint_version {
        None | Some(CollectorEndpointVersion::HttpJson) => false,
        Some(CollectorEndpointVersion::HttpProto) => true,
        Some(CollectorEndpointVersion::HttpJsonV1) => {
            if zipkin {
                problems.push((
                    Reason::Invalid,
                    "config.collector_endpoint_version: HTTP_JSON_V1 (Zipkin's v1 API) is no \
                     longer spoken by Envoy; use HTTP_JSON or HTTP_PROTO"
                        .to_owned(),
                ));
            }
            false
        }
    };
    let target = Target {
        field: "service",
        text: &spec.service,
        namespace,
        http2,
        tls: None,
        stats_name: &spec.stats_name,
        circuit_breakers: None,
    };
    let cluster = external_service::cluster(&target, cx)
        .map_err(|refusal| problems.push((refusal.reason, refusal.message)))
        .ok();
    let (Some((cluster, note)), true) = (cluster, problems.is_empty()) else {
        let reason = problems.first().map_or(Reason::Invalid, |(r, _)| *r);
        return Err((reason, problems.into_iter().map(|(_, m)| m).collect()));
    };
    let name = cluster.name.clone();
    let provider = match spec.driver {
        TracingDriver::Zipkin => Provider::Zipkin {
            cluster: name,
            endpoint: zipkin_endpoint,
            proto: zipkin_proto,
            hostname,
            // `irtracing.py`: "Make 128-bit traceid the default".
            trace_id_128bit: config.trace_id_128bit.unwrap_or(true),
            shared_span_context: config.shared_span_context,
        },
        TracingDriver::Opentelemetry => Provider::OpenTelemetry {
            cluster: name,
            service_name,
        },
        // Lightstep was refused above.
        TracingDriver::Datadog | TracingDriver::Lightstep => Provider::Datadog {
            cluster: name,
            service_name,
            hostname,
        },
    };
    let sampling = spec.sampling.as_ref().map_or_else(Sampling::default, |s| {
        // The CRD bounds each to 0..=100.
        let percent =
            |p: Option<legate_crds::fields::Percent>| p.and_then(|p| u8::try_from(p.get()).ok());
        Sampling {
            client: percent(s.client),
            random: percent(s.random),
            overall: percent(s.overall),
        }
    });
    let tracing = Tracing {
        provider,
        sampling,
        custom_tags,
    };
    Ok((tracing, cluster, note))
}

/// With the datadog driver, Emissary's default JSON access-log fields gain the ids Datadog joins
/// logs to traces with (`v3listener.py` `json_helper`); a format the Module writes is its own.
pub(super) fn datadog_log_ids(tracing: &Tracing, module: Option<&Module>, log: &mut AccessLog) {
    let written = module.is_some_and(|m| m.spec.config.envoy_log_format.is_some());
    if written || !matches!(tracing.provider, Provider::Datadog { .. }) {
        return;
    }
    if let Format::Json(fields) | Format::TypedJson(fields) = &mut log.format {
        fields.insert("dd.trace_id".into(), "%REQ(X-DATADOG-TRACE-ID)%".into());
        fields.insert("dd.span_id".into(), "%REQ(X-DATADOG-PARENT-ID)%".into());
    }
}

/// Zipkin's `collector_endpoint`: the path spans are posted to, as it goes on the request line.
fn collector_endpoint(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "config.collector_endpoint: {} is not a path (it starts with / and has no spaces \
             or control characters)",
            envoy_rules::shown(path)
        ));
    }
    Ok(())
}

/// `custom_tags`, or when there are none, the deprecated `tag_headers` as Emissary's conversion
/// turns them into custom tags (each header tagged under its own name).
fn custom_tags(
    tags: Option<&[TracingCustomTag]>,
    tag_headers: Option<&[String]>,
) -> Result<Vec<CustomTag>, String> {
    let tags = tags.unwrap_or_default();
    if tags.is_empty() {
        return tag_headers
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                envoy_rules::matcher_name(&format!("tag_headers[{i}]"), h)?;
                Ok(CustomTag {
                    tag: h.clone(),
                    value: TagValue::RequestHeader {
                        name: h.clone(),
                        default: String::new(),
                    },
                })
            })
            .collect::<Result<_, envoy_rules::Violation>>()
            .map_err(String::from);
    }
    tags.iter()
        .enumerate()
        .map(|(i, t)| custom_tag(&format!("custom_tags[{i}]"), t))
        .collect()
}

fn custom_tag(field: &str, t: &TracingCustomTag) -> Result<CustomTag, String> {
    envoy_rules::non_empty_header_value(&format!("{field}.tag"), &t.tag)?;
    let value = match (&t.literal, &t.environment, &t.request_header) {
        (Some(l), None, None) => TagValue::Literal(l.value.clone()),
        (None, Some(e), None) => {
            envoy_rules::non_empty_header_value(&format!("{field}.environment.name"), &e.name)?;
            TagValue::Environment {
                name: e.name.clone(),
                default: e.default_value.clone().unwrap_or_default(),
            }
        }
        (None, None, Some(h)) => {
            envoy_rules::matcher_name(&format!("{field}.request_header.name"), &h.name)?;
            TagValue::RequestHeader {
                name: h.name.clone(),
                default: h.default_value.clone().unwrap_or_default(),
            }
        }
        _ => {
            return Err(format!(
                "{field}: set exactly one of literal, environment and request_header"
            ));
        }
    };
    Ok(CustomTag {
        tag: t.tag.clone(),
        value,
    })
}

#[cfg(test)]
mod tests;
