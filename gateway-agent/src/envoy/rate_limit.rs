//! IR rate limiting → Envoy's `ratelimit` HTTP filter and each route's `rate_limits`, as
//! Emissary writes them (`python/ambassador/src/ambassador/envoy/v3/v3httpfilter.py`,
//! `V3HTTPFilter_ratelimit`; `envoy/v3/v3ratelimitaction.py`).

use envoy_types::{
    pb::{
        envoy::{
            config::{
                core::v3::{ApiVersion, GrpcService, grpc_service},
                ratelimit::v3::RateLimitServiceConfig,
                route::v3::{
                    RateLimit as RouteRateLimit,
                    rate_limit::{Action as EnvoyAction, action},
                },
            },
            extensions::filters::{
                http::ratelimit::v3::RateLimit as Filter,
                network::http_connection_manager::v3::{HttpFilter, http_filter},
            },
        },
        google::protobuf::UInt32Value,
    },
    util::pack_any,
};

use crate::ir::rate_limit::{Action, Descriptor, RateLimit};

const FILTER_NAME: &str = "envoy.filters.http.ratelimit";

/// The filter: stage 0, every request (`request_type: both`), the service over Envoy's gRPC
/// client, v3.
pub(super) fn http_filter(r: &RateLimit) -> HttpFilter {
    let config = Filter {
        domain: r.domain.clone(),
        request_type: "both".to_owned(),
        timeout: Some(super::duration(r.timeout)),
        failure_mode_deny: r.failure_mode_deny,
        rate_limited_as_resource_exhausted: r.resource_exhausted,
        rate_limit_service: Some(RateLimitServiceConfig {
            grpc_service: Some(GrpcService {
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                    grpc_service::EnvoyGrpc {
                        cluster_name: r.cluster.clone(),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }),
            transport_api_version: ApiVersion::V3 as i32,
        }),
        ..Default::default()
    };
    HttpFilter {
        name: FILTER_NAME.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(config))),
        ..Default::default()
    }
}

/// A route's `rate_limits`: one per descriptor, stage 0, as Emissary's `to_dict`.
pub(super) fn route_rate_limits(descriptors: &[Descriptor]) -> Vec<RouteRateLimit> {
    descriptors
        .iter()
        .map(|d| RouteRateLimit {
            stage: Some(UInt32Value { value: 0 }),
            actions: d.iter().map(action).collect(),
            ..Default::default()
        })
        .collect()
}

fn action(a: &Action) -> EnvoyAction {
    use action::ActionSpecifier as A;
    let specifier = match a {
        Action::SourceCluster => A::SourceCluster(action::SourceCluster {}),
        Action::DestinationCluster => A::DestinationCluster(action::DestinationCluster {}),
        Action::RemoteAddress => A::RemoteAddress(action::RemoteAddress {}),
        Action::GenericKey { key, value } => A::GenericKey(action::GenericKey {
            descriptor_key: key.clone(),
            descriptor_value: value.clone(),
            ..Default::default()
        }),
        // No `skip_if_absent`, as Emissary: without the header, the descriptor is not sent.
        Action::RequestHeader { header, key } => A::RequestHeaders(action::RequestHeaders {
            header_name: header.clone(),
            descriptor_key: key.clone(),
            ..Default::default()
        }),
    };
    EnvoyAction {
        action_specifier: Some(specifier),
    }
}
