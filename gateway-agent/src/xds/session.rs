//! One ADS stream's state, independent of the wire variant (state of the world or delta): what
//! Envoy subscribed to, what it acknowledged, what is in flight, and what to send next.
//!
//! The planner ([`Session::plan`]) walks the types in [`ORDER`] and stops at the first one that is
//! waiting for an answer (a response in flight) or blocked (its next content is what Envoy NACKed);
//! it sends one response at a time, but for endpoints and secrets, which may go while clusters are
//! in flight (Envoy acknowledges new EDS clusters only once their endpoints have arrived, clusters
//! originating TLS once their SDS secrets have). So a type is only updated once every type before
//! it has been acknowledged at its new content, endpoints and secrets once every cluster before
//! them has been sent.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};

use super::cache::{Res, Snapshot, set_version};
use super::type_url::{self, CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET};

/// The push order: clusters before the endpoints that fill them, secrets before the listeners
/// that use them, listeners before the route configurations they name.
pub(crate) const ORDER: [&str; 5] = [CLUSTER, ENDPOINT, SECRET, LISTENER, ROUTE];

/// What one type serves to this stream right now.
pub(crate) struct Served<'a> {
    pub resources: ServedSet<'a>,
    /// The target it was cut from (none before the first publish).
    target: Option<&'a Arc<Snapshot>>,
    /// Computed when first asked: with retained extras it hashes every name, and delta streams
    /// rarely need it.
    version: OnceCell<String>,
}

impl<'a> Served<'a> {
    pub fn version(&self) -> &str {
        self.version
            .get_or_init(|| set_version(self.resources.iter()))
    }

    /// Which served set this is, to be recognised later without comparing it name by name.
    pub fn key(&self) -> Option<ServedKey> {
        self.target.map(|t| ServedKey {
            target: Arc::downgrade(t),
            extras: self.resources.extras.len(),
        })
    }

    pub fn into_parts(self) -> (String, ServedSet<'a>) {
        self.version();
        (
            self.version.into_inner().unwrap_or_default(),
            self.resources,
        )
    }
}

/// The served resources as the target's (borrowed: thousands of clusters are not copied on every
/// message) plus the few dropped ones retained until routing converges, names disjoint.
pub(crate) struct ServedSet<'a> {
    base: Cow<'a, BTreeMap<String, Arc<Res>>>,
    extras: BTreeMap<String, Arc<Res>>,
}

impl ServedSet<'_> {
    pub fn len(&self) -> usize {
        self.base.len() + self.extras.len()
    }

    #[cfg(test)]
    pub fn contains_key(&self, name: &str) -> bool {
        self.base.contains_key(name) || self.extras.contains_key(name)
    }

    /// Every resource, sorted by name (a merge of the two sorted maps).
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Arc<Res>)> {
        let mut extras = self.extras.iter().peekable();
        let mut base = self.base.iter().peekable();
        std::iter::from_fn(move || match (base.peek(), extras.peek()) {
            (Some((b, _)), Some((e, _))) if e < b => extras.next(),
            (Some(_), _) => base.next(),
            (None, _) => extras.next(),
        })
    }

    pub fn into_owned(self) -> BTreeMap<String, Arc<Res>> {
        let mut all = self.base.into_owned();
        all.extend(self.extras);
        all
    }
}

/// Names a served set: the target it was cut from and how many retained resources it had. While
/// a type's scope stays as it was, equal keys mean equal sets: the retained resources are either
/// all of those the target dropped (and Envoy acknowledged) or none. A `Weak` names the target
/// without keeping it alive, and keeps its address from being reused while held.
#[derive(Clone, Debug)]
pub(crate) struct ServedKey {
    target: Weak<Snapshot>,
    extras: usize,
}

impl PartialEq for ServedKey {
    fn eq(&self, other: &Self) -> bool {
        self.target.ptr_eq(&other.target) && self.extras == other.extras
    }
}

/// A response sent and not answered yet.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The served set's version (SotW `version_info`, delta `system_version_info`).
    pub version: String,
    /// SotW: the whole set sent. Delta: only the added or changed resources.
    pub resources: BTreeMap<String, Arc<Res>>,
    /// Delta only: names sent in `removed_resources`.
    pub removed: Vec<String>,
    /// The served set Envoy has once it acknowledges this response.
    pub brings: Option<ServedKey>,
}

#[derive(Debug, Default)]
pub(crate) struct TypeState {
    pub subscribed: bool,
    /// Every resource of the type (CDS and LDS always in state of the world; `*` or the legacy
    /// empty first subscription in delta).
    pub wildcard: bool,
    pub names: BTreeSet<String>,
    /// SotW: the `version_info` Envoy acknowledged (or reported on a new stream); `None` after a
    /// NACK, as Envoy may have applied part of the refused set.
    pub acked_version: Option<String>,
    /// Name → resource version Envoy has (delta: acknowledged or `initial_resource_versions`;
    /// an empty version after a NACK: Envoy may or may not have applied it).
    pub acked: BTreeMap<String, String>,
    /// The acknowledged resources this stream sent itself (their content is needed to keep
    /// clusters and endpoints alive while routes move off them).
    pub acked_res: BTreeMap<String, Arc<Res>>,
    pub last_nonce: String,
    pub pending: Option<Pending>,
    /// The version of the configuration the response in flight was cut from (set by
    /// [`Session::sent`]): a NACK names it, not a newer one published meanwhile.
    pub pending_config: Option<String>,
    /// The served-set version Envoy refused: not sent again for the same target.
    pub nacked: Option<String>,
    /// Delta: Envoy has acknowledged a response of this type on this stream. Until then even an
    /// empty set must be sent: Envoy's initialization waits for a first answer to each wildcard
    /// subscription (without it, 15 s of `PRE_INITIALIZING` when there are no clusters).
    pub answered: bool,
    /// The served set Envoy acknowledged as a whole, while the scope is unchanged: "is Envoy
    /// current?" is then answered without a walk over thousands of clusters on every message.
    pub synced: Option<ServedKey>,
}

impl TypeState {
    pub fn in_scope(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// The scope changed: what Envoy has (or will have once it acknowledges the response in
    /// flight) is no longer known to be a whole served set.
    pub fn rescoped(&mut self) {
        self.synced = None;
        if let Some(p) = &mut self.pending {
            p.brings = None;
        }
    }
}

/// Envoy's answer to a response in flight.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Answer {
    /// Envoy acknowledged the response of this type.
    Ack(&'static str),
    Nack(Refusal),
}

/// Envoy's refusal of one response.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Refusal {
    pub type_url: &'static str,
    pub version: String,
    /// The configuration the refused response was cut from.
    pub config_version: String,
    pub message: String,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub delta: bool,
    pub target: Option<Arc<Snapshot>>,
    pub types: BTreeMap<&'static str, TypeState>,
    nonce: u64,
}

impl Session {
    pub fn new(target: Option<Arc<Snapshot>>, delta: bool) -> Self {
        Self {
            delta,
            target,
            types: type_url::ALL
                .iter()
                .map(|t| (*t, TypeState::default()))
                .collect(),
            nonce: 0,
        }
    }

    /// A new configuration to serve. Whatever Envoy refused before gets a fresh answer: a
    /// refusal can depend on more than content (a port another process held), and holding back
    /// the refused type would also hold back every type after it, silently.
    pub fn set_target(&mut self, target: Option<Arc<Snapshot>>) {
        let same = match (&self.target, &target) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            for ts in self.types.values_mut() {
                ts.nacked = None;
            }
        }
        self.target = target;
    }

    pub fn state(&mut self, url: &'static str) -> &mut TypeState {
        self.types.entry(url).or_default()
    }

    /// Records a response sent for `url`: its nonce, and what it carried until Envoy answers.
    pub fn sent(&mut self, url: &'static str, nonce: String, pending: Pending) {
        let config = self.target.as_ref().map(|t| t.version.clone());
        let ts = self.state(url);
        ts.last_nonce = nonce;
        ts.pending = Some(pending);
        ts.pending_config = config;
    }

    pub fn next_nonce(&mut self) -> String {
        self.nonce += 1;
        self.nonce.to_string()
    }

    /// What `url` serves: the target's resources in the subscription's scope, plus, for clusters
    /// and endpoints, those Envoy acknowledged and the target dropped, until routing has moved
    /// to the target (make before break).
    pub fn served(&self, url: &'static str) -> Served<'_> {
        let Some(target) = &self.target else {
            return Served {
                resources: ServedSet {
                    base: Cow::Owned(BTreeMap::new()),
                    extras: BTreeMap::new(),
                },
                target: None,
                version: OnceCell::new(),
            };
        };
        let ts = &self.types[url];
        let tt = target.of(url);
        let base = if ts.wildcard {
            Cow::Borrowed(&tt.resources)
        } else {
            Cow::Owned(
                ts.names
                    .iter()
                    .filter_map(|n| tt.resources.get(n).map(|r| (n.clone(), r.clone())))
                    .collect(),
            )
        };
        let mut extras = BTreeMap::new();
        if url == CLUSTER || url == ENDPOINT {
            extras = missing(ts.acked_res.keys(), tt.resources.keys())
                .filter(|n| ts.in_scope(n))
                .map(|n| (n.clone(), ts.acked_res[n].clone()))
                .collect();
            if !extras.is_empty() && self.routing_converged() {
                extras.clear();
            }
        }
        let resources = ServedSet { base, extras };
        // The target's resources as they are: the target's version, computed once.
        let version = match (&resources.base, resources.extras.is_empty()) {
            (Cow::Borrowed(_), true) => OnceCell::from(tt.version.clone()),
            _ => OnceCell::new(),
        };
        Served {
            version,
            resources,
            target: Some(target),
        }
    }

    /// Whether Envoy has exactly what `url` serves.
    pub fn current(&self, url: &'static str, served: &Served<'_>) -> bool {
        let ts = &self.types[url];
        if ts.synced.is_some() && ts.synced == served.key() {
            return true;
        }
        if self.delta {
            // Versions Envoy reported on a new stream count as an answer: it already has them.
            // Both sorted by name: one walk side by side, not a look-up per resource.
            (ts.answered || !ts.acked.is_empty())
                && ts.acked.len() == served.resources.len()
                && ts
                    .acked
                    .iter()
                    .zip(served.resources.iter())
                    .all(|((an, av), (sn, sr))| an == sn && *av == sr.version)
        } else {
            ts.acked_version.as_deref() == Some(served.version())
        }
    }

    /// Whether Envoy routes by the target: its listeners and every route configuration of the
    /// target are acknowledged at their target content. Until then, clusters and endpoints the
    /// target dropped stay served, as the old routes may still send traffic to them.
    pub fn routing_converged(&self) -> bool {
        let Some(target) = &self.target else {
            return true;
        };
        let listeners = &self.types[LISTENER];
        if listeners.subscribed && !self.current(LISTENER, &self.served(LISTENER)) {
            return false;
        }
        let routes = &self.types[ROUTE];
        let wanted = &target.of(ROUTE).resources;
        if !routes.subscribed {
            // Envoy subscribes to route configurations once it has the listeners naming them.
            return !listeners.subscribed || wanted.is_empty();
        }
        (routes.wildcard || wanted.keys().all(|n| routes.names.contains(n)))
            && self.current(ROUTE, &self.served(ROUTE))
    }

    /// The next type to push and what it serves, if any: see the module documentation.
    pub fn plan(&self) -> Option<(&'static str, Served<'_>)> {
        self.target.as_ref()?;
        // One response in flight at a time: a type earlier in the order does not overtake one in
        // flight after it (clusters would go while listeners are, and secrets could then be
        // dropped before the listeners in flight that use them are acknowledged).
        if ORDER
            .into_iter()
            .any(|url| url != CLUSTER && self.types[url].pending.is_some())
        {
            return None;
        }
        // Envoy acknowledges a CDS response only once the clusters it adds have warmed, and an
        // EDS cluster warms only when its endpoints arrive: with clusters in flight, endpoints
        // may still go (and nothing after them), or both would wait for Envoy's initial fetch
        // timeout (15 s). So may secrets: a cluster originating TLS warms only when its client
        // certificate and CA arrive over SDS.
        let mut clusters_in_flight = false;
        for url in ORDER {
            if clusters_in_flight && url != ENDPOINT && url != SECRET {
                return None;
            }
            let ts = &self.types[url];
            if !ts.subscribed {
                continue;
            }
            if ts.pending.is_some() {
                if url == CLUSTER {
                    clusters_in_flight = true;
                    continue;
                }
                return None;
            }
            let served = self.served(url);
            if self.current(url, &served) {
                continue;
            }
            if ts.nacked.as_deref() == Some(served.version()) {
                return None;
            }
            return Some((url, served));
        }
        None
    }

    /// The target's version once Envoy acknowledged all of it on every type it subscribed to
    /// (and the make-before-break clean-up is done).
    pub fn converged_version(&self) -> Option<&str> {
        let target = self.target.as_ref()?;
        let subscribed = || ORDER.into_iter().filter(|url| self.types[url].subscribed);
        // A response in flight is the cheap answer: look for one before comparing contents.
        if subscribed().any(|url| self.types[url].pending.is_some()) {
            return None;
        }
        let mut any = false;
        for url in subscribed() {
            any = true;
            if !self.current(url, &self.served(url)) {
                return None;
            }
        }
        (any && self.routing_converged()).then_some(target.version.as_str())
    }

    /// Records Envoy's answer to the response of `url` in flight. `refusal` is Envoy's
    /// error message for a NACK. Returns the answer to report; none without a response in flight.
    pub fn answer(&mut self, url: &'static str, refusal: Option<String>) -> Option<Answer> {
        let delta = self.delta;
        let target = self.target.as_ref().map(|t| t.version.clone());
        let ts = self.state(url);
        let p = ts.pending.take()?;
        let config_version = ts.pending_config.take().or(target).unwrap_or_default();
        match refusal {
            Some(message) => {
                ts.nacked = Some(p.version.clone());
                // Envoy applies what it can of a refused response (each listener or cluster on
                // its own) and refuses the rest: what it holds of this type is unknown, so the
                // next response carries it again, whole, even if it matches the last ACK.
                ts.synced = None;
                if delta {
                    for n in p.resources.into_keys() {
                        ts.acked.insert(n, String::new());
                    }
                } else {
                    ts.acked_version = None;
                }
                Some(Answer::Nack(Refusal {
                    type_url: url,
                    version: p.version,
                    config_version,
                    message,
                }))
            }
            None if delta => {
                for (n, r) in p.resources {
                    if ts.in_scope(&n) {
                        ts.acked.insert(n.clone(), r.version.clone());
                        ts.acked_res.insert(n, r);
                    }
                }
                for n in p.removed {
                    ts.acked.remove(&n);
                    ts.acked_res.remove(&n);
                }
                ts.nacked = None;
                ts.answered = true;
                ts.synced = p.brings;
                Some(Answer::Ack(url))
            }
            None => {
                ts.acked_version = Some(p.version);
                ts.acked = p
                    .resources
                    .iter()
                    .map(|(n, r)| (n.clone(), r.version.clone()))
                    .collect();
                ts.acked_res = p.resources;
                ts.nacked = None;
                ts.synced = p.brings;
                Some(Answer::Ack(url))
            }
        }
    }
}

/// The names of `a` not in `b`, both sorted (a walk side by side: a configuration has thousands
/// of clusters, and this is asked on every message of a stream).
fn missing<'a>(
    a: impl Iterator<Item = &'a String>,
    b: impl Iterator<Item = &'a String>,
) -> impl Iterator<Item = &'a String> {
    let mut b = b.peekable();
    a.filter(move |name| {
        while b.next_if(|n| n < name).is_some() {}
        b.next_if(|n| n == name).is_none()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::cache::ResourceSet;
    use envoy_types::pb::google::protobuf::Any;
    use std::time::Instant;

    fn snap(clusters: &[&str], routes: &[(&str, &str)]) -> Arc<Snapshot> {
        let mut s = ResourceSet::default();
        for c in clusters {
            s.insert_any(
                CLUSTER,
                *c,
                Any {
                    type_url: CLUSTER.into(),
                    value: c.as_bytes().to_vec(),
                },
            );
        }
        for (r, body) in routes {
            s.insert_any(
                ROUTE,
                *r,
                Any {
                    type_url: ROUTE.into(),
                    value: body.as_bytes().to_vec(),
                },
            );
        }
        Arc::new(Snapshot::build(s, Instant::now()))
    }

    /// Sends whatever is planned (without an answer yet); returns the type sent.
    fn send(s: &mut Session) -> Option<&'static str> {
        let (url, served) = s.plan()?;
        let pending = Pending {
            version: served.version().to_owned(),
            brings: served.key(),
            resources: served.resources.into_owned(),
            removed: vec![],
        };
        s.state(url).pending = Some(pending);
        Some(url)
    }

    /// Sends whatever is planned and acknowledges it; returns the type pushed.
    fn step(s: &mut Session) -> Option<&'static str> {
        let url = send(s)?;
        s.answer(url, None);
        Some(url)
    }

    #[test]
    fn missing_names_are_found_in_sorted_lists() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let missing =
            |a: &[&str], b: &[&str]| missing(names(a).iter(), names(b).iter()).next().is_some();
        assert!(!missing(&["a", "c"], &["a", "b", "c"]));
        assert!(!missing(&[], &["a"]));
        assert!(missing(&["b"], &["a", "c"]));
        assert!(missing(&["a", "d"], &["a", "b", "c"]));
        assert!(missing(&["a"], &[]));
    }

    #[test]
    fn nothing_is_served_before_the_first_publish() {
        let mut s = Session::new(None, false);
        s.state(CLUSTER).subscribed = true;
        s.state(CLUSTER).wildcard = true;
        assert!(s.plan().is_none());
        assert!(s.converged_version().is_none());
    }

    #[test]
    fn dropped_clusters_stay_until_routes_converge() {
        let mut s = Session::new(Some(snap(&["a", "b"], &[("r", "a,b")])), false);
        for (url, wildcard) in [(CLUSTER, true), (ROUTE, false)] {
            let ts = s.state(url);
            ts.subscribed = true;
            ts.wildcard = wildcard;
        }
        s.state(ROUTE).names.insert("r".into());
        assert_eq!(step(&mut s), Some(CLUSTER));
        assert_eq!(step(&mut s), Some(ROUTE));
        assert_eq!(step(&mut s), None);
        let v1 = s.converged_version().map(str::to_owned);
        assert!(v1.is_some());

        s.set_target(Some(snap(&["a"], &[("r", "a")])));
        assert!(s.served(CLUSTER).resources.contains_key("b"));
        // Clusters unchanged (b retained): routes go first.
        assert_eq!(step(&mut s), Some(ROUTE));
        assert!(!s.served(CLUSTER).resources.contains_key("b"));
        assert_eq!(step(&mut s), Some(CLUSTER));
        assert_eq!(step(&mut s), None);
        assert_ne!(s.converged_version().map(str::to_owned), v1);
    }

    #[test]
    fn secrets_go_while_clusters_wait_for_them_and_listeners_do_not() {
        let mut set = ResourceSet::default();
        for (url, name) in [(CLUSTER, "c"), (SECRET, "s"), (LISTENER, "l")] {
            let any = Any {
                type_url: url.into(),
                value: name.as_bytes().to_vec(),
            };
            set.insert_any(url, name, any);
        }
        let mut s = Session::new(Some(Arc::new(Snapshot::build(set, Instant::now()))), false);
        for url in [CLUSTER, SECRET, LISTENER] {
            s.state(url).subscribed = true;
            s.state(url).wildcard = true;
        }
        // Envoy holds the CDS ACK until the cluster's SDS secret arrives (TLS origination).
        assert_eq!(send(&mut s), Some(CLUSTER));
        assert_eq!(step(&mut s), Some(SECRET));
        assert!(s.plan().is_none(), "listeners wait for the clusters' ACK");
        s.answer(CLUSTER, None);
        assert_eq!(step(&mut s), Some(LISTENER));
    }

    #[test]
    fn a_refused_version_blocks_later_types_and_is_not_resent() {
        let mut s = Session::new(Some(snap(&["a"], &[("r", "a")])), false);
        for url in [CLUSTER, ROUTE] {
            s.state(url).subscribed = true;
            s.state(url).wildcard = true;
        }
        let (url, served) = s.plan().unwrap();
        assert_eq!(url, CLUSTER);
        let version = served.version().to_owned();
        s.state(CLUSTER).pending = Some(Pending {
            version: version.clone(),
            resources: BTreeMap::new(),
            removed: vec![],
            brings: None,
        });
        let Some(Answer::Nack(refusal)) = s.answer(CLUSTER, Some("bad".into())) else {
            panic!("a NACK")
        };
        assert_eq!(refusal.version, version);
        assert!(s.plan().is_none());
        assert!(s.converged_version().is_none());
    }

    /// Subscribes to clusters and routes (wildcard) and brings Envoy to `target`.
    fn synced(delta: bool, target: Arc<Snapshot>) -> Session {
        let mut s = Session::new(Some(target), delta);
        for url in [CLUSTER, ROUTE] {
            s.state(url).subscribed = true;
            s.state(url).wildcard = true;
        }
        while step(&mut s).is_some() {}
        assert!(s.converged_version().is_some());
        s
    }

    /// Sends what is planned and has Envoy refuse it.
    fn refuse(s: &mut Session) -> &'static str {
        let url = send(s).expect("something to send");
        assert!(matches!(
            s.answer(url, Some("refused".into())),
            Some(Answer::Nack(_))
        ));
        url
    }

    #[test]
    fn a_new_configuration_resends_content_envoy_refused_for_an_older_one() {
        for delta in [false, true] {
            let mut s = synced(delta, snap(&["a"], &[("r", "a")]));
            // Envoy refuses cluster b (say its port was taken): nothing after clusters goes.
            s.set_target(Some(snap(&["a", "b"], &[("r", "a,b")])));
            assert_eq!(refuse(&mut s), CLUSTER);
            assert!(s.plan().is_none(), "the same target is not resent");
            // A newer configuration with the same clusters and new routes gets a fresh answer:
            // the clusters go again, and then the routes.
            s.set_target(Some(snap(&["a", "b"], &[("r", "a,b,c")])));
            assert_eq!(step(&mut s), Some(CLUSTER), "delta: {delta}");
            assert_eq!(step(&mut s), Some(ROUTE), "delta: {delta}");
            assert!(s.converged_version().is_some(), "delta: {delta}");
        }
    }

    #[test]
    fn a_nack_names_the_configuration_the_refused_response_was_cut_from() {
        let a = snap(&["a"], &[]);
        let mut s = Session::new(Some(a.clone()), false);
        s.state(CLUSTER).subscribed = true;
        s.state(CLUSTER).wildcard = true;
        let (url, served) = s.plan().unwrap();
        let pending = Pending {
            version: served.version().to_owned(),
            brings: served.key(),
            resources: served.resources.into_owned(),
            removed: vec![],
        };
        s.sent(url, "1".into(), pending);
        // A newer configuration is published before Envoy answers.
        s.set_target(Some(snap(&["b"], &[])));
        let Some(Answer::Nack(refusal)) = s.answer(CLUSTER, Some("bad".into())) else {
            panic!("a NACK")
        };
        assert_eq!(refusal.config_version, a.version);
    }

    #[test]
    fn after_a_nack_the_refused_type_is_resent_even_when_back_to_what_envoy_acked() {
        for delta in [false, true] {
            let mut s = synced(delta, snap(&["a"], &[("r", "a")]));
            s.set_target(Some(snap(&["a", "b"], &[("r", "a")])));
            assert_eq!(refuse(&mut s), CLUSTER);
            // Envoy may have added b while refusing the response: back to the acknowledged
            // content, the clusters are sent again so that b goes.
            s.set_target(Some(snap(&["a"], &[("r", "a")])));
            let (url, served) = s.plan().expect("the clusters are sent again");
            assert_eq!(url, CLUSTER, "delta: {delta}");
            assert!(!served.resources.contains_key("b"));
            assert_eq!(step(&mut s), Some(CLUSTER));
            assert_eq!(step(&mut s), None);
            assert!(s.converged_version().is_some(), "delta: {delta}");
        }
    }
}
