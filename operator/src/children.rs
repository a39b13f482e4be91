//! The children of an installation as the API server sees them: kind, namespace, name and the
//! manifest to apply. One uniform shape, so applying, pruning and cleaning up are one piece of
//! code for every kind.
//!
//! Most children sit in a slot whose name follows from the installation's ([`Slot::all`]). The
//! RoleBindings that admit other namespaces (`from: Selector`) are as many as the namespaces the
//! selector matches: the reconciler finds those by their labels instead.

use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{ConfigMap, ObjectReference, Service, ServiceAccount},
    policy::v1::PodDisruptionBudget,
    rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
};
use kube::{Resource, discovery::ApiResource};
use serde_json::Value;

use crate::build::{Desired, bootstrap_config_map_name, cluster_scoped_name, namespaces_role_name};

/// Every kind the operator may create for an installation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChildKind {
    ServiceAccount,
    Role,
    RoleBinding,
    ClusterRole,
    ClusterRoleBinding,
    ConfigMap,
    Deployment,
    Service,
    PodDisruptionBudget,
    HorizontalPodAutoscaler,
}

impl ChildKind {
    pub const ALL: [Self; 10] = [
        Self::ServiceAccount,
        Self::Role,
        Self::RoleBinding,
        Self::ClusterRole,
        Self::ClusterRoleBinding,
        Self::ConfigMap,
        Self::Deployment,
        Self::Service,
        Self::PodDisruptionBudget,
        Self::HorizontalPodAutoscaler,
    ];

    pub fn api_resource(self) -> ApiResource {
        fn erase<K: Resource<DynamicType = ()>>() -> ApiResource {
            ApiResource::erase::<K>(&())
        }
        match self {
            Self::ServiceAccount => erase::<ServiceAccount>(),
            Self::Role => erase::<Role>(),
            Self::RoleBinding => erase::<RoleBinding>(),
            Self::ClusterRole => erase::<ClusterRole>(),
            Self::ClusterRoleBinding => erase::<ClusterRoleBinding>(),
            Self::ConfigMap => erase::<ConfigMap>(),
            Self::Deployment => erase::<Deployment>(),
            Self::Service => erase::<Service>(),
            Self::PodDisruptionBudget => erase::<PodDisruptionBudget>(),
            Self::HorizontalPodAutoscaler => erase::<HorizontalPodAutoscaler>(),
        }
    }

    pub fn cluster_scoped(self) -> bool {
        matches!(self, Self::ClusterRole | Self::ClusterRoleBinding)
    }

    fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.api_resource().kind == kind)
    }
}

/// Where one child lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    pub kind: ChildKind,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
}

impl Slot {
    /// The slot of `kind` for the installation `namespace/name`: the names the builders give.
    pub fn of(kind: ChildKind, namespace: &str, name: &str) -> Self {
        let (namespace, name) = match kind {
            ChildKind::ClusterRole | ChildKind::ClusterRoleBinding => {
                (None, cluster_scoped_name(namespace, name))
            }
            ChildKind::ConfigMap => (Some(namespace), bootstrap_config_map_name(name)),
            _ => (Some(namespace), name.to_owned()),
        };
        Self {
            kind,
            namespace: namespace.map(str::to_owned),
            name,
        }
    }

    /// Every slot with a fixed name an installation can fill: one of each kind, and the
    /// ClusterRole and ClusterRoleBinding that let its agent read Namespaces. (Not the
    /// RoleBindings in admitted namespaces: those are found by label.)
    pub fn all(namespace: &str, name: &str) -> Vec<Self> {
        let mut slots: Vec<Self> = ChildKind::ALL
            .into_iter()
            .map(|kind| Self::of(kind, namespace, name))
            .collect();
        for kind in [ChildKind::ClusterRole, ChildKind::ClusterRoleBinding] {
            slots.push(Self {
                kind,
                namespace: None,
                name: namespaces_role_name(namespace, name),
            });
        }
        slots
    }
}

impl Slot {
    /// A reference to the object in this slot, for Events.
    pub fn object_reference(&self) -> ObjectReference {
        let resource = self.kind.api_resource();
        ObjectReference {
            api_version: Some(resource.api_version),
            kind: Some(resource.kind),
            namespace: self.namespace.clone(),
            name: Some(self.name.clone()),
            ..ObjectReference::default()
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = self.kind.api_resource().kind;
        match &self.namespace {
            Some(ns) => write!(f, "{kind} {ns}/{}", self.name),
            None => write!(f, "{kind} {}", self.name),
        }
    }
}

/// One object to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub slot: Slot,
    pub manifest: Value,
}

/// The children of `desired`, in apply order.
pub fn children(desired: &Desired) -> Vec<Child> {
    desired
        .manifests()
        .into_iter()
        .map(|manifest| {
            let kind = manifest["kind"].as_str().unwrap_or_default();
            let kind = ChildKind::from_kind(kind)
                .unwrap_or_else(|| panic!("the builders produced an unknown kind {kind:?}"));
            let metadata = &manifest["metadata"];
            let slot = Slot {
                kind,
                namespace: metadata["namespace"].as_str().map(str::to_owned),
                name: metadata["name"].as_str().unwrap_or_default().to_owned(),
            };
            Child { slot, manifest }
        })
        .collect()
}
