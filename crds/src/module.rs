//! `Module` (`getambassador.io/v3alpha1`). Placeholder shape; the full field set follows.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::{fields::AmbassadorId, status::ResourceStatus};

#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "Module",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    category = "legate",
    category = "ambassador-crds"
)]
pub struct ModuleSpec {
    #[serde(default, skip_serializing_if = "AmbassadorId::is_empty")]
    pub ambassador_id: AmbassadorId,
}
