//! The gateway's Service: type and annotations from the spec, the listener ports.

use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};
use legate_crds::gateway_installation::ServiceType;

use super::{Context, labels};

pub fn build(cx: &Context) -> Service {
    let settings = cx.gwi.spec.service.as_ref();
    let type_ = match settings.and_then(|s| s.type_) {
        Some(ServiceType::ClusterIP) => "ClusterIP",
        Some(ServiceType::NodePort) => "NodePort",
        Some(ServiceType::LoadBalancer) | None => "LoadBalancer",
    };
    let mut metadata = labels::namespaced(cx, cx.name.clone());
    metadata.annotations = settings
        .map(|s| s.annotations.clone())
        .filter(|a| !a.is_empty());
    let ports = cx
        .ports
        .iter()
        .map(|p| ServicePort {
            name: Some(p.name.clone()),
            protocol: Some("TCP".to_owned()),
            port: p.port.get() as i32,
            target_port: Some(IntOrString::Int(
                p.target_port.unwrap_or(p.port).get() as i32
            )),
            // A node port means nothing on a ClusterIP Service (the API server rejects it).
            node_port: p
                .node_port
                .filter(|_| type_ != "ClusterIP")
                .map(|n| n.get() as i32),
            ..ServicePort::default()
        })
        .collect();
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(type_.to_owned()),
            selector: Some(labels::selector(cx)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}
