//! Which Module configures the gateway. Emissary reads one Module only, the one named
//! `ambassador` (`ir.py`: `aconf.get_module("ambassador")`), and only in its own namespace; a
//! Module without `metadata.namespace` (a directory's) counts as in that namespace, as Hosts and
//! Listeners do ([`super::host::hosts`]). Any other Module is not read, and says so: a team's
//! namespace cannot change what every other team's routes get.

use legate_crds::{Module, ObjectRef, Resource};

use super::{Reason, Rejection, Settings, for_gateway};

/// The name of the Module whose `spec.config` is the gateway's.
pub const GATEWAY_MODULE: &str = "ambassador";

/// How messages name `module` (`Module NS/NAME`), without copying it into a [`Resource`].
pub fn object_ref(module: &Module) -> ObjectRef {
    ObjectRef {
        kind: "Module".to_owned(),
        namespace: module.metadata.namespace.clone(),
        name: module.metadata.name.clone().unwrap_or_default(),
    }
}

/// The Module's rejection for settings it cannot have (`message` names each field); those
/// settings are left at their defaults and the rest of the Module applies.
pub fn invalid(module: &Module, message: impl Into<String>) -> Rejection {
    Rejection::new(object_ref(module), Reason::Invalid, message)
}

/// The gateway's Module among `resources`: named `ambassador`, in `settings.namespace`, served
/// by this gateway (`ambassador_id`). Should several qualify (a directory may repeat one), the
/// first wins, so the answer does not depend on anything but the input.
pub fn gateway_module<'a>(resources: &[&'a Resource], settings: &Settings) -> Option<&'a Module> {
    resources.iter().find_map(|r| match r {
        Resource::Module(m) if is_gateway_module(r, settings) => Some(m),
        _ => None,
    })
}

fn is_gateway_module(r: &Resource, settings: &Settings) -> bool {
    let meta = r.meta();
    matches!(r, Resource::Module(_))
        && meta.name.as_deref() == Some(GATEWAY_MODULE)
        && meta
            .namespace
            .as_deref()
            .is_none_or(|ns| ns == settings.namespace)
        && for_gateway(r, &settings.ambassador_id)
}

/// Who may read the diagnostics page (`diag`): the gateway Module's `diagnostics`, as Emissary
/// reads it: on unless `enabled: false`; callers on the pod's own loopback only, unless
/// `allow_non_local: true`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagnosticsAccess {
    pub enabled: bool,
    pub allow_non_local: bool,
}

impl Default for DiagnosticsAccess {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_non_local: false,
        }
    }
}

impl DiagnosticsAccess {
    pub fn of(module: Option<&Module>) -> Self {
        let d = module.and_then(|m| m.spec.config.diagnostics.as_ref());
        Self {
            enabled: d.and_then(|d| d.enabled).unwrap_or(true),
            allow_non_local: d.and_then(|d| d.allow_non_local).unwrap_or(false),
        }
    }
}

/// A note on every other Module of this gateway: nothing it sets is read.
pub fn notes(resources: &[&Resource], settings: &Settings, out: &mut Vec<Rejection>) {
    for r in resources {
        if matches!(r, Resource::Module(_)) && !is_gateway_module(r, settings) {
            out.push(Rejection::new(
                r.object_ref(),
                Reason::NotSupported,
                format!(
                    "not read: only the Module named {GATEWAY_MODULE} in namespace {} (the \
                     gateway's) configures this gateway",
                    settings.namespace
                ),
            ));
        }
    }
}

/// What the tests of the stages that read the gateway Module build it from.
#[cfg(test)]
pub(crate) mod fixtures {
    use legate_crds::Resource;

    use crate::ir::Settings;

    /// A Module `name` in `namespace` with `config` (YAML), as the loader reads it.
    pub fn module(name: &str, namespace: &str, config: &str) -> Resource {
        let config: String = config.lines().map(|l| format!("    {l}\n")).collect();
        let yaml = format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Module\n\
             metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  config:\n{config}"
        );
        let loaded = legate_crds::loader::load_str("test.yaml", &yaml)
            .unwrap_or_else(|e| panic!("YAML ({e}):\n{yaml}"));
        assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
        match &loaded.resources[..] {
            [r] => r.clone(),
            other => panic!("one Module, got {other:?}"),
        }
    }

    /// The gateway's settings: its namespace is `gw`.
    pub fn settings() -> Settings {
        Settings {
            namespace: "gw".to_owned(),
            ..Settings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str, namespace: Option<&str>, ambassador_id: &[&str]) -> Resource {
        let mut m = Module::new(name, legate_crds::module::ModuleSpec::default());
        m.metadata.namespace = namespace.map(str::to_owned);
        m.spec.ambassador_id = legate_crds::fields::AmbassadorId(
            ambassador_id.iter().map(|id| (*id).to_owned()).collect(),
        );
        Resource::Module(m)
    }

    fn settings() -> Settings {
        Settings {
            namespace: "gw".to_owned(),
            ..Settings::default()
        }
    }

    fn chosen(resources: &[Resource]) -> Option<(String, Option<String>)> {
        let refs: Vec<&Resource> = resources.iter().collect();
        gateway_module(&refs, &settings()).map(|m| {
            (
                m.metadata.name.clone().unwrap_or_default(),
                m.metadata.namespace.clone(),
            )
        })
    }

    #[test]
    fn the_ambassador_module_in_the_gateway_namespace() {
        let resources = [
            module("other", Some("gw"), &[]),
            module("ambassador", Some("team"), &[]),
            module("ambassador", Some("gw"), &[]),
        ];
        assert_eq!(
            chosen(&resources),
            Some(("ambassador".to_owned(), Some("gw".to_owned())))
        );
    }

    #[test]
    fn a_module_without_namespace_is_in_the_gateway_namespace() {
        assert_eq!(
            chosen(&[module("ambassador", None, &[])]),
            Some(("ambassador".to_owned(), None))
        );
    }

    #[test]
    fn another_name_another_namespace_or_another_gateway_does_not_apply() {
        assert_eq!(chosen(&[module("other", Some("gw"), &[])]), None);
        assert_eq!(chosen(&[module("ambassador", Some("team"), &[])]), None);
        assert_eq!(chosen(&[module("ambassador", Some("gw"), &["blue"])]), None);
    }
}
