//! `RateLimitService` (`getambassador.io/v3alpha1`): an external gRPC rate-limit service (Envoy's
//! `ratelimit` filter), with Emissary's field names and shapes so Emissary YAML applies unchanged.
//! Mappings supply the descriptors through `labels`. Semantics: `../shared/EMISSARY.md` §1.7.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    auth_service::ProtocolVersion,
    fields::{AmbassadorId, Millis},
    status::ResourceStatus,
};

#[allow(clippy::duplicated_attributes)] // one `printcolumn(...)` per column
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "RateLimitService",
    doc = "The external gRPC rate-limit service that Mapping labels are sent to.",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    category = "legate",
    category = "ambassador-crds",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.domain")
)]
pub struct RateLimitServiceSpec {
    #[serde(default, skip_serializing_if = "AmbassadorId::is_empty")]
    pub ambassador_id: AmbassadorId,

    /// `[scheme://]host[:port]` of the gRPC rate-limit service.
    #[x_kube(validation = Rule::new("self.size() > 0").message("service must not be empty"))]
    pub service: String,
    /// Rate-limit domain of the descriptors; defaults to the Module's `default_label_domain` (`ambassador`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// How long a rate-limit check may take, in milliseconds (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
    /// Envoy's rate-limit transport API version: only `v3` works, and absent means `v3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == 'v3'").message("protocol_version must be v3: Envoy no longer speaks v2"))]
    pub protocol_version: Option<ProtocolVersion>,
    /// Refuse requests (500) when the service cannot be reached (default false: let them through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode_deny: Option<bool>,
    /// gRPC settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<RateLimitGrpc>,
    /// A TLSContext name to originate TLS to the rate-limit service with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// Name the rate-limit cluster's statistics are reported under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RateLimitGrpc {
    /// Answer rate-limited gRPC requests with `RESOURCE_EXHAUSTED` instead of `UNAVAILABLE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_resource_exhausted_code: Option<bool>,
}
