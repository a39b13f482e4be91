//! Which Module configures the gateway: the one named `ambassador` in the gateway's own
//! namespace (a Module read from a file without a namespace is in it). Emissary reads an
//! `ambassador` Module from any namespace it watches; here a team's namespace cannot change
//! what every other team's routes get, so a Module elsewhere, or by another name, is not read and
//! says so.

use std::sync::Arc;

use legate_crds::Resource;

use super::{Reason, Rejection};

/// The name of the Module that configures the gateway, as in Emissary.
pub const NAME: &str = "ambassador";

/// The gateway's Module among `resources` (this gateway's), if any.
pub fn gateway_module<'a>(
    resources: &[&'a Arc<Resource>],
    gateway_namespace: &str,
) -> Option<&'a Arc<Resource>> {
    resources
        .iter()
        .copied()
        .find(|r| is_gateway_module(r, gateway_namespace))
}

fn is_gateway_module(r: &Resource, gateway_namespace: &str) -> bool {
    let meta = r.meta();
    matches!(r, Resource::Module(_))
        && meta.name.as_deref() == Some(NAME)
        && meta.namespace.as_deref().unwrap_or(gateway_namespace) == gateway_namespace
}

/// A note on every other Module: nothing it sets is read.
pub fn notes(resources: &[&Arc<Resource>], gateway_namespace: &str, out: &mut Vec<Rejection>) {
    for r in resources {
        if matches!(&***r, Resource::Module(_)) && !is_gateway_module(r, gateway_namespace) {
            out.push(Rejection::new(
                r.object_ref(),
                Reason::NotSupported,
                format!(
                    "not read: only the Module named {NAME} in namespace {gateway_namespace} \
                     (the gateway's) configures this gateway"
                ),
            ));
        }
    }
}
