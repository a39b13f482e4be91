//! `GatewayInstallation` (`legate.dev/v1alpha1`, short name `gwi`): one gateway fleet, reconciled
//! by the operator into a ServiceAccount, RBAC, ConfigMap, Deployment, Service and PDB/HPA.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Affinity, ResourceRequirements, Toleration},
    apimachinery::pkg::{
        apis::meta::v1::{Condition, LabelSelector},
        util::intstr::IntOrString,
    },
};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::fields::{Bounded, Count, Percent, Port};

#[allow(clippy::duplicated_attributes)] // one `printcolumn(...)` per column
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "legate.dev",
    version = "v1alpha1",
    kind = "GatewayInstallation",
    doc = "A fleet of Legate gateways: Envoy plus legate-agent pods, their Service and the routes they accept.",
    namespaced,
    derive = "PartialEq",
    shortname = "gwi",
    status = "GatewayInstallationStatus",
    category = "legate",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "ready replicas"
    ),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(
        name = "Config",
        type_ = "string",
        json_path = ".status.configVersion",
        description = "configuration version the fleet serves"
    ),
    printcolumn(
        name = "Routes",
        type_ = "integer",
        json_path = ".status.routes.accepted",
        description = "accepted routes"
    ),
    printcolumn(
        name = "Rejected",
        type_ = "integer",
        json_path = ".status.routes.rejected",
        description = "rejected routes"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.autoscaling) || !has(self.replicas)").message("set replicas or autoscaling, not both: with an HPA the Deployment's replicas belong to the HPA").field_path(".replicas"))]
pub struct GatewayInstallationSpec {
    /// Gateway pods; defaults to 1. Leave unset when `autoscaling` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Count>,
    /// The `ambassador_id` this fleet answers to; resources whose `ambassador_id` does not list
    /// it are ignored. Defaults to `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.size() > 0").message("ambassadorId must not be empty"))]
    pub ambassador_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy: Option<ContainerSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<ContainerSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSettings>,
    /// Namespaces whose route resources this gateway accepts (Gateway API `allowedRoutes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<AllowedRoutes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<PodDisruptionBudgetSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSettings>,
    /// How long a stopping gateway pod drains before Envoy exits, in seconds: its listeners
    /// tell every connection to close while the pod leaves the Service's endpoints. Defaults
    /// to 15; long-lived connections (WebSockets, streams) may want more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_seconds: Option<Bounded<0, 3600>>,
}

/// Image and resources of one of the pod's two containers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSettings {
    /// Defaults to the image this operator release was built with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ImagePullPolicy {
    Always,
    IfNotPresent,
    Never,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSettings {
    /// Defaults to `LoadBalancer`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Defaults to `http` 80 → 8080 and `https` 443 → 8443.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub ports: Vec<GatewayPort>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayPort {
    pub name: String,
    /// The Service port.
    pub port: Port,
    /// Envoy's listener port in the pod; defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<Port>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<Port>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AllowedRoutes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<RouteNamespaces>,
}

#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new("has(self.from) && self.from == 'Selector' ? has(self.selector) : !has(self.selector)").message("selector is required with from: Selector and only allowed there").field_path(".selector"))]
pub struct RouteNamespaces {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<FromNamespaces>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Where routes may come from: every namespace, the installation's own, or those a label
/// selector picks. Defaults to `Same`: a gateway admits nobody else's routes until told to.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum FromNamespaces {
    All,
    #[default]
    Same,
    Selector,
}

#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.minAvailable) != has(self.maxUnavailable)").message("set exactly one of minAvailable and maxUnavailable"))]
pub struct PodDisruptionBudgetSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.minReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas").field_path(".minReplicas"))]
pub struct AutoscalingSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<Count>,
    pub max_replicas: Count,
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    pub target_cpu_utilization_percentage: Option<Percent>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayInstallationStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Desired replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// The Envoy configuration version the fleet serves (content-derived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<RouteCounts>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RouteCounts {
    pub accepted: i64,
    pub rejected: i64,
}
