//! Services, EndpointSlices and Endpoints through the loader: what Kubernetes holds loads as it
//! is and writes back unchanged; what the gateway could not use is an error naming the field.

use legate_crds::{Resource, loader::load_str};
use pretty_assertions::assert_eq;
use serde_json::Value;

const GOOD: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: shop}
spec:
  type: ClusterIP
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
  - {name: grpc, port: 9000, targetPort: grpc}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: shop}
spec: {type: ExternalName, externalName: api.example.com}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-x1
  namespace: shop
  labels: {kubernetes.io/service-name: echo}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: ["10.0.0.1"]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: node-a
- addresses: ["10.0.0.2"]
  conditions: {ready: false}
---
apiVersion: v1
kind: Endpoints
metadata: {name: echo, namespace: shop}
subsets:
- addresses: [{ip: "10.0.0.1"}]
  notReadyAddresses: [{ip: "10.0.0.2"}]
  ports: [{name: http, port: 8080}]
"#;

#[test]
fn services_and_their_endpoints_load_and_write_back_unchanged() {
    let loaded = load_str("good.yaml", GOOD).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let kinds: Vec<&str> = loaded.resources.iter().map(Resource::kind).collect();
    assert_eq!(kinds, ["Service", "Service", "EndpointSlice", "Endpoints"]);
    let originals: Vec<Value> = serde_saphyr::from_multiple(GOOD).unwrap();
    for (original, resource) in originals.iter().zip(&loaded.resources) {
        assert_eq!(&resource.to_json(), original, "{}", resource.object_ref());
    }
}

/// The one error a single document yields, as `field: message`.
fn error(yaml: &str) -> String {
    let loaded = load_str("bad.yaml", yaml).unwrap();
    assert!(loaded.resources.is_empty(), "accepted: {yaml}");
    assert_eq!(loaded.errors.len(), 1, "{:#?}", loaded.errors);
    loaded.errors[0]
        .problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn what_the_gateway_cannot_use_is_refused_naming_the_field() {
    let service = |spec: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s, namespace: ns}}\n{spec}\n")
    };
    let cases = [
        (service(""), "spec: is required"),
        (
            service("spec: {type: Magic, ports: [{port: 80}]}"),
            "spec.type: \"Magic\" is not a Service type",
        ),
        (
            service("spec: {ports: [{port: 70000}]}"),
            "spec.ports[0].port: 70000 is not a port from 1 to 65535",
        ),
        (
            service("spec: {ports: [{name: a, port: 80}, {port: 81}]}"),
            "spec.ports[1].name: is required when a Service has several ports",
        ),
        (
            service("spec: {ports: [{name: a, port: 80}, {name: a, port: 81}]}"),
            "spec.ports[1].name: \"a\" names another port already",
        ),
        (
            service("spec: {type: ExternalName}"),
            "spec.externalName: is required for an ExternalName Service",
        ),
        (
            service("spec: {type: ExternalName, externalName: \"https://x.example\"}"),
            "spec.externalName: \"https://x.example\" is not a DNS name",
        ),
        (
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e, namespace: ns}\naddressType: IPv4\nendpoints: []\n".to_owned(),
            "metadata.labels.kubernetes.io/service-name: is required",
        ),
        (
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e, namespace: ns, labels: {kubernetes.io/service-name: s}}\naddressType: IPv4\nendpoints: [{addresses: [\"fd00::1\"]}]\n".to_owned(),
            "endpoints[0].addresses[0]: \"fd00::1\" is not an IPv4 address",
        ),
        (
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e, namespace: ns, labels: {kubernetes.io/service-name: s}}\nendpoints: []\n".to_owned(),
            "addressType: \"\" is not an address type",
        ),
        (
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e, namespace: ns, labels: {kubernetes.io/service-name: s}}\naddressType: IPv6\nports: [{port: 0}]\nendpoints: []\n".to_owned(),
            "ports[0].port: 0 is not a port from 1 to 65535",
        ),
        (
            "apiVersion: v1\nkind: Endpoints\nmetadata: {name: s, namespace: ns}\nsubsets: [{notReadyAddresses: [{ip: pod-a}], ports: [{port: 80}]}]\n".to_owned(),
            "subsets[0].notReadyAddresses[0].ip: \"pod-a\" is not an IP address",
        ),
        (
            "apiVersion: v1\nkind: Endpoints\nmetadata: {name: s, namespace: ns}\nsubsets: [{addresses: [{ip: 10.0.0.1}], ports: [{port: -1}]}]\n".to_owned(),
            "subsets[0].ports[0].port: -1 is not a port from 1 to 65535",
        ),
        (
            "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: e, namespace: ns}\n".to_owned(),
            "apiVersion: discovery.k8s.io/v1beta1 is not served for EndpointSlice; use discovery.k8s.io/v1",
        ),
    ];
    for (yaml, expected) in cases {
        let got = error(&yaml);
        assert!(
            got.contains(expected),
            "{yaml}\nexpected {expected:?}, got {got:?}"
        );
    }
}

#[test]
fn emissarys_annotation_configuration_is_named_not_silently_ignored() {
    // Emissary 1.x configured routes in a Service annotation (still read by 3.x); Legate reads
    // resources only, and says so where the annotation is.
    let yaml = r#"
apiVersion: v1
kind: Service
metadata:
  name: quote
  namespace: shop
  annotations:
    getambassador.io/config: |
      apiVersion: getambassador.io/v2
      kind: Mapping
      name: quote_mapping
      prefix: /quote/
      service: quote
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;
    let loaded = load_str("annotated.yaml", yaml).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    assert_eq!(loaded.resources.len(), 1, "the Service itself is used");
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "annotated.yaml: document 1 (Service shop/quote): metadata.annotations\
          [getambassador.io/config]: Emissary's annotation configuration is not read; \
          `legate-agent convert` turns it into getambassador.io/v3alpha1 resources"
        ]
    );
}
