//! IR HTTP options → the HTTP connection manager's fields, the router's and the buffer filter,
//! as Emissary writes them (`python/ambassador/src/ambassador/envoy/v3/v3listener.py`,
//! `base_http_config` and `compute_http_routes`; `v3httpfilter.py`, `V3HTTPFilter_router` and
//! `V3HTTPFilter_buffer`). A setting left at its default writes nothing, so a gateway without a
//! Module gets the HCM it always had.

use envoy_types::{
    pb::envoy::{
        config::core::v3::{
            Http1ProtocolOptions, HttpProtocolOptions, http_protocol_options,
            http1_protocol_options::{
                HeaderKeyFormat,
                header_key_format::{self, ProperCaseWords},
            },
        },
        extensions::filters::{
            http::{buffer::v3::Buffer, router::v3::Router},
            network::http_connection_manager::v3::{
                HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
            },
        },
    },
    util::pack_any,
};

use legate_crds::module::{ClientCertDetails, ForwardClientCertDetails};

use super::{bool_value, duration, u32_value};
use crate::ir::{
    Listener,
    http_options::{HeadersWithUnderscores, HttpOptions},
};

/// Sets the listener's options on one of its chains' HTTP connection manager.
pub(super) fn apply(l: &Listener, hcm: &mut HttpConnectionManager) {
    let o = &*l.http_options;
    hcm.server_name = o.server_name.clone().unwrap_or_default();
    hcm.use_remote_address = bool_value(o.use_remote_address);
    hcm.xff_num_trusted_hops = o.trusted_hops(l.l7_depth);
    // Off unless the Module turns it on: a port in `Host` is then part of what virtual hosts and
    // `:authority` matchers see, so `Host: a.example.com:8500` is served by a Host
    // `a.example.com:8500` and not by `a.example.com` (Emissary's default, its #4791).
    hcm.strip_matching_host_port = o.strip_matching_host_port;
    hcm.merge_slashes = o.merge_slashes;
    if o.reject_requests_with_escaped_slashes {
        hcm.path_with_escaped_slashes_action =
            http_connection_manager::PathWithEscapedSlashesAction::RejectRequest as i32;
    }
    hcm.preserve_external_request_id = o.preserve_external_request_id;
    hcm.max_request_headers_kb = o.max_request_headers_kb.and_then(u32_value);
    if o.idle_timeout.is_some() || o.headers_with_underscores != HeadersWithUnderscores::Allow {
        hcm.common_http_protocol_options = Some(HttpProtocolOptions {
            idle_timeout: o.idle_timeout.map(duration),
            headers_with_underscores_action: underscores(o.headers_with_underscores) as i32,
            ..Default::default()
        });
    }
    if let Some(f) = o.forward_client_cert_details {
        hcm.forward_client_cert_details = forward_client_cert(f) as i32;
    }
    hcm.set_current_client_cert_details = o
        .set_current_client_cert_details
        .as_ref()
        .map(client_cert_details);
    if o.accept_http_10 || o.allow_chunked_length || o.proper_case {
        hcm.http_protocol_options = Some(Http1ProtocolOptions {
            accept_http_10: o.accept_http_10,
            allow_chunked_length: o.allow_chunked_length,
            header_key_format: o.proper_case.then_some(HeaderKeyFormat {
                header_format: Some(header_key_format::HeaderFormat::ProperCaseWords(
                    ProperCaseWords {},
                )),
            }),
            ..Default::default()
        });
    }
}

fn underscores(h: HeadersWithUnderscores) -> http_protocol_options::HeadersWithUnderscoresAction {
    use http_protocol_options::HeadersWithUnderscoresAction as Action;
    match h {
        HeadersWithUnderscores::Allow => Action::Allow,
        HeadersWithUnderscores::RejectRequest => Action::RejectRequest,
        HeadersWithUnderscores::DropHeader => Action::DropHeader,
    }
}

fn forward_client_cert(
    f: ForwardClientCertDetails,
) -> http_connection_manager::ForwardClientCertDetails {
    use http_connection_manager::ForwardClientCertDetails as Envoy;
    match f {
        ForwardClientCertDetails::Sanitize => Envoy::Sanitize,
        ForwardClientCertDetails::ForwardOnly => Envoy::ForwardOnly,
        ForwardClientCertDetails::AppendForward => Envoy::AppendForward,
        ForwardClientCertDetails::SanitizeSet => Envoy::SanitizeSet,
        ForwardClientCertDetails::AlwaysForwardOnly => Envoy::AlwaysForwardOnly,
    }
}

fn client_cert_details(
    d: &ClientCertDetails,
) -> http_connection_manager::SetCurrentClientCertDetails {
    let on = |v: Option<bool>| v == Some(true);
    http_connection_manager::SetCurrentClientCertDetails {
        subject: d.subject.and_then(bool_value),
        cert: on(d.cert),
        chain: on(d.chain),
        dns: on(d.dns),
        uri: on(d.uri),
        ..Default::default()
    }
}

/// The router, last in the chain.
pub(super) fn router(o: &HttpOptions) -> HttpFilter {
    HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Router {
            suppress_envoy_headers: o.suppress_envoy_headers,
            ..Default::default()
        }))),
        ..Default::default()
    }
}

/// The buffer filter when the Module asks for one; Emissary puts it right after gzip.
pub(super) fn buffer(o: &HttpOptions) -> Option<HttpFilter> {
    let max_request_bytes = o.max_request_bytes?;
    Some(HttpFilter {
        name: "envoy.filters.http.buffer".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Buffer {
            max_request_bytes: u32_value(max_request_bytes),
        }))),
        ..Default::default()
    })
}
