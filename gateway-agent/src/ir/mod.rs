//! The IR: a validated, resolved, conflict-free model of what the gateway serves, built from a
//! consistent set of resources by pure functions. Semantics are Emissary's
//! (`../shared/EMISSARY.md` §1–2), except that a bad resource is scoped to itself: it is rejected
//! with a reason and every other resource keeps serving.
//!
//! Stages: [`mapping`] validates each Mapping into a [`Route`]; [`group`] forms route groups,
//! assigns canary weights and orders them; [`host`] holds the rules that associate groups with
//! Hosts and Hosts with Listeners, which `binder` applies; [`service`] turns `service` into
//! clusters; [`tls`] resolves the Hosts' TLS and adds the SNI-matched chains that terminate it;
//! [`compression`] reads the gateway Module's ([`module`]) `gzip` for every listener, and
//! [`http_options`] its HTTP connection manager settings, [`grpc`] its gRPC filters and
//! [`ip_filter`] its client address rule; [`upstream_policy`] reads each
//! Mapping's connection policy (circuit breakers, keepalive, lifetimes, balancing, timeouts,
//! retries) and [`cors`] its CORS policy, each with the gateway Module's [`defaults`];
//! [`unsupported`] notes what a resource sets that none of them applies. [`tcp_mapping`] turns
//! TCPMappings into listeners that forward connections, on ports no HTTP Listener holds.
//! [`cluster_tuning`] reads each Mapping's health checks ([`health_check`]), DNS options, tag
//! and stats name. [`rate_limit`] chooses the gateway's RateLimitService (its filter
//! on every HTTP listener) and turns each Mapping's `labels` into its route's rate limits.
//! [`access_log`] reads the Module's file access log and [`log_service`] the LogServices'
//! gRPC access loggers, for every HTTP and TCP listener.
//! [`tracing`] chooses the gateway's TracingService (the tracer of every HTTP listener).

pub mod access_log;
pub mod auth;
mod binder;
pub mod client_certs;
pub mod cluster_tuning;
pub mod compression;
pub mod cors;
pub mod defaults;
pub mod endpoints;
pub mod envoy_rules;
mod external_service;
pub mod group;
pub mod grpc;
pub mod health_check;
pub mod host;
pub mod http_options;
pub mod ip_filter;
pub mod log_service;
pub mod mapping;
pub mod module;
pub mod rate_limit;
pub mod resolver;
pub mod service;
pub mod tcp_mapping;
pub mod tls;
pub mod tracing;
pub mod unsupported;
pub mod upstream_policy;
pub mod upstream_tls;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use legate_crds::{ObjectRef, Resource, listener::SecurityModel};

pub use client_certs::{ClientCertificates, ValidationContext};
pub use endpoints::ClusterEndpoints;
pub use host::{ServedRoute, Variant};
pub use mapping::{HeaderMatch, PathMatch, Route, RouteAction, StringMatch};
pub use service::{Cluster, ServiceRef};
pub use tls::{Certificate, DownstreamTls, TlsChain};

use crate::memo::{ByAddress, ByAddressMemo};
use group::Keyed;

/// What the IR is built for.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Resources whose `ambassador_id` does not list it are ignored.
    pub ambassador_id: String,
    /// The gateway's own namespace: unqualified services in other namespaces get theirs.
    pub namespace: String,
    /// Where the source has authority over Kubernetes Services: there, a `service` naming a
    /// Service that does not exist is served as that Service (empty until it appears, with a
    /// [`Reason::ServiceNotFound`] note). `None` (a directory of YAML): a name with no Service
    /// in the snapshot resolves through DNS, as written. A Service the snapshot has is always
    /// served from its endpoints.
    pub service_namespaces: Option<ServiceNamespaces>,
}

/// The namespaces whose Services a source holds: all of them, or these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceNamespaces {
    All,
    Only(BTreeSet<String>),
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ambassador_id: legate_crds::fields::AmbassadorId::DEFAULT.to_owned(),
            namespace: "default".to_owned(),
            service_namespaces: None,
        }
    }
}

/// The model Envoy configuration is translated from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ir {
    pub listeners: Vec<Listener>,
    /// By cluster name; shared by every route that sends to the same upstream.
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    /// The ready endpoints of every EDS cluster (those with a [`Cluster::service`]), by cluster
    /// name; kept apart from the clusters so that endpoints changing changes nothing else.
    pub endpoints: BTreeMap<String, Arc<ClusterEndpoints>>,
    /// Resources refused, each with the reason, for status and logs.
    pub rejections: Vec<Rejection>,
    /// Accepted resources that serve no traffic, and why (no Host admits a Mapping, ...), and
    /// settings accepted but ignored.
    pub unreachable: Vec<Rejection>,
    /// The certificates TLS chains use, by SDS name.
    pub certificates: BTreeMap<String, Certificate>,
    /// The client-certificate validation contexts TLS chains use, by SDS name.
    pub validation_contexts: BTreeMap<String, ValidationContext>,
    /// The listeners TCPMappings make ([`tcp_mapping`]), by name.
    pub tcp_listeners: Vec<tcp_mapping::TcpListener>,
    /// The client certificates and CAs clusters originate TLS with ([`upstream_tls`]).
    pub upstream_tls: upstream_tls::Secrets,
    /// Who may read the diagnostics page (the gateway Module's `diagnostics`).
    pub diagnostics: module::DiagnosticsAccess,
}

impl Ir {
    /// Every route of every virtual host, cleartext and TLS, of every HTTP listener.
    pub fn served_routes(&self) -> impl Iterator<Item = &ServedRoute> {
        self.listeners
            .iter()
            .flat_map(|l| {
                l.virtual_hosts
                    .iter()
                    .chain(l.tls_chains.iter().flat_map(|c| &c.virtual_hosts))
            })
            .flat_map(|vh| &vh.routes)
    }
}

/// A resource and what is wrong with it: a stable reason (condition and Event reason, metric
/// label) and a message that names the field or the resource that won.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rejection {
    pub object: ObjectRef,
    pub reason: Reason,
    pub message: String,
}

impl Rejection {
    /// The message quotes what the user wrote: it is escaped here, once for every log line,
    /// status condition and Event it reaches.
    pub fn new(object: ObjectRef, reason: Reason, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = match legate_crds::printable::escaped(&message) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(escaped) => escaped,
        };
        Self {
            object,
            reason,
            message,
        }
    }
}

/// Why a resource is refused, or accepted but not (fully) served. The names are stable: they
/// become `reason`s of the `Accepted`/`Programmed` conditions, Event reasons and metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A field's value cannot be served; the message names the field.
    Invalid,
    /// Another resource already holds what this one claims; the message names the winner.
    Conflict,
    /// It asks for something the gateway does not implement (yet); the message names the field.
    NotSupported,
    /// Accepted, but no Listener serves HTTP, so nothing reaches it.
    NoListener,
    /// Accepted, but no Host admits its hostname: the silent 404 of Emissary.
    NoMatchingHost,
    /// Accepted, but no Host binds to the Listener.
    NoHost,
    /// Accepted, but the Host its hostname names admits other namespaces' Mappings only.
    NotAllowedByHost,
    /// Its `service` names a Kubernetes Service that does not exist.
    ServiceNotFound,
    /// Its Service exists but has no ready endpoints.
    NoReadyEndpoints,
    /// A Secret it refers to is missing or not a valid `kubernetes.io/tls` Secret.
    SecretNotFound,
    /// It refers to something in another namespace, which it may not.
    RefNotPermitted,
    /// Its `resolver` (or the Module's) names no resolver.
    ResolverNotFound,
    /// Its `auth_service_ref` names no AuthService the gateway uses.
    AuthServiceNotFound,
    /// Envoy refused (NACKed) the configuration it produces; the message carries Envoy's. Set
    /// aside by [`crate::quarantine`] until it changes.
    RefusedByEnvoy,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "Invalid",
            Self::Conflict => "Conflict",
            Self::NotSupported => "NotSupported",
            Self::NoListener => "NoListener",
            Self::NoMatchingHost => "NoMatchingHost",
            Self::NoHost => "NoHost",
            Self::NotAllowedByHost => "NotAllowedByHost",
            Self::ServiceNotFound => "ServiceNotFound",
            Self::NoReadyEndpoints => "NoReadyEndpoints",
            Self::SecretNotFound => "SecretNotFound",
            Self::RefNotPermitted => "RefNotPermitted",
            Self::ResolverNotFound => "ResolverNotFound",
            Self::AuthServiceNotFound => "AuthServiceNotFound",
            Self::RefusedByEnvoy => "RefusedByEnvoy",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one resource cannot be compiled: a [`Reason`] and its message. A bare message is a
/// field's invalid value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
}

impl From<String> for Refusal {
    fn from(message: String) -> Self {
        Self {
            reason: Reason::Invalid,
            message,
        }
    }
}

/// An HTTP listener: one port, its virtual hosts.
#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    /// Stable across changes: derived from the port, never from a position in a list.
    pub name: String,
    pub port: u16,
    pub security_model: SecurityModel,
    pub stats_prefix: String,
    /// The Listener's `l7Depth`: `xff_num_trusted_hops` when above 0
    /// ([`http_options::HttpOptions::trusted_hops`]).
    pub l7_depth: u32,
    /// Connections start with a PROXY protocol header (`HTTPPROXY`, `HTTPSPROXY`).
    pub proxy_protocol: bool,
    /// The Listener's `http2MaxConcurrentStreams`; `None`: Envoy's default.
    pub http2_max_concurrent_streams: Option<u32>,
    /// The cleartext chain's virtual hosts, one per Host bound to the listener.
    pub virtual_hosts: Vec<Arc<VirtualHost>>,
    /// TLS-terminating chains by SNI; with any, cleartext is what is not TLS.
    pub tls_chains: Vec<TlsChain>,
    /// Response compression (the gateway Module's `gzip`), the same on every listener.
    pub compression: Option<Arc<compression::Compression>>,
    /// The gateway Module's HTTP connection manager settings, the same on every listener.
    pub http_options: Arc<http_options::HttpOptions>,
    /// The gateway Module's gRPC-Web, HTTP/1.1 bridge and gRPC statistics filters.
    pub grpc: Arc<grpc::GrpcFilters>,
    /// The gateway Module's `ip_allow`/`ip_deny`, the same on every listener.
    pub ip_filter: Option<Arc<ip_filter::IpFilter>>,
    /// The gateway Module's access log ([`access_log`]), the same on every listener.
    pub access_log: Arc<access_log::AccessLog>,
    /// The LogServices' gRPC access loggers ([`log_service`]), the same on every listener.
    pub log_services: Arc<[Arc<log_service::GrpcLog>]>,
    /// The AuthServices' `ext_authz` filters ([`auth`]), the same on every listener.
    pub auth: Arc<[Arc<auth::AuthFilter>]>,
    /// The gateway's RateLimitService ([`rate_limit`]), the same on every listener.
    pub rate_limit: Option<Arc<rate_limit::RateLimit>>,
    /// The gateway's TracingService ([`tracing`]), the same on every listener.
    pub tracing: Option<Arc<tracing::Tracing>>,
}

/// One Host's routes on one Listener.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    /// Shared with the compiled Mappings they come from, each as itself or as a variant.
    pub routes: Vec<ServedRoute>,
}

/// Emissary's default upstream timeout when neither the Mapping nor the Module sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3000);
/// Emissary's default cluster connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(3000);

/// Builds the IR from every resource the source holds.
pub fn build(resources: &[Resource], settings: &Settings) -> Ir {
    let shared: Vec<Arc<Resource>> = resources.iter().cloned().map(Arc::new).collect();
    Builder::new(settings.clone()).build(&shared)
}

/// Builds IRs one after the other, keeping from each build what the next can reuse: the
/// compiled route of every Mapping (by the identity of the resource the source shares, which
/// stays the same while the Mapping does), the groups and the bound virtual hosts, so a build
/// after a change redoes only what the change touched. A build gives the same IR with or without
/// what was kept.
#[derive(Debug)]
pub struct Builder {
    settings: Settings,
    mappings: ByAddressMemo<ByAddress<Resource>, endpoints::Entry>,
    groups: group::Grouper,
    binder: binder::Binder,
    endpoints: endpoints::EndpointsKeeper,
    /// Each resource's note of what it sets that is not applied, kept as the Mappings are.
    unsupported: unsupported::Notes,
    /// What the Mappings were grouped with ([`group::HostSelectors`]).
    host_selectors: group::HostSelectors,
    /// What the Mappings' services were resolved with.
    resolvers: resolver::Resolvers,
    /// The gateway Module's defaults the Mappings were compiled with.
    defaults: defaults::MappingDefaults,
}

/// A Mapping's route (with its grouping keys) and cluster, or why it cannot serve.
type Compiled = Result<Arc<Keyed>, Refusal>;

impl Builder {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            mappings: ByAddressMemo::default(),
            groups: group::Grouper::default(),
            binder: binder::Binder::default(),
            endpoints: endpoints::EndpointsKeeper::default(),
            unsupported: unsupported::Notes::default(),
            host_selectors: group::HostSelectors::default(),
            resolvers: resolver::Resolvers::default(),
            defaults: defaults::MappingDefaults::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether this gateway serves `r` (its `ambassador_id`).
    fn serves(&self, r: &Resource) -> bool {
        ambassador_id(r).is_none_or(|ids| ids.matches(&self.settings.ambassador_id))
    }

    pub fn build(&mut self, resources: &[Arc<Resource>]) -> Ir {
        // Mappings without a hostname are grouped by the Hosts' selectors that pick them: when
        // those change, every such Mapping's group may, so start again from scratch.
        let host_selectors = group::HostSelectors::new(resources.iter().filter_map(|r| {
            match &**r {
                Resource::Host(h) if self.serves(r) => h
                    .spec
                    .mapping_selector
                    .as_ref()
                    .or(h.spec.selector.as_ref()),
                _ => None,
            }
        }));
        let mine: Vec<&Arc<Resource>> = resources.iter().filter(|r| self.serves(r)).collect();
        let plain: Vec<&Resource> = mine.iter().map(|r| &***r).collect();
        let module = module::gateway_module(&plain, &self.settings);
        // Every Mapping's cluster depends on the resolvers, and its route and cluster on the
        // Module's defaults: when either changes, start again too.
        let resolvers = resolver::Resolvers::new(&plain, module, &self.settings.namespace);
        let rate_limiting = rate_limit::select(&plain, module, &self.settings);
        let defaults = defaults::MappingDefaults::new(module)
            .with_origination(upstream_tls::Contexts::new(
                &plain,
                &self.settings.namespace,
            ))
            .with_auth(auth::Selection::new(&plain, &self.settings.namespace))
            .with_rate_limit(rate_limiting.routes.clone());
        if host_selectors != self.host_selectors
            || resolvers != self.resolvers
            || defaults != self.defaults
        {
            *self = Self {
                host_selectors,
                resolvers,
                defaults,
                ..Self::new(self.settings.clone())
            };
        }
        let settings = &self.settings;
        let selectors = &self.host_selectors;
        let resolvers = &self.resolvers;
        let defaults = &self.defaults;
        let mut ir = Ir {
            diagnostics: module::DiagnosticsAccess::of(module),
            ..Ir::default()
        };
        module::notes(&plain, settings, &mut ir.unreachable);
        ir.unreachable.extend(resolvers.notes());
        ir.rejections.extend(defaults.rejections.iter().cloned());
        ir.rejections
            .extend(defaults.auth.rejections.iter().cloned());
        ir.rejections
            .extend(rate_limiting.rejections.iter().cloned());

        // What changed since the last build: the Mappings compiled now (new, or naming a Service
        // that changed), and (below) those the memo drops because this build no longer has them.
        let services = endpoints::ServiceIndex::new(&mine, &settings.namespace);
        let mut added: Vec<Arc<Compiled>> = Vec::new();
        let mut removed: Vec<Arc<Compiled>> = Vec::new();
        type Noted<'r> = (&'r Arc<Resource>, Arc<Compiled>, Option<Refusal>);
        let compiled: Vec<Noted<'_>> = mine
            .iter()
            .filter_map(|r| match &***r {
                Resource::Mapping(m) => {
                    let mut now = false;
                    let entry =
                        self.mappings
                            .entry_or_insert_with(ByAddress(Arc::clone(r)), || {
                                now = true;
                                endpoints::Entry::compile(
                                    m, settings, selectors, resolvers, defaults, &services,
                                )
                            });
                    if !now
                        && let Some(replaced) =
                            entry.refresh(m, settings, selectors, defaults, &services)
                    {
                        removed.push(replaced);
                        now = true;
                    }
                    if now {
                        added.push(entry.compiled.clone());
                    }
                    Some((*r, entry.compiled.clone(), entry.note.clone()))
                }
                _ => None,
            })
            .collect();
        removed.extend(
            self.mappings
                .finish_returning_unused()
                .into_iter()
                .map(|e| e.compiled),
        );
        self.unsupported.add(&mine, &mut ir.unreachable);
        for (resource, c, note) in &compiled {
            if let Err(refusal) = &**c {
                ir.rejections.push(Rejection::new(
                    resource.object_ref(),
                    refusal.reason,
                    refusal.message.clone(),
                ));
            }
            if let Some(note) = note {
                ir.unreachable.push(Rejection::new(
                    resource.object_ref(),
                    note.reason,
                    note.message.clone(),
                ));
            }
        }
        let keyed = |c: &Vec<Arc<Compiled>>| -> Vec<Arc<Keyed>> {
            c.iter()
                .filter_map(|c| c.as_ref().as_ref().ok().cloned())
                .collect()
        };
        let grouped = self
            .groups
            .update(&keyed(&added), &keyed(&removed), &mut ir.rejections);
        let mine = plain;
        let hosts = host::hosts(&mine, &self.settings.namespace, &mut ir.rejections);
        let terminations = tls::resolve(&mine, &mut ir.rejections);
        let mut listeners = host::listeners(&mine, &self.settings.namespace, &mut ir.rejections);
        // TCPMappings are compiled afresh every build: few, and cheap.
        let tcp = tcp_mapping::build(
            &tcp_mapping::Inputs {
                resources: &mine,
                settings: &self.settings,
                resolvers: &self.resolvers,
                services: &services,
                listeners: &listeners,
                hosts: &hosts,
                terminations: &terminations,
                tuning: &self.defaults.tuning,
            },
            &mut ir.rejections,
            &mut ir.unreachable,
        );
        listeners.retain(|l| !tcp.refused_listeners.contains(&l.source));
        let served = self.binder.bind(
            &listeners,
            &hosts,
            &grouped.order,
            &grouped.added,
            &grouped.removed,
            &mut ir.unreachable,
        );
        ir.listeners = served.listeners;
        ir.clusters = served.clusters;
        for c in &tcp.clusters {
            ir.clusters
                .entry(c.name.clone())
                .or_insert_with(|| c.clone());
        }
        // Before the endpoints: the EDS clusters of the AuthServices, the RateLimitService and
        // the TracingService get theirs.
        let cx = external_service::Context {
            settings,
            resolvers,
            services: &services,
            defaults,
        };
        let auth = auth::build(
            &mine,
            &cx,
            &mut ir.clusters,
            &mut ir.rejections,
            &mut ir.unreachable,
        );
        let rate_limiter = rate_limit::build(
            &rate_limiting,
            &cx,
            &mut ir.clusters,
            &mut ir.rejections,
            &mut ir.unreachable,
        );
        let (grpc_logs, loggers) = log_service::build(
            &mine,
            &cx,
            &mut ir.clusters,
            &mut ir.rejections,
            &mut ir.unreachable,
        );
        let tracer = tracing::build(
            &mine,
            &cx,
            &mut ir.clusters,
            &mut ir.rejections,
            &mut ir.unreachable,
        );
        ir.endpoints =
            self.endpoints
                .resolve(&ir.clusters, &services, &compiled, &mut ir.unreachable);
        // The AuthServices', the RateLimitService's, the LogServices' and the TracingService's: their
        // calls fail        // without an endpoint.
        external_service::note_no_endpoints(
            auth.iter()
                .map(|f| (&f.source, f.cluster.as_str()))
                .chain(
                    rate_limiter
                        .iter()
                        .map(|c| (&c.object, c.filter.cluster.as_str())),
                )
                .chain(loggers.iter().map(|(o, c)| (o, c.as_str())))
                .chain(
                    tracer
                        .iter()
                        .map(|c| (&c.object, c.tracing.provider.cluster())),
                ),
            &ir.clusters,
            &ir.endpoints,
            &mut ir.unreachable,
        );
        let tls_ports: Vec<u16> = listeners.iter().filter(|l| l.tls).map(|l| l.port).collect();
        ir.certificates = tls::add_chains(
            &mut ir.listeners,
            &tls_ports,
            &hosts,
            &terminations,
            &mut ir.rejections,
        );
        ir.validation_contexts = client_certs::used(&ir.listeners, &terminations);
        tcp_mapping::finish(tcp, &mut ir);
        ir.upstream_tls = upstream_tls::secrets(
            ir.clusters.values().map(|c| &**c),
            &mine,
            &self.settings.namespace,
        );
        let compression = compression::gateway_compression(module, &mut ir.rejections);
        ir.listeners
            .iter_mut()
            .for_each(|l| l.compression = compression.clone());
        // Nothing a Mapping compiles to depends on these: no need to start from scratch.
        let http_options = http_options::gateway_http_options(module, &mut ir.rejections);
        ir.listeners
            .iter_mut()
            .for_each(|l| l.http_options = http_options.clone());
        let grpc = Arc::new(grpc::gateway_grpc(module, &mut ir.rejections));
        let ip_filter = ip_filter::gateway_ip_filter(module, &mut ir.rejections).map(Arc::new);
        let mut access_log = access_log::gateway_access_log(module, &mut ir.rejections);
        // TCPMappings' connections are logged too (Emissary logs none), to the same file, in a
        // connection's format (taken before a tracer adds request ids to the requests' format).
        let tcp_access_log = Arc::new(access_log.for_tcp());
        for l in &mut ir.tcp_listeners {
            l.access_log = tcp_access_log.clone();
            l.log_services = grpc_logs.tcp.clone();
        }
        if let Some(t) = &tracer {
            tracing::datadog_log_ids(&t.tracing, module, &mut access_log);
        }
        let access_log = Arc::new(access_log);
        for l in &mut ir.listeners {
            l.grpc = grpc.clone();
            l.ip_filter = ip_filter.clone();
            l.access_log = access_log.clone();
            l.log_services = grpc_logs.http.clone();
            l.auth = auth.clone();
            l.rate_limit = rate_limiter.as_ref().map(|c| c.filter.clone());
            l.tracing = tracer.as_ref().map(|c| c.tracing.clone());
        }

        ir.rejections.sort();
        // An SNI conflict is reported once per Listener it happens on.
        ir.rejections.dedup();
        ir.unreachable.sort();
        ir
    }
}

/// A resource's `ambassador_id`, for the kinds that have one.
/// Whether a gateway answering to `id` serves `resource`: its `ambassador_id` lists `id` (absent
/// means `default`); kinds without one are every gateway's.
pub fn for_gateway(resource: &Resource, id: &str) -> bool {
    ambassador_id(resource).is_none_or(|ids| ids.matches(id))
}

fn ambassador_id(resource: &Resource) -> Option<&legate_crds::fields::AmbassadorId> {
    Some(match resource {
        Resource::Mapping(r) => &r.spec.ambassador_id,
        Resource::Host(r) => &r.spec.ambassador_id,
        Resource::Listener(r) => &r.spec.ambassador_id,
        Resource::TLSContext(r) => &r.spec.ambassador_id,
        Resource::TCPMapping(r) => &r.spec.ambassador_id,
        Resource::AuthService(r) => &r.spec.ambassador_id,
        Resource::RateLimitService(r) => &r.spec.ambassador_id,
        Resource::LogService(r) => &r.spec.ambassador_id,
        Resource::TracingService(r) => &r.spec.ambassador_id,
        Resource::Module(r) => &r.spec.ambassador_id,
        Resource::KubernetesServiceResolver(r) => &r.spec.ambassador_id,
        Resource::KubernetesEndpointResolver(r) => &r.spec.ambassador_id,
        Resource::ConsulResolver(r) => &r.spec.ambassador_id,
        Resource::GatewayInstallation(_)
        | Resource::Secret(_)
        | Resource::Service(_)
        | Resource::EndpointSlice(_)
        | Resource::Endpoints(_) => return None,
    })
}
