//! The pure middle of the agent: resources in, the IR (with every rejection and its reason) and
//! the Envoy resources for ADS out. No I/O, so a test can drive it with plain values.

use std::sync::Arc;

use envoy_types::pb::{envoy::config::cluster::v3::Cluster, google::protobuf::Duration};
use legate_crds::Resource;

use crate::{
    envoy::Encoder,
    ir::{self, Ir, Settings},
    xds::ResourceSet,
};

/// Test-only: names the resources whose configuration Envoy must refuse. Tests of what the agent
/// does when Envoy refuses a configuration need a refusal the agent's own validation cannot
/// foresee, whatever it learns to catch.
#[doc(hidden)]
pub type Fault = Arc<dyn Fn(&Resource) -> bool + Send + Sync>;

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
pub struct Translator {
    ir: ir::Builder,
    envoy: Encoder,
    fault: Option<Fault>,
}

impl std::fmt::Debug for Translator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translator")
            .field("ir", &self.ir)
            .field("envoy", &self.envoy)
            .field("fault", &self.fault.is_some())
            .finish()
    }
}

impl Translator {
    pub fn new(settings: Settings) -> Self {
        Self {
            ir: ir::Builder::new(settings),
            envoy: Encoder::default(),
            fault: None,
        }
    }

    /// Test-only: every configuration built from a resource `fault` names carries a cluster
    /// Envoy refuses (its connect timeout is negative), named after that resource.
    #[doc(hidden)]
    pub fn inject_fault(&mut self, fault: Fault) {
        self.fault = Some(fault);
    }

    pub fn settings(&self) -> &Settings {
        self.ir.settings()
    }

    pub fn build(&mut self, resources: &[Arc<Resource>]) -> Configuration {
        let ir = self.ir.build(resources);
        let mut set = self.envoy.encode(&ir);
        if let Some(fault) = &self.fault {
            for r in resources.iter().filter(|r| fault(r)) {
                let o = r.object_ref();
                let name = format!(
                    "fault-{}-{}-{}",
                    o.kind,
                    o.namespace.unwrap_or_default(),
                    o.name
                );
                let refused = Cluster {
                    name: name.clone(),
                    connect_timeout: Some(Duration {
                        seconds: -1,
                        nanos: 0,
                    }),
                    ..Default::default()
                };
                set.insert(name, &refused);
            }
        }
        Configuration { ir, resources: set }
    }
}
