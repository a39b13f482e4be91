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
             spec: {{hostname: host-{}.example.com, prefix: /service-{m}/, service: backend-{m}:8080, timeout_ms: 5000}}\n",
            m % 10,
            m % hosts
        );
    }
    yaml
}
