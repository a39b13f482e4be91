//! Core Kubernetes kinds a Mapping's `service` resolves through: `Service` (v1), its
//! `EndpointSlice`s (`discovery.k8s.io/v1`) and, on servers without EndpointSlices (Kubernetes
//! before 1.21), its `Endpoints` (v1).
//!
//! They are kept as Kubernetes defines them (so they write back unchanged), but validated once,
//! where they are read, for what the IR relies on: ports in range, known Service types, an
//! ExternalName Service's name, addresses that are IPs. A bad one is an error naming its field;
//! what the rest of Legate holds is known to be usable. The `validate_*` functions are public so
//! a Kubernetes source applies the same rules to what it watches.

use std::collections::BTreeSet;

use k8s_openapi::api::{
    core::v1::{EndpointAddress, Endpoints, Service},
    discovery::v1::EndpointSlice,
};
use serde_json::Value;

use crate::loader::{self, FieldProblem};

/// The label an EndpointSlice names its Service by.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Service types and how Legate reaches each.
pub const CLUSTER_IP: &str = "ClusterIP";
pub const NODE_PORT: &str = "NodePort";
pub const LOAD_BALANCER: &str = "LoadBalancer";
pub const EXTERNAL_NAME: &str = "ExternalName";

/// EndpointSlice address types.
pub const IPV4: &str = "IPv4";
pub const IPV6: &str = "IPv6";
pub const FQDN: &str = "FQDN";

/// The annotation Emissary 1.x configured routes with, which Emissary 3.x still reads.
pub const EMISSARY_CONFIG_ANNOTATION: &str = "getambassador.io/config";

/// Why a Service's `getambassador.io/config` annotation does nothing here, if it has one: Legate
/// reads route configuration from resources only, and says so rather than ignore it silently.
pub(crate) fn annotation_config_warning(document: &Value) -> Option<String> {
    let annotations = document.pointer("/metadata/annotations")?.as_object()?;
    annotations
        .contains_key(EMISSARY_CONFIG_ANNOTATION)
        .then(|| {
            format!(
                "metadata.annotations[{EMISSARY_CONFIG_ANNOTATION}]: Emissary's annotation \
             configuration is not read; `legate-agent convert` turns it into \
             getambassador.io/v3alpha1 resources"
            )
        })
}

/// Decodes and validates a Service document (the loader's entry point).
pub(crate) fn decode_service(
    value: Value,
    warn: &mut dyn FnMut(String),
) -> Result<Service, Vec<FieldProblem>> {
    let service = loader::decode::<Service>(value, warn)?;
    validate_service(&service)?;
    Ok(service)
}

/// Decodes and validates an EndpointSlice document.
pub(crate) fn decode_endpoint_slice(
    value: Value,
    warn: &mut dyn FnMut(String),
) -> Result<EndpointSlice, Vec<FieldProblem>> {
    let slice = loader::decode::<EndpointSlice>(value, warn)?;
    validate_endpoint_slice(&slice)?;
    Ok(slice)
}

/// Decodes and validates an Endpoints document.
pub(crate) fn decode_endpoints(
    value: Value,
    warn: &mut dyn FnMut(String),
) -> Result<Endpoints, Vec<FieldProblem>> {
    let endpoints = loader::decode::<Endpoints>(value, warn)?;
    validate_endpoints(&endpoints)?;
    Ok(endpoints)
}

/// A Service's type, `ClusterIP` when unset (as the API server defaults it).
pub fn service_type(service: &Service) -> &str {
    service
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or(CLUSTER_IP)
}

/// What the IR relies on in a Service: a known type, an ExternalName Service's host name, ports
/// in range with unique names (required when there are several, as the API server requires).
pub fn validate_service(service: &Service) -> Result<(), Vec<FieldProblem>> {
    let Some(spec) = &service.spec else {
        return Err(vec![problem("spec", "is required")]);
    };
    let mut problems = Vec::new();
    let type_ = service_type(service);
    if ![CLUSTER_IP, NODE_PORT, LOAD_BALANCER, EXTERNAL_NAME].contains(&type_) {
        problems.push(problem(
            "spec.type",
            &format!(
                "{type_:?} is not a Service type; expected {CLUSTER_IP}, {NODE_PORT}, {LOAD_BALANCER} or {EXTERNAL_NAME}"
            ),
        ));
    }
    if type_ == EXTERNAL_NAME {
        match spec.external_name.as_deref() {
            None | Some("") => problems.push(problem(
                "spec.externalName",
                "is required for an ExternalName Service",
            )),
            Some(name) if !is_dns_name(name) => problems.push(problem(
                "spec.externalName",
                &format!("{name:?} is not a DNS name"),
            )),
            Some(_) => {}
        }
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        if !(1..=65535).contains(&port.port) {
            problems.push(problem(
                &format!("spec.ports[{i}].port"),
                &format!("{} is not a port from 1 to 65535", port.port),
            ));
        }
        let name = port.name.as_deref().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            problems.push(problem(
                &format!("spec.ports[{i}].name"),
                "is required when a Service has several ports",
            ));
        } else if !names.insert(name) {
            problems.push(problem(
                &format!("spec.ports[{i}].name"),
                &format!("{name:?} names another port already"),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// What the IR relies on in an EndpointSlice: the label naming its Service, a known address type,
/// IP addresses for the IP types, ports in range.
pub fn validate_endpoint_slice(slice: &EndpointSlice) -> Result<(), Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let labelled = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .is_some_and(|name| !name.is_empty());
    if !labelled {
        problems.push(problem(
            &format!("metadata.labels.{SERVICE_NAME_LABEL}"),
            "is required: it names the Service whose endpoints these are",
        ));
    }
    let type_ = slice.address_type.as_str();
    let ip = type_ == IPV4 || type_ == IPV6;
    if !ip && type_ != FQDN {
        problems.push(problem(
            "addressType",
            &format!("{type_:?} is not an address type; expected {IPV4}, {IPV6} or {FQDN}"),
        ));
    }
    for (i, endpoint) in slice.endpoints.iter().enumerate() {
        if endpoint.addresses.is_empty() {
            problems.push(problem(
                &format!("endpoints[{i}].addresses"),
                "is required: an endpoint has at least one address",
            ));
        }
        for (j, address) in endpoint.addresses.iter().enumerate() {
            let parsed = address.parse::<std::net::IpAddr>();
            let fits = match parsed {
                Ok(std::net::IpAddr::V4(_)) => type_ == IPV4,
                Ok(std::net::IpAddr::V6(_)) => type_ == IPV6,
                Err(_) => false,
            };
            if ip && !fits {
                problems.push(problem(
                    &format!("endpoints[{i}].addresses[{j}]"),
                    &format!("{address:?} is not an {type_} address"),
                ));
            }
        }
    }
    for (i, port) in slice.ports.iter().flatten().enumerate() {
        if let Some(p) = port.port
            && !(1..=65535).contains(&p)
        {
            problems.push(problem(
                &format!("ports[{i}].port"),
                &format!("{p} is not a port from 1 to 65535"),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// What the IR relies on in Endpoints: IP addresses, ports in range.
pub fn validate_endpoints(endpoints: &Endpoints) -> Result<(), Vec<FieldProblem>> {
    let mut problems = Vec::new();
    for (i, subset) in endpoints.subsets.iter().flatten().enumerate() {
        let lists = [
            ("addresses", &subset.addresses),
            ("notReadyAddresses", &subset.not_ready_addresses),
        ];
        for (field, list) in lists {
            for (j, EndpointAddress { ip, .. }) in list.iter().flatten().enumerate() {
                if ip.parse::<std::net::IpAddr>().is_err() {
                    problems.push(problem(
                        &format!("subsets[{i}].{field}[{j}].ip"),
                        &format!("{ip:?} is not an IP address"),
                    ));
                }
            }
        }
        for (j, port) in subset.ports.iter().flatten().enumerate() {
            if !(1..=65535).contains(&port.port) {
                problems.push(problem(
                    &format!("subsets[{i}].ports[{j}].port"),
                    &format!("{} is not a port from 1 to 65535", port.port),
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// A host name as DNS writes it: dot-separated labels of letters, digits and hyphens, at most
/// 253 characters, no scheme, port or path.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn problem(field: &str, message: &str) -> FieldProblem {
    FieldProblem {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}
