//! IR → Envoy resources (envoy-types messages), by pure functions.
//!
//! Names never come from a position in a list, only from what a resource is: a listener is
//! named by its port and its route configuration after the listener, so a change to the routes
//! replaces the route configuration in place and Envoy never routes through a missing name
//! (Emissary's index-based names cause brief 404s: EMISSARY.md §6 item 6).

mod access_log;
mod auth;
mod client_certs;
mod cluster;
mod cluster_tuning;
mod compression;
mod cors;
mod grpc;
mod http_options;
mod ip_filter;
mod listener;
mod rate_limit;
mod route;
mod route_tree;
mod tcp;
mod tls;
mod tracing;
mod upstream_policy;
mod upstream_tls;

pub use tls::SdsSecret;

use std::sync::Arc;

use envoy_types::pb::{
    envoy::config::{
        cluster::v3::Cluster, endpoint::v3::ClusterLoadAssignment, listener::v3::Listener,
        route::v3::RouteConfiguration,
    },
    google::protobuf::{Any, BoolValue, Duration as PbDuration, UInt32Value},
};

use crate::{
    ir::{Cluster as IrCluster, ClusterEndpoints, Ir, Listener as IrListener, Route, VirtualHost},
    memo::{ByAddress, ByAddressMemo},
    xds::{Res, ResourceSet, type_url},
};

/// Every Envoy resource one IR becomes, as messages, in the order Envoy needs them: what
/// [`Encoder::encode`] serves, in a form to read (golden tests print it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnvoyConfig {
    pub clusters: Vec<Cluster>,
    /// The endpoints of the EDS clusters, one assignment each (empty when none is ready).
    pub endpoints: Vec<ClusterLoadAssignment>,
    /// Before the listeners that use them.
    pub secrets: Vec<SdsSecret>,
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
}

/// Translates the IR.
pub fn translate(ir: &Ir) -> EnvoyConfig {
    EnvoyConfig {
        clusters: ir.clusters.values().map(|c| cluster::cluster(c)).collect(),
        endpoints: ir
            .endpoints
            .iter()
            .map(|(name, e)| cluster::load_assignment(name, e))
            .collect(),
        secrets: ir
            .certificates
            .iter()
            .map(|(name, c)| tls::secret(name, c))
            .chain(
                ir.validation_contexts
                    .iter()
                    .map(|(name, v)| client_certs::secret(name, v)),
            )
            .chain(upstream_tls::secrets(&ir.upstream_tls))
            .collect(),
        listeners: ir
            .listeners
            .iter()
            .map(listener::listener)
            .chain(ir.tcp_listeners.iter().map(tcp::listener))
            .collect(),
        routes: ir
            .listeners
            .iter()
            .flat_map(route_tables)
            .map(|(chain, vhosts)| route::route_configuration(chain, vhosts))
            .collect(),
    }
}

/// The route tables of `ir`, each virtual host a list of its routes with all their conditions:
/// what the matcher trees [`translate`] writes stand for (`tests/route_tree.rs` holds the real
/// Envoy to it).
#[doc(hidden)]
pub fn listed_route_tables(ir: &Ir) -> Vec<RouteConfiguration> {
    ir.listeners
        .iter()
        .flat_map(route_tables)
        .map(|(chain, vhosts)| RouteConfiguration {
            name: route_config_name(chain),
            virtual_hosts: vhosts
                .iter()
                .map(|v| route::listed_virtual_host(v))
                .collect(),
            ..Default::default()
        })
        .collect()
}

/// The Envoy objects made from one resource (`source`): its routes as each virtual host serves
/// them, and the clusters they send to; for the diagnostics page's view of a resource.
pub fn made_from(
    ir: &Ir,
    source: &legate_crds::ObjectRef,
) -> (
    Vec<envoy_types::pb::envoy::config::route::v3::Route>,
    Vec<Cluster>,
) {
    let mut routes = vec![];
    let mut clusters = std::collections::BTreeSet::new();
    for served in ir.served_routes() {
        if served.route.source == *source {
            routes.push(route::served_route(served));
            if served.forwards() {
                clusters.extend(served.route.clusters());
            }
        }
    }
    let clusters = clusters
        .into_iter()
        .filter_map(|name| ir.clusters.get(name))
        .map(|c| cluster::cluster(c))
        .collect();
    (routes, clusters)
}

/// Translates IRs one after the other into the resources ADS serves, keeping what the next
/// translation can reuse: the encoding of every route, virtual host and cluster, by identity
/// (an IR built by [`crate::ir::Builder`] shares an unchanged route, virtual host or cluster
/// with the last one), so one changed route re-encodes its virtual host, not its table. The
/// result is the encoding of [`translate`]'s, with or without what was kept.
#[derive(Debug, Default)]
pub struct Encoder {
    routes: ByAddressMemo<ByAddress<Route>, Arc<route::EncodedRoute>>,
    virtual_hosts: ByAddressMemo<ByAddress<VirtualHost>, Part>,
    clusters: ByAddressMemo<ByAddress<IrCluster>, Arc<Res>>,
    endpoints: ByAddressMemo<ByAddress<ClusterEndpoints>, Arc<Res>>,
}

impl Encoder {
    pub fn encode(&mut self, ir: &Ir) -> ResourceSet {
        let mut set = ResourceSet::new();
        let clusters: Vec<(String, Arc<Res>)> = ir
            .clusters
            .iter()
            .map(|(name, c)| {
                let res = self.clusters.get_or_insert_with(ByAddress(c.clone()), || {
                    Arc::new(Res::encode(&cluster::cluster(c)))
                });
                (name.clone(), res)
            })
            .collect();
        set.extend_res(type_url::CLUSTER, clusters);
        let endpoints: Vec<(String, Arc<Res>)> = ir
            .endpoints
            .iter()
            .map(|(name, e)| {
                // The IR gives each cluster its own endpoints `Arc`: the address names the name too.
                let res = self.endpoints.get_or_insert_with(ByAddress(e.clone()), || {
                    Arc::new(Res::encode(&cluster::load_assignment(name, e)))
                });
                (name.clone(), res)
            })
            .collect();
        // Only with EDS clusters: a set without them stays the set it was (a type served empty
        // and a type absent are one and the same to ADS).
        if !endpoints.is_empty() {
            set.extend_res(type_url::ENDPOINT, endpoints);
        }
        for (name, c) in &ir.certificates {
            set.insert(name.clone(), &tls::secret(name, c).0);
        }
        for (name, v) in &ir.validation_contexts {
            set.insert(name.clone(), &client_certs::secret(name, v).0);
        }
        for s in upstream_tls::secrets(&ir.upstream_tls) {
            set.insert(s.0.name.clone(), &s.0);
        }
        for l in &ir.listeners {
            set.insert(l.name.clone(), &listener::listener(l));
            for (chain, virtual_hosts) in route_tables(l) {
                let parts: Vec<Part> = virtual_hosts.iter().map(|v| self.virtual_host(v)).collect();
                let name = route_config_name(chain);
                let routes =
                    route::encode_route_configuration(chain, parts.iter().map(|p| &p.bytes[..]));
                let version = Res::version_of_parts(&name, parts.iter().map(|p| &p.digest));
                set.insert_res(
                    name,
                    Arc::new(Res::with_version(
                        Any {
                            type_url: type_url::ROUTE.to_owned(),
                            value: routes,
                        },
                        version,
                    )),
                );
            }
        }
        for l in &ir.tcp_listeners {
            set.insert(l.name.clone(), &tcp::listener(l));
        }
        self.routes.finish();
        self.virtual_hosts.finish();
        self.clusters.finish();
        self.endpoints.finish();
        set
    }

    fn virtual_host(&mut self, v: &Arc<VirtualHost>) -> Part {
        let routes = &mut self.routes;
        self.virtual_hosts
            .get_or_insert_with(ByAddress(v.clone()), || {
                let bytes: Arc<[u8]> = route::encode_virtual_host(v, |r| {
                    routes.get_or_insert_with(ByAddress(r.clone()), || {
                        Arc::new(route::EncodedRoute::new(r))
                    })
                })
                .into();
                Part {
                    digest: Res::digest(&bytes),
                    bytes,
                }
            })
    }
}

/// A virtual host's encoding and its digest: a route table is versioned from its parts' digests,
/// so one changed virtual host costs the hash of its own bytes, not of the whole table.
#[derive(Clone, Debug)]
struct Part {
    bytes: Arc<[u8]>,
    digest: [u8; 32],
}

/// The route tables of a listener, by the chain that loads them: the cleartext chain (named as
/// the listener), then each TLS chain.
fn route_tables(l: &IrListener) -> impl Iterator<Item = (&str, &[Arc<VirtualHost>])> {
    let tls = l
        .tls_chains
        .iter()
        .map(|c| (c.name.as_str(), c.virtual_hosts.as_slice()));
    std::iter::once((l.name.as_str(), l.virtual_hosts.as_slice())).chain(tls)
}

/// The route configuration a chain loads over RDS.
pub fn route_config_name(listener_name: &str) -> String {
    format!("{listener_name}-routes")
}

/// The IR bounds every duration below Envoy's limit (`ir::envoy_rules::MAX_DURATION_SECS`);
/// saturating keeps an impossible one from panicking.
fn duration(d: std::time::Duration) -> PbDuration {
    PbDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Below 10^9.
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or_default(),
    }
}

fn bool_value(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

fn u32_value(value: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value })
}

/// An embedded message field: its key, its length, its bytes.
pub(super) fn length_delimited(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}
