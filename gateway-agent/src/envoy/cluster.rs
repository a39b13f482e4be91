//! An IR cluster → an Envoy cluster: static for an IP, strict DNS for a name; HTTP/2 and TLS
//! origination when the Mapping asks.

use std::collections::HashMap;

use envoy_types::{
    pb::envoy::{
        config::{
            cluster::v3::{Cluster as EnvoyCluster, cluster},
            core::v3::{
                Address, Http2ProtocolOptions, SocketAddress, TransportSocket, address,
                socket_address, transport_socket,
            },
            endpoint::v3::{
                ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
            },
        },
        extensions::{
            transport_sockets::tls::v3::UpstreamTlsContext,
            upstreams::http::v3::{HttpProtocolOptions, http_protocol_options},
        },
    },
    util::pack_any,
};

use super::duration;
use crate::ir::Cluster;

pub(super) fn cluster(c: &Cluster) -> EnvoyCluster {
    let discovery = if c.is_ip() {
        cluster::DiscoveryType::Static
    } else {
        cluster::DiscoveryType::StrictDns
    };
    let mut options = HashMap::new();
    if c.http2 {
        let http2 = HttpProtocolOptions {
            upstream_protocol_options: Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                        Http2ProtocolOptions::default(),
                    )),
                },
            )),
            ..Default::default()
        };
        options.insert(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
            pack_any(http2),
        );
    }
    EnvoyCluster {
        name: c.name.clone(),
        connect_timeout: Some(duration(c.connect_timeout)),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(discovery as i32)),
        // `localhost` and dual-stack names: prefer the address family upstreams usually bind.
        dns_lookup_family: cluster::DnsLookupFamily::V4Preferred as i32,
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: c.name.clone(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(Address {
                            address: Some(address::Address::SocketAddress(SocketAddress {
                                address: c.host.clone(),
                                port_specifier: Some(socket_address::PortSpecifier::PortValue(
                                    u32::from(c.port),
                                )),
                                ..Default::default()
                            })),
                        }),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        typed_extension_protocol_options: options,
        transport_socket: c.tls.then(|| TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(
                UpstreamTlsContext {
                    sni: c.host.clone(),
                    ..Default::default()
                },
            ))),
        }),
        ..Default::default()
    }
}
