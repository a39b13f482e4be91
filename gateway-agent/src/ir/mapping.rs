//! One Mapping, validated into a [`Route`] and its upstream [`Cluster`]. Everything Envoy would
//! refuse (a bad regex, an unusable service) is refused here, with a reason, so Envoy never sees
//! it and the rest of the configuration is unaffected.

use std::{collections::BTreeMap, time::Duration};

use legate_crds::{ObjectRef, fields::BoolOrString, mapping::Mapping};

use super::{
    DEFAULT_CONNECT_TIMEOUT, Refusal, Settings, cluster_tuning,
    cors::{self, RouteCors},
    defaults::MappingDefaults,
    envoy_rules::{self, Side},
    service::{self, Cluster},
    upstream_policy::{self, HashPolicy},
    upstream_tls,
};

/// How a request path is matched.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(String),
}

impl PathMatch {
    pub fn text(&self) -> &str {
        match self {
            Self::Prefix(s) | Self::Exact(s) | Self::Regex(s) => s,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StringMatch {
    Exact(String),
    Regex(String),
    Present,
    /// A DNS glob on the `:authority`: `*.x` (suffix), `x.*` (prefix) or exact, compared
    /// case-insensitively as host names are.
    HostGlob(String),
}

/// A header (or, in `query`, a query parameter) condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderMatch {
    pub name: String,
    pub value: StringMatch,
}

impl HeaderMatch {
    /// Its share of Emissary's route weight: name + value length, + 1 for a regex.
    fn weight(&self) -> usize {
        self.name.len()
            + match &self.value {
                StringMatch::Exact(v) | StringMatch::HostGlob(v) => v.len(),
                StringMatch::Regex(v) => v.len() + 1,
                StringMatch::Present => 1,
            }
    }
}

/// A header to add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedHeader {
    pub name: String,
    pub value: String,
    pub append: bool,
}

/// One Envoy route, from one Mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub source: ObjectRef,
    /// `metadata.labels`, for Host `mappingSelector`s.
    pub labels: BTreeMap<String, String>,
    /// `metadata.creationTimestamp` as RFC 3339, when known; older wins a namespace conflict.
    pub created: Option<String>,
    pub precedence: i32,
    pub path: PathMatch,
    pub case_sensitive: bool,
    /// The glob Hosts are associated by (`hostname`, or `host` when not a regex).
    pub hostname: Option<String>,
    /// `host_regex: true`: the Mapping matches every Host; the regex is in `headers`.
    pub host_regex: bool,
    /// Including the synthesized `:authority` and `:method` conditions.
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<HeaderMatch>,
    /// The Mapping's own `weight`.
    pub weight: Option<u8>,
    /// Cumulative canary share within its group, out of 100; `None` when alone.
    pub fraction: Option<u32>,
    pub shadow: bool,
    pub action: RouteAction,
    pub add_request_headers: Vec<AddedHeader>,
    pub remove_request_headers: Vec<String>,
    pub add_response_headers: Vec<AddedHeader>,
    pub remove_response_headers: Vec<String>,
    /// Its CORS policy: the Mapping's, its group's, or the Module's default ([`cors`]).
    pub cors: Option<RouteCors>,
    /// Which AuthService checks its requests ([`super::auth`]).
    pub auth: super::auth::RouteAuth,
    /// The descriptors its `labels` send to the RateLimitService ([`super::rate_limit`]).
    pub rate_limits: Vec<super::rate_limit::Descriptor>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RouteAction {
    Forward(Forward),
    Redirect(Redirect),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Forward {
    pub cluster: String,
    /// `None` keeps the path; Emissary's default replaces the matched prefix with `/`.
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<(String, String)>,
    pub timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub host_rewrite: Option<String>,
    pub auto_host_rewrite: bool,
    pub retry: Option<Retry>,
    /// What `ring_hash`/`maglev` hash requests by ([`upstream_policy`]).
    pub hash: Option<HashPolicy>,
    pub upgrades: Vec<String>,
    /// Shadow clusters and the percentage mirrored to each.
    pub mirrors: Vec<(String, u32)>,
    /// The Mapping's `priority`: which of the cluster's circuit-breaker thresholds (per
    /// priority) its requests count against.
    pub priority: Priority,
}

/// Envoy's routing priorities, by their names (`RoutingPriority`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Priority {
    #[default]
    Default,
    High,
}

/// `priority`: Envoy's names, in any case (Emissary passes the text through to Envoy, which
/// reads only `DEFAULT` and `HIGH` and refuses the whole configuration otherwise).
fn priority(value: Option<&str>) -> Result<Priority, String> {
    match value {
        None => Ok(Priority::Default),
        Some(v) if v.eq_ignore_ascii_case("default") => Ok(Priority::Default),
        Some(v) if v.eq_ignore_ascii_case("high") => Ok(Priority::High),
        Some(v) => Err(format!(
            "priority: {} is not a routing priority; use default or high",
            envoy_rules::shown(v)
        )),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    pub retry_on: String,
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// The `service` value: where to send the client.
    pub host: String,
    pub path: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<(String, String)>,
    pub code: u16,
}

impl Route {
    /// Clusters this route sends traffic to (including mirrors).
    pub fn clusters(&self) -> impl Iterator<Item = &str> {
        let (primary, mirrors) = match &self.action {
            RouteAction::Forward(f) => (Some(f.cluster.as_str()), f.mirrors.as_slice()),
            RouteAction::Redirect(_) => (None, &[][..]),
        };
        primary
            .into_iter()
            .chain(mirrors.iter().map(|(c, _)| c.as_str()))
    }

    /// Compares Emissary's route weights (routes are evaluated in descending order):
    /// precedence, prefix length, header lengths, query lengths, the prefix itself, the method,
    /// header and query names. Compared part by part, without building the weights.
    pub fn cmp_weight(&self, other: &Self) -> std::cmp::Ordering {
        self.weight_lengths()
            .cmp(&other.weight_lengths())
            .then_with(|| self.cmp_weight_names(other))
    }

    /// The numeric head of the route weight: precedence and the lengths.
    pub fn weight_lengths(&self) -> (i32, usize, usize, usize) {
        (
            self.precedence,
            self.path.text().len(),
            self.headers.iter().map(HeaderMatch::weight).sum(),
            self.query.iter().map(HeaderMatch::weight).sum(),
        )
    }

    /// The rest of the route weight: the prefix, the method, header and query names.
    pub fn cmp_weight_names(&self, other: &Self) -> std::cmp::Ordering {
        let names = |m: &[HeaderMatch], n: &[HeaderMatch]| {
            m.iter().map(|h| &h.name).cmp(n.iter().map(|h| &h.name))
        };
        self.path
            .text()
            .cmp(other.path.text())
            .then_with(|| self.method().cmp(other.method()))
            .then_with(|| names(&self.headers, &other.headers))
            .then_with(|| names(&self.query, &other.query))
    }

    /// The method matched, GET when none is.
    fn method(&self) -> &str {
        self.headers
            .iter()
            .find(|h| h.name == ":method")
            .map_or("GET", |h| match &h.value {
                StringMatch::Exact(v) | StringMatch::Regex(v) | StringMatch::HostGlob(v) => v,
                StringMatch::Present => "",
            })
    }
}

/// A compiled Mapping: its route, the cluster it sends to (a redirect has none), and a note
/// when it is served without endpoints (its Service does not exist).
pub type Compiled = (Route, Option<Cluster>, Option<Refusal>);

/// Validates `mapping` into its route and cluster, or says why it cannot serve. `resolution`
/// is what its `service` names in the snapshot ([`service_key`] says which Service it would be);
/// `defaults` are the gateway Module's for what the Mapping leaves unset.
pub fn route(
    mapping: &Mapping,
    settings: &Settings,
    resolution: service::Resolution<'_>,
    defaults: &MappingDefaults,
) -> Result<Compiled, Refusal> {
    let spec = &mapping.spec;
    let namespace = mapping
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(&settings.namespace);
    let source = ObjectRef {
        kind: "Mapping".into(),
        namespace: Some(namespace.to_owned()),
        name: mapping.metadata.name.clone().unwrap_or_default(),
    };

    let path = if spec.prefix_regex == Some(true) {
        envoy_rules::regex("prefix", &spec.prefix, defaults.regex_max_size.0)?;
        PathMatch::Regex(spec.prefix.clone())
    } else if spec.prefix_exact == Some(true) {
        PathMatch::Exact(spec.prefix.clone())
    } else {
        PathMatch::Prefix(spec.prefix.clone())
    };

    let mut headers = Vec::new();
    // `hostname` wins over the deprecated `host`, as in Emissary (the note names `host`).
    let (hostname, host_regex) = match (&spec.hostname, &spec.host) {
        (Some(glob), _) => {
            let glob = glob.to_ascii_lowercase();
            if let Some(m) = authority_for_glob(&glob) {
                headers.push(m);
            }
            (Some(glob), false)
        }
        (None, Some(host)) if spec.host_regex == Some(true) => {
            envoy_rules::regex("host", host, defaults.regex_max_size.0)?;
            headers.push(HeaderMatch {
                name: ":authority".into(),
                value: StringMatch::Regex(host.clone()),
            });
            (None, true)
        }
        (None, Some(host)) => {
            if host.contains('*') {
                return Err(Refusal::from(format!(
                    "host {host:?}: '*' is not allowed in an exact host; use hostname for a glob"
                )));
            }
            let host = host.to_ascii_lowercase();
            headers.push(HeaderMatch {
                name: ":authority".into(),
                value: StringMatch::HostGlob(host.clone()),
            });
            (Some(host), false)
        }
        (None, None) => (None, false),
    };
    if let Some(method) = &spec.method {
        let value = if spec.method_regex == Some(true) {
            envoy_rules::regex("method", method, defaults.regex_max_size.0)?;
            StringMatch::Regex(method.clone())
        } else {
            StringMatch::Exact(method.clone())
        };
        headers.push(HeaderMatch {
            name: ":method".into(),
            value,
        });
    }
    let (header, query) = (envoy_rules::matcher_name, envoy_rules::query_name);
    let regex = Some(defaults.regex_max_size.0);
    headers.extend(matchers("headers", &spec.headers, None, header)?);
    headers.extend(matchers(
        "regex_headers",
        &spec.regex_headers,
        regex,
        header,
    )?);
    let query = [
        matchers("query_parameters", &spec.query_parameters, None, query)?,
        matchers(
            "regex_query_parameters",
            &spec.regex_query_parameters,
            regex,
            query,
        )?,
    ]
    .concat();

    // A TLSContext's name originates with it ([`upstream_tls`]); `true`, with none. A redirect
    // sends nothing upstream: its `tls` is only noted ([`super::unsupported`]).
    let origination = match forwards(mapping) {
        true => upstream_tls::for_mapping(spec.tls.as_ref(), namespace, &defaults.origination)?,
        false => None,
    };
    let originate_tls = origination.is_some() || spec.tls == Some(BoolOrString::Bool(true));
    let upstream = service::parse_target(&spec.service, originate_tls)?;
    let connect_timeout = spec
        .connect_timeout_ms
        .map(millis)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    // Envoy requires a connect timeout above zero (`Cluster.connect_timeout`: `gt: 0s`).
    if connect_timeout.is_zero() {
        return Err(Refusal::from(
            "connect_timeout_ms: 0 is not a timeout Envoy takes; it must be at least 1".to_owned(),
        ));
    }
    let http2 = spec.grpc == Some(true);

    let redirect = spec.host_redirect == Some(true) && spec.shadow != Some(true);
    let mut linkerd = None;
    let (action, cluster, note) = if redirect {
        let host = spec
            .service
            .split_once("://")
            .map_or(spec.service.as_str(), |(_, h)| h);
        envoy_rules::header_value("service", host)?;
        let rewrites = [
            ("path_redirect", &spec.path_redirect),
            ("prefix_redirect", &spec.prefix_redirect),
        ];
        for (field, value) in rewrites {
            if let Some(value) = value {
                envoy_rules::header_value(field, value)?;
            }
        }
        // One path rewrite, as Emissary picks it: path_redirect, else prefix_redirect, else
        // regex_redirect (the others are named in the Mapping's note, `unsupported`).
        let prefix = spec
            .prefix_redirect
            .clone()
            .filter(|_| spec.path_redirect.is_none());
        let regex = spec
            .regex_redirect
            .as_ref()
            .filter(|_| spec.path_redirect.is_none() && spec.prefix_redirect.is_none());
        let action = RouteAction::Redirect(Redirect {
            host: host.to_owned(),
            path: spec.path_redirect.clone(),
            prefix,
            regex: regex
                .map(|r| regex_substitution("regex_redirect", r, defaults.regex_max_size.0))
                .transpose()?,
            code: spec
                .redirect_response_code
                .map_or(301, |c| u16::try_from(i64::from(c)).unwrap_or(301)),
        });
        (action, None, None)
    } else {
        let target = service::Target {
            host: service::qualify(
                &upstream.host,
                defaults.service_namespace(namespace, &settings.namespace),
                &settings.namespace,
            ),
            ..upstream
        };
        // Emissary (`irhttpmapping.py`): the Mapping's `add_linkerd_headers`, else the Module's,
        // adds `l5d-dst-override: <host>:<port>` so a Linkerd sidecar routes to the Service.
        if spec
            .add_linkerd_headers
            .unwrap_or(defaults.add_linkerd_headers)
        {
            linkerd = Some(linkerd_override(&target));
        }
        let policy = upstream_policy::policy(spec, &defaults.policy)?;
        let (cluster, note) = service::cluster(
            &spec.service,
            &target,
            resolution,
            http2,
            connect_timeout,
            policy.cluster,
        )?;
        let cluster = upstream_tls::apply(cluster, origination);
        let cluster = cluster_tuning::tune(spec, &defaults.tuning, cluster)?;
        let name = cluster.name.clone();
        let regex_rewrite = spec
            .regex_rewrite
            .as_ref()
            .map(|r| regex_substitution("regex_rewrite", r, defaults.regex_max_size.0))
            .transpose()?;
        for (field, value) in [
            ("rewrite", &spec.rewrite),
            ("host_rewrite", &spec.host_rewrite),
        ] {
            if let Some(value) = value {
                envoy_rules::header_value(field, value)?;
            }
        }
        let upgrades = upgrades(
            spec.allow_upgrade.as_deref().unwrap_or_default(),
            spec.use_websocket == Some(true),
        )?;
        let forward = Forward {
            cluster: name,
            // Absent means "/", "" means keep the path (Emissary); regex_rewrite takes precedence.
            prefix_rewrite: match (&regex_rewrite, spec.rewrite.as_deref()) {
                (Some(_), _) | (None, Some("")) => None,
                (None, Some(r)) => Some(r.to_owned()),
                (None, None) => Some("/".to_owned()),
            },
            regex_rewrite,
            timeout: policy.timeout,
            idle_timeout: spec.idle_timeout_ms.map(millis),
            host_rewrite: spec.host_rewrite.clone(),
            auto_host_rewrite: spec.auto_host_rewrite == Some(true),
            retry: policy.retry,
            hash: policy.hash,
            upgrades,
            mirrors: Vec::new(),
            priority: priority(spec.priority.as_deref())?,
        };
        (RouteAction::Forward(forward), Some(cluster), note)
    };
    let route = Route {
        source,
        labels: mapping.metadata.labels.clone().unwrap_or_default(),
        created: mapping
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
        precedence: spec.precedence.unwrap_or(0),
        path,
        case_sensitive: spec.case_sensitive.unwrap_or(true),
        hostname,
        host_regex,
        headers,
        query,
        // `Percent` is bounded to 0..=100 by its schema and its loader.
        weight: spec.weight.map(|w| u8::try_from(w.get()).unwrap_or(100)),
        fraction: None,
        shadow: spec.shadow == Some(true),
        action,
        // A Mapping's own header settings, else the Module's `defaults` (checked already).
        add_request_headers: added_headers(
            "add_request_headers",
            own_or(
                &spec.add_request_headers,
                &defaults.headers.add_request_headers,
            ),
            Side::Request,
        )?
        .into_iter()
        .chain(linkerd)
        .collect(),
        remove_request_headers: removed_headers(
            "remove_request_headers",
            own_or(
                &spec.remove_request_headers,
                &defaults.headers.remove_request_headers,
            ),
            Side::Request,
        )?,
        add_response_headers: added_headers(
            "add_response_headers",
            own_or(
                &spec.add_response_headers,
                &defaults.headers.add_response_headers,
            ),
            Side::Response,
        )?,
        remove_response_headers: removed_headers(
            "remove_response_headers",
            own_or(
                &spec.remove_response_headers,
                &defaults.headers.remove_response_headers,
            ),
            Side::Response,
        )?,
        cors: cors::for_route(spec.cors.as_ref(), &defaults.cors, redirect)?,
        auth: super::auth::route_auth(
            spec,
            mapping
                .metadata
                .namespace
                .as_deref()
                .unwrap_or(&settings.namespace),
            spec.host_redirect == Some(true),
            &defaults.auth,
        )?,
        // Checked on every Mapping; sent only from a route that forwards, as Emissary's.
        rate_limits: super::rate_limit::descriptors(
            spec.labels.as_ref(),
            defaults.rate_limit.as_ref().filter(|_| !redirect),
        )?,
    };
    Ok((route, cluster, note))
}

/// The Kubernetes Service `mapping`'s `service` would name (Emissary's qualification applied),
/// if it has the form of one; none for a redirect, which sends nothing upstream.
pub fn service_key(
    mapping: &Mapping,
    settings: &Settings,
    defaults: &MappingDefaults,
    urls: bool,
) -> Option<service::ServiceKey> {
    let spec = &mapping.spec;
    if !forwards(mapping) {
        return None;
    }
    let namespace = mapping
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(&settings.namespace);
    // By default a URL (`https://...`, `http://...`) names a host to resolve, as it always did;
    // `urls` (an endpoint resolver) reads its host as a Service too.
    if !urls && spec.service.contains("://") {
        return None;
    }
    let tls = matches!(spec.tls, Some(BoolOrString::Bool(true)));
    let target = service::parse_target(&spec.service, tls).ok()?;
    let host = service::qualify(
        &target.host,
        defaults.service_namespace(namespace, &settings.namespace),
        &settings.namespace,
    );
    service::service_key(&host, &settings.namespace)
}

/// Whether `mapping` sends requests to its `service` (a redirect sends none; a shadow redirect
/// still mirrors).
pub fn forwards(mapping: &Mapping) -> bool {
    let spec = &mapping.spec;
    spec.host_redirect != Some(true) || spec.shadow == Some(true)
}

/// The `:authority` condition for a (lowercase) hostname glob; none for `*`, which matches
/// every host.
fn authority_for_glob(glob: &str) -> Option<HeaderMatch> {
    (glob != "*").then(|| HeaderMatch {
        name: ":authority".into(),
        value: StringMatch::HostGlob(glob.to_owned()),
    })
}

/// Header or query conditions, regexes of at most `regex` RE2 instructions when they are
/// regexes; `check_name` holds the names to what Envoy takes for them.
fn matchers(
    field: &str,
    map: &Option<BTreeMap<String, BoolOrString>>,
    regex: Option<usize>,
    check_name: envoy_rules::Check,
) -> Result<Vec<HeaderMatch>, String> {
    let mut out = Vec::new();
    for (name, value) in map.iter().flatten() {
        check_name(field, name)?;
        let value = match value {
            // v2's `true` meant "present"; `false` has no meaning in Emissary either.
            BoolOrString::Bool(true) => StringMatch::Present,
            BoolOrString::Bool(false) => {
                return Err(format!("{field}.{name}: false is not a condition"));
            }
            BoolOrString::String(v) if let Some(max) = regex => {
                envoy_rules::regex(&format!("{field}.{name}"), v, max)?;
                StringMatch::Regex(v.clone())
            }
            BoolOrString::String(v) => StringMatch::Exact(v.clone()),
        };
        out.push(HeaderMatch {
            name: name.to_ascii_lowercase(),
            value,
        });
    }
    Ok(out)
}

/// Headers to add, with names Envoy accepts on that side.
pub(super) fn added_headers(
    field: &str,
    map: Option<&BTreeMap<String, legate_crds::fields::AddedHeader>>,
    side: Side,
) -> Result<Vec<AddedHeader>, String> {
    map.into_iter()
        .flatten()
        .map(|(name, h)| {
            envoy_rules::header_name(field, name, side)?;
            envoy_rules::added_header_value(&format!("{field}.{name}"), h.value())?;
            Ok(AddedHeader {
                name: name.clone(),
                value: h.value().to_owned(),
                append: h.append(),
            })
        })
        .collect()
}

/// A Mapping's own setting when it writes the key (even empty), else the default.
fn own_or<'a, T>(own: &'a Option<T>, default: &'a Option<T>) -> Option<&'a T> {
    own.as_ref().or(default.as_ref())
}

/// The `l5d-dst-override` header for `target`: its qualified host and its port (a named port as
/// written, since the Service's number is not known here; Emissary writes 80 for it).
fn linkerd_override(target: &service::Target) -> AddedHeader {
    let port = match &target.port {
        Some(service::PortRef::Name(name)) => name.clone(),
        _ => target.port_number().unwrap_or_default().to_string(),
    };
    AddedHeader {
        name: "l5d-dst-override".to_owned(),
        value: format!("{}:{port}", target.host),
        append: false,
    }
}

/// Header names to remove, with names Envoy accepts on that side.
pub(super) fn removed_headers(
    field: &str,
    names: Option<&Vec<String>>,
    side: Side,
) -> Result<Vec<String>, String> {
    let names = names.cloned().unwrap_or_default();
    names
        .iter()
        .try_for_each(|n| envoy_rules::header_name(field, n, side))?;
    Ok(names)
}

/// `regex_rewrite` or `regex_redirect`: a pattern RE2 compiles, a substitution Envoy takes.
fn regex_substitution(
    field: &str,
    r: &legate_crds::mapping::RegexRewrite,
    max: usize,
) -> Result<(String, String), String> {
    envoy_rules::regex(&format!("{field}.pattern"), &r.pattern, max)?;
    envoy_rules::header_value(&format!("{field}.substitution"), &r.substitution)?;
    Ok((r.pattern.clone(), r.substitution.clone()))
}

/// The upgrades allowed, lower case as Envoy compares them, each once: Envoy refuses a
/// repeated upgrade type, and `[websocket, WebSocket]` asks for one.
fn upgrades(allowed: &[String], websocket: bool) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let websocket = websocket.then(|| "websocket".to_owned());
    for u in allowed.iter().chain(websocket.as_ref()) {
        envoy_rules::non_empty_header_value("allow_upgrade", u)?;
        let u = u.to_ascii_lowercase();
        if !out.contains(&u) {
            out.push(u);
        }
    }
    Ok(out)
}

fn millis(ms: legate_crds::fields::Millis) -> Duration {
    // `Millis` is bounded to 0..=u32::MAX by its schema and its loader.
    Duration::from_millis(u64::try_from(ms.get()).unwrap_or(0))
}

/// `250ms`, `1.5s`, `2m`, `1h` (the schema's pattern). A value the schema lets through but no
/// duration can hold (`99999999999999999999h`) refuses the Mapping, naming `field`, rather than
/// panicking the agent on every start.
pub(super) fn parse_duration(field: &str, s: &str) -> Result<Duration, String> {
    let bad = || format!("{field}: {s:?} is not a duration such as 250ms, 1.5s, 2m or 1h");
    let split = s.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?;
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let secs = n * scale;
    let max = envoy_rules::MAX_DURATION_SECS;
    // `as`: exact, the bound is below 2^53.
    if !(0.0..=max as f64).contains(&secs) {
        return Err(format!(
            "{field}: {s:?} is out of range: at most {max} seconds"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::{Priority, priority};

    #[test]
    fn priority_takes_envoys_names_in_any_case_and_refuses_others_naming_the_field() {
        assert_eq!(priority(None), Ok(Priority::Default));
        assert_eq!(priority(Some("HIGH")), Ok(Priority::High));
        assert_eq!(priority(Some("high")), Ok(Priority::High));
        assert_eq!(priority(Some("Default")), Ok(Priority::Default));
        assert_eq!(
            priority(Some("urgent")),
            Err("priority: \"urgent\" is not a routing priority; use default or high".into())
        );
    }
}
