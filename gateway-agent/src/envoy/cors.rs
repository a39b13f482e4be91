//! IR CORS → Envoy's CORS HTTP filter, and each route's policy in its `typed_per_filter_config`
//! (the route's own `cors` field, which Emissary writes, is deprecated in Envoy 1.40). Emissary
//! (`envoy/v3/v3httpfilter.py`, `V3HTTPFilter_cors`) puts the filter in every HTTP chain,
//! configured by the routes alone; the keys are Envoy's, as `ir/ircors.py` renames them.

use envoy_types::{
    pb::{
        envoy::{
            extensions::filters::{
                http::cors::v3::{Cors, CorsPolicy},
                network::http_connection_manager::v3::{HttpFilter, http_filter},
            },
            r#type::matcher::v3::{StringMatcher, string_matcher},
        },
        google::protobuf::Any,
    },
    util::pack_any,
};

use super::bool_value;
use crate::ir::cors::Policy;

/// The filter's name, Emissary's; the per-route policy is keyed by it.
const FILTER_NAME: &str = "envoy.filters.http.cors";

/// The CORS filter: after compression, before the router, as in Emissary's chain.
pub(super) fn http_filter() -> HttpFilter {
    HttpFilter {
        name: FILTER_NAME.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Cors {}))),
        ..Default::default()
    }
}

/// A route's `typed_per_filter_config` entry for its policy.
pub(super) fn typed_per_filter_config(p: &Policy) -> (String, Any) {
    let policy = CorsPolicy {
        allow_origin_string_match: p
            .origins
            .iter()
            .map(|o| StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact(o.clone())),
                ignore_case: false,
            })
            .collect(),
        allow_methods: p.methods.clone().unwrap_or_default(),
        allow_headers: p.headers.clone().unwrap_or_default(),
        expose_headers: p.exposed_headers.clone().unwrap_or_default(),
        max_age: p.max_age.clone().unwrap_or_default(),
        // Emissary leaves `credentials: false` out: Envoy's default.
        allow_credentials: p.credentials.then(|| bool_value(true)).flatten(),
        ..Default::default()
    };
    (FILTER_NAME.into(), pack_any(policy))
}
