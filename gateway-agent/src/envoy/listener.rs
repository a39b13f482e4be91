//! An IR listener → an Envoy listener with the HTTP connection manager, its routes over RDS.

use envoy_types::{
    pb::envoy::{
        config::{
            core::v3::{
                AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress, address,
                config_source, socket_address,
            },
            listener::v3::{Filter, FilterChain, Listener as EnvoyListener, filter},
        },
        extensions::filters::{
            http::router::v3::Router,
            network::http_connection_manager::v3::{
                HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
            },
        },
    },
    util::pack_any,
};

use super::{bool_value, route_config_name};
use crate::ir::Listener;

pub(super) fn listener(l: &Listener) -> EnvoyListener {
    let hcm = HttpConnectionManager {
        stat_prefix: l.stats_prefix.clone(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ConfigSource {
                resource_api_version: ApiVersion::V3 as i32,
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
            route_config_name: route_config_name(&l.name),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        }],
        // As Emissary: trust the connection's address, plus `l7Depth` proxies in front.
        use_remote_address: bool_value(true),
        xff_num_trusted_hops: l.l7_depth,
        // `Host: example.com:8080` matches the virtual host `example.com`.
        strip_port_mode: Some(http_connection_manager::StripPortMode::StripAnyHostPort(
            true,
        )),
        ..Default::default()
    };
    EnvoyListener {
        name: l.name.clone(),
        address: Some(envoy_types::pb::envoy::config::core::v3::Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "0.0.0.0".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(l.port))),
                ..Default::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}
