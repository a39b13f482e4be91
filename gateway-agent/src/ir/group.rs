//! Route groups (Emissary §2.1–2.2): Mappings with the same match form one group whose members
//! split traffic as canaries; groups are ordered by Emissary's route weight.
//!
//! Unlike Emissary, a group never mixes namespaces: another team's Mapping with the same match
//! cannot join a route as a canary and siphon its traffic. The namespace whose Mapping is oldest
//! (then first by namespace/name) keeps the match; the others are rejected and say why.

use itertools::Itertools;
use std::{cmp::Ordering, collections::BTreeSet, sync::Arc};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{
    Cluster, Reason, Rejection,
    host::selects,
    mapping::{HeaderMatch, PathMatch, Route, RouteAction, StringMatch},
};

/// One group: its members in canary order, each with its cumulative share.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub routes: Vec<Arc<Route>>,
}

/// A route with the key it is grouped by, computed once per Mapping (and kept from one build
/// to the next with it).
#[derive(Debug)]
pub struct Keyed {
    pub route: Arc<Route>,
    /// The upstream the route sends to, if it forwards.
    pub cluster: Option<Arc<Cluster>>,
    identity: String,
}

impl Keyed {
    pub fn new(route: Route, cluster: Option<Cluster>, selectors: &HostSelectors) -> Self {
        let mut identity = identity(&route);
        selectors.extend_identity(&route, &mut identity);
        Self {
            identity,
            route: Arc::new(route),
            cluster: cluster.map(Arc::new),
        }
    }
}

/// The Hosts' `mappingSelector`s, each once, in a stable order. A Mapping without a hostname
/// is grouped by the `matchLabels` of every selector that picks it, too (Emissary's fix for
/// #4152): two such Mappings with one prefix attached to different Hosts by labels are two
/// routes, not one canary group. Since they are part of every such Mapping's identity, a
/// change of them makes the builder start again from scratch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostSelectors(Vec<(String, LabelSelector)>);

impl HostSelectors {
    pub fn new<'a>(selectors: impl IntoIterator<Item = &'a LabelSelector>) -> Self {
        let mut all: Vec<(String, LabelSelector)> = selectors
            .into_iter()
            // `match_labels` is a BTreeMap: the text is canonical.
            .map(|s| (serde_json::to_string(s).unwrap_or_default(), s.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.dedup_by(|a, b| a.0 == b.0);
        Self(all)
    }

    fn extend_identity(&self, route: &Route, identity: &mut String) {
        if route.hostname.is_some() || route.host_regex {
            return;
        }
        for (_, selector) in self.0.iter().filter(|(_, s)| selects(s, &route.labels)) {
            for (k, v) in selector.match_labels.iter().flatten() {
                identity.push_str("\0label:");
                identity.push_str(k);
                identity.push('=');
                identity.push_str(v);
            }
        }
    }
}

/// The identity Emissary groups by: method (GET when unset), prefix, header and query
/// conditions, and a nonzero precedence. The path's kind (regex, exact) is not part of it.
fn identity(route: &Route) -> String {
    // Pieces pushed, not formatted: one per Mapping, and the formatting machinery cost more
    // than the rest of grouping.
    let condition = |out: &mut String, h: &HeaderMatch| {
        out.push('\0');
        out.push_str(&h.name);
        let (kind, value) = match &h.value {
            StringMatch::Exact(v) => ("=e:", v.as_str()),
            StringMatch::Regex(v) => ("=r:", v.as_str()),
            StringMatch::Present => ("=p", ""),
            StringMatch::HostGlob(v) => ("=h:", v.as_str()),
        };
        out.push_str(kind);
        out.push_str(value);
    };
    let mut id = String::with_capacity(64);
    match route.headers.iter().find(|h| h.name == ":method") {
        Some(m) => condition(&mut id, m),
        None => id.push_str("\0:method=e:GET"),
    }
    id.push('\0');
    id.push_str(route.path.text());
    id.push('\0');
    match route.precedence {
        0 => id.push('0'),
        p => id.push_str(&p.to_string()),
    }
    let mut headers: Vec<&HeaderMatch> = route
        .headers
        .iter()
        .filter(|h| h.name != ":method")
        .collect();
    headers.sort();
    headers.into_iter().for_each(|h| condition(&mut id, h));
    id.push_str("\0?");
    let mut query: Vec<&HeaderMatch> = route.query.iter().collect();
    query.sort();
    query.into_iter().for_each(|h| condition(&mut id, h));
    id
}

/// Groups routes, assigns canary shares and orders the groups for evaluation, one build after
/// the other, from what changed since the last build: the routes added and removed. Only the
/// groups whose identity a change touches are formed again and moved in the order; the others
/// stay as they are, so a build after one change costs a few searches, not a pass over every
/// route. The result is the same as from scratch.
#[derive(Debug, Default)]
pub struct Grouper {
    /// Every identity's members and the group they form.
    by_identity: foldhash::HashMap<String, Members>,
    /// The groups that serve, in evaluation order.
    order: Vec<Arc<Formed>>,
    /// The identities whose group rejects some of its members.
    rejecting: BTreeSet<String>,
    update_count: u64,
}

#[derive(Debug, Default)]
struct Members {
    routes: Vec<Arc<Keyed>>,
    formed: Option<Arc<Formed>>,
    /// The last update that touched them.
    touched: u64,
}

impl Grouper {
    /// Applies the routes added and removed since the last call. Members that cannot join
    /// their group are added to `rejections`.
    pub fn update<'a>(
        &mut self,
        added: impl IntoIterator<Item = &'a Arc<Keyed>>,
        removed: impl IntoIterator<Item = &'a Arc<Keyed>>,
        rejections: &mut Vec<Rejection>,
    ) -> Grouped {
        let mut grouped = Grouped::default();
        self.update_count += 1;
        let update = self.update_count;
        // Each touched identity once, in the order first touched (no sort of long strings).
        let mut touched: Vec<&str> = Vec::new();
        let mut touch = |m: &mut Members, identity: &'a str| {
            if m.touched != update {
                m.touched = update;
                touched.push(identity);
            }
        };
        for route in removed {
            if let Some(m) = self.by_identity.get_mut(&route.identity) {
                m.routes.retain(|r| !Arc::ptr_eq(r, route));
                touch(m, &route.identity);
            }
        }
        for route in added {
            let m = match self.by_identity.get_mut(&route.identity) {
                Some(m) => m,
                None => self.by_identity.entry(route.identity.clone()).or_default(),
            };
            m.routes.push(route.clone());
            touch(m, &route.identity);
        }
        let mut formed_now = Vec::new();
        for identity in touched {
            let Some(m) = self.by_identity.get_mut(identity) else {
                continue;
            };
            if let Some(old) = m.formed.take() {
                remove_from_order(&mut self.order, &old);
                grouped.removed.push(old);
            }
            self.rejecting.remove(identity);
            if m.routes.is_empty() {
                self.by_identity.remove(identity);
                continue;
            }
            let formed = Arc::new(Formed::new(identity, m.routes.iter().map(|r| &**r)));
            if !formed.rejections.is_empty() {
                self.rejecting.insert(identity.to_owned());
            }
            m.formed = Some(formed.clone());
            if formed.order.is_some() {
                formed_now.push(formed.clone());
            }
            grouped.added.push(formed);
        }
        insert_in_order(&mut self.order, formed_now);
        for identity in &self.rejecting {
            if let Some(formed) = &self.by_identity[identity].formed {
                rejections.extend_from_slice(&formed.rejections);
            }
        }
        grouped.order = self.order.clone();
        grouped
    }
}

/// The groups after an update, and what changed.
#[derive(Debug, Default)]
pub struct Grouped {
    /// The groups with routes, in evaluation order.
    pub order: Vec<Arc<Formed>>,
    /// Groups formed by this update, and those it replaced or dissolved.
    pub added: Vec<Arc<Formed>>,
    pub removed: Vec<Arc<Formed>>,
}

/// Takes a group out of the order: it sits where its order key puts it.
fn remove_from_order(order: &mut Vec<Arc<Formed>>, formed: &Arc<Formed>) {
    if formed.order.is_none() {
        return;
    }
    let at = order.partition_point(|f| f.cmp_order(formed).is_lt());
    debug_assert!(Arc::ptr_eq(&order[at], formed));
    order.remove(at);
}

/// Puts groups in the order: one by one when they are few, else sorted and merged in.
fn insert_in_order(order: &mut Vec<Arc<Formed>>, mut formed: Vec<Arc<Formed>>) {
    if formed.len() < 16 {
        for f in formed {
            let at = order.partition_point(|o| o.cmp_order(&f).is_lt());
            order.insert(at, f);
        }
        return;
    }
    formed.sort_unstable_by(|a, b| a.cmp_order(b));
    *order = std::mem::take(order)
        .into_iter()
        .merge_by(formed, |a, b| a.cmp_order(b).is_le())
        .collect();
}

/// One identity's group as formed from its members (or why none can serve), with what it is
/// ordered by: its heaviest route (and that route's numeric weight).
#[derive(Debug)]
pub struct Formed {
    identity: String,
    order: Option<OrderKey>,
    group: Group,
    rejections: Vec<Rejection>,
    /// The clusters the group's routes send to (mirrors included), one per name.
    clusters: Vec<Arc<Cluster>>,
}

/// A group's heaviest route, and that route's numeric weight.
type OrderKey = ((i32, usize, usize, usize), Arc<Route>);

impl Formed {
    fn new<'a>(identity: &str, members: impl IntoIterator<Item = &'a Keyed>) -> Self {
        let members: Vec<&Keyed> = members.into_iter().collect();
        let mut rejections = Vec::new();
        let group = form(members.clone(), &mut rejections);
        let order = group
            .as_ref()
            .and_then(|g| g.routes.iter().max_by(|a, b| a.cmp_weight(b)))
            .map(|heaviest| (heaviest.weight_lengths(), heaviest.clone()));
        let group = group.unwrap_or(Group { routes: Vec::new() });
        let mut clusters: Vec<Arc<Cluster>> = Vec::new();
        for name in group.routes.iter().flat_map(|r| r.clusters()) {
            if clusters.iter().all(|c| c.name != name)
                && let Some(c) = members
                    .iter()
                    .filter_map(|m| m.cluster.as_ref())
                    .find(|c| c.name == name)
            {
                clusters.push(c.clone());
            }
        }
        Self {
            identity: identity.to_owned(),
            order,
            group,
            rejections,
            clusters,
        }
    }

    pub fn group(&self) -> &Group {
        &self.group
    }

    /// Whether any member forms a route (else the group only rejects).
    pub fn has_routes(&self) -> bool {
        self.order.is_some()
    }

    /// The route Hosts associate the group by: every member shares its hostname.
    pub fn first(&self) -> &Route {
        &self.group.routes[0]
    }

    pub fn clusters(&self) -> &[Arc<Cluster>] {
        &self.clusters
    }

    /// Descending route weight, ties broken by the first member and then the identity, so the
    /// order never depends on input order. The numeric part of the weight is computed once.
    /// Only for groups that serve (with an order key).
    pub fn cmp_order(&self, other: &Self) -> Ordering {
        let (Some((a_lengths, a)), Some((b_lengths, b))) = (&self.order, &other.order) else {
            unreachable!("only groups that serve are ordered")
        };
        (b_lengths.cmp(a_lengths))
            .then_with(|| b.cmp_weight_names(a))
            .then_with(|| {
                self.group.routes[0]
                    .source
                    .cmp(&other.group.routes[0].source)
            })
            .then_with(|| self.identity.cmp(&other.identity))
    }
}

/// Forms one group from the Mappings sharing an identity; `None` when nothing in it can serve.
fn form(members: Vec<&Keyed>, rejections: &mut Vec<Rejection>) -> Option<Group> {
    // Most groups have one member: nothing to reconcile, no canary share, no mirror, and the
    // route is shared as it is.
    if let [only] = members[..]
        && !only.route.shadow
    {
        return Some(Group {
            routes: vec![only.route.clone()],
        });
    }
    let mut members: Vec<Route> = members.iter().map(|k| Route::clone(&k.route)).collect();
    // The namespace that owns the match: oldest Mapping first, then by namespace/name.
    members.sort_by(|a, b| {
        let created = |r: &Route| r.created.clone().unwrap_or_else(|| "~".into());
        created(a)
            .cmp(&created(b))
            .then_with(|| a.source.cmp(&b.source))
    });
    let owner = members[0].source.clone();
    let (mut members, others): (Vec<Route>, Vec<Route>) = members
        .into_iter()
        .partition(|r| r.source.namespace == owner.namespace);
    for r in others {
        rejections.push(reject(&r, Reason::Conflict, format!(
            "route conflict: {owner} already serves this match ({}); a route group never mixes namespaces",
            describe(&r)
        )));
    }
    members.sort_by(|a, b| a.source.cmp(&b.source).then_with(|| by_content(a, b)));

    // Core keys must agree (Emissary: "mismatched ..."): the path's kind, redirect vs proxy.
    let (first_path, first_source) = (
        std::mem::discriminant(&members[0].path),
        members[0].source.clone(),
    );
    let mut kept: Vec<Route> = Vec::new();
    for r in members {
        if std::mem::discriminant(&r.path) != first_path {
            rejections.push(reject(
                &r,
                Reason::Conflict,
                format!(
                    "mismatched prefix_regex/prefix_exact with {first_source} in the same group"
                ),
            ));
        } else if !r.shadow
            && kept
                .iter()
                .any(|k| !k.shadow && is_redirect(k) != is_redirect(&r))
        {
            rejections.push(reject(
                &r,
                Reason::Conflict,
                "a host_redirect Mapping must be the only non-shadow Mapping of its group".into(),
            ));
        } else if r.shadow && kept.iter().any(|k| k.shadow) {
            rejections.push(reject(
                &r,
                Reason::Conflict,
                "a group can have only one shadow Mapping".into(),
            ));
        } else {
            kept.push(r);
        }
    }

    let (shadows, mut primaries): (Vec<Route>, Vec<Route>) =
        kept.into_iter().partition(|r| r.shadow);
    assign_weights(&mut primaries, rejections);
    super::cors::flatten(&mut primaries);
    if let Some(shadow) = shadows.first() {
        if primaries.is_empty() {
            rejections.push(reject(
                shadow,
                Reason::Invalid,
                "a shadow Mapping needs a non-shadow Mapping with the same match".into(),
            ));
            return None;
        }
        let mirror = (
            shadow.clusters().next().unwrap_or_default().to_owned(),
            u32::from(shadow.weight.unwrap_or(100)),
        );
        for r in &mut primaries {
            if let RouteAction::Forward(f) = &mut r.action {
                f.mirrors.push(mirror.clone());
            }
        }
    }
    (!primaries.is_empty()).then(|| Group {
        routes: primaries.into_iter().map(Arc::new).collect(),
    })
}

/// Cumulative canary shares: weighted members in order, then the unweighted ones sharing the
/// remainder, the last pinned to 100. A lone member gets all traffic whatever its weight.
fn assign_weights(members: &mut Vec<Route>, rejections: &mut Vec<Rejection>) {
    if members.len() <= 1 {
        return;
    }
    let (weighted, unweighted): (Vec<Route>, Vec<Route>) = std::mem::take(members)
        .into_iter()
        .partition(|r| r.weight.is_some());
    let mut total = 0u32;
    for mut r in weighted {
        let w = u32::from(r.weight.unwrap_or(0));
        if total + w > 100 {
            rejections.push(reject(
                &r,
                Reason::Conflict,
                format!(
                    "weight {w} takes its group's total to {} (over 100)",
                    total + w
                ),
            ));
            continue;
        }
        total += w;
        r.fraction = Some(total);
        members.push(r);
    }
    // In u64: the share arithmetic multiplies by the number of members, which is the user's.
    let n = u64::try_from(unweighted.len()).unwrap_or(u64::MAX);
    let total = u64::from(total);
    for (i, mut r) in (1u64..).zip(unweighted) {
        // The remainder in equal, rounded steps; the last reaches exactly 100.
        let share = if i == n {
            100
        } else {
            total + (100u64.saturating_sub(total).saturating_mul(i) + n / 2) / n
        };
        r.fraction = Some(u32::try_from(share).unwrap_or(100));
        members.push(r);
    }
    if members.len() == 1 {
        members[0].fraction = None;
    }
}

/// Members with one source are one object declared twice (a directory of YAML can hold that):
/// ordered by what they say, so that a group never depends on the order its members came in
/// (the order of the files, or of the builds that added them).
fn by_content(a: &Route, b: &Route) -> Ordering {
    format!("{a:?}").cmp(&format!("{b:?}"))
}

fn is_redirect(r: &Route) -> bool {
    matches!(r.action, RouteAction::Redirect(_))
}

fn reject(r: &Route, reason: Reason, message: String) -> Rejection {
    Rejection::new(r.source.clone(), reason, message)
}

fn describe(r: &Route) -> String {
    let path = match &r.path {
        PathMatch::Prefix(p) => format!("prefix {p}"),
        PathMatch::Exact(p) => format!("path {p}"),
        PathMatch::Regex(p) => format!("prefix regex {p}"),
    };
    match &r.hostname {
        Some(h) => format!("{path}, hostname {h}"),
        None => path,
    }
}
