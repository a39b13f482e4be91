//! The matcher tree chooses the route the list would: both Envoy forms of a virtual host are
//! evaluated by a model of Envoy's route and matcher evaluation, over random route sets and
//! random requests.

use std::collections::BTreeMap;

use envoy_types::pb::{
    envoy::{
        config::route::v3::{
            HeaderMatcher, Route as EnvoyRoute, RouteList, RouteMatch, VirtualHost,
            header_matcher::HeaderMatchSpecifier, query_parameter_matcher, route_match,
        },
        r#type::matcher::v3::{StringMatcher as EnvoyStringMatcher, string_matcher as envoy},
    },
    xds::r#type::matcher::v3::{
        Matcher, StringMatcher,
        matcher::{MatcherType, OnMatch, matcher_list, matcher_tree, on_match},
        string_matcher::MatchPattern,
    },
};
use proptest::prelude::*;
use prost::Message;

use crate::{
    envoy::route::{listed_virtual_host, virtual_host},
    ir::{self, Settings},
};

/// A request as routing sees it: pseudo-headers included, names lowercase.
#[derive(Clone, Debug)]
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    /// The stream's random draw, for canary shares.
    draw: u64,
}

impl Request {
    /// All values of a header, joined by commas (as Envoy's matchers read them).
    fn header(&self, name: &str) -> Option<String> {
        if name == ":path" {
            return Some(self.path.clone());
        }
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }

    fn query(&self, name: &str) -> Option<String> {
        let (_, query) = self.path.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            (n == name).then(|| v.to_owned())
        })
    }

    /// The path before any query or fragment.
    fn bare_path(&self) -> &str {
        self.path.split(['?', '#']).next().unwrap_or_default()
    }
}

fn full_match(pattern: &str, value: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|r| r.is_match(value))
}

fn starts_with(value: &str, prefix: &str, ignore_case: bool) -> bool {
    value.len() >= prefix.len()
        && value.is_char_boundary(prefix.len())
        && if ignore_case {
            value[..prefix.len()].eq_ignore_ascii_case(prefix)
        } else {
            value.starts_with(prefix)
        }
}

fn ends_with(value: &str, suffix: &str, ignore_case: bool) -> bool {
    let Some(at) = value.len().checked_sub(suffix.len()) else {
        return false;
    };
    value.is_char_boundary(at)
        && if ignore_case {
            value[at..].eq_ignore_ascii_case(suffix)
        } else {
            value.ends_with(suffix)
        }
}

fn envoy_string(m: &EnvoyStringMatcher, value: &str) -> bool {
    let ic = m.ignore_case;
    match m.match_pattern.as_ref() {
        Some(envoy::MatchPattern::Exact(e)) if ic => value.eq_ignore_ascii_case(e),
        Some(envoy::MatchPattern::Exact(e)) => value == e,
        Some(envoy::MatchPattern::Prefix(p)) => starts_with(value, p, ic),
        Some(envoy::MatchPattern::Suffix(s)) => ends_with(value, s, ic),
        Some(envoy::MatchPattern::SafeRegex(r)) => full_match(&r.regex, value),
        other => panic!("the model has no {other:?}"),
    }
}

fn xds_string(m: &StringMatcher, value: &str) -> bool {
    let ic = m.ignore_case;
    match m.match_pattern.as_ref() {
        Some(MatchPattern::Exact(e)) if ic => value.eq_ignore_ascii_case(e),
        Some(MatchPattern::Exact(e)) => value == e,
        Some(MatchPattern::Prefix(p)) => starts_with(value, p, ic),
        Some(MatchPattern::Suffix(s)) => ends_with(value, s, ic),
        Some(MatchPattern::SafeRegex(r)) => full_match(&r.regex, value),
        other => panic!("the model has no {other:?}"),
    }
}

fn header_matches(h: &HeaderMatcher, req: &Request) -> bool {
    let value = req.header(&h.name);
    match (&h.header_match_specifier, value) {
        (Some(HeaderMatchSpecifier::PresentMatch(present)), v) => v.is_some() == *present,
        (Some(HeaderMatchSpecifier::StringMatch(m)), Some(v)) => envoy_string(m, &v),
        (Some(HeaderMatchSpecifier::StringMatch(_)), None) => false,
        (other, _) => panic!("the model has no {other:?}"),
    }
}

/// Envoy's `RouteEntryImplBase::matches`, for what Legate writes.
fn route_matches(r: &EnvoyRoute, req: &Request) -> bool {
    let m: &RouteMatch = r.r#match.as_ref().expect("every route has a match");
    let case_sensitive = m.case_sensitive.as_ref().is_none_or(|b| b.value);
    let path = match m.path_specifier.as_ref() {
        Some(route_match::PathSpecifier::Prefix(p)) => starts_with(&req.path, p, !case_sensitive),
        Some(route_match::PathSpecifier::Path(p)) if case_sensitive => req.bare_path() == p,
        Some(route_match::PathSpecifier::Path(p)) => req.bare_path().eq_ignore_ascii_case(p),
        Some(route_match::PathSpecifier::SafeRegex(r)) => full_match(&r.regex, req.bare_path()),
        other => panic!("the model has no {other:?}"),
    };
    let query = m.query_parameters.iter().all(|q| {
        use query_parameter_matcher::QueryParameterMatchSpecifier as Spec;
        match (&q.query_parameter_match_specifier, req.query(&q.name)) {
            (Some(Spec::PresentMatch(true)), v) => v.is_some(),
            (Some(Spec::StringMatch(s)), Some(v)) => envoy_string(s, &v),
            (Some(Spec::StringMatch(_)), None) => false,
            (other, _) => panic!("the model has no {other:?}"),
        }
    });
    let share = m.runtime_fraction.as_ref().is_none_or(|f| {
        let numerator = f.default_value.as_ref().map_or(0, |d| d.numerator);
        req.draw % 100 < u64::from(numerator)
    });
    path && m.headers.iter().all(|h| header_matches(h, req)) && query && share
}

fn listed<'a>(routes: &'a [EnvoyRoute], req: &Request) -> Option<&'a EnvoyRoute> {
    routes.iter().find(|r| route_matches(r, req))
}

/// What a matcher finds; `None`: no match.
fn evaluate(m: &Matcher, req: &Request) -> Option<Vec<EnvoyRoute>> {
    let found = match m.matcher_type.as_ref().expect("a matcher type") {
        MatcherType::MatcherTree(tree) => {
            let input = tree.input.as_ref().expect("an input");
            let name =
                envoy_types::pb::envoy::r#type::matcher::v3::HttpRequestHeaderMatchInput::decode(
                    &input.typed_config.as_ref().expect("an input config").value[..],
                )
                .expect("a header input")
                .header_name;
            let Some(matcher_tree::TreeType::PrefixMatchMap(map)) = &tree.tree_type else {
                panic!("the model has only prefix maps")
            };
            req.header(&name).and_then(|value| {
                let mut keys: Vec<&String> = map
                    .map
                    .keys()
                    .filter(|k| value.starts_with(k.as_str()))
                    .collect();
                // Longest first; a key whose nested matcher fails falls back to shorter ones.
                keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
                keys.into_iter().find_map(|k| on_match(&map.map[k], req))
            })
        }
        MatcherType::MatcherList(list) => list.matchers.iter().find_map(|f| {
            predicate(f.predicate.as_ref().expect("a predicate"), req)
                .then(|| on_match(f.on_match.as_ref().expect("an on_match"), req))
                .flatten()
        }),
    };
    found.or_else(|| m.on_no_match.as_ref().and_then(|o| on_match(o, req)))
}

fn on_match(o: &OnMatch, req: &Request) -> Option<Vec<EnvoyRoute>> {
    match o.on_match.as_ref().expect("an on_match") {
        on_match::OnMatch::Matcher(m) => evaluate(m, req),
        on_match::OnMatch::Action(a) => {
            let any = a.typed_config.as_ref().expect("an action config");
            Some(match any.type_url.rsplit('.').next() {
                Some("Route") => vec![EnvoyRoute::decode(&any.value[..]).expect("a route")],
                Some("RouteList") => RouteList::decode(&any.value[..]).expect("a list").routes,
                other => panic!("no such action {other:?}"),
            })
        }
    }
}

fn predicate(p: &matcher_list::Predicate, req: &Request) -> bool {
    use matcher_list::predicate::{MatchType, single_predicate::Matcher as Value};
    match p.match_type.as_ref().expect("a predicate type") {
        MatchType::SinglePredicate(s) => {
            let input = s.input.as_ref().expect("an input");
            let name =
                envoy_types::pb::envoy::r#type::matcher::v3::HttpRequestHeaderMatchInput::decode(
                    &input.typed_config.as_ref().expect("an input config").value[..],
                )
                .expect("a header input")
                .header_name;
            let Some(Value::ValueMatch(m)) = &s.matcher else {
                panic!("the model has only value matches")
            };
            req.header(&name).is_some_and(|v| xds_string(m, &v))
        }
        MatchType::OrMatcher(l) => l.predicate.iter().any(|p| predicate(p, req)),
        MatchType::AndMatcher(l) => l.predicate.iter().all(|p| predicate(p, req)),
        MatchType::NotMatcher(p) => !predicate(p, req),
    }
}

/// The route the tree chooses: the action found, then matched as routes are.
fn treed(v: &VirtualHost, req: &Request) -> Option<EnvoyRoute> {
    let routes = evaluate(v.matcher.as_ref().expect("a matcher"), req)?;
    routes.into_iter().find(|r| route_matches(r, req))
}

/// What identifies a route's answer: its name and its action (a variant redirects).
fn answer(r: &EnvoyRoute) -> (String, bool) {
    use envoy_types::pb::envoy::config::route::v3::route::Action;
    (
        r.name.clone(),
        matches!(r.action, Some(Action::Redirect(_))),
    )
}

// Mappings whose prefixes share stems, with the conditions Emissary's users write.
const STEMS: &[&str] = &["/", "/a", "/a/", "/a/b", "/a/b/", "/ab/", "/b/", "/a/bc"];

#[derive(Clone, Debug)]
struct Spec {
    stem: usize,
    kind: u8,
    header: u8,
    method: u8,
    query: u8,
    precedence: i8,
    hostname: u8,
    canary: u8,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..STEMS.len(),
        0u8..10,
        0u8..8,
        0u8..6,
        0u8..8,
        -1i8..2,
        0u8..4,
        0u8..6,
    )
        .prop_map(
            |(stem, kind, header, method, query, precedence, hostname, canary)| Spec {
                stem,
                kind,
                header,
                method,
                query,
                precedence,
                hostname,
                canary,
            },
        )
}

fn yaml(specs: &[Spec], insecure: &str) -> String {
    let mut out = format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {{name: l, namespace: default}}\n\
         spec: {{port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}\n\
         ---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {{name: a, namespace: default}}\n\
         spec: {{hostname: a.example.com, requestPolicy: {{insecure: {{action: {insecure}}}}}}}\n\
         ---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {{name: any, namespace: default}}\n\
         spec: {{hostname: \"*.example.com\", requestPolicy: {{insecure: {{action: Route}}}}}}\n"
    );
    for (i, s) in specs.iter().enumerate() {
        let stem = STEMS[s.stem];
        let mut spec = match s.kind {
            0 => format!("prefix: \"{stem}\", prefix_exact: true"),
            1 => format!("prefix: \"^{stem}[0-9]*$\", prefix_regex: true"),
            2 => format!("prefix: \"{}\", case_sensitive: false", stem.to_uppercase()),
            _ => format!("prefix: \"{stem}\""),
        };
        spec += match s.header {
            0 => ", headers: {x-h: \"1\"}",
            1 => ", regex_headers: {x-h: \"^[12]$\"}",
            2 => ", headers: {x-h: true}",
            _ => "",
        };
        spec += match s.method {
            0 => ", method: POST",
            _ => "",
        };
        spec += match s.query {
            0 => ", query_parameters: {q: \"1\"}",
            _ => "",
        };
        spec += match s.hostname {
            0 => ", hostname: a.example.com",
            1 => ", hostname: \"*.example.com\"",
            _ => ", hostname: \"*\"",
        };
        if s.precedence != 0 {
            spec += &format!(", precedence: {}", s.precedence);
        }
        // A canary: its group is the Mappings of the same match.
        if s.canary == 0 {
            spec += ", weight: 30";
        }
        out += &format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: m{i}, namespace: default}}\nspec: {{{spec}, service: s{i}}}\n"
        );
    }
    out
}

fn request() -> impl Strategy<Value = Request> {
    let path = (
        prop::sample::select(vec![
            "/", "/a", "/a/", "/a/b", "/a/b/", "/a/b/c", "/ab/", "/b/", "/a/bc", "/A/B/", "/a/7",
            "/c",
        ]),
        prop::sample::select(vec!["", "?q=1", "?q=2", "#f", "?x=1&q=1"]),
    )
        .prop_map(|(p, q)| format!("{p}{q}"));
    (
        path,
        prop::sample::select(vec!["a.example.com", "b.example.com", "A.Example.com"]),
        prop::option::of(prop::sample::select(vec!["1", "2", "3", ""])),
        prop::sample::select(vec!["GET", "POST"]),
        prop::sample::select(vec!["http", "https"]),
        0u64..100,
    )
        .prop_map(|(path, authority, h, method, proto, draw)| {
            let mut headers = vec![
                (":authority".to_owned(), authority.to_owned()),
                (":method".to_owned(), method.to_owned()),
                ("x-forwarded-proto".to_owned(), proto.to_owned()),
            ];
            if let Some(h) = h {
                headers.push(("x-h".to_owned(), h.to_owned()));
            }
            Request {
                path,
                headers,
                draw,
            }
        })
}

/// The virtual host Envoy chooses for the request's authority (exact, then the glob).
fn chosen<'a>(
    vhosts: &'a [std::sync::Arc<ir::VirtualHost>],
    req: &Request,
) -> Option<&'a ir::VirtualHost> {
    let authority = req
        .header(":authority")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let by_domain: BTreeMap<&str, &ir::VirtualHost> = vhosts
        .iter()
        .map(|v| (v.domains[0].as_str(), &**v))
        .collect();
    by_domain
        .get(authority.as_str())
        .or_else(|| {
            authority
                .ends_with(".example.com")
                .then(|| by_domain.get("*.example.com"))
                .flatten()
        })
        .copied()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_tree_chooses_the_route_the_list_would(
        specs in prop::collection::vec(spec(), 1..14),
        insecure in prop::sample::select(vec!["Route", "Redirect", "Reject"]),
        requests in prop::collection::vec(request(), 40),
    ) {
        let text = yaml(&specs, insecure);
        let loaded = legate_crds::loader::load_str("t.yaml", &text).expect("valid YAML");
        let ir = ir::build(&loaded.resources, &Settings::default());
        let vhosts = &ir.listeners[0].virtual_hosts;
        let forms: Vec<(&str, Vec<EnvoyRoute>, VirtualHost)> = vhosts
            .iter()
            .map(|v| (v.domains[0].as_str(), listed_virtual_host(v).routes, virtual_host(v)))
            .collect();
        for req in &requests {
            let Some(v) = chosen(vhosts, req) else { continue };
            let (_, list, tree) = forms.iter().find(|f| f.0 == v.domains[0]).expect("a form");
            let want = listed(list, req).map(answer);
            let got = match &tree.matcher {
                Some(_) => treed(tree, req).map(|r| answer(&r)),
                None => listed(&tree.routes, req).map(answer),
            };
            prop_assert_eq!(got, want, "{:?} in {}\n{}", req, v.name, text);
        }
    }
}

mod plan {
    use super::super::{Shape, exact_path, plan};

    fn prefix(key: &str) -> Shape<'_> {
        Shape {
            key: Some(key),
            conditions: Some(vec![]),
        }
    }

    fn conditional(key: &str) -> Shape<'_> {
        Shape {
            key: Some(key),
            conditions: Some(vec![exact_path(key).expect("a path")]),
        }
    }

    fn segments(shapes: &[Shape]) -> (Vec<Vec<String>>, std::ops::Range<usize>) {
        let p = plan(shapes).expect("a tree");
        let keys = p
            .segments
            .iter()
            .map(|s| {
                let mut keys: Vec<String> = s.nodes.keys().cloned().collect();
                keys.sort();
                keys
            })
            .collect();
        (keys, p.rest)
    }

    #[test]
    fn ten_thousand_prefixes_are_one_map() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("/svc-{i:05}/")).collect();
        let shapes: Vec<Shape> = keys.iter().map(|k| prefix(k)).collect();
        let (segments, rest) = segments(&shapes);
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].len(), 10_000);
        assert!(rest.is_empty());
    }

    #[test]
    fn a_shorter_prefix_listed_first_starts_a_new_map() {
        // Precedence put /a/ before /a/b/: the tree would try /a/b/ first.
        let (segments, rest) = segments(&[prefix("/a/"), prefix("/a/b/"), prefix("/c/")]);
        assert_eq!(segments, [vec!["/a/"], vec!["/a/b/", "/c/"]]);
        assert!(rest.is_empty());
        // Longer first (Emissary's usual order) is one map.
        let (one, _) = super::plan::segments(&[prefix("/a/b/"), prefix("/a/")]);
        assert_eq!(one, [vec!["/a/", "/a/b/"]]);
    }

    #[test]
    fn from_a_route_no_key_serves_the_rest_is_listed() {
        let regex = Shape {
            key: None,
            conditions: None,
        };
        let (segments, rest) = segments(&[prefix("/a/"), regex, prefix("/b/")]);
        assert_eq!(segments, [vec!["/a/"]]);
        assert_eq!(rest, 1..3);
        assert!(
            plan(&[
                Shape {
                    key: None,
                    conditions: None
                },
                prefix("/a/")
            ])
            .is_none()
        );
    }

    #[test]
    fn a_canary_is_listed_with_the_route_behind_it_and_without_one_ends_the_tree() {
        let share = |key| Shape {
            key: Some(key),
            conditions: None,
        };
        let p = plan(&[
            share("/c/"),
            conditional("/c/"),
            prefix("/c/"),
            prefix("/d/"),
        ])
        .expect("a tree");
        assert_eq!(p.segments[0].nodes["/c/"].last, Some(vec![0, 1, 2]));
        assert!(p.rest.is_empty());
        let p = plan(&[prefix("/d/"), share("/c/"), conditional("/c/")]).expect("a tree");
        assert_eq!(p.rest, 1..3);
    }

    #[test]
    fn routes_after_one_that_always_matches_its_key_are_left_out() {
        let p = plan(&[conditional("/a/"), prefix("/a/"), conditional("/a/")]).expect("a tree");
        let node = &p.segments[0].nodes["/a/"];
        let tries: Vec<usize> = node.tries.iter().map(|(_, i)| *i).collect();
        assert_eq!((tries, node.last.clone()), (vec![0], Some(vec![1])));
    }
}
