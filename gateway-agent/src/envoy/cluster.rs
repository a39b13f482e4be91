//! An IR cluster → an Envoy cluster: EDS (over ADS) for a Kubernetes Service, static for an IP,
//! strict DNS for a name; HTTP/2 and TLS origination when the Mapping asks. And an EDS cluster's
//! endpoints → its ClusterLoadAssignment.

use std::collections::HashMap;

use envoy_types::{
    pb::envoy::{
        config::{
            cluster::v3::{Cluster as EnvoyCluster, cluster},
            core::v3::{
                Address, AggregatedConfigSource, ApiVersion, ConfigSource, Http1ProtocolOptions,
                Http2ProtocolOptions, SocketAddress, address, config_source, socket_address,
            },
            endpoint::v3::{
                ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
            },
        },
        extensions::upstreams::http::v3::{
            HttpProtocolOptions, http_protocol_options,
            http_protocol_options::explicit_http_config::ProtocolConfig,
        },
    },
    util::pack_any,
};

use super::duration;
use crate::ir::{Cluster, ClusterEndpoints};

pub(super) fn cluster(c: &Cluster) -> EnvoyCluster {
    let discovery = if c.service.is_some() {
        cluster::DiscoveryType::Eds
    } else if c.is_ip() {
        cluster::DiscoveryType::Static
    } else {
        cluster::DiscoveryType::StrictDns
    };
    let mut envoy = EnvoyCluster {
        name: c.name.clone(),
        connect_timeout: Some(duration(c.connect_timeout)),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(discovery as i32)),
        // `localhost` and dual-stack names: prefer the address family upstreams usually bind.
        dns_lookup_family: cluster::DnsLookupFamily::V4Preferred as i32,
        // An EDS cluster's endpoints come in its own ClusterLoadAssignment, over the same ADS
        // stream: a scale event then updates that, never the cluster.
        load_assignment: c
            .service
            .is_none()
            .then(|| assignment(&c.name, [(c.host.clone(), c.port)])),
        eds_cluster_config: c.service.as_ref().map(|_| cluster::EdsClusterConfig {
            eds_config: Some(ConfigSource {
                resource_api_version: ApiVersion::V3 as i32,
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
            service_name: String::new(),
        }),
        transport_socket: super::upstream_tls::transport_socket(c),
        ..Default::default()
    };
    let common = super::upstream_policy::apply(&c.policy, &mut envoy);
    super::cluster_tuning::apply(&c.tuning, &mut envoy);
    if c.http2 || common.is_some() {
        // HTTP/2 for `grpc: true`, else HTTP/1.1 as without options.
        let protocol = if c.http2 {
            ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())
        } else {
            ProtocolConfig::HttpProtocolOptions(Http1ProtocolOptions::default())
        };
        let options = HttpProtocolOptions {
            common_http_protocol_options: common,
            upstream_protocol_options: Some(
                http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                    http_protocol_options::ExplicitHttpConfig {
                        protocol_config: Some(protocol),
                    },
                ),
            ),
            ..Default::default()
        };
        envoy.typed_extension_protocol_options = HashMap::from([(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
            pack_any(options),
        )]);
    }
    envoy
}

/// The ClusterLoadAssignment of an EDS cluster: its ready endpoints (none: Envoy answers 503).
pub(super) fn load_assignment(cluster_name: &str, e: &ClusterEndpoints) -> ClusterLoadAssignment {
    assignment(
        cluster_name,
        e.addresses.iter().map(|a| (a.ip().to_string(), a.port())),
    )
}

fn assignment(
    cluster_name: &str,
    endpoints: impl IntoIterator<Item = (String, u16)>,
) -> ClusterLoadAssignment {
    let lb_endpoints: Vec<LbEndpoint> = endpoints
        .into_iter()
        .map(|(address, port)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address,
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                            port,
                        ))),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: cluster_name.to_owned(),
        endpoints: if lb_endpoints.is_empty() {
            Vec::new()
        } else {
            vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}
