//! The ClusterServiceVersion: the operator's catalogue entry and install plan in one object.

use base64::Engine;
use serde_json::{Value, json};

use crate::{
    crds::Crd,
    error::{Error, Result},
    manager::Manager,
    metadata as meta,
    rbac::Permissions,
    yaml,
};

/// `legate-operator.v0.1.0`.
pub fn name() -> String {
    format!("{}.v{}", meta::PACKAGE, meta::VERSION)
}

pub struct Inputs<'a> {
    pub crds: &'a [Crd],
    pub permissions: &'a Permissions,
    pub manager: &'a Manager,
    pub examples: &'a [Value],
}

/// The CSV object; `file` names it in errors.
pub fn csv(file: &str, inputs: &Inputs<'_>) -> Result<Value> {
    let Inputs {
        crds,
        permissions,
        manager,
        examples,
    } = inputs;
    let examples = serde_json::to_string_pretty(&yaml::canonical(Value::from(examples.to_vec())))
        .map_err(|e| Error::Emit {
        file: file.to_owned(),
        message: format!("metadata.annotations.alm-examples: {e}"),
    })?;
    let mut annotations = json!({
        "alm-examples": examples,
        "capabilities": meta::CAPABILITIES,
        "categories": meta::CATEGORIES,
        "containerImage": manager.image,
        "description": meta::SUMMARY,
        "repository": meta::REPOSITORY,
    });
    if let Some(namespace) = &manager.namespace {
        annotations["operatorframework.io/suggested-namespace"] = json!(namespace);
    }
    let owned: Vec<&Value> = crds.iter().flat_map(|crd| &crd.owned).collect();
    let mut install = json!({ "deployments": manager.deployments });
    // OLM creates a ClusterRole (Role) and its binding for each entry: none for no rules.
    for (field, rules) in [
        ("clusterPermissions", &permissions.cluster_rules),
        ("permissions", &permissions.namespaced_rules),
    ] {
        if !rules.is_empty() {
            install[field] = json!([{
                "serviceAccountName": permissions.service_account,
                "rules": rules,
            }]);
        }
    }
    Ok(json!({
        "apiVersion": "operators.coreos.com/v1alpha1",
        "kind": "ClusterServiceVersion",
        "metadata": {
            "name": name(),
            "annotations": annotations,
        },
        "spec": {
            "displayName": meta::DISPLAY_NAME,
            "description": meta::DESCRIPTION,
            "version": meta::VERSION,
            "maturity": meta::MATURITY,
            "minKubeVersion": meta::MIN_KUBE_VERSION,
            "provider": {"name": meta::PROVIDER},
            "links": [{"name": "Source code", "url": meta::REPOSITORY}],
            "keywords": meta::KEYWORDS,
            "icon": [{
                "base64data": base64::engine::general_purpose::STANDARD.encode(meta::ICON_SVG),
                "mediatype": "image/svg+xml",
            }],
            "installModes": install_modes(),
            "install": {"strategy": "deployment", "spec": install},
            "customresourcedefinitions": {"owned": owned},
        },
    }))
}

/// Only AllNamespaces: the operator watches GatewayInstallations cluster-wide and grants each
/// gateway's agent cluster-scoped read access to routes, which a namespace-scoped install
/// (an OperatorGroup with target namespaces) could not honour.
fn install_modes() -> Value {
    json!([
        {"type": "OwnNamespace", "supported": false},
        {"type": "SingleNamespace", "supported": false},
        {"type": "MultiNamespace", "supported": false},
        {"type": "AllNamespaces", "supported": true},
    ])
}
