//! `service` (`[scheme://]host[:port]`) into an upstream cluster, as Emissary reads it:
//! `https://` (or a `tls` setting) originates TLS, the default port is 443 then or 80
//! otherwise, and an unqualified name in another namespace gets that namespace appended.
//!
//! A name that reads as a Kubernetes Service (`name`, `name.ns`, `name.ns.svc`,
//! `name.ns.svc.cluster.local`, Emissary's qualification applied) and names a Service of the
//! snapshot is served from that Service's ready endpoints over EDS ([`ServiceRef`]); its port is
//! one of the Service's ports, by number or by name. An ExternalName Service becomes a DNS
//! cluster to its external name. A missing Service in a namespace the source has authority over
//! ([`super::Settings::service_namespaces`]) still gets its EDS cluster, empty, so the route
//! answers 503 and fills as soon as the Service and its endpoints appear. Anything else (a name
//! with no Service outside those namespaces, an IP, a URL) keeps a DNS or static cluster.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use legate_crds::service::{EXTERNAL_NAME, service_type};
use sha2::{Digest, Sha256};

use super::{Reason, Refusal, upstream_policy::ClusterPolicy};

/// An upstream cluster. Mappings with identical parameters share one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cluster {
    /// Readable and derived from content: the same parameters always give the same name.
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Originate TLS to the upstream.
    pub tls: bool,
    /// Speak HTTP/2 to the upstream (`grpc: true`).
    pub http2: bool,
    pub connect_timeout: Duration,
    /// Served through EDS from this Kubernetes Service's endpoints, rather than by resolving
    /// `host` (which then only serves as the name TLS origination presents).
    pub service: Option<ServiceRef>,
    /// Circuit breakers, keepalive, connection lifetimes, balancing: part of the name.
    pub policy: ClusterPolicy,
    /// The TLSContext it originates TLS with (a Mapping's `tls: <name>`): part of the name.
    pub upstream_tls: Option<super::upstream_tls::UpstreamTls>,
    /// Health checks, DNS options, tag and stats name ([`super::cluster_tuning`]): part of the
    /// name.
    pub tuning: super::cluster_tuning::Tuning,
}

/// The Kubernetes Service whose ready endpoints fill an EDS cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    /// The name of the Service port the Mapping targets (`""` when unnamed): endpoints carry it
    /// on their ports. `None` when the Service does not exist: no endpoints, until it does.
    pub port_name: Option<String>,
}

impl Cluster {
    /// Whether `host` is an IP literal (a static cluster) rather than a name to resolve.
    pub fn is_ip(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_ok()
    }
}

/// The parts of a `service` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// A port as `service` gives it: a number, or (for a Kubernetes Service) a port's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

/// The parts of a `service` value whose port may be a Service port's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    /// `None`: the default, 443 when originating TLS, else 80.
    pub port: Option<PortRef>,
    pub tls: bool,
}

impl Target {
    /// The port number, the default when none is given.
    pub fn port_number(&self) -> Option<u16> {
        match &self.port {
            Some(PortRef::Number(n)) => Some(*n),
            Some(PortRef::Name(_)) => None,
            None => Some(self.default_port()),
        }
    }

    fn default_port(&self) -> u16 {
        if self.tls { 443 } else { 80 }
    }
}

/// Parses `service`; `originate_tls` is the Mapping's `tls` setting. Errors name the problem.
pub fn parse(service: &str, originate_tls: bool) -> Result<Upstream, String> {
    let target = parse_target(service, originate_tls)?;
    match target.port_number() {
        Some(port) => Ok(Upstream {
            host: target.host,
            port,
            tls: target.tls,
        }),
        None => Err(format!("service {service:?}: {}", not_a_port(&target.port))),
    }
}

fn not_a_port(port: &Option<PortRef>) -> String {
    match port {
        Some(PortRef::Name(name)) => format!("port {name:?} is not a number from 1 to 65535"),
        _ => "no port".to_owned(),
    }
}

/// Parses `service` as [`parse`] does, except that the port may be a name (a Service port's).
pub fn parse_target(service: &str, originate_tls: bool) -> Result<Target, String> {
    let (scheme_tls, rest) = match service.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "https" => (Some(true), rest),
            "http" => (Some(false), rest),
            other => {
                return Err(format!(
                    "service {service:?}: scheme {other:?} is not http or https"
                ));
            }
        },
        None => (None, service),
    };
    if rest.contains('/') {
        return Err(format!(
            "service {service:?}: a path is not allowed, only [scheme://]host[:port]"
        ));
    }
    if scheme_tls == Some(false) && originate_tls {
        return Err(format!("service {service:?}: http:// contradicts tls"));
    }
    let tls = scheme_tls.unwrap_or(originate_tls);
    let (host, port) = split_host_port(rest).map_err(|e| format!("service {service:?}: {e}"))?;
    if host.is_empty() {
        return Err(format!("service {service:?}: no host"));
    }
    Ok(Target {
        host: host.to_owned(),
        port,
        tls,
    })
}

fn split_host_port(s: &str) -> Result<(&str, Option<PortRef>), String> {
    // [v6]:port, [v6], host:port, host
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("unclosed '[' in an IPv6 address")?;
        // A zone (`fe80::1%eth0`) names an interface of the machine that wrote it; Envoy takes
        // none in a cluster address, and Emissary calls such a service malformed.
        if host.contains('%') {
            return Err(format!(
                "{host:?}: an IPv6 address with a zone (%interface) is not supported"
            ));
        }
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(parse_port(port)?))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected {after:?} after the address")),
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((host, Some(parse_port(port)?))),
        Some(_) => Err("an IPv6 address must be written in brackets".into()),
        None => Ok((s, None)),
    }
}

/// A number from 1 to 65535, or a Kubernetes port name (a DNS label with a letter: `http`,
/// `grpc-web`), which only a Service can resolve.
fn parse_port(port: &str) -> Result<PortRef, String> {
    let is_name = !port.is_empty()
        && port.len() <= 15
        && port.bytes().any(|b| b.is_ascii_lowercase())
        && port
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !port.starts_with('-')
        && !port.ends_with('-');
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(PortRef::Number(p)),
        _ if is_name => Ok(PortRef::Name(port.to_owned())),
        _ => Err(format!("port {port:?} is not a number from 1 to 65535")),
    }
}

/// A Service by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
    /// Written as `name.namespace`: the form a public DNS name (`httpbin.org`) also has, so it
    /// names a Service only where one is known to be meant (see [`super::Settings`]).
    pub ambiguous: bool,
}

/// The Kubernetes Service a (qualified) `service` host names, if it has the form of one:
/// `name` (in `own_namespace`), `name.ns`, `name.ns.svc` or `name.ns.svc.cluster.local`, each
/// part a DNS label. IPs, longer names and other domains name none.
pub fn service_key(host: &str, own_namespace: &str) -> Option<ServiceKey> {
    let labels: Vec<&str> = host.split('.').collect();
    let (name, namespace, ambiguous) = match labels.as_slice() {
        [name] => (*name, own_namespace, false),
        [name, ns] => (*name, *ns, true),
        [name, ns, "svc"] | [name, ns, "svc", "cluster", "local"] => (*name, *ns, false),
        _ => return None,
    };
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    // A Service name starts with a letter (DNS-1035); an all-digit first label is an address.
    let service_name = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    (service_name && label(name) && label(namespace) && host != "localhost").then(|| ServiceKey {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        ambiguous,
    })
}

/// Emissary's `normalize_service_name`: an unqualified name (no `.`, not `localhost`) in a
/// namespace other than the gateway's own resolves in the Mapping's namespace.
pub fn qualify(host: &str, mapping_namespace: &str, gateway_namespace: &str) -> String {
    let unqualified = !host.contains('.') && !host.contains(':') && host != "localhost";
    if unqualified && mapping_namespace != gateway_namespace {
        // One per Mapping: concatenated, without the formatting machinery.
        [host, ".", mapping_namespace].concat()
    } else {
        host.to_owned()
    }
}

/// A cluster name that reads as its upstream and changes only with its parameters.
///
/// Built without the formatting machinery: one per Mapping, and `format!` cost more than the
/// hash. The hashed text is `{host}\0{port}\0{tls}\0{http2}\0{connect timeout in ms}`.
pub fn cluster_name(
    host: &str,
    port: u16,
    tls: bool,
    http2: bool,
    connect_timeout: Duration,
) -> String {
    let (mut port_buf, mut millis_buf) = (itoa::Buffer::new(), itoa::Buffer::new());
    let port_digits = port_buf.format(port);
    let mut hasher = Sha256::new();
    for part in [
        host.as_bytes(),
        b"\0",
        port_digits.as_bytes(),
        b"\0",
        bool_text(tls),
        b"\0",
        bool_text(http2),
        b"\0",
        millis_buf.format(connect_timeout.as_millis()).as_bytes(),
    ] {
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let scheme = if tls { "_otls" } else { "" };
    let mut name = String::with_capacity(8 + 40 + 1 + 5 + 5 + 1 + 8);
    name.push_str("cluster_");
    name.extend(
        host.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40),
    );
    name.push('_');
    name.push_str(port_digits);
    name.push_str(scheme);
    name.push('_');
    crate::hex::push_lower_hex(&mut name, &digest[..4]);
    name
}

/// What a Mapping's `service` names in one snapshot.
#[derive(Clone, Copy, Debug)]
pub enum Resolution<'a> {
    /// No Kubernetes Service (or one the source does not know about): DNS or static, as written.
    Dns,
    /// This Service of the snapshot (its namespace as the key says: a Service read from a file
    /// may leave it out).
    Found(&'a ServiceKey, &'a Service),
    /// A Service in a namespace the source has authority over, which does not exist.
    Missing(&'a ServiceKey),
}

/// The cluster a forwarding Mapping sends to, given what its `service` (`text`, parsed into
/// `target` with the host qualified) resolves to, and a note when it is served without
/// endpoints. A Service that lacks the port asked for refuses the Mapping.
pub fn cluster(
    text: &str,
    target: &Target,
    resolution: Resolution<'_>,
    http2: bool,
    connect_timeout: Duration,
    policy: ClusterPolicy,
) -> Result<(Cluster, Option<Refusal>), Refusal> {
    let (mut cluster, note) =
        cluster_without_policy(text, target, resolution, http2, connect_timeout)?;
    if let Some(key) = policy.key() {
        cluster.name = with_policy(&cluster.name, &key);
    }
    cluster.policy = policy;
    Ok((cluster, note))
}

/// A cluster's name with a policy other than the default: the same readable part, the digest
/// over the name and the policy's key, so that each policy gets its own cluster while a
/// cluster without one keeps the name it always had.
pub fn with_policy(name: &str, key: &str) -> String {
    let (readable, _) = name.split_at(name.len().saturating_sub(8));
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\0policy\0")
        .chain_update(key.as_bytes())
        .finalize();
    let mut out = String::with_capacity(name.len());
    out.push_str(readable);
    crate::hex::push_lower_hex(&mut out, &digest[..4]);
    out
}

fn cluster_without_policy(
    text: &str,
    target: &Target,
    resolution: Resolution<'_>,
    http2: bool,
    connect_timeout: Duration,
) -> Result<(Cluster, Option<Refusal>), Refusal> {
    // Resolved by DNS, or presented as SNI when originating TLS: Envoy refuses a NUL there.
    super::envoy_rules::upstream_host("service", &target.host)?;
    let dns = |host: &str, port: u16| {
        let name = cluster_name(host, port, target.tls, http2, connect_timeout);
        Cluster {
            name,
            host: host.to_owned(),
            port,
            tls: target.tls,
            http2,
            connect_timeout,
            service: None,
            policy: ClusterPolicy::default(),
            upstream_tls: None,
            tuning: Default::default(),
        }
    };
    let eds = |port: u16, service: ServiceRef| Cluster {
        name: eds_cluster_name(
            &target.host,
            port,
            target.tls,
            http2,
            connect_timeout,
            &service,
        ),
        host: target.host.clone(),
        port,
        tls: target.tls,
        http2,
        connect_timeout,
        service: Some(service),
        policy: ClusterPolicy::default(),
        upstream_tls: None,
        tuning: Default::default(),
    };
    match resolution {
        Resolution::Dns => match target.port_number() {
            Some(port) => Ok((dns(&target.host, port), None)),
            None => Err(Refusal::from(format!(
                "service {text:?}: {}; a port is named only on a Kubernetes Service, and there is none by that name",
                not_a_port(&target.port)
            ))),
        },
        Resolution::Missing(key) => {
            let service = ServiceRef {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                port_name: None,
            };
            // The port is only part of the name here: an EDS cluster's endpoints bring theirs.
            let port = target.port_number().unwrap_or(0);
            let note = Refusal {
                reason: Reason::ServiceNotFound,
                message: format!(
                    "service {text:?}: Service {}/{} does not exist; the route answers 503 until it does",
                    key.namespace, key.name
                ),
            };
            Ok((eds(port, service), Some(note)))
        }
        Resolution::Found(key, svc) => {
            let (namespace, name) = (key.namespace.clone(), key.name.clone());
            let ports = svc
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_deref())
                .unwrap_or_default();
            let wanted = |p: &&ServicePort| match &target.port {
                Some(PortRef::Name(n)) => p.name.as_deref().unwrap_or_default() == n,
                _ => target.port_number().is_some_and(|n| i32::from(n) == p.port),
            };
            let found = ports
                .iter()
                .find(wanted)
                .and_then(|p| Some((u16::try_from(p.port).ok()?, p)));
            let external = service_type(svc) == EXTERNAL_NAME;
            match (found, external) {
                (Some((port, p)), false) => {
                    let service = ServiceRef {
                        namespace,
                        name,
                        port_name: Some(p.name.clone().unwrap_or_default()),
                    };
                    Ok((eds(port, service), None))
                }
                // An ExternalName Service is a DNS alias: its ports are informational, so a port
                // number is used as given and only a port's name has to be found.
                (found, true) => {
                    let external_name = svc
                        .spec
                        .as_ref()
                        .and_then(|s| s.external_name.as_deref())
                        .unwrap_or_default();
                    let port = found.map(|(p, _)| p).or(target.port_number());
                    match (port, external_name.is_empty()) {
                        (Some(port), false) => {
                            super::envoy_rules::upstream_host(
                                &format!(
                                    "service {text:?}: Service {namespace}/{name} spec.externalName"
                                ),
                                external_name,
                            )?;
                            Ok((dns(external_name, port), None))
                        }
                        _ => Err(no_such_port(text, &namespace, &name, target, ports)),
                    }
                }
                (None, false) => Err(no_such_port(text, &namespace, &name, target, ports)),
            }
        }
    }
}

fn no_such_port(
    text: &str,
    namespace: &str,
    name: &str,
    target: &Target,
    ports: &[ServicePort],
) -> Refusal {
    let asked = match &target.port {
        Some(PortRef::Name(n)) => format!("no port named {n:?}"),
        _ => format!("no port {}", target.port_number().unwrap_or_default()),
    };
    let has = if ports.is_empty() {
        "it has no ports".to_owned()
    } else {
        let list: Vec<String> = ports
            .iter()
            .map(|p| match p.name.as_deref() {
                Some(n) if !n.is_empty() => format!("{} ({n})", p.port),
                _ => p.port.to_string(),
            })
            .collect();
        format!("its ports: {}", list.join(", "))
    };
    Refusal::from(format!(
        "service {text:?}: Service {namespace}/{name} has {asked}; {has}"
    ))
}

/// The name of an EDS cluster: as [`cluster_name`]'s, with the Service and its port's name in
/// the hashed text too (`\0eds\0{namespace}/{name}\0{port name}`), so it never equals the
/// DNS cluster of the same host and port.
pub fn eds_cluster_name(
    host: &str,
    port: u16,
    tls: bool,
    http2: bool,
    connect_timeout: Duration,
    service: &ServiceRef,
) -> String {
    let mut text = String::with_capacity(host.len() + 64);
    text.push_str(host);
    text.push_str("\0eds\0");
    text.push_str(&service.namespace);
    text.push('/');
    text.push_str(&service.name);
    text.push('\0');
    match &service.port_name {
        Some(port_name) => text.push_str(port_name),
        None => text.push('\u{1}'),
    }
    // The readable part stays the host as written; the hash tells the clusters apart.
    let hashed = cluster_name(&text, port, tls, http2, connect_timeout);
    let readable = cluster_name(host, port, tls, http2, connect_timeout);
    let (prefix, _) = readable.split_at(readable.len().saturating_sub(8));
    let (_, digest) = hashed.split_at(hashed.len().saturating_sub(8));
    [prefix, digest].concat()
}

fn bool_text(b: bool) -> &'static [u8] {
    if b { b"true" } else { b"false" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_emissary_service_forms() {
        let up = |host: &str, port, tls| Upstream {
            host: host.into(),
            port,
            tls,
        };
        assert_eq!(parse("quote", false), Ok(up("quote", 80, false)));
        assert_eq!(parse("quote:8080", false), Ok(up("quote", 8080, false)));
        assert_eq!(parse("https://quote", false), Ok(up("quote", 443, true)));
        assert_eq!(parse("quote", true), Ok(up("quote", 443, true)));
        assert_eq!(
            parse("HTTP://quote.ns:81", false),
            Ok(up("quote.ns", 81, false))
        );
        assert_eq!(parse("[::1]:9000", false), Ok(up("::1", 9000, false)));
        assert_eq!(
            parse("127.0.0.1:9000", false),
            Ok(up("127.0.0.1", 9000, false))
        );
    }

    #[test]
    fn refuses_what_emissary_flags() {
        assert!(
            parse("ftp://quote", false)
                .unwrap_err()
                .contains("scheme \"ftp\"")
        );
        assert!(
            parse("quote:99999", false)
                .unwrap_err()
                .contains("port \"99999\"")
        );
        assert!(
            parse("quote/path", false)
                .unwrap_err()
                .contains("a path is not allowed")
        );
        assert!(
            parse("http://quote", true)
                .unwrap_err()
                .contains("contradicts tls")
        );
        assert!(parse(":80", false).unwrap_err().contains("no host"));
        // Emissary ignores these too: `//name` has no host for its URL parser (ircluster.py,
        // "has no hostname and will be ignored"), and a zone makes an address malformed.
        assert!(
            parse("//quote.ns:8080", false)
                .unwrap_err()
                .contains("a path is not allowed")
        );
        assert!(
            parse("[fe80::1%eth0]:80", false)
                .unwrap_err()
                .contains("with a zone")
        );
    }

    #[test]
    fn a_port_may_be_a_service_port_name_only_when_a_service_resolves_it() {
        let target = |s: &str| parse_target(s, false).map(|t| (t.host, t.port));
        assert_eq!(
            target("echo:http"),
            Ok(("echo".into(), Some(PortRef::Name("http".into()))))
        );
        assert_eq!(
            target("echo.ns.svc:grpc-web"),
            Ok(("echo.ns.svc".into(), Some(PortRef::Name("grpc-web".into()))))
        );
        assert_eq!(
            target("echo:80"),
            Ok(("echo".into(), Some(PortRef::Number(80))))
        );
        assert_eq!(target("echo"), Ok(("echo".into(), None)));
        // Not a port name: upper case, too long, a leading hyphen, digits only out of range.
        for bad in [
            "echo:HTTP",
            "echo:a-very-long-port-name",
            "echo:-x",
            "echo:0",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
        // Without a Service, a name is no port.
        assert!(
            parse("echo:http", false)
                .unwrap_err()
                .contains("port \"http\" is not a number")
        );
    }

    #[test]
    fn service_keys_are_the_kubernetes_forms_of_a_name() {
        let key = |host: &str| service_key(host, "gw").map(|k| (k.namespace, k.name, k.ambiguous));
        let k = |ns: &str, name: &str, ambiguous| Some((ns.into(), name.into(), ambiguous));
        assert_eq!(key("echo"), k("gw", "echo", false));
        assert_eq!(key("echo.shop"), k("shop", "echo", true));
        assert_eq!(key("echo.shop.svc"), k("shop", "echo", false));
        assert_eq!(key("echo.shop.svc.cluster.local"), k("shop", "echo", false));
        for none in [
            "10.0.0.1",
            "::1",
            "localhost",
            "api.example.com",
            "echo.shop.svc.cluster",
            "Echo.shop",
            "1echo",
            "echo..svc",
            "",
        ] {
            assert_eq!(key(none), None, "{none:?}");
        }
    }

    #[test]
    fn eds_cluster_names_differ_from_dns_ones_and_by_service_port() {
        let t = Duration::from_secs(3);
        let service = |port_name: Option<&str>| ServiceRef {
            namespace: "shop".into(),
            name: "echo".into(),
            port_name: port_name.map(str::to_owned),
        };
        let dns = cluster_name("echo.shop", 80, false, false, t);
        let http = eds_cluster_name("echo.shop", 80, false, false, t, &service(Some("http")));
        let other = eds_cluster_name("echo.shop", 80, false, false, t, &service(Some("web")));
        let missing = eds_cluster_name("echo.shop", 80, false, false, t, &service(None));
        assert!(http.starts_with("cluster_echo_shop_80_"), "{http}");
        assert_eq!(http.len(), dns.len());
        let all: std::collections::BTreeSet<&String> = [&dns, &http, &other, &missing].into();
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn qualifies_unqualified_names_in_other_namespaces() {
        assert_eq!(qualify("svc", "other", "default"), "svc.other");
        assert_eq!(qualify("svc", "default", "default"), "svc");
        assert_eq!(qualify("svc.ns", "other", "default"), "svc.ns");
        assert_eq!(qualify("localhost", "other", "default"), "localhost");
        assert_eq!(qualify("10.0.0.1", "other", "default"), "10.0.0.1");
    }

    /// The definition `cluster_name` computes without `format!`: names must never change.
    fn formatted_cluster_name(
        host: &str,
        port: u16,
        tls: bool,
        http2: bool,
        connect_timeout: Duration,
    ) -> String {
        let digest = Sha256::digest(format!(
            "{host}\0{port}\0{tls}\0{http2}\0{}",
            connect_timeout.as_millis()
        ));
        let readable: String = host
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        let scheme = if tls { "_otls" } else { "" };
        format!(
            "cluster_{readable}_{port}{scheme}_{:02x}{:02x}{:02x}{:02x}",
            digest[0], digest[1], digest[2], digest[3]
        )
    }

    #[test]
    fn cluster_names_are_the_formatted_definition() {
        for host in [
            "quote",
            "quote.default",
            "10.0.0.1",
            "::1",
            "a-very-long.host-name.in.some.namespace.svc.cluster.local",
            "hôte",
        ] {
            for port in [1, 80, 443, 9000, 65535] {
                for (tls, http2) in [(false, false), (true, false), (false, true), (true, true)] {
                    for timeout in [
                        Duration::ZERO,
                        Duration::from_millis(250),
                        Duration::from_secs(3),
                        Duration::from_secs(86_400),
                    ] {
                        assert_eq!(
                            cluster_name(host, port, tls, http2, timeout),
                            formatted_cluster_name(host, port, tls, http2, timeout)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn cluster_names_are_stable_and_parameter_specific() {
        let a = cluster_name("quote.default", 80, false, false, Duration::from_secs(3));
        assert_eq!(
            a,
            cluster_name("quote.default", 80, false, false, Duration::from_secs(3))
        );
        assert!(a.starts_with("cluster_quote_default_80_"), "{a}");
        assert_ne!(
            a,
            cluster_name("quote.default", 80, false, true, Duration::from_secs(3))
        );
    }
}
