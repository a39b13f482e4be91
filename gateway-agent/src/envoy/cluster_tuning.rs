//! IR cluster tuning → Envoy, as Emissary writes it (`envoy/v3/v3cluster.py`,
//! `ir/irhealthchecks.py`): `health_checks`, `LOGICAL_DNS` for a name that asks for it,
//! `dns_lookup_family`, `respect_dns_ttl` and `alt_stat_name`.

use envoy_types::pb::envoy::{
    config::{
        cluster::v3::{Cluster as EnvoyCluster, cluster},
        core::v3::{
            HeaderValue, HeaderValueOption, HealthCheck as EnvoyHealthCheck,
            header_value_option::HeaderAppendAction, health_check,
        },
    },
    r#type::v3::Int64Range,
};

use super::{duration, u32_value};
use crate::ir::{
    cluster_tuning::{Family, Tuning},
    health_check::{HealthCheck, HttpProbe, Probe},
};

/// Sets the cluster's share of its tuning. Its discovery type is already set ([`super::cluster`]):
/// only a strict DNS one becomes logical.
pub(super) fn apply(t: &Tuning, c: &mut EnvoyCluster) {
    let strict = cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::StrictDns as i32);
    if t.dns.logical && c.cluster_discovery_type == Some(strict) {
        c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::LogicalDns as i32,
        ));
    }
    if let Some(family) = t.dns.family {
        c.dns_lookup_family = match family {
            Family::V4Only => cluster::DnsLookupFamily::V4Only,
            Family::V6Only => cluster::DnsLookupFamily::V6Only,
            Family::Auto => cluster::DnsLookupFamily::Auto,
        } as i32;
    }
    // Deprecated for the `envoy.clusters.dns` extension's own field, which would change the
    // shape of every DNS cluster; Envoy still honours this one (the tests check it).
    #[allow(deprecated)]
    {
        c.respect_dns_ttl = t.dns.respect_ttl;
    }
    if let Some(name) = &t.stats_name {
        c.alt_stat_name = name.clone();
    }
    c.health_checks = t.health_checks.iter().map(health_check).collect();
}

fn health_check(h: &HealthCheck) -> EnvoyHealthCheck {
    let checker = match &h.probe {
        Probe::Http(http) => health_check::HealthChecker::HttpHealthCheck(http_check(http)),
        Probe::Grpc {
            service_name,
            authority,
        } => health_check::HealthChecker::GrpcHealthCheck(health_check::GrpcHealthCheck {
            service_name: service_name.clone(),
            authority: authority.clone().unwrap_or_default(),
            ..Default::default()
        }),
    };
    EnvoyHealthCheck {
        timeout: Some(duration(h.timeout)),
        interval: Some(duration(h.interval)),
        // Envoy's default without traffic is a minute, whatever the interval: the interval asked
        // for is the one kept (see `ir::health_check`).
        no_traffic_interval: Some(duration(h.interval)),
        unhealthy_threshold: u32_value(h.unhealthy_threshold),
        healthy_threshold: u32_value(h.healthy_threshold),
        health_checker: Some(checker),
        ..Default::default()
    }
}

fn http_check(h: &HttpProbe) -> health_check::HttpHealthCheck {
    health_check::HttpHealthCheck {
        host: h.host.clone().unwrap_or_default(),
        path: h.path.clone(),
        request_headers_to_add: h
            .add_headers
            .iter()
            .map(|(key, value, append)| HeaderValueOption {
                header: Some(HeaderValue {
                    key: key.clone(),
                    value: value.clone(),
                    ..Default::default()
                }),
                append_action: if *append {
                    HeaderAppendAction::AppendIfExistsOrAdd
                } else {
                    HeaderAppendAction::OverwriteIfExistsOrAdd
                } as i32,
                ..Default::default()
            })
            .collect(),
        request_headers_to_remove: h.remove_headers.clone(),
        expected_statuses: h
            .expected_statuses
            .iter()
            .map(|&(start, end)| Int64Range {
                start: i64::from(start),
                end: i64::from(end),
            })
            .collect(),
        ..Default::default()
    }
}
