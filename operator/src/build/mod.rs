//! The pure builders: a `GatewayInstallation` in, every Kubernetes object the operator must apply
//! out, as typed k8s-openapi objects. No I/O: the reconciler applies what [`objects`] returns and
//! prunes the rest (found by the `app.kubernetes.io/managed-by` and instance labels).
//!
//! One small module per kind, in the style of Envoy Gateway's infrastructure builders. Input the
//! CRD schema cannot catch (an image that is not a reference, clashing ports, a missing uid)
//! becomes a [`BuildError`] naming the field, so the reconciler can set `Degraded` with a reason
//! instead of retrying forever.

mod config_map;
mod deployment;
mod hpa;
mod image;
mod labels;
mod pdb;
mod rbac;
mod service;
mod service_account;

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{ConfigMap, Namespace, Service, ServiceAccount},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::Resource;
use legate_crds::gateway_installation::{FromNamespaces, GatewayInstallation, GatewayPort};

pub use config_map::{BOOTSTRAP_KEY, bootstrap_yaml, config_hash};
pub use deployment::{
    ADMIN_ADDRESS, ADS_ADDRESS, AGENT_CONTAINER, CONFIG_HASH_ANNOTATION, ENVOY_CONTAINER,
    INSTALLATION_ENV, METRICS_PORT, STATS_ADDRESS,
};
pub use image::is_valid_image_reference;
pub use labels::{
    COMPONENT_LABEL, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, NAME, NAME_LABEL,
    OWNER_NAMESPACE_LABEL, bootstrap_config_map_name, cluster_scoped_name, namespaces_role_name,
};
pub use rbac::{
    ROUTE_RESOURCES, Rbac, RouteAccess, admitted, agent_lease_name, namespace_rules,
    own_namespace_rules, route_rules,
};

/// Defaults the operator release carries, so tests (and a future `--envoy-image` flag) can vary
/// them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Envoy's image when `spec.envoy.image` is unset.
    pub envoy_image: String,
    /// The agent's image when `spec.agent.image` is unset.
    pub agent_image: String,
    /// How long the preStop hook keeps a draining Envoy alive before it gets SIGTERM, when
    /// `spec.drainSeconds` is unset.
    pub drain_seconds: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            envoy_image: "docker.io/envoyproxy/envoy:v1.36.2".to_owned(),
            agent_image: "ghcr.io/legate-dev/legate-agent:0.1.0".to_owned(),
            drain_seconds: 15,
        }
    }
}

/// A spec the operator cannot honour. `field` is the path in the GatewayInstallation; the
/// messages are written for `kubectl describe`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("{field} is missing")]
    Missing { field: &'static str },
    #[error("{field}: {value:?} is not a valid image reference")]
    InvalidImage { field: &'static str, value: String },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl BuildError {
    /// The GatewayInstallation field the error is about.
    pub fn field(&self) -> &str {
        match self {
            Self::Missing { field } | Self::InvalidImage { field, .. } => field,
            Self::Invalid { field, .. } => field,
        }
    }
}

/// Everything one installation needs, typed.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub service_account: ServiceAccount,
    pub rbac: Rbac,
    pub config_map: ConfigMap,
    pub deployment: Deployment,
    pub service: Service,
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
    pub horizontal_pod_autoscaler: Option<HorizontalPodAutoscaler>,
}

impl Desired {
    /// Every object as JSON (apiVersion and kind included), in apply order: identity and
    /// permissions first, then configuration, then the workload and what points at it.
    pub fn manifests(&self) -> Vec<serde_json::Value> {
        fn json<T: k8s_openapi::serde::Serialize>(object: &T) -> serde_json::Value {
            serde_json::to_value(object).expect("k8s-openapi objects always serialize")
        }
        let mut out = vec![json(&self.service_account)];
        out.extend([json(&self.rbac.role), json(&self.rbac.binding)]);
        match &self.rbac.routes {
            RouteAccess::OwnNamespace => {}
            RouteAccess::AllNamespaces { role, binding } => {
                out.extend([json(role), json(binding)]);
            }
            RouteAccess::Selected {
                role,
                bindings,
                namespaces_role,
                namespaces_binding,
            } => {
                out.push(json(role));
                out.extend(bindings.iter().map(json));
                out.extend([json(namespaces_role), json(namespaces_binding)]);
            }
        }
        out.extend([
            json(&self.config_map),
            json(&self.deployment),
            json(&self.service),
        ]);
        out.extend(self.pod_disruption_budget.as_ref().map(json));
        out.extend(self.horizontal_pod_autoscaler.as_ref().map(json));
        out
    }
}

/// What every builder needs, resolved once from the installation.
pub(crate) struct Context<'a> {
    pub gwi: &'a GatewayInstallation,
    pub settings: &'a Settings,
    pub name: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub ports: Vec<GatewayPort>,
}

/// Builds every object for `gwi`. `namespaces` are the cluster's Namespaces, read only with
/// `allowedRoutes.namespaces.from: Selector` (a RoleBinding goes to each one the selector
/// matches); the reconciler lists just those the selector matches, the builder checks again.
pub fn objects(
    gwi: &GatewayInstallation,
    settings: &Settings,
    namespaces: &[Namespace],
) -> Result<Desired, BuildError> {
    let cx = Context::new(gwi, settings)?;
    let bootstrap = bootstrap_yaml(&cx.namespace, &cx.name);
    Ok(Desired {
        service_account: service_account::build(&cx),
        rbac: rbac::build(&cx, namespaces)?,
        config_map: config_map::build(&cx, &bootstrap),
        deployment: deployment::build(&cx, &config_hash(&bootstrap))?,
        service: service::build(&cx),
        pod_disruption_budget: pdb::build(&cx),
        horizontal_pod_autoscaler: hpa::build(&cx),
    })
}

/// Ports the agent and Envoy's admin already use inside the pod.
const RESERVED_PORTS: [(i64, &str); 3] = [
    (METRICS_PORT as i64, "the agent's metrics port"),
    (18000, "the agent's ADS port"),
    (19000, "Envoy's admin port"),
];

impl<'a> Context<'a> {
    fn new(gwi: &'a GatewayInstallation, settings: &'a Settings) -> Result<Self, BuildError> {
        let name = gwi.metadata.name.clone().ok_or(BuildError::Missing {
            field: "metadata.name",
        })?;
        // The name becomes a Service name and a label value: both at most 63 characters.
        if name.len() > 63 {
            return Err(BuildError::Invalid {
                field: "metadata.name".to_owned(),
                reason: format!(
                    "{name:?} is longer than 63 characters; it names the gateway's Service"
                ),
            });
        }
        let namespace = gwi.metadata.namespace.clone().ok_or(BuildError::Missing {
            field: "metadata.namespace",
        })?;
        // kube's controller reference leaves `blockOwnerDeletion` unset: set it, so foreground
        // deletion of the installation waits for its children.
        let owner = OwnerReference {
            block_owner_deletion: Some(true),
            ..gwi.controller_owner_ref(&()).ok_or(BuildError::Missing {
                field: "metadata.uid",
            })?
        };
        let ports = resolve_ports(gwi)?;
        Ok(Self {
            gwi,
            settings,
            name,
            namespace,
            owner,
            ports,
        })
    }
}

/// The label selector of the Namespaces whose routes `gwi` admits, with `from: Selector`; `None`
/// otherwise. The reconciler lists Namespaces with it (a selector the API server would refuse is
/// an error here, and [`objects`] reports it as such).
pub fn namespace_selector(
    gwi: &GatewayInstallation,
) -> Option<Result<kube::core::Selector, BuildError>> {
    let namespaces = gwi.spec.allowed_routes.as_ref()?.namespaces.as_ref()?;
    (namespaces.from == Some(FromNamespaces::Selector))
        .then(|| rbac::namespace_selector(namespaces.selector.as_ref()))
}

/// `spec.service.ports`, defaulted (`http` 80 → 8080, `https` 443 → 8443) and checked for what
/// the schema cannot see: duplicate names, ports or target ports, clashes with the pod's own
/// ports, names a container port cannot carry.
fn resolve_ports(gwi: &GatewayInstallation) -> Result<Vec<GatewayPort>, BuildError> {
    let ports = gwi
        .spec
        .service
        .as_ref()
        .map(|s| s.ports.clone())
        .unwrap_or_default();
    if ports.is_empty() {
        let port = |name: &str, port, target| GatewayPort {
            name: name.to_owned(),
            port: legate_crds::fields::Port::new(port).expect("in range"),
            target_port: Some(legate_crds::fields::Port::new(target).expect("in range")),
            node_port: None,
        };
        return Ok(vec![port("http", 80, 8080), port("https", 443, 8443)]);
    }
    let invalid = |i: usize, what: &str, reason: String| BuildError::Invalid {
        field: format!("spec.service.ports[{i}].{what}"),
        reason,
    };
    for (i, p) in ports.iter().enumerate() {
        // Container port names are IANA service names: at most 15 characters, lowercase
        // alphanumerics and '-', at least one letter, no leading, trailing or double '-'.
        let n = &p.name;
        let valid_name = !n.is_empty()
            && n.len() <= 15
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && n.bytes().any(|b| b.is_ascii_lowercase())
            && !n.starts_with('-')
            && !n.ends_with('-')
            && !n.contains("--");
        if !valid_name {
            return Err(invalid(
                i,
                "name",
                format!(
                    "{n:?} is not a valid port name (at most 15 lowercase letters, digits and '-')"
                ),
            ));
        }
        let target = p.target_port.unwrap_or(p.port).get();
        for (j, q) in ports[..i].iter().enumerate() {
            if q.name == p.name {
                return Err(invalid(
                    i,
                    "name",
                    format!("{n:?} is also the name of spec.service.ports[{j}]"),
                ));
            }
            if q.port == p.port {
                return Err(invalid(
                    i,
                    "port",
                    format!("{} is also the port of spec.service.ports[{j}]", p.port),
                ));
            }
            if q.target_port.unwrap_or(q.port).get() == target {
                return Err(invalid(
                    i,
                    "targetPort",
                    format!("{target} is also the target port of spec.service.ports[{j}]"),
                ));
            }
        }
        if let Some((_, what)) = RESERVED_PORTS.iter().find(|(port, _)| *port == target) {
            return Err(invalid(
                i,
                "targetPort",
                format!("{target} is {what} in the gateway pod"),
            ));
        }
    }
    Ok(ports)
}
