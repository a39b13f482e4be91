//! Which namespaces a gateway takes routes from, from its `GatewayInstallation`
//! (`spec.allowedRoutes.namespaces`, as Gateway API's `allowedRoutes`): its own (`Same`, the
//! default), every one (`All`), or those whose labels a selector matches (`Selector`). Pure.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use legate_crds::{
    GatewayInstallation,
    fields::AmbassadorId,
    gateway_installation::{FromNamespaces, RouteNamespaces},
};

use crate::ir::host::selects;

/// Namespace → its labels.
pub type NamespaceLabels = BTreeMap<String, BTreeMap<String, String>>;

/// What the gateway takes from its installation.
#[derive(Clone, Debug, PartialEq)]
pub struct Installation {
    pub namespace: String,
    pub name: String,
    /// `spec.ambassadorId`, `default` when unset.
    pub ambassador_id: String,
    pub routes: Routes,
}

/// `spec.allowedRoutes.namespaces`, resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum Routes {
    Same,
    All,
    Selector(LabelSelector),
}

/// The namespaces admitted now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admitted {
    All,
    Namespaces(BTreeSet<String>),
}

impl Admitted {
    pub fn admits(&self, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Namespaces(set) => set.contains(namespace),
        }
    }
}

impl Installation {
    pub fn new(namespace: &str, name: &str, gwi: &GatewayInstallation) -> Self {
        let spec = &gwi.spec;
        let allowed = spec
            .allowed_routes
            .as_ref()
            .and_then(|a| a.namespaces.as_ref());
        let routes = match allowed {
            Some(RouteNamespaces {
                from: Some(FromNamespaces::All),
                ..
            }) => Routes::All,
            // The schema requires a selector with `Selector`; without one nothing is admitted
            // but the gateway's own namespace, which is the safe reading.
            Some(RouteNamespaces {
                from: Some(FromNamespaces::Selector),
                selector: Some(selector),
            }) => Routes::Selector(selector.clone()),
            _ => Routes::Same,
        };
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ambassador_id: spec
                .ambassador_id
                .clone()
                .unwrap_or_else(|| AmbassadorId::DEFAULT.to_owned()),
            routes,
        }
    }

    /// `NAMESPACE/NAME`, how Legate names an installation in status and field managers.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether admission depends on Namespaces' labels (so they must be watched).
    pub fn selects_namespaces(&self) -> bool {
        matches!(self.routes, Routes::Selector(_))
    }

    /// The namespaces admitted, given every namespace's labels (used by `Selector` only).
    pub fn admitted(&self, namespaces: &NamespaceLabels) -> Admitted {
        match &self.routes {
            Routes::All => Admitted::All,
            Routes::Same => Admitted::Namespaces(BTreeSet::from([self.namespace.clone()])),
            Routes::Selector(selector) => Admitted::Namespaces(
                namespaces
                    .iter()
                    .filter(|(_, labels)| selects(selector, labels))
                    .map(|(name, _)| name.clone())
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installation(yaml: &str) -> Installation {
        let gwi: GatewayInstallation = serde_saphyr::from_str(&format!(
            "apiVersion: legate.dev/v1alpha1\nkind: GatewayInstallation\n\
             metadata: {{name: edge, namespace: gateways}}\nspec:\n{yaml}"
        ))
        .unwrap();
        Installation::new("gateways", "edge", &gwi)
    }

    fn namespaces() -> NamespaceLabels {
        [
            ("gateways", vec![]),
            ("team-a", vec![("legate.dev/routes", "edge")]),
            ("team-b", vec![("legate.dev/routes", "edge"), ("tier", "1")]),
            ("kube-system", vec![]),
        ]
        .into_iter()
        .map(|(ns, labels)| {
            (
                ns.to_owned(),
                labels
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            )
        })
        .collect()
    }

    fn set(names: &[&str]) -> Admitted {
        Admitted::Namespaces(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn by_default_only_the_installations_own_namespace_is_admitted() {
        let i = installation("  replicas: 1");
        assert_eq!(i.admitted(&namespaces()), set(&["gateways"]));
        assert_eq!(i.ambassador_id, "default");
        assert!(!i.selects_namespaces());
    }

    #[test]
    fn all_admits_every_namespace() {
        let i = installation("  allowedRoutes: {namespaces: {from: All}}");
        assert_eq!(i.admitted(&namespaces()), Admitted::All);
        assert!(Admitted::All.admits("kube-system"));
    }

    #[test]
    fn a_selector_admits_the_namespaces_whose_labels_match_and_no_other() {
        let i = installation(
            "  ambassadorId: edge\n  allowedRoutes:\n    namespaces:\n      from: Selector\n      \
             selector: {matchLabels: {legate.dev/routes: edge}}",
        );
        assert!(i.selects_namespaces());
        assert_eq!(i.ambassador_id, "edge");
        let admitted = i.admitted(&namespaces());
        assert_eq!(admitted, set(&["team-a", "team-b"]));
        assert!(
            !admitted.admits("gateways"),
            "its own namespace is not implied"
        );
        assert!(!admitted.admits("kube-system"));
    }

    #[test]
    fn a_selector_with_expressions_follows_label_changes() {
        let i = installation(
            "  allowedRoutes:\n    namespaces:\n      from: Selector\n      selector:\n        \
             matchExpressions: [{key: tier, operator: In, values: ['1']}]",
        );
        let mut labels = namespaces();
        assert_eq!(i.admitted(&labels), set(&["team-b"]));
        labels
            .get_mut("team-a")
            .unwrap()
            .insert("tier".into(), "1".into());
        assert_eq!(i.admitted(&labels), set(&["team-a", "team-b"]));
    }
}
