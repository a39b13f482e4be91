//! Resolvers: which way a Mapping's `service` becomes endpoints, as Emissary chooses it
//! (`irserviceresolver.py`). A Mapping names a resolver by `resolver`, else the gateway Module's
//! `resolver` names one for every Mapping; the resolver's kind decides:
//!
//! - `KubernetesEndpointResolver` (built in as `kubernetes-endpoint` and `endpoint`): the Service's
//!   ready endpoints over EDS, a URL's host included; a name with no Service is served as that
//!   Service, empty (503) until it appears, wherever the source reads from;
//! - `KubernetesServiceResolver` (built in as `kubernetes-service`): the Service's DNS name (its
//!   cluster IP), never its endpoints; a `load_balancer` then refuses the Mapping, as in
//!   Emissary (only endpoints can be balanced);
//! - `ConsulResolver` (built in as `consul` and `consul-endpoint`): not implemented; a Mapping
//!   that resolves through one is refused, saying so.
//!
//! Without either, the gateway's own choice applies (Legate's difference from Emissary, whose
//! default is `kubernetes-service`): the endpoints of a Service the snapshot has, else DNS
//! ([`super::service`]).
//!
//! A name is looked up in the Mapping's namespace, then in the gateway's, then among the
//! built-in names, which a resolver of the same name replaces. Emissary's names are global; here
//! one team's resolver never decides how another team's Mappings reach their upstreams. Defining
//! one of a built-in pair (`endpoint`) defines its alias (`kubernetes-endpoint`) too, as in
//! Emissary.
//!
//! A Mapping naming a resolver that does not exist is refused (Emissary makes it inactive too).
//! A Module whose default names none gets a note and leaves the gateway's own choice in place:
//! one typo in the Module must not take every route down.

use std::collections::BTreeMap;

use legate_crds::{Mapping, Module, ObjectRef, Resource};

use super::{Reason, Refusal, Rejection};

/// What a resolver does with a `service`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Service,
    Endpoint,
    Consul,
}

impl Kind {
    fn of(resource: &Resource) -> Option<Self> {
        match resource {
            Resource::KubernetesServiceResolver(_) => Some(Self::Service),
            Resource::KubernetesEndpointResolver(_) => Some(Self::Endpoint),
            Resource::ConsulResolver(_) => Some(Self::Consul),
            _ => None,
        }
    }
}

/// How one Mapping's `service` is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Resolve {
    /// The gateway's own choice: a Service's endpoints where the snapshot has it, else DNS.
    #[default]
    Auto,
    /// Always the Service's endpoints (`KubernetesEndpointResolver`).
    Endpoints,
    /// Always DNS, as written and qualified (`KubernetesServiceResolver`).
    Dns,
}

/// The built-in resolvers, by name, and each one's alias (Emissary's pairs).
const BUILT_IN: [(&str, Kind, Option<&str>); 5] = [
    ("kubernetes-service", Kind::Service, None),
    ("kubernetes-endpoint", Kind::Endpoint, Some("endpoint")),
    ("endpoint", Kind::Endpoint, Some("kubernetes-endpoint")),
    ("consul", Kind::Consul, Some("consul-endpoint")),
    ("consul-endpoint", Kind::Consul, Some("consul")),
];

/// The resolvers of one snapshot and the gateway Module's default. Equal from one build to the
/// next while no resolver and no default changed: the builder compiles every Mapping again when
/// they do (rare), so a compiled Mapping never depends on them otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolvers {
    /// By namespace and name.
    named: BTreeMap<(String, String), Kind>,
    /// The gateway Module's `resolver`, and the Module (for its note).
    default: Option<(String, ObjectRef)>,
    gateway_namespace: String,
}

impl Resolvers {
    /// The resolvers among `resources` (this gateway's), with `module` the gateway's Module.
    pub fn new(resources: &[&Resource], module: Option<&Module>, gateway_namespace: &str) -> Self {
        let named = resources
            .iter()
            .filter_map(|r| {
                let kind = Kind::of(r)?;
                let meta = r.meta();
                let namespace = meta.namespace.as_deref().unwrap_or(gateway_namespace);
                Some((
                    (namespace.to_owned(), meta.name.clone().unwrap_or_default()),
                    kind,
                ))
            })
            .collect();
        let default = module.and_then(|m| {
            let name = m.spec.config.resolver.as_ref().filter(|n| !n.is_empty())?;
            Some((name.clone(), super::module::object_ref(m)))
        });
        Self {
            named,
            default,
            gateway_namespace: gateway_namespace.to_owned(),
        }
    }

    /// The kind of the resolver `name` as a Mapping in `namespace` sees it.
    fn find(&self, name: &str, namespace: &str) -> Option<Kind> {
        let defined = |name: &str| {
            [namespace, self.gateway_namespace.as_str()]
                .into_iter()
                .find_map(|ns| self.named.get(&(ns.to_owned(), name.to_owned())).copied())
        };
        defined(name).or_else(|| {
            let (_, built_in, alias) = BUILT_IN.iter().find(|(n, _, _)| *n == name)?;
            Some(alias.and_then(defined).unwrap_or(*built_in))
        })
    }

    /// How `mapping` (in `namespace`) resolves its `service`, or why it cannot be served.
    pub fn choose(&self, mapping: &Mapping, namespace: &str) -> Result<Resolve, Refusal> {
        self.choose_for(
            mapping.spec.resolver.as_deref(),
            mapping.spec.load_balancer.is_some(),
            namespace,
        )
    }

    /// How a resource (a Mapping, a TCPMapping) in `namespace` with this `resolver` resolves
    /// its `service`; `load_balancer`: whether it balances its endpoints itself.
    pub fn choose_for(
        &self,
        resolver: Option<&str>,
        load_balancer: bool,
        namespace: &str,
    ) -> Result<Resolve, Refusal> {
        let (name, from_module) = match (resolver, &self.default) {
            (Some(name), _) if !name.is_empty() => (name, false),
            (_, Some((name, _))) => (name.as_str(), true),
            _ => return Ok(Resolve::Auto),
        };
        let field = if from_module {
            "the gateway Module's resolver"
        } else {
            "resolver"
        };
        let Some(kind) = self.find(name, namespace) else {
            if from_module {
                // Noted on the Module ([`Self::notes`]); the Mapping keeps the gateway's choice.
                return Ok(Resolve::Auto);
            }
            return Err(Refusal {
                reason: Reason::ResolverNotFound,
                message: format!(
                    "resolver {name:?}: no KubernetesServiceResolver, KubernetesEndpointResolver or \
                     ConsulResolver by that name in namespace {namespace} or {}, and it is not a \
                     built-in one (kubernetes-service, kubernetes-endpoint, endpoint)",
                    self.gateway_namespace
                ),
            });
        };
        match kind {
            Kind::Endpoint => Ok(Resolve::Endpoints),
            Kind::Service if load_balancer => Err(Refusal::from(format!(
                "load_balancer: not allowed with a KubernetesServiceResolver ({field} {name:?}), \
                 which sends to the Service's cluster IP; only endpoints can be balanced: use a \
                 KubernetesEndpointResolver (e.g. resolver: endpoint)"
            ))),
            Kind::Service => Ok(Resolve::Dns),
            Kind::Consul => Err(Refusal {
                reason: Reason::NotSupported,
                message: format!(
                    "{field} {name:?} is a ConsulResolver: Consul is not supported, so this \
                     Mapping is not served; use a Kubernetes resolver"
                ),
            }),
        }
    }

    /// The Module's note when its default names no resolver.
    pub fn notes(&self) -> Option<Rejection> {
        let (name, module) = self.default.as_ref()?;
        let namespace = module
            .namespace
            .as_deref()
            .unwrap_or(&self.gateway_namespace);
        if self.find(name, namespace).is_some() {
            return None;
        }
        Some(Rejection::new(
            module.clone(),
            Reason::ResolverNotFound,
            format!(
                "spec.config.resolver {name:?}: no resolver by that name in namespace {namespace} \
                 and no built-in one; each Mapping without its own resolver keeps the gateway's \
                 default (a Service's endpoints, else DNS)"
            ),
        ))
    }
}
