//! Least-privilege RBAC for the agent: exactly the calls it makes, never `*`, and Secrets and
//! route kinds readable only in the namespaces the installation admits.
//!
//! The agent's calls fall in three sets (the contract with `legate-agent run --installation`):
//!
//! - in the installation's own namespace, always ([`own_namespace_rules`]): its own
//!   GatewayInstallation (watched, its status applied), the Lease that elects the replica writing
//!   that status, Events;
//! - in every admitted namespace ([`route_rules`]): the route kinds and their status, what routes
//!   refer to (Services, Secrets, EndpointSlices or, where discovery.k8s.io/v1 is not served,
//!   Endpoints), Events;
//! - with `from: Selector` only, cluster-wide ([`namespace_rules`]): Namespaces, to evaluate the
//!   selector.
//!
//! Bound as follows, per `spec.allowedRoutes.namespaces.from`:
//!
//! | from | own namespace | route rules |
//! | --- | --- | --- |
//! | `Same` | Role + RoleBinding `<name>` (with the route rules) | (in that Role) |
//! | `All` | Role + RoleBinding `<name>` | ClusterRole + ClusterRoleBinding `legate-<ns>-<name>` |
//! | `Selector` | Role + RoleBinding `<name>` | ClusterRole `legate-<ns>-<name>`, a RoleBinding `legate-<ns>-<name>` in each namespace the selector matches; ClusterRole + ClusterRoleBinding `legate-<ns>-<name>-namespaces` for Namespaces |
//!
//! With `All` the agent watches each kind cluster-wide (one watch), which needs a
//! ClusterRoleBinding; with `Selector` it runs one namespaced watch per admitted namespace, so a
//! RoleBinding per namespace is enough and Secrets elsewhere stay out of reach. A role's
//! `roleRef` is immutable, so each binding's name always refers to the same role whatever `from`
//! becomes: switching modes adds and prunes bindings, it never rewrites one.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        core::v1::Namespace,
        rbac::v1::{
            ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
        },
    },
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};
use kube::core::{Selector, SelectorExt};
use legate_crds::gateway_installation::{FromNamespaces, RouteNamespaces};

use super::{BuildError, Context, labels};

/// The Emissary-compatible route and policy resources the agent watches (a test keeps this equal
/// to the `getambassador.io` CRDs).
pub const ROUTE_RESOURCES: [&str; 13] = [
    "mappings",
    "hosts",
    "listeners",
    "tlscontexts",
    "tcpmappings",
    "authservices",
    "ratelimitservices",
    "logservices",
    "tracingservices",
    "modules",
    "kubernetesserviceresolvers",
    "kubernetesendpointresolvers",
    "consulresolvers",
];

const READ: [&str; 3] = ["get", "list", "watch"];
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const SELECTOR_FIELD: &str = "spec.allowedRoutes.namespaces.selector";

/// How the agent reaches the route kinds (and what they refer to).
// One value per reconcile: the variants' sizes do not matter, plain fields keep matching simple.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum RouteAccess {
    /// `from: Same`: the own namespace's Role holds the route rules too.
    OwnNamespace,
    /// `from: All`: the route rules everywhere, in one ClusterRoleBinding.
    AllNamespaces {
        role: ClusterRole,
        binding: ClusterRoleBinding,
    },
    /// `from: Selector`: the route rules bound in each namespace the selector matches, and
    /// Namespaces readable to evaluate the selector.
    Selected {
        role: ClusterRole,
        /// One per admitted namespace, sorted by namespace. Cross-namespace: no owner reference
        /// can collect these, the finalizer deletes them.
        bindings: Vec<RoleBinding>,
        namespaces_role: ClusterRole,
        namespaces_binding: ClusterRoleBinding,
    },
}

/// The agent's RBAC objects.
#[derive(Clone, Debug, PartialEq)]
pub struct Rbac {
    /// In the installation's namespace: [`own_namespace_rules`] (plus [`route_rules`] with
    /// `from: Same`).
    pub role: Role,
    pub binding: RoleBinding,
    pub routes: RouteAccess,
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

fn events() -> [PolicyRule; 2] {
    [
        rule("", &["events"], &["create", "patch"]),
        rule("events.k8s.io", &["events"], &["create", "patch"]),
    ]
}

/// The name of the Lease that elects which of the installation `name`'s agents writes its status.
pub fn agent_lease_name(name: &str) -> String {
    format!("{name}-agent-status")
}

/// What the agent of the installation `name` uses in the installation's own namespace, whatever
/// it admits. Writes are limited to its own objects by name where Kubernetes allows it (`create`
/// cannot be limited by name).
pub fn own_namespace_rules(name: &str) -> Vec<PolicyRule> {
    let named = |rule: PolicyRule, name: String| PolicyRule {
        resource_names: Some(vec![name]),
        ..rule
    };
    let mut rules = vec![
        rule("legate.dev", &["gatewayinstallations"], &READ),
        named(
            rule(
                "legate.dev",
                &["gatewayinstallations/status"],
                &["get", "patch"],
            ),
            name.to_owned(),
        ),
        rule("coordination.k8s.io", &["leases"], &["create"]),
        named(
            rule(
                "coordination.k8s.io",
                &["leases"],
                &["get", "update", "patch"],
            ),
            agent_lease_name(name),
        ),
        // `/drain` (the pods' preStop hook) acts only once the agent saw its own Pod being
        // deleted.
        rule("", &["pods"], &["get"]),
    ];
    rules.extend(events());
    rules
}

/// What the agent uses in every namespace it admits routes from.
pub fn route_rules() -> Vec<PolicyRule> {
    let status: Vec<String> = ROUTE_RESOURCES
        .iter()
        .map(|r| format!("{r}/status"))
        .collect();
    let status: Vec<&str> = status.iter().map(String::as_str).collect();
    let mut rules = vec![
        rule("getambassador.io", &ROUTE_RESOURCES, &READ),
        rule("getambassador.io", &status, &["get", "patch"]),
        // Endpoints: the fallback where discovery.k8s.io/v1 EndpointSlices are not served.
        rule("", &["services", "secrets", "endpoints"], &READ),
        rule("discovery.k8s.io", &["endpointslices"], &READ),
    ];
    rules.extend(events());
    rules
}

/// What the agent uses cluster-wide with `from: Selector`: Namespaces, to evaluate the selector.
pub fn namespace_rules() -> Vec<PolicyRule> {
    vec![rule("", &["namespaces"], &READ)]
}

/// `spec.allowedRoutes.namespaces.from`, defaulted.
fn from(cx: &Context) -> FromNamespaces {
    route_namespaces(cx)
        .and_then(|n| n.from)
        .unwrap_or_default()
}

fn route_namespaces<'a>(cx: &Context<'a>) -> Option<&'a RouteNamespaces> {
    cx.gwi
        .spec
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref())
}

/// The selector of `from: Selector`, checked for what the API server would refuse in a label
/// selector (the CRD's CEL rule requiring it is not enforced before Kubernetes 1.25).
pub fn namespace_selector(selector: Option<&LabelSelector>) -> Result<Selector, BuildError> {
    let selector = selector.ok_or(BuildError::Missing {
        field: SELECTOR_FIELD,
    })?;
    let invalid = |reason: String| BuildError::Invalid {
        field: SELECTOR_FIELD.to_owned(),
        reason,
    };
    for (i, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        let values = requirement.values.as_deref().unwrap_or_default();
        let needs_values = matches!(requirement.operator.as_str(), "In" | "NotIn");
        if needs_values == values.is_empty() {
            return Err(invalid(format!(
                "matchExpressions[{i}]: operator {:?} {} values",
                requirement.operator,
                if needs_values { "needs" } else { "takes no" }
            )));
        }
    }
    Selector::try_from(selector.clone()).map_err(|e| invalid(e.to_string()))
}

fn subject(cx: &Context) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: cx.name.clone(),
        namespace: Some(cx.namespace.clone()),
        api_group: None,
    }
}

fn role_ref(kind: &str, name: String) -> RoleRef {
    RoleRef {
        api_group: RBAC_GROUP.to_owned(),
        kind: kind.to_owned(),
        name,
    }
}

/// The namespaces among `namespaces` that `selector` admits: matching and not being deleted (a
/// terminating namespace refuses new objects), sorted.
pub fn admitted(selector: &Selector, namespaces: &[Namespace]) -> Vec<String> {
    let none = BTreeMap::new();
    let mut admitted: Vec<String> = namespaces
        .iter()
        .filter(|ns| ns.metadata.deletion_timestamp.is_none())
        .filter(|ns| ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating"))
        .filter(|ns| selector.matches(ns.metadata.labels.as_ref().unwrap_or(&none)))
        .filter_map(|ns| ns.metadata.name.clone())
        .collect();
    admitted.sort();
    admitted.dedup();
    admitted
}

/// The agent's RBAC; `namespaces` are the cluster's Namespaces (only read with `from:
/// Selector`; those the selector does not match are ignored).
pub fn build(cx: &Context, namespaces: &[Namespace]) -> Result<Rbac, BuildError> {
    let from = from(cx);
    let mut rules = own_namespace_rules(&cx.name);
    if from == FromNamespaces::Same {
        // The Role already grants Events: each rule once.
        for rule in route_rules() {
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
    }
    let role = Role {
        metadata: labels::namespaced(cx, cx.name.clone()),
        rules: Some(rules),
    };
    let binding = RoleBinding {
        metadata: labels::namespaced(cx, cx.name.clone()),
        role_ref: role_ref("Role", cx.name.clone()),
        subjects: Some(vec![subject(cx)]),
    };
    let routes_name = labels::cluster_scoped_name(&cx.namespace, &cx.name);
    let routes_role = || ClusterRole {
        metadata: labels::cluster_scoped(cx, routes_name.clone()),
        rules: Some(route_rules()),
        aggregation_rule: None,
    };
    let routes = match from {
        FromNamespaces::Same => RouteAccess::OwnNamespace,
        FromNamespaces::All => RouteAccess::AllNamespaces {
            role: routes_role(),
            binding: ClusterRoleBinding {
                metadata: labels::cluster_scoped(cx, routes_name.clone()),
                role_ref: role_ref("ClusterRole", routes_name.clone()),
                subjects: Some(vec![subject(cx)]),
            },
        },
        FromNamespaces::Selector => {
            let selector =
                namespace_selector(route_namespaces(cx).and_then(|n| n.selector.as_ref()))?;
            let bindings = admitted(&selector, namespaces)
                .into_iter()
                .map(|namespace| RoleBinding {
                    metadata: labels::cross_namespace(cx, routes_name.clone(), namespace),
                    role_ref: role_ref("ClusterRole", routes_name.clone()),
                    subjects: Some(vec![subject(cx)]),
                })
                .collect();
            let namespaces_name = labels::namespaces_role_name(&cx.namespace, &cx.name);
            RouteAccess::Selected {
                role: routes_role(),
                bindings,
                namespaces_role: ClusterRole {
                    metadata: labels::cluster_scoped(cx, namespaces_name.clone()),
                    rules: Some(namespace_rules()),
                    aggregation_rule: None,
                },
                namespaces_binding: ClusterRoleBinding {
                    metadata: labels::cluster_scoped(cx, namespaces_name.clone()),
                    role_ref: role_ref("ClusterRole", namespaces_name),
                    subjects: Some(vec![subject(cx)]),
                },
            }
        }
    };
    Ok(Rbac {
        role,
        binding,
        routes,
    })
}
