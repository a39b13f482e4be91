//! CORS: a Mapping's `cors`, else the gateway Module's `spec.config.cors`, validated into the
//! policy its route answers cross-origin requests with.
//!
//! Emissary (`python/ambassador/src/ambassador/ir/ircors.py`) renames the keys to Envoy's and
//! drops those whose value is falsy: `methods`, `headers` and `exposed_headers` are joined with
//! `", "` into one header value each, `credentials: false` and empty lists are left out (Envoy's
//! defaults), `max_age` is the string written, and every origin becomes an exact string matcher
//! (Envoy reads an origin `*` as "any origin"). There are no regex origins in v3alpha1 (nor in
//! Emissary's IR). `envoy/v3/v3route.py` then gives each route its group's `cors`, else the
//! Module's: a Mapping's own policy replaces the default whole, keys are not merged, and
//! `cors: {}` is a policy that allows no origin. A `host_redirect` route gets none (the route is
//! written before CORS is looked at), and a shadow Mapping's is not its group's
//! (`irhttpmappinggroup.py` flattens its non-shadow Mappings only).
//!
//! Within a canary group Emissary flattens `cors`: every member's route carries the same policy,
//! that of the last member setting one. The group's members here are in namespace/name order;
//! [`flatten`] gives every member the last own policy in that order, so a preflight gets the same
//! answer whichever member the random draw picks.
//!
//! What Emissary passes on unchecked and Envoy or a browser cannot use is refused naming the
//! field: an empty origin (no request has one), a value with NUL/CR/LF (not a header value), a
//! `max_age` that is not a number of seconds (`-1`, `10s`: browsers ignore it). A bad Mapping
//! `cors` refuses the Mapping; a bad Module `cors` rejects the Module, and no default applies.

use std::sync::Arc;

use legate_crds::{Module, mapping::Cors};

use super::{Refusal, Rejection, envoy_rules, mapping::Route};

/// A validated CORS policy, in Envoy's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Allowed `Origin`s, compared exactly; `*` allows any. Empty: none is allowed.
    pub origins: Vec<String>,
    /// `Access-Control-Allow-Methods`, the list joined; `None` leaves it out.
    pub methods: Option<String>,
    /// `Access-Control-Allow-Headers`.
    pub headers: Option<String>,
    /// `Access-Control-Expose-Headers`.
    pub exposed_headers: Option<String>,
    /// `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
    /// `Access-Control-Max-Age`, in seconds, as written.
    pub max_age: Option<String>,
}

/// Where a route's policy comes from: its group flattens the Mappings' own ones only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Mapping,
    Module,
}

/// The policy a route carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteCors {
    pub policy: Arc<Policy>,
    pub source: Source,
}

/// The gateway Module's default policy. Every compiled Mapping without its own depends on it,
/// so the builder starts from scratch when it changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleDefault(Option<Arc<Policy>>);

impl ModuleDefault {
    /// The default of the gateway Module (see [`super::module::gateway_module`]): none without
    /// one, without `cors`, or with an invalid `cors`, which `rejections` then names.
    pub fn new(module: Option<&Module>, rejections: &mut Vec<Rejection>) -> Self {
        let Some(module) = module else {
            return Self(None);
        };
        let Some(cors) = &module.spec.config.cors else {
            return Self(None);
        };
        match validate("spec.config.cors", cors) {
            Ok(policy) => Self(Some(Arc::new(policy))),
            Err(problems) => {
                rejections.push(super::module::invalid(module, problems.join("; ")));
                Self(None)
            }
        }
    }

    #[cfg(test)]
    fn of(policy: Policy) -> Self {
        Self(Some(Arc::new(policy)))
    }
}

/// A route's policy: the Mapping's own `cors` (refused with the field named if invalid), else
/// the Module's default. A redirect has none, as in Emissary.
pub fn for_route(
    own: Option<&Cors>,
    default: &ModuleDefault,
    redirect: bool,
) -> Result<Option<RouteCors>, Refusal> {
    if redirect {
        return Ok(None);
    }
    Ok(match own {
        Some(c) => Some(RouteCors {
            policy: Arc::new(validate("cors", c).map_err(|p| Refusal::from(p.join("; ")))?),
            source: Source::Mapping,
        }),
        None => default.0.clone().map(|policy| RouteCors {
            policy,
            source: Source::Module,
        }),
    })
}

/// Gives every member of a canary group the last own policy among them (Emissary's flattening);
/// without any, each keeps the Module's default it was compiled with.
pub fn flatten(members: &mut [Route]) {
    let group = members
        .iter()
        .rev()
        .filter_map(|r| r.cors.as_ref())
        .find(|c| c.source == Source::Mapping)
        .cloned();
    if let Some(group) = group {
        for r in members {
            r.cors = Some(group.clone());
        }
    }
}

/// `c` as Envoy takes it, or one message a bad field; `field` is where `c` is (`cors`,
/// `spec.config.cors`).
pub fn validate(field: &str, c: &Cors) -> Result<Policy, Vec<String>> {
    let mut problems = Vec::new();
    let origins = c.origins.clone().unwrap_or_default();
    for (i, origin) in origins.iter().enumerate() {
        if let Err(v) =
            envoy_rules::non_empty_header_value(&format!("{field}.origins[{i}]"), origin)
        {
            problems.push(match v.problem {
                envoy_rules::Problem::Empty => {
                    format!("{field}.origins[{i}]: is empty; no request has an empty Origin")
                }
                _ => v.to_string(),
            });
        }
    }
    let mut joined = |name: &str, values: &Option<Vec<String>>| -> Option<String> {
        let values = values.as_deref().filter(|v| !v.is_empty())?;
        for (i, value) in values.iter().enumerate() {
            if let Err(v) = envoy_rules::header_value(&format!("{field}.{name}[{i}]"), value) {
                problems.push(v.to_string());
            }
        }
        Some(values.join(", "))
    };
    let methods = joined("methods", &c.methods);
    let headers = joined("headers", &c.headers);
    let exposed_headers = joined("exposed_headers", &c.exposed_headers);
    // Emissary leaves an empty string out, as it does every falsy value.
    let max_age = c.max_age.clone().filter(|m| !m.is_empty());
    if let Some(m) = &max_age
        && !m.bytes().all(|b| b.is_ascii_digit())
    {
        problems.push(format!(
            "{field}.max_age: {m:?} is not a number of seconds (0 or more, digits only, such as \
             \"86400\")"
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Policy {
        origins,
        methods,
        headers,
        exposed_headers,
        credentials: c.credentials == Some(true),
        max_age,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Reason;
    use legate_crds::Resource;

    fn cors(yaml: &str) -> Cors {
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
    }

    fn policy(yaml: &str) -> Policy {
        validate("cors", &cors(yaml)).unwrap_or_else(|p| panic!("{yaml}: {p:?}"))
    }

    fn problems(yaml: &str) -> Vec<String> {
        validate("cors", &cors(yaml)).expect_err(yaml)
    }

    #[test]
    fn every_field_as_emissary_renames_it() {
        // ircors.py: lists joined with ", ", origins exact, max_age as written.
        assert_eq!(
            policy(
                "origins: [https://a.example.com, \"*\"]
methods: [GET, POST, OPTIONS]
headers: [Content-Type, X-Custom]
exposed_headers: [X-Trace]
credentials: true
max_age: \"86400\""
            ),
            Policy {
                origins: vec!["https://a.example.com".into(), "*".into()],
                methods: Some("GET, POST, OPTIONS".into()),
                headers: Some("Content-Type, X-Custom".into()),
                exposed_headers: Some("X-Trace".into()),
                credentials: true,
                max_age: Some("86400".into()),
            }
        );
    }

    #[test]
    fn falsy_values_are_left_out_as_emissary_does() {
        // `if value:` in ircors.py: no key for false, empty lists or an empty string.
        let none = Policy {
            origins: vec![],
            methods: None,
            headers: None,
            exposed_headers: None,
            credentials: false,
            max_age: None,
        };
        assert_eq!(policy("{}"), none);
        assert_eq!(
            policy(
                "{origins: [], methods: [], headers: [], exposed_headers: [], credentials: false, max_age: \"\"}"
            ),
            none
        );
        // A list already written as one comma-separated entry passes as Emissary joins it.
        assert_eq!(
            policy("methods: [\"GET, POST\"]").methods.as_deref(),
            Some("GET, POST")
        );
        assert_eq!(policy("max_age: \"0\"").max_age.as_deref(), Some("0"));
    }

    #[test]
    fn what_envoy_or_a_browser_cannot_use_is_refused_naming_the_field() {
        assert_eq!(
            problems("origins: [https://a.example.com, \"\"]"),
            ["cors.origins[1]: is empty; no request has an empty Origin"]
        );
        for bad in ["\"-1\"", "\"10s\"", "\"1.5\"", "\" 60\""] {
            let p = problems(&format!("max_age: {bad}"));
            assert_eq!(p.len(), 1, "{p:?}");
            assert!(
                p[0].starts_with("cors.max_age: ") && p[0].contains("not a number of seconds"),
                "{p:?}"
            );
        }
        let p = problems("methods: [GET, \"POST\\r\\nX-Evil: 1\"]");
        assert!(p[0].starts_with("cors.methods[1]: "), "{p:?}");
        let p = problems("exposed_headers: [\"a\\nb\"]\nheaders: [\"c\\u0000\"]");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("cors.headers[0]"), "{p:?}");
        assert!(p[1].starts_with("cors.exposed_headers[0]"), "{p:?}");
    }

    #[test]
    fn a_mappings_own_policy_replaces_the_default_whole() {
        let default = ModuleDefault::of(policy(
            "{origins: [https://d.example.com], credentials: true}",
        ));
        let own = cors("origins: [https://m.example.com]");
        let r = for_route(Some(&own), &default, false).unwrap().unwrap();
        assert_eq!(r.source, Source::Mapping);
        assert_eq!(*r.policy, policy("origins: [https://m.example.com]"));
        assert!(!r.policy.credentials, "not merged with the default's keys");

        let r = for_route(None, &default, false).unwrap().unwrap();
        assert_eq!(r.source, Source::Module);
        assert_eq!(r.policy.origins, ["https://d.example.com"]);

        assert_eq!(for_route(None, &ModuleDefault::default(), false), Ok(None));
        // A redirect answers with its redirect (v3route.py returns before CORS).
        assert_eq!(for_route(Some(&own), &default, true), Ok(None));
        assert_eq!(for_route(None, &default, true), Ok(None));
    }

    #[test]
    fn a_bad_mapping_policy_is_a_refusal_naming_the_field() {
        let refusal = for_route(
            Some(&cors("{max_age: \"-1\", origins: [\"\"]}")),
            &ModuleDefault::default(),
            false,
        )
        .unwrap_err();
        assert_eq!(refusal.reason, Reason::Invalid);
        assert!(
            refusal.message.starts_with("cors.origins[0]: ")
                && refusal.message.contains("; cors.max_age: \"-1\""),
            "{}",
            refusal.message
        );
    }

    fn module(config: &str) -> Module {
        let yaml = format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Module\n\
             metadata: {{name: ambassador, namespace: gw}}\nspec:\n  config:\n    {config}\n"
        );
        let loaded = legate_crds::loader::load_str("test.yaml", &yaml)
            .unwrap_or_else(|e| panic!("{yaml}: {e}"));
        match &loaded.resources[..] {
            [Resource::Module(m)] => m.clone(),
            other => panic!("one Module, got {other:?} ({:?})", loaded.errors),
        }
    }

    #[test]
    fn the_module_default_or_its_rejection() {
        let mut rejections = Vec::new();
        assert_eq!(
            ModuleDefault::new(None, &mut rejections),
            ModuleDefault(None)
        );
        let m = module("cluster_request_timeout_ms: 3000");
        assert_eq!(
            ModuleDefault::new(Some(&m), &mut rejections),
            ModuleDefault(None)
        );
        let m = module("cors: {origins: [https://a.example.com], methods: [GET]}");
        assert_eq!(
            ModuleDefault::new(Some(&m), &mut rejections),
            ModuleDefault::of(policy("{origins: [https://a.example.com], methods: [GET]}"))
        );
        assert_eq!(rejections, []);

        let m = module("cors: {origins: [https://a.example.com], max_age: \"-5\"}");
        assert_eq!(
            ModuleDefault::new(Some(&m), &mut rejections),
            ModuleDefault(None)
        );
        match &rejections[..] {
            [r] => {
                assert_eq!(r.reason, Reason::Invalid);
                assert_eq!(r.object.to_string(), "Module gw/ambassador");
                assert!(
                    r.message.starts_with("spec.config.cors.max_age: \"-5\""),
                    "{}",
                    r.message
                );
            }
            other => panic!("one rejection, got {other:?}"),
        }
    }

    const LISTENER: &str = "apiVersion: getambassador.io/v3alpha1\nkind: Listener\n\
        metadata: {name: http, namespace: default}\n\
        spec: {port: 8080, protocol: HTTP, securityModel: INSECURE, hostBinding: {namespace: {from: ALL}}}\n";

    fn doc(kind: &str, name: &str, spec: &str) -> String {
        format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: {kind}\n\
             metadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
        )
    }

    fn resources(yaml: &str) -> Vec<Arc<Resource>> {
        let loaded = legate_crds::loader::load_str("test.yaml", yaml).unwrap();
        assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
        loaded.resources.into_iter().map(Arc::new).collect()
    }

    /// Each served route's name and the origins of its policy.
    fn origins(ir: &crate::ir::Ir) -> Vec<(String, Option<Vec<String>>)> {
        ir.listeners
            .iter()
            .flat_map(|l| &l.virtual_hosts)
            .flat_map(|v| &v.routes)
            .map(|s| {
                (
                    s.route.source.name.clone(),
                    s.route.cors.as_ref().map(|c| c.policy.origins.clone()),
                )
            })
            .collect()
    }

    #[test]
    fn the_module_default_fills_in_a_group_shares_one_policy_a_redirect_has_none() {
        let yaml = [
            LISTENER.to_owned(),
            doc("Module", "ambassador", "{config: {cors: {origins: [https://d.example]}}}"),
            // A canary group: the member with a policy gives it to both (Emissary flattens).
            doc("Mapping", "c1", "{hostname: \"*\", prefix: /c/, service: c1, weight: 50, cors: {origins: [https://m.example]}}"),
            doc("Mapping", "c2", "{hostname: \"*\", prefix: /c/, service: c2}"),
            doc("Mapping", "plain", "{hostname: \"*\", prefix: /p/, service: p}"),
            doc("Mapping", "moved", "{hostname: \"*\", prefix: /r/, service: r.example, host_redirect: true, cors: {origins: [https://m.example]}}"),
        ]
        .concat();
        let ir = crate::ir::build(
            &resources(&yaml)
                .iter()
                .map(|r| Resource::clone(r))
                .collect::<Vec<_>>(),
            &crate::ir::Settings::default(),
        );
        assert_eq!(ir.rejections, []);
        let some = |o: &str| Some(vec![o.to_owned()]);
        let mut got = origins(&ir);
        got.sort();
        assert_eq!(
            got,
            [
                ("c1".to_owned(), some("https://m.example")),
                ("c2".to_owned(), some("https://m.example")),
                ("moved".to_owned(), None),
                ("plain".to_owned(), some("https://d.example")),
            ]
        );
    }

    #[test]
    fn a_kept_builder_starts_again_when_the_module_default_changes() {
        let mapping = resources(
            &[
                LISTENER.to_owned(),
                doc("Mapping", "m", "{hostname: \"*\", prefix: /m/, service: m}"),
            ]
            .concat(),
        );
        let module = |cors: &str| {
            resources(&doc(
                "Module",
                "ambassador",
                &format!("{{config: {{cors: {cors}}}}}"),
            ))
            .remove(0)
        };
        let mut builder = crate::ir::Builder::new(crate::ir::Settings::default());
        let mut check = |module: Option<Arc<Resource>>, expected: Option<Vec<String>>| {
            let all: Vec<Arc<Resource>> = mapping.iter().cloned().chain(module).collect();
            let ir = builder.build(&all);
            let owned: Vec<Resource> = all.iter().map(|r| Resource::clone(r)).collect();
            assert_eq!(
                ir,
                crate::ir::build(&owned, &crate::ir::Settings::default())
            );
            assert_eq!(origins(&ir), [("m".to_owned(), expected)]);
        };
        check(None, None);
        check(
            Some(module("{origins: [https://a.example]}")),
            Some(vec!["https://a.example".into()]),
        );
        check(
            Some(module("{origins: [https://b.example]}")),
            Some(vec!["https://b.example".into()]),
        );
        // Refused: the Module is rejected and no default applies.
        check(Some(module("{max_age: \"-1\"}")), None);
        check(None, None);
    }
}
