//! The kinds a gateway watches in each admitted namespace, and how.

use k8s_openapi::api::{
    core::v1::{Endpoints, Secret, Service},
    discovery::v1::EndpointSlice,
};
use kube::{Client, core::ApiResource};
use legate_crds::{
    AuthService, ConsulResolver, Host, KubernetesEndpointResolver, KubernetesServiceResolver,
    Listener, LogService, Mapping, Module, RateLimitService, TcpMapping, TlsContext,
    TracingService,
};
use tracing::info;

/// One kind to watch.
#[derive(Clone, Debug)]
pub struct WatchedKind {
    /// Legate's name for the kind (`Resource::kind`).
    pub kind: &'static str,
    pub resource: ApiResource,
    /// Watch only these (`type=kubernetes.io/tls`, and `type=Opaque` for client-certificate
    /// CAs and CRLs, for Secrets: the others are not ours, and a gateway should hold no more
    /// key material than it serves).
    pub field_selector: Option<&'static str>,
    /// Watch only these (EndpointSlices of a Service: labelled with its name).
    pub label_selector: Option<&'static str>,
}

fn kind<K: kube::Resource<DynamicType = ()>>(
    kind: &'static str,
    field_selector: Option<&'static str>,
) -> WatchedKind {
    WatchedKind {
        kind,
        resource: ApiResource::erase::<K>(&()),
        field_selector,
        label_selector: None,
    }
}

/// Which API serves a Service's endpoints on this server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointsApi {
    /// `discovery.k8s.io/v1` EndpointSlices (Kubernetes 1.21 and later).
    Slices,
    /// core/v1 Endpoints, where `discovery.k8s.io/v1` is not served.
    Endpoints,
}

impl EndpointsApi {
    /// Asks the server once, at start.
    pub async fn discover(client: &Client) -> Self {
        let served = client
            .list_api_group_resources("discovery.k8s.io/v1")
            .await
            .is_ok_and(|list| list.resources.iter().any(|r| r.name == "endpointslices"));
        let api = if served {
            Self::Slices
        } else {
            Self::Endpoints
        };
        info!(
            ?api,
            "service endpoints come from {}",
            if served {
                "discovery.k8s.io/v1 EndpointSlices"
            } else {
                "core/v1 Endpoints (discovery.k8s.io/v1 is not served)"
            }
        );
        api
    }
}

/// Every kind watched in an admitted namespace.
pub fn watched(endpoints: EndpointsApi) -> Vec<WatchedKind> {
    let mut kinds = vec![
        kind::<Mapping>("Mapping", None),
        kind::<Host>("Host", None),
        kind::<Listener>("Listener", None),
        kind::<TlsContext>("TLSContext", None),
        kind::<TcpMapping>("TCPMapping", None),
        kind::<AuthService>("AuthService", None),
        kind::<RateLimitService>("RateLimitService", None),
        kind::<LogService>("LogService", None),
        kind::<TracingService>("TracingService", None),
        kind::<Module>("Module", None),
        kind::<KubernetesServiceResolver>("KubernetesServiceResolver", None),
        kind::<KubernetesEndpointResolver>("KubernetesEndpointResolver", None),
        kind::<ConsulResolver>("ConsulResolver", None),
        kind::<Secret>("Secret", Some("type=kubernetes.io/tls")),
        // Client-certificate CAs (`tls.crt`) and CRLs (`crl.pem`), as Emissary reads them; an
        // Opaque Secret without either is skipped with a warning.
        kind::<Secret>("Secret", Some("type=Opaque")),
        kind::<Service>("Service", None),
    ];
    kinds.push(match endpoints {
        EndpointsApi::Slices => WatchedKind {
            label_selector: Some(legate_crds::service::SERVICE_NAME_LABEL),
            ..kind::<EndpointSlice>("EndpointSlice", None)
        },
        EndpointsApi::Endpoints => kind::<Endpoints>("Endpoints", None),
    });
    kinds
}

/// The route and policy kinds: the ones whose status a gateway writes.
pub fn has_status(kind: &str) -> bool {
    matches!(
        kind,
        "Mapping"
            | "Host"
            | "Listener"
            | "TLSContext"
            | "TCPMapping"
            | "AuthService"
            | "RateLimitService"
            | "LogService"
            | "TracingService"
            | "Module"
            | "KubernetesServiceResolver"
            | "KubernetesEndpointResolver"
            | "ConsulResolver"
    )
}
