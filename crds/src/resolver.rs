//! The resolvers (`getambassador.io/v3alpha1`): named ways of turning a Mapping's `service` into
//! endpoints, chosen per Mapping by `resolver` (or for all by the Module's `resolver`), with
//! Emissary's kinds and fields so Emissary YAML applies unchanged. Semantics:
//! `../shared/EMISSARY.md` §1 (resolvers) and §2 (`resolver`).
//!
//! - `KubernetesServiceResolver`: the Service's DNS name (its cluster IP; kube-proxy balances);
//! - `KubernetesEndpointResolver`: the Service's ready endpoints, over EDS;
//! - `ConsulResolver`: endpoints from Consul's catalogue (`address`, `datacenter`).

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::{fields::AmbassadorId, status::ResourceStatus};

#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "KubernetesServiceResolver",
    doc = "Resolves a Mapping's service to the Kubernetes Service's DNS name (its cluster IP).",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    category = "legate",
    category = "ambassador-crds"
)]
pub struct KubernetesServiceResolverSpec {
    #[serde(default, skip_serializing_if = "AmbassadorId::is_empty")]
    pub ambassador_id: AmbassadorId,
}

#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "KubernetesEndpointResolver",
    doc = "Resolves a Mapping's service to the Kubernetes Service's ready endpoints, balanced by the gateway.",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    category = "legate",
    category = "ambassador-crds"
)]
pub struct KubernetesEndpointResolverSpec {
    #[serde(default, skip_serializing_if = "AmbassadorId::is_empty")]
    pub ambassador_id: AmbassadorId,
}

#[allow(clippy::duplicated_attributes)] // one `printcolumn(...)` per column
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "ConsulResolver",
    doc = "Resolves a Mapping's service through Consul's catalogue.",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    category = "legate",
    category = "ambassador-crds",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.address"),
    printcolumn(name = "Datacenter", type_ = "string", json_path = ".spec.datacenter")
)]
pub struct ConsulResolverSpec {
    #[serde(default, skip_serializing_if = "AmbassadorId::is_empty")]
    pub ambassador_id: AmbassadorId,

    /// Consul agent's address, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Consul datacenter whose catalogue is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
}
