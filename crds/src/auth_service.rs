//! `AuthService` (`getambassador.io/v3alpha1`): external authorization (Envoy `ext_authz`) over
//! HTTP or gRPC, with Emissary's field names and shapes so Emissary YAML applies unchanged.
//! Semantics: `../shared/EMISSARY.md` §1.6.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    fields::{AmbassadorId, Bounded, CircuitBreaker, Millis},
    status::ResourceStatus,
};

/// An HTTP status code.
pub type StatusCode = Bounded<100, 599>;
/// A body size in bytes; Envoy refuses 0.
pub type BodyBytes = Bounded<1, { u32::MAX as i64 }>;

#[allow(clippy::duplicated_attributes)] // one `printcolumn(...)` per column
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "AuthService",
    doc = "An external authorization service (Envoy ext_authz) consulted before requests are routed.",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    category = "legate",
    category = "ambassador-crds",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.auth_service"),
    printcolumn(name = "Proto", type_ = "string", json_path = ".spec.proto")
)]
#[x_kube(validation = Rule::new("!has(self.proto) || self.proto != 'grpc' || (has(self.protocol_version) && self.protocol_version == 'v3')").message("a gRPC AuthService needs protocol_version: v3 (Envoy no longer speaks v2)").field_path(".protocol_version"))]
pub struct AuthServiceSpec {
    #[serde(default, skip_serializing_if = "AmbassadorId::is_empty")]
    pub ambassador_id: AmbassadorId,

    // --- The authorization service ---------------------------------------------------------
    /// `[scheme://]host[:port]` of the authorization service.
    #[x_kube(validation = Rule::new("self.size() > 0").message("auth_service must not be empty"))]
    pub auth_service: String,
    /// How to talk to it: `http` (the default) or `grpc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<AuthProto>,
    /// Envoy's ext_authz transport API version; gRPC needs `v3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<ProtocolVersion>,
    /// HTTP only: prefix put before the request's path in the check request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// How long a check may take, in milliseconds (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
    /// A TLSContext name to originate TLS to the authorization service with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// Name the authorization cluster's statistics are reported under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_name: Option<String>,
    /// Circuit-breaker thresholds for the authorization cluster, per priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<Vec<CircuitBreaker>>,
    /// Add Linkerd's `l5d-dst-override` header to check requests; defaults to the Module's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_linkerd_headers: Option<bool>,

    // --- What goes to the service and what comes back -------------------------------------
    /// HTTP only: client request headers copied into the check request (lower-cased).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_request_headers: Option<Vec<String>>,
    /// HTTP only: headers of the service's answer copied onto the upstream request (lower-cased).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_authorization_headers: Option<Vec<String>>,
    /// Headers added to every check request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_auth_headers: Option<BTreeMap<String, String>>,
    /// Deprecated: send the request body too; `include_body` wins when both are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_request_body: Option<bool>,
    /// Send up to `max_bytes` of the request body with the check request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_body: Option<IncludeBody>,

    // --- Failure handling ------------------------------------------------------------------
    /// Status returned to the client when the service cannot be reached (default 403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_on_error: Option<StatusOnError>,
    /// Let requests through when the service cannot be reached (default false: deny).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode_allow: Option<bool>,

    // --- Legate extension --------------------------------------------------------------------
    /// Check only the requests of Mappings that name this AuthService (`auth_service_ref`),
    /// rather than every route's. Absent or false: the gateway's default AuthService, as in
    /// Emissary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_in: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthProto {
    Http,
    Grpc,
}

/// Envoy's transport API version for ext_authz and rate limiting; only `v3` still works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolVersion {
    V2,
    V3,
}

/// How much of the request body goes to the authorization service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IncludeBody {
    /// Most bytes of the body to buffer and send.
    pub max_bytes: BodyBytes,
    /// Send the first `max_bytes` of a larger body instead of answering 413.
    pub allow_partial: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusOnError {
    /// HTTP status code to answer with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<StatusCode>,
}
