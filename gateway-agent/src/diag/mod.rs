//! The diagnostics page (`/diag/` on the agent's metrics port, JSON with `?json=true`): what a
//! platform team reads when a route misbehaves, as Emissary's `/ambassador/v0/diag/` is. The
//! gateway and the configuration Envoy acknowledged; every resource with its verdict (the one
//! status carries); the route table in the order Envoy evaluates it, per Listener and Host;
//! each upstream cluster with its endpoints and their health as Envoy sees it.
//!
//! [`page`] is pure (the build, what Envoy said, the health read from Envoy in; the page's data
//! out), [`html`] renders it, [`serve`] is the HTTP edge.

pub mod health;
pub mod html;
pub mod serve;

use std::collections::BTreeMap;

use legate_crds::ObjectRef;
use serde::Serialize;

use crate::{
    ir::{
        self, Ir, VirtualHost,
        host::Variant,
        mapping::{HeaderMatch, PathMatch, Route, RouteAction, StringMatch},
    },
    source::SourceSnapshot,
    status::verdict::{self, Judgement, Programmed},
    xds::AckStatus,
};

/// Everything the page shows.
#[derive(Clone, Debug, Serialize)]
pub struct Page {
    pub gateway: Gateway,
    pub envoy: EnvoyState,
    pub summary: Summary,
    /// Every resource this gateway judges, errors first, then by kind, namespace and name.
    pub resources: Vec<ResourceRow>,
    /// Files or documents refused before they named a resource.
    pub unreadable: Vec<String>,
    pub listeners: Vec<ListenerView>,
    pub clusters: Vec<ClusterView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Gateway {
    /// `installation NAMESPACE/NAME` or `directory PATH`.
    pub source: String,
    pub ambassador_id: String,
    pub replica: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct EnvoyState {
    /// The configuration version Envoy acknowledged, if any.
    pub acknowledged: Option<String>,
    /// The version the agent publishes now; Envoy serves it once it is `acknowledged`.
    pub published: Option<String>,
    /// Envoys connected to the agent (one in a gateway pod).
    pub connected: usize,
    /// Envoy's last refusal, until a later configuration is acknowledged.
    pub refused: Option<String>,
    /// Whether the health of the endpoints below could be read from Envoy.
    pub health_read: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub resources: usize,
    pub errors: usize,
    pub routes: usize,
    pub clusters: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResourceRow {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub accepted: Condition,
    pub programmed: Condition,
    /// Rejected, not served, or refused by Envoy.
    pub error: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Condition {
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

impl From<&Judgement> for Condition {
    fn from(j: &Judgement) -> Self {
        Self {
            status: j.status,
            reason: j.reason.clone(),
            message: j.message.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ListenerView {
    pub name: String,
    pub port: u16,
    pub security_model: String,
    pub hosts: Vec<HostView>,
}

/// One virtual host: a Host's routes on one Listener (cleartext or one TLS chain).
#[derive(Clone, Debug, Serialize)]
pub struct HostView {
    pub name: String,
    pub domains: Vec<String>,
    /// The SNI names of its TLS chain; `None` for cleartext.
    pub tls: Option<Vec<String>>,
    /// In Envoy's evaluation order: the first that matches a request answers it.
    pub routes: Vec<RouteRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RouteRow {
    /// 1-based position in the virtual host.
    pub order: usize,
    /// The Mapping it came from.
    pub source: ResourceName,
    /// `https only` (the secure copy of an XFP Listener), `redirect to https`, or empty.
    pub variant: &'static str,
    /// `prefix /x/`, `exact /x`, `regex ^/x$`, with ` (case-insensitive)` when so.
    pub path: String,
    /// Header conditions (`:authority` and `:method` included), as `name=value`,
    /// `name~regex`, `name present`.
    pub headers: Vec<String>,
    pub query: Vec<String>,
    pub precedence: i32,
    /// Its share of its canary group (`weight 20%`, or `the rest`), when it is in one.
    pub canary: Option<String>,
    /// What a match does: the cluster it forwards to, or the redirect.
    pub action: String,
    pub rewrite: Option<String>,
    pub clusters: Vec<String>,
}

/// A resource, as the page links to it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ResourceName {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl From<&ObjectRef> for ResourceName {
    fn from(o: &ObjectRef) -> Self {
        Self {
            kind: o.kind.clone(),
            namespace: o.namespace.clone().unwrap_or_default(),
            name: o.name.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ClusterView {
    pub name: String,
    /// `host:port`, or the Kubernetes Service its endpoints come from.
    pub upstream: String,
    /// The Mappings that send to it.
    pub used_by: Vec<ResourceName>,
    pub endpoints: Vec<health::EndpointHealth>,
    /// Requests answered without a 5xx or reset, over all endpoints, as a percentage; `None`
    /// before any request.
    pub success_rate: Option<f64>,
    /// Emissary's colours: green from 90 %, yellow from 70 %, red below; grey with no requests.
    pub colour: &'static str,
}

/// What the page is built from.
pub struct Inputs<'a> {
    pub snapshot: &'a SourceSnapshot,
    pub ir: &'a Ir,
    pub published: Option<&'a str>,
    pub acks: &'a AckStatus,
    pub gateway: Gateway,
    /// Envoy's view of its clusters; `None` when it could not be read.
    pub health: Option<&'a health::Health>,
}

/// The page's data.
pub fn page(input: &Inputs<'_>) -> Page {
    let programmed = match (&input.acks.last_nack, input.published) {
        (Some(n), _) if Some(n.config_version.as_str()) == input.published => {
            Programmed::Refused(n.message.clone())
        }
        (_, Some(v)) if input.acks.acked_version.as_deref() == Some(v) => Programmed::Acked,
        _ => Programmed::Pending,
    };
    let verdicts = verdict::verdicts(
        input.snapshot,
        input.ir,
        &input.gateway.ambassador_id,
        &programmed,
    );
    let mut resources: Vec<ResourceRow> = verdicts
        .iter()
        .map(|(object, v)| ResourceRow {
            kind: object.kind.clone(),
            namespace: object.namespace.clone().unwrap_or_default(),
            name: object.name.clone(),
            accepted: (&v.accepted).into(),
            programmed: (&v.programmed).into(),
            error: !v.accepted.is_true() || v.programmed.status == "False",
        })
        .collect();
    // Errors first; within each, the verdicts' order (kind, namespace, name).
    resources.sort_by_key(|r| !r.error);
    let unreadable: Vec<String> = input
        .snapshot
        .rejected
        .iter()
        .filter(|r| r.object.is_none())
        .map(|r| r.to_string())
        .collect();

    let listeners: Vec<ListenerView> = input.ir.listeners.iter().map(listener).collect();
    let clusters = clusters(input.ir, input.health);
    let summary = Summary {
        resources: resources.len(),
        errors: resources.iter().filter(|r| r.error).count() + unreadable.len(),
        routes: listeners
            .iter()
            .flat_map(|l| &l.hosts)
            .map(|h| h.routes.len())
            .sum(),
        clusters: clusters.len(),
    };
    Page {
        gateway: input.gateway.clone(),
        envoy: EnvoyState {
            acknowledged: input.acks.acked_version.clone(),
            published: input.published.map(str::to_owned),
            connected: input.acks.connected,
            refused: input.acks.last_nack.as_ref().map(|n| {
                format!(
                    "configuration {} ({}): {}",
                    n.config_version, n.type_url, n.message
                )
            }),
            health_read: input.health.is_some(),
        },
        summary,
        resources,
        unreadable,
        listeners,
        clusters,
    }
}

fn listener(l: &ir::Listener) -> ListenerView {
    let cleartext = l.virtual_hosts.iter().map(|vh| host(vh, None));
    let tls = l.tls_chains.iter().flat_map(|chain| {
        chain
            .virtual_hosts
            .iter()
            .map(|vh| host(vh, Some(chain.server_names.clone())))
    });
    ListenerView {
        name: l.name.clone(),
        port: l.port,
        security_model: format!("{:?}", l.security_model).to_uppercase(),
        hosts: tls.chain(cleartext).collect(),
    }
}

fn host(vh: &VirtualHost, tls: Option<Vec<String>>) -> HostView {
    HostView {
        name: vh.name.clone(),
        domains: vh.domains.clone(),
        tls,
        routes: vh
            .routes
            .iter()
            .enumerate()
            .map(|(i, served)| route_row(i + 1, &served.route, served.variant))
            .collect(),
    }
}

fn route_row(order: usize, r: &Route, variant: Option<Variant>) -> RouteRow {
    let mut path = match &r.path {
        PathMatch::Prefix(p) => format!("prefix {p}"),
        PathMatch::Exact(p) => format!("exact {p}"),
        PathMatch::Regex(p) => format!("regex {p}"),
    };
    if !r.case_sensitive {
        path.push_str(" (case-insensitive)");
    }
    let redirect = variant == Some(Variant::Redirect);
    let (action, rewrite) = match (&r.action, redirect) {
        (_, true) => ("redirect to https (301)".to_owned(), None),
        (RouteAction::Forward(f), false) => {
            let rewrite = match (&f.prefix_rewrite, &f.regex_rewrite) {
                (_, Some((pattern, substitution))) => {
                    Some(format!("regex {pattern} → {substitution}"))
                }
                (Some(prefix), None) => Some(format!("prefix → {prefix}")),
                (None, None) => None,
            };
            (format!("forward to {}", f.cluster), rewrite)
        }
        (RouteAction::Redirect(d), false) => {
            let target = d.path.as_deref().or(d.prefix.as_deref()).unwrap_or("");
            (format!("redirect ({}) to {}{target}", d.code, d.host), None)
        }
    };
    RouteRow {
        order,
        source: (&r.source).into(),
        variant: match variant {
            None => "",
            Some(Variant::Secure) => "https only",
            Some(Variant::Redirect) => "redirect to https",
        },
        path,
        headers: r.headers.iter().map(condition).collect(),
        query: r.query.iter().map(condition).collect(),
        precedence: r.precedence,
        canary: r.fraction.map(|_| match r.weight {
            Some(w) => format!("weight {w}%"),
            None => "the rest".to_owned(),
        }),
        action,
        rewrite,
        clusters: if redirect {
            vec![]
        } else {
            r.clusters().map(str::to_owned).collect()
        },
    }
}

fn condition(h: &HeaderMatch) -> String {
    match &h.value {
        StringMatch::Exact(v) => format!("{}={v}", h.name),
        StringMatch::HostGlob(v) => format!("{}={v} (host glob)", h.name),
        StringMatch::Regex(v) => format!("{}~{v}", h.name),
        StringMatch::Present => format!("{} present", h.name),
    }
}

fn clusters(ir: &Ir, health: Option<&health::Health>) -> Vec<ClusterView> {
    let mut used_by: BTreeMap<&str, Vec<ResourceName>> = BTreeMap::new();
    for served in ir.served_routes() {
        for cluster in served.route.clusters() {
            let users = used_by.entry(cluster).or_default();
            let name = ResourceName::from(&served.route.source);
            if !users.contains(&name) {
                users.push(name);
            }
        }
    }
    ir.clusters
        .values()
        .map(|c| {
            let endpoints = health
                .and_then(|h| h.clusters.get(&c.name))
                .cloned()
                .unwrap_or_default();
            let (ok, total) = endpoints.iter().fold((0u64, 0u64), |(ok, total), e| {
                (
                    ok.saturating_add(e.requests.saturating_sub(e.errors)),
                    total.saturating_add(e.requests),
                )
            });
            let success_rate = (total > 0).then(|| 100.0 * ok as f64 / total as f64);
            let mut users = used_by.remove(c.name.as_str()).unwrap_or_default();
            users.sort();
            ClusterView {
                name: c.name.clone(),
                upstream: match &c.service {
                    Some(s) => format!("Service {}/{} (endpoints)", s.namespace, s.name),
                    None => format!("{}:{}", c.host, c.port),
                },
                used_by: users,
                endpoints,
                success_rate,
                colour: colour(success_rate),
            }
        })
        .collect()
}

/// One resource's view: its verdict, what it wrote, the routes and clusters made from it, and its
/// IR.
#[derive(Clone, Debug, Serialize)]
pub struct Detail {
    pub name: ResourceName,
    pub verdict: Option<ResourceRow>,
    /// The resource as the gateway read it (JSON); empty if it never became one (refused by
    /// the loader).
    pub resource: String,
    /// Each route made from it, with where it is: `Listener L, Host H`.
    pub routes: Vec<(String, RouteRow)>,
    pub clusters: Vec<ClusterView>,
    /// Its compiled routes as the IR holds them.
    pub ir: String,
    /// The Envoy routes and clusters made from it, as the agent sends them.
    pub envoy: String,
}

/// The view of `name`; `None` when the gateway knows no such resource.
pub fn detail(page: &Page, input: &Inputs<'_>, name: &ResourceName) -> Option<Detail> {
    let verdict = page
        .resources
        .iter()
        .find(|r| r.kind == name.kind && r.namespace == name.namespace && r.name == name.name)
        .cloned();
    let resource = input
        .snapshot
        .resources
        .iter()
        .find(|r| ResourceName::from(&r.object_ref()) == *name)
        .map(|r| serde_json::to_string_pretty(&r.to_json()).unwrap_or_default());
    if verdict.is_none() && resource.is_none() {
        return None;
    }
    let mut routes = vec![];
    let mut cluster_names = vec![];
    for l in &page.listeners {
        for h in &l.hosts {
            for r in h.routes.iter().filter(|r| r.source == *name) {
                routes.push((format!("Listener {}, Host {}", l.name, h.name), r.clone()));
                cluster_names.extend(r.clusters.iter().cloned());
            }
        }
    }
    let mut ir = String::new();
    let mut seen: Vec<*const Route> = vec![];
    let compiled = input
        .ir
        .served_routes()
        .filter(|served| ResourceName::from(&served.route.source) == *name);
    for served in compiled {
        let ptr = std::sync::Arc::as_ptr(&served.route);
        if !seen.contains(&ptr) {
            seen.push(ptr);
            ir.push_str(&format!("{:#?}\n", served.route));
        }
    }
    let object = ObjectRef {
        kind: name.kind.clone(),
        namespace: Some(name.namespace.clone()).filter(|ns| !ns.is_empty()),
        name: name.name.clone(),
    };
    let (envoy_routes, envoy_clusters) = crate::envoy::made_from(input.ir, &object);
    let envoy = format!("{envoy_routes:#?}\n{envoy_clusters:#?}\n");
    Some(Detail {
        name: name.clone(),
        envoy,
        verdict,
        resource: resource.unwrap_or_default(),
        routes,
        clusters: page
            .clusters
            .iter()
            .filter(|c| cluster_names.contains(&c.name))
            .cloned()
            .collect(),
        ir,
    })
}

/// Emissary's thresholds (`diagd`): 90 % and 70 %.
fn colour(success_rate: Option<f64>) -> &'static str {
    match success_rate {
        None => "grey",
        Some(r) if r >= 90.0 => "green",
        Some(r) if r >= 70.0 => "yellow",
        Some(_) => "red",
    }
}

#[cfg(test)]
mod tests;
