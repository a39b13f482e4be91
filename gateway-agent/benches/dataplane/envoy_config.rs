//! Static Envoy bootstraps: the upstream (a `direct_response` on a few ports) and the fleet's
//! route table written without the agent, as a linear route list or as a matcher tree.

use std::collections::HashMap;

use legate_agent::ir::{Ir, PathMatch, ServedRoute, Variant, VirtualHost};
use serde_json::{Value, json};

use super::fleet::forward;

/// How a virtual host's routes are laid out for Envoy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteTable {
    /// `virtual_host.routes`: Envoy tries each in order.
    Linear,
    /// `virtual_host.matcher`: a `prefix_match_map` on `:path` whose entry for each prefix holds
    /// its route (or, with XFP's secure copy, its routes as a `RouteList`, in order).
    MatcherTree,
}

/// The upstream: every port answers 200 itself, as fast as Envoy answers anything.
pub fn upstream(ports: &[u16], admin_port: u16) -> Value {
    let direct = json!([{
        "match": {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": "ok"}}
    }]);
    let listeners: Vec<Value> = ports
        .iter()
        .map(|&port| {
            let vhost = json!({"name": "upstream", "domains": ["*"], "routes": direct});
            listener(&format!("upstream_{port}"), port, vec![vhost])
        })
        .collect();
    json!({
        "admin": admin(admin_port),
        "static_resources": {"listeners": listeners}
    })
}

/// The IR's only listener, its virtual hosts and clusters, as a static bootstrap.
pub fn gateway(ir: &Ir, table: RouteTable, admin_port: u16) -> Value {
    let listener_ir = ir.listeners.first().expect("the IR has the Listener");
    let vhosts = listener_ir
        .virtual_hosts
        .iter()
        .map(|v| virtual_host(v, table))
        .collect();
    let clusters: Vec<Value> = ir
        .clusters
        .values()
        .map(|c| {
            let address = json!({"socket_address": {"address": c.host, "port_value": c.port}});
            json!({
                "name": c.name,
                "type": "STATIC",
                "connect_timeout": "3s",
                "load_assignment": {
                    "cluster_name": c.name,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}]
                }
            })
        })
        .collect();
    json!({
        "admin": admin(admin_port),
        "static_resources": {
            "listeners": [listener("gateway", listener_ir.port, vhosts)],
            "clusters": clusters
        }
    })
}

fn admin(port: u16) -> Value {
    json!({"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}})
}

/// A plain HTTP listener on every address with the router and these virtual hosts.
fn listener(name: &str, port: u16, virtual_hosts: Vec<Value>) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "http_filters": [{
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                }],
                "route_config": {"name": name, "virtual_hosts": virtual_hosts}
            }
        }]}]
    })
}

fn virtual_host(vhost: &VirtualHost, table: RouteTable) -> Value {
    let routes = vhost
        .routes
        .iter()
        .filter_map(|r| Some((prefix(r)?, route(r)?)));
    match table {
        RouteTable::Linear => json!({
            "name": vhost.name,
            "domains": vhost.domains,
            "routes": routes.map(|(_, r)| r).collect::<Vec<_>>()
        }),
        RouteTable::MatcherTree => json!({
            "name": vhost.name,
            "domains": vhost.domains,
            "matcher": matcher(routes)
        }),
    }
}

fn prefix(served: &ServedRoute) -> Option<&str> {
    match &served.route.path {
        PathMatch::Prefix(p) => Some(p),
        _ => None,
    }
}

/// The route as Envoy needs it to match and forward like the agent's: the prefix, the secure
/// copy's `X-Forwarded-Proto` condition, the cluster, the prefix rewrite and the timeout.
fn route(served: &ServedRoute) -> Option<Value> {
    let forward = forward(served)?;
    let mut matches = json!({"prefix": prefix(served)?});
    if served.variant == Some(Variant::Secure) {
        matches["headers"] =
            json!([{"name": "x-forwarded-proto", "string_match": {"exact": "https"}}]);
    }
    let mut action = json!({
        "cluster": forward.cluster,
        "timeout": format!("{}s", forward.timeout.as_secs_f64())
    });
    if let Some(rewrite) = &forward.prefix_rewrite {
        action["prefix_rewrite"] = json!(rewrite);
    }
    Some(json!({"match": matches, "route": action}))
}

/// The routes keyed by prefix, each prefix's routes in their order.
fn matcher<'a>(routes: impl Iterator<Item = (&'a str, Value)>) -> Value {
    let mut by_prefix: Vec<(&str, Vec<Value>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (prefix, route) in routes {
        let at = *index.entry(prefix).or_insert_with(|| {
            by_prefix.push((prefix, Vec::new()));
            by_prefix.len() - 1
        });
        by_prefix[at].1.push(route);
    }
    let map: serde_json::Map<String, Value> = by_prefix
        .into_iter()
        .map(|(prefix, mut routes)| {
            let typed_config = if routes.len() == 1 {
                let mut only = routes.remove(0);
                only["@type"] = json!("type.googleapis.com/envoy.config.route.v3.Route");
                only
            } else {
                json!({
                    "@type": "type.googleapis.com/envoy.config.route.v3.RouteList",
                    "routes": routes
                })
            };
            let action = json!({"action": {"name": "route", "typed_config": typed_config}});
            (prefix.to_owned(), action)
        })
        .collect();
    json!({
        "matcher_tree": {
            "input": {
                "name": "request-headers",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput",
                    "header_name": ":path"
                }
            },
            "prefix_match_map": {"map": map}
        }
    })
}
