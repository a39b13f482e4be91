//! The gateway Module's defaults for every Mapping: its upstream connection policy
//! ([`upstream_policy`]) and its CORS policy ([`cors`]). Every compiled Mapping depends on them,
//! so the builder compiles every Mapping again when they change (rare).

use legate_crds::Module;

use super::{Rejection, cluster_tuning, cors, upstream_policy};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MappingDefaults {
    pub policy: upstream_policy::Defaults,
    pub cors: cors::ModuleDefault,
    /// Address families ([`cluster_tuning`]).
    pub tuning: cluster_tuning::Defaults,
    /// What the Module sets for them that cannot be used, each naming its field; those
    /// defaults are left out, the others apply.
    pub rejections: Vec<Rejection>,
}

impl MappingDefaults {
    /// The defaults the gateway Module (see [`super::module::gateway_module`]) sets.
    pub fn new(module: Option<&Module>) -> Self {
        let mut rejections = Vec::new();
        let cors = cors::ModuleDefault::new(module, &mut rejections);
        let policy = upstream_policy::Defaults::new(module);
        rejections.extend(policy.rejection.clone());
        let tuning = cluster_tuning::Defaults::new(module, &mut rejections);
        Self {
            policy,
            cors,
            tuning,
            rejections,
        }
    }
}
