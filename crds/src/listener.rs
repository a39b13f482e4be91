//! `Listener` (`getambassador.io/v3alpha1`): a port, its protocol stack and security model, and
//! which Hosts bind to it, with Emissary's field names and shapes. Semantics:
//! `../shared/EMISSARY.md` §1.3 and §2.5.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    fields::{AmbassadorId, Bounded, Count, Port},
    status::ResourceStatus,
};

#[allow(clippy::duplicated_attributes)] // one `printcolumn(...)` per column
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "getambassador.io",
    version = "v3alpha1",
    kind = "Listener",
    doc = "A port Envoy listens on: its protocol stack, security model and which Hosts bind to it.",
    namespaced,
    derive = "PartialEq",
    status = "ResourceStatus",
    category = "legate",
    category = "ambassador-crds",
    printcolumn(name = "Port", type_ = "integer", json_path = ".spec.port"),
    printcolumn(name = "Protocol", type_ = "string", json_path = ".spec.protocol"),
    printcolumn(
        name = "Stack",
        type_ = "string",
        json_path = ".spec.protocolStack",
        priority = 1
    ),
    printcolumn(name = "Security", type_ = "string", json_path = ".spec.securityModel"),
    printcolumn(
        name = "StatsPrefix",
        type_ = "string",
        json_path = ".spec.statsPrefix",
        priority = 1
    ),
    printcolumn(
        name = "L7Depth",
        type_ = "integer",
        json_path = ".spec.l7Depth",
        priority = 1
    )
)]
#[x_kube(validation = Rule::new("has(self.protocol) || has(self.protocolStack)").message("set protocol or protocolStack").field_path(".protocol"))]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    #[serde(
        default,
        skip_serializing_if = "AmbassadorId::is_empty",
        rename = "ambassador_id"
    )]
    pub ambassador_id: AmbassadorId,

    /// Port to bind; one Listener per protocol and port.
    pub port: Port,
    /// Shorthand for a predefined protocol stack; `protocolStack` wins when both are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ListenerProtocol>,
    /// Explicit protocol stack, outermost first; it must end in TCP or UDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 5))]
    #[x_kube(validation = Rule::new("size(self) > 0 && (self[size(self) - 1] == 'TCP' || self[size(self) - 1] == 'UDP')").message("protocolStack must end with TCP or UDP"))]
    #[x_kube(validation = Rule::new("!self.exists(e, e == 'UDP') || self.exists(e, e == 'HTTP')").message("a UDP protocolStack must include HTTP (HTTP/3)"))]
    pub protocol_stack: Option<Vec<ProtocolStackElement>>,
    /// How to decide whether a connection is secure: `XFP`, `SECURE` or `INSECURE`.
    pub security_model: SecurityModel,
    /// Prefix of Envoy's statistics for this Listener; the default depends on the protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_prefix: Option<String>,
    /// Number of trusted layer-7 proxies in front (Envoy's `xff_num_trusted_hops`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l7_depth: Option<Count>,
    /// Envoy's HTTP/2 `max_concurrent_streams` for connections to this Listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_concurrent_streams: Option<Bounded<1, { i32::MAX as i64 }>>,
    /// Which Hosts this Listener serves: by namespace and label selector, both must match.
    pub host_binding: HostBinding,
}

/// A predefined protocol stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ListenerProtocol {
    // HTTP, TCP.
    #[serde(rename = "HTTP")]
    Http,
    // TLS, HTTP, TCP.
    #[serde(rename = "HTTPS")]
    Https,
    // PROXY, HTTP, TCP.
    #[serde(rename = "HTTPPROXY")]
    HttpProxy,
    // TLS, PROXY, HTTP, TCP.
    #[serde(rename = "HTTPSPROXY")]
    HttpsProxy,
    #[serde(rename = "TCP")]
    Tcp,
    // TLS, TCP.
    #[serde(rename = "TLS")]
    Tls,
    // In the schema for compatibility; Emissary has no stack for it and neither does Legate.
    #[serde(rename = "UDP")]
    Udp,
}

/// One layer of a protocol stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ProtocolStackElement {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "PROXY")]
    Proxy,
    #[serde(rename = "TLS")]
    Tls,
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

/// How a Listener decides whether a connection is secure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SecurityModel {
    // Secure when `X-Forwarded-Proto` is `https`.
    #[default]
    #[serde(rename = "XFP")]
    Xfp,
    #[serde(rename = "SECURE")]
    Secure,
    #[serde(rename = "INSECURE")]
    Insecure,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostBinding {
    /// Which namespaces' Hosts to consider; absent means the Listener's own, as in Emissary.
    #[serde(default, skip_serializing_if = "NamespaceBinding::is_empty")]
    pub namespace: NamespaceBinding,
    /// Hosts whose labels match (`matchLabels` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NamespaceBinding {
    /// `SELF` (the Listener's namespace), `ALL`, or `SELECTOR` (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<NamespaceFrom>,
}

impl NamespaceBinding {
    /// Nothing written: `from` is absent (SELF).
    pub fn is_empty(&self) -> bool {
        self.from.is_none()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum NamespaceFrom {
    #[serde(rename = "SELF")]
    OwnNamespace,
    All,
    Selector,
}
