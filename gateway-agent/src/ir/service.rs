//! `service` (`[scheme://]host[:port]`) into an upstream cluster, as Emissary reads it:
//! `https://` (or a `tls` setting) originates TLS, the default port is 443 then or 80
//! otherwise, and an unqualified name in another namespace gets that namespace appended.

use std::time::Duration;

use sha2::{Digest, Sha256};

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

/// Parses `service`; `originate_tls` is the Mapping's `tls` setting. Errors name the problem.
pub fn parse(service: &str, originate_tls: bool) -> Result<Upstream, String> {
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
    Ok(Upstream {
        host: host.to_owned(),
        port: port.unwrap_or(if tls { 443 } else { 80 }),
        tls,
    })
}

fn split_host_port(s: &str) -> Result<(&str, Option<u16>), String> {
    // [v6]:port, [v6], host:port, host
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("unclosed '[' in an IPv6 address")?;
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

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("port {port:?} is not a number from 1 to 65535")),
    }
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
