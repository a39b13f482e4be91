//! Upstream connection policy: how a Mapping's cluster connects (`circuit_breakers`,
//! `keepalive`, `cluster_idle_timeout_ms`, `cluster_max_connection_lifetime_ms`,
//! `load_balancer`) and how its route waits and retries (`timeout_ms`, `retry_policy`), each with
//! the gateway Module's default, as Emissary applies them:
//!
//! - `circuit_breakers`: the Mapping's list, else the Module's (`irbasemapping.py`: `if
//!   circuit_breakers is None: = ambassador_module.circuit_breakers`); each entry is one Envoy
//!   `Thresholds` for its priority (`default` when unset), a limit left out keeps Envoy's default
//!   (1024 connections, pending and requests, 3 retries) (`v3cluster.py` `get_circuit_breakers`).
//!   An empty list asks for Envoy's defaults and is not replaced by the Module's.
//! - `keepalive`: the Mapping's, else the Module's (`irhttpmappinggroup.py`, `v3cluster.py`):
//!   `upstream_connection_options.tcp_keepalive`.
//! - `cluster_idle_timeout_ms` / `cluster_max_connection_lifetime_ms`: the Mapping's unless unset
//!   or 0, else the Module's unless unset or 0 (`v3cluster.py` tests them for truth), giving the
//!   cluster's HTTP `idle_timeout` / `max_connection_duration`. So 0 means "not set" (Envoy's
//!   default: an hour idle, no lifetime limit), never "disabled", as in Emissary.
//! - `load_balancer`: the Mapping's, else the Module's (`irhttpmappinggroup.py`): the cluster's
//!   `lb_policy`, and for `ring_hash`/`maglev` a route `hash_policy` on exactly one of `header`,
//!   `cookie {name, path, ttl}` or `source_ip` (`v3route.py` `generate_hash_policy`); any other
//!   shape refuses the Mapping (`irhttpmapping.py` `validate_load_balancer`).
//! - `timeout_ms`: the Mapping's, else the Module's `cluster_request_timeout_ms`, else 3000 ms
//!   (`v3route.py`).
//! - `retry_policy`: the Mapping's, else the Module's (`v3route.py`).
//!
//! Deliberate differences: Emissary's Python reads keepalive's `time`, a key its CRD does not
//! have (the CRD's is `idle_time`), so a CRD's `idle_time` is silently dropped there; here it is
//! the keepalive time, as written. A keepalive value Linux refuses (above 32767 seconds, above
//! 127 probes), which would make every upstream connection fail, refuses the Mapping; two
//! `circuit_breakers` entries for one priority (Envoy silently uses the first) refuse it too.
//! Emissary invalidates the whole Module for one bad default; here the Module is rejected naming
//! the field, only that default is left out, and everything else keeps serving. A balancing
//! policy applies to every kind of cluster (EDS, DNS, static): Envoy balances the addresses of
//! a DNS cluster too, so Emissary's "endpoint routing required" has nothing to guard here.

use std::time::Duration;

use legate_crds::{
    Module,
    fields::{CircuitBreaker, Priority},
    mapping::{KeepAlive, LoadBalancer, LoadBalancerPolicy, MappingSpec, RetryOn, RetryPolicy},
};

use super::{DEFAULT_TIMEOUT, Refusal, Rejection, envoy_rules, mapping::Retry};

/// How a cluster connects to its upstream. The default is Envoy's behaviour; anything else is
/// part of the cluster's name ([`Self::key`]), so Mappings with different policies never share
/// a cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClusterPolicy {
    /// One per priority; none keeps Envoy's defaults.
    pub circuit_breakers: Vec<Threshold>,
    pub keepalive: Option<Keepalive>,
    /// Close an upstream connection idle this long (`common_http_protocol_options.idle_timeout`).
    pub idle_timeout: Option<Duration>,
    /// Drain an upstream connection this long after it opened (`max_connection_duration`).
    pub max_connection_lifetime: Option<Duration>,
    pub balancing: Balancing,
}

/// Envoy's `Cluster.lb_policy`, the ones Emissary offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Balancing {
    #[default]
    RoundRobin,
    LeastRequest,
    RingHash,
    Maglev,
}

/// One priority's circuit-breaker limits; `None` keeps Envoy's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Threshold {
    pub high: bool,
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
    pub max_retries: Option<u32>,
}

/// TCP keepalive on upstream connections, in seconds and probes; `None` keeps the system's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Keepalive {
    pub time: Option<u32>,
    pub interval: Option<u32>,
    pub probes: Option<u32>,
}

/// What a route hashes requests by, for `ring_hash` and `maglev`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HashPolicy {
    Header(String),
    /// With a `ttl`, Envoy sets the cookie when the request lacks it; without, a request
    /// without the cookie is not hashed (Envoy's rule; Emissary passes `ttl` through).
    Cookie {
        name: String,
        path: Option<String>,
        ttl: Option<Duration>,
    },
    SourceIp,
}

/// A validated `load_balancer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balancer {
    pub balancing: Balancing,
    pub hash: Option<HashPolicy>,
}

/// What a forwarding Mapping's upstream policy compiles to.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub cluster: ClusterPolicy,
    pub hash: Option<HashPolicy>,
    pub timeout: Duration,
    pub retry: Option<Retry>,
}

/// The gateway Module's defaults for every Mapping. Every compiled Mapping depends on them: the
/// builder compiles every Mapping again when they change (rare).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Defaults {
    pub request_timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub circuit_breakers: Option<Vec<Threshold>>,
    pub keepalive: Option<Keepalive>,
    pub idle_timeout: Option<Duration>,
    pub max_connection_lifetime: Option<Duration>,
    pub balancer: Option<Balancer>,
    /// The Module's rejection when a default is invalid (that default is left out).
    pub rejection: Option<Rejection>,
}

impl Defaults {
    /// The defaults the gateway Module (`module`, see [`super::module::gateway_module`]) sets.
    pub fn new(module: Option<&Module>) -> Self {
        let Some(module) = module else {
            return Self::default();
        };
        let c = &module.spec.config;
        let mut problems = Vec::new();
        let defaults = Self {
            request_timeout: c.cluster_request_timeout_ms.map(millis),
            retry: keep(
                &mut problems,
                c.retry_policy
                    .as_ref()
                    .map(|r| retry("spec.config.retry_policy", r))
                    .transpose(),
            ),
            circuit_breakers: keep(
                &mut problems,
                c.circuit_breakers
                    .as_deref()
                    .map(|b| thresholds("spec.config.circuit_breakers", b))
                    .transpose(),
            ),
            keepalive: keep(
                &mut problems,
                c.keepalive
                    .as_ref()
                    .map(|k| keepalive("spec.config.keepalive", k))
                    .transpose(),
            ),
            idle_timeout: nonzero(c.cluster_idle_timeout_ms),
            max_connection_lifetime: nonzero(c.cluster_max_connection_lifetime_ms),
            balancer: keep(
                &mut problems,
                c.load_balancer
                    .as_ref()
                    .map(|b| balancer("spec.config.load_balancer", b))
                    .transpose(),
            ),
            rejection: None,
        };
        Self {
            rejection: (!problems.is_empty()).then(|| {
                super::module::invalid(
                    module,
                    format!(
                        "{}; every Mapping without its own setting keeps the gateway's default",
                        problems.join("; ")
                    ),
                )
            }),
            ..defaults
        }
    }
}

/// A default's value, or `None` with its problem noted.
fn keep<T>(problems: &mut Vec<String>, r: Result<Option<T>, String>) -> Option<T> {
    r.unwrap_or_else(|e| {
        problems.push(e);
        None
    })
}

/// A forwarding Mapping's policy, its own settings first, then the Module's defaults.
pub fn policy(spec: &MappingSpec, defaults: &Defaults) -> Result<Policy, Refusal> {
    let circuit_breakers = match spec.circuit_breakers.as_deref() {
        Some(b) => thresholds("circuit_breakers", b)?,
        None => defaults.circuit_breakers.clone().unwrap_or_default(),
    };
    let keepalive = match &spec.keepalive {
        Some(k) => Some(keepalive("keepalive", k)?),
        None => defaults.keepalive,
    };
    let balancer = match &spec.load_balancer {
        Some(b) => Some(balancer("load_balancer", b)?),
        None => defaults.balancer.clone(),
    };
    let (balancing, hash) =
        balancer.map_or((Balancing::RoundRobin, None), |b| (b.balancing, b.hash));
    let retry = match &spec.retry_policy {
        Some(r) => Some(self::retry("retry_policy", r)?),
        None => defaults.retry.clone(),
    };
    Ok(Policy {
        cluster: ClusterPolicy {
            circuit_breakers,
            keepalive,
            idle_timeout: nonzero(spec.cluster_idle_timeout_ms).or(defaults.idle_timeout),
            max_connection_lifetime: nonzero(spec.cluster_max_connection_lifetime_ms)
                .or(defaults.max_connection_lifetime),
            balancing,
        },
        hash,
        timeout: spec
            .timeout_ms
            .map(millis)
            .or(defaults.request_timeout)
            .unwrap_or(DEFAULT_TIMEOUT),
        retry,
    })
}

impl ClusterPolicy {
    /// The text the cluster's name hashes, `None` for the default policy (whose clusters keep
    /// the names they always had). Every field is in it.
    pub fn key(&self) -> Option<String> {
        if *self == Self::default() {
            return None;
        }
        let n = |v: Option<u32>| v.map_or("-".to_owned(), |v| v.to_string());
        let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| d.as_millis().to_string());
        let mut key = String::from("cb");
        for t in &self.circuit_breakers {
            key.push_str(&format!(
                ":{}/{}/{}/{}/{}",
                if t.high { "h" } else { "d" },
                n(t.max_connections),
                n(t.max_pending_requests),
                n(t.max_requests),
                n(t.max_retries)
            ));
        }
        if let Some(k) = &self.keepalive {
            key.push_str(&format!(
                "\0ka:{}/{}/{}",
                n(k.time),
                n(k.interval),
                n(k.probes)
            ));
        }
        key.push_str(&format!(
            "\0idle:{}\0life:{}\0lb:{:?}",
            ms(self.idle_timeout),
            ms(self.max_connection_lifetime),
            self.balancing
        ));
        Some(key)
    }
}

/// `circuit_breakers`: one threshold per priority.
pub(super) fn thresholds(
    field: &str,
    breakers: &[CircuitBreaker],
) -> Result<Vec<Threshold>, String> {
    let mut out: Vec<Threshold> = Vec::with_capacity(breakers.len());
    for (i, b) in breakers.iter().enumerate() {
        let high = b.priority == Some(Priority::High);
        if out.iter().any(|t| t.high == high) {
            return Err(format!(
                "{field}[{i}].priority: a second entry for priority {}; Envoy would use the \
                 first only, so give each priority one entry",
                if high { "high" } else { "default" }
            ));
        }
        // `Count` is bounded to 0..=i32::MAX by its schema and its loader.
        let limit = |v: Option<legate_crds::fields::Count>| {
            v.map(|v| u32::try_from(v.get()).unwrap_or(u32::MAX))
        };
        out.push(Threshold {
            high,
            max_connections: limit(b.max_connections),
            max_pending_requests: limit(b.max_pending_requests),
            max_requests: limit(b.max_requests),
            max_retries: limit(b.max_retries),
        });
    }
    Ok(out)
}

/// Linux's bounds on `TCP_KEEPIDLE`/`TCP_KEEPINTVL` (seconds) and `TCP_KEEPCNT`: beyond them
/// Envoy fails to set the option and every upstream connection fails. 0 is Envoy's "off".
const MAX_KEEPALIVE_SECS: i64 = 32_767;
const MAX_KEEPALIVE_PROBES: i64 = 127;

fn keepalive(field: &str, k: &KeepAlive) -> Result<Keepalive, String> {
    let bounded = |name: &str, v: Option<legate_crds::fields::Count>, max: i64| match v {
        None => Ok(None),
        Some(v) if v.get() <= max => Ok(u32::try_from(v.get()).ok()),
        Some(v) => Err(format!(
            "{field}.{name}: {v} is above {max}, the most the system takes; upstream \
             connections would fail"
        )),
    };
    Ok(Keepalive {
        time: bounded("idle_time", k.idle_time, MAX_KEEPALIVE_SECS)?,
        interval: bounded("interval", k.interval, MAX_KEEPALIVE_SECS)?,
        probes: bounded("probes", k.probes, MAX_KEEPALIVE_PROBES)?,
    })
}

/// `load_balancer`, in the shapes Emissary's `validate_load_balancer` takes: `round_robin` and
/// `least_request` alone, `ring_hash` and `maglev` with exactly one hash source.
fn balancer(field: &str, b: &LoadBalancer) -> Result<Balancer, String> {
    let sources = [
        b.header.is_some().then_some("header"),
        b.cookie.is_some().then_some("cookie"),
        b.source_ip.is_some().then_some("source_ip"),
    ];
    let set: Vec<&str> = sources.into_iter().flatten().collect();
    let (balancing, hashed) = match b.policy {
        LoadBalancerPolicy::RoundRobin => (Balancing::RoundRobin, false),
        LoadBalancerPolicy::LeastRequest => (Balancing::LeastRequest, false),
        LoadBalancerPolicy::RingHash => (Balancing::RingHash, true),
        LoadBalancerPolicy::Maglev => (Balancing::Maglev, true),
    };
    let policy = match b.policy {
        LoadBalancerPolicy::RoundRobin => "round_robin",
        LoadBalancerPolicy::LeastRequest => "least_request",
        LoadBalancerPolicy::RingHash => "ring_hash",
        LoadBalancerPolicy::Maglev => "maglev",
    };
    if !hashed {
        if let Some(source) = set.first() {
            return Err(format!(
                "{field}.{source}: policy {policy} hashes nothing; a hash source goes with \
                 ring_hash or maglev"
            ));
        }
        return Ok(Balancer {
            balancing,
            hash: None,
        });
    }
    let hash = match set.as_slice() {
        ["header"] => {
            let header = b.header.as_deref().unwrap_or_default();
            envoy_rules::matcher_name(&format!("{field}.header"), header)?;
            HashPolicy::Header(header.to_ascii_lowercase())
        }
        ["cookie"] => {
            let Some(c) = &b.cookie else {
                return Err(format!("{field}.cookie: missing"));
            };
            let cookie_field = format!("{field}.cookie");
            cookie_name(&format!("{cookie_field}.name"), &c.name)?;
            if let Some(path) = &c.path {
                envoy_rules::header_value(&format!("{cookie_field}.path"), path)?;
            }
            HashPolicy::Cookie {
                name: c.name.clone(),
                path: c.path.clone(),
                ttl: c
                    .ttl
                    .as_deref()
                    .map(|t| super::mapping::parse_duration(&format!("{cookie_field}.ttl"), t))
                    .transpose()?,
            }
        }
        ["source_ip"] if b.source_ip == Some(true) => HashPolicy::SourceIp,
        ["source_ip"] => {
            return Err(format!(
                "{field}.source_ip: false hashes nothing; policy {policy} needs true, a header \
                 or a cookie"
            ));
        }
        [] => {
            return Err(format!(
                "{field}: policy {policy} needs one of header, cookie or source_ip to hash on"
            ));
        }
        several => {
            return Err(format!(
                "{field}: policy {policy} takes exactly one of header, cookie or source_ip, \
                 not {}",
                several.join(" and ")
            ));
        }
    };
    Ok(Balancer {
        balancing,
        hash: Some(hash),
    })
}

/// A cookie name: an HTTP token (RFC 6265), which Envoy writes into `Set-Cookie`.
fn cookie_name(field: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{field}: is empty; the cookie needs a name"));
    }
    let token = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(format!("{field}: {name:?} is not a valid cookie name"));
    }
    Ok(())
}

/// `retry_policy` (the Mapping's or the Module's): `retry_on` defaults to `5xx`, `num_retries`
/// to Envoy's 1.
pub fn retry(field: &str, r: &RetryPolicy) -> Result<Retry, String> {
    Ok(Retry {
        retry_on: retry_on(r.retry_on.unwrap_or(RetryOn::FiveXx)).into(),
        // `Count` is bounded to 0..=i32::MAX by its schema and its loader.
        num_retries: r
            .num_retries
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
        per_try_timeout: r
            .per_try_timeout
            .as_deref()
            .map(|t| super::mapping::parse_duration(&format!("{field}.per_try_timeout"), t))
            .transpose()?,
    })
}

fn retry_on(r: RetryOn) -> &'static str {
    match r {
        RetryOn::FiveXx => "5xx",
        RetryOn::GatewayError => "gateway-error",
        RetryOn::ConnectFailure => "connect-failure",
        RetryOn::Retriable4xx => "retriable-4xx",
        RetryOn::RefusedStream => "refused-stream",
        RetryOn::RetriableStatusCodes => "retriable-status-codes",
    }
}

fn millis(ms: legate_crds::fields::Millis) -> Duration {
    // `Millis` is bounded to 0..=u32::MAX by its schema and its loader.
    Duration::from_millis(u64::try_from(ms.get()).unwrap_or(0))
}

/// Emissary tests these for truth: 0 is "not set".
fn nonzero(ms: Option<legate_crds::fields::Millis>) -> Option<Duration> {
    ms.map(millis).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use legate_crds::{Resource, loader::load_str};

    fn mapping_spec(fields: &str) -> MappingSpec {
        let yaml = format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: m, namespace: default}}\nspec:\n  prefix: /m/\n  service: m\n{fields}"
        );
        match load_str("m.yaml", &yaml).unwrap().resources.remove(0) {
            Resource::Mapping(m) => m.spec,
            other => panic!("{other:?}"),
        }
    }

    fn module_defaults(config: &str) -> Defaults {
        let yaml = format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata: {{name: ambassador, namespace: default}}\nspec:\n  config:\n{config}"
        );
        match load_str("m.yaml", &yaml).unwrap().resources.remove(0) {
            Resource::Module(m) => Defaults::new(Some(&m)),
            other => panic!("{other:?}"),
        }
    }

    fn policy_of(fields: &str, defaults: &Defaults) -> Result<Policy, String> {
        policy(&mapping_spec(fields), defaults).map_err(|r| r.message)
    }

    #[test]
    fn without_settings_the_policy_is_envoys_default_and_adds_nothing_to_the_name() {
        let p = policy_of("", &Defaults::default()).unwrap();
        assert_eq!(p.cluster, ClusterPolicy::default());
        assert_eq!(p.cluster.key(), None);
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
        assert_eq!((p.hash, p.retry), (None, None));
    }

    #[test]
    fn circuit_breakers_are_one_threshold_per_priority_default_when_unset() {
        let p = policy_of(
            "  circuit_breakers:\n  - {max_connections: 2, max_pending_requests: 1}\n  - {priority: high, max_requests: 5, max_retries: 0}",
            &Defaults::default(),
        )
        .unwrap();
        assert_eq!(
            p.cluster.circuit_breakers,
            [
                Threshold {
                    high: false,
                    max_connections: Some(2),
                    max_pending_requests: Some(1),
                    max_requests: None,
                    max_retries: None,
                },
                Threshold {
                    high: true,
                    max_requests: Some(5),
                    max_retries: Some(0),
                    ..Threshold::default()
                },
            ]
        );
        let twice = policy_of(
            "  circuit_breakers: [{max_connections: 1}, {priority: default, max_requests: 1}]",
            &Defaults::default(),
        );
        assert_eq!(
            twice.unwrap_err(),
            "circuit_breakers[1].priority: a second entry for priority default; Envoy would use \
             the first only, so give each priority one entry"
        );
    }

    /// Emissary's precedence: the Mapping's setting, else the Module's (`irbasemapping.py`,
    /// `irhttpmappinggroup.py`, `v3cluster.py`, `v3route.py`).
    #[test]
    fn the_mappings_own_settings_win_over_the_modules_defaults() {
        let defaults = module_defaults(
            "    cluster_request_timeout_ms: 9000\n    cluster_idle_timeout_ms: 1000\n    cluster_max_connection_lifetime_ms: 2000\n    keepalive: {probes: 3}\n    circuit_breakers: [{max_requests: 7}]\n    load_balancer: {policy: least_request}\n    retry_policy: {retry_on: gateway-error, num_retries: 4}",
        );
        assert_eq!(defaults.rejection, None);
        let inherited = policy_of("", &defaults).unwrap();
        assert_eq!(inherited.timeout, Duration::from_secs(9));
        assert_eq!(inherited.cluster.idle_timeout, Some(Duration::from_secs(1)));
        assert_eq!(
            inherited.cluster.max_connection_lifetime,
            Some(Duration::from_secs(2))
        );
        assert_eq!(inherited.cluster.keepalive.and_then(|k| k.probes), Some(3));
        assert_eq!(inherited.cluster.circuit_breakers[0].max_requests, Some(7));
        assert_eq!(inherited.cluster.balancing, Balancing::LeastRequest);
        assert_eq!(
            inherited.retry.map(|r| (r.retry_on, r.num_retries)),
            Some(("gateway-error".to_owned(), 4))
        );

        let own = policy_of(
            "  timeout_ms: 100\n  cluster_idle_timeout_ms: 10\n  cluster_max_connection_lifetime_ms: 20\n  keepalive: {idle_time: 60}\n  circuit_breakers: []\n  load_balancer: {policy: round_robin}\n  retry_policy: {retry_on: connect-failure}",
            &defaults,
        )
        .unwrap();
        assert_eq!(own.timeout, Duration::from_millis(100));
        assert_eq!(own.cluster.idle_timeout, Some(Duration::from_millis(10)));
        assert_eq!(
            own.cluster.max_connection_lifetime,
            Some(Duration::from_millis(20))
        );
        assert_eq!(
            own.cluster.keepalive,
            Some(Keepalive {
                time: Some(60),
                ..Keepalive::default()
            })
        );
        // `[]` is a setting (Envoy's defaults), not an absence.
        assert!(own.cluster.circuit_breakers.is_empty());
        assert_eq!(own.cluster.balancing, Balancing::RoundRobin);
        assert_eq!(
            own.retry.map(|r| r.retry_on),
            Some("connect-failure".into())
        );
    }

    /// `v3cluster.py` tests the Mapping's value for truth: 0 falls back to the Module's.
    #[test]
    fn a_zero_cluster_timeout_is_unset_and_falls_back_to_the_module() {
        let defaults = module_defaults("    cluster_idle_timeout_ms: 1000");
        let p = policy_of("  cluster_idle_timeout_ms: 0", &defaults).unwrap();
        assert_eq!(p.cluster.idle_timeout, Some(Duration::from_secs(1)));
        let p = policy_of("  cluster_idle_timeout_ms: 0", &Defaults::default()).unwrap();
        assert_eq!(p.cluster.idle_timeout, None);
    }

    #[test]
    fn load_balancers_take_emissarys_shapes_only() {
        // Read without the schema's CEL rule, which refuses most bad shapes first where the API
        // server runs it (Kubernetes 1.25 and later) and in the file loader.
        let lb = |yaml: &str| {
            let lb: LoadBalancer = serde_saphyr::from_str(yaml).unwrap();
            balancer("load_balancer", &lb).map(|b| (b.balancing, b.hash))
        };
        assert_eq!(
            lb("{policy: ring_hash, header: X-User}"),
            Ok((
                Balancing::RingHash,
                Some(HashPolicy::Header("x-user".into()))
            ))
        );
        assert_eq!(
            lb("{policy: maglev, source_ip: true}"),
            Ok((Balancing::Maglev, Some(HashPolicy::SourceIp)))
        );
        assert_eq!(
            lb("{policy: ring_hash, cookie: {name: sticky, path: /, ttl: 1h}}"),
            Ok((
                Balancing::RingHash,
                Some(HashPolicy::Cookie {
                    name: "sticky".into(),
                    path: Some("/".into()),
                    ttl: Some(Duration::from_secs(3600)),
                })
            ))
        );
        assert_eq!(
            lb("{policy: ring_hash}"),
            Err("load_balancer: policy ring_hash needs one of header, cookie or source_ip to hash on".into())
        );
        assert_eq!(
            lb("{policy: maglev, header: x, source_ip: true}"),
            Err("load_balancer: policy maglev takes exactly one of header, cookie or source_ip, not header and source_ip".into())
        );
        assert_eq!(
            lb("{policy: round_robin, header: x}"),
            Err("load_balancer.header: policy round_robin hashes nothing; a hash source goes with ring_hash or maglev".into())
        );
        assert_eq!(
            lb("{policy: ring_hash, cookie: {name: \"\"}}"),
            Err("load_balancer.cookie.name: is empty; the cookie needs a name".into())
        );
        assert_eq!(
            lb("{policy: ring_hash, cookie: {name: \"a b\"}}"),
            Err("load_balancer.cookie.name: \"a b\" is not a valid cookie name".into())
        );
        assert!(lb("{policy: ring_hash, source_ip: false}").is_err());
        assert!(lb("{policy: ring_hash, header: \"\"}").is_err());
    }

    #[test]
    fn keepalive_values_the_system_refuses_refuse_the_mapping() {
        assert_eq!(
            policy_of("  keepalive: {probes: 128}", &Defaults::default()).unwrap_err(),
            "keepalive.probes: 128 is above 127, the most the system takes; upstream \
             connections would fail"
        );
        assert!(policy_of("  keepalive: {interval: 32768}", &Defaults::default()).is_err());
        let p = policy_of(
            "  keepalive: {idle_time: 32767, interval: 0, probes: 127}",
            &Defaults::default(),
        )
        .unwrap();
        assert_eq!(
            p.cluster.keepalive,
            Some(Keepalive {
                time: Some(32767),
                interval: Some(0),
                probes: Some(127),
            })
        );
    }

    #[test]
    fn a_bad_module_default_rejects_the_module_and_leaves_the_others() {
        let mut module = Module::new("ambassador", legate_crds::module::ModuleSpec::default());
        module.metadata.namespace = Some("default".into());
        let config = &mut module.spec.config;
        config.load_balancer = serde_saphyr::from_str("{policy: maglev}").unwrap();
        config.keepalive = serde_saphyr::from_str("{probes: 500}").unwrap();
        config.circuit_breakers = serde_saphyr::from_str("[{max_requests: 3}]").unwrap();
        let defaults = Defaults::new(Some(&module));
        let rejection = defaults.rejection.clone().unwrap();
        assert_eq!(rejection.object.to_string(), "Module default/ambassador");
        assert!(
            rejection
                .message
                .starts_with("spec.config.keepalive.probes: 500 is above 127"),
            "{}",
            rejection.message
        );
        assert!(
            rejection
                .message
                .contains("; spec.config.load_balancer: policy maglev needs one of"),
            "{}",
            rejection.message
        );
        assert_eq!((defaults.keepalive, defaults.balancer), (None, None));
        assert_eq!(defaults.circuit_breakers.map(|c| c.len()), Some(1));
    }

    #[test]
    fn every_policy_field_is_in_the_key() {
        let base = ClusterPolicy {
            circuit_breakers: vec![Threshold::default()],
            ..ClusterPolicy::default()
        };
        let variants = [
            base.clone(),
            ClusterPolicy {
                circuit_breakers: vec![Threshold {
                    max_retries: Some(1),
                    ..Threshold::default()
                }],
                ..base.clone()
            },
            ClusterPolicy {
                keepalive: Some(Keepalive::default()),
                ..base.clone()
            },
            ClusterPolicy {
                idle_timeout: Some(Duration::from_millis(1)),
                ..base.clone()
            },
            ClusterPolicy {
                max_connection_lifetime: Some(Duration::from_millis(1)),
                ..base.clone()
            },
            ClusterPolicy {
                balancing: Balancing::Maglev,
                ..base.clone()
            },
        ];
        let keys: std::collections::BTreeSet<Option<String>> =
            variants.iter().map(ClusterPolicy::key).collect();
        assert_eq!(keys.len(), variants.len());
    }
}
