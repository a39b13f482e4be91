//! Mappings to Kubernetes Services, each rule as a scenario: a Listener, Mappings, Services and
//! their EndpointSlices or Endpoints in YAML, then the cluster each Mapping sends to, the ready
//! endpoints of that cluster, and what is noted or refused.

use std::{collections::BTreeSet, net::SocketAddr, sync::Arc};

use legate_agent::{
    ir::{self, Cluster, Ir, Reason, RouteAction, ServiceNamespaces, ServiceRef, Settings},
    pipeline::Translator,
};
use legate_crds::Resource;
use pretty_assertions::assert_eq;

const LISTENER: &str = "
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http, namespace: default}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
";

fn mapping(name: &str, namespace: &str, prefix: &str, service: &str) -> String {
    mapping_with(name, namespace, prefix, service, "")
}

/// A Mapping with more of its spec (`, resolver: endpoint`).
fn mapping_with(name: &str, namespace: &str, prefix: &str, service: &str, more: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {{hostname: \"*\", prefix: {prefix}, service: \"{service}\"{more}}}\n"
    )
}

/// A resolver of `kind` (`KubernetesServiceResolver`, ...) named `name` in `namespace`.
fn resolver(kind: &str, name: &str, namespace: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: {kind}\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {{}}\n"
    )
}

/// A ClusterIP Service `echo` in `namespace` with ports 80 (`http`, to 8080) and 9090 (`admin`).
fn service(namespace: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: echo, namespace: {namespace}}}\nspec:\n  selector: {{app: echo}}\n  ports:\n  - {{name: http, port: 80, targetPort: 8080}}\n  - {{name: admin, port: 9090, targetPort: 9091}}\n"
    )
}

/// An EndpointSlice of `echo` in `namespace`: `http` on 8080 and `admin` on 9091, one endpoint
/// per (address, ready).
fn slice(namespace: &str, name: &str, endpoints: &[(&str, Option<bool>)]) -> String {
    let mut out = format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels: {{kubernetes.io/service-name: echo}}\naddressType: IPv4\nports:\n- {{name: http, port: 8080}}\n- {{name: admin, port: 9091}}\nendpoints:\n"
    );
    for (address, ready) in endpoints {
        let conditions = match ready {
            Some(r) => format!(", conditions: {{ready: {r}}}"),
            None => String::new(),
        };
        out.push_str(&format!("- {{addresses: [\"{address}\"]{conditions}}}\n"));
    }
    out
}

/// The Endpoints of `echo` in `namespace`: ready and not-ready addresses on `http` 8080.
fn endpoints(namespace: &str, ready: &[&str], not_ready: &[&str]) -> String {
    let list = |a: &[&str]| {
        a.iter()
            .map(|ip| format!("{{ip: \"{ip}\"}}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: echo, namespace: {namespace}}}\nsubsets:\n- addresses: [{}]\n  notReadyAddresses: [{}]\n  ports: [{{name: http, port: 8080}}, {{name: admin, port: 9091}}]\n",
        list(ready),
        list(not_ready)
    )
}

fn load(yaml: &str) -> Vec<Resource> {
    let loaded = legate_crds::loader::load_str("test.yaml", yaml).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    loaded.resources
}

fn ir_with(yaml: &str, settings: &Settings) -> Ir {
    ir::build(&load(yaml), settings)
}

fn ir(yaml: &str) -> Ir {
    ir_with(yaml, &Settings::default())
}

fn kubernetes(namespaces: Option<&[&str]>) -> Settings {
    Settings {
        service_namespaces: Some(match namespaces {
            None => ServiceNamespaces::All,
            Some(n) => ServiceNamespaces::Only(n.iter().map(|s| s.to_string()).collect()),
        }),
        ..Settings::default()
    }
}

/// The cluster Mapping `name` sends to.
fn cluster_of<'a>(ir: &'a Ir, name: &str) -> &'a Cluster {
    let route = ir.listeners[0].virtual_hosts[0]
        .routes
        .iter()
        .find(|r| r.route.source.name == name)
        .unwrap_or_else(|| panic!("Mapping {name} is not served: {:#?}", ir.rejections));
    let RouteAction::Forward(f) = &route.route.action else {
        panic!("{name} does not forward");
    };
    &ir.clusters[&f.cluster]
}

/// The ready endpoints of the cluster Mapping `name` sends to.
fn endpoints_of(ir: &Ir, name: &str) -> Vec<String> {
    let cluster = cluster_of(ir, name);
    ir.endpoints[&cluster.name]
        .addresses
        .iter()
        .map(SocketAddr::to_string)
        .collect()
}

fn echo(namespace: &str, port_name: &str) -> Option<ServiceRef> {
    Some(ServiceRef {
        namespace: namespace.into(),
        name: "echo".into(),
        port_name: Some(port_name.into()),
    })
}

fn notes(ir: &Ir) -> Vec<(String, Reason, String)> {
    ir.unreachable
        .iter()
        .map(|r| (r.object.name.clone(), r.reason, r.message.clone()))
        .collect()
}

#[test]
fn every_form_of_a_service_name_reaches_the_service_endpoints_over_eds() {
    let forms = [
        "echo",
        "echo:80",
        "echo:http",
        "echo.default",
        "echo.default:80",
        "echo.default.svc",
        "echo.default.svc:http",
        "echo.default.svc.cluster.local",
        "echo.default.svc.cluster.local:80",
    ];
    let mut yaml = [LISTENER.to_owned(), service("default")].concat();
    yaml.push_str(&slice(
        "default",
        "echo-a",
        &[("10.0.0.1", None), ("10.0.0.2", Some(true))],
    ));
    for (i, form) in forms.iter().enumerate() {
        yaml.push_str(&mapping(
            &format!("m{i}"),
            "default",
            &format!("/{i}/"),
            form,
        ));
    }
    yaml.push_str(&mapping("admin", "default", "/admin/", "echo:9090"));
    let ir = ir(&yaml);
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    for (i, form) in forms.iter().enumerate() {
        let name = format!("m{i}");
        let cluster = cluster_of(&ir, &name);
        assert_eq!(cluster.service, echo("default", "http"), "{form}");
        assert_eq!(cluster.port, 80, "{form}");
        assert_eq!(
            endpoints_of(&ir, &name),
            ["10.0.0.1:8080", "10.0.0.2:8080"],
            "{form}"
        );
    }
    // The other port, by number: its own endpoints' port, by the port's name.
    assert_eq!(cluster_of(&ir, "admin").service, echo("default", "admin"));
    assert_eq!(
        endpoints_of(&ir, "admin"),
        ["10.0.0.1:9091", "10.0.0.2:9091"]
    );
    assert!(ir.unreachable.is_empty(), "{:#?}", ir.unreachable);
}

#[test]
fn an_unqualified_name_resolves_in_the_mapping_namespace() {
    let yaml = [
        LISTENER.to_owned(),
        service("team"),
        slice("team", "echo-t", &[("10.1.0.1", None)]),
        service("default"),
        slice("default", "echo-d", &[("10.0.0.1", None)]),
        mapping("team-echo", "team", "/t/", "echo"),
        mapping("default-echo", "default", "/d/", "echo"),
        mapping("cross", "team", "/x/", "echo.default:http"),
    ]
    .concat();
    let ir = ir(&yaml);
    assert_eq!(cluster_of(&ir, "team-echo").service, echo("team", "http"));
    assert_eq!(endpoints_of(&ir, "team-echo"), ["10.1.0.1:8080"]);
    assert_eq!(
        cluster_of(&ir, "default-echo").service,
        echo("default", "http")
    );
    assert_eq!(endpoints_of(&ir, "cross"), ["10.0.0.1:8080"]);
}

#[test]
fn only_ready_endpoints_serve() {
    let yaml = [
        LISTENER.to_owned(),
        service("default"),
        slice(
            "default",
            "echo-a",
            &[
                ("10.0.0.1", Some(true)),
                ("10.0.0.2", Some(false)),
                ("10.0.0.3", None),
            ],
        ),
        mapping("m", "default", "/", "echo"),
    ]
    .concat();
    assert_eq!(
        endpoints_of(&ir(&yaml), "m"),
        ["10.0.0.1:8080", "10.0.0.3:8080"]
    );

    // Endpoints (Kubernetes 1.20): `addresses`, not `notReadyAddresses`.
    let yaml = [
        LISTENER.to_owned(),
        service("default"),
        endpoints("default", &["10.0.0.5", "10.0.0.4"], &["10.0.0.6"]),
        mapping("m", "default", "/", "echo"),
    ]
    .concat();
    assert_eq!(
        endpoints_of(&ir(&yaml), "m"),
        ["10.0.0.4:8080", "10.0.0.5:8080"]
    );
}

#[test]
fn endpoint_slices_are_joined_and_preferred_over_endpoints() {
    let yaml = [
        LISTENER.to_owned(),
        service("default"),
        endpoints("default", &["10.9.9.9"], &[]),
        slice("default", "echo-a", &[("10.0.0.1", None)]),
        slice("default", "echo-b", &[("10.0.0.2", None)]),
        mapping("m", "default", "/", "echo"),
    ]
    .concat();
    assert_eq!(
        endpoints_of(&ir(&yaml), "m"),
        ["10.0.0.1:8080", "10.0.0.2:8080"]
    );
}

#[test]
fn a_service_without_ready_endpoints_is_served_and_noted() {
    let yaml = [
        LISTENER.to_owned(),
        service("default"),
        slice("default", "echo-a", &[("10.0.0.1", Some(false))]),
        mapping("m", "default", "/", "echo"),
    ]
    .concat();
    let ir = ir(&yaml);
    assert!(endpoints_of(&ir, "m").is_empty());
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    assert_eq!(
        notes(&ir),
        [(
            "m".to_owned(),
            Reason::NoReadyEndpoints,
            "Service default/echo has no ready endpoint for port 80; the route answers 503 until it has".to_owned()
        )]
    );
}

#[test]
fn an_external_name_service_is_a_dns_cluster_to_its_external_name() {
    let yaml = [
        LISTENER.to_owned(),
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: default}\nspec: {type: ExternalName, externalName: api.example.com, ports: [{name: https, port: 443}]}\n".to_owned(),
        mapping("plain", "default", "/p/", "ext"),
        mapping("numbered", "default", "/n/", "ext:8443"),
        mapping("named", "default", "/named/", "ext.default:https"),
    ]
    .concat();
    let ir = ir(&yaml);
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    let target = |name| {
        let c = cluster_of(&ir, name);
        (c.host.clone(), c.port, c.service.clone())
    };
    assert_eq!(target("plain"), ("api.example.com".into(), 80, None));
    assert_eq!(target("numbered"), ("api.example.com".into(), 8443, None));
    assert_eq!(target("named"), ("api.example.com".into(), 443, None));
    assert!(ir.endpoints.is_empty());
}

#[test]
fn a_missing_service_is_served_empty_where_the_source_has_authority_and_dns_elsewhere() {
    let yaml = [
        LISTENER.to_owned(),
        service("elsewhere"),
        mapping("here", "default", "/here/", "echo"),
        mapping("team", "team", "/team/", "echo:8080"),
        mapping("public", "default", "/public/", "httpbin.org"),
        mapping("ip", "default", "/ip/", "10.0.0.1:9000"),
        mapping("url", "default", "/url/", "https://echo"),
    ]
    .concat();
    let dns = |ir: &Ir, name: &str| cluster_of(ir, name).service.is_none();

    // A directory of YAML: no authority over Services; names resolve through DNS as written.
    let ir_dir = ir(&yaml);
    assert!(
        ["here", "team", "public", "ip", "url"]
            .iter()
            .all(|m| dns(&ir_dir, m))
    );
    assert!(ir_dir.unreachable.is_empty(), "{:#?}", ir_dir.unreachable);
    assert_eq!(cluster_of(&ir_dir, "here").host, "echo");

    // Authority over `default` only: `echo` there is missing; `echo.team` is DNS.
    let ir_k = ir_with(&yaml, &kubernetes(Some(&["default"])));
    let here = cluster_of(&ir_k, "here");
    assert_eq!(
        here.service,
        Some(ServiceRef {
            namespace: "default".into(),
            name: "echo".into(),
            port_name: None
        })
    );
    assert!(ir_k.endpoints[&here.name].addresses.is_empty());
    assert!(dns(&ir_k, "team"));
    assert_eq!(
        notes(&ir_k),
        [(
            "here".to_owned(),
            Reason::ServiceNotFound,
            "service \"echo\": Service default/echo does not exist; the route answers 503 until it does".to_owned()
        )]
    );

    // Authority over every namespace: both are missing Services. `httpbin.org` reads as a
    // Service in namespace `org`, which has no Services at all: a public DNS name.
    let ir_all = ir_with(&yaml, &kubernetes(None));
    assert!(!dns(&ir_all, "here") && !dns(&ir_all, "team"));
    assert!(dns(&ir_all, "public") && dns(&ir_all, "ip") && dns(&ir_all, "url"));
    let missing: BTreeSet<String> = ir_all
        .unreachable
        .iter()
        .filter(|r| r.reason == Reason::ServiceNotFound)
        .map(|r| r.object.name.clone())
        .collect();
    assert_eq!(missing, BTreeSet::from(["here".into(), "team".into()]));
}

#[test]
fn a_service_without_the_port_refuses_the_mapping_naming_its_ports() {
    let yaml = [
        LISTENER.to_owned(),
        service("default"),
        mapping("by-number", "default", "/n/", "echo:8080"),
        mapping("by-name", "default", "/g/", "echo:grpc"),
        mapping("fine", "default", "/f/", "echo"),
        mapping("named-dns", "default", "/d/", "other:grpc"),
    ]
    .concat();
    let ir = ir(&yaml);
    let refused: Vec<(String, Reason, String)> = ir
        .rejections
        .iter()
        .map(|r| (r.object.name.clone(), r.reason, r.message.clone()))
        .collect();
    assert_eq!(
        refused,
        [
            (
                "by-name".to_owned(),
                Reason::Invalid,
                "service \"echo:grpc\": Service default/echo has no port named \"grpc\"; its ports: 80 (http), 9090 (admin)".to_owned()
            ),
            (
                "by-number".to_owned(),
                Reason::Invalid,
                "service \"echo:8080\": Service default/echo has no port 8080; its ports: 80 (http), 9090 (admin)".to_owned()
            ),
            (
                "named-dns".to_owned(),
                Reason::Invalid,
                "service \"other:grpc\": port \"grpc\" is not a number from 1 to 65535; a port is named only on a Kubernetes Service, and there is none by that name".to_owned()
            ),
        ]
    );
    assert_eq!(cluster_of(&ir, "fine").port, 80);
}

/// Builds through one translator, as the agent does.
fn build(t: &mut Translator, resources: &[Arc<Resource>]) -> Ir {
    t.build(resources).ir
}

#[test]
fn endpoints_changing_recompile_nothing_else_and_a_service_appearing_recompiles_its_mappings() {
    let shared =
        |yaml: &str| -> Vec<Arc<Resource>> { load(yaml).into_iter().map(Arc::new).collect() };
    let base = shared(
        &[
            LISTENER.to_owned(),
            service("default"),
            mapping("m", "default", "/", "echo"),
        ]
        .concat(),
    );
    let slice_of = |ips: &[&str]| {
        let endpoints: Vec<(&str, Option<bool>)> = ips.iter().map(|ip| (*ip, None)).collect();
        shared(&slice("default", "echo-a", &endpoints))
    };
    let mut t = Translator::new(kubernetes(None));
    let one = build(&mut t, &[base.clone(), slice_of(&["10.0.0.1"])].concat());
    let three = build(
        &mut t,
        &[
            base.clone(),
            slice_of(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
        ]
        .concat(),
    );
    assert_eq!(endpoints_of(&three, "m").len(), 3);
    // The same compiled route, virtual host and cluster: only the endpoints moved.
    let vhost = |ir: &Ir| ir.listeners[0].virtual_hosts[0].clone();
    assert!(Arc::ptr_eq(&vhost(&one), &vhost(&three)));
    let name = cluster_of(&one, "m").name.clone();
    assert!(Arc::ptr_eq(&one.clusters[&name], &three.clusters[&name]));
    assert_ne!(one.endpoints, three.endpoints);

    // The Service goes away: the Mapping is compiled again, its cluster kept, now empty.
    let without: Vec<Arc<Resource>> = base
        .iter()
        .filter(|r| !matches!(***r, Resource::Service(_)))
        .cloned()
        .collect();
    let gone = build(&mut t, &without);
    assert!(gone.endpoints.values().all(|e| e.addresses.is_empty()));
    assert_eq!(gone.unreachable[0].reason, Reason::ServiceNotFound);
    // And back: as from scratch.
    let back = [base.clone(), slice_of(&["10.0.0.1"])].concat();
    let again = build(&mut t, &back);
    let owned: Vec<Resource> = back.iter().map(|r| Resource::clone(r)).collect();
    assert_eq!(again, ir::build(&owned, &kubernetes(None)));
    assert_eq!(endpoints_of(&again, "m"), ["10.0.0.1:8080"]);
}

// --- Resolvers (Emissary's irserviceresolver.py) ------------------------------------------------

/// The reason and message Mapping (or other object) `name` is refused with.
fn refusal(ir: &Ir, name: &str) -> Option<(Reason, String)> {
    ir.rejections
        .iter()
        .find(|r| r.object.name == name)
        .map(|r| (r.reason, r.message.clone()))
}

#[test]
fn an_endpoint_resolver_always_reads_the_service_endpoints_even_where_dns_would_be_used() {
    // Emissary's KubernetesEndpointResolver makes an EDS cluster of `svc.namespace` whatever the
    // name (`_k8s_resolver`, `v3cluster.py`: any resolver but KubernetesServiceResolver is EDS),
    // a URL's host included; an IP falls back to the service resolver (`_k8s_clustermap_entry`).
    let yaml = [
        LISTENER.to_owned(),
        service("default"),
        slice("default", "echo-a", &[("10.0.0.1", None)]),
        mapping_with(
            "url",
            "default",
            "/url/",
            "http://echo",
            ", resolver: endpoint",
        ),
        mapping_with(
            "absent",
            "default",
            "/a/",
            "nothing:8080",
            ", resolver: kubernetes-endpoint",
        ),
        mapping_with(
            "ip",
            "default",
            "/ip/",
            "10.9.9.9:80",
            ", resolver: endpoint",
        ),
        mapping("default-url", "default", "/du/", "http://echo"),
        mapping("default-absent", "default", "/da/", "nothing:8080"),
    ]
    .concat();
    // A directory of YAML, where the gateway's own choice resolves names without a Service
    // (and URLs) through DNS.
    let ir = ir(&yaml);
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    assert_eq!(cluster_of(&ir, "url").service, echo("default", "http"));
    assert_eq!(endpoints_of(&ir, "url"), ["10.0.0.1:8080"]);
    assert_eq!(
        cluster_of(&ir, "absent").service,
        Some(ServiceRef {
            namespace: "default".into(),
            name: "nothing".into(),
            port_name: None
        })
    );
    assert!(endpoints_of(&ir, "absent").is_empty());
    assert_eq!(
        notes(&ir),
        [(
            "absent".to_owned(),
            Reason::ServiceNotFound,
            "service \"nothing:8080\": Service default/nothing does not exist; the route answers 503 until it does".to_owned()
        )]
    );
    assert!(cluster_of(&ir, "ip").is_ip());
    assert_eq!(cluster_of(&ir, "default-url").service, None);
    assert_eq!(cluster_of(&ir, "default-absent").service, None);
}

#[test]
fn a_service_resolver_sends_to_the_service_dns_name_and_refuses_a_load_balancer() {
    // Emissary's KubernetesServiceResolver: one endpoint, the (qualified) service name as a DNS
    // name (`_k8s_svc_resolver`), a STRICT_DNS cluster; and "No load_balancer setting is allowed
    // with the KubernetesServiceResolver" (`_k8s_svc_valid_mapping`), which makes the Mapping
    // inactive.
    let yaml = [
        LISTENER.to_owned(),
        service("team"),
        slice("team", "echo-t", &[("10.1.0.1", None)]),
        mapping_with(
            "dns",
            "team",
            "/dns/",
            "echo",
            ", resolver: kubernetes-service",
        ),
        mapping_with(
            "balanced",
            "team",
            "/lb/",
            "echo",
            ", resolver: kubernetes-service, load_balancer: {policy: least_request}",
        ),
        mapping("eds", "team", "/eds/", "echo"),
    ]
    .concat();
    let ir = ir_with(&yaml, &kubernetes(None));
    let dns = cluster_of(&ir, "dns");
    assert_eq!(
        (dns.service.clone(), dns.host.as_str(), dns.port),
        (None, "echo.team", 80)
    );
    assert_eq!(cluster_of(&ir, "eds").service, echo("team", "http"));
    assert_eq!(
        refusal(&ir, "balanced"),
        Some((
            Reason::Invalid,
            "load_balancer: not allowed with a KubernetesServiceResolver (resolver \"kubernetes-service\"), \
             which sends to the Service's cluster IP; only endpoints can be balanced: use a \
             KubernetesEndpointResolver (e.g. resolver: endpoint)"
                .to_owned()
        ))
    );
    // In Envoy: a DNS cluster to the name, and an EDS one for the endpoints.
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType,
    };
    let envoy = legate_agent::envoy::translate(&ir);
    let types: BTreeSet<(String, i32)> = envoy
        .clusters
        .iter()
        .filter_map(|c| match c.cluster_discovery_type {
            Some(ClusterDiscoveryType::Type(t)) => Some((c.name.clone(), t)),
            _ => None,
        })
        .collect();
    assert!(
        types.contains(&(dns.name.clone(), DiscoveryType::StrictDns as i32)),
        "{types:?}"
    );
    assert!(
        types.contains(&(
            cluster_of(&ir, "eds").name.clone(),
            DiscoveryType::Eds as i32
        )),
        "{types:?}"
    );
}

#[test]
fn a_resolver_is_found_in_the_mapping_namespace_then_the_gateway_namespace_and_never_another_team()
{
    // Emissary looks resolvers up by name alone; here a team's resolver decides nothing for
    // another team (the difference README.md names).
    let yaml = [
        LISTENER.to_owned(),
        service("team"),
        service("other"),
        resolver("KubernetesServiceResolver", "by-dns", "team"),
        resolver("KubernetesServiceResolver", "platform-dns", "default"),
        mapping_with("own", "team", "/own/", "echo", ", resolver: by-dns"),
        mapping_with(
            "platform",
            "team",
            "/p/",
            "echo",
            ", resolver: platform-dns",
        ),
        mapping_with("foreign", "other", "/f/", "echo", ", resolver: by-dns"),
        mapping_with("typo", "team", "/t/", "echo", ", resolver: by-dsn"),
    ]
    .concat();
    let ir = ir_with(&yaml, &kubernetes(None));
    assert_eq!(cluster_of(&ir, "own").host, "echo.team");
    assert_eq!(cluster_of(&ir, "own").service, None);
    assert_eq!(cluster_of(&ir, "platform").service, None);
    for (name, resolver, namespace) in [("foreign", "by-dns", "other"), ("typo", "by-dsn", "team")]
    {
        assert_eq!(
            refusal(&ir, name),
            Some((
                Reason::ResolverNotFound,
                format!(
                    "resolver \"{resolver}\": no KubernetesServiceResolver, KubernetesEndpointResolver or \
                     ConsulResolver by that name in namespace {namespace} or default, and it is not a \
                     built-in one (kubernetes-service, kubernetes-endpoint, endpoint)"
                )
            )),
            "{name}"
        );
    }
}

#[test]
fn a_resolver_replaces_the_built_in_of_its_name_and_its_alias() {
    // Emissary's check_aliases: defining `endpoint` alone defines `kubernetes-endpoint` as the
    // same resolver.
    let yaml = [
        LISTENER.to_owned(),
        service("default"),
        resolver("KubernetesServiceResolver", "endpoint", "default"),
        mapping_with("endpoint", "default", "/e/", "echo", ", resolver: endpoint"),
        mapping_with(
            "alias",
            "default",
            "/k/",
            "echo",
            ", resolver: kubernetes-endpoint",
        ),
    ]
    .concat();
    let ir = ir_with(&yaml, &kubernetes(None));
    assert_eq!(cluster_of(&ir, "endpoint").service, None);
    assert_eq!(cluster_of(&ir, "alias").service, None);
}

#[test]
fn consul_is_not_supported_and_a_mapping_resolving_through_it_is_refused_saying_so() {
    let yaml = [
        LISTENER.to_owned(),
        "---\napiVersion: getambassador.io/v3alpha1\nkind: ConsulResolver\nmetadata: {name: consul-dc2, namespace: default}\nspec: {address: \"consul:8500\", datacenter: dc2}\n".to_owned(),
        mapping_with("named", "default", "/n/", "web", ", resolver: consul-dc2"),
        mapping_with("built-in", "default", "/b/", "web", ", resolver: consul"),
        mapping("plain", "default", "/p/", "web"),
    ]
    .concat();
    let ir = ir(&yaml);
    for (name, resolver) in [("named", "consul-dc2"), ("built-in", "consul")] {
        assert_eq!(
            refusal(&ir, name),
            Some((
                Reason::NotSupported,
                format!(
                    "resolver \"{resolver}\" is a ConsulResolver: Consul is not supported, so this \
                     Mapping is not served; use a Kubernetes resolver"
                )
            ))
        );
    }
    assert!(refusal(&ir, "plain").is_none());
    assert_eq!(
        notes(&ir),
        [(
            "consul-dc2".to_owned(),
            Reason::NotSupported,
            legate_agent::ir::unsupported::CONSUL_RESOLVER.to_owned()
        )]
    );
}

/// The gateway's Module (`ambassador` in its namespace, `default` here) with `config`.
fn module(name: &str, namespace: &str, config: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {{config: {{{config}}}}}\n"
    )
}

#[test]
fn the_module_resolver_is_every_mapping_default_and_a_mapping_own_resolver_wins() {
    // Emissary: a Mapping's resolver defaults to the ambassador Module's `resolver`.
    let yaml = [
        LISTENER.to_owned(),
        service("default"),
        slice("default", "echo-a", &[("10.0.0.1", None)]),
        module("ambassador", "default", "resolver: kubernetes-service"),
        mapping("by-default", "default", "/d/", "echo"),
        mapping_with("own", "default", "/o/", "echo", ", resolver: endpoint"),
    ]
    .concat();
    let ir = ir_with(&yaml, &kubernetes(None));
    assert_eq!(cluster_of(&ir, "by-default").service, None);
    assert_eq!(cluster_of(&ir, "own").service, echo("default", "http"));
    assert!(ir.unreachable.is_empty(), "{:#?}", ir.unreachable);
}

#[test]
fn a_module_default_naming_no_resolver_is_noted_and_takes_no_route_down() {
    // A difference: Emissary would make every Mapping without its own resolver inactive.
    let yaml = [
        LISTENER.to_owned(),
        service("default"),
        slice("default", "echo-a", &[("10.0.0.1", None)]),
        module("ambassador", "default", "resolver: endpoints"),
        mapping("m", "default", "/m/", "echo"),
    ]
    .concat();
    let ir = ir_with(&yaml, &kubernetes(None));
    assert_eq!(cluster_of(&ir, "m").service, echo("default", "http"));
    assert_eq!(
        notes(&ir),
        [(
            "ambassador".to_owned(),
            Reason::ResolverNotFound,
            "spec.config.resolver \"endpoints\": no resolver by that name in namespace default \
             and no built-in one; each Mapping without its own resolver keeps the gateway's \
             default (a Service's endpoints, else DNS)"
                .to_owned()
        )]
    );
}

#[test]
fn only_the_ambassador_module_in_the_gateway_namespace_is_read() {
    let yaml = [
        LISTENER.to_owned(),
        service("team"),
        slice("team", "echo-t", &[("10.1.0.1", None)]),
        module("ambassador", "team", "resolver: kubernetes-service"),
        module("tuning", "default", "resolver: kubernetes-service"),
        mapping("m", "team", "/m/", "echo"),
    ]
    .concat();
    let ir = ir_with(&yaml, &kubernetes(None));
    assert_eq!(cluster_of(&ir, "m").service, echo("team", "http"));
    // By object: default/tuning, then team/ambassador.
    let noted: Vec<(String, Reason, String)> = notes(&ir);
    assert_eq!(
        noted,
        [
            (
                "tuning".to_owned(),
                Reason::NotSupported,
                "not read: only the Module named ambassador in namespace default (the gateway's) \
                 configures this gateway"
                    .to_owned()
            ),
            (
                "ambassador".to_owned(),
                Reason::NotSupported,
                "not read: only the Module named ambassador in namespace default (the gateway's) \
                 configures this gateway"
                    .to_owned()
            ),
        ]
    );
}

/// Emissary (`irbasemapping.py`, `normalize_service_name`): with the Module's
/// `use_ambassador_namespace_for_service_resolution`, an unqualified `service` of a Mapping in
/// another namespace names the Service in the gateway's namespace; a qualified one is unchanged.
#[test]
fn the_module_can_resolve_unqualified_services_in_the_gateway_namespace() {
    let yaml = [
        LISTENER.to_owned(),
        service("default"),
        slice("default", "echo-d", &[("10.0.0.1", None)]),
        service("team"),
        slice("team", "echo-t", &[("10.1.0.1", None)]),
        module(
            "ambassador",
            "default",
            "use_ambassador_namespace_for_service_resolution: true",
        ),
        mapping("m", "team", "/m/", "echo"),
        mapping("q", "team", "/q/", "echo.team"),
    ]
    .concat();
    let ir = ir_with(&yaml, &kubernetes(None));
    assert_eq!(cluster_of(&ir, "m").service, echo("default", "http"));
    assert_eq!(cluster_of(&ir, "q").service, echo("team", "http"));
    // Without it, the Mapping's own namespace.
    let without = yaml.replace("use_ambassador_namespace_for_service_resolution: true", "");
    let ir = ir_with(&without, &kubernetes(None));
    assert_eq!(cluster_of(&ir, "m").service, echo("team", "http"));
}

/// Emissary (`ambassador_id`, EMISSARY.md §2.3): a resource for another gateway is not this
/// gateway's at all. An `ambassador` Module for `blue` changes nothing here and gets no note
/// from this gateway (the `blue` gateway writes its status).
#[test]
fn an_ambassador_module_for_another_ambassador_id_is_not_this_gateways() {
    let yaml = [
        LISTENER.to_owned(),
        service("default"),
        slice("default", "echo-a", &[("10.0.0.1", None)]),
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Module\n\
         metadata: {name: ambassador, namespace: default}\n\
         spec: {ambassador_id: [blue], config: {resolver: kubernetes-service}}\n"
            .to_owned(),
        mapping("m", "default", "/m/", "echo"),
    ]
    .concat();
    let ir = ir_with(&yaml, &kubernetes(None));
    // The default (a Service's endpoints), not the blue Module's DNS resolver.
    assert_eq!(cluster_of(&ir, "m").service, echo("default", "http"));
    assert_eq!(notes(&ir), []);
}

#[test]
fn a_redirect_resolves_nothing_and_its_resolver_is_named_as_unused() {
    let yaml = [
        LISTENER.to_owned(),
        mapping_with(
            "redirect",
            "default",
            "/r/",
            "example.com",
            ", host_redirect: true, resolver: nowhere",
        ),
    ]
    .concat();
    let ir = ir(&yaml);
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    assert_eq!(
        notes(&ir),
        [(
            "redirect".to_owned(),
            Reason::NotSupported,
            "not applied to a host_redirect Mapping: spec.resolver".to_owned()
        )]
    );
}

#[test]
fn a_resolver_appearing_or_changing_recompiles_the_mappings_as_from_scratch() {
    let shared =
        |yaml: &str| -> Vec<Arc<Resource>> { load(yaml).into_iter().map(Arc::new).collect() };
    let base = shared(
        &[
            LISTENER.to_owned(),
            service("default"),
            mapping_with("m", "default", "/m/", "echo", ", resolver: mine"),
            mapping("plain", "default", "/p/", "echo"),
        ]
        .concat(),
    );
    let dns = shared(&resolver("KubernetesServiceResolver", "mine", "default"));
    let eds = shared(&resolver("KubernetesEndpointResolver", "mine", "default"));
    let dns_default = shared(&module("ambassador", "default", "resolver: mine"));
    let settings = kubernetes(None);
    let mut t = Translator::new(settings.clone());
    for step in [
        base.clone(),
        [base.clone(), dns.clone()].concat(),
        [base.clone(), eds.clone()].concat(),
        [base.clone(), dns.clone(), dns_default.clone()].concat(),
        base.clone(),
    ] {
        let kept = build(&mut t, &step);
        let owned: Vec<Resource> = step.iter().map(|r| Resource::clone(r)).collect();
        assert_eq!(kept, ir::build(&owned, &settings));
    }
    let with_dns = build(&mut t, &[base.clone(), dns, dns_default].concat());
    assert_eq!(cluster_of(&with_dns, "m").service, None);
    assert_eq!(cluster_of(&with_dns, "plain").service, None);
}
