//! Legate's API: `GatewayInstallation` (`legate.dev/v1alpha1`) and the Emissary-compatible
//! route and policy kinds (`getambassador.io/v3alpha1`), their CRDs, and a loader that reads
//! them from multi-document YAML with errors that name the file, document, object and field.

pub mod fields;
pub mod loader;
pub mod names;
pub mod printable;
pub mod status;

pub mod auth_service;
pub mod gateway_installation;
pub mod host;
pub mod listener;
pub mod log_service;
pub mod mapping;
pub mod module;
pub mod rate_limit_service;
pub mod resolver;
pub mod secret;
pub mod service;
pub mod tcp_mapping;
pub mod tls_context;
pub mod tracing_service;

pub mod convert;
pub mod crd;
mod structural;
mod validation;

pub use auth_service::{AuthService, AuthServiceSpec};
pub use crd::{crd_file_name, crds};
pub use gateway_installation::{
    GatewayInstallation, GatewayInstallationSpec, GatewayInstallationStatus,
};
pub use host::{Host, HostSpec};
pub use listener::{Listener, ListenerSpec};
pub use loader::{DocumentError, FileError, Loaded, Warning};
pub use log_service::{LogService, LogServiceSpec};
pub use mapping::{Mapping, MappingSpec};
pub use module::{Module, ModuleSpec};
pub use rate_limit_service::{RateLimitService, RateLimitServiceSpec};
pub use resolver::{ConsulResolver, KubernetesEndpointResolver, KubernetesServiceResolver};
pub use secret::TlsSecret;
pub use tcp_mapping::{TcpMapping, TcpMappingSpec};
pub use tls_context::{TlsContext, TlsContextSpec};
pub use tracing_service::{TracingService, TracingServiceSpec};

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Declares every kind once: the `Resource` enum, its accessors, the CRD list and the loader's
/// dispatch all come from this table, so adding a kind is one line here. `crds` are Legate's
/// own kinds (each with a CRD, decoded by its derived type); `core` are Kubernetes kinds Legate
/// reads, each with its `apiVersion` and its own decoder (no CRD).
macro_rules! kinds {
    (
        crds { $($variant:ident($ty:ty)),* $(,)? }
        core { $($cvariant:ident($cty:ty) = $capi:literal by $cdecode:path),* $(,)? }
    ) => {
        /// Any resource Legate reads.
        // Every variant is a large object of about the same size; boxing one would only move
        // the lint to the next.
        #[allow(clippy::large_enum_variant)]
        #[derive(Clone, Debug, PartialEq)]
        pub enum Resource {
            $($variant($ty),)*
            $($cvariant($cty),)*
        }

        impl Resource {
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => stringify!($variant),)*
                    $(Self::$cvariant(_) => stringify!($cvariant),)*
                }
            }

            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Self::$variant(r) => &r.metadata,)*
                    $(Self::$cvariant(r) => &r.metadata,)*
                }
            }

            /// The resource as JSON, as it would be written back.
            pub fn to_json(&self) -> serde_json::Value {
                let value = match self {
                    $(Self::$variant(r) => serde_json::to_value(r),)*
                    $(Self::$cvariant(r) => serde_json::to_value(r),)*
                };
                value.expect("API types serialize to JSON")
            }
        }

        $(
            impl From<$ty> for Resource {
                fn from(r: $ty) -> Self {
                    Self::$variant(r)
                }
            }
        )*
        $(
            impl From<$cty> for Resource {
                fn from(r: $cty) -> Self {
                    Self::$cvariant(r)
                }
            }
        )*

        /// The derived CRD of every kind, before [`crd::crds`] adds the shared columns.
        fn derived_crds() -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
            use kube::CustomResourceExt;
            vec![$(<$ty>::crd(),)*]
        }

        /// Decodes a document whose `kind` names one of ours; `None` for any other kind.
        fn decode_kind(kind: &str, value: serde_json::Value, warn: &mut dyn FnMut(String))
            -> Option<Result<Resource, Vec<loader::FieldProblem>>>
        {
            match kind {
                $(k if k == <$ty as kube::Resource>::kind(&()) =>
                    Some(loader::decode::<$ty>(value, warn).map(Resource::$variant)),)*
                $(k if k == stringify!($cvariant) =>
                    Some($cdecode(value, warn).map(Resource::$cvariant)),)*
                _ => None,
            }
        }

        /// `apiVersion` of a kind we serve, by kind name.
        fn api_version_of(kind: &str) -> Option<String> {
            match kind {
                $(k if k == <$ty as kube::Resource>::kind(&()) =>
                    Some(<$ty as kube::Resource>::api_version(&()).into_owned()),)*
                $(k if k == stringify!($cvariant) => Some($capi.to_owned()),)*
                _ => None,
            }
        }
    };
}

kinds! {
    crds {
        GatewayInstallation(GatewayInstallation),
        Mapping(Mapping),
        Host(Host),
        Listener(Listener),
        TLSContext(TlsContext),
        TCPMapping(TcpMapping),
        AuthService(AuthService),
        RateLimitService(RateLimitService),
        LogService(LogService),
        TracingService(TracingService),
        Module(Module),
        KubernetesServiceResolver(KubernetesServiceResolver),
        KubernetesEndpointResolver(KubernetesEndpointResolver),
        ConsulResolver(ConsulResolver),
    }
    core {
        // Only `kubernetes.io/tls` Secrets; the loader skips the others with a warning.
        Secret(TlsSecret) = "v1" by secret::decode,
        // What a Mapping's `service` resolves through: the Service, then its ready endpoints
        // from its EndpointSlices or, where the server has none (Kubernetes 1.20), its Endpoints.
        Service(k8s_openapi::api::core::v1::Service) = "v1" by service::decode_service,
        EndpointSlice(k8s_openapi::api::discovery::v1::EndpointSlice) = "discovery.k8s.io/v1"
            by service::decode_endpoint_slice,
        Endpoints(k8s_openapi::api::core::v1::Endpoints) = "v1" by service::decode_endpoints,
    }
}

/// `Kind namespace/name`, how every message names an object.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

impl Resource {
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind().to_owned(),
            namespace: self.meta().namespace.clone(),
            name: self.meta().name.clone().unwrap_or_default(),
        }
    }
}

/// The `apiVersion` Legate reads a kind at (`Mapping` → `getambassador.io/v3alpha1`), `None`
/// for a kind it does not read.
pub fn api_version(kind: &str) -> Option<String> {
    api_version_of(kind)
}
