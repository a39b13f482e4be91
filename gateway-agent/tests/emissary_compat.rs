//! Emissary YAML that Legate used to refuse, or read differently, applied unchanged: each test
//! gives the YAML, what Emissary does with it (from its code or its own tests, cited), and Legate
//! doing the same. Where Envoy's answer is the point, through the real Envoy.

mod support;

use legate_agent::ir::{self, Ir, Reason, Settings};
use support::gateway::{Gateway, describe, mapping};

fn ir_in(namespace: &str, yaml: &str) -> Ir {
    let loaded = legate_crds::loader::load_str("emissary.yaml", yaml).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    let settings = Settings {
        namespace: namespace.to_owned(),
        ..Settings::default()
    };
    ir::build(&loaded.resources, &settings)
}

/// The domains of each Listener's virtual hosts, by port.
fn bound(ir: &Ir) -> Vec<(u16, Vec<String>)> {
    ir.listeners
        .iter()
        .map(|l| {
            let domains = l
                .virtual_hosts
                .iter()
                .flat_map(|v| v.domains.iter().cloned())
                .filter(|d| !d.contains(':'))
                .collect();
            (l.port, domains)
        })
        .collect()
}

/// The note (`NotSupported`: accepted, these fields not applied) of the Mapping `name`.
fn note(ir: &Ir, name: &str) -> String {
    ir.unreachable
        .iter()
        .find(|n| n.object.name == name && n.reason == Reason::NotSupported)
        .map(|n| n.message.clone())
        .unwrap_or_else(|| panic!("no note for {name}: {:#?}", ir.unreachable))
}

/// A route as a virtual host serves it: the Mapping's name and its cumulative share.
type Served = (String, Option<u32>);

fn host(name: &str, namespace: Option<&str>, hostname: &str, labels: &str) -> String {
    let namespace = namespace.map_or(String::new(), |n| format!(", namespace: {n}"));
    format!(
        "---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {{name: {name}{namespace}, labels: {{{labels}}}}}
spec: {{hostname: {hostname}, requestPolicy: {{insecure: {{action: Route}}}}}}
"
    )
}

#[test]
fn a_host_binding_with_only_a_selector_binds_hosts_of_the_listeners_own_namespace() {
    // Emissary's Listener CRD (v3alpha1 crd_listener.go): `hostBinding.namespace` is optional
    // and `from` defaults to SELF; namespace and selector must both admit a Host.
    let yaml = [
        "apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: internal, namespace: edge}
spec:
  port: 8080
  protocol: HTTP
  securityModel: XFP
  hostBinding:
    selector: {matchLabels: {network: internal}}
",
        &host(
            "in-ns-labelled",
            Some("edge"),
            "a.example.com",
            "network: internal",
        ),
        &host("in-ns-unlabelled", Some("edge"), "b.example.com", ""),
        &host(
            "elsewhere-labelled",
            Some("other"),
            "c.example.com",
            "network: internal",
        ),
    ]
    .concat();
    let ir = ir_in("edge", &yaml);
    assert_eq!(bound(&ir), [(8080, vec!["a.example.com".to_owned()])]);
}

#[test]
fn a_host_without_a_namespace_is_in_the_agents_namespace() {
    // Emissary places a resource without `metadata.namespace` in its own namespace
    // (`Config.ambassador_namespace`); a Listener binding `SELF` elsewhere must not bind it.
    let listener = |name: &str, namespace: &str, port: u16| {
        format!(
            "---
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{port: {port}, protocol: HTTP, securityModel: XFP, hostBinding: {{namespace: {{from: SELF}}}}}}
"
        )
    };
    let yaml = [
        listener("mine", "gateway", 8080),
        listener("theirs", "other", 8081),
        host("bare", None, "bare.example.com", ""),
    ]
    .concat();
    let ir = ir_in("gateway", &yaml);
    // The other namespace's Listener binds no Host, so it serves nothing at all.
    assert_eq!(bound(&ir), [(8080, vec!["bare.example.com".to_owned()])]);
}

const TWO_HOSTS: &str = "hostname: b.example.com
host: a.example.com
prefix: /two-hosts/
service: 127.0.0.1:1";

const REDIRECTS: [(&str, &str); 2] = [
    (
        "path-and-prefix",
        "hostname: \"*\"
prefix: /path-and-prefix/
service: other.example.com
host_redirect: true
path_redirect: /by-path
prefix_redirect: /by-prefix/",
    ),
    (
        "prefix-and-regex",
        "hostname: \"*\"
prefix: /prefix-and-regex/
service: other.example.com
host_redirect: true
prefix_redirect: /by-prefix/
regex_redirect: {pattern: \"^/prefix-and-regex/(.*)$\", substitution: \"/by-regex/\\\\1\"}",
    ),
];

#[test]
fn fields_emissary_lets_win_are_named_in_the_mappings_note() {
    // Emissary: `hostname` wins over `host` (irhttpmapping.py), and of several redirect
    // rewrites it uses path_redirect, then prefix_redirect, posting "Cannot specify both
    // path_redirect and prefix_redirect. Using path_redirect and ignoring prefix_redirect."
    // (python/tests/unit/test_irmapping.py). Legate serves the same and names the loser.
    let mut yaml = mapping("two-hosts", TWO_HOSTS);
    for (name, spec) in REDIRECTS {
        yaml.push_str(&mapping(name, spec));
    }
    let ir = ir_in("default", &yaml);
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    assert_eq!(
        note(&ir, "two-hosts"),
        "not applied because spec.hostname is set: spec.host"
    );
    assert_eq!(
        note(&ir, "path-and-prefix"),
        "not applied because spec.path_redirect is set: spec.prefix_redirect"
    );
    assert_eq!(
        note(&ir, "prefix-and-regex"),
        "not applied because spec.prefix_redirect is set: spec.regex_redirect"
    );
}

#[tokio::test]
async fn hostname_wins_over_host_and_one_redirect_rewrite_is_used_through_envoy() {
    let gw = Gateway::start().await;
    let mut yaml = mapping("two-hosts", TWO_HOSTS);
    for (name, spec) in REDIRECTS {
        yaml.push_str(&mapping(name, spec));
    }
    gw.write("emissary.yaml", &yaml);
    gw.wait_status("/path-and-prefix/x", 301).await;

    // `hostname: b.example.com` matches; `host: a.example.com` is not a match condition.
    let b = gw.get("/two-hosts/", "b.example.com").await;
    assert_eq!(
        b.status,
        503,
        "routed to its (absent) upstream: {}",
        describe(&b)
    );
    let a = gw.get("/two-hosts/", "a.example.com").await;
    assert_eq!(a.status, 404, "{}", describe(&a));

    for (path, location) in [
        ("/path-and-prefix/x", "http://other.example.com/by-path"),
        (
            "/prefix-and-regex/x/y",
            "http://other.example.com/by-prefix/x/y",
        ),
    ] {
        let reply = gw.get(path, "example.com").await;
        assert_eq!(
            (reply.status, reply.header("location")),
            (301, Some(location)),
            "GET {path}: {}",
            describe(&reply)
        );
    }
}

#[tokio::test]
async fn a_port_in_the_host_header_is_part_of_the_name_as_in_emissary() {
    // Emissary's issue #4791 and its `listeners/` unit testdata: a Host `quote.local:8500`
    // serves requests for `quote.local:8500` (and its Mappings must name the port too); a Host
    // `plain.local` does not serve `plain.local:8500`: Envoy matches virtual hosts on the whole
    // `Host`, port included, unless the Module asks to strip it. So a request with the port
    // gets 404 there, not the Host's insecure redirect.
    let hosts = "apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: quote, namespace: default}
spec: {hostname: \"quote.local:8500\", requestPolicy: {insecure: {action: Route}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: plain, namespace: default}
spec: {hostname: plain.local, requestPolicy: {insecure: {action: Redirect}}}
";
    let gw = Gateway::start_with_hosts(hosts).await;
    gw.write(
        "quote.yaml",
        &[
            mapping(
                "quote",
                "hostname: \"quote.local:8500\"\nprefix: /quote/\nservice: 127.0.0.1:1",
            ),
            mapping(
                "plain",
                "hostname: plain.local\nprefix: /plain/\nservice: 127.0.0.1:1",
            ),
        ]
        .concat(),
    );
    gw.wait_for_request(
        reqwest::Method::GET,
        "/quote/",
        "quote.local:8500",
        &[],
        "quote.local:8500 to be routed",
        |r| r.status == 503,
    )
    .await;
    for (host, path, status) in [
        ("quote.local", "/quote/", 404),
        ("plain.local:8500", "/plain/", 404),
        ("plain.local", "/plain/", 301),
    ] {
        let reply = gw.get(path, host).await;
        assert_eq!(reply.status, status, "Host: {host}: {}", describe(&reply));
    }
}

#[test]
fn mappings_attached_to_different_hosts_by_labels_are_not_one_canary_group() {
    // Emissary's fix for #4152 (irhttpmappinggroup / IRHTTPMapping's group id): a Mapping without
    // a hostname is grouped by the matchLabels of the Host selectors that pick it too. So
    // `/orders/` for Host a and `/orders/` for Host b stay two routes, each on its own Host,
    // while a Mapping differing only in labels no selector reads joins its group as a canary.
    let selector_host = |name: &str| {
        format!(
            "---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {{name: {name}, namespace: default}}
spec:
  hostname: {name}.example.com
  mappingSelector: {{matchLabels: {{host: {name}}}}}
  requestPolicy: {{insecure: {{action: Route}}}}
"
        )
    };
    let labelled = |name: &str, labels: &str, service: &str| {
        format!(
            "---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: {name}, namespace: default, labels: {{{labels}}}}}
spec: {{prefix: /orders/, service: {service}}}
"
        )
    };
    let yaml = [
        "apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http, namespace: default}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
",
        &selector_host("a"),
        &selector_host("b"),
        &labelled("orders-a", "host: a", "orders-a"),
        &labelled("orders-a-next", "host: a, version: next", "orders-a-next"),
        &labelled("orders-b", "host: b", "orders-b"),
    ]
    .concat();
    let ir = ir_in("default", &yaml);
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    let vhosts: Vec<(String, Vec<Served>)> = ir.listeners[0]
        .virtual_hosts
        .iter()
        .map(|v| {
            let mut routes: Vec<Served> = v
                .routes
                .iter()
                .map(|r| (r.route.source.name.clone(), r.route.fraction))
                .collect();
            routes.dedup();
            (v.domains.join(","), routes)
        })
        .collect();
    assert_eq!(
        vhosts,
        [
            (
                "a.example.com".to_owned(),
                vec![
                    ("orders-a".to_owned(), Some(50)),
                    ("orders-a-next".to_owned(), Some(100))
                ]
            ),
            (
                "b.example.com".to_owned(),
                vec![("orders-b".to_owned(), None)]
            ),
        ]
    );
}
