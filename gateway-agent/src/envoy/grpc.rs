//! IR gRPC filters → Envoy's `grpc_http1_bridge`, `grpc_web` and `grpc_stats` HTTP filters, by
//! Emissary's names and in its order (`python/ambassador/src/ambassador/envoy/v3/v3httpfilter.py`).

use envoy_types::{
    pb::{
        envoy::{
            config::core::v3::{GrpcMethodList, grpc_method_list},
            extensions::filters::{
                http::{
                    grpc_http1_bridge::v3::Config as Http1Bridge,
                    grpc_stats::v3::{FilterConfig, filter_config::PerMethodStatSpecifier},
                    grpc_web::v3::GrpcWeb,
                },
                network::http_connection_manager::v3::{HttpFilter, http_filter},
            },
        },
        google::protobuf::BoolValue,
    },
    util::pack_any,
};

use crate::ir::grpc::{GrpcFilters, GrpcStats, StatsMethods};

/// The filters `g` asks for, bridge first, then gRPC-Web, then statistics.
pub(super) fn http_filters(g: &GrpcFilters) -> impl Iterator<Item = HttpFilter> + '_ {
    let bridge = g.http1_bridge.then(|| {
        filter(
            "envoy.filters.http.grpc_http1_bridge",
            pack_any(Http1Bridge::default()),
        )
    });
    let web = g
        .web
        .then(|| filter("envoy.filters.http.grpc_web", pack_any(GrpcWeb {})));
    let stats = g
        .stats
        .as_ref()
        .map(|s| filter("envoy.filters.http.grpc_stats", pack_any(stats(s))));
    bridge.into_iter().chain(web).chain(stats)
}

fn stats(s: &GrpcStats) -> FilterConfig {
    let specifier = match &s.methods {
        StatsMethods::All(all) => {
            PerMethodStatSpecifier::StatsForAllMethods(BoolValue { value: *all })
        }
        StatsMethods::Only(services) => {
            PerMethodStatSpecifier::IndividualMethodStatsAllowlist(GrpcMethodList {
                services: services
                    .iter()
                    .map(|s| grpc_method_list::Service {
                        name: s.name.clone(),
                        method_names: s.method_names.clone(),
                    })
                    .collect(),
            })
        }
    };
    FilterConfig {
        enable_upstream_stats: s.upstream_stats,
        per_method_stat_specifier: Some(specifier),
        ..Default::default()
    }
}

fn filter(name: &str, config: envoy_types::pb::google::protobuf::Any) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}
