//! The gateway Module's HTTP connection manager and listener settings (`spec.config`), validated
//! into what every HTTP listener runs with.
//!
//! Emissary (`python/ambassador/src/ambassador/envoy/v3/v3listener.py`, `base_http_config` and
//! `compute_http_routes`; `v3httpfilter.py`, `V3HTTPFilter_router` and `V3HTTPFilter_buffer`;
//! defaults in `ir/irambassador.py`) copies each key into the HTTP connection manager of every
//! HTTP listener:
//! - `server_name` → `server_name` (the `server` response header; default `envoy`, Envoy's own);
//! - `use_remote_address` → `use_remote_address` (default `true`);
//! - a Listener's `l7Depth`, when above 0 → `xff_num_trusted_hops`. Emissary 4.x never reads the
//!   Module's `xff_num_trusted_hops`, although its documentation and CRD describe it (see
//!   [`HttpOptions::trusted_hops`] for what is done here);
//! - `strip_matching_host_port`, `merge_slashes` → the fields of the same names, when true;
//! - `reject_requests_with_escaped_slashes` → `path_with_escaped_slashes_action: REJECT_REQUEST`;
//! - `preserve_external_request_id` → the field of the same name;
//! - `max_request_headers_kb` → the same, when not 0 (Envoy's default otherwise, 60);
//! - `listener_idle_timeout_ms` → `common_http_protocol_options.idle_timeout`, when not 0;
//! - `headers_with_underscores_action` → `common_http_protocol_options`' field;
//! - `enable_http10`, `allow_chunked_length` → `http_protocol_options.accept_http_10`,
//!   `.allow_chunked_length`;
//! - `suppress_envoy_headers` → the router filter's field, when true;
//! - `buffer.max_request_bytes` → Envoy's buffer filter, after gzip (a larger request gets 413);
//! - `proper_case` → `http_protocol_options.header_key_format.proper_case_words` (downstream
//!   only: Emissary sets nothing upstream for it);
//! - `buffer_limit_bytes` → the listener's `per_connection_buffer_limit_bytes`.
//! - `forward_client_cert_details`, `set_current_client_cert_details` → the fields of the same
//!   names (`x-forwarded-client-cert`), when set (Envoy's default otherwise: `SANITIZE`). The CRD
//!   takes Emissary's values only (`SANITIZE`, ..., upper case; `true`/`false` for each of
//!   `subject`, `cert`, `chain`, `dns`, `uri`), as `irambassador.py` checks them.
//!
//! The CRD bounds the numbers as Envoy does (`max_request_headers_kb` 1 to 8192, sizes above
//! 0); what only the IR can see (a `server_name` Envoy would refuse) is rejected on the Module
//! naming `spec.config.<field>`, that setting falls back to its default, and every other setting
//! applies.

use std::{sync::Arc, time::Duration};

use legate_crds::{
    Module,
    module::{
        ClientCertDetails, ForwardClientCertDetails, HeadersWithUnderscoresAction, ModuleConfig,
    },
};

use super::{Rejection, envoy_rules};

/// What every HTTP listener runs with: Emissary's defaults unless the gateway Module says
/// otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpOptions {
    /// The `server` response header; `None` leaves Envoy's (and Emissary's) `envoy`.
    pub server_name: Option<String>,
    /// Trust the connection's address as the client's (and append it to `X-Forwarded-For`).
    pub use_remote_address: bool,
    /// The Module's `xff_num_trusted_hops`; a Listener's `l7Depth` takes precedence
    /// ([`Self::trusted_hops`]).
    pub xff_num_trusted_hops: u32,
    /// `Host: a.example.com:8080` on the listener of port 8080 is routed (and sent upstream) as
    /// `a.example.com`.
    pub strip_matching_host_port: bool,
    /// `//a//b` is routed (and sent upstream) as `/a/b`.
    pub merge_slashes: bool,
    /// A path with `%2F` or `%5C` gets 400.
    pub reject_requests_with_escaped_slashes: bool,
    /// A client's `X-Request-Id` is kept rather than replaced.
    pub preserve_external_request_id: bool,
    /// Largest request header block, in KiB; `None`: Envoy's 60.
    pub max_request_headers_kb: Option<u32>,
    pub headers_with_underscores: HeadersWithUnderscores,
    /// HTTP/1.0 requests are served (426 otherwise).
    pub accept_http_10: bool,
    /// HTTP/1.1 requests with both `Content-Length` and chunked encoding are served (400
    /// otherwise).
    pub allow_chunked_length: bool,
    /// A downstream connection without requests for this long is closed; `None`: Envoy's hour.
    pub idle_timeout: Option<Duration>,
    /// The router adds no `x-envoy-*` headers (`x-envoy-upstream-service-time`,
    /// `x-envoy-expected-rq-timeout-ms`, ...).
    pub suppress_envoy_headers: bool,
    /// Requests are buffered whole before they are routed, up to this many bytes (413 above).
    pub max_request_bytes: Option<u32>,
    /// HTTP/1 response header names go to clients in Proper-Case (`Content-Type`), not Envoy's
    /// lowercase.
    pub proper_case: bool,
    /// Each downstream connection's read and write buffers, in bytes; `None`: Envoy's 1 MiB.
    pub buffer_limit_bytes: Option<u32>,
    /// What is done with a request's `x-forwarded-client-cert`; `None`: Envoy's `SANITIZE`.
    pub forward_client_cert_details: Option<ForwardClientCertDetails>,
    /// What of the client's certificate `SANITIZE_SET`/`APPEND_FORWARD` put in it.
    pub set_current_client_cert_details: Option<ClientCertDetails>,
}

/// What Envoy does with a request header whose name has an underscore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadersWithUnderscores {
    /// Passed on (Envoy's and Emissary's default).
    Allow,
    /// The request gets 400 (HTTP/1) or its stream is reset (HTTP/2).
    RejectRequest,
    /// The header is dropped; the request goes on.
    DropHeader,
}

impl Default for HttpOptions {
    /// Emissary's defaults (`IRAmbassador.__init__`), which are Envoy's but for
    /// `use_remote_address`.
    fn default() -> Self {
        Self {
            server_name: None,
            use_remote_address: true,
            xff_num_trusted_hops: 0,
            strip_matching_host_port: false,
            merge_slashes: false,
            reject_requests_with_escaped_slashes: false,
            preserve_external_request_id: false,
            max_request_headers_kb: None,
            headers_with_underscores: HeadersWithUnderscores::Allow,
            accept_http_10: false,
            allow_chunked_length: false,
            idle_timeout: None,
            suppress_envoy_headers: false,
            max_request_bytes: None,
            proper_case: false,
            buffer_limit_bytes: None,
            forward_client_cert_details: None,
            set_current_client_cert_details: None,
        }
    }
}

impl HttpOptions {
    /// The proxies in front of a listener whose `X-Forwarded-For` entries are trusted: its
    /// `l7Depth` when above 0 (as Emissary writes it), else the Module's
    /// `xff_num_trusted_hops`. Emissary 4.x ignores the Module's value, but its documentation
    /// makes it the default that `l7Depth` overrides, and a user who writes it means it: here
    /// it applies, and a Listener's own depth still wins.
    pub fn trusted_hops(&self, l7_depth: u32) -> u32 {
        if l7_depth > 0 {
            l7_depth
        } else {
            self.xff_num_trusted_hops
        }
    }
}

/// The gateway Module's options for every HTTP listener (the defaults without one); a setting
/// Envoy would refuse is rejected on the Module, naming it, and left at its default.
pub fn gateway_http_options(
    module: Option<&Module>,
    rejections: &mut Vec<Rejection>,
) -> Arc<HttpOptions> {
    let Some(module) = module else {
        return Arc::default();
    };
    let (options, problems) = http_options(&module.spec.config);
    if !problems.is_empty() {
        rejections.push(super::module::invalid(module, problems.join("; ")));
    }
    Arc::new(options)
}

/// A Module's options, and what is wrong with them, one message a field; each wrong setting is
/// left at its default.
pub fn http_options(c: &ModuleConfig) -> (HttpOptions, Vec<String>) {
    let mut problems = Vec::new();
    let defaults = HttpOptions::default();
    // The CRD bounds these within `u32`; a value that still does not fit is refused, not wrapped.
    let mut number = |value: Option<i64>, field: &str| -> Option<u32> {
        let v = value?;
        u32::try_from(v)
            .map_err(|_| problems.push(format!("spec.config.{field}: {v} is out of range")))
            .ok()
    };
    let xff_num_trusted_hops = number(
        c.xff_num_trusted_hops.map(|v| v.get()),
        "xff_num_trusted_hops",
    )
    .unwrap_or(defaults.xff_num_trusted_hops);
    // Emissary skips 0 (`if max_request_headers_kb:`); the CRD refuses it anyway.
    let max_request_headers_kb = number(
        c.max_request_headers_kb.map(|v| v.get()),
        "max_request_headers_kb",
    )
    .filter(|&kb| kb > 0);
    // Emissary skips 0 too (`if listener_idle_timeout_ms:`): Envoy's default, not "never".
    let idle_timeout = c
        .listener_idle_timeout_ms
        .and_then(|ms| u64::try_from(ms.get()).ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis);
    let max_request_bytes = number(
        c.buffer.as_ref().map(|b| b.max_request_bytes.get()),
        "buffer.max_request_bytes",
    );
    let buffer_limit_bytes = number(c.buffer_limit_bytes.map(|b| b.get()), "buffer_limit_bytes");
    // Emissary writes the name as given; an empty one leaves Envoy's `envoy`.
    let server_name = c
        .server_name
        .as_deref()
        .filter(|name| !name.is_empty())
        .and_then(|name| {
            envoy_rules::header_value("spec.config.server_name", name)
                .map_err(|v| problems.push(v.to_string()))
                .ok()
                .map(|()| name.to_owned())
        });
    let headers_with_underscores = match c.headers_with_underscores_action {
        None | Some(HeadersWithUnderscoresAction::Allow) => HeadersWithUnderscores::Allow,
        Some(HeadersWithUnderscoresAction::RejectRequest) => HeadersWithUnderscores::RejectRequest,
        Some(HeadersWithUnderscoresAction::DropHeader) => HeadersWithUnderscores::DropHeader,
    };
    let options = HttpOptions {
        server_name,
        use_remote_address: c.use_remote_address.unwrap_or(defaults.use_remote_address),
        xff_num_trusted_hops,
        strip_matching_host_port: c.strip_matching_host_port.unwrap_or(false),
        merge_slashes: c.merge_slashes.unwrap_or(false),
        reject_requests_with_escaped_slashes: c
            .reject_requests_with_escaped_slashes
            .unwrap_or(false),
        preserve_external_request_id: c.preserve_external_request_id.unwrap_or(false),
        max_request_headers_kb,
        headers_with_underscores,
        accept_http_10: c.enable_http10.unwrap_or(false),
        allow_chunked_length: c.allow_chunked_length.unwrap_or(false),
        idle_timeout,
        suppress_envoy_headers: c.suppress_envoy_headers.unwrap_or(false),
        max_request_bytes,
        proper_case: c.proper_case.unwrap_or(false),
        buffer_limit_bytes,
        forward_client_cert_details: c.forward_client_cert_details,
        set_current_client_cert_details: c.set_current_client_cert_details.clone(),
    };
    (options, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Reason;
    use legate_crds::Resource;

    use crate::ir::module::fixtures::{module, settings};

    fn build(resources: &[Resource]) -> (HttpOptions, Vec<Rejection>) {
        let refs: Vec<&Resource> = resources.iter().collect();
        let mut rejections = Vec::new();
        let module = crate::ir::module::gateway_module(&refs, &settings());
        let o = gateway_http_options(module, &mut rejections);
        ((*o).clone(), rejections)
    }

    fn options_of(config: &str) -> HttpOptions {
        let (o, rejections) = build(&[module("ambassador", "gw", config)]);
        assert_eq!(rejections, []);
        o
    }

    #[test]
    fn without_a_module_emissarys_defaults() {
        let (o, rejections) = build(&[]);
        assert_eq!((o, rejections), (HttpOptions::default(), vec![]));
        // `use_remote_address` is Emissary's `true`, not Envoy's `false`.
        assert!(HttpOptions::default().use_remote_address);
    }

    #[test]
    fn every_field_is_mapped() {
        let o = options_of(
            "server_name: legate
use_remote_address: false
xff_num_trusted_hops: 2
strip_matching_host_port: true
merge_slashes: true
reject_requests_with_escaped_slashes: true
preserve_external_request_id: true
max_request_headers_kb: 96
headers_with_underscores_action: DROP_HEADER
enable_http10: true
allow_chunked_length: true
listener_idle_timeout_ms: 30000
suppress_envoy_headers: true
buffer: {max_request_bytes: 4096}
proper_case: true
buffer_limit_bytes: 65536
forward_client_cert_details: SANITIZE_SET
set_current_client_cert_details: {subject: true, uri: true}",
        );
        assert_eq!(
            o,
            HttpOptions {
                server_name: Some("legate".into()),
                use_remote_address: false,
                xff_num_trusted_hops: 2,
                strip_matching_host_port: true,
                merge_slashes: true,
                reject_requests_with_escaped_slashes: true,
                preserve_external_request_id: true,
                max_request_headers_kb: Some(96),
                headers_with_underscores: HeadersWithUnderscores::DropHeader,
                accept_http_10: true,
                allow_chunked_length: true,
                idle_timeout: Some(Duration::from_secs(30)),
                suppress_envoy_headers: true,
                max_request_bytes: Some(4096),
                proper_case: true,
                buffer_limit_bytes: Some(65536),
                forward_client_cert_details: Some(ForwardClientCertDetails::SanitizeSet),
                set_current_client_cert_details: Some(ClientCertDetails {
                    subject: Some(true),
                    uri: Some(true),
                    ..Default::default()
                }),
            }
        );
        assert_eq!(
            options_of("headers_with_underscores_action: REJECT_REQUEST").headers_with_underscores,
            HeadersWithUnderscores::RejectRequest
        );
    }

    #[test]
    fn zero_and_empty_leave_the_default_as_in_emissary() {
        // `if listener_idle_timeout_ms:` and `server_name: ""` (Envoy's own `envoy`).
        let o = options_of("listener_idle_timeout_ms: 0\nserver_name: \"\"");
        assert_eq!(o, HttpOptions::default());
    }

    #[test]
    fn the_listeners_l7_depth_wins_over_the_modules_xff_num_trusted_hops() {
        let o = options_of("xff_num_trusted_hops: 1");
        assert_eq!(o.trusted_hops(0), 1, "no l7Depth: the Module's");
        assert_eq!(o.trusted_hops(3), 3, "l7Depth above 0: the Listener's");
        assert_eq!(HttpOptions::default().trusted_hops(0), 0);
    }

    #[test]
    fn a_server_name_envoy_would_refuse_is_rejected_naming_the_field_and_nothing_else_is_lost() {
        let (o, rejections) = build(&[module(
            "ambassador",
            "gw",
            "server_name: \"bad\\r\\nx-injected: 1\"\nmerge_slashes: true",
        )]);
        assert_eq!(o.server_name, None, "the default, Envoy's `envoy`");
        assert!(o.merge_slashes, "the other settings apply");
        match &rejections[..] {
            [r] => {
                assert_eq!(r.reason, Reason::Invalid);
                assert_eq!(r.object.to_string(), "Module gw/ambassador");
                assert!(
                    r.message.starts_with("spec.config.server_name: "),
                    "{}",
                    r.message
                );
            }
            other => panic!("one rejection, got {other:?}"),
        }
    }

    /// Emissary's `irambassador.py` accepts these five values, upper case, and booleans for
    /// `set_current_client_cert_details`; anything else refuses the Module, naming the field.
    #[test]
    fn client_cert_settings_take_emissarys_values_only() {
        for (config, field) in [
            (
                "forward_client_cert_details: sanitize",
                "spec.config.forward_client_cert_details",
            ),
            (
                "set_current_client_cert_details: {subject: maybe}",
                "spec.config.set_current_client_cert_details.subject",
            ),
        ] {
            let yaml = format!(
                "apiVersion: getambassador.io/v3alpha1\nkind: Module\n\
                 metadata: {{name: ambassador, namespace: gw}}\nspec:\n  config:\n    {config}\n"
            );
            let loaded = legate_crds::loader::load_str("module.yaml", &yaml).unwrap();
            assert!(loaded.resources.is_empty(), "{config}");
            let error = loaded.errors.first().map(ToString::to_string);
            assert!(
                error.as_deref().is_some_and(|e| e.contains(field)),
                "{config}: {error:?}"
            );
        }
    }

    #[test]
    fn only_the_gateway_module_applies() {
        let on = "server_name: other\nmerge_slashes: true";
        assert_eq!(
            build(&[module("other", "gw", on)]).0,
            HttpOptions::default()
        );
        assert_eq!(
            build(&[module("ambassador", "team", on)]).0,
            HttpOptions::default()
        );
        // An invalid value elsewhere is not this gateway's problem either.
        assert_eq!(
            build(&[module("ambassador", "team", "server_name: \"a\\nb\"")]),
            (HttpOptions::default(), vec![])
        );
    }
}
