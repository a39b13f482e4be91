//! The gateway Module's defaults for every Mapping: its upstream connection policy
//! ([`upstream_policy`]) and its CORS policy ([`cors`]); and the TLSContexts Mappings originate
//! TLS with ([`upstream_tls`]). Every compiled Mapping depends on them, so the builder compiles
//! every Mapping again when they change (rare).

use legate_crds::Module;

use super::{Rejection, cors, upstream_policy, upstream_tls};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MappingDefaults {
    pub policy: upstream_policy::Defaults,
    pub cors: cors::ModuleDefault,
    /// What the Module sets for them that cannot be used, each naming its field; those
    /// defaults are left out, the others apply.
    pub rejections: Vec<Rejection>,
    /// The TLSContexts as `tls: <name>` originates with them.
    pub origination: upstream_tls::Contexts,
}

impl MappingDefaults {
    /// The defaults the gateway Module (see [`super::module::gateway_module`]) sets.
    pub fn new(module: Option<&Module>) -> Self {
        let mut rejections = Vec::new();
        let cors = cors::ModuleDefault::new(module, &mut rejections);
        let policy = upstream_policy::Defaults::new(module);
        rejections.extend(policy.rejection.clone());
        Self {
            policy,
            cors,
            rejections,
            origination: upstream_tls::Contexts::default(),
        }
    }

    /// With the TLSContexts of the build ([`upstream_tls::Contexts::new`]).
    pub fn with_origination(self, origination: upstream_tls::Contexts) -> Self {
        Self {
            origination,
            ..self
        }
    }
}
