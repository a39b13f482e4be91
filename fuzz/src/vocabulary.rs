//! The words the `ir` target writes resources with: for each kind a valid base object, and the
//! fields a team sets on it, each with the values worth trying (valid ones, edge cases, and the
//! occasional value of the wrong type). Few names and namespaces, so resources refer to each
//! other and collide: Mappings to Services, Hosts to Secrets and TLSContexts, canaries on one
//! prefix, conflicting Listeners.

use arbitrary::Arbitrary;
use serde_json::{Map, Value, json};

/// The golden tests' inputs, as a fleet's starting point.
pub const GOLDEN: [&str; 6] = [
    include_str!("../../gateway-agent/tests/golden/hosts-and-canaries/input.yaml"),
    include_str!("../../gateway-agent/tests/golden/services/input.yaml"),
    include_str!("../../gateway-agent/tests/golden/tls/input.yaml"),
    include_str!("../../gateway-agent/tests/golden/unsupported/input.yaml"),
    include_str!("../../gateway-agent/tests/golden/local/input/listener.yaml"),
    include_str!("../../gateway-agent/tests/golden/local/input/mappings.yaml"),
];

/// One resource: a kind's base object with some fields set.
#[derive(Arbitrary, Debug)]
pub struct Document {
    kind: Kind,
    name: u8,
    namespace: u8,
    fields: Vec<Setting>,
}

#[derive(Arbitrary, Debug)]
struct Setting {
    field: u8,
    value: Choice,
}

/// Which value of a field's list (or lists of them); `Wild` ignores the field's type.
#[derive(Arbitrary, Debug)]
enum Choice {
    One(u8),
    Several(Vec<u8>),
    Wild(u8),
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum Kind {
    Mapping,
    Host,
    Listener,
    TlsContext,
    TcpMapping,
    AuthService,
    RateLimitService,
    LogService,
    TracingService,
    Module,
    KubernetesServiceResolver,
    KubernetesEndpointResolver,
    ConsulResolver,
    Secret,
    Service,
    EndpointSlice,
    Endpoints,
}

const NAMES: [&str; 4] = ["a", "b", "echo", "ambassador"];
const NAMESPACES: [&str; 3] = ["default", "shop", ""];

/// What a field holds.
enum Ty {
    Str(&'static [&'static str]),
    /// A list of strings (or of objects, in JSON text).
    List(&'static [&'static str]),
    /// A map of string keys to the values, in pairs.
    Map(&'static [&'static str]),
    /// JSON values, written as JSON text.
    Json(&'static [&'static str]),
}

const HOSTNAMES: &[&str] = &[
    "*",
    "a.example.com",
    "*.example.com",
    "example.com:8080",
    "",
    "A.Example.COM",
    "[::1]",
    "*.*",
];
const PREFIXES: &[&str] = &[
    "/",
    "/a/",
    "/a",
    "",
    "/a/(.*)",
    "[",
    "/a/[0-9]+",
    "/%zz",
    "a",
];
const SERVICES: &[&str] = &[
    "echo",
    "echo:80",
    "echo.default:http",
    "echo.shop:grpc",
    "127.0.0.1:9000",
    "http://echo:8080",
    "https://a.example.com",
    "echo:0",
    "echo:99999",
    "",
    "[::1]:80",
    "echo:-1",
];
const DURATIONS: &[&str] = &[
    "1s",
    "0s",
    "-1s",
    "1.5s",
    "10ms",
    "9999999999999999h",
    "1",
    "s",
];
const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "100",
    "25",
    "3000",
    "65535",
    "65536",
    "2147483647",
    "9223372036854775807",
    "-9223372036854775808",
    "1e3",
    "0.5",
    "\"5\"",
];
const BOOLS: &[&str] = &["true", "false", "\"true\"", "null"];
const REGEXES: &[&str] = &["(.*)", "[", "a{99999}", "^/a/(\\\\d+)$", "(?P<x>a)", "\\\\"];
const HEADERS: &[&str] = &["x-a", "x-b", "Host", ":authority", "", "x-a ", "server"];
const WILD: &[&str] = &[
    "null",
    "{}",
    "[]",
    "\"\"",
    "0",
    "-1",
    "true",
    "1e308",
    "[null]",
    "{\"a\": {\"b\": []}}",
    "\"\\u0000\"",
];

/// A field: where it is, from the document's root, and what it holds.
type FieldDef = (&'static [&'static str], Ty);

fn fields(kind: Kind) -> &'static [FieldDef] {
    match kind {
        Kind::Mapping => MAPPING,
        Kind::Host => HOST,
        Kind::Listener => LISTENER,
        Kind::TlsContext => TLS_CONTEXT,
        Kind::TcpMapping => TCP_MAPPING,
        Kind::AuthService => AUTH_SERVICE,
        Kind::RateLimitService => RATE_LIMIT_SERVICE,
        Kind::LogService => LOG_SERVICE,
        Kind::TracingService => TRACING_SERVICE,
        Kind::Module => MODULE,
        Kind::KubernetesServiceResolver | Kind::KubernetesEndpointResolver => RESOLVER,
        Kind::ConsulResolver => CONSUL_RESOLVER,
        Kind::Secret => SECRET,
        Kind::Service => SERVICE,
        Kind::EndpointSlice => ENDPOINT_SLICE,
        Kind::Endpoints => ENDPOINTS,
    }
}

const AMBASSADOR_ID: FieldDef = (
    &["spec", "ambassador_id"],
    Ty::Json(&["[\"default\"]", "[\"other\"]", "\"default\"", "[]"]),
);

const MAPPING: &[FieldDef] = &[
    AMBASSADOR_ID,
    (&["spec", "prefix"], Ty::Str(PREFIXES)),
    (&["spec", "prefix_regex"], Ty::Json(BOOLS)),
    (&["spec", "prefix_exact"], Ty::Json(BOOLS)),
    (&["spec", "case_sensitive"], Ty::Json(BOOLS)),
    (&["spec", "hostname"], Ty::Str(HOSTNAMES)),
    (&["spec", "host"], Ty::Str(HOSTNAMES)),
    (&["spec", "host_regex"], Ty::Json(BOOLS)),
    (&["spec", "headers"], Ty::Map(HEADERS)),
    (&["spec", "regex_headers"], Ty::Map(REGEXES)),
    (&["spec", "query_parameters"], Ty::Map(HEADERS)),
    (
        &["spec", "method"],
        Ty::Str(&["GET", "POST", "get", "", "G(E"]),
    ),
    (&["spec", "method_regex"], Ty::Json(BOOLS)),
    (&["spec", "precedence"], Ty::Json(INTS)),
    (&["spec", "service"], Ty::Str(SERVICES)),
    (&["spec", "weight"], Ty::Json(INTS)),
    (
        &["spec", "tls"],
        Ty::Json(&["true", "false", "\"a\"", "\"\""]),
    ),
    (&["spec", "grpc"], Ty::Json(BOOLS)),
    (&["spec", "timeout_ms"], Ty::Json(INTS)),
    (&["spec", "idle_timeout_ms"], Ty::Json(INTS)),
    (&["spec", "connect_timeout_ms"], Ty::Json(INTS)),
    (&["spec", "cluster_idle_timeout_ms"], Ty::Json(INTS)),
    (
        &["spec", "retry_policy", "retry_on"],
        Ty::Str(&["5xx", "gateway-error", "connect-failure", "bogus"]),
    ),
    (&["spec", "retry_policy", "num_retries"], Ty::Json(INTS)),
    (
        &["spec", "retry_policy", "per_try_timeout"],
        Ty::Str(DURATIONS),
    ),
    (
        &["spec", "circuit_breakers"],
        Ty::Json(&[
            "[{\"max_connections\": 1}]",
            "[{\"priority\": \"high\"}, {\"priority\": \"high\"}]",
            "[{\"max_retries\": -1}]",
        ]),
    ),
    (
        &["spec", "load_balancer"],
        Ty::Json(&[
            "{\"policy\": \"round_robin\"}",
            "{\"policy\": \"ring_hash\", \"header\": \"x-a\"}",
            "{\"policy\": \"maglev\", \"cookie\": {\"name\": \"c\", \"ttl\": \"-1s\"}}",
            "{\"policy\": \"least_request\", \"source_ip\": true}",
        ]),
    ),
    (
        &["spec", "keepalive"],
        Ty::Json(&["{\"probes\": 1, \"idle_time\": 0, \"interval\": 4294967296}"]),
    ),
    (
        &["spec", "dns_type"],
        Ty::Str(&["strict_dns", "logical_dns", "x"]),
    ),
    (&["spec", "enable_ipv4"], Ty::Json(BOOLS)),
    (&["spec", "enable_ipv6"], Ty::Json(BOOLS)),
    (&["spec", "cluster_tag"], Ty::Str(&["t", "", "a/b"])),
    (&["spec", "stats_name"], Ty::Str(&["s", "", "a.b:c"])),
    (&["spec", "host_rewrite"], Ty::Str(HOSTNAMES)),
    (&["spec", "auto_host_rewrite"], Ty::Json(BOOLS)),
    (&["spec", "shadow"], Ty::Json(BOOLS)),
    (&["spec", "rewrite"], Ty::Str(&["/", "", "/b/", "b"])),
    (
        &["spec", "regex_rewrite"],
        Ty::Json(&[
            "{\"pattern\": \"/a/(.*)\", \"substitution\": \"/\\\\1\"}",
            "{\"pattern\": \"[\", \"substitution\": \"\"}",
            "{\"pattern\": \"\", \"substitution\": \"\\\\9\"}",
        ]),
    ),
    (&["spec", "add_request_headers"], Ty::Map(HEADERS)),
    (&["spec", "add_response_headers"], Ty::Map(HEADERS)),
    (&["spec", "remove_request_headers"], Ty::List(HEADERS)),
    (&["spec", "remove_response_headers"], Ty::List(HEADERS)),
    (
        &["spec", "cors"],
        Ty::Json(&["{}", "{\"origins\": [\"*\"], \"max_age\": \"-1\"}"]),
    ),
    (
        &["spec", "allow_upgrade"],
        Ty::List(&["websocket", "", "spdy/3.1"]),
    ),
    (&["spec", "use_websocket"], Ty::Json(BOOLS)),
    (&["spec", "host_redirect"], Ty::Json(BOOLS)),
    (&["spec", "path_redirect"], Ty::Str(&["/", "", "/b"])),
    (&["spec", "prefix_redirect"], Ty::Str(&["/", "", "/b/"])),
    (
        &["spec", "regex_redirect"],
        Ty::Json(&["{\"pattern\": \"(.*)\", \"substitution\": \"\\\\1\"}"]),
    ),
    (&["spec", "redirect_response_code"], Ty::Json(INTS)),
    (&["spec", "bypass_auth"], Ty::Json(BOOLS)),
    (
        &["spec", "auth_context_extensions"],
        Ty::Json(&["{\"a\": \"b\", \"c\": \"\"}", "{}"]),
    ),
    (
        &["spec", "auth_service_ref"],
        Ty::Json(&[
            "{\"name\": \"a\"}",
            "{\"name\": \"b\", \"namespace\": \"shop\"}",
        ]),
    ),
    (
        &["spec", "error_response_overrides"],
        Ty::Json(&["[{}]", "[]"]),
    ),
    (
        &["spec", "resolver"],
        Ty::Str(&[
            "endpoint",
            "kubernetes-service",
            "",
            "a",
            "consul",
            "ambassador",
        ]),
    ),
];

const RESOLVER: &[FieldDef] = &[AMBASSADOR_ID];

const CONSUL_RESOLVER: &[FieldDef] = &[
    AMBASSADOR_ID,
    (&["spec", "address"], Ty::Str(&["consul:8500", ""])),
    (&["spec", "datacenter"], Ty::Str(&["dc1", ""])),
];

const HOST: &[FieldDef] = &[
    AMBASSADOR_ID,
    (&["spec", "hostname"], Ty::Str(HOSTNAMES)),
    (&["spec", "tlsSecret", "name"], Ty::Str(&NAMES)),
    (&["spec", "tlsSecret", "namespace"], Ty::Str(&NAMESPACES)),
    (&["spec", "tlsContext", "name"], Ty::Str(&NAMES)),
    (
        &["spec", "requestPolicy", "insecure", "action"],
        Ty::Str(&["Redirect", "Route", "Reject", "redirect"]),
    ),
    (
        &["spec", "requestPolicy", "insecure", "additionalPort"],
        Ty::Json(INTS),
    ),
    (
        &["spec", "mappingSelector"],
        Ty::Json(&["{\"matchLabels\": {\"a\": \"b\"}}", "{}"]),
    ),
    (
        &["spec", "selector"],
        Ty::Json(&["{\"matchLabels\": {\"a\": \"b\"}}"]),
    ),
    (
        &["spec", "tls"],
        Ty::Json(&[
            "{\"min_tls_version\": \"v1.3\", \"max_tls_version\": \"v1.2\"}",
            "{\"alpn_protocols\": \"h2\"}",
            "{\"cipher_suites\": [\"x\"]}",
        ]),
    ),
    (
        &["spec", "acmeProvider", "authority"],
        Ty::Str(&["none", "https://acme"]),
    ),
    (&["metadata", "labels"], Ty::Map(&["a", "b"])),
];

const LISTENER: &[FieldDef] = &[
    AMBASSADOR_ID,
    (&["spec", "port"], Ty::Json(INTS)),
    (
        &["spec", "protocol"],
        Ty::Str(&[
            "HTTP",
            "HTTPS",
            "HTTPPROXY",
            "HTTPSPROXY",
            "TCP",
            "TLS",
            "UDP",
            "x",
        ]),
    ),
    (
        &["spec", "protocolStack"],
        Ty::List(&["HTTP", "TLS", "TCP", "PROXY", "UDP"]),
    ),
    (
        &["spec", "securityModel"],
        Ty::Str(&["XFP", "SECURE", "INSECURE"]),
    ),
    (&["spec", "l7Depth"], Ty::Json(INTS)),
    (&["spec", "statsPrefix"], Ty::Str(&["s", ""])),
    (
        &["spec", "hostBinding"],
        Ty::Json(&[
            "{\"namespace\": {\"from\": \"SELF\"}}",
            "{\"namespace\": {\"from\": \"ALL\"}}",
            "{\"selector\": {\"matchLabels\": {\"a\": \"b\"}}}",
            "{}",
        ]),
    ),
];

const TLS_CONTEXT: &[FieldDef] = &[
    AMBASSADOR_ID,
    (&["spec", "hosts"], Ty::List(HOSTNAMES)),
    (&["spec", "secret"], Ty::Str(&["a", "b", "a.shop", ""])),
    (&["spec", "secret_namespacing"], Ty::Json(BOOLS)),
    (
        &["spec", "min_tls_version"],
        Ty::Str(&["v1.0", "v1.1", "v1.2", "v1.3", "v9"]),
    ),
    (
        &["spec", "max_tls_version"],
        Ty::Str(&["v1.2", "v1.3", "x"]),
    ),
    (
        &["spec", "alpn_protocols"],
        Ty::Str(&["h2,http/1.1", "", ",,"]),
    ),
    (
        &["spec", "cipher_suites"],
        Ty::List(&["ECDHE-RSA-AES128-GCM-SHA256", "x"]),
    ),
    (&["spec", "ecdh_curves"], Ty::List(&["P-256", "x"])),
    (&["spec", "ca_secret"], Ty::Str(&NAMES)),
    (&["spec", "cert_required"], Ty::Json(BOOLS)),
    (&["spec", "sni"], Ty::Str(HOSTNAMES)),
    (&["spec", "redirect_cleartext_from"], Ty::Json(INTS)),
];

const TCP_MAPPING: &[FieldDef] = &[
    AMBASSADOR_ID,
    (&["spec", "port"], Ty::Json(INTS)),
    (&["spec", "host"], Ty::Str(HOSTNAMES)),
    (&["spec", "address"], Ty::Str(&["0.0.0.0", "::", "x", ""])),
    (&["spec", "service"], Ty::Str(SERVICES)),
    (&["spec", "weight"], Ty::Json(INTS)),
    (&["spec", "tls"], Ty::Json(&["true", "\"a\""])),
    (&["spec", "idle_timeout_ms"], Ty::Json(INTS)),
];

const AUTH_SERVICE: &[FieldDef] = &[
    AMBASSADOR_ID,
    (&["spec", "auth_service"], Ty::Str(SERVICES)),
    (&["spec", "proto"], Ty::Str(&["http", "grpc", "x"])),
    (&["spec", "path_prefix"], Ty::Str(PREFIXES)),
    (&["spec", "timeout_ms"], Ty::Json(INTS)),
    (&["spec", "allowed_request_headers"], Ty::List(HEADERS)),
    (&["spec", "failure_mode_allow"], Ty::Json(BOOLS)),
    (
        &["spec", "include_body"],
        Ty::Json(&["{\"max_bytes\": 4096, \"allow_partial\": true}"]),
    ),
    (&["spec", "protocol_version"], Ty::Str(&["v3", "v2"])),
    (
        &["spec", "allowed_authorization_headers"],
        Ty::List(HEADERS),
    ),
    (
        &["spec", "add_auth_headers"],
        Ty::Json(&["{\"x-a\": \"b\"}", "{\"\": \"\"}"]),
    ),
    (
        &["spec", "status_on_error"],
        Ty::Json(&["{\"code\": 503}", "{\"code\": 299}", "{}"]),
    ),
    (&["spec", "tls"], Ty::Str(&["a", ""])),
    (&["spec", "opt_in"], Ty::Json(BOOLS)),
];

const RATE_LIMIT_SERVICE: &[FieldDef] = &[
    AMBASSADOR_ID,
    (&["spec", "service"], Ty::Str(SERVICES)),
    (&["spec", "domain"], Ty::Str(&["d", ""])),
    (&["spec", "timeout_ms"], Ty::Json(INTS)),
    (&["spec", "protocol_version"], Ty::Str(&["v3", "v2"])),
    (&["spec", "failure_mode_deny"], Ty::Json(BOOLS)),
];

const LOG_SERVICE: &[FieldDef] = &[
    AMBASSADOR_ID,
    (&["spec", "service"], Ty::Str(SERVICES)),
    (&["spec", "driver"], Ty::Str(&["http", "tcp", "udp", ""])),
    (
        &["spec", "driver_config"],
        Ty::Json(&[
            "{}",
            "{\"additional_log_headers\": [{\"header_name\": \"x-a\"}]}",
            "{\"additional_log_headers\": [{\"header_name\": \"x a\", \"during_request\": false}]}",
            "{\"additional_log_headers\": [{\"during_trailer\": true}]}",
        ]),
    ),
    (&["spec", "flush_interval_time"], Ty::Json(INTS)),
    (&["spec", "flush_interval_byte_size"], Ty::Json(INTS)),
    (&["spec", "grpc"], Ty::Json(BOOLS)),
    (&["spec", "protocol_version"], Ty::Str(&["v3", "v2"])),
    (&["spec", "stats_name"], Ty::Str(&["logs", ""])),
];

const TRACING_SERVICE: &[FieldDef] = &[
    AMBASSADOR_ID,
    (&["spec", "service"], Ty::Str(SERVICES)),
    (
        &["spec", "driver"],
        Ty::Str(&["zipkin", "opentelemetry", "datadog", "lightstep", "jaeger"]),
    ),
    (
        &["spec", "sampling"],
        Ty::Json(&[
            "{\"client\": 100, \"random\": 0, \"overall\": 50}",
            "{\"random\": 101}",
            "{}",
        ]),
    ),
    (&["spec", "tag_headers"], Ty::List(HEADERS)),
    (
        &["spec", "custom_tags"],
        Ty::Json(&[
            "[{\"tag\": \"t\", \"literal\": {\"value\": \"v\"}}]",
            "[{\"tag\": \"e\", \"environment\": {\"name\": \"HOME\", \"default_value\": \"\"}}]",
            "[{\"tag\": \"h\", \"request_header\": {\"name\": \"x-a\"}}]",
            "[{\"tag\": \"\", \"request_header\": {\"name\": \"\"}}]",
            "[{\"tag\": \"both\", \"literal\": {\"value\": \"v\"}, \"environment\": {\"name\": \"E\"}}]",
        ]),
    ),
    (
        &["spec", "config", "collector_endpoint"],
        Ty::Str(&["/api/v2/spans", "spans", "/a b", ""]),
    ),
    (
        &["spec", "config", "collector_endpoint_version"],
        Ty::Str(&["HTTP_JSON", "HTTP_PROTO", "HTTP_JSON_V1"]),
    ),
    (
        &["spec", "config", "collector_hostname"],
        Ty::Str(HOSTNAMES),
    ),
    (
        &["spec", "config", "collector_cluster"],
        Ty::Str(&["a", ""]),
    ),
    (&["spec", "config", "trace_id_128bit"], Ty::Json(BOOLS)),
    (&["spec", "config", "shared_span_context"], Ty::Json(BOOLS)),
    (&["spec", "config", "service_name"], Ty::Str(&["edge", ""])),
    (
        &["spec", "config", "access_token_file"],
        Ty::Str(&["/token"]),
    ),
    (
        &["spec", "config", "propagation_modes"],
        Ty::List(&["B3", "TRACE_CONTEXT", "X"]),
    ),
    (&["spec", "stats_name"], Ty::Str(&["tracing", ""])),
];

const MODULE: &[FieldDef] = &[
    AMBASSADOR_ID,
    (&["spec", "config", "server_name"], Ty::Str(&["envoy", ""])),
    (&["spec", "config", "service_port"], Ty::Json(INTS)),
    (&["spec", "config", "use_remote_address"], Ty::Json(BOOLS)),
    (&["spec", "config", "xff_num_trusted_hops"], Ty::Json(INTS)),
    (
        &["spec", "config", "x_forwarded_proto_redirect"],
        Ty::Json(BOOLS),
    ),
    (
        &["spec", "config", "cluster_request_timeout_ms"],
        Ty::Json(INTS),
    ),
    (
        &["spec", "config", "cluster_idle_timeout_ms"],
        Ty::Json(INTS),
    ),
    (
        &["spec", "config", "listener_idle_timeout_ms"],
        Ty::Json(INTS),
    ),
    (
        &["spec", "config", "max_request_headers_kb"],
        Ty::Json(INTS),
    ),
    (&["spec", "config", "merge_slashes"], Ty::Json(BOOLS)),
    (
        &["spec", "config", "resolver"],
        Ty::Str(&["endpoint", "kubernetes-service", "a", "missing"]),
    ),
    (
        &["spec", "config", "strip_matching_host_port"],
        Ty::Json(BOOLS),
    ),
    (&["spec", "config", "regex_max_size"], Ty::Json(INTS)),
    (&["spec", "config", "buffer_limit_bytes"], Ty::Json(INTS)),
    (&["spec", "config", "enable_grpc_web"], Ty::Json(BOOLS)),
    (
        &["spec", "config", "retry_policy"],
        Ty::Json(&["{\"retry_on\": \"5xx\", \"num_retries\": 3, \"per_try_timeout\": \"1s\"}"]),
    ),
    (
        &["spec", "config", "circuit_breakers"],
        Ty::Json(&["[{\"max_connections\": 0}]"]),
    ),
    (
        &["spec", "config", "load_balancer"],
        Ty::Json(&["{\"policy\": \"ring_hash\", \"header\": \"x-a\"}"]),
    ),
    (
        &["spec", "config", "ip_allow"],
        Ty::Json(&[
            "[{\"peer\": \"10.0.0.0/8\"}]",
            "[{\"remote\": \"::/0\"}]",
            "[{\"peer\": \"x/99\"}]",
        ]),
    ),
    (
        &["spec", "config", "gzip"],
        Ty::Json(&["{}", "{\"min_content_length\": -1}"]),
    ),
    (
        &["spec", "config", "cors"],
        Ty::Json(&["{\"origins\": \"*\"}"]),
    ),
    (
        &["spec", "config", "header_case_overrides"],
        Ty::List(HEADERS),
    ),
    (&["spec", "config", "enable_ipv6"], Ty::Json(BOOLS)),
];

const SECRET: &[FieldDef] = &[
    (&["type"], Ty::Str(&["kubernetes.io/tls", "Opaque", ""])),
    (
        &["stringData", "tls.crt"],
        Ty::Str(&["", "x", "-----BEGIN CERTIFICATE-----\n"]),
    ),
    (&["stringData", "tls.key"], Ty::Str(&["", "x"])),
    (&["data", "tls.crt"], Ty::Str(&["", "eA==", "!"])),
    (&["stringData", "ca.crt"], Ty::Str(&[""])),
];

const SERVICE: &[FieldDef] = &[
    (
        &["spec", "ports"],
        Ty::Json(&[
            "[{\"name\": \"http\", \"port\": 80, \"targetPort\": 8080}]",
            "[{\"name\": \"grpc\", \"port\": 9000, \"targetPort\": \"grpc\"}]",
            "[{\"port\": 80}, {\"port\": 80}]",
            "[{\"port\": 0, \"targetPort\": -1}]",
            "[]",
        ]),
    ),
    (
        &["spec", "type"],
        Ty::Str(&["ClusterIP", "ExternalName", "NodePort"]),
    ),
    (&["spec", "externalName"], Ty::Str(HOSTNAMES)),
    (&["spec", "selector"], Ty::Map(&["app", "echo"])),
    (&["spec", "clusterIP"], Ty::Str(&["None", "10.0.0.1", ""])),
];

const ENDPOINT_SLICE: &[FieldDef] = &[
    (
        &["metadata", "labels", "kubernetes.io/service-name"],
        Ty::Str(&NAMES),
    ),
    (&["addressType"], Ty::Str(&["IPv4", "IPv6", "FQDN"])),
    (
        &["ports"],
        Ty::Json(&[
            "[{\"name\": \"http\", \"port\": 8080}]",
            "[{\"name\": \"grpc\", \"port\": 9001}]",
            "[{\"port\": 0}]",
            "null",
        ]),
    ),
    (
        &["endpoints"],
        Ty::Json(&[
            "[{\"addresses\": [\"10.1.0.7\"], \"conditions\": {\"ready\": true}}]",
            "[{\"addresses\": [\"10.1.0.7\", \"10.1.0.7\"]}]",
            "[{\"addresses\": [\"::1\"], \"conditions\": {\"ready\": false, \"terminating\": true}}]",
            "[{\"addresses\": [\"x\"]}]",
            "[{\"addresses\": []}]",
        ]),
    ),
];

const ENDPOINTS: &[FieldDef] = &[(
    &["subsets"],
    Ty::Json(&[
        "[{\"addresses\": [{\"ip\": \"10.2.0.1\"}], \"ports\": [{\"port\": 3000}]}]",
        "[{\"notReadyAddresses\": [{\"ip\": \"10.2.0.3\"}], \"ports\": [{\"name\": \"http\", \"port\": 3000}]}]",
        "[{\"addresses\": [{\"ip\": \"bad\"}], \"ports\": []}]",
        "[]",
    ]),
)];

impl Document {
    /// The document as YAML (JSON, which YAML reads).
    pub fn render(&self) -> String {
        let mut doc = base(self.kind);
        set(
            &mut doc,
            &["metadata", "name"],
            pick(&NAMES, self.name).into(),
        );
        let namespace = pick(&NAMESPACES, self.namespace);
        if !namespace.is_empty() {
            set(&mut doc, &["metadata", "namespace"], namespace.into());
        }
        let fields = fields(self.kind);
        for setting in &self.fields {
            let (path, ty) = &fields[usize::from(setting.field) % fields.len()];
            set(&mut doc, path, value(ty, &setting.value));
        }
        doc.to_string()
    }
}

/// A valid object of `kind`, before its fields are set.
fn base(kind: Kind) -> Value {
    let v3 = "getambassador.io/v3alpha1";
    match kind {
        Kind::Mapping => json!({"apiVersion": v3, "kind": "Mapping",
            "spec": {"hostname": "*", "prefix": "/a/", "service": "echo"}}),
        Kind::Host => json!({"apiVersion": v3, "kind": "Host", "spec": {"hostname": "*"}}),
        Kind::Listener => json!({"apiVersion": v3, "kind": "Listener",
            "spec": {"port": 8080, "protocol": "HTTP", "securityModel": "XFP",
                "hostBinding": {"namespace": {"from": "ALL"}}}}),
        Kind::TlsContext => json!({"apiVersion": v3, "kind": "TLSContext",
            "spec": {"secret": "a", "hosts": ["a.example.com"]}}),
        Kind::TcpMapping => json!({"apiVersion": v3, "kind": "TCPMapping",
            "spec": {"port": 5432, "service": "db:5432"}}),
        Kind::AuthService => json!({"apiVersion": v3, "kind": "AuthService",
            "spec": {"auth_service": "auth:3000"}}),
        Kind::RateLimitService => json!({"apiVersion": v3, "kind": "RateLimitService",
            "spec": {"service": "ratelimit:8081"}}),
        Kind::LogService => json!({"apiVersion": v3, "kind": "LogService",
            "spec": {"service": "als:3000", "driver": "http"}}),
        Kind::TracingService => json!({"apiVersion": v3, "kind": "TracingService",
            "spec": {"driver": "zipkin", "service": "zipkin:9411"}}),
        Kind::Module => json!({"apiVersion": v3, "kind": "Module", "spec": {"config": {}}}),
        Kind::KubernetesServiceResolver => {
            json!({"apiVersion": v3, "kind": "KubernetesServiceResolver", "spec": {}})
        }
        Kind::KubernetesEndpointResolver => {
            json!({"apiVersion": v3, "kind": "KubernetesEndpointResolver", "spec": {}})
        }
        Kind::ConsulResolver => json!({"apiVersion": v3, "kind": "ConsulResolver",
            "spec": {"datacenter": "dc1"}}),
        Kind::Secret => json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": CERTIFICATE, "tls.key": KEY}}),
        Kind::Service => json!({"apiVersion": "v1", "kind": "Service",
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        Kind::EndpointSlice => json!({"apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"labels": {"kubernetes.io/service-name": "echo"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": true}}]}),
        Kind::Endpoints => json!({"apiVersion": "v1", "kind": "Endpoints",
            "subsets": [{"addresses": [{"ip": "10.2.0.1"}], "ports": [{"port": 3000}]}]}),
    }
}

fn value(ty: &Ty, choice: &Choice) -> Value {
    let several = |list: &[&str], picks: &[u8]| -> Vec<String> {
        picks.iter().map(|i| pick(list, *i).to_owned()).collect()
    };
    match (ty, choice) {
        (_, Choice::Wild(i)) => json_text(pick(WILD, *i)),
        (Ty::Str(list), Choice::One(i)) => Value::from(pick(list, *i)),
        (Ty::Str(list), Choice::Several(picks)) => Value::from(several(list, picks).concat()),
        (Ty::List(list), Choice::One(i)) => json!([pick(list, *i)]),
        (Ty::List(list), Choice::Several(picks)) => Value::from(several(list, picks)),
        (Ty::Map(list), Choice::One(i)) => json!({pick(list, *i): pick(list, i.wrapping_add(1))}),
        (Ty::Map(list), Choice::Several(picks)) => {
            let pairs = picks.chunks(2).map(|pair| {
                let key = pick(list, pair[0]).to_owned();
                let value = pair.get(1).map_or("", |i| pick(list, *i));
                (key, Value::from(value))
            });
            Value::Object(pairs.collect::<Map<_, _>>())
        }
        (Ty::Json(list), Choice::One(i)) => json_text(pick(list, *i)),
        (Ty::Json(list), Choice::Several(picks)) => {
            Value::Array(picks.iter().map(|i| json_text(pick(list, *i))).collect())
        }
    }
}

fn json_text(text: &str) -> Value {
    // The vocabulary's JSON is written by hand; a typo would only make a document invalid.
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Sets `path` in `doc`, making the objects on the way (and replacing what is not one).
fn set(doc: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = doc;
    for key in parents {
        if !at.get(key).is_some_and(Value::is_object) {
            at[*key] = json!({});
        }
        at = &mut at[*key];
    }
    at[*last] = value;
}

fn pick<'a>(from: &[&'a str], i: u8) -> &'a str {
    from[usize::from(i) % from.len()]
}

/// The golden tests' throwaway certificate and key (`tests/golden/tls`).
const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIIBsDCCAVagAwIBAgIUWPrjKntc4eEyrWObHL/l1lxzcjgwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSc2VjdXJlLmV4YW1wbGUuY29tMCAXDTI2MTEyMjAxMTA0OFoY
DzIxMjYxMDI5MDExMDQ4WjAdMRswGQYDVQQDDBJzZWN1cmUuZXhhbXBsZS5jb20w
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQ9xPqkWMiSkc9sPZ/DEgTnSYlm2xgg
zaw/s4/AJoM7iRBHn3XfCzfjhEyIRriSwleJ16AD/F5a3Ebi92yL9ZE6o3IwcDAd
BgNVHQ4EFgQUZfhgv2HJPdGcVEj04VK18vG8kbIwHwYDVR0jBBgwFoAUZfhgv2HJ
PdGcVEj04VK18vG8kbIwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHREEFjAUghJzZWN1
cmUuZXhhbXBsZS5jb20wCgYIKoZIzj0EAwIDSAAwRQIgYh+v6flqcwcYC+oQYBcf
cfaaNg4pIGveoFdNPUpNVEcCIQCFkUK5gKkqeTNsk9pgACf3x1oC31pjfk4WJH9M
HDTMTg==
-----END CERTIFICATE-----
";
const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/3MlBmNh/15/cOEg
ZIUQUZYbAYiOORhoC0x3ug9EWFehRANCAAQ9xPqkWMiSkc9sPZ/DEgTnSYlm2xgg
zaw/s4/AJoM7iRBHn3XfCzfjhEyIRriSwleJ16AD/F5a3Ebi92yL9ZE6
-----END PRIVATE KEY-----
";
