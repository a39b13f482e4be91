//! The pure middle of the agent: resources in, the IR (with every rejection and its reason) and
//! the Envoy resources for ADS out. No I/O, so a test can drive it with plain values.

use legate_crds::Resource;

use crate::{
    envoy::{self, EnvoyConfig},
    ir::{self, Ir, Settings},
    xds::ResourceSet,
};

/// One configuration, from one consistent set of resources.
#[derive(Clone, Debug, PartialEq)]
pub struct Configuration {
    pub ir: Ir,
    pub envoy: EnvoyConfig,
}

impl Configuration {
    pub fn build(resources: &[Resource], settings: &Settings) -> Self {
        let ir = ir::build(resources, settings);
        let envoy = envoy::translate(&ir);
        Self { ir, envoy }
    }

    /// What the ADS server serves.
    pub fn resource_set(&self) -> ResourceSet {
        let mut set = ResourceSet::new();
        for c in &self.envoy.clusters {
            set.insert(c.name.clone(), c);
        }
        for l in &self.envoy.listeners {
            set.insert(l.name.clone(), l);
        }
        for r in &self.envoy.routes {
            set.insert(r.name.clone(), r);
        }
        set
    }
}
