//! IR upstream policy → Envoy, as Emissary writes it (`envoy/v3/v3cluster.py`,
//! `v3route.py` `generate_hash_policy`): circuit-breaker `thresholds`, keepalive in
//! `upstream_connection_options.tcp_keepalive`, the idle timeout and lifetime in the cluster's
//! common HTTP protocol options, `lb_policy`, and the route's `hash_policy`.

use envoy_types::pb::envoy::config::{
    cluster::v3::{
        CircuitBreakers, Cluster as EnvoyCluster, UpstreamConnectionOptions, circuit_breakers,
        cluster,
    },
    core::v3::{HttpProtocolOptions, RoutingPriority, TcpKeepalive},
    route::v3::route_action::{HashPolicy as EnvoyHashPolicy, hash_policy},
};

use super::{duration, u32_value};
use crate::ir::upstream_policy::{Balancing, ClusterPolicy, HashPolicy};

/// Sets the cluster's share of the policy; returns the common HTTP protocol options the cluster
/// needs (idle timeout, lifetime), if any, for [`super::cluster`] to place.
pub(super) fn apply(p: &ClusterPolicy, c: &mut EnvoyCluster) -> Option<HttpProtocolOptions> {
    c.lb_policy = match p.balancing {
        Balancing::RoundRobin => cluster::LbPolicy::RoundRobin,
        Balancing::LeastRequest => cluster::LbPolicy::LeastRequest,
        Balancing::RingHash => cluster::LbPolicy::RingHash,
        Balancing::Maglev => cluster::LbPolicy::Maglev,
    } as i32;
    if !p.circuit_breakers.is_empty() {
        c.circuit_breakers = Some(CircuitBreakers {
            thresholds: p
                .circuit_breakers
                .iter()
                .map(|t| circuit_breakers::Thresholds {
                    priority: if t.high {
                        RoutingPriority::High
                    } else {
                        RoutingPriority::Default
                    } as i32,
                    max_connections: t.max_connections.and_then(u32_value),
                    max_pending_requests: t.max_pending_requests.and_then(u32_value),
                    max_requests: t.max_requests.and_then(u32_value),
                    max_retries: t.max_retries.and_then(u32_value),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
    }
    c.upstream_connection_options = p.keepalive.map(|k| UpstreamConnectionOptions {
        tcp_keepalive: Some(TcpKeepalive {
            keepalive_probes: k.probes.and_then(u32_value),
            keepalive_time: k.time.and_then(u32_value),
            keepalive_interval: k.interval.and_then(u32_value),
        }),
        ..Default::default()
    });
    (p.idle_timeout.is_some() || p.max_connection_lifetime.is_some()).then(|| HttpProtocolOptions {
        idle_timeout: p.idle_timeout.map(duration),
        max_connection_duration: p.max_connection_lifetime.map(duration),
        ..Default::default()
    })
}

/// A route's hash policy for `ring_hash`/`maglev`.
pub(super) fn hash_policy(h: &HashPolicy) -> EnvoyHashPolicy {
    use hash_policy::PolicySpecifier;
    let specifier = match h {
        HashPolicy::Header(name) => PolicySpecifier::Header(hash_policy::Header {
            header_name: name.clone(),
            regex_rewrite: None,
        }),
        HashPolicy::Cookie { name, path, ttl } => PolicySpecifier::Cookie(hash_policy::Cookie {
            name: name.clone(),
            path: path.clone().unwrap_or_default(),
            ttl: ttl.map(duration),
            ..Default::default()
        }),
        HashPolicy::SourceIp => {
            PolicySpecifier::ConnectionProperties(hash_policy::ConnectionProperties {
                source_ip: true,
            })
        }
    };
    EnvoyHashPolicy {
        policy_specifier: Some(specifier),
        terminal: false,
    }
}
