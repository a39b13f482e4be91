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

/// One gateway's verdict on a route resource. Several installations may serve the same resource
/// (each with its own `ambassador_id`); each writes only its own entry, under a field manager of
/// its own, so none overwrites another's and `kubectl describe` shows them all.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayVerdict {
    /// The `GatewayInstallation` that judged, as `NAMESPACE/NAME`.
    pub installation: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Status of every `getambassador.io` kind except Mapping.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// The gateways' verdicts combined: `True` when some gateway accepts (programs) it, else the
    /// first gateway's reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Each gateway's own verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["installation"]))]
    pub gateways: Vec<GatewayVerdict>,
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
    /// Each gateway's own verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["installation"]))]
    pub gateways: Vec<GatewayVerdict>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MappingState {
    Running,
    Inactive,
}
