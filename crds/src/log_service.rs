//! `LogService` (`getambassador.io/v3alpha1`): a gRPC access-log service (Envoy's
//! `envoy.service.accesslog.v3.AccessLogService`) every request or connection is reported to,
//! with Emissary's field names and shapes so Emissary YAML applies unchanged. Semantics:
//! `../shared/EMISSARY.md` §1, Emissary's `ir/irlogservice.py`.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    auth_service::ProtocolVersion,
    fields::{AmbassadorId, Bounded},
    status::ResourceStatus,
};

/// Seconds between flushes of the buffered entries; Envoy refuses 0.
pub type FlushSeconds = Bounded<1, { u32::MAX as i64 }>;
/// Bytes buffered before a flush (Envoy's `buffer_size_bytes`, a 32-bit count).
pub type FlushBytes = Bounded<0, { u32::MAX as i64 }>;

#[allow(clippy::duplicated_attributes)] // one `printcolumn(...)` per column
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "LogService",
    doc = "A gRPC access-log service every request (driver http) or connection (driver tcp) is reported to.",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    category = "legate",
    category = "ambassador-crds",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(name = "Driver", type_ = "string", json_path = ".spec.driver")
)]
pub struct LogServiceSpec {
    #[serde(default, skip_serializing_if = "AmbassadorId::is_empty")]
    pub ambassador_id: AmbassadorId,

    /// `[scheme://]host[:port]` of the gRPC access-log service.
    #[x_kube(validation = Rule::new("self.size() > 0").message("service must not be empty"))]
    pub service: String,
    /// `http`: one entry per request, with its headers; `tcp` (the default, as in Emissary): one
    /// entry per request or connection, without HTTP details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<LogDriver>,
    /// Driver settings: the extra headers an `http` driver logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<DriverConfig>,
    /// Seconds between flushes of the buffered entries (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_interval_time: Option<FlushSeconds>,
    /// Bytes of entries buffered before a flush (default 16384).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_interval_byte_size: Option<FlushBytes>,
    /// The service speaks gRPC: must be true (or absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<bool>,
    /// Envoy's access-log transport API version: only `v3` works, and absent means `v3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<ProtocolVersion>,
    /// Name the access-log cluster's statistics are reported under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_name: Option<String>,
}

/// Which of Envoy's gRPC access loggers reports to the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogDriver {
    /// `envoy.access_loggers.http_grpc`: HTTP entries (method, path, status, headers).
    Http,
    /// `envoy.access_loggers.tcp_grpc`: TCP entries (addresses, bytes, duration).
    Tcp,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DriverConfig {
    /// Headers logged besides the ones Envoy always logs (driver `http` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_log_headers: Option<Vec<AdditionalLogHeader>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AdditionalLogHeader {
    /// The header's name.
    #[serde(default)]
    #[schemars(transform = no_default)]
    pub header_name: String,
    /// Log it from the request (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during_request: Option<bool>,
    /// Log it from the response (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during_response: Option<bool>,
    /// Log it from the response's trailers (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during_trailer: Option<bool>,
}

/// Leaves a field's empty default out of the schema: Kubernetes 1.20 reads a `default: ""` as
/// null and refuses the whole CRD. (The IR refuses an empty name, naming the field.)
fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}
