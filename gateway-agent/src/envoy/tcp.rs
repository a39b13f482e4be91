//! A TCPMappings' listener → an Envoy listener whose chains forward with `tcp_proxy`, as
//! Emissary's `V3Listener.finalize_tcp` builds them: one chain per SNI name (terminating TLS with
//! the chain's certificate, or matching the TLS and passing it through), then the catch-all.
//! Each logs its connections as the HTTP listeners log requests ([`super::access_log`]).

use envoy_types::{
    pb::envoy::{
        config::{
            core::v3::{Address, SocketAddress, address, socket_address},
            listener::v3::{Filter, FilterChain, FilterChainMatch, Listener, filter},
        },
        extensions::filters::network::tcp_proxy::v3::{
            TcpProxy,
            tcp_proxy::{ClusterSpecifier, WeightedCluster, weighted_cluster::ClusterWeight},
        },
    },
    util::pack_any,
};

use super::{access_log, duration, tls};
use crate::ir::tcp_mapping::{TcpChain, TcpListener};

pub(super) fn listener(l: &TcpListener) -> Listener {
    Listener {
        name: l.name.clone(),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: l.address.clone(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(l.port))),
                ..Default::default()
            })),
        }),
        // SNI is read only where a chain matches on it: a catch-all alone forwards at once,
        // even to a server that speaks first.
        listener_filters: if l.reads_sni() {
            vec![tls::tls_inspector()]
        } else {
            Vec::new()
        },
        filter_chains: l.chains.iter().map(|c| chain(l, c)).collect(),
        ..Default::default()
    }
}

fn chain(l: &TcpListener, c: &TcpChain) -> FilterChain {
    FilterChain {
        name: c.name.clone(),
        filter_chain_match: (!c.server_names.is_empty()).then(|| FilterChainMatch {
            server_names: c.server_names.clone(),
            transport_protocol: "tls".into(),
            ..Default::default()
        }),
        transport_socket: c.tls.as_ref().map(tls::transport_socket),
        filters: vec![tcp_proxy(l, c)],
        ..Default::default()
    }
}

fn tcp_proxy(l: &TcpListener, c: &TcpChain) -> Filter {
    // Envoy takes a weight of at least 1, and weighted clusters only with two or more: the IR
    // leaves out members with no share.
    let cluster = match c.clusters.as_slice() {
        [(name, _)] => ClusterSpecifier::Cluster(name.clone()),
        clusters => ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: clusters
                .iter()
                .map(|(name, weight)| ClusterWeight {
                    name: name.clone(),
                    weight: *weight,
                    ..Default::default()
                })
                .collect(),
        }),
    };
    let proxy = TcpProxy {
        stat_prefix: l.stats_prefix.clone(),
        idle_timeout: c.idle_timeout.map(duration),
        cluster_specifier: Some(cluster),
        // One entry per connection, when it closes.
        access_log: access_log::access_logs(&l.access_log, &l.log_services),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(proxy))),
    }
}
