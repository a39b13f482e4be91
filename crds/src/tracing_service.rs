//! `TracingService` (`getambassador.io/v3alpha1`): the tracer Envoy reports each request's spans
//! to (Zipkin, OpenTelemetry, Datadog), with Emissary's field names and shapes so Emissary YAML
//! applies unchanged (its `pkg/api/getambassador.io/v3alpha1/crd_tracingservice.go`).
//! Semantics: `../shared/EMISSARY.md` §1, Emissary's `ir/irtracing.py` and `envoy/v3/v3tracing.py`.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    fields::{AmbassadorId, Percent},
    status::ResourceStatus,
};

#[allow(clippy::duplicated_attributes)] // one `printcolumn(...)` per column
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "TracingService",
    doc = "The tracing collector Envoy reports every request's spans to.",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    category = "legate",
    category = "ambassador-crds",
    printcolumn(name = "Driver", type_ = "string", json_path = ".spec.driver"),
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service")
)]
pub struct TracingServiceSpec {
    #[serde(default, skip_serializing_if = "AmbassadorId::is_empty")]
    pub ambassador_id: AmbassadorId,

    /// The tracer: `zipkin`, `opentelemetry` (OTLP over gRPC), `datadog`, or `lightstep`
    /// (removed from Envoy: refused).
    pub driver: TracingDriver,
    /// `[scheme://]host[:port]` of the collector (a Kubernetes Service is served over EDS).
    #[x_kube(validation = Rule::new("self.size() > 0").message("service must not be empty"))]
    pub service: String,
    /// Which requests are traced, in percent (each defaults to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<TraceSampling>,
    /// Deprecated: request headers to tag spans with; `custom_tags` with `request_header` replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_headers: Option<Vec<String>>,
    /// Tags added to every span: a literal, an environment variable or a request header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_tags: Option<Vec<TracingCustomTag>>,
    /// The driver's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<TraceConfig>,
    /// Name the collector cluster's statistics are reported under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_name: Option<String>,
}

/// Emissary's drivers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TracingDriver {
    #[default]
    Zipkin,
    Opentelemetry,
    Datadog,
    Lightstep,
}

impl TracingDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zipkin => "zipkin",
            Self::Opentelemetry => "opentelemetry",
            Self::Datadog => "datadog",
            Self::Lightstep => "lightstep",
        }
    }
}

/// Envoy's three sampling percentages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TraceSampling {
    /// Of the requests that carry `x-client-trace-id`, the percent traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Percent>,
    /// Of the other requests, the percent traced at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<Percent>,
    /// The percent of what the two above select that is traced after all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<Percent>,
}

/// Emissary's `TraceConfig`: the settings of every driver in one object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TraceConfig {
    /// lightstep: the file holding the access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_file: Option<String>,
    /// Emissary replaces it with the cluster of `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_cluster: Option<String>,
    /// zipkin: the path spans are posted to (default `/api/v2/spans`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_endpoint: Option<String>,
    /// zipkin: the format spans are posted in (default `HTTP_JSON`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_endpoint_version: Option<CollectorEndpointVersion>,
    /// zipkin, datadog: the `Host` of requests to the collector (default: the cluster's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_hostname: Option<String>,
    /// lightstep: the trace context formats propagated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation_modes: Option<Vec<PropagationMode>>,
    /// zipkin: 128-bit trace ids (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id_128bit: Option<bool>,
    /// zipkin: client and server spans share one span context (Envoy's default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_span_context: Option<bool>,
    /// opentelemetry, datadog: the service the spans are reported for (default `ambassador`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CollectorEndpointVersion {
    /// Zipkin's v1 JSON API, which Envoy no longer speaks: refused.
    #[serde(rename = "HTTP_JSON_V1")]
    HttpJsonV1,
    #[serde(rename = "HTTP_JSON")]
    HttpJson,
    #[serde(rename = "HTTP_PROTO")]
    HttpProto,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PropagationMode {
    Envoy,
    Lightstep,
    B3,
    TraceContext,
}

/// Envoy's `type.tracing.v3.CustomTag`: `tag` and exactly one source of its value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("(has(self.literal) ? 1 : 0) + (has(self.environment) ? 1 : 0) + (has(self.request_header) ? 1 : 0) == 1").message("set exactly one of literal, environment and request_header"))]
pub struct TracingCustomTag {
    /// The tag's name on the span.
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<CustomTagLiteral>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<CustomTagSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header: Option<CustomTagSource>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CustomTagLiteral {
    pub value: String,
}

/// An environment variable of Envoy, or a request header, and the value when it is absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CustomTagSource {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
}
