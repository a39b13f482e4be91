//! The CSV's `permissions` and `clusterPermissions`, from `config/rbac/`.
//!
//! OLM creates the ServiceAccount, roles and bindings itself from the CSV, so the bundle carries
//! only the rules. Like `operator-sdk generate bundle`, the rules are those of the roles that
//! `config/rbac`'s bindings grant to the operator's ServiceAccount: a role bound to no one (say,
//! one meant for users) is not the operator's.

use serde_json::Value;

use crate::{
    error::{Error, Location, Result},
    source::Document,
};

/// What the operator's ServiceAccount is granted.
#[derive(Clone, Debug, PartialEq)]
pub struct Permissions {
    pub service_account: String,
    /// Rules of the ClusterRoles bound by ClusterRoleBindings.
    pub cluster_rules: Vec<Value>,
    /// Rules of the Roles (or ClusterRoles) bound by RoleBindings, in the install namespace.
    pub namespaced_rules: Vec<Value>,
}

/// `documents` are everything `config/rbac/kustomization.yaml` lists; `listed_in` names it.
pub fn permissions(documents: &[Document], listed_in: &str) -> Result<Permissions> {
    let accounts: Vec<&Document> = documents
        .iter()
        .filter(|d| d.kind() == "ServiceAccount")
        .collect();
    let [account] = accounts[..] else {
        return Err(Error::Field {
            at: Location::file(listed_in),
            message: format!(
                "resources must declare exactly one ServiceAccount (the operator's), found {}",
                accounts.len()
            ),
        });
    };
    let service_account = account.name()?.to_owned();

    let mut cluster_rules = Vec::new();
    let mut namespaced_rules = Vec::new();
    // Roles in the order config declares them, so the CSV reads like role.yaml.
    for role in documents
        .iter()
        .filter(|d| matches!(d.kind(), "ClusterRole" | "Role"))
    {
        let name = role.name()?;
        for binding in documents
            .iter()
            .filter(|b| matches!(b.kind(), "ClusterRoleBinding" | "RoleBinding"))
        {
            if binding.str("roleRef.kind")? != role.kind()
                || binding.str("roleRef.name")? != name
                || !binds(binding, &service_account)?
            {
                continue;
            }
            let rules = role.list("rules")?.iter().cloned();
            match binding.kind() {
                "ClusterRoleBinding" => cluster_rules.extend(rules),
                _ => namespaced_rules.extend(rules),
            }
        }
    }
    check_bindings_resolve(documents)?;
    Ok(Permissions {
        service_account,
        cluster_rules,
        namespaced_rules,
    })
}

/// Whether a binding's subjects include the ServiceAccount (namespace aside: OLM installs into
/// a namespace of the user's choosing).
fn binds(binding: &Document, service_account: &str) -> Result<bool> {
    let subjects = binding.list("subjects")?;
    Ok(subjects.iter().any(|s| {
        s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
            && s.get("name").and_then(Value::as_str) == Some(service_account)
    }))
}

/// A binding to a role that config does not declare would silently drop rules from the CSV.
fn check_bindings_resolve(documents: &[Document]) -> Result<()> {
    for binding in documents
        .iter()
        .filter(|b| matches!(b.kind(), "ClusterRoleBinding" | "RoleBinding"))
    {
        let kind = binding.str("roleRef.kind")?;
        let name = binding.str("roleRef.name")?;
        let declared = documents
            .iter()
            .any(|d| d.kind() == kind && d.name().is_ok_and(|n| n == name));
        if !declared {
            return Err(binding.error(
                "roleRef",
                &format!("{kind} {name} is not declared in config/rbac"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::source::parse_documents;

    const RBAC: &str = "
kind: ServiceAccount
metadata: {name: op}
---
kind: ClusterRole
metadata: {name: op}
rules: [{apiGroups: [apps], resources: [deployments], verbs: [get]}]
---
kind: ClusterRole
metadata: {name: for-users}
rules: [{apiGroups: [x], resources: [y], verbs: [get]}]
---
kind: Role
metadata: {name: election}
rules: [{apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get]}]
---
kind: ClusterRoleBinding
metadata: {name: op}
roleRef: {kind: ClusterRole, name: op}
subjects: [{kind: ServiceAccount, name: op, namespace: ns}]
---
kind: RoleBinding
metadata: {name: election}
roleRef: {kind: Role, name: election}
subjects: [{kind: ServiceAccount, name: op, namespace: ns}]
";

    #[test]
    fn rules_of_roles_bound_to_the_service_account() {
        let documents = parse_documents("rbac.yaml", RBAC).unwrap();
        let permissions = permissions(&documents, "kustomization.yaml").unwrap();
        assert_eq!(permissions.service_account, "op");
        assert_eq!(
            permissions.cluster_rules,
            [json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]})]
        );
        assert_eq!(
            permissions.namespaced_rules,
            [
                json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]})
            ]
        );
    }

    #[test]
    fn a_binding_to_an_undeclared_role_is_an_error() {
        let text = RBAC.replace(
            "roleRef: {kind: Role, name: election}",
            "roleRef: {kind: Role, name: gone}",
        );
        let documents = parse_documents("rbac.yaml", &text).unwrap();
        let error = permissions(&documents, "kustomization.yaml").unwrap_err();
        assert_eq!(
            error.to_string(),
            "rbac.yaml: document 6: roleRef: Role gone is not declared in config/rbac"
        );
    }

    #[test]
    fn exactly_one_service_account() {
        let documents = parse_documents("rbac.yaml", "kind: Role\nmetadata: {name: r}\n").unwrap();
        let error = permissions(&documents, "config/rbac/kustomization.yaml").unwrap_err();
        assert!(
            error.to_string().starts_with(
                "config/rbac/kustomization.yaml: resources must declare exactly one ServiceAccount"
            ),
            "{error}"
        );
    }
}
