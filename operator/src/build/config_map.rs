//! The ConfigMap `<name>-bootstrap` holding Envoy's bootstrap, the shape `legate-agent bootstrap`
//! prints.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use legate_agent::bootstrap::{BootstrapParams, bootstrap, render_yaml};
use sha2::{Digest, Sha256};

use super::{ADMIN_ADDRESS, ADS_ADDRESS, Context, STATS_ADDRESS, labels};

/// The key Envoy reads as `/etc/envoy/bootstrap.yaml`.
pub const BOOTSTRAP_KEY: &str = "bootstrap.yaml";

/// The bootstrap for an installation. A ConfigMap is shared by every pod, so the node id cannot
/// be the pod's name: it is `<namespace>.<name>`, and `node.cluster` is the installation's name.
pub fn bootstrap_yaml(namespace: &str, name: &str) -> String {
    let mut params = BootstrapParams::new(
        ADS_ADDRESS.parse().expect("a valid socket address"),
        ADMIN_ADDRESS.parse().expect("a valid socket address"),
        format!("{namespace}.{name}"),
    );
    params.node_cluster = name.to_owned();
    params.stats_address = Some(STATS_ADDRESS.parse().expect("a valid socket address"));
    render_yaml(&bootstrap(&params))
}

/// A short content hash of the bootstrap (16 hex digits of its SHA-256): the pod template
/// carries it so a changed bootstrap rolls the pods.
pub fn config_hash(bootstrap: &str) -> String {
    let digest = Sha256::digest(bootstrap.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

pub fn build(cx: &Context, bootstrap: &str) -> ConfigMap {
    ConfigMap {
        metadata: labels::namespaced(cx, labels::bootstrap_config_map_name(&cx.name)),
        data: Some(BTreeMap::from([(
            BOOTSTRAP_KEY.to_owned(),
            bootstrap.to_owned(),
        )])),
        ..ConfigMap::default()
    }
}
