//! Status shapes, in Kubernetes conventions: `conditions` (type, status, reason, message,
//! observedGeneration, lastTransitionTime) and `observedGeneration`, so `kubectl describe`
//! answers "is it live, and if not, why?".

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types the route resources use.
pub mod condition {
    /// The resource is valid and admitted by a gateway (its namespace is allowed, its
    /// `ambassador_id` matches); `False` says why not.
    pub const ACCEPTED: &str = "Accepted";
    /// The gateway's Envoy has acknowledged a configuration carrying this resource.
    pub const PROGRAMMED: &str = "Programmed";
    /// GatewayInstallation: every replica is up and serving the current configuration.
    pub const READY: &str = "Ready";
    /// GatewayInstallation: a rollout or scale is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// GatewayInstallation: the operator cannot honour the spec; the reason says why.
    pub const DEGRADED: &str = "Degraded";
}

/// Status of every `getambassador.io` kind except Mapping.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Mapping status: Emissary's `state`/`reason` beside the conditions, so tools written for
/// Emissary keep working.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<MappingState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MappingState {
    Running,
    Inactive,
}
