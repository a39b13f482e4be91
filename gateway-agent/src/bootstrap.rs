//! The Envoy bootstrap that points Envoy at the agent's ADS server.
//!
//! Everything but the ADS cluster itself comes over one aggregated stream: clusters (CDS) and
//! listeners (LDS) name ADS as their source, and the routes, endpoints and secrets they reference
//! follow on the same stream. [`bootstrap`] is a pure function so tests can assert its shape;
//! [`render_yaml`] turns it into what `legate-agent bootstrap` prints.

use std::net::SocketAddr;

use serde_json::{Value, json};

/// The name of the static cluster that reaches the agent's ADS server.
pub const XDS_CLUSTER: &str = "legate_xds";

/// The static listener that serves Envoy's statistics, and the cluster behind it (the admin).
pub const STATS_LISTENER: &str = "legate_stats";
const ADMIN_CLUSTER: &str = "legate_admin";

/// The one admin path the statistics listener forwards: Prometheus text, read-only.
pub const STATS_PATH: &str = "/stats/prometheus";

/// Which ADS protocol Envoy speaks: state-of-the-world or incremental (delta).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdsApi {
    /// State-of-the-world: every response carries the full set of resources of a type.
    Grpc,
    /// Incremental: only changed and removed resources are sent.
    #[default]
    DeltaGrpc,
}

impl AdsApi {
    /// The `api_type` value in Envoy's `ApiConfigSource`.
    pub fn as_envoy(self) -> &'static str {
        match self {
            Self::Grpc => "GRPC",
            Self::DeltaGrpc => "DELTA_GRPC",
        }
    }
}

/// What the bootstrap needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapParams {
    /// The agent's ADS server; Envoy reaches it through a STATIC cluster, so an IP address.
    pub ads_address: SocketAddr,
    /// Where Envoy's admin interface listens; must be loopback (DESIGN.md, security rules).
    pub admin_address: SocketAddr,
    /// Where a listener of Envoy's own serves `GET /stats/prometheus` and nothing else of the
    /// admin interface, for the agent to append to its `/metrics`; loopback too.
    pub stats_address: Option<SocketAddr>,
    /// `node.id`, as the ADS server sees it.
    pub node_id: String,
    /// `node.cluster`: the gateway (installation) this Envoy belongs to.
    pub node_cluster: String,
    pub ads_api: AdsApi,
    /// Upper bound on active downstream connections (the overload manager's limit; Envoy
    /// warns at start-up when there is none).
    pub max_downstream_connections: u64,
}

impl BootstrapParams {
    /// Defaults for everything but the addresses and the node id: cluster `legate`, delta
    /// ADS, at most 50,000 downstream connections.
    pub fn new(
        ads_address: SocketAddr,
        admin_address: SocketAddr,
        node_id: impl Into<String>,
    ) -> Self {
        Self {
            ads_address,
            admin_address,
            stats_address: None,
            node_id: node_id.into(),
            node_cluster: "legate".to_owned(),
            ads_api: AdsApi::default(),
            max_downstream_connections: 50_000,
        }
    }

    /// Refuses what the security rules forbid: an admin interface beyond loopback, and an
    /// empty node id (the ADS server tells Envoys apart by it).
    pub fn check(&self) -> Result<(), BootstrapError> {
        if !self.admin_address.ip().is_loopback() {
            return Err(BootstrapError::AdminNotLoopback(self.admin_address));
        }
        if let Some(stats) = self.stats_address.filter(|a| !a.ip().is_loopback()) {
            return Err(BootstrapError::StatsNotLoopback(stats));
        }
        if self.node_id.trim().is_empty() {
            return Err(BootstrapError::EmptyNodeId);
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootstrapError {
    #[error("the Envoy admin address {0} is not a loopback address; admin must stay on loopback")]
    AdminNotLoopback(SocketAddr),
    #[error(
        "the Envoy statistics address {0} is not a loopback address; the agent serves them to \
         the network, beside its own metrics"
    )]
    StatsNotLoopback(SocketAddr),
    #[error("the node id must not be empty")]
    EmptyNodeId,
}

fn socket_address(address: SocketAddr) -> Value {
    json!({
        "socket_address": {
            "address": address.ip().to_string(),
            "port_value": address.port(),
        }
    })
}

/// The bootstrap as JSON (Envoy's proto3 JSON mapping, which is also what its YAML reads).
pub fn bootstrap(params: &BootstrapParams) -> Value {
    let ads_source = json!({ "ads": {}, "resource_api_version": "V3" });
    let mut clusters = vec![xds_cluster(params.ads_address)];
    let mut listeners = vec![];
    if let Some(stats) = params.stats_address {
        clusters.push(static_cluster(ADMIN_CLUSTER, params.admin_address));
        listeners.push(stats_listener(stats));
    }
    json!({
        "node": {
            "id": params.node_id,
            "cluster": params.node_cluster,
        },
        "admin": {
            "address": socket_address(params.admin_address),
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": params.ads_api.as_envoy(),
                "transport_api_version": "V3",
                "grpc_services": [
                    { "envoy_grpc": { "cluster_name": XDS_CLUSTER } }
                ],
                "set_node_on_first_message_only": true,
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        "static_resources": { "clusters": clusters, "listeners": listeners },
        // A static layer to pin values in and the admin layer for live debugging
        // (`/runtime_modify` on the loopback admin interface). Envoy's own regex size limit is
        // lifted: the agent holds regexes to the Module's `regex_max_size` (Emissary's 200 by
        // default) before Envoy sees them, so none is refused here.
        "layered_runtime": {
            "layers": [
                { "name": "static", "static_layer": {
                    "re2.max_program_size.error_level": crate::ir::envoy_rules::re2::ENVOY_ERROR_LEVEL,
                } },
                { "name": "admin", "admin_layer": {} },
            ]
        },
        "overload_manager": {
            "resource_monitors": [{
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                    "max_active_downstream_connections": params.max_downstream_connections,
                }
            }]
        },
    })
}

/// A STATIC cluster of one address, over HTTP/1.1 unless a caller adds more.
fn static_cluster(name: &str, address: SocketAddr) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{
                "lb_endpoints": [{ "endpoint": { "address": socket_address(address) } }]
            }]
        },
    })
}

fn xds_cluster(ads_address: SocketAddr) -> Value {
    let mut cluster = static_cluster(XDS_CLUSTER, ads_address);
    // gRPC needs HTTP/2; keepalives notice a dead agent on an idle stream.
    cluster["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {
                "http2_protocol_options": {
                    "connection_keepalive": { "interval": "30s", "timeout": "5s" }
                }
            }
        }
    });
    cluster
}

/// Envoy's statistics without its admin interface: only `GET /stats/prometheus` (any query,
/// e.g. `usedonly`) reaches the admin; anything else is a 404 from Envoy itself. Envoy Gateway
/// does the same; Emissary has its diagd fetch the admin port.
fn stats_listener(address: SocketAddr) -> Value {
    json!({
        "name": STATS_LISTENER,
        "address": socket_address(address),
        // Out of `/drain`'s `inbound_only` drain: metrics stay readable while the pod drains.
        "traffic_direction": "OUTBOUND",
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": STATS_LISTENER,
                    "route_config": {
                        "name": STATS_LISTENER,
                        "virtual_hosts": [{
                            "name": STATS_LISTENER,
                            "domains": ["*"],
                            "routes": [{
                                "match": {
                                    "path": STATS_PATH,
                                    "headers": [{
                                        "name": ":method",
                                        "string_match": { "exact": "GET" },
                                    }],
                                },
                                "route": { "cluster": ADMIN_CLUSTER },
                            }],
                        }],
                    },
                    "http_filters": [{
                        "name": "envoy.filters.http.router",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                        },
                    }],
                },
            }],
        }],
    })
}

/// The bootstrap as YAML, as `legate-agent bootstrap` prints it.
pub fn render_yaml(bootstrap: &Value) -> String {
    serde_saphyr::to_string(bootstrap).expect("a JSON value always renders as YAML")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn params() -> BootstrapParams {
        BootstrapParams::new(
            "127.0.0.1:18000".parse().unwrap(),
            "127.0.0.1:19000".parse().unwrap(),
            "gw-0",
        )
    }

    #[test]
    fn everything_comes_over_ads() {
        let b = bootstrap(&params());
        assert_eq!(b["node"], json!({"id": "gw-0", "cluster": "legate"}));
        assert_eq!(
            b["dynamic_resources"],
            json!({
                "ads_config": {
                    "api_type": "DELTA_GRPC",
                    "transport_api_version": "V3",
                    "grpc_services": [{"envoy_grpc": {"cluster_name": "legate_xds"}}],
                    "set_node_on_first_message_only": true,
                },
                "cds_config": {"ads": {}, "resource_api_version": "V3"},
                "lds_config": {"ads": {}, "resource_api_version": "V3"},
            })
        );
        assert_eq!(
            b["admin"]["address"],
            json!({"socket_address": {"address": "127.0.0.1", "port_value": 19000}})
        );
    }

    #[test]
    fn the_xds_cluster_is_static_http2_at_the_ads_address() {
        let b = bootstrap(&params());
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        assert_eq!(clusters.len(), 1);
        let c = &clusters[0];
        assert_eq!(c["name"], "legate_xds");
        assert_eq!(c["type"], "STATIC");
        assert_eq!(c["connect_timeout"], "1s");
        assert_eq!(
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
            json!({"socket_address": {"address": "127.0.0.1", "port_value": 18000}})
        );
        let options = &c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert_eq!(
            options["@type"],
            "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        );
        assert!(options["explicit_http_config"]["http2_protocol_options"].is_object());
    }

    #[test]
    fn the_stats_listener_forwards_get_stats_prometheus_to_the_admin_and_nothing_else() {
        assert!(
            bootstrap(&params())["static_resources"]["listeners"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let mut p = params();
        p.stats_address = Some("127.0.0.1:19001".parse().unwrap());
        let b = bootstrap(&p);
        let listener = &b["static_resources"]["listeners"][0];
        assert_eq!(listener["address"]["socket_address"]["port_value"], 19001);
        let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
        let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
            .as_array()
            .unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0]["match"]["path"], "/stats/prometheus");
        assert_eq!(routes[0]["route"]["cluster"], "legate_admin");
        let admin = &b["static_resources"]["clusters"][1];
        assert_eq!(admin["name"], "legate_admin");
        assert_eq!(
            admin["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
            socket_address(p.admin_address)
        );
        p.stats_address = Some("0.0.0.0:19001".parse().unwrap());
        assert!(matches!(
            p.check(),
            Err(BootstrapError::StatsNotLoopback(_))
        ));
    }

    #[test]
    fn state_of_the_world_is_a_parameter() {
        let mut p = params();
        p.ads_api = AdsApi::Grpc;
        assert_eq!(
            bootstrap(&p)["dynamic_resources"]["ads_config"]["api_type"],
            "GRPC"
        );
    }

    #[test]
    fn admin_must_be_loopback() {
        assert_eq!(params().check(), Ok(()));
        let mut p = params();
        p.admin_address = "0.0.0.0:19000".parse().unwrap();
        assert_eq!(
            p.check(),
            Err(BootstrapError::AdminNotLoopback(p.admin_address))
        );
        let mut p = params();
        p.admin_address = "[::1]:19000".parse().unwrap();
        assert_eq!(p.check(), Ok(()));
        assert_eq!(
            bootstrap(&p)["admin"]["address"]["socket_address"]["address"],
            "::1"
        );
        let mut p = params();
        p.node_id = " ".into();
        assert_eq!(p.check(), Err(BootstrapError::EmptyNodeId));
    }

    #[test]
    fn yaml_reads_back_as_the_same_value() {
        let b = bootstrap(&params());
        let yaml = render_yaml(&b);
        let back: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, b);
    }

    /// The real Envoy accepts the bootstrap, in both ADS modes.
    #[test]
    fn envoy_validates_the_bootstrap() {
        let envoy =
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/bin/envoy"));
        assert!(
            envoy.exists(),
            "{} is missing: run `make envoy`",
            envoy.display()
        );
        for api in [AdsApi::DeltaGrpc, AdsApi::Grpc] {
            let mut p = params();
            p.ads_api = api;
            p.stats_address = Some("127.0.0.1:19001".parse().unwrap());
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("bootstrap.yaml");
            std::fs::write(&file, render_yaml(&bootstrap(&p))).unwrap();
            let out = std::process::Command::new(envoy)
                .args(["--mode", "validate", "--log-level", "warn", "-c"])
                .arg(&file)
                .output()
                .expect("run envoy");
            assert!(
                out.status.success(),
                "envoy --mode validate rejected the bootstrap ({api:?}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
