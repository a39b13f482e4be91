//! IR AuthServices → Envoy's `ext_authz` HTTP filters, as Emissary writes its one
//! (`envoy/v3/v3httpfilter.py`, `V3HTTPFilter_authv1`), and each route's settings for them
//! (`envoy/v3/v3route.py`: `ExtAuthzPerRoute`, `disabled` or `check_settings`).
//!
//! A route's settings are encoded here, not by prost: the context extensions are a map, which
//! prost writes in hash order, and a configuration must encode the same every time (versions
//! are derived from content).

use envoy_types::{
    pb::{
        envoy::{
            config::core::v3::{GrpcService, HeaderValue, HttpUri, grpc_service, http_uri},
            extensions::filters::{
                http::ext_authz::v3::{
                    AuthorizationRequest, AuthorizationResponse, BufferSettings, ExtAuthz,
                    ExtAuthzPerRoute, HttpService, ext_authz,
                },
                network::http_connection_manager::v3::{HttpFilter, http_filter},
            },
            r#type::{
                matcher::v3::{ListStringMatcher, StringMatcher, string_matcher},
                v3::HttpStatus,
            },
        },
        google::protobuf::Any,
    },
    util::pack_any,
};
use prost::{Message, Name, encoding};

use super::duration;
use crate::ir::auth::{AuthFilter, DEFAULT_FILTER, RouteAuth, Transport};

/// The filters, the default one first, in the chain after CORS (Emissary's order).
pub(super) fn http_filters(filters: &[std::sync::Arc<AuthFilter>]) -> Vec<HttpFilter> {
    filters.iter().map(|f| http_filter(f)).collect()
}

fn http_filter(f: &AuthFilter) -> HttpFilter {
    let services = match &f.transport {
        Transport::Grpc => ext_authz::Services::GrpcService(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: f.cluster.clone(),
                    ..Default::default()
                },
            )),
            timeout: Some(duration(f.timeout)),
            ..Default::default()
        }),
        Transport::Http {
            uri,
            path_prefix,
            headers_to_add,
            allowed_authorization_headers,
            ..
        } => ext_authz::Services::HttpService(HttpService {
            server_uri: Some(HttpUri {
                uri: uri.clone(),
                http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(f.cluster.clone())),
                timeout: Some(duration(f.timeout)),
            }),
            path_prefix: path_prefix.clone(),
            authorization_request: Some(AuthorizationRequest {
                headers_to_add: headers_to_add
                    .iter()
                    .map(|(key, value)| HeaderValue {
                        key: key.clone(),
                        value: value.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            authorization_response: Some(AuthorizationResponse {
                allowed_upstream_headers: list(allowed_authorization_headers),
                allowed_client_headers: list(allowed_authorization_headers),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    // Only an HTTP check request is limited to some headers; a gRPC one carries them all.
    let allowed_headers = match &f.transport {
        Transport::Http {
            allowed_request_headers,
            ..
        } => list(allowed_request_headers),
        Transport::Grpc => None,
    };
    let config = ExtAuthz {
        services: Some(services),
        transport_api_version: envoy_types::pb::envoy::config::core::v3::ApiVersion::V3 as i32,
        allowed_headers,
        failure_mode_allow: f.failure_mode_allow,
        // As Emissary: headers the service adds may change the route.
        clear_route_cache: true,
        with_request_body: f.body.map(|b| BufferSettings {
            max_request_bytes: b.max_bytes,
            allow_partial_message: b.allow_partial,
            ..Default::default()
        }),
        status_on_error: f.status_on_error.map(|code| HttpStatus {
            code: i32::from(code),
        }),
        // Each opt-in filter counts under its own name; the default one as in Emissary.
        stat_prefix: match f.opt_in {
            true => stat_prefix(&f.source),
            false => String::new(),
        },
        ..Default::default()
    };
    HttpFilter {
        name: f.name.clone(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(config))),
        disabled: f.opt_in,
        ..Default::default()
    }
}

/// `<namespace>_<name>`: Kubernetes names need no escaping in a statistic's name.
fn stat_prefix(source: &legate_crds::ObjectRef) -> String {
    [
        source.namespace.as_deref().unwrap_or_default(),
        "_",
        source.name.as_str(),
    ]
    .concat()
}

/// Header names matched exactly, in any case; none when there are none (Envoy refuses an empty
/// list).
fn list(names: &[String]) -> Option<ListStringMatcher> {
    (!names.is_empty()).then(|| ListStringMatcher {
        patterns: names
            .iter()
            .map(|n| StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact(n.clone())),
                ignore_case: true,
            })
            .collect(),
    })
}

/// A route's `typed_per_filter_config` entries for its AuthService, by filter name.
pub(super) fn per_route(auth: &RouteAuth) -> Vec<(String, Any)> {
    match auth {
        RouteAuth::None => Vec::new(),
        RouteAuth::Default(extensions) if extensions.is_empty() => Vec::new(),
        RouteAuth::Default(extensions) => vec![(DEFAULT_FILTER.to_owned(), check(extensions))],
        RouteAuth::Bypass => vec![disabled()],
        RouteAuth::Only {
            filter,
            context_extensions,
        } => vec![disabled(), (filter.clone(), check(context_extensions))],
    }
}

/// The default filter off: what a bypassed route, and the HTTPS redirect of any route the
/// gateway checks, carries (Emissary: the redirect comes before the check).
pub(super) fn disabled() -> (String, Any) {
    let off = ExtAuthzPerRoute {
        r#override: Some(
            envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::ext_authz_per_route::Override::Disabled(true),
        ),
    };
    (DEFAULT_FILTER.to_owned(), pack_any(off))
}

/// `ExtAuthzPerRoute { check_settings { context_extensions } }`, its map in key order; with no
/// extensions, still a valid setting, which turns a filter that is off by default on.
fn check(extensions: &std::collections::BTreeMap<String, String>) -> Any {
    let mut settings = Vec::new();
    encoding::btree_map::encode(
        encoding::string::encode,
        encoding::string::encoded_len,
        encoding::string::encode,
        encoding::string::encoded_len,
        1,
        extensions,
        &mut settings,
    );
    let mut value = Vec::with_capacity(settings.len() + 4);
    super::length_delimited(2, &settings, &mut value);
    debug_assert!(ExtAuthzPerRoute::decode(&value[..]).is_ok());
    Any {
        type_url: ExtAuthzPerRoute::type_url(),
        value,
    }
}
