//! The resources a measurement serves, written as a real directory of resources is (a Listener,
//! a file per Host, a file per Mapping), and what the IR says Envoy does with them: the first
//! and the last route of a virtual host in Envoy's evaluation order.

use std::{fmt, path::Path};

use legate_agent::ir::{self, Ir, PathMatch, RouteAction, ServedRoute, Settings, Variant};

/// The Listener's `securityModel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Every route twice: a copy for `X-Forwarded-Proto: https` first, then the route itself.
    Xfp,
    Insecure,
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Xfp => "XFP",
            Self::Insecure => "INSECURE",
        })
    }
}

/// `mappings` Mappings spread round-robin over `hosts` Hosts on one Listener, sending to the
/// upstream's `services` ports round-robin.
#[derive(Clone, Debug)]
pub struct Fleet {
    pub mappings: usize,
    pub hosts: usize,
    pub model: Model,
    pub listener_port: u16,
    pub services: Vec<u16>,
}

pub fn hostname(host: usize) -> String {
    format!("host-{host}.example.com")
}

pub fn mapping_file(mapping: usize) -> String {
    format!("mapping-{mapping:05}.yaml")
}

pub fn mapping_name(mapping: usize) -> String {
    format!("route-{mapping:05}")
}

/// The response header a changed Mapping adds: the behaviour a change is recognised by.
pub const CHANGE_HEADER: &str = "x-bench-change";

/// What change `n` sets in a Mapping's spec: [`CHANGE_HEADER`] with the value `n`.
pub fn changed(n: usize) -> serde_json::Value {
    serde_json::json!({ "add_response_headers": { CHANGE_HEADER: n.to_string() } })
}

impl Fleet {
    /// Writes every resource into `dir`, one per file.
    pub fn write(&self, dir: &Path) {
        write_file(dir, "listener.yaml", &self.listener());
        for h in 0..self.hosts {
            write_file(dir, &format!("host-{h}.yaml"), &host(h));
        }
        for m in 0..self.mappings {
            write_file(dir, &mapping_file(m), &self.mapping(m, None));
        }
    }

    fn listener(&self) -> String {
        format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Listener\n\
             metadata: {{name: http, namespace: default}}\n\
             spec: {{port: {}, protocol: HTTP, securityModel: {}, hostBinding: {{namespace: {{from: ALL}}}}}}\n",
            self.listener_port, self.model
        )
    }

    /// Mapping `m`, with [`changed`]`(n)` in its spec for a `change`.
    pub fn mapping(&self, m: usize, change: Option<usize>) -> String {
        let service = self.services[m % self.services.len()];
        let change = change.map_or_else(String::new, |n| {
            // JSON is YAML: the change's fields as a flow mapping's entries.
            let fields = changed(n).to_string();
            format!(", {}", &fields[1..fields.len() - 1])
        });
        format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
             metadata: {{name: {}, namespace: default}}\n\
             spec: {{hostname: {}, prefix: /svc-{m:05}/, service: \"127.0.0.1:{service}\"{change}}}\n",
            mapping_name(m),
            hostname(m % self.hosts)
        )
    }

    /// The IR the agent builds from `dir` (as `legate-agent run --config-dir` with its default
    /// settings), and the routes to measure in it.
    pub fn plan(&self, dir: &Path) -> Plan {
        let load = legate_crds::loader::load_dir(dir).expect("the fleet's directory loads");
        assert!(
            load.loaded.errors.is_empty() && load.file_errors.is_empty(),
            "the fleet does not load: {:?} {:?}",
            load.loaded.errors.first(),
            load.file_errors.first()
        );
        let ir = ir::build(&load.loaded.resources, &Settings::default());
        assert!(ir.rejections.is_empty(), "{:?}", ir.rejections.first());
        let host = hostname(0);
        let listener = ir.listeners.first().expect("the Listener is in the IR");
        let vhost = listener
            .virtual_hosts
            .iter()
            .find(|v| v.domains.contains(&host))
            .unwrap_or_else(|| panic!("no virtual host for {host}"));
        // A plain-HTTP request skips the secure copies (they need `X-Forwarded-Proto: https`):
        // the routes it can be served by are the others.
        let reachable: Vec<(usize, &ServedRoute)> = vhost
            .routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.variant != Some(Variant::Secure) && r.forwards())
            .collect();
        let route = |&(index, served): &(usize, &ServedRoute)| RouteRef::new(index, served);
        Plan {
            first: route(reachable.first().expect("the virtual host has routes")),
            last: route(reachable.last().expect("the virtual host has routes")),
            routes_in_vhost: vhost.routes.len(),
            host,
            ir,
        }
    }
}

fn host(h: usize) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Host\n\
         metadata: {{name: host-{h}, namespace: default}}\n\
         spec: {{hostname: {}, requestPolicy: {{insecure: {{action: Route}}}}}}\n",
        hostname(h)
    )
}

/// Writes `name` in `dir` atomically (a hidden temporary file, which the agent does not read,
/// renamed into place), so the agent's watcher never sees half a file.
pub fn write_file(dir: &Path, name: &str, content: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    std::fs::rename(&tmp, dir.join(name)).unwrap_or_else(|e| panic!("rename to {name}: {e}"));
}

/// What the measurement needs to know of a route of the virtual host.
#[derive(Clone, Debug)]
pub struct RouteRef {
    /// 1-based position in Envoy's evaluation order.
    pub position: usize,
    /// Its Mapping's number (`route-NNNNN`).
    pub mapping: usize,
    /// A request path it matches.
    pub path: String,
}

impl RouteRef {
    fn new(index: usize, served: &ServedRoute) -> Self {
        let route = &served.route;
        let PathMatch::Prefix(prefix) = &route.path else {
            panic!("{}: the fleet's routes are prefixes", route.source.name);
        };
        let mapping = route
            .source
            .name
            .strip_prefix("route-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{} is not a fleet Mapping", route.source.name));
        Self {
            position: index + 1,
            mapping,
            path: format!("{prefix}bench"),
        }
    }
}

/// The IR of a fleet and the routes measured in it.
pub struct Plan {
    pub ir: Ir,
    /// The Host header of the measured virtual host.
    pub host: String,
    pub first: RouteRef,
    pub last: RouteRef,
    pub routes_in_vhost: usize,
}

/// The forward action of a served route, if it forwards.
pub fn forward(served: &ServedRoute) -> Option<&ir::mapping::Forward> {
    match (&served.route.action, served.variant) {
        (RouteAction::Forward(f), None | Some(Variant::Secure)) => Some(f),
        _ => None,
    }
}
