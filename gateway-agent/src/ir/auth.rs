//! AuthService → Envoy's `ext_authz` filter, and which AuthService checks each route, with
//! Emissary's semantics (`ir/irauth.py`, `envoy/v3/v3httpfilter.py` `V3HTTPFilter_authv1`,
//! `envoy/v3/v3route.py`): every route is checked unless its Mapping says `bypass_auth: true` or
//! it redirects; `auth_context_extensions` go with its check requests.
//!
//! Beyond Emissary (its issues #216 and #5291), a gateway may use several AuthServices:
//! - the **default** one checks every route that names none. Emissary merges every AuthService
//!   into one filter; here, of several that are not `opt_in`, one is the default
//!   ([`super::external_service::ranked`]) and each other is refused, naming it;
//! - an **`opt_in: true`** AuthService checks only the routes whose Mapping names it in
//!   `auth_service_ref`; a Mapping may name the default one too.
//!
//! Each is its own `ext_authz` filter, in the order above: the default one on for every route
//! (as in Emissary, named as Emissary names it, so its per-route settings are keyed the same),
//! the opt-in ones off unless a route turns its own on (and the default off).
//!
//! An AuthService whose settings cannot be used (an unparsable `auth_service`, a missing
//! TLSContext, ...) is refused naming the field, and still guards what it would guard: its
//! filter calls a cluster without endpoints, so its requests fail as if the service were down,
//! and `failure_mode_allow` (default false: deny, with `status_on_error`, 403 by default) decides
//! what clients get. Emissary answers 500 to every request then (a Lua filter); either way
//! nothing is let through that the AuthService was meant to check.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use legate_crds::{
    ObjectRef, Resource,
    auth_service::{AuthProto, AuthServiceSpec, ProtocolVersion},
    mapping::MappingSpec,
};

use super::{
    Reason, Refusal, Rejection,
    envoy_rules::{self, Side},
    external_service::{self, Context, Target},
    service::Cluster,
};

/// The default AuthService's filter name: Emissary's, which its per-route settings are keyed by.
pub const DEFAULT_FILTER: &str = "envoy.filters.http.ext_authz";

/// Emissary's `timeout_ms` default.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);

/// Headers every HTTP check request may carry, besides an AuthService's own
/// `allowed_request_headers` (Emissary's `AllowedRequestHeaders`).
const ALLOWED_REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "from",
    "proxy-authorization",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// Headers of an HTTP auth service's answer that go on to the upstream (allowed) or to the
/// client (denied), besides its own `allowed_authorization_headers` (Emissary's
/// `AllowedAuthorizationHeaders`).
const ALLOWED_AUTHORIZATION_HEADERS: &[&str] = &[
    "authorization",
    "location",
    "proxy-authenticate",
    "set-cookie",
    "www-authenticate",
];

/// `allow_request_body: true` without `include_body` (Emissary's values).
const LEGACY_BODY: Body = Body {
    max_bytes: 4096,
    allow_partial: true,
};

/// Which AuthServices this gateway uses, and for what: all a compiled Mapping depends on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    /// The default AuthService, and its `(namespace, name)`.
    pub default: Option<ObjectRef>,
    default_key: Option<(String, String)>,
    /// The opt-in AuthServices, by `(namespace, name)`, with their filters' names.
    pub opt_in: BTreeMap<(String, String), String>,
    /// The AuthServices that are not used (another one is the default), each naming it.
    pub rejections: Vec<Rejection>,
}

impl Selection {
    pub fn new(resources: &[&Resource], gateway_namespace: &str) -> Self {
        let mut out = Self::default();
        let mut defaults = Vec::new();
        for r in resources {
            let Resource::AuthService(a) = r else {
                continue;
            };
            if a.spec.opt_in == Some(true) {
                let (namespace, name) = key(r, gateway_namespace);
                let filter = format!("{DEFAULT_FILTER}/{namespace}/{name}");
                out.opt_in.insert((namespace, name), filter);
            } else {
                defaults.push(*r);
            }
        }
        let ranked = external_service::ranked(defaults, gateway_namespace);
        if let Some((winner, losers)) = ranked.split_first() {
            out.default = Some(winner.object_ref());
            out.default_key = Some(key(winner, gateway_namespace));
            out.rejections = losers
                .iter()
                .map(|l| {
                    external_service::lost_to(
                        l,
                        winner,
                        "the gateway's default AuthService",
                        "; set opt_in: true to check only the Mappings that name it in \
                         auth_service_ref",
                    )
                })
                .collect();
        }
        out
    }

    /// Whether the gateway checks any request.
    pub fn any(&self) -> bool {
        self.default.is_some() || !self.opt_in.is_empty()
    }

    fn is_default(&self, namespace: &str, name: &str) -> bool {
        self.default_key
            .as_ref()
            .is_some_and(|(ns, n)| n == name && ns == namespace)
    }
}

/// A resource's namespace (the gateway's when a file leaves it out) and name.
fn key(r: &Resource, gateway_namespace: &str) -> (String, String) {
    let meta = r.meta();
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| gateway_namespace.to_owned()),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Which AuthService checks a route's requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RouteAuth {
    /// The gateway has no AuthService.
    #[default]
    None,
    /// Not checked: `bypass_auth`, a redirect, or only opt-in AuthServices and none named.
    Bypass,
    /// The default AuthService, with these context extensions.
    Default(BTreeMap<String, String>),
    /// This opt-in AuthService's filter, with these context extensions.
    Only {
        filter: String,
        context_extensions: BTreeMap<String, String>,
    },
}

/// Which AuthService checks the requests of a Mapping in `namespace`; refused when it names
/// one the gateway does not use.
pub fn route_auth(
    spec: &MappingSpec,
    namespace: &str,
    redirects: bool,
    selection: &Selection,
) -> Result<RouteAuth, Refusal> {
    let extensions = || spec.auth_context_extensions.clone().unwrap_or_default();
    let named = match &spec.auth_service_ref {
        Some(r) => {
            let ns = r.namespace.as_deref().unwrap_or(namespace);
            Some((ns, r.name.as_str()))
        }
        None => None,
    };
    // Checked even when bypassed: a typo must not wait for the day `bypass_auth` goes.
    let only = match named {
        None => None,
        Some((ns, name)) if selection.is_default(ns, name) => None,
        Some((ns, name)) => match selection.opt_in.get(&(ns.to_owned(), name.to_owned())) {
            Some(filter) => Some(filter.clone()),
            None => {
                return Err(Refusal {
                    reason: Reason::AuthServiceNotFound,
                    message: format!(
                        "auth_service_ref: this gateway uses no AuthService {ns}/{name} (it does \
                         not exist, is for another ambassador_id, or is refused: see its \
                         status); the route is not served rather than served unchecked"
                    ),
                });
            }
        },
    };
    if !selection.any() {
        return Ok(RouteAuth::None);
    }
    // Emissary skips the check for a redirect: it answers before anything is forwarded.
    if spec.bypass_auth == Some(true) || redirects {
        return Ok(RouteAuth::Bypass);
    }
    Ok(match only {
        Some(filter) => RouteAuth::Only {
            filter,
            context_extensions: extensions(),
        },
        None if selection.default.is_some() => RouteAuth::Default(extensions()),
        None => RouteAuth::Bypass,
    })
}

/// One AuthService's `ext_authz` filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFilter {
    pub source: ObjectRef,
    /// The HTTP filter's name: routes key their settings for it by this name.
    pub name: String,
    /// Off unless a route turns it on (an opt-in AuthService).
    pub opt_in: bool,
    pub cluster: String,
    pub timeout: Duration,
    pub transport: Transport,
    /// Let requests through when the service fails to answer.
    pub failure_mode_allow: bool,
    /// The status denied requests get when the service fails to answer; `None`: Envoy's 403.
    pub status_on_error: Option<u16>,
    /// How much of the request body goes with the check.
    pub body: Option<Body>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// An HTTP check request: the client's request, with its allowed headers, to `path_prefix`
    /// and the client's path.
    Http {
        uri: String,
        path_prefix: String,
        allowed_request_headers: Vec<String>,
        allowed_authorization_headers: Vec<String>,
        headers_to_add: Vec<(String, String)>,
    },
    /// `envoy.service.auth.v3.Authorization/Check`.
    Grpc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Body {
    pub max_bytes: u32,
    pub allow_partial: bool,
}

/// What the gateway's AuthServices make: their filters (the default one first) and clusters.
/// The filters of the AuthServices the build's selection (`cx.defaults.auth`) uses, the
/// default one first; their clusters go into `clusters`. An AuthService that cannot be used as
/// written is refused in `rejections` and still guards (see the module's text).
pub(super) fn build(
    resources: &[&Resource],
    cx: &Context<'_, '_>,
    clusters: &mut BTreeMap<String, Arc<Cluster>>,
    rejections: &mut Vec<Rejection>,
    unreachable: &mut Vec<Rejection>,
) -> Arc<[Arc<AuthFilter>]> {
    let selection = &cx.defaults.auth;
    let gateway_namespace = cx.settings.namespace.as_str();
    let mut filters: Vec<Arc<AuthFilter>> = Vec::new();
    for r in resources {
        let Resource::AuthService(a) = r else {
            continue;
        };
        let (namespace, name) = key(r, gateway_namespace);
        let source = r.object_ref();
        let filter_name = if selection.default.as_ref() == Some(&source) {
            DEFAULT_FILTER.to_owned()
        } else {
            match selection.opt_in.get(&(namespace.clone(), name.clone())) {
                Some(f) => f.clone(),
                // Not used: refused by the selection.
                None => continue,
            }
        };
        let spec = &a.spec;
        let linkerd = spec
            .add_linkerd_headers
            .unwrap_or(cx.defaults.add_linkerd_headers);
        let (filter, cluster) = match compile(spec, &namespace, cx, linkerd) {
            Ok((transport, cluster, note)) => {
                if let Some(note) = note {
                    unreachable.push(Rejection::new(source.clone(), note.reason, note.message));
                }
                (
                    filter(spec, &source, filter_name, &cluster.name, transport),
                    cluster,
                )
            }
            Err(refusal) => {
                let cluster = external_service::unusable("auth-unusable", &namespace, &name, false);
                let transport = Transport::Http {
                    uri: ["http://", cluster.host.as_str()].concat(),
                    path_prefix: String::new(),
                    allowed_request_headers: Vec::new(),
                    allowed_authorization_headers: Vec::new(),
                    headers_to_add: Vec::new(),
                };
                let filter = filter(spec, &source, filter_name, &cluster.name, transport);
                let outcome = if filter.failure_mode_allow {
                    "the requests it checks are let through unchecked (failure_mode_allow: true)"
                        .to_owned()
                } else {
                    format!(
                        "the requests it checks are denied with status {}, as when the service \
                         is down (failure_mode_allow: false)",
                        filter.status_on_error.unwrap_or(403)
                    )
                };
                rejections.push(Rejection::new(
                    source.clone(),
                    refusal.reason,
                    format!("{}; {outcome}", refusal.message),
                ));
                (filter, cluster)
            }
        };
        filters.push(Arc::new(filter));
        clusters
            .entry(cluster.name.clone())
            .or_insert_with(|| Arc::new(cluster));
    }
    // The default first, then the opt-in ones by name: a stable chain.
    filters.sort_by(|a, b| (a.opt_in, &a.name).cmp(&(b.opt_in, &b.name)));
    filters.into()
}

fn filter(
    spec: &AuthServiceSpec,
    source: &ObjectRef,
    name: String,
    cluster: &str,
    transport: Transport,
) -> AuthFilter {
    let body = match (&spec.include_body, spec.allow_request_body) {
        // `BodyBytes` is bounded to 1..=u32::MAX by its schema and its loader.
        (Some(b), _) => Some(Body {
            max_bytes: u32::try_from(b.max_bytes.get()).unwrap_or(u32::MAX),
            allow_partial: b.allow_partial,
        }),
        (None, Some(true)) => Some(LEGACY_BODY),
        (None, _) => None,
    };
    AuthFilter {
        source: source.clone(),
        opt_in: name != DEFAULT_FILTER,
        name,
        cluster: cluster.to_owned(),
        // `Millis` is bounded to 0..=u32::MAX ms.
        timeout: spec.timeout_ms.map_or(DEFAULT_TIMEOUT, |t| {
            Duration::from_millis(u64::try_from(t.get()).unwrap_or(0))
        }),
        transport,
        failure_mode_allow: spec.failure_mode_allow == Some(true),
        // One Envoy cannot answer with is refused ([`compile`]) and left out here.
        status_on_error: spec
            .status_on_error
            .as_ref()
            .and_then(|s| s.code)
            .filter(|c| status_code(c.get()).is_ok())
            .and_then(|c| u16::try_from(c.get()).ok()),
        body,
    }
}

/// The transport and cluster of one AuthService, or why it cannot be used.
fn compile(
    spec: &AuthServiceSpec,
    namespace: &str,
    cx: &Context<'_, '_>,
    linkerd: bool,
) -> Result<(Transport, Cluster, Option<Refusal>), Refusal> {
    let grpc = spec.proto == Some(AuthProto::Grpc);
    if grpc && spec.protocol_version != Some(ProtocolVersion::V3) {
        return Err(Refusal::from(
            "protocol_version: a gRPC AuthService needs v3 (Envoy no longer speaks v2)".to_owned(),
        ));
    }
    if let Some(code) = spec.status_on_error.as_ref().and_then(|s| s.code) {
        status_code(code.get())?;
    }
    let (cluster, note) = external_service::cluster(
        &Target {
            field: "auth_service",
            text: &spec.auth_service,
            namespace,
            http2: grpc,
            tls: spec.tls.as_deref(),
            stats_name: &spec.stats_name,
            circuit_breakers: spec.circuit_breakers.as_deref(),
        },
        cx,
    )?;
    if grpc {
        return Ok((Transport::Grpc, cluster, note));
    }
    let path_prefix = spec.path_prefix.clone().unwrap_or_default();
    if !path_prefix.is_empty() {
        envoy_rules::header_value("path_prefix", &path_prefix)?;
        if !path_prefix.starts_with('/') {
            return Err(Refusal::from(format!(
                "path_prefix {}: must start with / (it goes before the request's path)",
                envoy_rules::shown(&path_prefix)
            )));
        }
    }
    let allowed_request_headers = header_list(
        "allowed_request_headers",
        spec.allowed_request_headers.as_deref(),
        ALLOWED_REQUEST_HEADERS,
    )?;
    let allowed_authorization_headers = header_list(
        "allowed_authorization_headers",
        spec.allowed_authorization_headers.as_deref(),
        ALLOWED_AUTHORIZATION_HEADERS,
    )?;
    let mut headers_to_add = Vec::new();
    for (name, value) in spec.add_auth_headers.iter().flatten() {
        let field = format!("add_auth_headers.{name}");
        envoy_rules::header_name(&field, name, Side::Request)?;
        envoy_rules::header_value(&field, value)?;
        headers_to_add.push((name.clone(), value.clone()));
    }
    let scheme = if cluster.tls { "https" } else { "http" };
    let authority = [
        cluster.host.as_str(),
        ":",
        itoa::Buffer::new().format(cluster.port),
    ]
    .concat();
    if linkerd {
        headers_to_add.push(("l5d-dst-override".to_owned(), authority.clone()));
    }
    Ok((
        Transport::Http {
            uri: [scheme, "://", &authority].concat(),
            path_prefix,
            allowed_request_headers,
            allowed_authorization_headers,
            headers_to_add,
        },
        cluster,
        note,
    ))
}

/// `status_on_error.code`: one Envoy knows (its `StatusCode` enum lists the registered ones and
/// refuses any other).
fn status_code(code: i64) -> Result<(), Refusal> {
    use envoy_types::pb::envoy::r#type::v3::StatusCode;
    match i32::try_from(code).ok().map(StatusCode::try_from) {
        Some(Ok(c)) if c != StatusCode::Empty => Ok(()),
        _ => Err(Refusal::from(format!(
            "status_on_error.code: {code} is not an HTTP status code Envoy can answer with"
        ))),
    }
}

/// Emissary's list merged with the AuthService's names, lower-cased, sorted, without duplicates.
fn header_list(
    field: &str,
    own: Option<&[String]>,
    always: &[&str],
) -> Result<Vec<String>, Refusal> {
    let mut out: Vec<String> = always.iter().map(|h| (*h).to_owned()).collect();
    for (i, name) in own.into_iter().flatten().enumerate() {
        envoy_rules::header_name(&format!("{field}[{i}]"), name, Side::Response)?;
        out.push(name.to_ascii_lowercase());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests;
