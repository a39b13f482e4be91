//! Least-privilege RBAC for the agent: exactly the verbs it uses, never `*`.
//!
//! Routes from the installation's own namespace only (`allowedRoutes.namespaces.from: Same`, the
//! default) → a Role and RoleBinding there, so Secrets elsewhere stay out of reach. `All` or
//! `Selector` → a ClusterRole and ClusterRoleBinding, plus read access to Namespaces to evaluate
//! the selector.

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use super::{Context, Rbac, labels};

/// The Emissary-compatible route and policy resources the agent watches (a test keeps this equal
/// to the `getambassador.io` CRDs).
pub const ROUTE_RESOURCES: [&str; 8] = [
    "mappings",
    "hosts",
    "listeners",
    "tlscontexts",
    "tcpmappings",
    "authservices",
    "ratelimitservices",
    "modules",
];

const READ: [&str; 3] = ["get", "list", "watch"];

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

/// The rules the agent needs; `namespaces` adds read access to Namespaces.
pub fn rules(namespaces: bool) -> Vec<PolicyRule> {
    let status: Vec<String> = ROUTE_RESOURCES
        .iter()
        .map(|r| format!("{r}/status"))
        .collect();
    let status: Vec<&str> = status.iter().map(String::as_str).collect();
    let mut rules = vec![
        rule("getambassador.io", &ROUTE_RESOURCES, &READ),
        rule("getambassador.io", &status, &["patch", "update"]),
        rule("", &["services", "secrets"], &READ),
        rule("discovery.k8s.io", &["endpointslices"], &READ),
        rule("", &["events"], &["create", "patch"]),
        rule("events.k8s.io", &["events"], &["create", "patch"]),
    ];
    if namespaces {
        rules.push(rule("", &["namespaces"], &READ));
    }
    rules
}

fn subject(cx: &Context) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: cx.name.clone(),
        namespace: Some(cx.namespace.clone()),
        api_group: None,
    }
}

pub fn build(cx: &Context) -> Rbac {
    if cx.cluster_wide() {
        let metadata = labels::cluster_scoped(cx);
        let name = metadata.name.clone().expect("cluster_scoped names it");
        Rbac::Cluster {
            role: ClusterRole {
                metadata: metadata.clone(),
                rules: Some(rules(true)),
                aggregation_rule: None,
            },
            binding: ClusterRoleBinding {
                metadata,
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".to_owned(),
                    kind: "ClusterRole".to_owned(),
                    name,
                },
                subjects: Some(vec![subject(cx)]),
            },
        }
    } else {
        let metadata = labels::namespaced(cx, cx.name.clone());
        Rbac::Namespaced {
            role: Role {
                metadata: metadata.clone(),
                rules: Some(rules(false)),
            },
            binding: RoleBinding {
                metadata,
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".to_owned(),
                    kind: "Role".to_owned(),
                    name: cx.name.clone(),
                },
                subjects: Some(vec![subject(cx)]),
            },
        }
    }
}
