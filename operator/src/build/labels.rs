//! Labels and metadata shared by every object.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Context;

pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// On cluster-scoped children and those in other namespaces than the installation's: the
/// installation's namespace, because the instance label (the installation's name) alone is
/// ambiguous across namespaces.
pub const OWNER_NAMESPACE_LABEL: &str = "legate.dev/owner-namespace";

pub const NAME: &str = "legate-gateway";
pub const MANAGED_BY: &str = "legate-operator";
/// The component label of every object: they all make up the gateway.
pub const COMPONENT: &str = "gateway";

/// The selector of the Deployment, Service, PDB and HPA: name and instance only, so it never
/// changes once created (Deployment selectors are immutable).
pub fn selector(cx: &Context) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_owned(), NAME.to_owned()),
        (INSTANCE_LABEL.to_owned(), cx.name.clone()),
    ])
}

/// Every label the operator puts on what it creates (and on the pods).
pub fn labels(cx: &Context) -> BTreeMap<String, String> {
    let mut labels = selector(cx);
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
    labels.insert(COMPONENT_LABEL.to_owned(), COMPONENT.to_owned());
    labels
}

/// Metadata of a namespaced child: in the installation's namespace, owned by it.
pub fn namespaced(cx: &Context, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(cx.namespace.clone()),
        labels: Some(labels(cx)),
        owner_references: Some(vec![cx.owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// Metadata of a cluster-scoped child named `name`: no owner reference (a namespaced owner cannot
/// own a cluster-scoped object), the finalizer deletes it; the installation's namespace in a
/// label, since its name alone is ambiguous.
pub fn cluster_scoped(cx: &Context, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        labels: Some(owner_labels(cx)),
        ..ObjectMeta::default()
    }
}

/// Metadata of a child in `namespace`, which may be another than the installation's: no owner
/// reference (Kubernetes refuses cross-namespace owners), labelled like a cluster-scoped child so
/// the reconciler finds it to prune and the finalizer to delete.
pub fn cross_namespace(cx: &Context, name: String, namespace: String) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace),
        ..cluster_scoped(cx, name)
    }
}

fn owner_labels(cx: &Context) -> BTreeMap<String, String> {
    let mut labels = labels(cx);
    labels.insert(OWNER_NAMESPACE_LABEL.to_owned(), cx.namespace.clone());
    labels
}

/// The name of the installation `namespace/name`'s cluster-scoped children.
pub fn cluster_scoped_name(namespace: &str, name: &str) -> String {
    format!("legate-{namespace}-{name}")
}

/// The name of the ClusterRole (and its binding) that lets the installation `namespace/name`'s
/// agent read Namespaces, with `from: Selector`.
pub fn namespaces_role_name(namespace: &str, name: &str) -> String {
    format!("{}-namespaces", cluster_scoped_name(namespace, name))
}

/// The name of the installation `name`'s bootstrap ConfigMap.
pub fn bootstrap_config_map_name(name: &str) -> String {
    format!("{name}-bootstrap")
}
