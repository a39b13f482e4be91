//! IR → Envoy resources (envoy-types messages), by pure functions.
//!
//! Names never come from a position in a list, only from what a resource is: a listener is
//! named by its port and its route configuration after the listener, so a change to the routes
//! replaces the route configuration in place and Envoy never routes through a missing name
//! (Emissary's index-based names cause brief 404s: EMISSARY.md §6 item 6).

mod cluster;
mod listener;
mod route;

use envoy_types::pb::{
    envoy::config::{cluster::v3::Cluster, listener::v3::Listener, route::v3::RouteConfiguration},
    google::protobuf::{BoolValue, Duration as PbDuration, UInt32Value},
};

use crate::ir::Ir;

/// Every Envoy resource one IR becomes, in the order Envoy needs them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnvoyConfig {
    pub clusters: Vec<Cluster>,
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
}

/// Translates the IR.
pub fn translate(ir: &Ir) -> EnvoyConfig {
    EnvoyConfig {
        clusters: ir.clusters.values().map(cluster::cluster).collect(),
        listeners: ir.listeners.iter().map(listener::listener).collect(),
        routes: ir
            .listeners
            .iter()
            .map(route::route_configuration)
            .collect(),
    }
}

/// The route configuration a listener loads over RDS.
pub fn route_config_name(listener_name: &str) -> String {
    format!("{listener_name}-routes")
}

fn duration(d: std::time::Duration) -> PbDuration {
    PbDuration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn bool_value(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

fn u32_value(value: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value })
}
