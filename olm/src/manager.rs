//! The operator's workload, from `config/manager/`: its Deployment becomes the CSV's install
//! strategy, other objects OLM can carry in a bundle (the metrics Service) become bundle manifests,
//! and the Namespace is left to the user (OLM installs into the namespace its OperatorGroup names).

use serde_json::{Value, json};

use crate::{
    error::{Error, Location, Result},
    source::Document,
};

/// Kinds a registry+v1 bundle may carry besides the CSV and CRDs, among those config/manager
/// could plausibly hold.
const BUNDLE_KINDS: &[&str] = &[
    "Service",
    "ConfigMap",
    "Secret",
    "PodDisruptionBudget",
    "PriorityClass",
    "ServiceMonitor",
    "PrometheusRule",
];

#[derive(Clone, Debug, PartialEq)]
pub struct Manager {
    /// `spec.install.spec.deployments` entries: name, label, spec.
    pub deployments: Vec<Value>,
    /// `(file name under bundle/manifests, object)`, namespace removed.
    pub manifests: Vec<(String, Value)>,
    /// The namespace config installs into, suggested to OLM users.
    pub namespace: Option<String>,
    /// The first container image of the first Deployment: the CSV's `containerImage`.
    pub image: String,
    /// `serviceAccountName` of each Deployment's pods, with where it was read.
    pub service_accounts: Vec<(Document, String)>,
}

/// `documents` are everything `config/manager/kustomization.yaml` lists; `listed_in` names it.
pub fn manager(documents: &[Document], listed_in: &str) -> Result<Manager> {
    let mut deployments = Vec::new();
    let mut manifests = Vec::new();
    let mut namespace = None;
    let mut images = Vec::new();
    let mut service_accounts = Vec::new();
    for document in documents {
        match document.kind() {
            "Deployment" => {
                deployments.push(json!({
                    "name": document.name()?,
                    "label": document.get("metadata.labels").cloned().unwrap_or(json!({})),
                    "spec": document.field("spec")?,
                }));
                images.push(
                    document
                        .str("spec.template.spec.containers[0].image")?
                        .to_owned(),
                );
                let account = document.str("spec.template.spec.serviceAccountName")?;
                service_accounts.push((document.clone(), account.to_owned()));
            }
            "Namespace" => namespace = Some(document.name()?.to_owned()),
            kind if BUNDLE_KINDS.contains(&kind) => {
                let mut object = document.value.clone();
                if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.remove("namespace");
                }
                manifests.push((manifest_file_name(document)?, object));
            }
            kind => {
                return Err(document.error(
                    "kind",
                    &format!("{kind:?} cannot go into an OLM bundle (expected Deployment, Namespace or one of {BUNDLE_KINDS:?})"),
                ));
            }
        }
    }
    let Some(image) = images.into_iter().next() else {
        return Err(Error::Field {
            at: Location::file(listed_in),
            message: "resources declare no Deployment (the operator's)".into(),
        });
    };
    Ok(Manager {
        deployments,
        manifests,
        namespace,
        image,
        service_accounts,
    })
}

/// operator-sdk's naming: `<name>_<group>_<version>_<kind>.yaml`, no group for the core API
/// (`legate-operator-metrics_v1_service.yaml`).
fn manifest_file_name(document: &Document) -> Result<String> {
    let api_version = document.str("apiVersion")?.replace('/', "_");
    Ok(format!(
        "{}_{}_{}.yaml",
        document.name()?,
        api_version,
        document.kind().to_lowercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::parse_documents;

    const MANAGER: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: sys}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: op, namespace: sys, labels: {app: op}}
spec:
  template:
    spec:
      serviceAccountName: op
      containers: [{name: op, image: 'example.org/op:1'}]
---
apiVersion: v1
kind: Service
metadata: {name: op-metrics, namespace: sys}
spec: {ports: [{port: 9090}]}
";

    #[test]
    fn deployment_to_install_strategy_and_service_to_manifest() {
        let documents = parse_documents("m.yaml", MANAGER).unwrap();
        let manager = manager(&documents, "k.yaml").unwrap();
        assert_eq!(manager.namespace.as_deref(), Some("sys"));
        assert_eq!(manager.image, "example.org/op:1");
        assert_eq!(manager.deployments[0]["name"], "op");
        assert_eq!(manager.deployments[0]["label"], json!({"app": "op"}));
        let (file, service) = &manager.manifests[0];
        assert_eq!(file, "op-metrics_v1_service.yaml");
        assert_eq!(service["metadata"], json!({"name": "op-metrics"}));
    }

    #[test]
    fn a_kind_olm_cannot_carry_is_an_error() {
        let text =
            format!("{MANAGER}---\napiVersion: batch/v1\nkind: Job\nmetadata: {{name: j}}\n");
        let documents = parse_documents("m.yaml", &text).unwrap();
        let error = manager(&documents, "k.yaml").unwrap_err().to_string();
        assert!(
            error.starts_with("m.yaml: document 4: kind: \"Job\" cannot go into an OLM bundle"),
            "{error}"
        );
    }
}
