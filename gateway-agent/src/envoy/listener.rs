//! An IR listener → an Envoy listener with the HTTP connection manager, its routes over RDS:
//! one chain per TLS SNI name (each with its own route configuration), then the cleartext chain.

use envoy_types::{
    pb::envoy::{
        config::{
            core::v3::{
                AggregatedConfigSource, ApiVersion, ConfigSource, Http2ProtocolOptions,
                SocketAddress, address, config_source, socket_address,
            },
            listener::v3::{
                Filter, FilterChain, FilterChainMatch, Listener as EnvoyListener, ListenerFilter,
                filter, listener_filter,
            },
        },
        extensions::filters::{
            listener::proxy_protocol::v3::ProxyProtocol,
            network::http_connection_manager::v3::{
                HttpConnectionManager, HttpFilter, Rds, http_connection_manager,
            },
        },
    },
    pb::google::protobuf::{BoolValue, UInt32Value},
    util::pack_any,
};

use super::{
    access_log, auth, compression, cors, grpc, http_options, ip_filter, rate_limit,
    route_config_name, tls, tracing,
};
use crate::ir::Listener;

pub(super) fn listener(l: &Listener) -> EnvoyListener {
    let mut filter_chains: Vec<FilterChain> = l
        .tls_chains
        .iter()
        .map(|c| FilterChain {
            name: c.name.clone(),
            filter_chain_match: Some(FilterChainMatch {
                server_names: c.server_names.clone(),
                transport_protocol: "tls".into(),
                ..Default::default()
            }),
            transport_socket: Some(tls::transport_socket(&c.tls)),
            filters: vec![hcm(l, route_config_name(&c.name))],
            ..Default::default()
        })
        .collect();
    // With TLS chains, cleartext is what the TLS inspector did not recognise as TLS; a TLS
    // connection whose SNI no chain matches is then closed rather than parsed as HTTP.
    let tls = !l.tls_chains.is_empty();
    filter_chains.push(FilterChain {
        filter_chain_match: tls.then(|| FilterChainMatch {
            transport_protocol: "raw_buffer".into(),
            ..Default::default()
        }),
        filters: vec![hcm(l, route_config_name(&l.name))],
        ..Default::default()
    });
    EnvoyListener {
        name: l.name.clone(),
        address: Some(envoy_types::pb::envoy::config::core::v3::Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "0.0.0.0".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(l.port))),
                ..Default::default()
            })),
        }),
        // The PROXY header comes first on the wire, before any TLS ClientHello.
        listener_filters: l
            .proxy_protocol
            .then(proxy_protocol)
            .into_iter()
            .chain(tls.then(tls::tls_inspector))
            .collect(),
        filter_chains,
        // The gateway Module's `buffer_limit_bytes`.
        per_connection_buffer_limit_bytes: l
            .http_options
            .buffer_limit_bytes
            .map(|n| UInt32Value { value: n }),
        ..Default::default()
    }
}

/// Reads the PROXY protocol header (v1 or v2) of the load balancer in front: the address it
/// names becomes the connection's peer (`X-Forwarded-For`, `ip_allow` `peer`, access logs). A
/// connection without one is closed, as Emissary's `HTTPPROXY` Listener does.
fn proxy_protocol() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.proxy_protocol".into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
            ProxyProtocol::default(),
        ))),
        ..Default::default()
    }
}

/// The HTTP connection manager of one chain, routing by the route configuration `rds`.
fn hcm(l: &Listener, rds: String) -> Filter {
    let mut hcm = HttpConnectionManager {
        stat_prefix: l.stats_prefix.clone(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ConfigSource {
                resource_api_version: ApiVersion::V3 as i32,
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
            route_config_name: rds,
        })),
        http_filters: http_filters(l),
        access_log: access_log::access_logs(&l.access_log, &l.log_services),
        http2_protocol_options: l
            .http2_max_concurrent_streams
            .map(|n| Http2ProtocolOptions {
                max_concurrent_streams: Some(UInt32Value { value: n }),
                ..Default::default()
            }),
        // Always, as Emissary writes it (`v3listener.py`): `/a/../b` is routed (and sent
        // upstream) as `/b`, so a dot segment cannot walk a request past a prefix's route.
        normalize_path: Some(BoolValue { value: true }),
        // The gateway's TracingService.
        tracing: l.tracing.as_deref().map(tracing::hcm_tracing),
        ..Default::default()
    };
    // The gateway Module's settings (`server_name`, `xff_num_trusted_hops`, port stripping, ...).
    http_options::apply(l, &mut hcm);
    Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
    }
}

/// The HTTP filters in Emissary's order (`ir.py`, `irambassador.py`): the gateway Module's gRPC
/// filters, compression and buffering, its address rule, CORS (always, as in Emissary; it acts
/// on the routes that carry a policy), the AuthServices' `ext_authz` filters, rate limiting,
/// then the router.
fn http_filters(l: &Listener) -> Vec<HttpFilter> {
    let router = http_options::router(&l.http_options);
    grpc::http_filters(&l.grpc)
        .chain(l.compression.as_deref().map(compression::http_filter))
        .chain(http_options::buffer(&l.http_options))
        .chain(l.ip_filter.as_deref().map(ip_filter::http_filter))
        .chain([cors::http_filter()])
        .chain(auth::http_filters(&l.auth))
        .chain(l.rate_limit.as_deref().map(rate_limit::http_filter))
        .chain([router])
        .collect()
}
