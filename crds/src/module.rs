//! `Module` (`getambassador.io/v3alpha1`): global configuration. The Module named `ambassador`
//! carries its keys under `spec.config`, with Emissary's names and shapes so Emissary YAML applies
//! unchanged. Semantics: `../shared/EMISSARY.md` §1.8.
//!
//! Emissary types `spec.config` as an untyped dictionary. Legate types every key Emissary reads;
//! the schema still keeps keys it does not know (`x-kubernetes-preserve-unknown-fields`), so a
//! Module written for Emissary is never refused for one of them: the loader warns about such a
//! key and ignores it.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    fields::{AmbassadorId, Bounded, CircuitBreaker, Count, Millis, Port, UntypedDict},
    mapping::{Cors, KeepAlive, LabelSpecifier, LoadBalancer, RetryPolicy},
    status::ResourceStatus,
};

/// A size in bytes (buffers, bodies); Envoy refuses 0.
pub type Bytes = Bounded<1, { u32::MAX as i64 }>;
/// `max_request_headers_kb`: Envoy's bounds, 1 to 8192 KiB.
pub type HeadersKb = Bounded<1, 8192>;

#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "Module",
    doc = "Gateway-wide configuration; the Module named `ambassador` carries the global defaults and options.",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    category = "legate",
    category = "ambassador-crds"
)]
pub struct ModuleSpec {
    #[serde(default, skip_serializing_if = "AmbassadorId::is_empty")]
    pub ambassador_id: AmbassadorId,

    /// The module's settings; for the `ambassador` Module, gateway-wide defaults and options.
    pub config: ModuleConfig,
}

/// The keys of the `ambassador` Module. Keys not listed here are kept by the API server and
/// reported by Legate as unknown.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
#[x_kube(validation = Rule::new("!(has(self.ip_allow) && has(self.ip_deny))").message("set ip_allow or ip_deny, not both").field_path(".ip_deny"))]
pub struct ModuleConfig {
    // --- Timeouts ------------------------------------------------------------------------
    /// Default route timeout of every Mapping, in milliseconds (default 3000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_request_timeout_ms: Option<Millis>,
    /// Default idle timeout of upstream connections, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_idle_timeout_ms: Option<Millis>,
    /// Default longest life of an upstream connection, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_max_connection_lifetime_ms: Option<Millis>,
    /// Idle timeout of downstream connections, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_idle_timeout_ms: Option<Millis>,
    /// Default TCP keepalive of upstream connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<KeepAlive>,

    // --- Defaults for every Mapping ----------------------------------------------------------
    /// Default values per resource class, e.g. `defaults.httpmapping.add_request_headers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<UntypedDict>,
    /// Default upstream circuit-breaker thresholds, per priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<Vec<CircuitBreaker>>,
    /// Default load-balancing policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// Default retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Default CORS policy of every route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Add Linkerd's `l5d-dst-override` header to upstream requests by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_linkerd_headers: Option<bool>,
    /// Default resolver of `service` names (default `kubernetes-service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// Rate-limit domain when a RateLimitService names none (default `ambassador`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_label_domain: Option<String>,
    /// Rate-limit labels put before every Mapping's own, per domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_labels: Option<BTreeMap<String, DefaultLabels>>,
    /// Resolve upstreams over IPv4 by default (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    /// Resolve upstreams over IPv6 by default (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    /// Resolve unqualified service names in the gateway's namespace, not the Mapping's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_ambassador_namespace_for_service_resolution: Option<bool>,

    // --- Probes and diagnostics --------------------------------------------------------------
    /// The diagnostics routes under `/ambassador/v0/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Diagnostics>,
    /// The liveness probe route (`/ambassador/v0/check_alive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    /// The readiness probe route (`/ambassador/v0/check_ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,

    // --- HTTP connection manager options ------------------------------------------------------
    /// Trust the connection's address as the client's (default true) instead of `X-Forwarded-For`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_remote_address: Option<bool>,
    /// Number of proxies in front of the gateway whose `X-Forwarded-For` entries are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xff_num_trusted_hops: Option<Count>,
    /// Expect the PROXY protocol on incoming connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_proxy_proto: Option<bool>,
    /// Redirect requests whose `X-Forwarded-Proto` is not `https` to HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_forwarded_proto_redirect: Option<bool>,
    /// Accept HTTP/1.0 requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_http10: Option<bool>,
    /// Accept HTTP/1.1 requests carrying both `Content-Length` and chunked encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_chunked_length: Option<bool>,
    /// Largest request header block accepted, in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_headers_kb: Option<HeadersKb>,
    /// What to do with request headers whose names contain underscores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_with_underscores_action: Option<HeadersWithUnderscoresAction>,
    /// Value of the `server` response header (default `envoy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Keep a client's `X-Request-Id` instead of generating a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_external_request_id: Option<bool>,
    /// How to treat the `X-Forwarded-Client-Cert` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_client_cert_details: Option<ForwardClientCertDetails>,
    /// Which parts of the client certificate go into `X-Forwarded-Client-Cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_current_client_cert_details: Option<ClientCertDetails>,
    /// Drop the port from the `Host` header when it matches the listener's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_matching_host_port: Option<bool>,
    /// Merge adjacent slashes in the path before routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_slashes: Option<bool>,
    /// Refuse requests whose path contains escaped slashes (`%2F`, `%5C`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_requests_with_escaped_slashes: Option<bool>,
    /// Write HTTP/1 header names in Proper-Case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proper_case: Option<bool>,
    /// Add no `x-envoy-*` headers to requests and responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppress_envoy_headers: Option<bool>,
    /// Per-connection buffer limit, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_limit_bytes: Option<Bytes>,

    // --- Logging ------------------------------------------------------------------------------
    /// Access-log format: `text` (the default), `json` or `typed_json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_log_type: Option<EnvoyLogType>,
    /// Access-log format: a format string for `text`, a map of field to format for the JSON types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_log_format: Option<EnvoyLogFormat>,
    /// Access-log destination (default standard output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_log_path: Option<String>,

    // --- Filters ------------------------------------------------------------------------------
    /// Allow only requests from these addresses (RBAC); exclusive with `ip_deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_allow: Option<Vec<IpPrincipal>>,
    /// Refuse requests from these addresses (RBAC); exclusive with `ip_allow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_deny: Option<Vec<IpPrincipal>>,
    /// Lua code run on every request and response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lua_scripts: Option<String>,
    /// Compress responses with gzip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip: Option<Gzip>,
    /// Buffer whole requests before routing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer: Option<Buffer>,
    /// Bridge HTTP/1.1 clients to gRPC upstreams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_grpc_http11_bridge: Option<bool>,
    /// Accept gRPC-Web requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_grpc_web: Option<bool>,
    /// Count gRPC requests per service and method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_stats: Option<GrpcStats>,

    // --- Other --------------------------------------------------------------------------------
    /// Largest RE2 program size a regex may compile to (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_max_size: Option<Count>,
    /// Legacy: Emissary 3.x ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_type: Option<RegexType>,
    /// Seconds allowed to validate a new configuration (default 60; 0 disables validation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_validation_timeout: Option<Count>,
    /// Envoy runtime flags set in the bootstrap, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_flags: Option<UntypedDict>,
    /// Legacy: port of the default listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_port: Option<Port>,
    /// Legacy: port of Envoy's admin interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_port: Option<Port>,
    /// Legacy: port of the diagnostics service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diag_port: Option<Port>,
    /// Legacy: unreachable routes are now always pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_unreachable_routes: Option<bool>,
    /// Not supported (Emissary 4.x posts an error): header names to rewrite to this case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_case_overrides: Option<Vec<String>>,
    /// Not supported (Emissary 4.x posts an error): custom error responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_response_overrides: Option<Vec<UntypedDict>>,
}

/// `default_labels.<domain>`: labels every Mapping's descriptors start with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DefaultLabels {
    /// Label specifiers put first in every descriptor of the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Vec<LabelSpecifier>>,
    /// Legacy: a prefix for the labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_prefix: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Diagnostics {
    /// Serve the diagnostics routes (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Serve them to clients that are not on the gateway's own host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_non_local: Option<bool>,
}

/// A probe route the gateway adds for itself (hostname `*`, 10 s timeout).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Probe {
    /// Add the route (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Path prefix the route matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Path the request is rewritten to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
    /// Upstream that answers the probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HeadersWithUnderscoresAction {
    Allow,
    RejectRequest,
    DropHeader,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ForwardClientCertDetails {
    Sanitize,
    ForwardOnly,
    AppendForward,
    SanitizeSet,
    AlwaysForwardOnly,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClientCertDetails {
    /// Include the certificate's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<bool>,
    /// Include the whole certificate, URL-encoded PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<bool>,
    /// Include the whole chain, URL-encoded PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<bool>,
    /// Include the DNS subject alternative names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<bool>,
    /// Include the URI subject alternative names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnvoyLogType {
    Text,
    Json,
    TypedJson,
}

/// `envoy_log_format`: a format string (`text`), or a map of field name to format (JSON types).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "expected a format string, or a map of field names to formats"
)]
pub enum EnvoyLogFormat {
    Text(String),
    Fields(UntypedDict),
}

impl JsonSchema for EnvoyLogFormat {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EnvoyLogFormat".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // A structural schema cannot say "string or object"; the loader's type check refuses the rest.
        schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
    }
}

/// One `ip_allow`/`ip_deny` entry: the connection's `peer` address or the client's `remote`
/// address (after `X-Forwarded-For`), as an IP or a CIDR range.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new("has(self.peer) != has(self.remote)").message("set exactly one of peer and remote"))]
pub struct IpPrincipal {
    /// Address of the connection's peer, an IP or a CIDR range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Address of the client as `X-Forwarded-For` tells it, an IP or a CIDR range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Gzip {
    /// Smallest response compressed, in bytes (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_content_length: Option<Count>,
    /// zlib memory level, 1 to 9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_level: Option<Bounded<1, 9>>,
    /// zlib window bits, 9 to 15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_bits: Option<Bounded<9, 15>>,
    /// zlib compression level, Envoy's name: `DEFAULT_COMPRESSION`, `BEST_SPEED`, `BEST_COMPRESSION`, `COMPRESSION_LEVEL_1` to `_9`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<String>,
    /// zlib strategy, Envoy's name: `DEFAULT_STRATEGY`, `FILTERED`, `HUFFMAN_ONLY`, `RLE`, `FIXED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_strategy: Option<String>,
    /// Content types compressed (default: common text types).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<Vec<String>>,
    /// Do not compress responses that carry an `ETag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_on_etag_header: Option<bool>,
    /// Remove `Accept-Encoding` before the request goes upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_accept_encoding_header: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Buffer {
    /// Largest request body buffered, in bytes; larger requests get 413.
    pub max_request_bytes: Bytes,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GrpcStats {
    /// Count every service and method (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_methods: Option<bool>,
    /// Count only these services and methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<GrpcService>>,
    /// Also count upstream request times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_stats: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GrpcService {
    /// Fully qualified gRPC service name, e.g. `helloworld.Greeter`.
    pub name: String,
    /// Methods of the service to count; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method_names: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegexType {
    Safe,
    Unsafe,
}

#[cfg(test)]
mod tests {
    use crate::{Resource, loader::load_str};

    #[test]
    fn a_config_key_legate_does_not_know_is_a_warning_not_an_error() {
        let yaml = "apiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata:\n  name: ambassador\n  namespace: ambassador\nspec:\n  config:\n    server_name: legate\n    statsd:\n      enabled: true\n";
        let loaded = load_str("module.yaml", yaml).unwrap();
        assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
        let [Resource::Module(module)] = loaded.resources.as_slice() else {
            panic!("{:#?}", loaded.resources);
        };
        assert_eq!(module.spec.config.server_name.as_deref(), Some("legate"));
        let messages: Vec<_> = loaded.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(messages, ["spec.config.statsd: unknown field, ignored"]);
    }
}
