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
    encoding::{encode_key, encode_varint, message, string},
};

use super::length_delimited;

pub(super) use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::Predicate;

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;

/// Segments chain by nesting (each is the `on_no_match` of the one before): a bound on the
/// depth Envoy parses and evaluates. Routes past the last segment are listed.
const MAX_SEGMENTS: usize = 8;

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
pub(super) struct Plan {
    segments: Vec<Segment>,
    /// Listed after the last segment.
    rest: Range<usize>,
}

#[derive(Debug, Default, PartialEq)]
struct Segment {
    nodes: HashMap<String, Node, foldhash::fast::FixedState>,
}

/// One key of a segment: routes tried in order.
#[derive(Debug, Default, PartialEq)]
struct Node {
    tries: Vec<(Predicate, usize)>,
    /// Matches whatever reaches it: one route, or a list that ends with one that always
    /// matches.
    last: Option<Vec<usize>>,
}

impl Segment {
    /// Whether a key already here starts `key` (and is shorter).
    fn has_proper_prefix_of(&self, key: &str) -> bool {
        (1..key.len()).any(|end| key.is_char_boundary(end) && self.nodes.contains_key(&key[..end]))
    }
}

/// The tree for `shapes` (a virtual host's routes in order), or `None` where the first route
/// cannot be keyed (the list serves them all as well as a tree would).
pub(super) fn plan(shapes: &[Shape]) -> Option<Plan> {
    let n = shapes.len();
    let mut segments = Vec::new();
    let mut current = Segment::default();
    let mut i = 0;
    while i < n {
        let Some(key) = shapes[i].key else { break };
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
        let node = current.nodes.entry(key.to_owned()).or_default();
        node.tries.extend(tries);
        node.last = node.last.take().or(last);
        i = next;
    }
    if !current.nodes.is_empty() {
        segments.push(current);
    }
    (!segments.is_empty()).then_some(Plan {
        segments,
        rest: i..n,
    })
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

/// The `VirtualHost.matcher` of `plan`, encoded; `route(i, out)` writes route `i`'s encoding.
/// Written by hand where prost would not be deterministic: a match map is a `HashMap`, written
/// here in key order, so that a table encodes the same every time.
pub(super) fn encode_matcher(plan: &Plan, route: &mut impl FnMut(usize, &mut Vec<u8>)) -> Vec<u8> {
    // Innermost first: the rest, then each segment as the `on_no_match` of the one before.
    let mut on_no_match = (!plan.rest.is_empty()).then(|| {
        let mut on_match = Vec::new();
        encode_action(&plan.rest.clone().collect::<Vec<_>>(), route, &mut on_match);
        on_match
    });
    let mut matcher = Vec::new();
    for segment in plan.segments.iter().rev() {
        matcher = encode_segment(segment, on_no_match.as_deref(), route);
        let mut on_match = Vec::new();
        // OnMatch.matcher = 1.
        length_delimited(1, &matcher, &mut on_match);
        on_no_match = Some(on_match);
    }
    matcher
}

/// A `Matcher`: a `prefix_match_map` on `:path` over the segment's keys (in key order), then
/// `on_no_match` (an encoded `OnMatch`).
fn encode_segment(
    segment: &Segment,
    on_no_match: Option<&[u8]>,
    route: &mut impl FnMut(usize, &mut Vec<u8>),
) -> Vec<u8> {
    let mut keys: Vec<&String> = segment.nodes.keys().collect();
    keys.sort_unstable();
    let mut map = Vec::new();
    for key in keys {
        let node = &segment.nodes[key];
        let mut on_match = Vec::new();
        encode_node(node, route, &mut on_match);
        let mut entry = Vec::new();
        string::encode(1, key, &mut entry);
        length_delimited(2, &on_match, &mut entry);
        // MatchMap.map = 1.
        length_delimited(1, &entry, &mut map);
    }
    let mut tree = Vec::new();
    // MatcherTree: input = 1, prefix_match_map = 3.
    message::encode(1, &header_input(":path"), &mut tree);
    length_delimited(3, &map, &mut tree);
    let mut matcher = Vec::new();
    // Matcher: on_no_match = 3 (prost writes it first), matcher_tree = 2.
    if let Some(on_no_match) = on_no_match {
        length_delimited(3, on_no_match, &mut matcher);
    }
    length_delimited(2, &tree, &mut matcher);
    matcher
}

/// A key's `OnMatch`: its route (or list) when no predicate comes first, else a `matcher_list`
/// of the predicates with the route (or list) as `on_no_match`. A key with nothing that always
/// matches has no `on_no_match`: the map then tries shorter keys.
fn encode_node(node: &Node, route: &mut impl FnMut(usize, &mut Vec<u8>), out: &mut Vec<u8>) {
    if node.tries.is_empty() {
        if let Some(last) = &node.last {
            encode_action(last, route, out);
        }
        return;
    }
    let mut list = Vec::new();
    for (predicate, i) in &node.tries {
        let mut on_match = Vec::new();
        encode_action(&[*i], route, &mut on_match);
        let mut field = Vec::new();
        // FieldMatcher: predicate = 1, on_match = 2.
        message::encode(1, predicate, &mut field);
        length_delimited(2, &on_match, &mut field);
        // MatcherList.matchers = 1.
        length_delimited(1, &field, &mut list);
    }
    let mut matcher = Vec::new();
    if let Some(last) = &node.last {
        let mut on_no_match = Vec::new();
        encode_action(last, route, &mut on_no_match);
        length_delimited(3, &on_no_match, &mut matcher);
    }
    // Matcher.matcher_list = 1.
    length_delimited(1, &list, &mut matcher);
    // OnMatch.matcher = 1.
    length_delimited(1, &matcher, out);
}

/// An `OnMatch` whose action is route `routes[0]` alone, or the list of `routes`.
fn encode_action(routes: &[usize], route: &mut impl FnMut(usize, &mut Vec<u8>), out: &mut Vec<u8>) {
    let mut value = Vec::new();
    let type_url = match routes {
        [one] => {
            route(*one, &mut value);
            ROUTE
        }
        many => {
            for &i in many {
                let mut r = Vec::new();
                route(i, &mut r);
                // RouteList.routes = 1.
                length_delimited(1, &r, &mut value);
            }
            ROUTE_LIST
        }
    };
    let mut action = Vec::new();
    encode_typed("route", type_url, &value, &mut action);
    // OnMatch.action = 2.
    length_delimited(2, &action, out);
}

/// A `TypedExtensionConfig { name, typed_config: Any { type_url, value } }`'s contents.
fn encode_typed(name: &str, type_url: &str, value: &[u8], out: &mut Vec<u8>) {
    string::encode(1, &name.to_owned(), out);
    let mut any = Vec::new();
    string::encode(1, &type_url.to_owned(), &mut any);
    encode_key(2, prost::encoding::WireType::LengthDelimited, &mut any);
    encode_varint(value.len() as u64, &mut any);
    any.extend_from_slice(value);
    length_delimited(2, &any, out);
}
