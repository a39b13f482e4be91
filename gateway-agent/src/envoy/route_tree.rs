//! A virtual host's routes as Envoy's matcher tree (`VirtualHost.matcher`): Envoy finds a
//! route by the literal prefixes of the path in a trie, where a route list is scanned from the
//! top (on one worker, the last of 10,000 listed prefix routes serves at ~15% of the first's
//! rate; through the tree, at the first's).
//!
//! Emissary's order is kept exactly. Envoy evaluates the tree so (`source/common/matcher`,
//! checked against the real Envoy by `tests/route_tree.rs`):
//! - a `prefix_match_map` on `:path` tries the keys that start the path, longest first; a key
//!   whose nested matcher does not match falls back to the next shorter key, then to the map's
//!   `on_no_match`;
//! - a nested `matcher_list` tries its predicates in order, then its own `on_no_match`;
//! - the action found (a `Route` or a `RouteList`) is then matched as listed routes are (each
//!   route's own `match` is evaluated), and a list none of whose routes matches answers 404: it
//!   does not fall back.
//!
//! So the routes are cut, in order, into segments, each one map, chained by `on_no_match`:
//! - within a segment no route's key is a proper prefix of a later route's: the tree tries
//!   longer keys first, and the list's order must agree wherever two routes can match one path;
//! - within a key, routes keep their order. A route whose conditions beyond its key a predicate
//!   states exactly (headers, `:authority`, `:method`, `X-Forwarded-Proto`, an exact path) is a
//!   predicate; the first route that matches every path its key starts ends the key (any later
//!   one of that key is unreachable in the list too); a route whose conditions no predicate
//!   states (a canary's share, query parameters) is served in a `RouteList` with the routes
//!   after it up to one that always matches, a list that cannot fail;
//! - from the first route no segment can take (a regex or case-insensitive path, a canary with
//!   no route behind it), the rest is one `RouteList` at the end, whose 404 is the list's.
//!
//! Then the keys of a segment are gathered, a few routes at a time, under their common prefix
//! ([`gather`]): Envoy builds every action of a tree apart (an `Any` unpacked, validated and
//! made a route), which at 10,000 one-route keys made applying a changed table twice as slow as
//! the same routes listed (150 ms against 83 on the machine of issue #17; 70 gathered by ten).
//! A gathered key's `RouteList` holds its keys' routes in order, then the routes of the keys
//! that are proper prefixes of it, which the tree would fall back to: a list does not fall back.

use std::{collections::HashMap, ops::Range};

use envoy_types::pb::{
    envoy::{
        config::route::v3::HeaderMatcher,
        r#type::matcher::v3::{
            HttpRequestHeaderMatchInput, StringMatcher as EnvoyStringMatcher,
            string_matcher as envoy,
        },
    },
    google::protobuf::Any,
    xds::{
        core::v3::TypedExtensionConfig,
        r#type::matcher::v3::{
            RegexMatcher, StringMatcher,
            matcher::matcher_list::predicate::{
                MatchType, PredicateList, SinglePredicate, single_predicate,
            },
            regex_matcher,
            string_matcher::MatchPattern,
        },
    },
};
use prost::{
    Message,
    encoding::{WireType, encode_key, encode_varint, encoded_len_varint, message},
};

pub(super) use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::Predicate;

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;

/// Segments chain by nesting (each is the `on_no_match` of the one before): a bound on the
/// depth Envoy parses and evaluates. Routes past the last segment are listed.
const MAX_SEGMENTS: usize = 8;

/// The longest prefix the tree keys (bytes): a key is checked against the shorter keys of its
/// segment, which costs up to its length squared, and a prefix is a user's string of any
/// length. From a longer one, routes are listed.
const MAX_KEY: usize = 256;

/// The most routes a gathered key's list holds of its own keys (and as many again of the keys
/// it falls back to): scanning a dozen routes costs no measurable rate. A virtual host of no
/// more routes is listed, not treed. Unit tests gather by 3, so that random sets of a dozen
/// routes are cut into several lists.
pub(super) const GATHER: usize = if cfg!(test) { 3 } else { 16 };

const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.Route";
const ROUTE_LIST: &str = "type.googleapis.com/envoy.config.route.v3.RouteList";
const HEADER_INPUT: &str = "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput";

/// What the tree needs to know of one route as its virtual host serves it.
#[derive(Debug)]
pub(super) struct Shape<'a> {
    /// The literal prefix every path it matches starts with; `None`: not one the tree can key
    /// (a regex or case-insensitive path).
    pub key: Option<&'a str>,
    /// Its conditions beyond the key, as predicates; `None`: some condition no predicate states.
    pub conditions: Option<Vec<Predicate>>,
}

impl Shape<'_> {
    /// Matches every path its key starts.
    fn always(&self) -> bool {
        self.conditions.as_ref().is_some_and(Vec::is_empty)
    }
}

/// The routes of a virtual host (by index, in order) as the tree serves them.
#[derive(Debug, PartialEq)]
pub(super) struct Plan<'a> {
    segments: Vec<Segment<'a>>,
    /// Listed after the last segment.
    rest: Range<usize>,
}

#[derive(Debug, Default, PartialEq)]
struct Segment<'a> {
    nodes: HashMap<&'a str, Node, foldhash::fast::FixedState>,
    /// The lengths of the keys `plan` put here (not of the prefixes gathered after): a key's
    /// shorter prefixes are looked up only at these (the prefixes of a table are often all of
    /// one length, so none is).
    lengths: Lengths,
}

/// A set of key lengths, up to [`MAX_KEY`].
#[derive(Debug, Default, PartialEq)]
struct Lengths([u64; MAX_KEY / 64 + 1]);

impl Lengths {
    fn insert(&mut self, len: usize) {
        if let Some(word) = self.0.get_mut(len / 64) {
            *word |= 1 << (len % 64);
        }
    }

    fn contains(&self, len: usize) -> bool {
        self.0
            .get(len / 64)
            .is_some_and(|w| w & (1 << (len % 64)) != 0)
    }
}

/// One key of a segment: routes tried in order.
#[derive(Debug, Default, PartialEq)]
struct Node {
    tries: Vec<(Predicate, usize)>,
    /// Matches whatever reaches it: one route, a list that ends with one that always matches,
    /// or a gathered key's list, which holds every route the key would fall back to.
    last: Option<Vec<usize>>,
}

impl Node {
    /// Its routes, in order.
    fn routes(&self) -> impl Iterator<Item = usize> + '_ {
        let tries = self.tries.iter().map(|(_, i)| *i);
        tries.chain(self.last.iter().flatten().copied())
    }

    fn len(&self) -> usize {
        self.tries.len() + self.last.as_ref().map_or(0, Vec::len)
    }
}

impl Segment<'_> {
    /// Whether a key already here starts `key` (and is shorter).
    fn has_proper_prefix_of(&self, key: &str) -> bool {
        self.proper_prefixes_of(key).next().is_some()
    }

    /// The nodes of the keys here that start `key` and are shorter.
    fn proper_prefixes_of<'k>(&'k self, key: &'k str) -> impl Iterator<Item = &'k Node> + 'k {
        (1..key.len())
            .filter(|&end| self.lengths.contains(end) && key.is_char_boundary(end))
            .filter_map(|end| self.nodes.get(&key[..end]))
    }
}

/// The tree for `shapes` (a virtual host's routes in order), or `None` where the first route
/// cannot be keyed (the list serves them all as well as a tree would).
pub(super) fn plan<'a>(shapes: &[Shape<'a>]) -> Option<Plan<'a>> {
    let n = shapes.len();
    let mut segments = Vec::new();
    let mut current = Segment {
        nodes: HashMap::with_capacity_and_hasher(n, Default::default()),
        ..Segment::default()
    };
    let mut i = 0;
    while i < n {
        let Some(key) = shapes[i].key.filter(|k| k.len() <= MAX_KEY) else {
            break;
        };
        if current.has_proper_prefix_of(key) {
            if segments.len() + 1 == MAX_SEGMENTS {
                break;
            }
            segments.push(std::mem::take(&mut current));
        }
        if current.nodes.get(key).is_some_and(|n| n.last.is_some()) {
            // An earlier route of this key matches every request this one could.
            i += 1;
            continue;
        }
        let (tries, last, next) = match &shapes[i].conditions {
            Some(c) if c.is_empty() => (None, Some(vec![i]), i + 1),
            Some(c) => (Some((all_of(c), i)), None, i + 1),
            None => {
                // Listed up to the first route of this key that always matches: a list that
                // cannot fail, since it cannot fall back.
                let end = (i..n)
                    .take_while(|&j| shapes[j].key == Some(key))
                    .find(|&j| shapes[j].always());
                let Some(end) = end else { break };
                (None, Some((i..=end).collect()), end + 1)
            }
        };
        current.lengths.insert(key.len());
        let node = current.nodes.entry(key).or_default();
        node.tries.extend(tries);
        node.last = node.last.take().or(last);
        i = next;
    }
    if !current.nodes.is_empty() {
        segments.push(current);
    }
    let count = segments.len();
    for (s, segment) in segments.iter_mut().enumerate() {
        // After the last segment, with nothing listed, a path no key takes is answered 404,
        // as a list that does not match answers.
        let closed = s + 1 == count && i == n;
        gather(segment, closed);
    }
    (!segments.is_empty()).then_some(Plan {
        segments,
        rest: i..n,
    })
}

/// Replaces the keys of `segment` under a common prefix by that prefix, whose list holds their
/// routes (in order: in a segment a key comes before the keys that start it) and then the
/// routes of the keys it would fall back to, the keys that start it. That list must not end
/// where the tree would go on: a key that starts it matches whatever reaches it, or the
/// segment is `closed` (a miss is a 404 either way).
///
/// The keys are cut as a trie is: a prefix gathers every key it starts (they are adjacent in
/// order), when their routes are few enough; else each next byte's keys are cut alike.
fn gather(segment: &mut Segment<'_>, closed: bool) {
    let mut keys: Vec<&str> = segment.nodes.keys().copied().collect();
    keys.sort_unstable();
    let mut gathered = Vec::new();
    // The ranges of `keys` left to cut (a stack of them, not a range of numbers).
    #[allow(clippy::single_range_in_vec_init)]
    let mut ranges = vec![0..keys.len()];
    while let Some(range) = ranges.pop() {
        let within = &keys[range.clone()];
        let [first, .., last] = within else { continue };
        let common = common_len(first, last);
        let routes: usize = within.iter().map(|k| segment.nodes[k].len()).sum();
        if routes <= GATHER
            && let Some(list) = gathered_list(segment, &keys, range.clone(), common, closed)
        {
            gathered.push((range, list));
            continue;
        }
        // The keys differ at byte `common`, past the one key that may end there.
        let mut start = range.start + usize::from(first.len() == common);
        while start < range.end {
            let byte = keys[start].as_bytes()[common];
            let run = keys[start..range.end].partition_point(|k| k.as_bytes()[common] == byte);
            ranges.push(start..start + run);
            start += run;
        }
    }
    for (range, (prefix, list)) in gathered {
        for key in &keys[range] {
            segment.nodes.remove(key);
        }
        let node = Node {
            tries: Vec::new(),
            last: Some(list),
        };
        segment.nodes.insert(prefix, node);
    }
}

/// The length of the longest common prefix of two strings, in bytes.
fn common_len(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

/// The prefix that gathers `keys[range]` (sorted) and its list, or `None` where the keys cannot
/// be gathered: no prefix of whole characters starts exactly them, or the list would end where
/// the tree goes on, or the routes fallen back to are too many to copy.
fn gathered_list<'a>(
    segment: &Segment<'a>,
    keys: &[&'a str],
    range: std::ops::Range<usize>,
    common: usize,
    closed: bool,
) -> Option<(&'a str, Vec<usize>)> {
    let first = keys[range.start];
    let end = (0..=common).rev().find(|&e| first.is_char_boundary(e))?;
    let prefix = first.get(..end).filter(|p| !p.is_empty())?;
    let outside = |k: Option<&&str>| k.is_some_and(|k| k.starts_with(prefix));
    if outside(range.start.checked_sub(1).and_then(|b| keys.get(b))) || outside(keys.get(range.end))
    {
        return None;
    }
    let fallback: Vec<&Node> = segment.proper_prefixes_of(prefix).collect();
    // A key that starts the prefix, or the prefix itself, takes whatever reaches it.
    let ends = |n: &&Node| n.last.is_some();
    let own = segment.nodes.get(prefix);
    if !(closed || own.iter().chain(&fallback).any(ends)) {
        return None;
    }
    if fallback.iter().map(|n| n.len()).sum::<usize>() > GATHER {
        return None;
    }
    let mut list: Vec<usize> = keys[range]
        .iter()
        .map(|k| &segment.nodes[k])
        .chain(fallback)
        .flat_map(Node::routes)
        .collect();
    list.sort_unstable();
    Some((prefix, list))
}

/// Every predicate of `conditions` (at least one).
fn all_of(conditions: &[Predicate]) -> Predicate {
    match conditions {
        [one] => one.clone(),
        more => Predicate {
            match_type: Some(MatchType::AndMatcher(PredicateList {
                predicate: more.to_vec(),
            })),
        },
    }
}

fn any_of(predicates: Vec<Predicate>) -> Predicate {
    Predicate {
        match_type: Some(MatchType::OrMatcher(PredicateList {
            predicate: predicates,
        })),
    }
}

/// A request header's value, as a predicate's input: a pseudo-header (`:path`, `:authority`,
/// `:method`) or a header, several values joined with commas as route header matchers see them.
fn header_is(name: &str, value: StringMatcher) -> Predicate {
    Predicate {
        match_type: Some(MatchType::SinglePredicate(SinglePredicate {
            input: Some(header_input(name)),
            matcher: Some(single_predicate::Matcher::ValueMatch(value)),
        })),
    }
}

fn header_input(name: &str) -> TypedExtensionConfig {
    TypedExtensionConfig {
        name: "request-header".to_owned(),
        typed_config: Some(Any {
            type_url: HEADER_INPUT.to_owned(),
            value: HttpRequestHeaderMatchInput {
                header_name: name.to_owned(),
            }
            .encode_to_vec(),
        }),
    }
}

fn pattern(pattern: MatchPattern, ignore_case: bool) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case,
    }
}

/// A route header condition as a predicate; `None` for one it cannot state.
pub(super) fn header_predicate(h: &HeaderMatcher) -> Option<Predicate> {
    use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier as Spec;
    if h.invert_match || h.treat_missing_header_as_empty {
        return None;
    }
    let value = match h.header_match_specifier.as_ref()? {
        Spec::StringMatch(m) => string_matcher(m)?,
        // Any value, empty included (a header value holds no line break).
        Spec::PresentMatch(true) => pattern(MatchPattern::SafeRegex(regex(".*")), false),
        _ => return None,
    };
    Some(header_is(&h.name, value))
}

/// Envoy's string matcher as the xds one predicates take (the same message in another package).
fn string_matcher(m: &EnvoyStringMatcher) -> Option<StringMatcher> {
    let p = match m.match_pattern.as_ref()? {
        envoy::MatchPattern::Exact(v) => MatchPattern::Exact(v.clone()),
        envoy::MatchPattern::Prefix(v) => MatchPattern::Prefix(v.clone()),
        envoy::MatchPattern::Suffix(v) => MatchPattern::Suffix(v.clone()),
        envoy::MatchPattern::Contains(v) => MatchPattern::Contains(v.clone()),
        envoy::MatchPattern::SafeRegex(r) => MatchPattern::SafeRegex(regex(&r.regex)),
        envoy::MatchPattern::Custom(_) => return None,
    };
    Some(pattern(p, m.ignore_case))
}

/// RE2, as Envoy's own matchers: the xds message requires the engine named.
fn regex(r: &str) -> RegexMatcher {
    RegexMatcher {
        regex: r.to_owned(),
        engine_type: Some(regex_matcher::EngineType::GoogleRe2(
            regex_matcher::GoogleRe2::default(),
        )),
    }
}

/// An exact path (Envoy compares it with the path before any query or fragment), as a
/// predicate on `:path`; `None` for a path that holds either separator, which no path matches.
pub(super) fn exact_path(path: &str) -> Option<Predicate> {
    if path.contains(['?', '#']) {
        return None;
    }
    let on_path = |p: MatchPattern| header_is(":path", pattern(p, false));
    Some(any_of(vec![
        on_path(MatchPattern::Exact(path.to_owned())),
        on_path(MatchPattern::Prefix(format!("{path}?"))),
        on_path(MatchPattern::Prefix(format!("{path}#"))),
    ]))
}

/// The routes a tree is written with: each one's encoded length, and its encoding.
pub(super) trait Routes {
    fn len(&self, i: usize) -> usize;
    fn write(&self, i: usize, out: &mut Vec<u8>);
}

/// The `VirtualHost.matcher` of `plan`, encoded. Written by hand, in one pass over lengths
/// computed first (a tree of 10,000 routes would otherwise be copied once per level), and where
/// prost would not be deterministic: a match map is a `HashMap`, written here in key order, so
/// that a table encodes the same every time.
pub(super) fn encode_matcher(plan: &Plan, routes: &impl Routes) -> Vec<u8> {
    // Keys in order and each key's `OnMatch` length, per segment; then each segment's length,
    // innermost (the last) first, as each is the `on_no_match` of the one before.
    let keyed: Vec<Vec<(&str, &Node, usize)>> = plan
        .segments
        .iter()
        .map(|segment| {
            let mut keys: Vec<(&str, &Node, usize)> = segment
                .nodes
                .iter()
                .map(|(k, node)| (*k, node, node_len(node, routes)))
                .collect();
            keys.sort_unstable_by_key(|(k, ..)| *k);
            keys
        })
        .collect();
    let rest: Vec<usize> = plan.rest.clone().collect();
    let rest_len = (!rest.is_empty()).then(|| on_action_len(&rest, routes));
    let mut lens = vec![0; keyed.len()];
    let mut on_no_match = rest_len;
    for (k, keys) in keyed.iter().enumerate().rev() {
        lens[k] = segment_len(keys, on_no_match);
        on_no_match = Some(field_len(1, lens[k]));
    }
    let mut out = Vec::with_capacity(lens.first().copied().unwrap_or_default());
    for (k, keys) in keyed.iter().enumerate() {
        // Matcher: matcher_tree = 2 { input = 1, prefix_match_map = 3 { map = 1: entries
        // { key = 1, value = 2 } } }, then on_no_match = 3 (any field order decodes alike).
        let map_len = map_len(keys);
        field_header(2, tree_len(map_len), &mut out);
        message::encode(1, &header_input(":path"), &mut out);
        field_header(3, map_len, &mut out);
        for (key, node, len) in keys {
            field_header(1, entry_len(key, *len), &mut out);
            write_str(1, key, &mut out);
            field_header(2, *len, &mut out);
            write_node(node, routes, &mut out);
        }
        match (lens.get(k + 1), rest_len) {
            (Some(next), _) => {
                // OnMatch.matcher = 1: the next segment, written next.
                field_header(3, field_len(1, *next), &mut out);
                field_header(1, *next, &mut out);
            }
            (None, Some(len)) => {
                field_header(3, len, &mut out);
                write_on_action(&rest, routes, &mut out);
            }
            (None, None) => {}
        }
    }
    debug_assert_eq!(Some(out.len()), lens.first().copied());
    out
}

/// A field's length, key and length prefix included.
fn field_len(tag: u32, len: usize) -> usize {
    prost::encoding::key_len(tag) + encoded_len_varint(len as u64) + len
}

fn field_header(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

/// A string field's length (as prost's `string::encoded_len`, without a `String`).
fn str_len(tag: u32, value: &str) -> usize {
    field_len(tag, value.len())
}

fn write_str(tag: u32, value: &str, out: &mut Vec<u8>) {
    field_header(tag, value.len(), out);
    out.extend_from_slice(value.as_bytes());
}

fn segment_len(keys: &[(&str, &Node, usize)], on_no_match: Option<usize>) -> usize {
    let map_len = map_len(keys);
    on_no_match.map_or(0, |len| field_len(3, len)) + field_len(2, tree_len(map_len))
}

/// `MatchMap.map`: an entry field (1) per key.
fn map_len(keys: &[(&str, &Node, usize)]) -> usize {
    keys.iter()
        .map(|(key, _, len)| field_len(1, entry_len(key, *len)))
        .sum()
}

fn tree_len(map_len: usize) -> usize {
    message::encoded_len(1, &header_input(":path")) + field_len(3, map_len)
}

fn entry_len(key: &str, on_match_len: usize) -> usize {
    str_len(1, key) + field_len(2, on_match_len)
}

/// A key's `OnMatch`: its route (or list) when no predicate comes first, else a `matcher_list`
/// of the predicates with the route (or list) as `on_no_match`. A key with nothing that always
/// matches has no `on_no_match`: the map then tries shorter keys.
fn node_len(node: &Node, routes: &impl Routes) -> usize {
    if node.tries.is_empty() {
        return node.last.as_deref().map_or(0, |l| on_action_len(l, routes));
    }
    field_len(1, list_matcher_len(node, routes))
}

fn list_matcher_len(node: &Node, routes: &impl Routes) -> usize {
    node.last
        .as_deref()
        .map_or(0, |l| field_len(3, on_action_len(l, routes)))
        + field_len(1, list_len(node, routes))
}

/// `MatcherList.matchers`: a field matcher (1) per predicate.
fn list_len(node: &Node, routes: &impl Routes) -> usize {
    node.tries
        .iter()
        .map(|(p, i)| field_len(1, try_len(p, *i, routes)))
        .sum()
}

fn try_len(predicate: &Predicate, i: usize, routes: &impl Routes) -> usize {
    // FieldMatcher: predicate = 1, on_match = 2.
    message::encoded_len(1, predicate) + field_len(2, on_action_len(&[i], routes))
}

fn write_node(node: &Node, routes: &impl Routes, out: &mut Vec<u8>) {
    if node.tries.is_empty() {
        if let Some(last) = &node.last {
            write_on_action(last, routes, out);
        }
        return;
    }
    // OnMatch.matcher = 1 { on_no_match = 3, matcher_list = 1 { matchers = 1 } }.
    field_header(1, list_matcher_len(node, routes), out);
    if let Some(last) = &node.last {
        field_header(3, on_action_len(last, routes), out);
        write_on_action(last, routes, out);
    }
    field_header(1, list_len(node, routes), out);
    for (predicate, i) in &node.tries {
        field_header(1, try_len(predicate, *i, routes), out);
        message::encode(1, predicate, out);
        field_header(2, on_action_len(&[*i], routes), out);
        write_on_action(&[*i], routes, out);
    }
}

/// An `OnMatch` whose action is route `list[0]` alone, or the list of them.
fn on_action_len(list: &[usize], routes: &impl Routes) -> usize {
    // OnMatch.action = 2.
    field_len(2, action_len(list, routes))
}

/// The action's `TypedExtensionConfig { name, typed_config: Any { type_url, value } }`.
fn action_len(list: &[usize], routes: &impl Routes) -> usize {
    let (type_url, value) = action_value(list, routes);
    str_len(1, "route") + field_len(2, any_len(type_url, value))
}

/// `Any { type_url = 1, value = 2 }` holding `value` bytes.
fn any_len(type_url: &str, value: usize) -> usize {
    str_len(1, type_url) + field_len(2, value)
}

/// The action's type and the length of its value: a `Route`, or a `RouteList { routes = 1 }`.
fn action_value(list: &[usize], routes: &impl Routes) -> (&'static str, usize) {
    match list {
        [one] => (ROUTE, routes.len(*one)),
        many => (
            ROUTE_LIST,
            many.iter().map(|&i| field_len(1, routes.len(i))).sum(),
        ),
    }
}

fn write_on_action(list: &[usize], routes: &impl Routes, out: &mut Vec<u8>) {
    let (type_url, value) = action_value(list, routes);
    field_header(2, action_len(list, routes), out);
    write_str(1, "route", out);
    field_header(2, any_len(type_url, value), out);
    write_str(1, type_url, out);
    field_header(2, value, out);
    match list {
        [one] => routes.write(*one, out),
        many => {
            for &i in many {
                field_header(1, routes.len(i), out);
                routes.write(i, out);
            }
        }
    }
}
