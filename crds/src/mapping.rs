//! `Mapping` (`getambassador.io/v3alpha1`): an HTTP/gRPC/WebSocket route, with Emissary's field
//! names and shapes so Emissary YAML applies unchanged. Semantics: `../shared/EMISSARY.md` §1.1.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::{
    fields::{
        AddedHeader, AmbassadorId, BoolOrString, Bounded, CircuitBreaker, Count, Millis, Percent,
        UntypedDict,
    },
    status::MappingStatus,
};

#[allow(clippy::duplicated_attributes)] // one `printcolumn(...)` per column
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "Mapping",
    doc = "An HTTP, gRPC or WebSocket route: what to match, which service receives it, and how (Emissary-compatible).",
    namespaced,
    derive = "PartialEq",
    status = "MappingStatus",
    category = "legate",
    category = "ambassador-crds",
    printcolumn(name = "Hostname", type_ = "string", json_path = ".spec.hostname"),
    printcolumn(name = "Prefix", type_ = "string", json_path = ".spec.prefix"),
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state")
)]
#[x_kube(validation = Rule::new("(has(self.prefix_regex) && self.prefix_regex) || self.prefix.startsWith('/')").message("prefix must start with '/' unless prefix_regex is true").field_path(".prefix"))]
#[x_kube(validation = Rule::new("!has(self.regex_rewrite) || !has(self.rewrite)").message("set rewrite or regex_rewrite, not both").field_path(".regex_rewrite"))]
#[x_kube(validation = Rule::new("(!has(self.path_redirect) && !has(self.prefix_redirect) && !has(self.regex_redirect) && !has(self.redirect_response_code)) || (has(self.host_redirect) && self.host_redirect)").message("path_redirect, prefix_redirect, regex_redirect and redirect_response_code need host_redirect: true").field_path(".host_redirect"))]
#[x_kube(validation = Rule::new("!(has(self.shadow) && self.shadow && has(self.host_redirect) && self.host_redirect)").message("a Mapping is either a shadow or a redirect, not both").field_path(".shadow"))]
pub struct MappingSpec {
    #[serde(default, skip_serializing_if = "AmbassadorId::is_empty")]
    pub ambassador_id: AmbassadorId,

    // --- Matching -------------------------------------------------------------------------
    /// Path prefix to match; a regex with `prefix_regex`, an exact path with `prefix_exact`.
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_regex: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_exact: Option<bool>,
    /// Defaults to true, as in Emissary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_sensitive: Option<bool>,
    /// DNS glob for the `:authority`, also used to associate with Hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Deprecated: exact `:authority` (a regex with `host_regex`). `hostname` wins when both are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_regex: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, BoolOrString>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_headers: Option<BTreeMap<String, BoolOrString>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_parameters: Option<BTreeMap<String, BoolOrString>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_query_parameters: Option<BTreeMap<String, BoolOrString>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method_regex: Option<bool>,
    /// Higher is matched first; nonzero values are part of the group identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precedence: Option<i32>,

    // --- Upstream ------------------------------------------------------------------------
    /// `[scheme://]host[:port]`; qualified with the Mapping's namespace when unqualified.
    #[x_kube(validation = Rule::new("self.size() > 0").message("service must not be empty"))]
    pub service: String,
    /// Canary share within the route group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// A TLSContext name to originate with, or `true` to originate without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BoolOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_idle_timeout_ms: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_max_connection_lifetime_ms: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<Vec<CircuitBreaker>>,
    /// Active health checks of the upstream's endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_checks: Option<Vec<HealthCheck>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<KeepAlive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_type: Option<DnsType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respect_dns_ttl: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rewrite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_host_rewrite: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_linkerd_headers: Option<bool>,
    /// Mirror `weight`% of the group's traffic to this Mapping's service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,

    // --- Transformation and policy ------------------------------------------------------
    /// Replaces the matched prefix; absent means `/`, `""` keeps the path as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_rewrite: Option<RegexRewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_request_headers: Option<BTreeMap<String, AddedHeader>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_response_headers: Option<BTreeMap<String, AddedHeader>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_request_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_response_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Protocols to allow upgrading to, e.g. `websocket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_upgrade: Option<Vec<String>>,
    /// Deprecated: same as `allow_upgrade: [websocket]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_websocket: Option<bool>,
    /// Let this route's requests through without the AuthService's check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass_auth: Option<bool>,
    /// Context extensions sent with this route's check requests (gRPC AuthServices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_context_extensions: Option<BTreeMap<String, String>>,
    /// Legate extension: the AuthService that checks this route's requests, instead of the
    /// gateway's default one; it may be an `opt_in` AuthService. Absent: the default, as in
    /// Emissary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_service_ref: Option<AuthServiceReference>,
    /// Redirect instead of proxying; the redirect host is `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_redirect: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_redirect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_redirect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_redirect: Option<RegexRewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_response_code: Option<RedirectCode>,
    /// Rate-limit descriptors: `{domain: [{group: [specifier, ...]}]}` (not metadata labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<RateLimitLabels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<Docs>,

    // --- Accepted for compatibility; the translator reports them as unsupported ----------
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_override: Option<UntypedDict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_response_overrides: Option<Vec<UntypedDict>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass_error_response_overrides: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<UntypedDict>>,
}

/// An AuthService by name, in the Mapping's namespace unless `namespace` is given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuthServiceReference {
    /// Name of the AuthService.
    pub name: String,
    /// Namespace of the AuthService; defaults to the Mapping's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<RetryOn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<Count>,
    /// An Envoy duration, e.g. `0.5s` or `250ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+)?(ms|s|m|h)$')").message("per_try_timeout must be a duration such as 250ms or 1.5s"))]
    pub per_try_timeout: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum RetryOn {
    #[serde(rename = "5xx")]
    FiveXx,
    #[serde(rename = "gateway-error")]
    GatewayError,
    #[serde(rename = "connect-failure")]
    ConnectFailure,
    #[serde(rename = "retriable-4xx")]
    Retriable4xx,
    #[serde(rename = "refused-stream")]
    RefusedStream,
    #[serde(rename = "retriable-status-codes")]
    RetriableStatusCodes,
}

/// `round_robin`/`least_request`, or `ring_hash`/`maglev` with exactly one hash source.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new("(self.policy == 'ring_hash' || self.policy == 'maglev') ? [has(self.cookie), has(self.header), has(self.source_ip)].filter(x, x).size() == 1 : !has(self.cookie) && !has(self.header) && !has(self.source_ip)").message("ring_hash and maglev need exactly one of cookie, header and source_ip; round_robin and least_request take none"))]
pub struct LoadBalancer {
    pub policy: LoadBalancerPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<LoadBalancerCookie>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancerPolicy {
    RoundRobin,
    LeastRequest,
    RingHash,
    Maglev,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LoadBalancerCookie {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KeepAlive {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_time: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Count>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DnsType {
    StrictDns,
    LogicalDns,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Cors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origins: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}

/// An active health check of a Mapping's upstream endpoints (Emissary's `health_checks`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HealthCheck {
    /// How long to wait for an answer, a duration such as `3s` (Emissary's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Time between checks, a duration such as `5s` (Emissary's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Failed checks before an endpoint is unhealthy (default 2; one 503 is enough).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<Count>,
    /// Passed checks before an endpoint is healthy again (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<Count>,
    /// What to ask: an HTTP request or a gRPC health check.
    pub health_check: HealthCheckLocation,
}

/// Exactly one kind of check.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new("has(self.http) != has(self.grpc)").message("set exactly one of http and grpc"))]
pub struct HealthCheckLocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpHealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcHealthCheck>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HttpHealthCheck {
    pub path: String,
    /// The `Host` of the check request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_request_headers: Option<BTreeMap<String, AddedHeader>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_request_headers: Option<Vec<String>>,
    /// Statuses that pass, both ends included (default: 200 only, Envoy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_statuses: Option<Vec<StatusRange>>,
}

/// HTTP statuses from `min` to `max`, both included.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatusRange {
    pub min: Bounded<100, 599>,
    pub max: Bounded<100, 599>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GrpcHealthCheck {
    /// The service name sent in the gRPC health check request.
    pub upstream_name: String,
    /// The check's `:authority` (default: `upstream_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

/// `regex_rewrite` and `regex_redirect`: an RE2 pattern and its substitution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegexRewrite {
    pub pattern: String,
    pub substitution: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub enum RedirectCode {
    MovedPermanently = 301,
    Found = 302,
    SeeOther = 303,
    TemporaryRedirect = 307,
    PermanentRedirect = 308,
}

impl TryFrom<i64> for RedirectCode {
    type Error = String;

    fn try_from(code: i64) -> Result<Self, String> {
        Ok(match code {
            301 => Self::MovedPermanently,
            302 => Self::Found,
            303 => Self::SeeOther,
            307 => Self::TemporaryRedirect,
            308 => Self::PermanentRedirect,
            _ => {
                return Err(format!(
                    "must be one of 301, 302, 303, 307, 308, got {code}"
                ));
            }
        })
    }
}

impl From<RedirectCode> for i64 {
    fn from(code: RedirectCode) -> i64 {
        code as i64
    }
}

impl schemars::JsonSchema for RedirectCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RedirectCode".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "integer", "enum": [301, 302, 303, 307, 308] })
    }
}

/// Rate-limit descriptors by domain: each domain has a list of named groups, each group a list
/// of label specifiers (Emissary's `DomainMap`).
pub type RateLimitLabels = BTreeMap<String, Vec<BTreeMap<String, Vec<LabelSpecifier>>>>;

/// One rate-limit label: `source_cluster`, `destination_cluster`, `remote_address`, a literal
/// generic key, `{generic_key: {value, key?}}` or `{request_headers: {key, header_name, ...}}`,
/// or Emissary's shorthand `{<label>: {header: <name>, omit_if_not_present?}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged, expecting = "expected a label name, or a map")]
pub enum LabelSpecifier {
    Name(String),
    Object(UntypedDict),
}

impl schemars::JsonSchema for LabelSpecifier {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LabelSpecifier".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Docs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Millis>,
}
