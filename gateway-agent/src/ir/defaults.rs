//! The gateway Module's defaults for every Mapping: its upstream connection policy
//! ([`upstream_policy`]), its CORS policy ([`cors`]), `add_linkerd_headers`, and the header
//! settings of its `defaults` ([`HeaderDefaults`]); and the TLSContexts Mappings originate TLS
//! with ([`upstream_tls`]). Every compiled Mapping depends on them, so the builder compiles
//! every Mapping again when they change (rare).

use std::collections::BTreeMap;

use legate_crds::{Module, fields::AddedHeader};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    Reason, Rejection, cluster_tuning, cors,
    envoy_rules::{Side, re2::RegexLimit},
    mapping, module, rate_limit, upstream_policy, upstream_tls,
};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MappingDefaults {
    pub policy: upstream_policy::Defaults,
    pub cors: cors::ModuleDefault,
    /// `add_linkerd_headers`, for Mappings that do not set it.
    pub add_linkerd_headers: bool,
    /// `defaults`' header settings, for Mappings that do not set them.
    pub headers: HeaderDefaults,
    /// `use_ambassador_namespace_for_service_resolution`: an unqualified `service` names a
    /// Service in the gateway's namespace, not the Mapping's.
    pub gateway_namespace_services: bool,
    /// Address families ([`cluster_tuning`]).
    pub tuning: cluster_tuning::Defaults,
    /// The largest regex, in RE2 instructions: the Module's `regex_max_size`, else Emissary's
    /// 200.
    pub regex_max_size: RegexLimit,
    /// What the Module sets for them that cannot be used, each naming its field; those
    /// defaults are left out, the others apply.
    pub rejections: Vec<Rejection>,
    /// The TLSContexts as `tls: <name>` originates with them.
    pub origination: upstream_tls::Contexts,
    /// Which AuthServices check which routes ([`super::auth`]).
    pub auth: super::auth::Selection,
    /// The RateLimitService's domain and the Module's default labels for it ([`rate_limit`]);
    /// `None` without a RateLimitService.
    pub rate_limit: Option<rate_limit::RouteDefaults>,
}

impl MappingDefaults {
    /// The defaults the gateway Module (see [`super::module::gateway_module`]) sets.
    pub fn new(module: Option<&Module>) -> Self {
        let mut rejections = Vec::new();
        let cors = cors::ModuleDefault::new(module, &mut rejections);
        let policy = upstream_policy::Defaults::new(module);
        rejections.extend(policy.rejection.clone());
        let headers = module.map_or_else(HeaderDefaults::default, |m| {
            HeaderDefaults::new(m, &mut rejections)
        });
        let tuning = cluster_tuning::Defaults::new(module, &mut rejections);
        let regex_max_size = regex_max_size(module, &mut rejections);
        Self {
            headers,
            gateway_namespace_services: module.is_some_and(|m| {
                m.spec
                    .config
                    .use_ambassador_namespace_for_service_resolution
                    == Some(true)
            }),
            policy,
            cors,
            add_linkerd_headers: module
                .is_some_and(|m| m.spec.config.add_linkerd_headers == Some(true)),
            tuning,
            regex_max_size,
            rejections,
            origination: upstream_tls::Contexts::default(),
            auth: super::auth::Selection::default(),
            rate_limit: None,
        }
    }

    /// With the AuthServices of the build ([`super::auth::Selection::new`]).
    pub fn with_auth(self, auth: super::auth::Selection) -> Self {
        Self { auth, ..self }
    }

    /// With what the gateway's RateLimitService makes of Mappings' labels
    /// ([`rate_limit::select`]).
    pub fn with_rate_limit(self, rate_limit: Option<rate_limit::RouteDefaults>) -> Self {
        Self { rate_limit, ..self }
    }

    /// With the TLSContexts of the build ([`upstream_tls::Contexts::new`]).
    pub fn with_origination(self, origination: upstream_tls::Contexts) -> Self {
        Self {
            origination,
            ..self
        }
    }
}

impl MappingDefaults {
    /// The namespace an unqualified `service` of a Mapping in `mapping_namespace` is qualified
    /// with (Emissary's `normalize_service_name`): the Mapping's own, or with
    /// `use_ambassador_namespace_for_service_resolution`, the gateway's (`service` then stays
    /// unqualified and resolves there).
    pub fn service_namespace<'a>(&self, mapping_namespace: &'a str, gateway: &'a str) -> &'a str {
        if self.gateway_namespace_services {
            gateway
        } else {
            mapping_namespace
        }
    }
}

/// The Module's `regex_max_size` (Emissary passes it as every regex's `max_program_size`); 0,
/// which no regex fits, is rejected on the Module and Emissary's 200 kept.
fn regex_max_size(module: Option<&Module>, rejections: &mut Vec<Rejection>) -> RegexLimit {
    let default = RegexLimit::default();
    let Some((module, size)) = module.and_then(|m| Some((m, m.spec.config.regex_max_size?.get())))
    else {
        return default;
    };
    match usize::try_from(size) {
        Ok(size) if size > 0 => RegexLimit(size),
        _ => {
            rejections.push(module::invalid(
                module,
                format!(
                    "spec.config.regex_max_size: {size} leaves no room for any regex; {} \
                     (Emissary's default) applies",
                    default.0
                ),
            ));
            default
        }
    }
}

/// The Module's `defaults` Emissary applies to Mappings (`irhttpmapping.py`, `AllowedKeys` with
/// defaults, and `IRResource.lookup_default`): each key from `defaults.httpmapping`, else from
/// `defaults` itself, for a Mapping that does not write the key at all (an empty value written
/// on the Mapping wins, as in Emissary).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeaderDefaults {
    pub add_request_headers: Option<BTreeMap<String, AddedHeader>>,
    pub add_response_headers: Option<BTreeMap<String, AddedHeader>>,
    pub remove_request_headers: Option<Vec<String>>,
    pub remove_response_headers: Option<Vec<String>>,
}

/// The keys of `defaults` (or `defaults.httpmapping`) that are applied.
const APPLIED: [&str; 4] = [
    "add_request_headers",
    "add_response_headers",
    "remove_request_headers",
    "remove_response_headers",
];

/// The lookup class Emissary gives Mappings.
const CLASS: &str = "httpmapping";

impl HeaderDefaults {
    /// `module`'s defaults; one that does not parse, or that a Mapping could not use (a header
    /// name Envoy refuses), is rejected on the Module naming it and left out. Keys Legate does
    /// not apply are named in a note.
    pub fn new(module: &Module, rejections: &mut Vec<Rejection>) -> Self {
        let Some(defaults) = module.spec.config.defaults.as_ref() else {
            return Self::default();
        };
        let class = defaults.get(CLASS).and_then(Value::as_object);
        let mut problems = Vec::new();
        let lookup = |key: &str| -> Option<(String, Value)> {
            class
                .and_then(|c| c.get(key))
                .map(|v| (format!("spec.config.defaults.{CLASS}.{key}"), v.clone()))
                .or_else(|| {
                    defaults
                        .get(key)
                        .map(|v| (format!("spec.config.defaults.{key}"), v.clone()))
                })
        };
        let out = Self {
            add_request_headers: parsed(lookup("add_request_headers"), &mut problems, |f, v| {
                mapping::added_headers(f, Some(v), Side::Request)
            }),
            add_response_headers: parsed(lookup("add_response_headers"), &mut problems, |f, v| {
                mapping::added_headers(f, Some(v), Side::Response)
            }),
            remove_request_headers: parsed(
                lookup("remove_request_headers"),
                &mut problems,
                |f, v| mapping::removed_headers(f, Some(v), Side::Request),
            ),
            remove_response_headers: parsed(
                lookup("remove_response_headers"),
                &mut problems,
                |f, v| mapping::removed_headers(f, Some(v), Side::Response),
            ),
        };
        if !problems.is_empty() {
            rejections.push(module::invalid(module, problems.join("; ")));
        }
        let unused: Vec<String> = defaults
            .iter()
            .flat_map(|(key, value)| match (key.as_str(), value.as_object()) {
                (CLASS, Some(class)) => class
                    .keys()
                    .map(|k| format!("spec.config.defaults.{CLASS}.{k}"))
                    .collect(),
                _ => vec![format!("spec.config.defaults.{key}")],
            })
            .filter(|field| !APPLIED.iter().any(|k| field.ends_with(&format!(".{k}"))))
            .collect();
        if !unused.is_empty() {
            rejections.push(Rejection::new(
                module::object_ref(module),
                Reason::NotSupported,
                format!(
                    "not applied: {} (Mappings take {} from defaults)",
                    unused.join(", "),
                    APPLIED.join(", ")
                ),
            ));
        }
        out
    }
}

/// A default's value as its Mapping field's type, checked as a Mapping's own would be.
fn parsed<T: DeserializeOwned, U>(
    found: Option<(String, Value)>,
    problems: &mut Vec<String>,
    check: impl Fn(&str, &T) -> Result<U, String>,
) -> Option<T> {
    let (field, value) = found?;
    let parsed = serde_json::from_value::<T>(value)
        .map_err(|e| format!("{field}: {e}"))
        .and_then(|v| check(&field, &v).map(|_| v));
    parsed.map_err(|p| problems.push(p)).ok()
}

#[cfg(test)]
mod tests {
    use legate_crds::Resource;

    use super::*;

    fn module_with(config: &str) -> Module {
        match crate::ir::module::fixtures::module("ambassador", "gw", config) {
            Resource::Module(m) => m,
            other => unreachable!("{other:?}"),
        }
    }

    #[test]
    fn the_httpmapping_class_wins_over_the_bare_key_and_other_keys_are_named() {
        let module = module_with(
            "defaults:
  add_response_headers: {x-bare: b}
  remove_request_headers: [x-drop]
  tls_secret_namespacing: false
  httpmapping:
    add_response_headers: {x-class: c}
    timeout_ms: 10",
        );
        let mut rejections = Vec::new();
        let d = HeaderDefaults::new(&module, &mut rejections);
        assert_eq!(
            d.add_response_headers.unwrap().keys().collect::<Vec<_>>(),
            ["x-class"]
        );
        assert_eq!(d.remove_request_headers, Some(vec!["x-drop".to_owned()]));
        assert_eq!(d.add_request_headers, None);
        assert_eq!(rejections.len(), 1);
        assert_eq!(rejections[0].reason, Reason::NotSupported);
        assert_eq!(
            rejections[0].message,
            "not applied: spec.config.defaults.httpmapping.timeout_ms, \
             spec.config.defaults.tls_secret_namespacing (Mappings take add_request_headers, \
             add_response_headers, remove_request_headers, remove_response_headers from defaults)"
        );
    }

    #[test]
    fn a_default_a_mapping_could_not_use_is_rejected_on_the_module_by_name() {
        let module = module_with(
            "defaults:
  add_request_headers: {\"bad header\": v}
  remove_response_headers: nope
  add_response_headers: {x-ok: fine}",
        );
        let mut rejections = Vec::new();
        let d = HeaderDefaults::new(&module, &mut rejections);
        assert!(d.add_response_headers.is_some());
        assert_eq!(d.add_request_headers, None);
        assert_eq!(d.remove_response_headers, None);
        assert_eq!(rejections.len(), 1);
        let message = &rejections[0].message;
        assert!(
            message.contains("spec.config.defaults.add_request_headers")
                && message.contains("spec.config.defaults.remove_response_headers"),
            "{message}"
        );
    }
}

#[cfg(test)]
mod regex_tests {
    use legate_crds::Resource;

    use super::*;

    fn defaults_of(config: &str) -> MappingDefaults {
        match crate::ir::module::fixtures::module("ambassador", "gw", config) {
            Resource::Module(m) => MappingDefaults::new(Some(&m)),
            other => unreachable!("{other:?}"),
        }
    }

    #[test]
    fn regex_max_size_is_the_modules_else_emissarys_200_and_zero_is_refused() {
        assert_eq!(MappingDefaults::new(None).regex_max_size, RegexLimit(200));
        assert_eq!(MappingDefaults::default().regex_max_size, RegexLimit(200));
        assert_eq!(
            defaults_of("regex_max_size: 500").regex_max_size,
            RegexLimit(500)
        );
        let zero = defaults_of("regex_max_size: 0");
        assert_eq!(zero.regex_max_size, RegexLimit(200));
        assert!(
            zero.rejections[0]
                .message
                .starts_with("spec.config.regex_max_size: 0 leaves no room"),
            "{:?}",
            zero.rejections
        );
    }
}
