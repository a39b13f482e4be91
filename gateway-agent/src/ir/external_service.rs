//! The cluster of a service the gateway itself calls on a request's way: an AuthService's
//! `auth_service`, a RateLimitService's `service`. Resolved as a Mapping's `service` is
//! (`[scheme://]host[:port]`; a Kubernetes Service of the snapshot over EDS, else DNS; the
//! gateway Module's resolver), with the TLSContext its `tls` names, its `stats_name` and
//! `circuit_breakers`, as Emissary's `IRCluster` builds one for `IRAuth` and `IRRateLimit`.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use legate_crds::{ObjectRef, Resource, fields::CircuitBreaker};

use super::{
    ClusterEndpoints, DEFAULT_CONNECT_TIMEOUT, Reason, Refusal, Rejection, Settings,
    cluster_tuning::{self, Input},
    defaults::MappingDefaults,
    endpoints::ServiceIndex,
    resolver::{Resolve, Resolvers},
    service::{self, Cluster},
    upstream_policy::{self, ClusterPolicy},
    upstream_tls,
};

/// What a resource writes about the service it calls.
pub struct Target<'a> {
    /// The field that names it, for messages: `auth_service`, `service`.
    pub field: &'static str,
    pub text: &'a str,
    /// The resource's namespace: where unqualified names and its TLSContext are looked up.
    pub namespace: &'a str,
    /// Speak HTTP/2 (gRPC).
    pub http2: bool,
    /// `tls: <TLSContext name>`.
    pub tls: Option<&'a str>,
    pub stats_name: &'a Option<String>,
    pub circuit_breakers: Option<&'a [CircuitBreaker]>,
}

/// What resolving one needs from the build.
pub struct Context<'a, 'r> {
    pub settings: &'a Settings,
    pub resolvers: &'a Resolvers,
    pub services: &'a ServiceIndex<'r>,
    pub defaults: &'a MappingDefaults,
}

/// [`cluster`]; or, when it cannot be made, its refusal's message added to `problems` (and its
/// reason kept in `reason` when it is the first problem).
pub fn cluster_or_problem(
    target: &Target<'_>,
    cx: &Context<'_, '_>,
    reason: &mut super::Reason,
    problems: &mut Vec<String>,
) -> Option<(Cluster, Option<Refusal>)> {
    cluster(target, cx)
        .map_err(|refusal| {
            if problems.is_empty() {
                *reason = refusal.reason;
            }
            problems.push(refusal.message);
        })
        .ok()
}

/// The cluster `target` is reached through, and a note when it is served without endpoints
/// (its Service is missing or has none ready: calls fail until it has).
pub fn cluster(
    target: &Target<'_>,
    cx: &Context<'_, '_>,
) -> Result<(Cluster, Option<Refusal>), Refusal> {
    let in_field = |e: String| Refusal::from(format!("{}: {e}", target.field));
    let origination = match target.tls.filter(|t| !t.is_empty()) {
        Some(name) => Some(
            cx.defaults
                .origination
                // Its messages start with `tls: ` already.
                .lookup(target.namespace, name)?,
        ),
        None => None,
    };
    let parsed = service::parse_target(target.text, origination.is_some()).map_err(in_field)?;
    let host = service::qualify(
        &parsed.host,
        cx.defaults
            .service_namespace(target.namespace, &cx.settings.namespace),
        &cx.settings.namespace,
    );
    let parsed = service::Target { host, ..parsed };
    // No `resolver` field on these kinds: the gateway Module's, as Emissary's `IRCluster` uses.
    let resolve = cx.resolvers.choose_for(None, false, target.namespace)?;
    let key = match resolve {
        Resolve::Auto if target.text.contains("://") => None,
        Resolve::Auto | Resolve::Endpoints => {
            service::service_key(&parsed.host, &cx.settings.namespace)
        }
        Resolve::Dns => None,
    };
    let resolved = cx
        .services
        .lookup(&key, resolve, target.namespace, cx.settings);
    // The Module's `circuit_breakers` when the resource sets none, as Emissary's `IRAuth` does.
    let circuit_breakers = match target.circuit_breakers {
        Some(b) => upstream_policy::thresholds("circuit_breakers", b)?,
        None => cx
            .defaults
            .policy
            .circuit_breakers
            .clone()
            .unwrap_or_default(),
    };
    let policy = ClusterPolicy {
        circuit_breakers,
        ..ClusterPolicy::default()
    };
    let (cluster, note) = service::cluster(
        target.text,
        &parsed,
        resolved.resolution(&key),
        target.http2,
        CONNECT_TIMEOUT,
        policy,
    )
    .map_err(|r| Refusal {
        message: format!("{}: {}", target.field, r.message),
        ..r
    })?;
    let cluster = upstream_tls::apply(cluster, origination);
    let tuning = Input {
        health_checks: None,
        dns_type: None,
        respect_dns_ttl: None,
        enable_ipv4: None,
        enable_ipv6: None,
        cluster_tag: &None,
        stats_name: target.stats_name,
    };
    let cluster = cluster_tuning::tune(tuning, &cx.defaults.tuning, cluster)?;
    let note = note.map(|n| Refusal {
        message: n
            .message
            .replace("the route answers 503", "calls to it fail"),
        ..n
    });
    Ok((cluster, note))
}

/// Emissary's connect timeout for these clusters (`IRAuth`'s `connect_timeout_ms` default).
const CONNECT_TIMEOUT: Duration = DEFAULT_CONNECT_TIMEOUT;

/// Resources competing for a role one resource holds per gateway (the default AuthService, the
/// RateLimitService), best first: those in the gateway's own namespace (the platform team's)
/// before any other, then the oldest, then by namespace and name, so the choice is the same on
/// every replica and after every restart.
pub fn ranked<'r>(mut candidates: Vec<&'r Resource>, gateway_namespace: &str) -> Vec<&'r Resource> {
    candidates.sort_by_cached_key(|r| {
        let meta = r.meta();
        let elsewhere = meta
            .namespace
            .as_deref()
            .is_some_and(|ns| ns != gateway_namespace);
        let created = meta.creation_timestamp.clone();
        (elsewhere, created.is_none(), created, r.object_ref())
    });
    candidates
}

/// The resource of those `resources` that `is_kind` picks that holds a role one resource holds
/// per gateway (`what`, e.g. "the gateway's RateLimitService"): the first [`ranked`]; each other
/// is refused with [`lost_to`].
pub fn the_one<'r>(
    resources: &[&'r Resource],
    is_kind: fn(&Resource) -> bool,
    gateway_namespace: &str,
    what: &str,
    rejections: &mut Vec<Rejection>,
) -> Option<&'r Resource> {
    let candidates = resources.iter().copied().filter(|r| is_kind(r)).collect();
    let ranked = ranked(candidates, gateway_namespace);
    let (winner, losers) = ranked.split_first()?;
    for loser in losers {
        rejections.push(lost_to(loser, winner, what, ""));
    }
    Some(winner)
}

/// The refusal of a resource that lost to `winner` for a role (`what`, e.g. "the gateway's
/// RateLimitService").
pub fn lost_to(loser: &Resource, winner: &Resource, what: &str, hint: &str) -> Rejection {
    let w = winner.object_ref();
    Rejection::new(
        loser.object_ref(),
        Reason::Conflict,
        format!(
            "{} {}/{} is {what}, and one gateway uses one (the one in the gateway's namespace \
             wins, then the oldest, then by namespace and name): this one is not used{hint}",
            w.kind,
            w.namespace.as_deref().unwrap_or_default(),
            w.name
        ),
    )
}

/// Notes each resource in `users` (with the cluster it calls) whose cluster is served from a
/// Kubernetes Service without a ready endpoint: its calls fail until one is ready.
pub fn note_no_endpoints<'a>(
    users: impl IntoIterator<Item = (&'a ObjectRef, &'a str)>,
    clusters: &BTreeMap<String, Arc<Cluster>>,
    endpoints: &BTreeMap<String, Arc<ClusterEndpoints>>,
    unreachable: &mut Vec<Rejection>,
) {
    for (source, name) in users {
        let Some(service) = clusters.get(name).and_then(|c| c.service.as_ref()) else {
            continue;
        };
        let empty = endpoints.get(name).is_none_or(|e| e.addresses.is_empty());
        if service.port_name.is_some() && empty {
            unreachable.push(Rejection::new(
                source.clone(),
                Reason::NoReadyEndpoints,
                format!(
                    "Service {}/{} has no ready endpoint; calls to it fail until it has",
                    service.namespace, service.name
                ),
            ));
        }
    }
}

/// The cluster of a resource whose service cannot be used (`tag`: what for, e.g.
/// `auth-unusable`): EDS with no Service behind it, so it never has an endpoint and every call
/// fails as if the service were down; Envoy accepts it.
pub fn unusable(tag: &str, namespace: &str, name: &str, http2: bool) -> Cluster {
    // Named after the resource: only ever this one cluster of its kind.
    let host = [tag, ".", name, ".", namespace].concat();
    Cluster {
        name: service::cluster_name(&host, 0, false, http2, CONNECT_TIMEOUT),
        host,
        port: 0,
        tls: false,
        http2,
        connect_timeout: CONNECT_TIMEOUT,
        service: Some(service::ServiceRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port_name: None,
        }),
        policy: ClusterPolicy::default(),
        upstream_tls: None,
        tuning: Default::default(),
    }
}
