//! The fleet as objects in a real API server, for the agent in Kubernetes mode (`run
//! --installation`): the cluster `KUBECONFIG` names (`make bench-dataplane-kube` starts
//! kube-local). The objects live in a namespace of their own, deleted at the end.

use std::path::Path;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use legate_e2e::{Resolver, TestNamespace, client, create, install_crds, read_dir_docs};
use serde_json::json;
use tokio::sync::Mutex;

/// Creates in flight at once: enough to keep the API server busy, few enough not to be refused.
const CREATES_IN_FLIGHT: usize = 32;
/// The installation the agent serves.
const INSTALLATION: &str = "bench";

/// A namespace holding a GatewayInstallation and the fleet's resources.
pub struct Cluster {
    runtime: tokio::runtime::Runtime,
    /// Kinds to APIs, shared by the concurrent creates of [`Self::load`].
    resolver: Mutex<Resolver>,
    mappings: Api<DynamicObject>,
    namespace: TestNamespace,
}

impl Cluster {
    /// `None` when `KUBECONFIG` is unset: the Kubernetes measurements are then skipped.
    pub fn connect() -> Option<Self> {
        std::env::var_os("KUBECONFIG")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a Tokio runtime");
        let (namespace, resolver, mappings) = runtime.block_on(async {
            let client = client().await.expect("a client for KUBECONFIG's cluster");
            install_crds(&client).await.expect("the CRDs install");
            let namespace = TestNamespace::create(&client, "legate-bench")
                .await
                .expect("a namespace");
            let mut resolver = Resolver::new(client);
            let installation = json!({
                "apiVersion": "legate.dev/v1alpha1",
                "kind": "GatewayInstallation",
                "metadata": {"name": INSTALLATION},
                "spec": {},
            });
            let probe = json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping"});
            create(&mut resolver, &installation, &namespace.name, false)
                .await
                .expect("the GatewayInstallation's kind is served")
                .unwrap_or_else(|e| panic!("the server refused the GatewayInstallation: {e}"));
            let (mappings, _) = resolver
                .api_for(&probe, &namespace.name)
                .await
                .expect("Mappings are served");
            (namespace, resolver, mappings)
        });
        Some(Self {
            runtime,
            resolver: Mutex::new(resolver),
            mappings,
            namespace,
        })
    }

    /// Creates every resource of the fleet's directory in the namespace.
    pub fn load(&self, dir: &Path) {
        let docs = read_dir_docs(dir, false).expect("the fleet's files");
        let started = std::time::Instant::now();
        self.runtime.block_on(async {
            futures::stream::iter(&docs)
                .map(|doc| async move {
                    // Resolved one at a time (cached after the first of each kind); created
                    // concurrently.
                    let (api, scope) = self
                        .resolver
                        .lock()
                        .await
                        .api_for(&doc.value, &self.namespace.name)
                        .await?;
                    let object =
                        legate_e2e::in_namespace(&doc.value, &scope, &self.namespace.name)?;
                    api.create(&Default::default(), &object)
                        .await
                        .map_err(|e| anyhow::anyhow!("{}: {e}", doc.describe()))
                })
                .buffer_unordered(CREATES_IN_FLIGHT)
                .try_collect::<Vec<_>>()
                .await
                .expect("the fleet's objects are created");
        });
        println!(
            "kubernetes: {} objects created in {:.1} s",
            docs.len(),
            started.elapsed().as_secs_f64()
        );
    }

    /// `run --installation` for this namespace's installation: the agent's arguments beyond its
    /// addresses.
    pub fn agent_args(&self) -> Vec<String> {
        vec![
            "--installation".into(),
            format!("{}/{INSTALLATION}", self.namespace.name),
            "--namespace".into(),
            self.namespace.name.clone(),
        ]
    }

    /// Merge-patches Mapping `name` with `spec`.
    pub fn patch_mapping(&self, name: &str, spec: serde_json::Value) {
        let patch = json!({ "spec": spec });
        self.runtime
            .block_on(
                self.mappings
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .unwrap_or_else(|e| panic!("patch Mapping {name}: {e}"));
    }
}
