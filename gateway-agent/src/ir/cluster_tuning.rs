//! What a Mapping tunes in its cluster besides the connection policy ([`super::upstream_policy`]),
//! as Emissary applies it (`ir/ircluster.py`, `ir/irhttpmappinggroup.py`, `envoy/v3/v3cluster.py`):
//!
//! - `health_checks`: active health checks of the cluster's endpoints ([`super::health_check`]).
//! - `dns_type`: `strict_dns` (the default) or `logical_dns`, the Envoy cluster type of a cluster
//!   that resolves a name. An EDS cluster (a Kubernetes Service's endpoints) resolves nothing:
//!   there, as in Emissary (`v3cluster.py` makes it `EDS` whatever the type), it changes nothing,
//!   and neither do `respect_dns_ttl` and the address families; an IP is not resolved either.
//! - `respect_dns_ttl`: re-resolve as the DNS answer's TTL says rather than every 5 s.
//! - `enable_ipv4` / `enable_ipv6`: the Mapping's, else the gateway Module's, else Emissary's
//!   defaults (`true` / `false`), as `dns_lookup_family`: `V4_ONLY`, both `AUTO`, IPv6 alone
//!   `V6_ONLY` (`v3cluster.py`).
//! - `cluster_tag`: keeps Mappings that would share a cluster apart (Emissary's cluster
//!   `marker`, `irhttpmappinggroup.py`).
//! - `stats_name`: the cluster's `alt_stat_name`, the name its statistics are kept under.
//!
//! Every one is part of the cluster's name ([`Tuning::key`]), so Mappings that tune differently
//! never share a cluster (Emissary names clusters by `cluster_tag` only, and merges the others
//! into whichever cluster came first).
//!
//! Deliberate differences: health checks apply to every kind of cluster (Emissary drops them,
//! with a log line only, unless the Mapping resolves through endpoints); Envoy checks a DNS
//! name's addresses as it checks endpoints. With neither address family set anywhere, a name
//! resolves IPv4 first and IPv6 when it has no IPv4 address (`V4_PREFERRED`), where Emissary's
//! `V4_ONLY` fails to resolve it. Both families switched off (Emissary's `V4_ONLY` again)
//! refuses the Mapping, or is the Module's rejection with its default left out. Without a
//! `stats_name` the statistics stay under the cluster's name (Emissary defaults them to the
//! `service` with `.` and `:` made `_`, which merges the statistics of every Mapping to one
//! upstream, across namespaces too).

use legate_crds::{
    Module,
    mapping::{DnsType, MappingSpec},
    tcp_mapping::TcpMappingSpec,
};

use super::{
    Refusal, Rejection, envoy_rules,
    health_check::{self, HealthCheck},
    service::{self, Cluster},
};

/// A cluster's tuning. The default is what a Mapping that sets none of it gets; anything else
/// is part of the cluster's name.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Tuning {
    pub health_checks: Vec<HealthCheck>,
    /// Default for a cluster that resolves no name.
    pub dns: Dns,
    /// `cluster_tag`: only in the cluster's name.
    pub tag: Option<String>,
    pub stats_name: Option<String>,
}

/// How a cluster resolves its name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Dns {
    /// `logical_dns`: one address at a time, re-resolved for new connections only.
    pub logical: bool,
    pub respect_ttl: bool,
    /// `None`: the gateway's own (IPv4 preferred).
    pub family: Option<Family>,
}

/// Envoy's `dns_lookup_family`, the ones Emissary writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4Only,
    V6Only,
    Auto,
}

// One line for the clusters that tune nothing (nearly all), in the IR's debug output too.
impl std::fmt::Debug for Tuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Self::default() {
            return f.write_str("Tuning::default()");
        }
        f.debug_struct("Tuning")
            .field("health_checks", &self.health_checks)
            .field("dns", &self.dns)
            .field("tag", &self.tag)
            .field("stats_name", &self.stats_name)
            .finish()
    }
}

impl Tuning {
    /// The text the cluster's name hashes, `None` for the default (whose clusters keep the
    /// names they always had). Every field is in it.
    pub fn key(&self) -> Option<String> {
        (*self != Self::default()).then(|| format!("tuning\0{self:?}"))
    }
}

/// The gateway Module's address families for every Mapping without its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Defaults {
    pub enable_ipv4: Option<bool>,
    pub enable_ipv6: Option<bool>,
}

impl Defaults {
    /// The defaults the gateway Module sets; a setting it cannot have is added to `rejections`
    /// and left out.
    pub fn new(module: Option<&Module>, rejections: &mut Vec<Rejection>) -> Self {
        let Some(module) = module else {
            return Self::default();
        };
        let c = &module.spec.config;
        if c.enable_ipv4 == Some(false) && c.enable_ipv6 != Some(true) {
            rejections.push(super::module::invalid(
                module,
                "spec.config.enable_ipv4: false with IPv6 not enabled (spec.config.enable_ipv6) \
                 leaves no address family to resolve names with; every Mapping without its own \
                 setting keeps the gateway's default",
            ));
            return Self::default();
        }
        Self {
            enable_ipv4: c.enable_ipv4,
            enable_ipv6: c.enable_ipv6,
        }
    }
}

/// What a resource writes that tunes its cluster: a Mapping all of it, a TCPMapping its address
/// families, tag and stats name.
pub struct Input<'a> {
    pub health_checks: Option<&'a [legate_crds::mapping::HealthCheck]>,
    pub dns_type: Option<DnsType>,
    pub respect_dns_ttl: Option<bool>,
    pub enable_ipv4: Option<bool>,
    pub enable_ipv6: Option<bool>,
    pub cluster_tag: &'a Option<String>,
    pub stats_name: &'a Option<String>,
}

impl<'a> From<&'a MappingSpec> for Input<'a> {
    fn from(spec: &'a MappingSpec) -> Self {
        Self {
            health_checks: spec.health_checks.as_deref(),
            dns_type: spec.dns_type,
            respect_dns_ttl: spec.respect_dns_ttl,
            enable_ipv4: spec.enable_ipv4,
            enable_ipv6: spec.enable_ipv6,
            cluster_tag: &spec.cluster_tag,
            stats_name: &spec.stats_name,
        }
    }
}

impl<'a> From<&'a TcpMappingSpec> for Input<'a> {
    fn from(spec: &'a TcpMappingSpec) -> Self {
        Self {
            health_checks: None,
            dns_type: None,
            respect_dns_ttl: None,
            enable_ipv4: spec.enable_ipv4,
            enable_ipv6: spec.enable_ipv6,
            cluster_tag: &spec.cluster_tag,
            stats_name: &spec.stats_name,
        }
    }
}

/// `cluster`, the one `spec` sends to, with its tuning (and the name that goes with it).
pub fn tune<'a>(
    spec: impl Into<Input<'a>>,
    defaults: &Defaults,
    cluster: Cluster,
) -> Result<Cluster, Refusal> {
    let spec: Input<'a> = spec.into();
    let health_checks = health_check::health_checks(spec.health_checks, cluster.http2)?;
    let family = family(&spec, defaults)?;
    let stats_name = non_empty(spec.stats_name);
    if let Some(name) = &stats_name {
        envoy_rules::header_value("stats_name", name)?;
    }
    // Only a name is resolved: an EDS or static cluster has no use for these (as in Emissary).
    let resolves = cluster.service.is_none() && !cluster.is_ip();
    let dns = if resolves {
        Dns {
            logical: spec.dns_type == Some(DnsType::LogicalDns),
            respect_ttl: spec.respect_dns_ttl == Some(true),
            family,
        }
    } else {
        Dns::default()
    };
    let tuning = Tuning {
        health_checks,
        dns,
        tag: non_empty(spec.cluster_tag),
        stats_name,
    };
    Ok(match tuning.key() {
        None => cluster,
        Some(key) => Cluster {
            name: service::with_policy(&cluster.name, &key),
            tuning,
            ..cluster
        },
    })
}

/// `enable_ipv4`/`enable_ipv6`, each the Mapping's else the Module's; `None` when neither sets
/// either.
fn family(spec: &Input<'_>, defaults: &Defaults) -> Result<Option<Family>, Refusal> {
    let v4 = spec.enable_ipv4.or(defaults.enable_ipv4);
    let v6 = spec.enable_ipv6.or(defaults.enable_ipv6);
    if v4.is_none() && v6.is_none() {
        return Ok(None);
    }
    match (v4.unwrap_or(true), v6.unwrap_or(false)) {
        (true, false) => Ok(Some(Family::V4Only)),
        (true, true) => Ok(Some(Family::Auto)),
        (false, true) => Ok(Some(Family::V6Only)),
        (false, false) => Err(Refusal::from(
            "enable_ipv4: false with IPv6 not enabled (enable_ipv6, or the Module's) leaves no \
             address family to resolve the service with"
                .to_owned(),
        )),
    }
}

/// An empty string asks for nothing, as in Emissary (which tests for truth).
fn non_empty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use pretty_assertions::assert_eq;

    fn spec(yaml: &str) -> MappingSpec {
        serde_saphyr::from_str(&format!("prefix: /\nservice: quote\n{yaml}")).unwrap()
    }

    fn dns_cluster(host: &str) -> Cluster {
        let name = service::cluster_name(host, 80, false, false, Duration::from_secs(3));
        Cluster {
            name,
            host: host.into(),
            port: 80,
            tls: false,
            http2: false,
            connect_timeout: Duration::from_secs(3),
            service: None,
            policy: Default::default(),
            tuning: Tuning::default(),
            upstream_tls: None,
        }
    }

    fn tuned(yaml: &str, defaults: Defaults, cluster: Cluster) -> Result<Cluster, Refusal> {
        tune(&spec(yaml), &defaults, cluster)
    }

    #[test]
    fn a_cluster_tuned_by_nothing_keeps_its_name() {
        let plain = dns_cluster("quote");
        // Empty values ask for nothing, as in Emissary.
        let same = tuned(
            "cluster_tag: \"\"\nstats_name: \"\"\nhealth_checks: []",
            Defaults::default(),
            plain.clone(),
        );
        assert_eq!(same, Ok(plain));
    }

    #[test]
    fn each_setting_gets_its_own_cluster_name() {
        let names: std::collections::BTreeSet<String> = [
            "",
            "cluster_tag: a",
            "cluster_tag: b",
            "stats_name: quote",
            "dns_type: logical_dns",
            "respect_dns_ttl: true",
            "enable_ipv6: true",
            "enable_ipv4: true",
            "health_checks: [{health_check: {http: {path: /}}}]",
            "health_checks: [{interval: 1s, health_check: {http: {path: /}}}]",
        ]
        .iter()
        .map(|y| {
            tuned(y, Defaults::default(), dns_cluster("quote"))
                .unwrap()
                .name
        })
        .collect();
        assert_eq!(names.len(), 10, "{names:#?}");
    }

    #[test]
    fn address_families_are_the_mappings_else_the_modules_as_emissary_maps_them() {
        let family = |yaml: &str, module: Defaults| {
            tuned(yaml, module, dns_cluster("quote")).map(|c| c.tuning.dns.family)
        };
        let none = Defaults::default();
        assert_eq!(family("", none), Ok(None));
        assert_eq!(family("enable_ipv4: true", none), Ok(Some(Family::V4Only)));
        assert_eq!(family("enable_ipv6: true", none), Ok(Some(Family::Auto)));
        assert_eq!(
            family("enable_ipv4: false\nenable_ipv6: true", none),
            Ok(Some(Family::V6Only))
        );
        let v6_module = Defaults {
            enable_ipv4: Some(false),
            enable_ipv6: Some(true),
        };
        assert_eq!(family("", v6_module), Ok(Some(Family::V6Only)));
        assert_eq!(
            family("enable_ipv4: true", v6_module),
            Ok(Some(Family::Auto))
        );
        let refused = family("enable_ipv4: false", none).unwrap_err();
        assert!(refused.message.starts_with("enable_ipv4: "), "{refused:?}");
    }

    #[test]
    fn dns_settings_do_nothing_to_a_cluster_that_resolves_no_name() {
        let yaml = "dns_type: logical_dns\nrespect_dns_ttl: true\nenable_ipv6: true";
        let ip = dns_cluster("10.0.0.1");
        assert_eq!(tuned(yaml, Defaults::default(), ip.clone()), Ok(ip));
        let mut eds = dns_cluster("quote");
        eds.service = Some(service::ServiceRef {
            namespace: "default".into(),
            name: "quote".into(),
            port_name: Some("http".into()),
        });
        assert_eq!(tuned(yaml, Defaults::default(), eds.clone()), Ok(eds));
        let named = tuned(yaml, Defaults::default(), dns_cluster("quote")).unwrap();
        assert_eq!(
            named.tuning.dns,
            Dns {
                logical: true,
                respect_ttl: true,
                family: Some(Family::Auto)
            }
        );
    }

    #[test]
    fn a_module_without_any_address_family_is_rejected_and_its_default_left_out() {
        let legate_crds::Resource::Module(module) =
            super::super::module::fixtures::module("ambassador", "default", "enable_ipv4: false")
        else {
            unreachable!("a Module")
        };
        let mut rejections = Vec::new();
        assert_eq!(
            Defaults::new(Some(&module), &mut rejections),
            Defaults::default()
        );
        assert_eq!(rejections.len(), 1);
        assert!(
            rejections[0]
                .message
                .starts_with("spec.config.enable_ipv4: false"),
            "{rejections:?}"
        );
    }

    #[test]
    fn a_bad_health_check_or_stats_name_refuses_the_mapping() {
        let refused = tuned(
            "health_checks: [{interval: 0s, health_check: {http: {path: /}}}]",
            Defaults::default(),
            dns_cluster("quote"),
        )
        .unwrap_err();
        assert!(
            refused.message.starts_with("health_checks[0].interval: "),
            "{refused:?}"
        );
        let refused = tuned(
            "stats_name: \"a\\nb\"",
            Defaults::default(),
            dns_cluster("quote"),
        )
        .unwrap_err();
        assert!(refused.message.starts_with("stats_name: "), "{refused:?}");
    }
}
