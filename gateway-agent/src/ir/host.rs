//! Hosts, Listeners and what binds them (Emissary §2.4–2.5): which route groups a Host admits
//! (the strict association table), which Hosts a Listener serves, and the secure/insecure
//! variants of every route.
//!
//! One deliberate difference: a `mappingSelector` (and a Listener's `hostBinding.selector`)
//! honours `matchExpressions` as Kubernetes defines them; Emissary silently ignores them (#4175).

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use legate_crds::{
    ObjectRef, Resource,
    host::{InsecureAction, MappingNamespacesFrom},
    listener::{ListenerProtocol, NamespaceFrom, ProtocolStackElement, SecurityModel},
};

use super::{
    Reason, Rejection, envoy_rules,
    mapping::{PathMatch, Route, RouteAction},
};

/// A Host as the IR uses it.
#[derive(Clone, Debug, PartialEq)]
pub struct Host {
    pub source: ObjectRef,
    pub namespace: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub mapping_selector: Option<LabelSelector>,
    pub insecure: InsecureAction,
    /// `mappingNamespaces.from: Same`: only Mappings of its own namespace attach.
    pub own_namespace_only: bool,
    /// Emissary's `default-host`, made when there is no Host: every Listener binds it.
    pub synthesized: bool,
}

/// An HTTP Listener before Hosts are bound to it.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerSpec {
    pub source: ObjectRef,
    pub namespace: String,
    pub port: u16,
    pub security_model: SecurityModel,
    pub stats_prefix: String,
    pub l7_depth: u32,
    pub host_namespaces: NamespaceFrom,
    pub host_selector: Option<LabelSelector>,
    /// The protocol stack has TLS (`HTTPS`, `HTTPSPROXY`): TLS Hosts get SNI chains here.
    pub tls: bool,
    /// The protocol stack has PROXY (`HTTPPROXY`, `HTTPSPROXY`): each connection starts with
    /// the PROXY protocol header of the load balancer in front.
    pub proxy_protocol: bool,
    /// `http2MaxConcurrentStreams`; `None`: Envoy's default.
    pub http2_max_concurrent_streams: Option<u32>,
}

/// The Hosts, or Emissary's synthesized `default-host` (`*`, insecure action Route) when
/// there are none. A hostname already served by an earlier Host is rejected. A Host without a
/// namespace (a directory's) is in `own_namespace`, the agent's, as Emissary places it.
pub fn hosts(
    resources: &[&Resource],
    own_namespace: &str,
    rejections: &mut Vec<Rejection>,
) -> Vec<Host> {
    let mut hosts: Vec<Host> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Host(h) => Some(Host {
                source: r.object_ref(),
                namespace: h
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| own_namespace.to_owned()),
                // Host names compare case-insensitively.
                hostname: h
                    .spec
                    .hostname
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("*")
                    .to_ascii_lowercase(),
                labels: h.metadata.labels.clone().unwrap_or_default(),
                mapping_selector: h
                    .spec
                    .mapping_selector
                    .clone()
                    .or_else(|| h.spec.selector.clone()),
                insecure: h
                    .spec
                    .request_policy
                    .as_ref()
                    .and_then(|p| p.insecure.as_ref())
                    .and_then(|i| i.action)
                    .unwrap_or(InsecureAction::Redirect),
                own_namespace_only: h.spec.mapping_namespaces.as_ref().and_then(|m| m.from)
                    == Some(MappingNamespacesFrom::Same),
                synthesized: false,
            }),
            _ => None,
        })
        .collect();
    if hosts.is_empty() {
        return vec![Host {
            source: ObjectRef {
                kind: "Host".into(),
                namespace: None,
                name: "default-host".into(),
            },
            namespace: String::new(),
            hostname: "*".into(),
            labels: BTreeMap::new(),
            mapping_selector: None,
            insecure: InsecureAction::Route,
            own_namespace_only: false,
            synthesized: true,
        }];
    }
    // The hostname is a virtual host's domain: Envoy's `HTTP_HEADER_VALUE` rule.
    hosts.retain(
        |h| match envoy_rules::header_value("hostname", &h.hostname) {
            Ok(()) => true,
            Err(e) => {
                rejections.push(Rejection::new(
                    h.source.clone(),
                    Reason::Invalid,
                    e.to_string(),
                ));
                false
            }
        },
    );
    hosts.sort_by(|a, b| a.source.cmp(&b.source));
    let mut seen: BTreeMap<String, ObjectRef> = BTreeMap::new();
    hosts.retain(|h| match seen.get(&h.hostname) {
        Some(first) => {
            rejections.push(Rejection::new(
                h.source.clone(),
                Reason::Conflict,
                format!("hostname {:?} is already served by {first}", h.hostname),
            ));
            false
        }
        None => {
            seen.insert(h.hostname.clone(), h.source.clone());
            true
        }
    });
    hosts.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    hosts
}

/// The HTTP Listeners, one per port (the first by namespace/name wins a port).
/// A Listener without a namespace is in `own_namespace`, as a Host is ([`hosts`]).
pub fn listeners(
    resources: &[&Resource],
    own_namespace: &str,
    rejections: &mut Vec<Rejection>,
) -> Vec<ListenerSpec> {
    let mut out: Vec<ListenerSpec> = Vec::new();
    let mut sorted: Vec<&&Resource> = resources
        .iter()
        .filter(|r| matches!(r, Resource::Listener(_)))
        .collect();
    sorted.sort_by_key(|r| r.object_ref());
    for r in sorted {
        let Resource::Listener(l) = r else { continue };
        let source = r.object_ref();
        let reject =
            |reason: Reason, message: String| Rejection::new(source.clone(), reason, message);
        let (http, tls, proxy_protocol) = match (&l.spec.protocol_stack, l.spec.protocol) {
            (Some(stack), _) => (
                stack.contains(&ProtocolStackElement::Http),
                stack.contains(&ProtocolStackElement::Tls),
                stack.contains(&ProtocolStackElement::Proxy),
            ),
            (None, Some(p)) => (
                matches!(
                    p,
                    ListenerProtocol::Http
                        | ListenerProtocol::Https
                        | ListenerProtocol::HttpProxy
                        | ListenerProtocol::HttpsProxy
                ),
                matches!(p, ListenerProtocol::Https | ListenerProtocol::HttpsProxy),
                matches!(
                    p,
                    ListenerProtocol::HttpProxy | ListenerProtocol::HttpsProxy
                ),
            ),
            (None, None) => (false, false, false),
        };
        if !http {
            if super::tcp_mapping::is_tcp_listener(&l.spec) {
                continue;
            }
            rejections.push(reject(Reason::NotSupported, "this protocol stack is not served: a Listener carries HTTP, or is TCP or TLS for TCPMappings".into()));
            continue;
        }
        let from = l
            .spec
            .host_binding
            .namespace
            .from
            .unwrap_or(NamespaceFrom::OwnNamespace);
        if from == NamespaceFrom::Selector {
            rejections.push(reject(Reason::NotSupported, "hostBinding.namespace.from: SELECTOR is not supported; use ALL with hostBinding.selector".into()));
            continue;
        }
        // `Port` is bounded to 1..=65535 by its schema and its loader.
        let stats_prefix = l.spec.stats_prefix.as_deref().unwrap_or("ingress_http");
        if let Err(e) = envoy_rules::stat_prefix("statsPrefix", stats_prefix) {
            rejections.push(reject(Reason::Invalid, e.to_string()));
            continue;
        }
        let port = u16::try_from(l.spec.port.get()).unwrap_or_default();
        if let Some(first) = out.iter().find(|o| o.port == port) {
            rejections.push(reject(
                Reason::Conflict,
                format!("port {port} is already used by {}", first.source),
            ));
            continue;
        }
        out.push(ListenerSpec {
            source: source.clone(),
            namespace: l
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| own_namespace.to_owned()),
            port,
            security_model: l.spec.security_model,
            stats_prefix: stats_prefix.to_owned(),
            l7_depth: l
                .spec
                .l7_depth
                .map_or(0, |d| u32::try_from(d.get()).unwrap_or(u32::MAX)),
            host_namespaces: from,
            host_selector: l.spec.host_binding.selector.clone(),
            tls,
            proxy_protocol,
            // Bounded to 1..=i32::MAX by its schema.
            http2_max_concurrent_streams: l
                .spec
                .http2_max_concurrent_streams
                .and_then(|n| u32::try_from(n.get()).ok()),
        });
    }
    out.sort_by_key(|l| l.port);
    out
}

pub(super) fn why_unreachable(
    r: &Route,
    listeners: &[ListenerSpec],
    hosts: &[Host],
) -> (Reason, String) {
    if listeners.is_empty() {
        return (
            Reason::NoListener,
            "no Listener: define an HTTP Listener for Mappings to be served".into(),
        );
    }
    if let Some(h) = hosts
        .iter()
        .find(|h| h.own_namespace_only && associates_by_rule(h, r))
    {
        return (
            Reason::NotAllowedByHost,
            format!(
                "{} admits Mappings of its own namespace only (mappingNamespaces.from: Same)",
                h.source
            ),
        );
    }
    let message = match &r.hostname {
        Some(h) => {
            let names: Vec<&str> = hosts.iter().map(|h| h.hostname.as_str()).collect();
            format!(
                "no Host admits hostname {h:?} (Hosts: {})",
                names.join(", ")
            )
        }
        None => "no hostname, and no Host's mappingSelector selects it".into(),
    };
    (Reason::NoMatchingHost, message)
}

/// A Listener's `hostBinding`: namespace (SELF or ALL) and selector must both admit the Host.
pub(super) fn binds(l: &ListenerSpec, h: &Host) -> bool {
    let synthesized = h.synthesized;
    let namespace_ok =
        synthesized || l.host_namespaces == NamespaceFrom::All || h.namespace == l.namespace;
    namespace_ok
        && l.host_selector
            .as_ref()
            .is_none_or(|s| synthesized || selects(s, &h.labels))
}

/// Emissary's strict association table (§2.4), and Legate's `mappingNamespaces`.
pub(super) fn associates(h: &Host, r: &Route) -> bool {
    if h.own_namespace_only && r.source.namespace.as_deref() != Some(h.namespace.as_str()) {
        return false;
    }
    associates_by_rule(h, r)
}

/// Emissary's strict association table alone.
fn associates_by_rule(h: &Host, r: &Route) -> bool {
    let by_name = r.host_regex
        || r.hostname
            .as_deref()
            .is_some_and(|n| hostglob_matches(&h.hostname, n));
    match (&h.mapping_selector, r.hostname.is_some() || r.host_regex) {
        (Some(s), true) => by_name && selects(s, &r.labels),
        (Some(s), false) => selects(s, &r.labels),
        (None, true) => by_name,
        (None, false) => false,
    }
}

/// A route as a Listener serves it for a Host, where that differs from the route itself. A
/// variant is a tag, not a copy: the Envoy encoding derives it from the route's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Matches only requests that came over HTTPS (`X-Forwarded-Proto: https`).
    Secure,
    /// Redirects an insecure request to HTTPS (301, same host and path).
    Redirect,
}

/// A route in a virtual host: the compiled route (shared with its group) and how it is served.
#[derive(Clone, Debug, PartialEq)]
pub struct ServedRoute {
    pub route: Arc<Route>,
    /// `None`: as itself.
    pub variant: Option<Variant>,
}

impl ServedRoute {
    /// Whether it forwards to the route's clusters (a redirect does not).
    pub fn forwards(&self) -> bool {
        forwards(&self.route, self.variant)
    }
}

fn forwards(r: &Route, variant: Option<Variant>) -> bool {
    variant != Some(Variant::Redirect) && matches!(r.action, RouteAction::Forward(_))
}

/// The route as this Listener serves it for this Host: secure, then insecure; the inner `None`
/// is the route itself.
///
/// Emissary serves every route twice on an XFP Listener (an `X-Forwarded-Proto: https` copy,
/// then the insecure one). Where the insecure route is the route itself, the copy routes exactly
/// as the route that follows it does and only doubles what Envoy scans: it is left out.
fn serve(
    model: SecurityModel,
    insecure: InsecureAction,
    r: &Route,
) -> [Option<Option<Variant>>; 2] {
    let acme = matches!(&r.path, PathMatch::Prefix(p) if p == "/.well-known/acme-challenge/");
    let insecure = match (model, insecure, acme) {
        (SecurityModel::Secure, _, _) => None,
        (_, InsecureAction::Route, _) | (_, _, true) => Some(None),
        (_, InsecureAction::Reject, false) => None, // no route: the client gets a 404, as in Emissary
        (_, InsecureAction::Redirect, false) => Some(Some(Variant::Redirect)),
    };
    let secure = match model {
        SecurityModel::Secure => Some(None),
        SecurityModel::Xfp if insecure == Some(None) => None,
        SecurityModel::Xfp => Some(Some(Variant::Secure)),
        SecurityModel::Insecure => None,
    };
    [secure, insecure]
}

/// [`serve`]'s routes: secure, then insecure.
pub(super) fn variants(
    model: SecurityModel,
    insecure: InsecureAction,
    r: &Arc<Route>,
) -> impl Iterator<Item = ServedRoute> {
    serve(model, insecure, r)
        .into_iter()
        .flatten()
        .map(|variant| ServedRoute {
            route: r.clone(),
            variant,
        })
}

/// How far a route gets for a Host on a Listener (ordered: the most a group gets anywhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reach {
    /// Into no virtual host.
    Nowhere,
    /// Only as a redirect to HTTPS: its cluster is not used.
    RedirectsOnly,
    /// Forwarding to its clusters.
    Forwards,
}

pub(super) fn reach(model: SecurityModel, insecure: InsecureAction, r: &Route) -> Reach {
    serve(model, insecure, r)
        .into_iter()
        .flatten()
        .map(|variant| {
            if forwards(r, variant) {
                Reach::Forwards
            } else {
                Reach::RedirectsOnly
            }
        })
        .max()
        .unwrap_or(Reach::Nowhere)
}

/// Whether some hostname could match both globs (Emissary's `hostglob_matches`).
pub fn hostglob_matches(a: &str, b: &str) -> bool {
    if a == "*" || b == "*" || a == b {
        return true;
    }
    if a.starts_with('.') || b.starts_with('.') {
        return false;
    }
    let both_ends = |g: &str| g.len() > 1 && g.starts_with('*') && g.ends_with('*');
    if both_ends(a) || both_ends(b) {
        return false; // only equal to itself, handled above
    }
    match (
        a.strip_prefix('*'),
        a.strip_suffix('*'),
        b.strip_prefix('*'),
        b.strip_suffix('*'),
    ) {
        (Some(sa), _, Some(sb), _) => sa.ends_with(sb) || sb.ends_with(sa),
        (_, Some(pa), _, Some(pb)) => pa.starts_with(pb) || pb.starts_with(pa),
        (Some(_), _, _, Some(_)) | (_, Some(_), Some(_), _) => true, // *.x and y.* overlap on y.x
        (Some(sa), _, None, None) => b.ends_with(sa),
        (None, None, Some(sb), _) => a.ends_with(sb),
        (_, Some(pa), None, None) => b.starts_with(pa),
        (None, None, _, Some(pb)) => a.starts_with(pb),
        (None, None, None, None) => false,
    }
}

/// Kubernetes label-selector semantics: every `matchLabels` pair and every expression.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let pairs = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match (e.operator.as_str(), labels.get(&e.key)) {
            ("In", Some(v)) => values.contains(v),
            ("In", None) => false,
            ("NotIn", v) => v.is_none_or(|v| !values.contains(v)),
            ("Exists", v) => v.is_some(),
            ("DoesNotExist", v) => v.is_none(),
            _ => false,
        }
    });
    pairs && expressions
}

#[cfg(test)]
mod tests {
    use super::hostglob_matches;

    #[test]
    fn hostglobs_match_when_some_name_matches_both() {
        for (a, b) in [
            ("*", "foo.com"),
            ("foo.com", "foo.com"),
            ("*.example.com", "api.example.com"),
            ("*.example.com", "*.com"),
            ("api.*", "api.example.com"),
            ("*.com", "api.*"),
        ] {
            assert!(hostglob_matches(a, b), "{a} ~ {b}");
            assert!(hostglob_matches(b, a), "{b} ~ {a}");
        }
        for (a, b) in [
            ("foo.com", "bar.com"),
            ("*.example.com", "example.org"),
            ("api.*", "www.example.com"),
            (".example.com", "a.example.com"),
            ("*foo*", "afoob"),
            ("quote.local:8500", "quote.local"),
        ] {
            assert!(!hostglob_matches(a, b), "{a} !~ {b}");
        }
    }
}
