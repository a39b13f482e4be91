//! Binding route groups to the virtual hosts of each Listener's Hosts, one build after the other:
//! what a build serves (virtual hosts, clusters) and what it cannot (unreachable groups), from
//! the groups added and removed since the last build. While Hosts and Listeners stay the same,
//! a changed group re-binds only the virtual hosts its hostname can reach and moves only its own
//! clusters; when they change, everything is bound again. The rules are [`host`]'s.

use itertools::{Either, Itertools};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use super::{
    Cluster, Listener, Reason, Rejection, VirtualHost,
    group::Formed,
    host::{self, Host, ListenerSpec, Reach},
    mapping::Route,
};
use crate::memo::{AddressHasher, ByAddress};

/// What the last builds bound, kept for the next.
#[derive(Debug, Default)]
pub struct Binder {
    /// The Hosts and Listeners everything below was bound with.
    bound_with: Option<(Vec<Host>, Vec<ListenerSpec>)>,
    index: GroupIndex,
    /// Each virtual host as last bound, by listener port and hostname.
    virtual_hosts: HashMap<(u16, String), Arc<VirtualHost>>,
    /// Groups with routes that no Listener's Host serves.
    unserved: HashSet<ByAddress<Formed>, AddressHasher>,
    /// The clusters served routes send to, with how many groups send there.
    clusters: BTreeMap<String, (Arc<Cluster>, usize)>,
}

/// What is served: the Listeners with their virtual hosts, and the clusters by name.
pub struct Served {
    pub listeners: Vec<Listener>,
    pub clusters: BTreeMap<String, Arc<Cluster>>,
}

impl Binder {
    /// Binds `order` (every group with routes, in evaluation order), given what changed since
    /// the last call. Groups that serve nothing are reported in `unreachable`.
    pub fn bind(
        &mut self,
        listeners: &[ListenerSpec],
        hosts: &[Host],
        order: &[Arc<Formed>],
        added: &[Arc<Formed>],
        removed: &[Arc<Formed>],
        unreachable: &mut Vec<Rejection>,
    ) -> Served {
        let same = self
            .bound_with
            .as_ref()
            .is_some_and(|(h, l)| h == hosts && l == listeners);
        let mut dirty = Dirty::default();
        let scope = Scope::new(listeners, hosts);
        if same {
            for f in removed.iter().filter(|f| f.has_routes()) {
                self.index.remove(f);
                dirty.touch(f);
                if !self.unserved.remove(&ByAddress(f.clone())) {
                    self.count_clusters(f, &scope, false);
                }
            }
            for f in added.iter().filter(|f| f.has_routes()) {
                self.index.insert(f.clone());
                dirty.touch(f);
                self.record_reach(f, &scope);
            }
        } else {
            *self = Self {
                bound_with: Some((hosts.to_vec(), listeners.to_vec())),
                index: GroupIndex::from_order(order),
                ..Self::default()
            };
            dirty.all = true;
            for f in order {
                self.record_reach(f, &scope);
            }
        }

        let mut out = Vec::new();
        for l in listeners {
            let bound: Vec<&Host> = hosts.iter().filter(|h| host::binds(l, h)).collect();
            if bound.is_empty() {
                unreachable.push(Rejection::new(
                    l.source.clone(),
                    Reason::NoHost,
                    "no Host binds to this Listener",
                ));
                continue;
            }
            let virtual_hosts = bound
                .into_iter()
                .map(|h| {
                    let key = (l.port, h.hostname.clone());
                    match self.virtual_hosts.get(&key) {
                        Some(v) if !dirty.reaches(&h.hostname) => v.clone(),
                        _ => {
                            let candidates = self.index.candidates(&h.hostname, order);
                            let v = Arc::new(virtual_host(l, h, &candidates));
                            self.virtual_hosts.insert(key, v.clone());
                            v
                        }
                    }
                })
                .collect();
            out.push(Listener {
                name: format!("listener-{}", l.port),
                port: l.port,
                security_model: l.security_model,
                stats_prefix: l.stats_prefix.clone(),
                l7_depth: l.l7_depth,
                proxy_protocol: l.proxy_protocol,
                http2_max_concurrent_streams: l.http2_max_concurrent_streams,
                virtual_hosts,
                tls_chains: Vec::new(),
                // Set for every listener by the builder.
                compression: None,
                http_options: Default::default(),
                grpc: Default::default(),
                ip_filter: None,
                access_log: Default::default(),
                log_services: Default::default(),
                auth: Arc::from(Vec::new()),
                rate_limit: None,
                tracing: None,
            });
        }
        for f in &self.unserved {
            for r in &f.0.group().routes {
                let (reason, message) = host::why_unreachable(r, listeners, hosts);
                unreachable.push(Rejection::new(r.source.clone(), reason, message));
            }
        }
        Served {
            listeners: out,
            clusters: self
                .clusters
                .iter()
                .map(|(name, (c, _))| (name.clone(), c.clone()))
                .collect(),
        }
    }

    /// Records whether a new group is served, and counts its clusters if its routes forward.
    fn record_reach(&mut self, f: &Arc<Formed>, scope: &Scope) {
        match scope.reach(f) {
            Reach::Nowhere => {
                self.unserved.insert(ByAddress(f.clone()));
            }
            Reach::RedirectsOnly => {}
            Reach::Forwards => self.count_clusters(f, scope, true),
        }
    }

    /// Adds (or takes away) a served group's clusters.
    fn count_clusters(&mut self, f: &Formed, scope: &Scope, add: bool) {
        if !add && scope.reach(f) != Reach::Forwards {
            return;
        }
        for c in f.clusters() {
            if add {
                self.clusters
                    .entry(c.name.clone())
                    .or_insert_with(|| (c.clone(), 0))
                    .1 += 1;
            } else if let Some((_, n)) = self.clusters.get_mut(&c.name) {
                *n -= 1;
                if *n == 0 {
                    self.clusters.remove(&c.name);
                }
            }
        }
    }
}

/// How far a group's routes get: into no virtual host, only as redirects to HTTPS, or
/// forwarding to their clusters in some virtual host.
/// The Hosts and Listeners of a build, with the glob Hosts apart: a group with an exact
/// hostname can only associate with the Host of that name and the globs.
struct Scope<'a> {
    listeners: &'a [ListenerSpec],
    /// Sorted by hostname, as [`host::hosts`] returns them.
    hosts: &'a [Host],
    globs: Vec<&'a Host>,
}

impl<'a> Scope<'a> {
    fn new(listeners: &'a [ListenerSpec], hosts: &'a [Host]) -> Self {
        let globs = hosts.iter().filter(|h| h.hostname.contains('*')).collect();
        Self {
            listeners,
            hosts,
            globs,
        }
    }

    /// How far a group's routes get: the most any of them gets for any Host on any Listener.
    fn reach(&self, f: &Formed) -> Reach {
        let first = f.first();
        let hosts = match GroupIndex::exact_hostname(first) {
            Some(name) => Either::Left(
                self.hosts
                    .binary_search_by(|h| h.hostname.as_str().cmp(name))
                    .ok()
                    .map(|i| &self.hosts[i])
                    .into_iter()
                    .chain(self.globs.iter().copied()),
            ),
            None => Either::Right(self.hosts.iter()),
        };
        let mut best = Reach::Nowhere;
        for h in hosts.filter(|h| host::associates(h, first)) {
            for l in self.listeners.iter().filter(|l| host::binds(l, h)) {
                for r in &f.group().routes {
                    best = best.max(host::reach(l.security_model, h.insecure, r));
                }
            }
        }
        best
    }
}

/// One Host's virtual host on one Listener: the routes of the groups it admits, in order.
fn virtual_host(l: &ListenerSpec, h: &Host, candidates: &[&Arc<Formed>]) -> VirtualHost {
    let mut routes = Vec::new();
    for f in candidates.iter().filter(|f| host::associates(h, f.first())) {
        for r in &f.group().routes {
            routes.extend(host::variants(l.security_model, h.insecure, r));
        }
    }
    VirtualHost {
        name: format!("{}-{}", l.port, h.hostname),
        domains: vec![h.hostname.clone()],
        routes,
    }
}

/// The virtual hosts a build must bind again: those whose hostname a changed group names, or
/// every one when a changed group has no exact hostname (or everything changed).
#[derive(Default)]
struct Dirty {
    all: bool,
    hostnames: HashSet<String>,
}

impl Dirty {
    fn touch(&mut self, f: &Formed) {
        match GroupIndex::exact_hostname(f.first()) {
            Some(name) => {
                self.hostnames.insert(name.to_owned());
            }
            None => self.all = true,
        }
    }

    /// A glob Host admits groups of any hostname: any change reaches it.
    fn reaches(&self, hostname: &str) -> bool {
        self.all
            || (!self.hostnames.is_empty()
                && (hostname.contains('*') || self.hostnames.contains(hostname)))
    }
}

/// Which groups could associate with a hostname, without testing every group against every
/// Host: a Host with an exact hostname can only admit groups with that exact hostname, or with
/// a glob, a regex host or no hostname at all. Each list is in evaluation order.
#[derive(Debug, Default)]
struct GroupIndex {
    exact: foldhash::HashMap<String, Vec<Arc<Formed>>>,
    others: Vec<Arc<Formed>>,
}

impl GroupIndex {
    fn from_order(order: &[Arc<Formed>]) -> Self {
        let mut index = Self::default();
        for f in order {
            index.list(f).push(f.clone());
        }
        index
    }

    /// The hostname a group is indexed by, when it names one exactly.
    fn exact_hostname(first: &Route) -> Option<&str> {
        first
            .hostname
            .as_deref()
            .filter(|name| !name.contains('*') && !first.host_regex)
    }

    fn list(&mut self, f: &Formed) -> &mut Vec<Arc<Formed>> {
        match Self::exact_hostname(f.first()) {
            Some(name) => self.exact.entry(name.to_owned()).or_default(),
            None => &mut self.others,
        }
    }

    fn insert(&mut self, f: Arc<Formed>) {
        let list = self.list(&f);
        let at = list.partition_point(|o| o.cmp_order(&f).is_lt());
        list.insert(at, f);
    }

    fn remove(&mut self, f: &Arc<Formed>) {
        let list = self.list(f);
        let at = list.partition_point(|o| o.cmp_order(f).is_lt());
        debug_assert!(Arc::ptr_eq(&list[at], f));
        list.remove(at);
    }

    /// The groups that could associate with `hostname`, in evaluation order.
    fn candidates<'a>(&'a self, hostname: &str, order: &'a [Arc<Formed>]) -> Vec<&'a Arc<Formed>> {
        if hostname.contains('*') {
            return order.iter().collect();
        }
        let exact = self
            .exact
            .get(hostname)
            .map(Vec::as_slice)
            .unwrap_or_default();
        exact
            .iter()
            .merge_by(&self.others, |a, b| a.cmp_order(b).is_le())
            .collect()
    }
}
