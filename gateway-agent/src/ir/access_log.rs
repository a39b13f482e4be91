//! Access logs: the gateway Module's `envoy_log_type`, `envoy_log_format` and `envoy_log_path`,
//! as Emissary writes them on every HTTP connection manager (`envoy/v3/v3listener.py`
//! `access_log`, `json_helper`; `ir/irambassador.py`): one file access log, to standard output
//! by default (`/dev/fd/1`, so `kubectl logs` shows it), in Emissary's text format unless the
//! Module says otherwise.
//!
//! Envoy refuses a whole listener for one unknown `%COMMAND%`, so each format is checked here
//! against the commands Legate passes on (each taken by Envoy 1.40, `tests/access_log.rs`); a
//! format that fails is refused on the Module, naming the field and the command, and Emissary's
//! default format is used instead. Emissary does the same for a format of the wrong shape
//! ("envoy_log_type 'json' requires a dictionary in envoy_log_format ... invalidating").

use std::collections::BTreeMap;

use legate_crds::{
    Module,
    module::{EnvoyLogFormat, EnvoyLogType},
};

use super::{Rejection, module};

/// Emissary's text format (`v3listener.py`), one line per request.
pub const DEFAULT_TEXT: &str = "ACCESS [%START_TIME%] \"%REQ(:METHOD)% \
    %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% \
    %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \
    \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \
    \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"";

/// The text format of a TCPMapping's connection (Emissary logs none): Emissary's line without
/// what only a request has (method, path, protocol, status, headers), with the client's
/// address and the SNI name in place of `X-Forwarded-For` and `:authority`.
pub const DEFAULT_TCP_TEXT: &str = "ACCESS [%START_TIME%] TCP %RESPONSE_FLAGS% \
    %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \"%DOWNSTREAM_REMOTE_ADDRESS%\" \
    \"%REQUESTED_SERVER_NAME%\" \"%UPSTREAM_HOST%\"";

/// The JSON fields of [`DEFAULT_JSON`] a connection has.
const TCP_JSON: &[&str] = &[
    "start_time",
    "response_flags",
    "bytes_received",
    "bytes_sent",
    "duration",
    "upstream_host",
    "upstream_cluster",
    "upstream_local_address",
    "downstream_local_address",
    "downstream_remote_address",
    "requested_server_name",
    "upstream_transport_failure_reason",
];

/// Emissary's JSON fields (`json_helper`), but for `istio_policy_status` (Istio's Mixer, gone).
const DEFAULT_JSON: &[(&str, &str)] = &[
    ("start_time", "%START_TIME%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("duration", "%DURATION%"),
    (
        "upstream_service_time",
        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    ),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
    ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
    (
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    ),
];

/// Emissary's `envoy_log_path` default: the process's standard output.
pub const DEFAULT_PATH: &str = "/dev/fd/1";

/// The access log every HTTP listener writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLog {
    pub path: String,
    pub format: Format,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// A format string; Envoy ends each line with it.
    Text(String),
    /// One JSON object per line, every value a string (`envoy_log_type: json`).
    Json(BTreeMap<String, String>),
    /// The same, with numbers as numbers (`typed_json`).
    TypedJson(BTreeMap<String, String>),
}

impl Default for AccessLog {
    fn default() -> Self {
        Self {
            path: DEFAULT_PATH.to_owned(),
            format: Format::Text(DEFAULT_TEXT.to_owned()),
        }
    }
}

impl AccessLog {
    /// The same log for TCPMappings' connections: to the same path; Emissary's format becomes
    /// the one for connections ([`DEFAULT_TCP_TEXT`], or its JSON fields a connection has); a
    /// format the Module writes is kept (Envoy logs `-` for what a connection lacks).
    pub fn for_tcp(&self) -> AccessLog {
        let format = match &self.format {
            Format::Text(t) if t == DEFAULT_TEXT => Format::Text(DEFAULT_TCP_TEXT.to_owned()),
            Format::Json(f) if is_default_json(f) => Format::Json(tcp_json()),
            Format::TypedJson(f) if is_default_json(f) => Format::TypedJson(tcp_json()),
            other => other.clone(),
        };
        AccessLog {
            path: self.path.clone(),
            format,
        }
    }
}

fn is_default_json(fields: &BTreeMap<String, String>) -> bool {
    fields.len() == DEFAULT_JSON.len()
        && DEFAULT_JSON
            .iter()
            .all(|(k, v)| fields.get(*k).is_some_and(|f| f == v))
}

fn tcp_json() -> BTreeMap<String, String> {
    DEFAULT_JSON
        .iter()
        .filter(|(k, _)| TCP_JSON.contains(k))
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The gateway's access log; what the Module sets that Envoy would refuse is refused on the
/// Module, naming the field, and left out (the default applies).
pub fn gateway_access_log(module: Option<&Module>, rejections: &mut Vec<Rejection>) -> AccessLog {
    let Some(module) = module else {
        return AccessLog::default();
    };
    let c = &module.spec.config;
    let path = match c.envoy_log_path.as_deref() {
        None | Some("") => DEFAULT_PATH.to_owned(),
        Some(p) if p.starts_with('/') && !p.contains('\0') => p.to_owned(),
        Some(p) => {
            rejections.push(module::invalid(
                module,
                format!(
                    "spec.config.envoy_log_path {}: must be an absolute path (Envoy opens it); \
                     the access log goes to {DEFAULT_PATH}",
                    super::envoy_rules::shown(p)
                ),
            ));
            DEFAULT_PATH.to_owned()
        }
    };
    let kind = c.envoy_log_type.unwrap_or(EnvoyLogType::Text);
    let format = match format(kind, c.envoy_log_format.as_ref()) {
        Ok(format) => format,
        Err(problem) => {
            rejections.push(module::invalid(
                module,
                format!("spec.config.envoy_log_format: {problem}; Emissary's format is used"),
            ));
            default_format(kind)
        }
    };
    AccessLog { path, format }
}

fn default_format(kind: EnvoyLogType) -> Format {
    let fields = || {
        DEFAULT_JSON
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    match kind {
        EnvoyLogType::Text => Format::Text(DEFAULT_TEXT.to_owned()),
        EnvoyLogType::Json => Format::Json(fields()),
        EnvoyLogType::TypedJson => Format::TypedJson(fields()),
    }
}

/// The format `envoy_log_format` gives for `kind`, or what is wrong with it.
fn format(kind: EnvoyLogType, written: Option<&EnvoyLogFormat>) -> Result<Format, String> {
    let Some(written) = written else {
        return Ok(default_format(kind));
    };
    match (kind, written) {
        (EnvoyLogType::Text, EnvoyLogFormat::Text(text)) => {
            if text.is_empty() {
                return Ok(default_format(kind));
            }
            commands(text)?;
            Ok(Format::Text(text.clone()))
        }
        (EnvoyLogType::Text, EnvoyLogFormat::Fields(_)) => {
            Err("envoy_log_type text takes a format string, not a map".to_owned())
        }
        (_, EnvoyLogFormat::Text(_)) => Err(
            "envoy_log_type json and typed_json take a map of field names to formats".to_owned(),
        ),
        (json, EnvoyLogFormat::Fields(fields)) => {
            let mut out = BTreeMap::new();
            for (name, value) in fields.iter() {
                let Some(value) = value.as_str() else {
                    return Err(format!("{name}: must be a format string"));
                };
                commands(value).map_err(|why| format!("{name}: {why}"))?;
                out.insert(name.clone(), value.to_owned());
            }
            if out.is_empty() {
                return Ok(default_format(kind));
            }
            Ok(match json {
                EnvoyLogType::TypedJson => Format::TypedJson(out),
                _ => Format::Json(out),
            })
        }
    }
}

/// Every `%COMMAND%` of `format` is one Legate passes to Envoy; `%%` is a literal `%`. A
/// command is read as Envoy reads it: a name, then maybe `(argument)` (which may hold `%`, as
/// `START_TIME`'s strftime format does) and `:length`, then `%`.
fn commands(format: &str) -> Result<(), String> {
    if format.contains(['\0', '\r', '\n']) {
        return Err("a NUL, CR or LF: Envoy ends each line itself".to_owned());
    }
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        let after = &rest[at + 1..];
        if let Some(next) = after.strip_prefix('%') {
            rest = next;
            continue;
        }
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
            .count();
        let (name, mut tail) = after.split_at(name_len);
        let mut argument = None;
        if let Some(open) = tail.strip_prefix('(') {
            let Some(close) = open.find(')') else {
                return Err(format!("%{name}(: no closing parenthesis"));
            };
            argument = Some(&open[..close]);
            tail = &open[close + 1..];
        }
        let mut length = None;
        if argument.is_some()
            && let Some(digits) = tail.strip_prefix(':')
        {
            let n = digits.bytes().take_while(u8::is_ascii_digit).count();
            length = Some(&digits[..n]);
            tail = &digits[n..];
        }
        let shown = &after[..after.len() - tail.len()];
        let Some(next) = tail.strip_prefix('%') else {
            return Err(format!(
                "\"%{shown}\" is not a command (end it with %, or write %% for a %)"
            ));
        };
        if !known(name, argument, length) {
            return Err(format!(
                "%{shown}% is not an access-log command Legate passes to Envoy"
            ));
        }
        rest = next;
    }
    Ok(())
}

/// Envoy's access-log commands that take no argument (each taken by Envoy 1.40:
/// `tests/access_log.rs` logs them all).
pub const PLAIN: &[&str] = &[
    "START_TIME",
    "BYTES_RECEIVED",
    "BYTES_SENT",
    "PROTOCOL",
    "UPSTREAM_PROTOCOL",
    "RESPONSE_CODE",
    "RESPONSE_CODE_DETAILS",
    "CONNECTION_TERMINATION_DETAILS",
    "RESPONSE_FLAGS",
    "RESPONSE_FLAGS_LONG",
    "DURATION",
    "REQUEST_DURATION",
    "REQUEST_TX_DURATION",
    "RESPONSE_DURATION",
    "RESPONSE_TX_DURATION",
    "REQUEST_HEADERS_BYTES",
    "RESPONSE_HEADERS_BYTES",
    "RESPONSE_TRAILERS_BYTES",
    "UPSTREAM_HOST",
    "UPSTREAM_CLUSTER",
    "UPSTREAM_LOCAL_ADDRESS",
    "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "UPSTREAM_LOCAL_PORT",
    "UPSTREAM_REMOTE_ADDRESS",
    "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
    "UPSTREAM_REMOTE_PORT",
    "UPSTREAM_REQUEST_ATTEMPT_COUNT",
    "UPSTREAM_TRANSPORT_FAILURE_REASON",
    "DOWNSTREAM_REMOTE_ADDRESS",
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_REMOTE_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_PORT",
    "DOWNSTREAM_LOCAL_ADDRESS",
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_LOCAL_PORT",
    "DOWNSTREAM_TLS_VERSION",
    "DOWNSTREAM_TLS_CIPHER",
    "DOWNSTREAM_PEER_SUBJECT",
    "DOWNSTREAM_PEER_ISSUER",
    "DOWNSTREAM_PEER_URI_SAN",
    "DOWNSTREAM_PEER_FINGERPRINT_256",
    "DOWNSTREAM_PEER_SERIAL",
    "REQUESTED_SERVER_NAME",
    "ROUTE_NAME",
    "CONNECTION_ID",
    "HOSTNAME",
    "LOCAL_REPLY_BODY",
    "ACCESS_LOG_TYPE",
    "UNIQUE_ID",
];

/// A command by its name, argument and `:length`: a plain one alone, a header one with its
/// header (or two, `A?B`) and maybe a length, `START_TIME` with a strftime format.
fn known(name: &str, argument: Option<&str>, length: Option<&str>) -> bool {
    if length.is_some_and(str::is_empty) {
        return false;
    }
    let header = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
    };
    match (name, argument) {
        (name, None) => PLAIN.contains(&name),
        ("REQ" | "RESP" | "TRAILER", Some(a)) => a.splitn(2, '?').all(header),
        ("START_TIME", Some(_)) => length.is_none(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emissarys_formats_and_the_commands_listed_pass() {
        commands(DEFAULT_TEXT).unwrap();
        for (_, v) in DEFAULT_JSON {
            commands(v).unwrap();
        }
        for plain in PLAIN {
            commands(&format!("%{plain}%")).unwrap();
        }
        for ok in [
            "%REQ(X-A?X-B):10%",
            "%RESP(content-type)%",
            "%TRAILER(grpc-status)%",
            "%START_TIME(%Y-%m-%dT%H:%M:%S%z)%",
            "100%% done",
        ] {
            assert_eq!(commands(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn tcp_listeners_log_connections_in_emissarys_shape_or_as_the_module_says() {
        commands(DEFAULT_TCP_TEXT).unwrap();
        let http = AccessLog::default();
        assert_eq!(
            http.for_tcp(),
            AccessLog {
                path: DEFAULT_PATH.into(),
                format: Format::Text(DEFAULT_TCP_TEXT.into()),
            }
        );
        let Format::Json(fields) = default_format(EnvoyLogType::Json).clone() else {
            unreachable!()
        };
        let json = AccessLog {
            path: "/var/log/envoy.log".into(),
            format: Format::TypedJson(fields),
        };
        let Format::TypedJson(tcp) = json.for_tcp().format else {
            panic!("typed_json stays typed_json")
        };
        let names: Vec<&str> = tcp.keys().map(String::as_str).collect();
        let mut expected = TCP_JSON.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
        assert_eq!(json.for_tcp().path, "/var/log/envoy.log");
        let own = AccessLog {
            path: DEFAULT_PATH.into(),
            format: Format::Text("MINE %REQ(:METHOD)% %BYTES_SENT%".into()),
        };
        assert_eq!(own.for_tcp(), own);
    }

    #[test]
    fn what_envoy_would_refuse_is_named() {
        for (bad, why) in [
            ("%NOPE%", "%NOPE% is not an access-log command"),
            ("%REQ()%", "%REQ()% is not"),
            ("%REQ(x a)%", "%REQ(x a)% is not"),
            ("%REQ(x):ten%", "\"%REQ(x):\" is not a command"),
            ("%REQ(x):%", "%REQ(x):% is not"),
            ("%START_TIME(%Y", "no closing parenthesis"),
            ("50% off", "\"%\" is not a command"),
            ("a\nb", "a NUL, CR or LF"),
        ] {
            let got = commands(bad).unwrap_err();
            assert!(got.contains(why), "{bad}: {got}");
        }
    }
}
