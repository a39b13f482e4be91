//! The pure middle of the agent: resources in, the IR (with every rejection and its reason) and
//! the Envoy resources for ADS out. No I/O, so a test can drive it with plain values.

use std::sync::Arc;

use legate_crds::Resource;

use crate::{
    envoy::Encoder,
    ir::{self, Ir, Settings},
    xds::ResourceSet,
};

/// One configuration, from one consistent set of resources.
#[derive(Clone, Debug, PartialEq)]
pub struct Configuration {
    pub ir: Ir,
    /// What the ADS server serves: the Envoy resources, encoded and versioned.
    pub resources: ResourceSet,
}

impl Configuration {
    /// From scratch: nothing kept from an earlier build.
    pub fn build(resources: &[Resource], settings: &Settings) -> Self {
        let shared: Vec<Arc<Resource>> = resources.iter().cloned().map(Arc::new).collect();
        Translator::new(settings.clone()).build(&shared)
    }
}

/// Builds one configuration after the other, each from the whole set of resources, recomputing
/// only what changed since the last: a resource the source left as it was (the same `Arc`) keeps
/// its compiled route and its Envoy encoding. The result is the same as from scratch.
#[derive(Debug)]
pub struct Translator {
    ir: ir::Builder,
    envoy: Encoder,
}

impl Translator {
    pub fn new(settings: Settings) -> Self {
        Self {
            ir: ir::Builder::new(settings),
            envoy: Encoder::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        self.ir.settings()
    }

    pub fn build(&mut self, resources: &[Arc<Resource>]) -> Configuration {
        let ir = self.ir.build(resources);
        let resources = self.envoy.encode(&ir);
        Configuration { ir, resources }
    }
}
