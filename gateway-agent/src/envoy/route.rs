//! IR routes → an Envoy route configuration per listener, one virtual host per Host.
//!
//! Canary shares use Emissary's encoding: one Envoy route per Mapping, each matching its
//! cumulative share of a per-request random draw (`runtime_fraction`), so members keep their
//! own rewrites, headers and timeouts.

use envoy_types::pb::{
    envoy::{
        config::{
            core::v3::{
                HeaderValue, HeaderValueOption, RoutingPriority, RuntimeFractionalPercent,
                header_value_option::HeaderAppendAction,
            },
            route::v3::{
                HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy,
                Route as EnvoyRoute, RouteAction as EnvoyRouteAction, RouteConfiguration,
                RouteMatch, VirtualHost as EnvoyVirtualHost, header_matcher,
                query_parameter_matcher, redirect_action, route, route_action, route_match,
            },
        },
        r#type::{
            matcher::v3::{RegexMatchAndSubstitute, RegexMatcher, StringMatcher, string_matcher},
            v3::{FractionalPercent, fractional_percent},
        },
    },
    google::protobuf::{Any, BoolValue},
    xds::r#type::matcher::v3::Matcher,
};

use std::{
    ops::Range,
    sync::{Arc, LazyLock},
};

use prost::{
    Message,
    encoding::{WireType, encode_key, encode_varint, encoded_len_varint},
};

use super::{
    auth, bool_value, cors, duration, length_delimited, route_config_name, route_tree, u32_value,
};
use legate_crds::ObjectRef;

use crate::ir::{
    PathMatch, Route, RouteAction, ServedRoute, StringMatch, Variant, VirtualHost,
    auth::RouteAuth,
    mapping::{AddedHeader, Forward, HeaderMatch, Priority, Redirect},
};

/// The route configuration of one chain, named after it.
pub(super) fn route_configuration(
    chain: &str,
    virtual_hosts: &[Arc<VirtualHost>],
) -> RouteConfiguration {
    RouteConfiguration {
        name: route_config_name(chain),
        virtual_hosts: virtual_hosts.iter().map(|v| virtual_host(v)).collect(),
        ..Default::default()
    }
}

/// A virtual host as Envoy gets it.
pub(super) fn virtual_host(v: &VirtualHost) -> EnvoyVirtualHost {
    let served = served_in(v);
    let routes: Vec<EnvoyRoute> = v
        .routes
        .iter()
        .zip(&served)
        .map(|(s, how)| served_as(s, *how))
        .collect();
    let mut envoy = EnvoyVirtualHost {
        name: v.name.clone(),
        domains: v.domains.clone(),
        ..Default::default()
    };
    match tree(v, &served) {
        Some(plan) => {
            let bytes = route_tree::encode_matcher(&plan, &Messages(&routes));
            // Decoding what this module itself just encoded.
            envoy.matcher = Matcher::decode(&bytes[..]).ok();
        }
        None => envoy.routes = routes,
    }
    envoy
}

/// A virtual host as a list of its routes, each with all its conditions: what the matcher tree
/// stands for, and what Emissary gives Envoy.
pub(super) fn listed_virtual_host(v: &VirtualHost) -> EnvoyVirtualHost {
    EnvoyVirtualHost {
        name: v.name.clone(),
        domains: v.domains.clone(),
        routes: v.routes.iter().map(served_route).collect(),
        ..Default::default()
    }
}

/// How a virtual host serves one of its routes: as its variant, and without the
/// `:authority` condition the virtual host's domain already implies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Served {
    variant: Option<Variant>,
    implied_authority: bool,
}

fn served_in(v: &VirtualHost) -> Vec<Served> {
    v.routes
        .iter()
        .map(|s| Served {
            variant: s.variant,
            implied_authority: implied_authority(&v.domains, &s.route),
        })
        .collect()
}

/// Whether the virtual host's one domain already requires what the route's `:authority` glob
/// (its first condition, from `hostname`) does: Envoy chose the virtual host by that name,
/// case-insensitively, with any port stripped by the listener. A route repeating it would
/// only make Envoy compare the name again on every request.
fn implied_authority(domains: &[String], r: &Route) -> bool {
    let (Some(glob), [domain]) = (glob_authority(r), domains) else {
        return false;
    };
    let (glob, domain) = (glob.as_bytes(), domain.as_bytes());
    if domain.contains(&b'*') {
        // A wildcard virtual host: only the same glob admits every name it does.
        domain.eq_ignore_ascii_case(glob)
    } else {
        // As `string_matcher` states the glob to Envoy.
        match (glob.strip_prefix(b"*"), glob.strip_suffix(b"*")) {
            (Some(suffix), _) => domain
                .len()
                .checked_sub(suffix.len())
                .is_some_and(|at| domain[at..].eq_ignore_ascii_case(suffix)),
            (None, Some(prefix)) => domain
                .get(..prefix.len())
                .is_some_and(|d| d.eq_ignore_ascii_case(prefix)),
            (None, None) => domain.eq_ignore_ascii_case(glob),
        }
    }
}

/// The route's `:authority` glob (from `hostname`, or `host` when not a regex): always its
/// first condition.
fn glob_authority(r: &Route) -> Option<&str> {
    match r.headers.first() {
        Some(HeaderMatch {
            name,
            value: StringMatch::HostGlob(glob),
        }) if name == ":authority" => Some(glob),
        _ => None,
    }
}

/// A virtual host's routes as messages, for its matcher tree.
struct Messages<'a>(&'a [EnvoyRoute]);

impl route_tree::Routes for Messages<'_> {
    fn len(&self, i: usize) -> usize {
        self.0[i].encoded_len()
    }

    fn write(&self, i: usize, out: &mut Vec<u8>) {
        self.0[i].encode_raw(out);
    }
}

/// A virtual host's routes as served, written from their kept encodings.
struct AsServed<'a> {
    routes: &'a [Arc<EncodedRoute>],
    served: &'a [Served],
}

impl route_tree::Routes for AsServed<'_> {
    fn len(&self, i: usize) -> usize {
        self.routes[i].len_as(self.served[i])
    }

    fn write(&self, i: usize, out: &mut Vec<u8>) {
        self.routes[i].write_as(self.served[i], out);
    }
}

/// The matcher tree the virtual host's routes are served by; `None`: a list.
fn tree<'a>(v: &'a VirtualHost, served: &[Served]) -> Option<route_tree::Plan<'a>> {
    // A few routes are found as fast in a list, which reads more plainly in a configuration dump.
    if v.routes.len() <= route_tree::GATHER {
        return None;
    }
    let shapes: Vec<route_tree::Shape> = v
        .routes
        .iter()
        .zip(served)
        .map(|(s, how)| shape(&s.route, *how))
        .collect();
    route_tree::plan(&shapes)
}

/// What the matcher tree needs to know of a route as served.
fn shape(r: &Route, how: Served) -> route_tree::Shape<'_> {
    let key = match &r.path {
        PathMatch::Prefix(p) | PathMatch::Exact(p) if r.case_sensitive && !p.is_empty() => {
            Some(p.as_str())
        }
        _ => None,
    };
    route_tree::Shape {
        key,
        conditions: key.and_then(|_| conditions(r, how)),
    }
}

/// The route's conditions beyond its path's literal key, as the tree's predicates; `None` when
/// one of them (a canary's share below 100%, a query parameter) is none a predicate can state.
fn conditions(r: &Route, how: Served) -> Option<Vec<route_tree::Predicate>> {
    if !r.query.is_empty() || r.fraction.is_some_and(|f| f < 100) {
        return None;
    }
    let mut out = Vec::new();
    if let PathMatch::Exact(p) = &r.path {
        out.push(route_tree::exact_path(p)?);
    }
    let headers = if how.implied_authority {
        r.headers.get(1..).unwrap_or_default()
    } else {
        &r.headers
    };
    for h in headers {
        out.push(route_tree::header_predicate(&header_matcher(
            &h.name,
            string_matcher(&h.value),
        ))?);
    }
    if how.variant == Some(Variant::Secure) {
        out.push(route_tree::header_predicate(&secure_condition())?);
    }
    Some(out)
}

/// [`route_configuration`]'s encoding, assembled from each virtual host's own (from
/// [`encode_virtual_host`]): a repeated message field is the concatenation of its elements, so a
/// table of thousands of routes is never held as messages and a virtual host's encoding can be
/// kept from one build to the next. Only the fields [`route_configuration`] and
/// [`virtual_host`] set are written, in field-number order as prost writes them; a test holds
/// the two equal.
pub(super) fn encode_route_configuration<'a>(
    chain: &str,
    virtual_hosts: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<u8> {
    // RouteConfiguration: name = 1, virtual_hosts = 2.
    let vhosts: Vec<&[u8]> = virtual_hosts.into_iter().collect();
    let mut out = Vec::with_capacity(vhosts.iter().map(|v| v.len() + 8).sum::<usize>() + 64);
    prost::encoding::string::encode(1, &route_config_name(chain), &mut out);
    for v in vhosts {
        length_delimited(2, v, &mut out);
    }
    out
}

/// [`virtual_host`]'s encoding, assembled from each route's own (`encoded`), which can be kept
/// from one build to the next; a route as served is written from its route's encoding.
pub(super) fn encode_virtual_host(
    v: &VirtualHost,
    mut encoded: impl FnMut(&Arc<Route>) -> Arc<EncodedRoute>,
) -> Vec<u8> {
    use prost::encoding::string;
    // VirtualHost: name = 1, domains = 2, routes = 3, matcher = 21.
    let served = served_in(v);
    let routes: Vec<Arc<EncodedRoute>> = v.routes.iter().map(|s| encoded(&s.route)).collect();
    let tree = tree(v, &served).map(|plan| {
        route_tree::encode_matcher(
            &plan,
            &AsServed {
                routes: &routes,
                served: &served,
            },
        )
    });
    let lens: Vec<usize> = match tree {
        Some(_) => Vec::new(),
        None => routes
            .iter()
            .zip(&served)
            .map(|(e, how)| e.len_as(*how))
            .collect(),
    };
    // Sized once: a table of thousands of routes would otherwise be copied as it grows.
    let name_len = if v.name.is_empty() {
        0
    } else {
        string::encoded_len(1, &v.name)
    };
    let len = name_len
        + string::encoded_len_repeated(2, &v.domains)
        + lens
            .iter()
            .map(|len| 1 + encoded_len_varint(*len as u64) + len)
            .sum::<usize>()
        + tree
            .as_ref()
            .map_or(0, |t| 2 + encoded_len_varint(t.len() as u64) + t.len());
    let mut out = Vec::with_capacity(len);
    if !v.name.is_empty() {
        string::encode(1, &v.name, &mut out);
    }
    string::encode_repeated(2, &v.domains, &mut out);
    for ((e, how), len) in routes.iter().zip(&served).zip(&lens) {
        encode_key(3, WireType::LengthDelimited, &mut out);
        encode_varint(*len as u64, &mut out);
        e.write_as(*how, &mut out);
    }
    if let Some(tree) = &tree {
        length_delimited(21, tree, &mut out);
    }
    debug_assert_eq!(out.len(), len);
    out
}

/// A route's encoding, and where its variants' encodings differ from it, so that serving a route
/// twice (secure and insecure) builds and encodes it once. Prost writes fields in field-number
/// order: the match (1) first, then the action (a oneof: `route` 2, `redirect` 3); within the
/// match, the headers (6) before the query parameters (7) and the runtime fraction (9). A secure
/// variant's condition is the last header; a redirect variant's action replaces the route's.
/// The result is byte for byte prost's encoding of [`served_route`] (a test holds them equal).
///
/// The route's `typed_per_filter_config` entries are written in key order (prost writes a map
/// in hash order, and a configuration must encode the same every time), then its name: prost's
/// field order. A redirect variant of a route an AuthService checks carries only the default
/// filter switched off in their place, as Emissary writes it: the redirect comes before any
/// check.
#[derive(Debug)]
pub(super) struct EncodedRoute {
    bytes: Vec<u8>,
    /// The match's contents, after its key and length.
    matches: Range<usize>,
    /// Where the match's headers end.
    headers_end: usize,
    /// The `:authority` condition (the first header, key included), when it is one a virtual
    /// host's domain can imply.
    authority: Option<Range<usize>>,
    /// The action field, key included.
    action: Range<usize>,
    /// The `typed_per_filter_config` entries, keys included.
    per_filter: Range<usize>,
    /// A redirect variant switches the check off.
    checked: bool,
}

/// A secure variant's condition, encoded as a `RouteMatch.headers` element.
static SECURE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut out = Vec::new();
    prost::encoding::message::encode(6, &secure_condition(), &mut out);
    out
});

/// A redirect variant's action, encoded as the `Route.action` field.
static REDIRECT: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut out = Vec::new();
    https_redirect().encode(&mut out);
    out
});

/// A checked route's redirect variant's `typed_per_filter_config`, encoded.
static REDIRECT_FILTERS: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut out = Vec::new();
    encode_per_filter(&[auth::disabled()], &mut out);
    out
});

/// `typed_per_filter_config` entries (field 13), as prost writes each, in the order given.
fn encode_per_filter(entries: &[(String, Any)], out: &mut Vec<u8>) {
    use prost::encoding::{message, string};
    for (key, value) in entries {
        let len = string::encoded_len(1, key) + message::encoded_len(2, value);
        encode_key(13, WireType::LengthDelimited, out);
        encode_varint(len as u64, out);
        string::encode(1, key, out);
        message::encode(2, value, out);
    }
}

impl EncodedRoute {
    pub(super) fn new(r: &Route) -> Self {
        use prost::encoding::{message, string};
        let mut envoy = route_without_filters(r);
        let name = std::mem::take(&mut envoy.name);
        let mut bytes = envoy.encode_to_vec();
        let filters_start = bytes.len();
        encode_per_filter(&per_filter(r), &mut bytes);
        let per_filter = filters_start..bytes.len();
        string::encode(14, &name, &mut bytes);
        // `route` always sets the match: unreachable with any input.
        let matched = envoy.r#match.as_ref().expect("every route has a match");
        let match_len = matched.encoded_len();
        let start = 1 + encoded_len_varint(match_len as u64);
        let end = start + match_len;
        let after_headers = message::encoded_len_repeated(7, &matched.query_parameters)
            + matched
                .runtime_fraction
                .as_ref()
                .map_or(0, |f| message::encoded_len(9, f));
        let action_len = envoy.action.as_ref().map_or(0, route::Action::encoded_len);
        let headers_end = end - after_headers;
        let headers_start = headers_end - message::encoded_len_repeated(6, &matched.headers);
        let authority = glob_authority(r).map(|_| {
            let first = message::encoded_len(6, &matched.headers[0]);
            headers_start..headers_start + first
        });
        Self {
            bytes,
            matches: start..end,
            headers_end,
            authority,
            action: end..end + action_len,
            per_filter,
            checked: r.auth != RouteAuth::None,
        }
    }

    /// The pieces of the route as served: the match's contents, then what follows the match.
    fn parts(&self, how: Served) -> ([&[u8]; 4], [&[u8]; 5]) {
        let b = &self.bytes[..];
        let skipped = match (&self.authority, how.implied_authority) {
            (Some(authority), true) => authority.clone(),
            _ => self.headers_end..self.headers_end,
        };
        let secure: &[u8] = match how.variant {
            Some(Variant::Secure) => &SECURE,
            _ => &[],
        };
        let matched = [
            &b[self.matches.start..skipped.start],
            &b[skipped.end..self.headers_end],
            secure,
            &b[self.headers_end..self.matches.end],
        ];
        let after = match (how.variant, self.checked) {
            (Some(Variant::Redirect), true) => [
                &b[self.matches.end..self.action.start],
                &REDIRECT[..],
                &b[self.action.end..self.per_filter.start],
                &REDIRECT_FILTERS[..],
                &b[self.per_filter.end..],
            ],
            (Some(Variant::Redirect), false) => [
                &b[self.matches.end..self.action.start],
                &REDIRECT[..],
                &b[self.action.end..],
                &[],
                &[],
            ],
            _ => [&b[self.matches.end..], &[], &[], &[], &[]],
        };
        (matched, after)
    }

    fn len_as(&self, how: Served) -> usize {
        let (matched, after) = self.parts(how);
        let match_len: usize = matched.iter().map(|p| p.len()).sum();
        1 + encoded_len_varint(match_len as u64)
            + match_len
            + after.iter().map(|p| p.len()).sum::<usize>()
    }

    fn write_as(&self, how: Served, out: &mut Vec<u8>) {
        let (matched, after) = self.parts(how);
        let match_len: usize = matched.iter().map(|p| p.len()).sum();
        // Route.match = 1.
        encode_key(1, WireType::LengthDelimited, out);
        encode_varint(match_len as u64, out);
        for part in matched.iter().chain(&after) {
            out.extend_from_slice(part);
        }
    }
}

/// A route as a virtual host serves it (its `:authority` condition kept).
pub(super) fn served_route(s: &ServedRoute) -> EnvoyRoute {
    served_as(
        s,
        Served {
            variant: s.variant,
            implied_authority: false,
        },
    )
}

fn served_as(s: &ServedRoute, how: Served) -> EnvoyRoute {
    let mut r = route(&s.route);
    if how.implied_authority
        && glob_authority(&s.route).is_some()
        && let Some(m) = r.r#match.as_mut()
    {
        m.headers.remove(0);
    }
    match s.variant {
        None => {}
        Some(Variant::Secure) => r
            .r#match
            .get_or_insert_default()
            .headers
            .push(secure_condition()),
        Some(Variant::Redirect) => {
            r.action = Some(https_redirect());
            if s.route.auth != RouteAuth::None {
                r.typed_per_filter_config = [auth::disabled()].into_iter().collect();
            }
        }
    }
    r
}

/// What a secure variant adds to its route's conditions: the request came over HTTPS.
fn secure_condition() -> HeaderMatcher {
    header_matcher("x-forwarded-proto", Some(exact_matcher("https", false)))
}

/// A redirect variant's action: the same URL over HTTPS (301).
fn https_redirect() -> route::Action {
    route::Action::Redirect(RedirectAction {
        scheme_rewrite_specifier: Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(
            true,
        )),
        response_code: redirect_action::RedirectResponseCode::MovedPermanently as i32,
        ..Default::default()
    })
}

fn route(r: &Route) -> EnvoyRoute {
    EnvoyRoute {
        typed_per_filter_config: per_filter(r).into_iter().collect(),
        ..route_without_filters(r)
    }
}

/// The route's settings for the filters that read some (CORS, ext_authz), in key order.
fn per_filter(r: &Route) -> Vec<(String, Any)> {
    let mut entries = auth::per_route(&r.auth);
    if let Some(c) = &r.cors {
        entries.push(cors::typed_per_filter_config(&c.policy));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

fn route_without_filters(r: &Route) -> EnvoyRoute {
    let headers = r
        .headers
        .iter()
        .map(|h| header_matcher(&h.name, string_matcher(&h.value)))
        .collect();
    let r#match = RouteMatch {
        path_specifier: Some(match &r.path {
            PathMatch::Prefix(p) => route_match::PathSpecifier::Prefix(p.clone()),
            PathMatch::Exact(p) => route_match::PathSpecifier::Path(p.clone()),
            PathMatch::Regex(p) => route_match::PathSpecifier::SafeRegex(regex(p)),
        }),
        case_sensitive: bool_value(r.case_sensitive),
        headers,
        query_parameters: r.query.iter().map(query_matcher).collect(),
        runtime_fraction: r
            .fraction
            .map(|f| fraction(f, r.clusters().next().unwrap_or_default())),
        ..Default::default()
    };
    let action = match &r.action {
        RouteAction::Forward(f) => route::Action::Route(EnvoyRouteAction {
            rate_limits: super::rate_limit::route_rate_limits(&r.rate_limits),
            ..forward(f)
        }),
        RouteAction::Redirect(d) => route::Action::Redirect(redirect(d)),
    };
    EnvoyRoute {
        name: route_name(&r.source),
        r#match: Some(r#match),
        action: Some(action),
        request_headers_to_add: r.add_request_headers.iter().map(added).collect(),
        request_headers_to_remove: r.remove_request_headers.clone(),
        response_headers_to_add: r.add_response_headers.iter().map(added).collect(),
        response_headers_to_remove: r.remove_response_headers.clone(),
        ..Default::default()
    }
}

/// The Mapping's reference as `ObjectRef` displays it (`Kind namespace/name`), without the
/// formatting machinery: one per route, and it cost more than the rest of the name's work.
fn route_name(source: &ObjectRef) -> String {
    let namespace = source.namespace.as_deref();
    let len = source.kind.len() + 1 + namespace.map_or(0, |n| n.len() + 1) + source.name.len();
    let mut name = String::with_capacity(len);
    name.push_str(&source.kind);
    name.push(' ');
    if let Some(namespace) = namespace {
        name.push_str(namespace);
        name.push('/');
    }
    name.push_str(&source.name);
    name
}

fn forward(f: &Forward) -> EnvoyRouteAction {
    EnvoyRouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(f.cluster.clone())),
        prefix_rewrite: f.prefix_rewrite.clone().unwrap_or_default(),
        regex_rewrite: f.regex_rewrite.as_ref().map(|(pattern, substitution)| {
            RegexMatchAndSubstitute {
                pattern: Some(regex(pattern)),
                substitution: substitution.clone(),
            }
        }),
        timeout: Some(duration(f.timeout)),
        idle_timeout: f.idle_timeout.map(duration),
        host_rewrite_specifier: match (&f.host_rewrite, f.auto_host_rewrite) {
            (Some(host), _) => Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
                host.clone(),
            )),
            (None, true) => Some(route_action::HostRewriteSpecifier::AutoHostRewrite(
                BoolValue { value: true },
            )),
            (None, false) => None,
        },
        retry_policy: f.retry.as_ref().map(|r| RetryPolicy {
            retry_on: r.retry_on.clone(),
            num_retries: u32_value(r.num_retries),
            per_try_timeout: r.per_try_timeout.map(duration),
            ..Default::default()
        }),
        hash_policy: f
            .hash
            .iter()
            .map(super::upstream_policy::hash_policy)
            .collect(),
        priority: match f.priority {
            Priority::Default => RoutingPriority::Default,
            Priority::High => RoutingPriority::High,
        } as i32,
        upgrade_configs: f
            .upgrades
            .iter()
            .map(|u| route_action::UpgradeConfig {
                upgrade_type: u.to_ascii_lowercase(),
                enabled: bool_value(true),
                ..Default::default()
            })
            .collect(),
        request_mirror_policies: f
            .mirrors
            .iter()
            .map(|(cluster, percent)| route_action::RequestMirrorPolicy {
                cluster: cluster.clone(),
                runtime_fraction: Some(fraction(*percent, cluster)),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn redirect(d: &Redirect) -> RedirectAction {
    use redirect_action::RedirectResponseCode as Code;
    let code = match d.code {
        302 => Code::Found,
        303 => Code::SeeOther,
        307 => Code::TemporaryRedirect,
        308 => Code::PermanentRedirect,
        _ => Code::MovedPermanently,
    };
    let path = if let Some(p) = &d.path {
        Some(redirect_action::PathRewriteSpecifier::PathRedirect(
            p.clone(),
        ))
    } else if let Some(p) = &d.prefix {
        Some(redirect_action::PathRewriteSpecifier::PrefixRewrite(
            p.clone(),
        ))
    } else {
        d.regex.as_ref().map(|(pattern, substitution)| {
            redirect_action::PathRewriteSpecifier::RegexRewrite(RegexMatchAndSubstitute {
                pattern: Some(regex(pattern)),
                substitution: substitution.clone(),
            })
        })
    };
    RedirectAction {
        host_redirect: d.host.clone(),
        response_code: code as i32,
        path_rewrite_specifier: path,
        ..Default::default()
    }
}

/// A header condition; `None` for "present".
fn header_matcher(name: &str, value: Option<StringMatcher>) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(match value {
            Some(m) => header_matcher::HeaderMatchSpecifier::StringMatch(m),
            None => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
        }),
        ..Default::default()
    }
}

fn query_matcher(q: &HeaderMatch) -> QueryParameterMatcher {
    use query_parameter_matcher::QueryParameterMatchSpecifier as Spec;
    QueryParameterMatcher {
        name: q.name.clone(),
        query_parameter_match_specifier: Some(match string_matcher(&q.value) {
            Some(m) => Spec::StringMatch(m),
            None => Spec::PresentMatch(true),
        }),
    }
}

/// The value condition; `None` for "present", which Envoy spells differently per matcher.
fn string_matcher(value: &StringMatch) -> Option<StringMatcher> {
    use string_matcher::MatchPattern;
    let (pattern, ignore_case) = match value {
        StringMatch::Present => return None,
        StringMatch::Exact(v) => return Some(exact_matcher(v, false)),
        StringMatch::Regex(v) => (MatchPattern::SafeRegex(regex(v)), false),
        // The listener strips any port from the authority before routing.
        StringMatch::HostGlob(glob) => match (glob.strip_prefix('*'), glob.strip_suffix('*')) {
            (Some(suffix), _) => (MatchPattern::Suffix(suffix.to_owned()), true),
            (None, Some(prefix)) => (MatchPattern::Prefix(prefix.to_owned()), true),
            (None, None) => return Some(exact_matcher(glob, true)),
        },
    };
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ignore_case,
    })
}

fn exact_matcher(value: &str, ignore_case: bool) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(value.to_owned())),
        ignore_case,
    }
}

fn regex(pattern: &str) -> RegexMatcher {
    RegexMatcher {
        regex: pattern.to_owned(),
        ..Default::default()
    }
}

fn fraction(percent: u32, cluster: &str) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator: percent,
            denominator: fractional_percent::DenominatorType::Hundred as i32,
        }),
        runtime_key: format!("routing.traffic_shift.{cluster}"),
    }
}

fn added(h: &AddedHeader) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: h.name.clone(),
            value: h.value.clone(),
            ..Default::default()
        }),
        append_action: if h.append {
            HeaderAppendAction::AppendIfExistsOrAdd
        } else {
            HeaderAppendAction::OverwriteIfExistsOrAdd
        } as i32,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use legate_crds::ObjectRef;
    use prost::Message;

    use itertools::Itertools;

    use super::{EncodedRoute, Served, served_as};
    use crate::ir::{self, ServedRoute, Settings, Variant};

    /// Every route of `yaml`'s IR, once.
    fn routes(yaml: &str) -> Vec<std::sync::Arc<ir::Route>> {
        let loaded = legate_crds::loader::load_str("test.yaml", yaml).unwrap();
        assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
        let ir = ir::build(&loaded.resources, &Settings::default());
        assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
        let mut seen = BTreeSet::new();
        ir.listeners
            .iter()
            .flat_map(|l| &l.virtual_hosts)
            .flat_map(|v| &v.routes)
            .filter(|s| seen.insert(std::sync::Arc::as_ptr(&s.route)))
            .map(|s| s.route.clone())
            .collect()
    }

    #[test]
    fn a_variant_written_from_its_routes_encoding_is_prosts_encoding_of_it() {
        let mapping = |name: &str, spec: &str| {
            format!(
                "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: {name}, namespace: default}}\nspec: {{hostname: \"*\", {spec}}}\n"
            )
        };
        let mut yaml = "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: http, namespace: default}\n\
            spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}\n"
            .to_owned();
        yaml += &mapping("plain", "prefix: /a/, service: a");
        yaml += &mapping(
            "everything",
            "prefix: /b/, service: b, headers: {x-a: \"1\"}, regex_headers: {x-b: \"^b+$\"}, \
             query_parameters: {q: \"1\"}, method: POST, case_sensitive: false, \
             add_request_headers: {x-c: c}, remove_response_headers: [x-d], timeout_ms: 10",
        );
        yaml += &mapping(
            "regex",
            "prefix: \"^/r/[0-9]+$\", prefix_regex: true, service: r",
        );
        // A CORS policy is written after the action: kept by both variants.
        yaml += &mapping(
            "cors",
            "prefix: /o/, service: o, cors: {origins: [\"https://a.example\"], methods: [GET], \
             headers: [X-A], exposed_headers: [X-B], credentials: true, max_age: \"60\"}",
        );
        yaml += &mapping("canary-1", "prefix: /c/, service: c1, weight: 10");
        yaml += &mapping("canary-2", "prefix: /c/, service: c2");
        yaml += &mapping(
            "moved",
            "prefix: /m/, service: m.example.com, host_redirect: true",
        );
        // Checked routes: their redirect variants switch the check off, in place of the
        // route's own filter settings (here two: the check's and CORS's, in key order).
        yaml += "---\napiVersion: getambassador.io/v3alpha1\nkind: AuthService\nmetadata: {name: auth, namespace: default}\nspec: {auth_service: auth:3000}\n";
        yaml += &mapping(
            "open-cors",
            "prefix: /p/, service: p, bypass_auth: true, cors: {origins: [\"https://a.example\"]}",
        );
        yaml += &mapping(
            "context",
            "prefix: /x/, service: x, auth_context_extensions: {b: \"2\", a: \"1\", c: \"3\"}",
        );
        // Matches on either side of 128 bytes, where a length takes a second byte.
        for n in 70..130 {
            yaml += &mapping(
                &format!("long-{n}"),
                &format!("prefix: /{}/, service: l", "x".repeat(n)),
            );
        }
        // A hostname's `:authority` condition, which a virtual host's domain can imply.
        yaml += "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: named, namespace: default}\n\
            spec: {hostname: \"*.example.com\", prefix: /n/, service: named, headers: {x-n: \"1\"}}\n";
        let routes = routes(&yaml);
        assert!(routes.len() > 60);
        for route in routes {
            let encoded = EncodedRoute::new(&route);
            let variants = [None, Some(Variant::Secure), Some(Variant::Redirect)];
            for (variant, implied_authority) in
                variants.into_iter().cartesian_product([false, true])
            {
                let served = ServedRoute {
                    route: route.clone(),
                    variant,
                };
                let how = Served {
                    variant,
                    implied_authority,
                };
                let served = served_as(&served, how);
                let mut written = Vec::new();
                encoded.write_as(how, &mut written);
                assert_eq!(encoded.len_as(how), written.len());
                let decoded =
                    envoy_types::pb::envoy::config::route::v3::Route::decode(&written[..]);
                assert_eq!(
                    decoded.as_ref(),
                    Ok(&served),
                    "{} as {variant:?}",
                    route.source
                );
                // Byte for byte where prost's order is not a hash's.
                if served.typed_per_filter_config.len() < 2 {
                    assert_eq!(
                        written,
                        served.encode_to_vec(),
                        "{} as {variant:?}",
                        route.source
                    );
                }
            }
        }
    }

    #[test]
    fn a_virtual_host_implies_the_authority_its_domain_requires() {
        let route = |glob: &str| {
            let yaml = format!(
                "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {{name: l, namespace: default}}\n\
                 spec: {{port: 8080, protocol: HTTP, securityModel: INSECURE, hostBinding: {{namespace: {{from: ALL}}}}}}\n\
                 ---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: m, namespace: default}}\n\
                 spec: {{hostname: \"{glob}\", prefix: /m/, service: m}}\n"
            );
            routes(&yaml).remove(0)
        };
        let implied =
            |domain: &str, glob: &str| super::implied_authority(&[domain.to_owned()], &route(glob));
        for (domain, glob) in [
            ("foo.example.com", "foo.example.com"),
            ("Foo.Example.com", "foo.example.com"),
            ("foo.example.com", "*.example.com"),
            ("foo.example.com", "foo.*"),
            ("*.example.com", "*.example.com"),
        ] {
            assert!(implied(domain, glob), "{domain} implies {glob}");
        }
        for (domain, glob) in [
            // A wildcard virtual host admits names the glob does not.
            ("*", "foo.example.com"),
            ("*.example.com", "foo.example.com"),
            ("*.foo.example.com", "*.example.com"),
            ("bar.example.com", "foo.example.com"),
            ("example.com", "*.example.com"),
        ] {
            assert!(!implied(domain, glob), "{domain} does not imply {glob}");
        }
    }

    #[test]
    fn route_names_are_object_refs_as_displayed() {
        for namespace in [Some("team-1".to_owned()), None] {
            let source = ObjectRef {
                kind: "Mapping".into(),
                namespace,
                name: "quote".into(),
            };
            assert_eq!(super::route_name(&source), source.to_string());
        }
    }
}
