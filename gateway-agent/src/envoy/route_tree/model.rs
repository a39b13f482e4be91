//! A model of how Envoy chooses a route in a virtual host: from a list (`routes`), or from a
//! matcher tree (`matcher`), for what Legate writes. The unit tests hold the tree to the list
//! through it; `tests/route_tree.rs` holds the real Envoy to it.

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

/// A request as routing sees it: pseudo-headers included, names lowercase.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The stream's random draw, for canary shares.
    pub draw: u64,
}

impl Request {
    /// All values of a header, joined by commas (as Envoy's matchers read them).
    pub fn header(&self, name: &str) -> Option<String> {
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
pub fn route_matches(r: &EnvoyRoute, req: &Request) -> bool {
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

pub fn listed<'a>(routes: &'a [EnvoyRoute], req: &Request) -> Option<&'a EnvoyRoute> {
    routes.iter().find(|r| route_matches(r, req))
}

/// The header a request-header input reads.
fn header_input(input: Option<&envoy_types::pb::xds::core::v3::TypedExtensionConfig>) -> String {
    let config = input
        .and_then(|i| i.typed_config.as_ref())
        .expect("an input config");
    envoy_types::pb::envoy::r#type::matcher::v3::HttpRequestHeaderMatchInput::decode(
        &config.value[..],
    )
    .expect("a header input")
    .header_name
}

/// What a matcher finds; `None`: no match.
fn evaluate(m: &Matcher, req: &Request) -> Option<Vec<EnvoyRoute>> {
    let found = match m.matcher_type.as_ref().expect("a matcher type") {
        MatcherType::MatcherTree(tree) => {
            let name = header_input(tree.input.as_ref());
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
            let name = header_input(s.input.as_ref());
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
pub fn treed(v: &VirtualHost, req: &Request) -> Option<EnvoyRoute> {
    let routes = evaluate(v.matcher.as_ref().expect("a matcher"), req)?;
    routes.into_iter().find(|r| route_matches(r, req))
}

/// What identifies a route's answer: its name and its action (a variant redirects).
pub fn answer(r: &EnvoyRoute) -> (String, bool) {
    use envoy_types::pb::envoy::config::route::v3::route::Action;
    (
        r.name.clone(),
        matches!(r.action, Some(Action::Redirect(_))),
    )
}

/// The route Envoy chooses in `v` (a list or a tree).
pub fn chosen_route(v: &VirtualHost, req: &Request) -> Option<EnvoyRoute> {
    match &v.matcher {
        Some(_) => treed(v, req),
        None => listed(&v.routes, req).cloned(),
    }
}

/// The virtual host Envoy chooses for the request's authority: the exact domain, then the
/// longest `*.suffix`, then `*`.
pub fn chosen_host<'a>(vhosts: &'a [VirtualHost], req: &Request) -> Option<&'a VirtualHost> {
    let authority = req
        .header(":authority")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let has = |d: &str| vhosts.iter().find(|v| v.domains.iter().any(|x| x == d));
    has(&authority)
        .or_else(|| {
            let mut suffixes: Vec<&VirtualHost> = vhosts
                .iter()
                .filter(|v| {
                    v.domains.iter().any(|d| {
                        d.strip_prefix('*').is_some_and(|s| {
                            !s.is_empty() && authority.len() > s.len() && authority.ends_with(s)
                        })
                    })
                })
                .collect();
            suffixes.sort_by_key(|v| std::cmp::Reverse(v.domains[0].len()));
            suffixes.first().copied()
        })
        .or_else(|| has("*"))
}

// Random route sets: Mappings whose prefixes share stems, with the conditions Emissary's
// users write; and random requests to them.
const STEMS: &[&str] = &["/", "/a", "/a/", "/a/b", "/a/b/", "/ab/", "/b/", "/a/bc"];

/// One random Mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub stem: usize,
    pub kind: u8,
    pub header: u8,
    pub method: u8,
    pub query: u8,
    pub precedence: i8,
    pub hostname: u8,
    pub canary: u8,
}

pub fn spec() -> impl Strategy<Value = Spec> {
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

/// Two Hosts: `a.example.com`, whose insecure requests get `insecure`, and `*.example.com`.
pub fn hosts(insecure: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {{name: a, namespace: default}}\n\
         spec: {{hostname: a.example.com, requestPolicy: {{insecure: {{action: {insecure}}}}}}}\n\
         ---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {{name: any, namespace: default}}\n\
         spec: {{hostname: \"*.example.com\", requestPolicy: {{insecure: {{action: Route}}}}}}\n"
    )
}

/// Mapping `m{i}` for each spec, to `service(i)`, answering with `x-route: m{i}`.
pub fn mappings(specs: &[Spec], service: impl Fn(usize) -> String) -> String {
    let mut out = String::new();
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
        if s.method == 0 {
            spec += ", method: POST";
        }
        if s.query == 0 {
            spec += ", query_parameters: {q: \"1\"}";
        }
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
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: m{i}, namespace: default}}\n\
             spec: {{{spec}, service: \"{}\", add_response_headers: {{x-route: m{i}}}}}\n",
            service(i)
        );
    }
    out
}

pub fn request() -> impl Strategy<Value = Request> {
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
