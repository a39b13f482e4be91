//! The gateway pods' ServiceAccount, the subject of the RBAC bindings.

use k8s_openapi::api::core::v1::ServiceAccount;

use super::{Context, labels};

pub fn build(cx: &Context) -> ServiceAccount {
    ServiceAccount {
        metadata: labels::namespaced(cx, cx.name.clone()),
        ..ServiceAccount::default()
    }
}
