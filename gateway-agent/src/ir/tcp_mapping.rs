//! TCPMapping (`../shared/EMISSARY.md` §1.5): the gateway listens on a TCPMapping's `port`
//! (on `address`, all addresses by default) and forwards each connection with Envoy's
//! `tcp_proxy` to its `service`, resolved as a Mapping's is (EDS for a Kubernetes Service, DNS
//! or static otherwise). Emissary's `ir/irtcpmapping.py`, `ir/irtcpmappinggroup.py` and
//! `envoy/v3/v3listener.py` (`compute_tcpchains`, `finalize_tcp`, `tlscontext_for_tcpmapping`).
//!
//! - TCPMappings with the same address, port and `host` form a group whose members share the
//!   connections by `weight` (Envoy `weighted_clusters`); members must agree on what the group
//!   applies as a whole (`tls`, `idle_timeout_ms`, `circuit_breakers`, `enable_ipv4/6`), as in
//!   Emissary, and (as Mapping groups here) come from one namespace.
//! - Without `host` the group takes every connection on the port that no SNI group takes. With
//!   `host` it takes the TLS connections whose SNI is that name: TLS is terminated with the
//!   certificate of a Host of the group's namespace whose hostname matches (Hosts first, as in
//!   Emissary) or of a TLSContext there that lists the name; with neither it is passed through
//!   untouched (Emissary disables such a TCPMapping: "No matching TLSContext found").
//! - A port serves either HTTP (a Listener) or TCPMappings, never both: Legate does not mix
//!   `tcp_proxy` chains into an HTTP listener. Of a Listener and TCPMappings on one port the
//!   older keeps it (by `creationTimestamp`; the Listener without one); the other is refused.
//!   Likewise one bind address per port: the oldest group's. A TCP or TLS Listener is optional
//!   (Emissary synthesizes one): its `statsPrefix` names its port's statistics.
//!
//! Departures from Emissary: `idle_timeout_ms` is applied (Emissary accepts and ignores it);
//! weights are each member's share (Emissary gives Envoy cumulative weights); members with no
//! `address` and `address: 0.0.0.0` are one group.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc, time::Duration};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use legate_crds::{
    ObjectRef, Resource, TlsSecret, fields::BoolOrString, tcp_mapping::TcpMapping,
    tls_context::TlsContextSpec,
};

use super::{
    Certificate, Cluster, DEFAULT_CONNECT_TIMEOUT, DownstreamTls, Reason, Refusal, Rejection,
    Settings,
    endpoints::ServiceIndex,
    envoy_rules,
    host::{Host, ListenerSpec, hostglob_matches},
    resolver::{Resolve, Resolvers},
    service,
    tls::{self, Terminations},
    upstream_policy::{self, ClusterPolicy, Threshold},
};

/// A listener that forwards connections: one bind address and port, its chains.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpListener {
    /// `tcp-{address}-{port}`, as Emissary binds them.
    pub name: String,
    pub address: String,
    pub port: u16,
    /// Emissary's default: `ingress_tls_{port}` when any chain matches SNI, else `ingress_tcp_{port}`.
    pub stats_prefix: String,
    /// The SNI chains by name, then the catch-all one if any.
    pub chains: Vec<TcpChain>,
    /// The gateway Module's access log, in a format for connections ([`super::access_log`]).
    pub access_log: Arc<super::access_log::AccessLog>,
    /// The LogServices with driver `tcp` ([`super::log_service`]).
    pub log_services: Arc<[Arc<super::log_service::GrpcLog>]>,
}

/// One group of TCPMappings: the connections it matches and where they go.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpChain {
    pub name: String,
    /// The SNI name matched (TLS connections only); empty: every connection.
    pub server_names: Vec<String>,
    /// Terminates TLS with this; `None` with `server_names`: the TLS passes through.
    pub tls: Option<DownstreamTls>,
    /// Each member's cluster and its share of the connections (all above 0).
    pub clusters: Vec<(String, u32)>,
    /// Closes a connection idle this long; `None`: Envoy's default (1 hour), zero: never.
    pub idle_timeout: Option<Duration>,
}

impl TcpListener {
    /// Whether any chain reads SNI (the listener then needs the TLS inspector).
    pub fn reads_sni(&self) -> bool {
        self.chains.iter().any(|c| !c.server_names.is_empty())
    }
}

/// What the TCPMappings add to the IR.
#[derive(Debug, Default)]
pub(super) struct Tcp {
    pub listeners: Vec<TcpListener>,
    pub clusters: Vec<Arc<Cluster>>,
    pub certificates: BTreeMap<String, Certificate>,
    /// HTTP Listeners that lost their port to older TCPMappings.
    pub refused_listeners: Vec<ObjectRef>,
    /// Each served TCPMapping and its EDS cluster, for [`Reason::NoReadyEndpoints`] notes.
    pub eds_members: Vec<(ObjectRef, String)>,
}

/// What TCPMappings are compiled against.
pub(super) struct Inputs<'a> {
    pub resources: &'a [&'a Resource],
    pub settings: &'a Settings,
    pub resolvers: &'a Resolvers,
    pub services: &'a ServiceIndex<'a>,
    pub listeners: &'a [ListenerSpec],
    pub hosts: &'a [Host],
    pub terminations: &'a Terminations,
    /// The gateway Module's address families ([`super::cluster_tuning`]).
    pub tuning: &'a super::cluster_tuning::Defaults,
}

/// One valid TCPMapping.
#[derive(Debug)]
struct Member {
    source: ObjectRef,
    namespace: String,
    created: Option<Time>,
    address: String,
    port: u16,
    host: Option<String>,
    weight: Option<u32>,
    shared: Shared,
    cluster: Cluster,
}

/// What a group applies as a whole: its members must agree on it.
#[derive(Clone, Debug, PartialEq)]
struct Shared {
    tls: Option<BoolOrString>,
    idle_timeout: Option<Duration>,
    circuit_breakers: Vec<Threshold>,
    enable_ipv4: Option<bool>,
    enable_ipv6: Option<bool>,
}

/// Compiles every TCPMapping of `inputs`: refusals go to `rejections`, notes (served without
/// endpoints) to `unreachable`.
pub(super) fn build(
    inputs: &Inputs<'_>,
    rejections: &mut Vec<Rejection>,
    unreachable: &mut Vec<Rejection>,
) -> Tcp {
    let mut mappings: Vec<&TcpMapping> = inputs
        .resources
        .iter()
        .filter_map(|r| match r {
            Resource::TCPMapping(m) => Some(m),
            _ => None,
        })
        .collect();
    // The established first: older, then by namespace and name (a directory has no timestamps).
    mappings.sort_by_cached_key(|m| (m.metadata.creation_timestamp.clone(), object_ref(m)));
    let mut members = Vec::new();
    for m in mappings {
        match compile(m, inputs) {
            Ok((member, note)) => {
                if let Some(note) = note {
                    unreachable.push(Rejection::new(
                        member.source.clone(),
                        note.reason,
                        note.message,
                    ));
                }
                members.push(member);
            }
            Err(refusal) => rejections.push(Rejection::new(
                object_ref(m),
                refusal.reason,
                refusal.message,
            )),
        }
    }

    // By port, in order of age: a port's first member decides its address.
    let mut ports: BTreeMap<u16, Vec<Member>> = BTreeMap::new();
    for m in members {
        ports.entry(m.port).or_default().push(m);
    }
    let declared = declared_listeners(inputs.resources, rejections);
    let mut out = Tcp::default();
    for (port, members) in ports {
        let Some(first) = members.first() else {
            continue;
        };
        if let Some(l) = inputs.listeners.iter().find(|l| l.port == port) {
            let listener_created = listener_created(inputs.resources, &l.source);
            let tcp_older =
                matches!((&first.created, &listener_created), (Some(t), Some(l)) if t.0 < l.0);
            if tcp_older {
                rejections.push(Rejection::new(
                    l.source.clone(),
                    Reason::Conflict,
                    format!(
                        "port {port} is already served by {} (older); a port serves either HTTP \
                         or TCPMappings",
                        first.source
                    ),
                ));
                out.refused_listeners.push(l.source.clone());
            } else {
                for m in members {
                    rejections.push(Rejection::new(
                        m.source,
                        Reason::Conflict,
                        format!(
                            "port {port} is already served by the HTTP {}; a port serves either \
                             HTTP or TCPMappings: use another port",
                            l.source
                        ),
                    ));
                }
                continue;
            }
        }
        if let Some(mut listener) = listener(port, members, inputs, &mut out, rejections) {
            if let Some(d) = declared.get(&port)
                && let Some(prefix) = &d.stats_prefix
            {
                listener.stats_prefix = prefix.clone();
            }
            out.listeners.push(listener);
        }
    }
    for (port, d) in declared {
        let http = inputs
            .listeners
            .iter()
            .find(|l| l.port == port && !out.refused_listeners.contains(&l.source));
        if let Some(http) = http {
            rejections.push(Rejection::new(
                d.source,
                Reason::Conflict,
                format!("port {port} is already used by {}", http.source),
            ));
        } else if !out.listeners.iter().any(|l| l.port == port) {
            // Emissary: "No matching Hosts/TCPMappings found, disabling!"
            unreachable.push(Rejection::new(
                d.source,
                Reason::NoHost,
                format!("no TCPMapping on port {port}: nothing is served there"),
            ));
        }
    }
    out.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A Listener whose protocol is TCP or TLS (no HTTP): it serves the TCPMappings of its port,
/// which make their listener without it anyway (as Emissary synthesizes one); its
/// `statsPrefix` names the port's statistics.
pub(super) fn is_tcp_listener(spec: &legate_crds::listener::ListenerSpec) -> bool {
    use legate_crds::listener::{ListenerProtocol, ProtocolStackElement as E};
    match (&spec.protocol_stack, spec.protocol) {
        (Some(stack), _) => {
            stack.last() == Some(&E::Tcp) && stack.iter().all(|e| matches!(e, E::Tls | E::Tcp))
        }
        (None, Some(p)) => matches!(p, ListenerProtocol::Tcp | ListenerProtocol::Tls),
        (None, None) => false,
    }
}

/// A TCP or TLS Listener.
struct Declared {
    source: ObjectRef,
    stats_prefix: Option<String>,
}

/// The TCP and TLS Listeners by port, the first (by name, as HTTP Listeners) of each; the others
/// and an invalid `statsPrefix` are refused.
fn declared_listeners(
    resources: &[&Resource],
    rejections: &mut Vec<Rejection>,
) -> BTreeMap<u16, Declared> {
    let mut sorted: Vec<(ObjectRef, &legate_crds::Listener)> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Listener(l) if is_tcp_listener(&l.spec) => Some((r.object_ref(), l)),
            _ => None,
        })
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: BTreeMap<u16, Declared> = BTreeMap::new();
    for (source, l) in sorted {
        // `Port` is bounded to 1..=65535 by its schema and its loader.
        let port = u16::try_from(l.spec.port.get()).unwrap_or_default();
        if let Some(first) = out.get(&port) {
            rejections.push(Rejection::new(
                source,
                Reason::Conflict,
                format!("port {port} is already used by {}", first.source),
            ));
            continue;
        }
        let stats_prefix = l.spec.stats_prefix.clone().filter(|p| !p.is_empty());
        if let Some(p) = &stats_prefix
            && let Err(e) = envoy_rules::stat_prefix("statsPrefix", p)
        {
            rejections.push(Rejection::new(source, Reason::Invalid, e.to_string()));
            continue;
        }
        out.insert(
            port,
            Declared {
                source,
                stats_prefix,
            },
        );
    }
    out
}

/// Puts what the TCPMappings make into `ir`, once its endpoints are resolved: a TCPMapping whose
/// Service has no ready endpoint gets a [`Reason::NoReadyEndpoints`] note.
pub(super) fn finish(tcp: Tcp, ir: &mut super::Ir) {
    for (source, cluster) in tcp.eds_members {
        let Some(c) = ir.clusters.get(&cluster) else {
            continue;
        };
        let (Some(service), Some(endpoints)) = (&c.service, ir.endpoints.get(&cluster)) else {
            continue;
        };
        if endpoints.addresses.is_empty() && service.port_name.is_some() {
            ir.unreachable.push(Rejection::new(
                source,
                Reason::NoReadyEndpoints,
                format!(
                    "Service {}/{} has no ready endpoint for port {}; connections are closed \
                     until it has",
                    service.namespace, service.name, c.port
                ),
            ));
        }
    }
    for (name, certificate) in tcp.certificates {
        ir.certificates.entry(name).or_insert(certificate);
    }
    ir.tcp_listeners = tcp.listeners;
}

/// The listener of one port's members, oldest first; `None` when none is left to serve.
fn listener(
    port: u16,
    members: Vec<Member>,
    inputs: &Inputs<'_>,
    out: &mut Tcp,
    rejections: &mut Vec<Rejection>,
) -> Option<TcpListener> {
    let address = members.first()?.address.clone();
    // By host (`None`, the catch-all, last), each in order of age.
    let mut groups: BTreeMap<Option<String>, Vec<Member>> = BTreeMap::new();
    for m in members {
        if m.address != address {
            let winner = groups
                .values()
                .flatten()
                .next()
                .map(|w| w.source.to_string());
            rejections.push(Rejection::new(
                m.source.clone(),
                Reason::Conflict,
                format!(
                    "address {}: port {port} is already bound to {address} by {}; one address \
                     per port",
                    m.address,
                    winner.unwrap_or_default()
                ),
            ));
            continue;
        }
        groups.entry(m.host.clone()).or_default().push(m);
    }
    let name = format!("tcp-{address}-{port}");
    let mut chains = Vec::new();
    let mut catch_all = None;
    for (host, members) in groups {
        let members = admitted(members, rejections);
        let Some(first) = members.first() else {
            continue;
        };
        let tls = match &host {
            None => None,
            Some(host) => match termination(host, &first.namespace, inputs) {
                Ok(t) => t.map(|(tls, certificate)| {
                    out.certificates
                        .insert(tls.certificate.clone(), certificate);
                    tls
                }),
                Err(refusal) => {
                    for m in &members {
                        rejections.push(Rejection::new(
                            m.source.clone(),
                            refusal.reason,
                            refusal.message.clone(),
                        ));
                    }
                    continue;
                }
            },
        };
        let idle_timeout = first.shared.idle_timeout;
        let shares = shares(&members);
        let mut clusters = Vec::new();
        for (m, share) in members.into_iter().zip(shares) {
            if m.cluster.service.is_some() {
                out.eds_members
                    .push((m.source.clone(), m.cluster.name.clone()));
            }
            if share > 0 {
                clusters.push((m.cluster.name.clone(), share));
            }
            out.clusters.push(Arc::new(m.cluster));
        }
        let chain = TcpChain {
            name: match &host {
                Some(h) => format!("{name}-sni-{h}"),
                None => format!("{name}-any"),
            },
            server_names: host.into_iter().collect(),
            tls,
            clusters,
            idle_timeout,
        };
        if chain.server_names.is_empty() {
            catch_all = Some(chain);
        } else {
            chains.push(chain);
        }
    }
    let reads_sni = !chains.is_empty();
    chains.extend(catch_all);
    if chains.is_empty() {
        return None;
    }
    Some(TcpListener {
        name,
        address,
        port,
        stats_prefix: if reads_sni {
            format!("ingress_tls_{port}")
        } else {
            format!("ingress_tcp_{port}")
        },
        chains,
        // Set once the Module and the LogServices are read (`ir::Builder::build`).
        access_log: Default::default(),
        log_services: Default::default(),
    })
}

/// The members a group keeps, oldest first: one namespace (the first member's), the settings
/// the group applies as a whole agreed on, weights within 100.
fn admitted(members: Vec<Member>, rejections: &mut Vec<Rejection>) -> Vec<Member> {
    let mut kept: Vec<Member> = Vec::new();
    let mut total = 0u32;
    for m in members {
        let conflict =
            |message: String| Rejection::new(m.source.clone(), Reason::Conflict, message);
        if let Some(first) = kept.first() {
            if first.namespace != m.namespace {
                rejections.push(conflict(format!(
                    "{} of namespace {} already takes this address, port and host; a group \
                     never mixes namespaces",
                    first.source, first.namespace
                )));
                continue;
            }
            if let Some(field) = first.shared.mismatch(&m.shared) {
                rejections.push(conflict(format!(
                    "{field} differs from that of {}, with which it shares address, port and \
                     host: a group applies one {field}",
                    first.source
                )));
                continue;
            }
        }
        if let Some(w) = m.weight {
            if total + w > 100 {
                rejections.push(conflict(format!(
                    "weight {w} takes its group's total to {} (over 100)",
                    total + w
                )));
                continue;
            }
            total += w;
        }
        kept.push(m);
    }
    kept
}

impl Shared {
    /// The first field (as the user writes it) on which `other` differs.
    fn mismatch(&self, other: &Self) -> Option<&'static str> {
        if self.tls != other.tls {
            Some("tls")
        } else if self.idle_timeout != other.idle_timeout {
            Some("idle_timeout_ms")
        } else if self.circuit_breakers != other.circuit_breakers {
            Some("circuit_breakers")
        } else if self.enable_ipv4 != other.enable_ipv4 {
            Some("enable_ipv4")
        } else if self.enable_ipv6 != other.enable_ipv6 {
            Some("enable_ipv6")
        } else {
            None
        }
    }
}

/// Each member's share of the connections: its `weight`, the members without one sharing the
/// rest equally. A lone member, or a group whose shares are all 0, shares everything equally.
fn shares(members: &[Member]) -> Vec<u32> {
    let weighted: u32 = members.iter().filter_map(|m| m.weight).sum();
    let unweighted =
        u32::try_from(members.iter().filter(|m| m.weight.is_none()).count()).unwrap_or(u32::MAX);
    let rest = 100u32.saturating_sub(weighted);
    let mut given = 0u32;
    let mut seen = 0u32;
    let shares: Vec<u32> = members
        .iter()
        .map(|m| match m.weight {
            Some(w) => w,
            None => {
                seen += 1;
                // Equal steps, the last taking what rounding left.
                let share = if seen == unweighted {
                    rest - given
                } else {
                    rest / unweighted
                };
                given += share;
                share
            }
        })
        .collect();
    if members.len() == 1 || shares.iter().all(|s| *s == 0) {
        return vec![1; members.len()];
    }
    shares
}

/// The TLS a `host` group in `namespace` terminates with: a Host there whose hostname matches
/// (by hostname, as Emissary tries them), else a TLSContext there that lists the name; `None`
/// passes it through. A Host or TLSContext that matches but whose TLS cannot be served refuses
/// the group rather than letting the TLS pass through to an upstream that does not expect it.
fn termination(
    host: &str,
    namespace: &str,
    inputs: &Inputs<'_>,
) -> Result<Option<(DownstreamTls, Certificate)>, Refusal> {
    let mut hosts: Vec<&Host> = inputs
        .hosts
        .iter()
        .filter(|h| !h.synthesized && h.namespace == namespace)
        .collect();
    hosts.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    for h in hosts {
        if !hostglob_matches(&h.hostname, host) || !asks_for_tls(inputs.resources, &h.source) {
            continue;
        }
        return match inputs.terminations.of_host(&h.source) {
            Some((tls, certificate)) => Ok(Some((tls.clone(), certificate.clone()))),
            None => Err(Refusal {
                reason: Reason::SecretNotFound,
                message: format!(
                    "host {host:?}: Host {} matches it but its TLS is not served (see its \
                     status), so TLS is neither terminated nor passed through",
                    h.source
                ),
            }),
        };
    }
    for r in inputs.resources {
        let Resource::TLSContext(c) = r else { continue };
        let context_namespace = c.metadata.namespace.as_deref().unwrap_or(namespace);
        let lists = c
            .spec
            .hosts
            .iter()
            .flatten()
            .any(|h| h.eq_ignore_ascii_case(host));
        if context_namespace != namespace || !lists {
            continue;
        }
        return context_tls(&c.spec, namespace, inputs.resources)
            .map(Some)
            .map_err(|message| Refusal {
                reason: Reason::SecretNotFound,
                message: format!(
                    "host {host:?}: TLSContext {} lists it but cannot terminate TLS: {message}",
                    r.object_ref()
                ),
            });
    }
    Ok(None)
}

/// Whether the Host `source` asks for TLS (a secret, a context or inline settings).
fn asks_for_tls(resources: &[&Resource], source: &ObjectRef) -> bool {
    resources.iter().any(|r| match r {
        Resource::Host(h) => {
            r.object_ref() == *source
                && (h.spec.tls_secret.is_some()
                    || h.spec.tls_context.is_some()
                    || h.spec.tls.is_some())
        }
        _ => false,
    })
}

/// A TLSContext's certificate (its `secret`, in its own namespace) and settings.
fn context_tls(
    spec: &TlsContextSpec,
    namespace: &str,
    resources: &[&Resource],
) -> Result<(DownstreamTls, Certificate), String> {
    if spec.cert_chain_file.is_some() || spec.private_key_file.is_some() {
        return Err(
            "cert_chain_file/private_key_file: keys reach Envoy over SDS only; use secret".into(),
        );
    }
    if spec.ca_secret.is_some()
        || spec.cacert_chain_file.is_some()
        || spec.cert_required == Some(true)
    {
        return Err("client certificate validation is not served for TCPMappings".into());
    }
    let secret = spec.secret.as_deref().ok_or("it has no secret")?;
    let (secret_ns, secret_name) = tls::context_secret(spec, secret, namespace);
    if secret_ns != namespace {
        return Err(format!(
            "secret {secret:?} is in another namespace; only its own ({namespace}) may be used"
        ));
    }
    let found: Option<&TlsSecret> = resources.iter().find_map(|r| match r {
        Resource::Secret(s)
            if s.metadata.name.as_deref() == Some(secret_name.as_str())
                && s.metadata.namespace.as_deref().unwrap_or(namespace) == secret_ns =>
        {
            Some(s)
        }
        _ => None,
    });
    let s = found.ok_or_else(|| format!("Secret {secret_ns}/{secret_name} not found"))?;
    let certificate = tls::certificate(s)
        .ok_or_else(|| format!("Secret {secret_ns}/{secret_name} has no tls.key"))?;
    let tls = tls::downstream(spec, format!("{secret_ns}/{secret_name}"), None);
    tls::settings(&tls).map_err(|e| e.to_string())?;
    Ok((tls, certificate))
}

/// One TCPMapping, checked and resolved, with a note when it is served without endpoints.
fn compile(m: &TcpMapping, inputs: &Inputs<'_>) -> Result<(Member, Option<Refusal>), Refusal> {
    let spec = &m.spec;
    let settings = inputs.settings;
    let namespace = m
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(&settings.namespace);
    // `Port` is bounded to 1..=65535 by its schema and its loader.
    let port = u16::try_from(spec.port.get())
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("port {}: must be from 1 to 65535", spec.port.get()))?;
    let address = match spec.address.as_deref() {
        None => "0.0.0.0".to_owned(),
        Some(a) => a
            .parse::<IpAddr>()
            .map_err(|_| format!("address {a:?}: must be an IP address to bind to"))?
            .to_string(),
    };
    let host = spec.host.as_deref().map(sni_name).transpose()?;
    let originate_tls = match &spec.tls {
        Some(BoolOrString::Bool(b)) => *b,
        Some(BoolOrString::String(context)) => {
            return Err(Refusal {
                reason: Reason::NotSupported,
                message: format!(
                    "tls: TLSContext {context:?} for origination is not supported yet; use \
                     tls: true"
                ),
            });
        }
        None => false,
    };
    let circuit_breakers = match spec.circuit_breakers.as_deref() {
        Some(b) => upstream_policy::thresholds("circuit_breakers", b)?,
        None => Vec::new(),
    };
    // `Millis` is bounded to 0..=u32::MAX ms, below Envoy's duration limit.
    let idle_timeout = spec
        .idle_timeout_ms
        .map(|t| Duration::from_millis(u64::try_from(t.get().get()).unwrap_or(0)));
    if spec.service.contains("://") {
        return Err(Refusal::from(format!(
            "service {:?}: a TCPMapping forwards to host[:port], without a scheme",
            spec.service
        )));
    }
    let target = service::parse_target(&spec.service, originate_tls)?;
    if target.port.is_none() {
        // Emissary's default ports are HTTP's; a TCP upstream has no default.
        return Err(Refusal::from(format!(
            "service {:?}: no port; a TCPMapping's service must name one",
            spec.service
        )));
    }
    let target = service::Target {
        host: service::qualify(&target.host, namespace, &settings.namespace),
        ..target
    };
    let resolve = inputs
        .resolvers
        .choose_for(spec.resolver.as_deref(), false, namespace)?;
    let key = match resolve {
        Resolve::Auto | Resolve::Endpoints => {
            service::service_key(&target.host, &settings.namespace)
        }
        Resolve::Dns => None,
    };
    let resolved = inputs.services.lookup(&key, resolve, namespace, settings);
    let resolution = resolved.resolution(&key);
    let policy = ClusterPolicy {
        circuit_breakers: circuit_breakers.clone(),
        ..ClusterPolicy::default()
    };
    let (cluster, note) = service::cluster(
        &spec.service,
        &target,
        resolution,
        false,
        DEFAULT_CONNECT_TIMEOUT,
        policy,
    )?;
    // Address families, tag and stats name, as a Mapping's (`cluster_tuning`).
    let cluster = super::cluster_tuning::tune(spec, inputs.tuning, cluster)?;
    let note = note.map(|n| Refusal {
        message: n
            .message
            .replace("the route answers 503", "connections are closed"),
        ..n
    });
    Ok((
        Member {
            source: object_ref(m),
            namespace: namespace.to_owned(),
            created: m.metadata.creation_timestamp.clone(),
            address,
            port,
            host,
            // `Percent` is bounded to 0..=100 by its schema and its loader.
            weight: spec.weight.map(|w| u32::try_from(w.get()).unwrap_or(100)),
            shared: Shared {
                tls: spec.tls.clone(),
                idle_timeout,
                circuit_breakers,
                enable_ipv4: spec.enable_ipv4,
                enable_ipv6: spec.enable_ipv6,
            },
            cluster,
        },
        note,
    ))
}

/// `host` as an SNI name Envoy matches: a DNS name, or `*.` and a domain; lowercase.
fn sni_name(host: &str) -> Result<String, Refusal> {
    let name = host.to_ascii_lowercase();
    let bare = name.strip_prefix("*.").unwrap_or(&name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !bare.split('.').all(label_ok) {
        return Err(Refusal::from(format!(
            "host {host:?}: must be a DNS name (or `*.` and a domain) to match TLS SNI, without a \
             port"
        )));
    }
    Ok(name)
}

fn object_ref(m: &TcpMapping) -> ObjectRef {
    ObjectRef {
        kind: "TCPMapping".into(),
        namespace: m.metadata.namespace.clone(),
        name: m.metadata.name.clone().unwrap_or_default(),
    }
}

/// When the Listener `source` was created, if it says.
fn listener_created(resources: &[&Resource], source: &ObjectRef) -> Option<Time> {
    resources.iter().find_map(|r| match r {
        Resource::Listener(l) if r.object_ref() == *source => l.metadata.creation_timestamp.clone(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_names_are_dns_names_or_a_leading_wildcard() {
        assert_eq!(sni_name("A.Example.com").unwrap(), "a.example.com");
        assert_eq!(sni_name("*.example.com").unwrap(), "*.example.com");
        for bad in [
            "",
            "a.com:443",
            "a..com",
            "*",
            "a.*.com",
            "a b.com",
            "-a.com",
        ] {
            assert!(sni_name(bad).is_err(), "{bad:?}");
        }
    }
}
