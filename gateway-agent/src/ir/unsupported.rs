//! What a user wrote that the gateway does not do: for each resource, every field it sets that
//! the IR does not apply, and the kinds the agent does not implement at all. Each such resource
//! gets one note (`Reason::NotSupported`, in `Ir::unreachable`) naming all of them, e.g.
//! `not applied yet: spec.health_checks, spec.labels`; the resource itself stays served ("Accepted,
//! with these fields not applied"). Nothing a user writes is dropped in silence: an ignored
//! AuthService would leave routes open without anyone being told.
//!
//! [`TABLES`] records every `spec` field of every route and policy kind as applied (read by the
//! IR and carried to Envoy, or refused with a reason when it cannot be) or not applied. A test
//! walks the CRDs' schemas against them, so a field added to a CRD fails that test, naming the
//! field, until someone decides which it is; another test sets every not-applied field and
//! expects each one named, so a table entry cannot lack its check.
//!
//! # When a field counts as set
//!
//! A field counts as set when it is present, except when its value asks for exactly what the
//! gateway does without it, which changes nothing and is not worth a warning:
//! - a scalar (boolean, number, string, enum) equal to the gateway's own behaviour: `false` for a
//!   feature the gateway lacks (`bypass_auth: false`, `enable_grpc_web: false`), and Emissary's
//!   default where it is what the gateway does (`enable_ipv4: true`, `dns_type: strict_dns`,
//!   `priority: default`, ...). `enable_ipv6: false` counts as this default too: the gateway
//!   prefers IPv4 and uses IPv6 only for a name without IPv4 addresses, which Emissary would
//!   fail to resolve, so nothing that works in Emissary changes;
//! - an empty string, list or map;
//! - an object that only switches its feature off, or asks for the gateway's behaviour in every
//!   field: `acmeProvider: {authority:
//!   none}`, `previewUrl` without `enabled: true`, `liveness_probe`/
//!   `readiness_probe` with `enabled: false`.
//!
//! Any other object counts when present, even empty: `cors: {}` or `buffer: {}` asks for a
//! feature (in Emissary, `gzip: {}` turns compression on, as it does here).
//!
//! Besides fields never applied, a field that is applied elsewhere can be unused by one resource:
//! a redirect sends nothing upstream (`timeout_ms`), redirect settings need `host_redirect`, a
//! shadow mirrors to its service only (`rewrite`), and of two fields where one takes precedence
//! (`hostname` over `host`) the other does nothing. Those are named too, each with why.
//!
//! A note does not depend on the resource's verdict: a refused Mapping also lists what would not
//! be applied once it is fixed. Everything here reads typed fields, once per resource: the builder
//! keeps each resource's note with the resource (by address) from one build to the next.

use std::{collections::BTreeMap, sync::Arc};

use legate_crds::{
    Resource,
    auth_service::{AuthProto, AuthServiceSpec},
    fields::BoolOrString,
    host::HostSpec,
    listener::ListenerSpec,
    mapping::{DnsType, MappingSpec},
    module::{ModuleConfig, RegexType},
    tls_context::TlsContextSpec,
    tracing_service::{TracingDriver, TracingServiceSpec},
};

use super::{Reason, Rejection};
use crate::memo::{ByAddress, ByAddressMemo};

/// The note of a ConsulResolver: the Mappings that name it are refused, each saying so.
pub const CONSUL_RESOLVER: &str =
    "ConsulResolver is not implemented: Mappings that name it are not served";

/// Each kind's `spec` fields by their JSON names, relative to `spec`: applied, or not. An entry
/// covers the whole object it names; an object applied only in part is listed by its fields
/// (`requestPolicy.insecure.action`).
#[derive(Debug)]
pub struct Table {
    pub kind: &'static str,
    pub applied: &'static [&'static str],
    pub not_applied: &'static [&'static str],
}

pub const TABLES: &[Table] = &[
    Table {
        kind: "Mapping",
        applied: &[
            "ambassador_id", // the builder serves only this gateway's resources
            "prefix",
            "prefix_regex",
            "prefix_exact",
            "case_sensitive",
            "hostname",
            "host",
            "host_regex",
            "headers",
            "regex_headers",
            "query_parameters",
            "regex_query_parameters",
            "method",
            "method_regex",
            "precedence",
            "service",
            "resolver", // ir/resolver.rs
            "weight",
            "tls", // `true` originates TLS, a TLSContext name with it (ir/upstream_tls.rs)
            "grpc",
            "timeout_ms",
            "idle_timeout_ms",
            "connect_timeout_ms",
            // Listed by field so that a new retry setting must be decided too.
            "retry_policy.retry_on",
            "retry_policy.num_retries",
            "retry_policy.per_try_timeout",
            // ir/upstream_policy.rs
            "cluster_idle_timeout_ms",
            "cluster_max_connection_lifetime_ms",
            "circuit_breakers",
            "load_balancer",
            "keepalive",
            // ir/cluster_tuning.rs
            "health_checks",
            "dns_type",
            "respect_dns_ttl",
            "enable_ipv4",
            "enable_ipv6",
            "cluster_tag",
            "stats_name",
            "host_rewrite",
            "auto_host_rewrite",
            "shadow",
            "rewrite",
            "regex_rewrite",
            "add_request_headers",
            "add_response_headers",
            "remove_request_headers",
            "remove_response_headers",
            "allow_upgrade",
            "use_websocket",
            "host_redirect",
            "path_redirect",
            "prefix_redirect",
            "regex_redirect",
            "redirect_response_code",
            // ir/cors.rs; by field, so that a new CORS setting must be decided too.
            "cors.origins",
            "cors.methods",
            "cors.headers",
            "cors.credentials",
            "cors.exposed_headers",
            "cors.max_age",
            "add_linkerd_headers",
            "priority",
            // ir/auth.rs
            "bypass_auth",
            "auth_context_extensions",
            "auth_service_ref",
            "labels", // ir/rate_limit.rs
        ],
        not_applied: &[
            "docs",
            "outlier_detection",
            "envoy_override",
            "error_response_overrides",
            "bypass_error_response_overrides",
            "modules",
        ],
    },
    Table {
        kind: "Host",
        applied: &[
            "ambassador_id",
            "hostname",
            "mappingSelector",
            "selector",
            "mappingNamespaces", // a Legate extension
            "tlsSecret",
            "tlsContext",
            // Applied, or refused with the reason (key files, a CA file).
            "tls.cert_chain_file",
            "tls.private_key_file",
            "tls.ca_secret",
            "tls.cacert_chain_file",
            "tls.crl_secret",
            "tls.cert_required",
            "tls.alpn_protocols",
            "tls.min_tls_version",
            "tls.max_tls_version",
            "tls.cipher_suites",
            "tls.ecdh_curves",
            "requestPolicy.insecure.action",
        ],
        not_applied: &[
            "tls.sni",
            "tls.redirect_cleartext_from",
            "requestPolicy.insecure.additionalPort",
            "acmeProvider",
            "previewUrl",
        ],
    },
    Table {
        kind: "Listener",
        applied: &[
            "ambassador_id",
            "port",
            "protocol",
            "protocolStack",
            "securityModel",
            "statsPrefix",
            "l7Depth",
            "hostBinding",
            "http2MaxConcurrentStreams",
        ],
        not_applied: &[],
    },
    Table {
        kind: "TLSContext",
        applied: &[
            "ambassador_id",
            "secret",
            "secret_namespacing",
            "cert_chain_file",
            "private_key_file",
            "ca_secret",
            "cacert_chain_file",
            "crl_secret",
            "cert_required",
            "alpn_protocols",
            "min_tls_version",
            "max_tls_version",
            "cipher_suites",
            "ecdh_curves",
            "signature_algorithms",
            "sni", // origination (ir/upstream_tls.rs)
        ],
        not_applied: &["hosts", "redirect_cleartext_from"],
    },
    Table {
        kind: "TCPMapping",
        // ir/tcp_mapping.rs
        applied: &[
            "ambassador_id",
            "port",
            "host",
            "address",
            "service",
            "weight",
            "tls", // `true` originates TLS; a TLSContext name is refused
            "resolver",
            "circuit_breakers",
            "idle_timeout_ms",
            // ir/cluster_tuning.rs, as for Mappings
            "enable_ipv4",
            "enable_ipv6",
            "cluster_tag",
            "stats_name",
        ],
        not_applied: &[],
    },
    Table {
        kind: "AuthService",
        // ir/auth.rs
        applied: &[
            "ambassador_id",
            "auth_service",
            "proto",
            "protocol_version",
            "path_prefix",
            "timeout_ms",
            "tls",
            "stats_name",
            "circuit_breakers",
            "add_linkerd_headers",
            "allowed_request_headers",
            "allowed_authorization_headers",
            "add_auth_headers",
            "allow_request_body",
            "include_body",
            "status_on_error",
            "failure_mode_allow",
            "opt_in",
        ],
        not_applied: &[],
    },
    Table {
        kind: "RateLimitService",
        // ir/rate_limit.rs
        applied: &[
            "ambassador_id",
            "service",
            "domain",
            "timeout_ms",
            "protocol_version",
            "failure_mode_deny",
            "grpc",
            "tls",
            "stats_name",
        ],
        not_applied: &[],
    },
    Table {
        kind: "LogService",
        // ir/log_service.rs
        applied: &[
            "ambassador_id",
            "service",
            "driver",
            "driver_config",
            "flush_interval_time",
            "flush_interval_byte_size",
            "grpc",
            "protocol_version",
            "stats_name",
        ],
        not_applied: &[],
    },
    Table {
        kind: "TracingService",
        // ir/tracing.rs; a driver's own fields are named on a TracingService of another driver.
        applied: &[
            "ambassador_id",
            "driver",
            "service",
            "sampling",
            "tag_headers",
            "custom_tags",
            "stats_name",
            "config.collector_endpoint",
            "config.collector_endpoint_version",
            "config.collector_hostname",
            "config.trace_id_128bit",
            "config.shared_span_context",
            "config.service_name",
        ],
        not_applied: &[
            "config.collector_cluster",
            "config.access_token_file",
            "config.propagation_modes",
        ],
    },
    Table {
        kind: "KubernetesServiceResolver",
        applied: &["ambassador_id"],
        not_applied: &[],
    },
    Table {
        kind: "KubernetesEndpointResolver",
        applied: &["ambassador_id"],
        not_applied: &[],
    },
    Table {
        kind: "ConsulResolver",
        applied: &["ambassador_id"],
        not_applied: &["address", "datacenter"],
    },
    Table {
        kind: "Module",
        applied: &[
            "ambassador_id",
            "config.resolver",
            "config.gzip",
            "config.cors.origins",
            "config.cors.methods",
            "config.cors.headers",
            "config.cors.credentials",
            "config.cors.exposed_headers",
            "config.cors.max_age",
            // ir/http_options.rs
            "config.server_name",
            "config.use_remote_address",
            "config.xff_num_trusted_hops",
            "config.strip_matching_host_port",
            "config.merge_slashes",
            "config.reject_requests_with_escaped_slashes",
            "config.preserve_external_request_id",
            "config.max_request_headers_kb",
            "config.headers_with_underscores_action",
            "config.enable_http10",
            "config.allow_chunked_length",
            "config.listener_idle_timeout_ms",
            "config.suppress_envoy_headers",
            "config.buffer",
            "config.proper_case",
            "config.buffer_limit_bytes",
            "config.forward_client_cert_details",
            "config.set_current_client_cert_details",
            // ir/upstream_policy.rs
            "config.cluster_request_timeout_ms",
            "config.cluster_idle_timeout_ms",
            "config.cluster_max_connection_lifetime_ms",
            "config.keepalive",
            "config.circuit_breakers",
            "config.load_balancer",
            "config.retry_policy",
            "config.add_linkerd_headers",
            // ir/defaults.rs: its header keys; a note names any other key.
            "config.defaults",
            "config.use_ambassador_namespace_for_service_resolution",
            // ir/grpc.rs
            "config.enable_grpc_http11_bridge",
            "config.enable_grpc_web",
            "config.grpc_stats",
            // ir/access_log.rs
            "config.envoy_log_type",
            "config.envoy_log_format",
            "config.envoy_log_path",
            // ir/ip_filter.rs
            "config.ip_allow",
            "config.ip_deny",
            // ir/cluster_tuning.rs
            "config.enable_ipv4",
            "config.enable_ipv6",
            // ir/defaults.rs, ir/envoy_rules/re2.rs
            "config.regex_max_size",
            // ir/rate_limit.rs
            "config.default_label_domain",
            "config.default_labels",
            // diag/ (the agent's diagnostics page)
            "config.diagnostics",
        ],
        not_applied: &[
            "config.liveness_probe",
            "config.readiness_probe",
            "config.use_proxy_proto",
            "config.x_forwarded_proto_redirect",
            "config.lua_scripts",
            "config.regex_type",
            "config.envoy_validation_timeout",
            "config.runtime_flags",
            "config.service_port",
            "config.admin_port",
            "config.diag_port",
            "config.prune_unreachable_routes",
            "config.header_case_overrides",
            "config.error_response_overrides",
        ],
    },
];

/// Why a field that is set does nothing. The order is the order of the note's clauses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Why {
    /// The gateway does not implement it (yet).
    NotYet,
    /// Emissary keeps it for old configurations and has a replacement.
    Legacy,
    /// It configures TLS origination, which a Host's inline `tls` is never used for.
    OriginationOnly,
    /// The Mapping redirects: nothing goes upstream, so upstream settings do nothing.
    Redirect,
    /// Redirect settings of a Mapping that does not redirect (no `host_redirect: true`).
    NotRedirect,
    /// A shadow Mapping mirrors its group's requests to its service; its own route settings
    /// are not used.
    Shadow,
    /// The field named here is set too and takes precedence.
    Overridden(&'static str),
    /// It shapes an HTTP check request; the AuthService speaks gRPC.
    HttpOnly,
    /// Emissary reads the field and does nothing with it either: the gateway does as it does.
    AsEmissary,
    /// Set by the gateway itself or meant for what Envoy no longer has; the detail says which.
    Never,
    /// A setting of other drivers than this TracingService's (named here).
    Driver(&'static str),
}

impl Why {
    /// What the note's clause says before the fields.
    fn clause(self) -> String {
        match self {
            Self::NotYet => "not applied yet".into(),
            Self::Legacy => "legacy, not applied".into(),
            Self::OriginationOnly => "not applied (for TLS origination only)".into(),
            Self::Redirect => "not applied to a host_redirect Mapping".into(),
            Self::NotRedirect => "not applied without host_redirect: true".into(),
            Self::Shadow => {
                "not applied to a shadow Mapping (it mirrors to its service only)".into()
            }
            Self::Overridden(winner) => format!("not applied because {winner} is set"),
            Self::HttpOnly => "not applied to a gRPC AuthService (proto: grpc)".into(),
            Self::AsEmissary => "not applied, as in Emissary".into(),
            Self::Never => "not applied".into(),
            Self::Driver(driver) => format!("not applied by the {driver} driver"),
        }
    }

    /// Whether the field is one a table lists as not applied (else it is applied in general,
    /// and unused only by this resource).
    pub fn never_applied(self) -> bool {
        matches!(
            self,
            Self::NotYet | Self::Legacy | Self::OriginationOnly | Self::Never
        )
    }
}

/// A field a resource sets that does nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unapplied {
    /// The field's path as the user writes it, from `spec`.
    pub field: &'static str,
    /// What it means for the user, or what to use instead.
    pub detail: Option<&'static str>,
    pub why: Why,
}

/// The note for one resource, or `None` when the gateway applies everything it sets.
pub fn note(resource: &Resource) -> Option<Rejection> {
    let message = match resource {
        Resource::ConsulResolver(_) => CONSUL_RESOLVER.to_owned(),
        _ => message(&unapplied(resource))?,
    };
    Some(Rejection::new(
        resource.object_ref(),
        Reason::NotSupported,
        message,
    ))
}

/// Each resource's note, kept from one build to the next with the resource (by address), and
/// every note in order, updated by what changed: a build after one change neither recomputes
/// nor sorts again the other resources' notes (10,000 of them take milliseconds to sort).
#[derive(Debug, Default)]
pub struct Notes {
    memo: ByAddressMemo<ByAddress<Resource>, Option<Arc<Rejection>>>,
    /// The notes of the last build's resources, sorted.
    sorted: Vec<Arc<Rejection>>,
}

impl Notes {
    /// Adds the note of every resource in `resources` to `out`, in order.
    pub fn add(&mut self, resources: &[&Arc<Resource>], out: &mut Vec<Rejection>) {
        let mut added = Vec::new();
        for r in resources {
            let mut computed = false;
            let note = self.memo.get_or_insert_with(ByAddress(Arc::clone(r)), || {
                computed = true;
                note(r).map(Arc::new)
            });
            if let (true, Some(note)) = (computed, note) {
                added.push(note);
            }
        }
        let removed: Vec<Arc<Rejection>> = self
            .memo
            .finish_returning_unused()
            .into_iter()
            .flatten()
            .collect();
        self.update(added, removed);
        out.extend(self.sorted.iter().map(|n| Rejection::clone(n)));
    }

    /// Takes out the notes of resources gone (each by address: two resources can have equal
    /// notes) and puts in the new ones: one by one when they are few, else all at once.
    fn update(&mut self, mut added: Vec<Arc<Rejection>>, removed: Vec<Arc<Rejection>>) {
        const FEW: usize = 16;
        if removed.len() <= FEW {
            for gone in &removed {
                let from = self.sorted.partition_point(|n| **n < **gone);
                if let Some(at) = self.sorted[from..]
                    .iter()
                    .position(|n| Arc::ptr_eq(n, gone))
                {
                    self.sorted.remove(from + at);
                }
            }
        } else {
            let gone: std::collections::HashSet<*const Rejection, crate::memo::AddressHasher> =
                removed.iter().map(Arc::as_ptr).collect();
            self.sorted.retain(|n| !gone.contains(&Arc::as_ptr(n)));
        }
        if added.len() <= FEW {
            for new in added {
                let at = self.sorted.partition_point(|n| **n <= *new);
                self.sorted.insert(at, new);
            }
        } else {
            self.sorted.append(&mut added);
            self.sorted.sort();
        }
    }
}

/// The fields `resource` sets that do nothing, in the order of its spec. Kinds not implemented
/// at all are not listed field by field: their note says the whole kind is not.
pub fn unapplied(resource: &Resource) -> Vec<Unapplied> {
    let mut found = Found::default();
    match resource {
        Resource::Mapping(m) => mapping(&m.spec, &mut found),
        Resource::Host(h) => host(&h.spec, &mut found),
        Resource::Listener(l) => listener(&l.spec, &mut found),
        Resource::TLSContext(c) => tls_context(&c.spec, &mut found),
        Resource::Module(m) => module(&m.spec.config, &mut found),
        Resource::AuthService(a) => auth_service(&a.spec, &mut found),
        Resource::TracingService(t) => tracing_service(&t.spec, &mut found),
        // Whole kinds not implemented: their note says so (see `note`).
        Resource::ConsulResolver(_) => {}
        // Every field applied (the resolvers have nothing to set but `ambassador_id`).
        Resource::KubernetesServiceResolver(_)
        | Resource::KubernetesEndpointResolver(_)
        | Resource::TCPMapping(_)
        | Resource::RateLimitService(_)
        | Resource::LogService(_) => {}
        // Not written as routes or policy: the operator's, or Kubernetes' own objects the IR
        // reads for what it needs.
        Resource::GatewayInstallation(_)
        | Resource::Secret(_)
        | Resource::Service(_)
        | Resource::EndpointSlice(_)
        | Resource::Endpoints(_) => {}
    }
    found.0
}

/// One clause per reason, in [`Why`]'s order, each naming its fields in spec order:
/// `not applied yet: spec.health_checks, spec.labels; legacy, not applied: ...`.
fn message(unapplied: &[Unapplied]) -> Option<String> {
    if unapplied.is_empty() {
        return None;
    }
    let mut clauses: BTreeMap<Why, Vec<String>> = BTreeMap::new();
    for u in unapplied {
        clauses.entry(u.why).or_default().push(match u.detail {
            Some(detail) => format!("{} ({detail})", u.field),
            None => u.field.to_owned(),
        });
    }
    let clauses: Vec<String> = clauses
        .into_iter()
        .map(|(why, fields)| format!("{}: {}", why.clause(), fields.join(", ")))
        .collect();
    Some(clauses.join("; "))
}

/// The fields found so far; a field is named once, with the first reason found.
#[derive(Default)]
struct Found(Vec<Unapplied>);

impl Found {
    fn add(&mut self, set: bool, field: &'static str, why: Why) {
        self.add_with(set, field, None, why);
    }

    fn add_with(&mut self, set: bool, field: &'static str, detail: Option<&'static str>, why: Why) {
        if set && self.0.iter().all(|u| u.field != field) {
            self.0.push(Unapplied { field, detail, why });
        }
    }
}

// The rules of "counts as set" (module doc), one helper per shape of value.

fn present<T>(v: &Option<T>) -> bool {
    v.is_some()
}

/// A boolean whose `false` is the gateway's behaviour.
fn on(v: Option<bool>) -> bool {
    v == Some(true)
}

/// A boolean whose `true` is the gateway's behaviour.
fn off(v: Option<bool>) -> bool {
    v == Some(false)
}

fn differs<T: PartialEq>(v: Option<T>, default: T) -> bool {
    v.is_some_and(|v| v != default)
}

fn text(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.is_empty())
}

fn list<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|l| !l.is_empty())
}

fn map<K, V>(v: &Option<BTreeMap<K, V>>) -> bool {
    v.as_ref().is_some_and(|m| !m.is_empty())
}

fn dict(v: &Option<legate_crds::fields::UntypedDict>) -> bool {
    v.as_ref().is_some_and(|d| !d.is_empty())
}

/// What a label's `omit_if_not_present: true` does here and in Emissary.
const OMIT_IF_NOT_PRESENT: &str = "omit_if_not_present: true: a label group whose header is \
                                   absent is not sent, whatever it says";

fn mapping(s: &MappingSpec, f: &mut Found) {
    use Why::*;
    // ir/auth.rs: a route that is not checked has no use for what goes with its check.
    let unchecked = if on(s.host_redirect) {
        Some(Redirect)
    } else if on(s.bypass_auth) {
        Some(Overridden("spec.bypass_auth"))
    } else {
        None
    };
    if let Some(why) = unchecked {
        f.add(
            map(&s.auth_context_extensions),
            "spec.auth_context_extensions",
            why,
        );
        f.add(present(&s.auth_service_ref), "spec.auth_service_ref", why);
    }
    // `v3ratelimitaction.py` leaves `skip_if_absent` out: a group whose header is absent is
    // not sent, whatever `omit_if_not_present` says.
    f.add_with(
        s.labels.as_ref().is_some_and(|l| {
            super::rate_limit::omits_if_not_present(super::rate_limit::all_specifiers(l))
        }),
        "spec.labels",
        Some(OMIT_IF_NOT_PRESENT),
        AsEmissary,
    );
    f.add(present(&s.docs), "spec.docs", NotYet);
    // `irhttpmapping.py`: "outlier_detection is not supported", and the Mapping is served.
    f.add_with(
        text(&s.outlier_detection),
        "spec.outlier_detection",
        Some("Emissary does not support it either"),
        NotYet,
    );
    // Emissary 4 posts an error and ignores them (`irhttpmapping.py`).
    const NOT_IN_EMISSARY_4: Option<&str> = Some("Emissary 4 ignores it too");
    f.add_with(
        list(&s.error_response_overrides),
        "spec.error_response_overrides",
        NOT_IN_EMISSARY_4,
        Legacy,
    );
    f.add_with(
        on(s.bypass_error_response_overrides),
        "spec.bypass_error_response_overrides",
        NOT_IN_EMISSARY_4,
        Legacy,
    );
    // In the CRD only: Emissary's code never reads them.
    f.add_with(
        dict(&s.envoy_override),
        "spec.envoy_override",
        NOT_IN_EMISSARY_4,
        Legacy,
    );
    f.add_with(list(&s.modules), "spec.modules", NOT_IN_EMISSARY_4, Legacy);

    // What the Mapping is, decided as `mapping::route` and `group` decide it.
    let shadow = on(s.shadow);
    let redirect = on(s.host_redirect) && !shadow;
    if redirect {
        let why = Redirect;
        f.add(
            matches!(
                s.tls,
                Some(BoolOrString::Bool(true) | BoolOrString::String(_))
            ),
            "spec.tls",
            why,
        );
        f.add(on(s.grpc), "spec.grpc", why);
        f.add(present(&s.timeout_ms), "spec.timeout_ms", why);
        f.add(present(&s.idle_timeout_ms), "spec.idle_timeout_ms", why);
        f.add(
            present(&s.connect_timeout_ms),
            "spec.connect_timeout_ms",
            why,
        );
        f.add(present(&s.retry_policy), "spec.retry_policy", why);
        f.add(
            present(&s.cluster_idle_timeout_ms),
            "spec.cluster_idle_timeout_ms",
            why,
        );
        f.add(
            present(&s.cluster_max_connection_lifetime_ms),
            "spec.cluster_max_connection_lifetime_ms",
            why,
        );
        f.add(present(&s.circuit_breakers), "spec.circuit_breakers", why);
        f.add(present(&s.load_balancer), "spec.load_balancer", why);
        f.add(present(&s.keepalive), "spec.keepalive", why);
        f.add(list(&s.health_checks), "spec.health_checks", why);
        f.add(
            differs(s.dns_type, DnsType::StrictDns),
            "spec.dns_type",
            why,
        );
        f.add(on(s.respect_dns_ttl), "spec.respect_dns_ttl", why);
        f.add(off(s.enable_ipv4), "spec.enable_ipv4", why);
        f.add(on(s.enable_ipv6), "spec.enable_ipv6", why);
        f.add(text(&s.cluster_tag), "spec.cluster_tag", why);
        f.add(text(&s.stats_name), "spec.stats_name", why);
        f.add(present(&s.rewrite), "spec.rewrite", why);
        f.add(present(&s.regex_rewrite), "spec.regex_rewrite", why);
        f.add(text(&s.host_rewrite), "spec.host_rewrite", why);
        f.add(on(s.auto_host_rewrite), "spec.auto_host_rewrite", why);
        f.add(list(&s.allow_upgrade), "spec.allow_upgrade", why);
        f.add(on(s.use_websocket), "spec.use_websocket", why);
        f.add(text(&s.resolver), "spec.resolver", why);
        f.add(present(&s.cors), "spec.cors", why);
        f.add(on(s.add_linkerd_headers), "spec.add_linkerd_headers", why);
        f.add(text(&s.priority), "spec.priority", why);
        f.add(text(&s.priority), "spec.priority", why);
        f.add(map(&s.labels), "spec.labels", why);
    } else {
        let why = NotRedirect;
        f.add(present(&s.path_redirect), "spec.path_redirect", why);
        f.add(present(&s.prefix_redirect), "spec.prefix_redirect", why);
        f.add(present(&s.regex_redirect), "spec.regex_redirect", why);
        f.add(
            present(&s.redirect_response_code),
            "spec.redirect_response_code",
            why,
        );
    }
    if shadow {
        // Its group's route carries the request (rewritten, with headers, timeouts and
        // retries as that route says); the shadow gives the cluster and the share mirrored.
        let why = Shadow;
        f.add(off(s.case_sensitive), "spec.case_sensitive", why);
        f.add(present(&s.timeout_ms), "spec.timeout_ms", why);
        f.add(present(&s.idle_timeout_ms), "spec.idle_timeout_ms", why);
        f.add(present(&s.retry_policy), "spec.retry_policy", why);
        f.add(present(&s.rewrite), "spec.rewrite", why);
        f.add(present(&s.regex_rewrite), "spec.regex_rewrite", why);
        f.add(text(&s.host_rewrite), "spec.host_rewrite", why);
        f.add(on(s.auto_host_rewrite), "spec.auto_host_rewrite", why);
        f.add(list(&s.allow_upgrade), "spec.allow_upgrade", why);
        f.add(on(s.use_websocket), "spec.use_websocket", why);
        f.add(map(&s.add_request_headers), "spec.add_request_headers", why);
        f.add(on(s.add_linkerd_headers), "spec.add_linkerd_headers", why);
        f.add(text(&s.priority), "spec.priority", why);
        f.add(map(&s.labels), "spec.labels", why);
        f.add(
            map(&s.add_response_headers),
            "spec.add_response_headers",
            why,
        );
        f.add(
            list(&s.remove_request_headers),
            "spec.remove_request_headers",
            why,
        );
        f.add(
            list(&s.remove_response_headers),
            "spec.remove_response_headers",
            why,
        );
        f.add(on(s.host_redirect), "spec.host_redirect", why);
        f.add(present(&s.cors), "spec.cors", why);
    }

    // Fields of which Emissary uses one when several are set (posting an error it still serves
    // with), and pairs the schema refuses together, which a source without CEL (Kubernetes
    // before 1.25) can still deliver: the IR reads the winner and ignores the rest.
    if redirect {
        f.add(
            s.path_redirect.is_some() && s.prefix_redirect.is_some(),
            "spec.prefix_redirect",
            Overridden("spec.path_redirect"),
        );
        f.add(
            s.path_redirect.is_some() && s.regex_redirect.is_some(),
            "spec.regex_redirect",
            Overridden("spec.path_redirect"),
        );
        f.add(
            s.path_redirect.is_none() && s.prefix_redirect.is_some() && s.regex_redirect.is_some(),
            "spec.regex_redirect",
            Overridden("spec.prefix_redirect"),
        );
    }
    f.add(
        s.hostname.is_some() && s.host.is_some(),
        "spec.host",
        Overridden("spec.hostname"),
    );
    f.add(
        s.hostname.is_some() && on(s.host_regex),
        "spec.host_regex",
        Overridden("spec.hostname"),
    );
    f.add(
        s.regex_rewrite.is_some() && s.rewrite.is_some(),
        "spec.rewrite",
        Overridden("spec.regex_rewrite"),
    );
}

fn host(s: &HostSpec, f: &mut Found) {
    use Why::*;
    const USE_A_LISTENER: Option<&str> =
        Some("use a Listener and requestPolicy.insecure.action instead");
    f.add(
        s.mapping_selector.is_some() && s.selector.is_some(),
        "spec.selector",
        Overridden("spec.mappingSelector"),
    );
    f.add(
        s.tls_context.is_some() && s.tls.is_some(),
        "spec.tls",
        Overridden("spec.tlsContext"),
    );
    if let (None, Some(t)) = (&s.tls_context, &s.tls) {
        f.add(text(&t.sni), "spec.tls.sni", OriginationOnly);
        f.add_with(
            t.redirect_cleartext_from.is_some_and(|p| p.get() != 0),
            "spec.tls.redirect_cleartext_from",
            USE_A_LISTENER,
            Legacy,
        );
    }
    let additional_port = s
        .request_policy
        .as_ref()
        .and_then(|p| p.insecure.as_ref())
        .and_then(|i| i.additional_port);
    f.add_with(
        additional_port.is_some_and(|p| p.get() > 0),
        "spec.requestPolicy.insecure.additionalPort",
        USE_A_LISTENER,
        Legacy,
    );
    // Without `acmeProvider` Emissary asks Let's Encrypt; `authority: none` is how to say what
    // the gateway always does.
    f.add_with(
        s.acme_provider.as_ref().is_some_and(|a| {
            !a.authority
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case("none"))
        }),
        "spec.acmeProvider",
        Some("Legate does no ACME: issue the certificate elsewhere and name it in tlsSecret"),
        NotYet,
    );
    f.add(
        s.preview_url.as_ref().is_some_and(|p| on(p.enabled)),
        "spec.previewUrl",
        NotYet,
    );
}

fn auth_service(s: &AuthServiceSpec, f: &mut Found) {
    use Why::*;
    // `v3httpfilter.py` writes these into the HTTP service only.
    if s.proto == Some(AuthProto::Grpc) {
        f.add(text(&s.path_prefix), "spec.path_prefix", HttpOnly);
        f.add(
            list(&s.allowed_request_headers),
            "spec.allowed_request_headers",
            HttpOnly,
        );
        f.add(
            list(&s.allowed_authorization_headers),
            "spec.allowed_authorization_headers",
            HttpOnly,
        );
        f.add(map(&s.add_auth_headers), "spec.add_auth_headers", HttpOnly);
        f.add(
            on(s.add_linkerd_headers),
            "spec.add_linkerd_headers",
            HttpOnly,
        );
    }
    // Emissary: "AuthService ignoring allow_request_body since include_body is present".
    f.add(
        present(&s.include_body) && present(&s.allow_request_body),
        "spec.allow_request_body",
        Overridden("spec.include_body"),
    );
}

fn tracing_service(s: &TracingServiceSpec, f: &mut Found) {
    use Why::*;
    // Emissary's `v2` conversion: "ignoring TagHeaders since it is deprecated".
    f.add(
        list(&s.custom_tags) && list(&s.tag_headers),
        "spec.tag_headers",
        Overridden("spec.custom_tags"),
    );
    let Some(c) = &s.config else {
        return;
    };
    f.add_with(
        text(&c.collector_cluster),
        "spec.config.collector_cluster",
        Some("the gateway calls the collector named by spec.service, as Emissary does"),
        Never,
    );
    for (set, field) in [
        (text(&c.access_token_file), "spec.config.access_token_file"),
        (list(&c.propagation_modes), "spec.config.propagation_modes"),
    ] {
        f.add_with(set, field, Some("lightstep's, which Envoy removed"), Never);
    }
    let driver = s.driver;
    let zipkin = driver == TracingDriver::Zipkin;
    let named = Driver(driver.as_str());
    for (set, field, used) in [
        (
            text(&c.collector_endpoint),
            "spec.config.collector_endpoint",
            zipkin,
        ),
        (
            present(&c.collector_endpoint_version),
            "spec.config.collector_endpoint_version",
            zipkin,
        ),
        (
            present(&c.trace_id_128bit),
            "spec.config.trace_id_128bit",
            zipkin,
        ),
        (
            present(&c.shared_span_context),
            "spec.config.shared_span_context",
            zipkin,
        ),
        (
            text(&c.collector_hostname),
            "spec.config.collector_hostname",
            zipkin || driver == TracingDriver::Datadog,
        ),
        (
            text(&c.service_name),
            "spec.config.service_name",
            matches!(
                driver,
                TracingDriver::Opentelemetry | TracingDriver::Datadog
            ),
        ),
    ] {
        f.add(set && !used, field, named);
    }
}

fn listener(s: &ListenerSpec, f: &mut Found) {
    f.add(
        s.protocol_stack.is_some() && s.protocol.is_some(),
        "spec.protocol",
        Why::Overridden("spec.protocolStack"),
    );
}

fn tls_context(s: &TlsContextSpec, f: &mut Found) {
    use Why::*;
    f.add_with(
        list(&s.hosts),
        "spec.hosts",
        // ir/tcp_mapping.rs pairs a TCPMapping's host with it; Hosts are not.
        Some(
            "a Host uses a TLSContext only when its tlsContext names it; a TCPMapping's host \
             does pair with it",
        ),
        NotYet,
    );
    f.add_with(
        s.redirect_cleartext_from.is_some_and(|p| p.get() != 0),
        "spec.redirect_cleartext_from",
        Some("use a Listener and a Host's requestPolicy.insecure.action instead"),
        Legacy,
    );
}

fn module(c: &ModuleConfig, f: &mut Found) {
    use Why::*;
    let probe =
        |p: &Option<legate_crds::module::Probe>| p.as_ref().is_some_and(|p| !off(p.enabled));

    // `irambassador.py` reads only `defaults` of each domain.
    let labels = || c.default_labels.iter().flatten().map(|(_, l)| l);
    let prefix = labels().any(|l| l.label_prefix.as_deref().is_some_and(|p| !p.is_empty()));
    let omit =
        super::rate_limit::omits_if_not_present(labels().flat_map(|l| l.defaults.iter().flatten()));
    f.add_with(
        prefix || omit,
        "spec.config.default_labels",
        Some(match (prefix, omit) {
            (true, true) => {
                "label_prefix; and omit_if_not_present: true: a label group whose header is \
                 absent is not sent, whatever it says"
            }
            (true, false) => "label_prefix",
            _ => OMIT_IF_NOT_PRESENT,
        }),
        AsEmissary,
    );
    f.add(
        probe(&c.liveness_probe),
        "spec.config.liveness_probe",
        NotYet,
    );
    f.add(
        probe(&c.readiness_probe),
        "spec.config.readiness_probe",
        NotYet,
    );
    // Emissary 2+ reads neither for the Listeners it is given: the Listener and the Host say
    // these now.
    f.add_with(
        on(c.use_proxy_proto),
        "spec.config.use_proxy_proto",
        Some("a Listener with protocol HTTPPROXY reads the PROXY header"),
        Legacy,
    );
    f.add_with(
        on(c.x_forwarded_proto_redirect),
        "spec.config.x_forwarded_proto_redirect",
        Some("a Host's requestPolicy.insecure.action: Redirect redirects cleartext"),
        Legacy,
    );
    // Envoy compiles a script when it loads the listener: one that fails would reject it whole,
    // and the gateway cannot check Lua beforehand.
    f.add_with(
        text(&c.lua_scripts),
        "spec.config.lua_scripts",
        Some("a script cannot be checked before Envoy loads it"),
        NotYet,
    );
    // Regexes are RE2 (`safe`) always.
    f.add(
        differs(c.regex_type, RegexType::Safe),
        "spec.config.regex_type",
        Legacy,
    );
    // 0 turns validation off; the gateway does none.
    f.add(
        differs(c.envoy_validation_timeout.map(|t| t.get()), 0),
        "spec.config.envoy_validation_timeout",
        NotYet,
    );
    f.add(dict(&c.runtime_flags), "spec.config.runtime_flags", NotYet);
    f.add(present(&c.service_port), "spec.config.service_port", Legacy);
    f.add(present(&c.admin_port), "spec.config.admin_port", Legacy);
    f.add(present(&c.diag_port), "spec.config.diag_port", Legacy);
    // Unreachable routes are always pruned.
    f.add(
        off(c.prune_unreachable_routes),
        "spec.config.prune_unreachable_routes",
        Legacy,
    );
    // Emissary's own Envoy build has custom header-case rules; a stock Envoy has none.
    f.add_with(
        list(&c.header_case_overrides),
        "spec.config.header_case_overrides",
        Some("stock Envoy has no per-header case rules, only Emissary's own Envoy build does"),
        NotYet,
    );
    // Emissary 4 posts an error and ignores it (`ir.py`).
    f.add_with(
        list(&c.error_response_overrides),
        "spec.config.error_response_overrides",
        Some("Emissary 4 ignores it too"),
        Legacy,
    );
}
