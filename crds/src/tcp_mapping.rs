//! `TCPMapping` (`getambassador.io/v3alpha1`): an L4 route from a port (plus an optional SNI
//! `host` and bind `address`) to a service, with Emissary's field names and shapes so Emissary
//! YAML applies unchanged. Semantics: `../shared/EMISSARY.md` §1.5.

use std::{borrow::Cow, fmt};

use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    fields::{AmbassadorId, BoolOrString, CircuitBreaker, Millis, Percent, Port},
    status::ResourceStatus,
};

// No `Default`: `port` and `service` have no sensible default.
#[allow(clippy::duplicated_attributes)] // one `printcolumn(...)` per column
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "TCPMapping",
    doc = "An L4 route: a port (and optionally a TLS SNI host) forwarded to a service.",
    root = "TcpMapping",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    category = "legate",
    category = "ambassador-crds",
    printcolumn(name = "Port", type_ = "integer", json_path = ".spec.port"),
    printcolumn(name = "Host", type_ = "string", json_path = ".spec.host"),
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service")
)]
pub struct TcpMappingSpec {
    #[serde(default, skip_serializing_if = "AmbassadorId::is_empty")]
    pub ambassador_id: AmbassadorId,

    // --- Matching -------------------------------------------------------------------------
    /// Port the gateway listens on for this route; a TCP (or TLS, with `host`) Listener is made if none exists.
    pub port: Port,
    /// SNI name to match: the connection is TLS-terminated with the Host or TLSContext for this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.size() > 0").message("host must not be empty; leave it out for a catch-all"))]
    pub host: Option<String>,
    /// Local address to bind the listener to; all addresses when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.size() > 0").message("address must not be empty; leave it out to bind every address"))]
    pub address: Option<String>,

    // --- Upstream ------------------------------------------------------------------------
    /// `[scheme://]host[:port]` of the upstream; qualified with the TCPMapping's namespace when unqualified.
    #[x_kube(validation = Rule::new("self.size() > 0").message("service must not be empty"))]
    pub service: String,
    /// Share of the connections among TCPMappings with the same address, port and host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Percent>,
    /// A TLSContext name to originate TLS to the upstream with, or `true` to originate without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BoolOrString>,
    /// Resolver that turns `service` into endpoints; defaults to the Module's `resolver`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// Resolve the upstream over IPv4 (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    /// Resolve the upstream over IPv6 (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    /// Upstream circuit-breaker thresholds, per priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<Vec<CircuitBreaker>>,
    /// Close a connection idle for this long, in milliseconds (Emissary writes it as a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("string(self).matches('^[0-9]+$')").message("idle_timeout_ms must be a number of milliseconds"))]
    pub idle_timeout_ms: Option<MillisText>,
    /// Extra tag put into the cluster name, to keep otherwise identical clusters apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_tag: Option<String>,
    /// Name the upstream cluster's statistics are reported under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_name: Option<String>,
}

/// A duration in milliseconds that Emissary's schema types as a string (`idle_timeout_ms: "30000"`)
/// and users also write as a number; kept in the form it was written, so it writes back the same.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MillisText {
    millis: Millis,
    quoted: bool,
}

impl MillisText {
    pub fn get(self) -> Millis {
        self.millis
    }
}

impl fmt::Debug for MillisText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.millis.fmt(f)
    }
}

impl Serialize for MillisText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.quoted {
            s.collect_str(&self.millis)
        } else {
            self.millis.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for MillisText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let (value, quoted) = match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("must be a number of milliseconds, e.g. \"30000\"")
        })? {
            Raw::Number(n) => (n, false),
            Raw::Text(s) => {
                let n = s
                    .parse::<i64>()
                    .ok()
                    .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "must be a number of milliseconds, got {s:?}"
                        ))
                    })?;
                (n, true)
            }
        };
        let millis = Millis::new(value).map_err(serde::de::Error::custom)?;
        Ok(Self { millis, quoted })
    }
}

impl JsonSchema for MillisText {
    fn schema_name() -> Cow<'static, str> {
        "MillisText".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // Structural schemas cannot say "digits, as a number or a string"; the loader checks it.
        json_schema!({ "x-kubernetes-int-or-string": true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_timeout_keeps_the_form_it_was_written_in() {
        for text in [r#""30000""#, "30000"] {
            let t: MillisText = serde_json::from_str(text).unwrap();
            assert_eq!(t.get().get(), 30000);
            assert_eq!(serde_json::to_string(&t).unwrap(), text);
        }
        for bad in [r#""30s""#, r#""-5""#, "-5", "true"] {
            assert!(serde_json::from_str::<MillisText>(bad).is_err(), "{bad}");
        }
    }
}
