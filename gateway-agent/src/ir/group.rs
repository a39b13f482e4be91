//! Route groups (Emissary §2.1–2.2): Mappings with the same match form one group whose members
//! split traffic as canaries; groups are ordered by Emissary's route weight.
//!
//! Unlike Emissary, a group never mixes namespaces: another team's Mapping with the same match
//! cannot join a route as a canary and siphon its traffic. The namespace whose Mapping is oldest
//! (then first by namespace/name) keeps the match; the others are rejected and say why.

use std::{cmp::Ordering, collections::HashSet, sync::Arc};

use crate::memo::{AddressHasher, ByAddress, ByAddressMemo};

use super::{
    Rejection,
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
    identity: String,
}

impl Keyed {
    pub fn new(route: Route) -> Self {
        Self {
            identity: identity(&route),
            route: Arc::new(route),
        }
    }
}

/// The identity Emissary groups by: method (GET when unset), prefix, header and query
/// conditions, and a nonzero precedence. The path's kind (regex, exact) is not part of it.
fn identity(route: &Route) -> String {
    use std::fmt::Write;
    let condition = |out: &mut String, h: &HeaderMatch| {
        let _ = match &h.value {
            StringMatch::Exact(v) => write!(out, "\0{}=e:{v}", h.name),
            StringMatch::Regex(v) => write!(out, "\0{}=r:{v}", h.name),
            StringMatch::Present => write!(out, "\0{}=p", h.name),
            StringMatch::HostGlob(v) => write!(out, "\0{}=h:{v}", h.name),
        };
    };
    let mut id = String::with_capacity(64);
    match route.headers.iter().find(|h| h.name == ":method") {
        Some(m) => condition(&mut id, m),
        None => id.push_str("\0:method=e:GET"),
    }
    let _ = write!(id, "\0{}\0{}", route.path.text(), route.precedence);
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
/// the other: a group whose members are the same routes as in the last build (by identity) is
/// kept as formed, and keeps its place in the order, so a build after one change forms and
/// places only the groups that change touched. The result is the same as from scratch.
#[derive(Debug, Default)]
pub struct Grouper {
    formed: ByAddressMemo<Vec<ByAddress<Route>>, Arc<Formed>>,
    /// The last build's groups that serve, in evaluation order.
    order: Vec<Arc<Formed>>,
}

impl Grouper {
    /// The groups of `routes` in evaluation order. Members that cannot join their group are
    /// moved to `rejections`.
    pub fn groups<'a>(
        &mut self,
        routes: impl IntoIterator<Item = &'a Keyed>,
        rejections: &mut Vec<Rejection>,
    ) -> Vec<Arc<Formed>> {
        // Identities are long strings: a fast hash (seeded, so not chosen by whoever names routes).
        let mut by_identity: foldhash::HashMap<&str, Vec<&Keyed>> = Default::default();
        for route in routes {
            by_identity.entry(&route.identity).or_default().push(route);
        }
        let mut kept: HashSet<*const Formed, AddressHasher> =
            HashSet::with_capacity_and_hasher(by_identity.len(), Default::default());
        let mut fresh = Vec::new();
        for (identity, members) in by_identity {
            let key = members.iter().map(|k| ByAddress(k.route.clone())).collect();
            let mut formed_now = false;
            let formed = self.formed.get_or_insert_with(key, || {
                formed_now = true;
                Arc::new(Formed::new(identity, members))
            });
            rejections.extend_from_slice(&formed.rejections);
            if formed.order.is_some() {
                if formed_now {
                    fresh.push(formed);
                } else {
                    kept.insert(Arc::as_ptr(&formed));
                }
            }
        }
        self.formed.finish();
        let capacity = kept.len() + fresh.len();
        fresh.sort_unstable_by(|a, b| a.cmp_order(b));
        // What was kept is still in order: merge what was formed now into it.
        let mut kept = std::mem::take(&mut self.order)
            .into_iter()
            .filter(|f| kept.contains(&Arc::as_ptr(f)))
            .peekable();
        let mut fresh = fresh.into_iter().peekable();
        let mut order = Vec::with_capacity(capacity);
        loop {
            let next = match (kept.peek(), fresh.peek()) {
                (Some(k), Some(f)) if k.cmp_order(f).is_le() => kept.next(),
                (_, Some(_)) => fresh.next(),
                (Some(_), None) => kept.next(),
                (None, None) => break,
            };
            order.extend(next);
        }
        self.order = order.clone();
        order
    }
}

/// One identity's group as formed from its members (or why none can serve), with what it is
/// ordered by: its heaviest route (and that route's numeric weight).
#[derive(Debug)]
pub struct Formed {
    identity: String,
    order: Option<OrderKey>,
    group: Group,
    rejections: Vec<Rejection>,
}

/// A group's heaviest route, and that route's numeric weight.
type OrderKey = ((i32, usize, usize, usize), Arc<Route>);

impl Formed {
    fn new(identity: &str, members: Vec<&Keyed>) -> Self {
        let mut rejections = Vec::new();
        let group = form(members, &mut rejections);
        let order = group
            .as_ref()
            .and_then(|g| g.routes.iter().max_by(|a, b| a.cmp_weight(b)))
            .map(|heaviest| (heaviest.weight_lengths(), heaviest.clone()));
        Self {
            identity: identity.to_owned(),
            order,
            group: group.unwrap_or(Group { routes: Vec::new() }),
            rejections,
        }
    }

    pub fn group(&self) -> &Group {
        &self.group
    }

    /// Descending route weight, ties broken by the first member and then the identity, so the
    /// order never depends on input order. The numeric part of the weight is computed once.
    /// Only for groups that serve (with an order key).
    fn cmp_order(&self, other: &Self) -> Ordering {
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
        rejections.push(reject(&r, format!(
            "route conflict: {owner} already serves this match ({}); a route group never mixes namespaces",
            describe(&r)
        )));
    }
    members.sort_by(|a, b| a.source.cmp(&b.source));

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
                "a host_redirect Mapping must be the only non-shadow Mapping of its group".into(),
            ));
        } else if r.shadow && kept.iter().any(|k| k.shadow) {
            rejections.push(reject(
                &r,
                "a group can have only one shadow Mapping".into(),
            ));
        } else {
            kept.push(r);
        }
    }

    let (shadows, mut primaries): (Vec<Route>, Vec<Route>) =
        kept.into_iter().partition(|r| r.shadow);
    assign_weights(&mut primaries, rejections);
    if let Some(shadow) = shadows.first() {
        if primaries.is_empty() {
            rejections.push(reject(
                shadow,
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
    let n = unweighted.len() as u32;
    for (i, mut r) in unweighted.into_iter().enumerate() {
        let i = i as u32 + 1;
        // The remainder in equal, rounded steps; the last reaches exactly 100.
        r.fraction = Some(if i == n {
            100
        } else {
            total + ((100 - total) * i + n / 2) / n
        });
        members.push(r);
    }
    if members.len() == 1 {
        members[0].fraction = None;
    }
}

fn is_redirect(r: &Route) -> bool {
    matches!(r.action, RouteAction::Redirect(_))
}

fn reject(r: &Route, reason: String) -> Rejection {
    Rejection {
        object: r.source.clone(),
        reason,
    }
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
