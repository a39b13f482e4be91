//! What Envoy accepts, as pure checks: its protoc-gen-validate rules (lengths, the
//! `HTTP_HEADER_VALUE` character set), the checks it makes when it loads a configuration (RE2's
//! syntax and program size, header formatting commands, TLS names BoringSSL knows, duration
//! bounds), each measured against Envoy 1.40 itself.
//!
//! A value Envoy refuses makes it NACK the whole update, every good route with it: the IR calls
//! these where each value is first compiled, so only the one resource is refused, with the field.
//! Each check is at least as strict as Envoy: what passes here, Envoy takes.

pub mod re2;

pub use re2::regex;

/// A value Envoy would refuse, and which field holds it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {} {problem}", shown(.value))]
pub struct Violation {
    pub field: String,
    pub value: String,
    pub problem: Problem,
}

/// Why Envoy would refuse a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("is empty; Envoy needs a value here")]
    Empty,
    #[error("contains a NUL, CR or LF character, which Envoy refuses here")]
    ControlCharacter,
    #[error("is longer than {0} bytes, which Envoy refuses here")]
    TooLong(usize),
    #[error("is not a valid header name")]
    NotAToken,
    #[error("cannot be added or removed; use host_rewrite or rewrite for the host and path")]
    Reserved,
    #[error("is not a host name or an IP address")]
    NotAHost,
    #[error("is not {0} Envoy knows")]
    Unknown(&'static str),
    #[error("is not a header value Envoy can format: {0}; write a literal % as %%")]
    Format(String),
}

/// A check of one value, given the field that holds it.
pub type Check = fn(&str, &str) -> Result<(), Violation>;

impl Violation {
    fn new(field: &str, value: &str, problem: Problem) -> Self {
        Self {
            field: field.to_owned(),
            value: value.to_owned(),
            problem,
        }
    }
}

impl From<Violation> for super::Refusal {
    fn from(v: Violation) -> Self {
        Self::from(v.to_string())
    }
}

impl From<Violation> for String {
    fn from(v: Violation) -> Self {
        v.to_string()
    }
}

/// A value as a message shows it: quoted, and cut short when long (a 16 KiB header value would
/// otherwise fill every status and log line).
pub fn shown(value: &str) -> String {
    const MAX: usize = 80;
    match value.char_indices().nth(MAX) {
        Some((at, _)) => format!("{:?}... ({} bytes)", &value[..at], value.len()),
        None => format!("{value:?}"),
    }
}

/// Envoy's `HTTP_HEADER_VALUE` rule (`^[^\0\n\r]*$`), which every header value, rewrite,
/// redirect, host and domain it takes must satisfy.
pub fn header_value(field: &str, value: &str) -> Result<(), Violation> {
    if value.contains(['\0', '\r', '\n']) {
        return Err(Violation::new(field, value, Problem::ControlCharacter));
    }
    Ok(())
}

/// A value that must be set and must satisfy [`header_value`] (a header matcher's name, an
/// upgrade type, a virtual host's domain).
pub fn non_empty_header_value(field: &str, value: &str) -> Result<(), Violation> {
    if value.is_empty() {
        return Err(Violation::new(field, value, Problem::Empty));
    }
    header_value(field, value)
}

/// A header name to match on: set, no NUL/CR/LF.
pub fn matcher_name(field: &str, name: &str) -> Result<(), Violation> {
    non_empty_header_value(field, name)
}

/// A query parameter name to match on: from 1 to 1024 bytes.
pub fn query_name(field: &str, name: &str) -> Result<(), Violation> {
    const MAX: usize = 1024;
    if name.is_empty() {
        Err(Violation::new(field, name, Problem::Empty))
    } else if name.len() > MAX {
        Err(Violation::new(field, name, Problem::TooLong(MAX)))
    } else {
        Ok(())
    }
}

/// Which headers a name is added to or removed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// A header to add or remove: Envoy refuses pseudo-headers (`:path`), and `host` on requests;
/// the name must be an HTTP token.
pub fn header_name(field: &str, name: &str, side: Side) -> Result<(), Violation> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if name.starts_with(':') || (side == Side::Request && name.eq_ignore_ascii_case("host")) {
        Err(Violation::new(field, name, Problem::Reserved))
    } else if !token {
        Err(Violation::new(field, name, Problem::NotAToken))
    } else {
        Ok(())
    }
}

/// The value of a header to add: Envoy's `HeaderValue` rules (no NUL/CR/LF, at most 16 KiB),
/// and `%` starts one of its formatting commands (`%DOWNSTREAM_REMOTE_ADDRESS%`), which it
/// refuses when unknown. Only the commands listed here, each checked with Envoy, are taken.
pub fn added_header_value(field: &str, value: &str) -> Result<(), Violation> {
    const MAX: usize = 16 * 1024;
    header_value(field, value)?;
    if value.len() > MAX {
        return Err(Violation::new(field, value, Problem::TooLong(MAX)));
    }
    format_commands(value).map_err(|why| Violation::new(field, value, Problem::Format(why)))
}

/// Commands that take no argument.
const PLAIN_COMMANDS: &[&str] = &[
    "DOWNSTREAM_REMOTE_ADDRESS",
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_LOCAL_ADDRESS",
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_LOCAL_PORT",
    "UPSTREAM_REMOTE_ADDRESS",
    "PROTOCOL",
    "HOSTNAME",
    "REQUESTED_SERVER_NAME",
    "START_TIME",
];

/// Checks every `%...%` of a header value: `%%`, a plain command, or `%REQ(name)%` /
/// `%RESP(name)%` with `?alternative` and `:length` as Envoy writes them.
fn format_commands(value: &str) -> Result<(), String> {
    let mut rest = value;
    while let Some(at) = rest.find('%') {
        let after = &rest[at + 1..];
        if let Some(next) = after.strip_prefix('%') {
            rest = next;
            continue;
        }
        let Some(end) = after.find('%') else {
            return Err("a % with no command after it".into());
        };
        let command = &after[..end];
        format_command(command).map_err(|why| format!("%{command}%: {why}"))?;
        rest = &after[end + 1..];
    }
    Ok(())
}

fn format_command(command: &str) -> Result<(), String> {
    if PLAIN_COMMANDS.contains(&command) {
        return Ok(());
    }
    let (name, argument) = command
        .strip_suffix(')')
        .and_then(|c| c.split_once('('))
        .or_else(|| {
            // `%REQ(x-a):10%`: a length after the argument.
            let (head, length) = command.rsplit_once("):")?;
            (!length.is_empty() && length.bytes().all(|b| b.is_ascii_digit()))
                .then_some(head)?
                .split_once('(')
        })
        .ok_or("not a command Legate passes to Envoy")?;
    match name {
        "REQ" | "RESP" => {
            let names: Vec<&str> = argument.splitn(2, '?').collect();
            let token = |n: &&str| header_name("", n, Side::Response).is_ok();
            if names.iter().all(token) {
                Ok(())
            } else {
                Err("the argument must be a header name, or two separated by ?".into())
            }
        }
        _ => Err("not a command Legate passes to Envoy".into()),
    }
}

/// An upstream host: a DNS name (letters, digits, `-`, `_`, `.`; at most 253 bytes) or an IP
/// address. TLS origination presents it as SNI, which Envoy refuses with a NUL or past 255
/// bytes; as a DNS name anything else would never resolve.
pub fn upstream_host(field: &str, host: &str) -> Result<(), Violation> {
    const MAX: usize = 253;
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if host.len() > MAX {
        return Err(Violation::new(field, host, Problem::TooLong(MAX)));
    }
    let dns = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if dns {
        Ok(())
    } else {
        Err(Violation::new(field, host, Problem::NotAHost))
    }
}

/// A Listener's `statsPrefix`: Envoy's HTTP connection manager needs one.
pub fn stat_prefix(field: &str, prefix: &str) -> Result<(), Violation> {
    if prefix.is_empty() {
        Err(Violation::new(field, prefix, Problem::Empty))
    } else {
        Ok(())
    }
}

/// The longest duration Envoy takes: it holds durations as milliseconds in 64 bits, and refuses
/// 9,223,372,036 seconds and more (measured with Envoy 1.40).
pub const MAX_DURATION_SECS: u64 = 9_223_372_035;

/// An ALPN protocol: BoringSSL takes 1 to 255 bytes.
pub fn alpn_protocol(field: &str, protocol: &str) -> Result<(), Violation> {
    const MAX: usize = 255;
    if protocol.is_empty() {
        Err(Violation::new(field, protocol, Problem::Empty))
    } else if protocol.len() > MAX {
        Err(Violation::new(field, protocol, Problem::TooLong(MAX)))
    } else {
        Ok(())
    }
}

/// Cipher suites (TLS 1.2 and below) Envoy's BoringSSL accepts by name, each checked with
/// Envoy 1.40; a `[a|b]` group of them is one entry of equal preference.
const CIPHER_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES128-SHA256",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-RSA-AES256-SHA",
    "ECDHE-PSK-AES128-CBC-SHA",
    "ECDHE-PSK-AES256-CBC-SHA",
    "ECDHE-PSK-CHACHA20-POLY1305",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "PSK-AES128-CBC-SHA",
    "PSK-AES256-CBC-SHA",
    "DES-CBC3-SHA",
];

/// A `cipher_suites` entry: one name, a `[a|b]` group, or a `:` list of them.
pub fn cipher_suite(field: &str, entry: &str) -> Result<(), Violation> {
    let known = entry.split(':').all(|part| {
        let names = part
            .strip_prefix('[')
            .and_then(|p| p.strip_suffix(']'))
            .unwrap_or(part);
        names.split('|').all(|n| CIPHER_SUITES.contains(&n))
    });
    if known {
        Ok(())
    } else {
        Err(Violation::new(
            field,
            entry,
            Problem::Unknown("a cipher suite (as ECDHE-RSA-AES128-GCM-SHA256)"),
        ))
    }
}

/// ECDH curves Envoy's BoringSSL accepts, each checked with Envoy 1.40.
const ECDH_CURVES: &[&str] = &[
    "X25519",
    "x25519",
    "X25519MLKEM768",
    "MLKEM1024",
    "P-256",
    "prime256v1",
    "P-384",
    "secp384r1",
    "P-521",
    "secp521r1",
];

pub fn ecdh_curve(field: &str, curve: &str) -> Result<(), Violation> {
    if ECDH_CURVES.contains(&curve) {
        Ok(())
    } else {
        Err(Violation::new(
            field,
            curve,
            Problem::Unknown("an ECDH curve (as X25519 or P-256)"),
        ))
    }
}

/// Signature algorithms Envoy's BoringSSL accepts, each checked with Envoy 1.40.
const SIGNATURE_ALGORITHMS: &[&str] = &[
    "rsa_pkcs1_sha1",
    "rsa_pkcs1_sha256",
    "rsa_pkcs1_sha384",
    "rsa_pkcs1_sha512",
    "ecdsa_sha1",
    "ecdsa_secp256r1_sha256",
    "ecdsa_secp384r1_sha384",
    "ecdsa_secp521r1_sha512",
    "rsa_pss_rsae_sha256",
    "rsa_pss_rsae_sha384",
    "rsa_pss_rsae_sha512",
    "ed25519",
];

pub fn signature_algorithm(field: &str, algorithm: &str) -> Result<(), Violation> {
    if SIGNATURE_ALGORITHMS.contains(&algorithm) {
        Ok(())
    } else {
        Err(Violation::new(
            field,
            algorithm,
            Problem::Unknown("a signature algorithm (as ecdsa_secp256r1_sha256)"),
        ))
    }
}

#[cfg(test)]
mod tests;
