//! A synthetic fleet for benchmarks: `listeners` Listeners (8080, 8081, ...), `hosts` Hosts and
//! `mappings` Mappings spread round-robin over the Hosts, each to its own service.

#![allow(dead_code)] // each bench uses part of it

use legate_crds::Resource;

pub fn resources(mappings: usize, hosts: usize, listeners: usize) -> Vec<Resource> {
    let yaml = yaml(mappings, hosts, listeners);
    let loaded = legate_crds::loader::load_str("fleet.yaml", &yaml).expect("the fleet is YAML");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors.first());
    loaded.resources
}

/// The fleet as one YAML stream, as a directory source reads it.
pub fn yaml(mappings: usize, hosts: usize, listeners: usize) -> String {
    yaml_sending_to(mappings, hosts, listeners, |m| format!("backend-{m}:8080"))
}

/// The fleet with its Mappings sending to `services` Kubernetes Services (`svc-N` in the
/// Mapping's namespace), each with an EndpointSlice of `endpoints` ready endpoints.
pub fn yaml_with_services(
    mappings: usize,
    hosts: usize,
    listeners: usize,
    services: usize,
    endpoints: usize,
) -> String {
    let mut yaml = yaml_sending_to(mappings, hosts, listeners, |m| {
        format!("svc-{}", m % services)
    });
    for s in 0..services {
        yaml += &service_yaml(s, 0, endpoints);
    }
    yaml
}

/// Service `svc-{s}` (in namespace `team-{s % 10}`, as the Mappings sending to it) and its
/// EndpointSlice of `endpoints` ready endpoints, the last octet counted from `base`.
pub fn service_yaml(s: usize, base: usize, endpoints: usize) -> String {
    let namespace = format!("team-{}", s % 10);
    let endpoints: String = (0..endpoints)
        .map(|e| {
            format!(
                "- {{addresses: [\"10.{}.{}.{}\"], conditions: {{ready: true}}}}\n",
                s / 250,
                s % 250,
                (base + e) % 250 + 1
            )
        })
        .collect();
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{s}, namespace: {namespace}}}\n\
         spec: {{ports: [{{name: http, port: 80, targetPort: 8080}}]}}\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: svc-{s}-abcde, namespace: {namespace}, labels: {{kubernetes.io/service-name: svc-{s}}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints:\n{endpoints}"
    )
}

fn yaml_sending_to(
    mappings: usize,
    hosts: usize,
    listeners: usize,
    service: impl Fn(usize) -> String,
) -> String {
    let mut yaml = String::new();
    for l in 0..listeners {
        yaml += &format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {{name: listener-{l}, namespace: default}}\n\
             spec: {{port: {}, protocol: HTTP, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}\n",
            8080 + l
        );
    }
    for h in 0..hosts {
        yaml += &format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {{name: host-{h}, namespace: default}}\n\
             spec: {{hostname: host-{h}.example.com, requestPolicy: {{insecure: {{action: Route}}}}}}\n"
        );
    }
    for m in 0..mappings {
        yaml += &format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: route-{m}, namespace: team-{}}}\n\
             spec: {{hostname: host-{}.example.com, prefix: /service-{m}/, service: {}, timeout_ms: 5000}}\n",
            m % 10,
            m % hosts,
            service(m)
        );
    }
    yaml
}
