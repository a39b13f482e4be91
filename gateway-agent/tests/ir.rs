//! The IR's rules, each as a scenario: resources in YAML, then what the gateway serves.
//! Semantics are Emissary's (EMISSARY.md §1–2) unless a test says otherwise.

use std::time::Duration;

use legate_agent::ir::{
    self, Ir, PathMatch, Reason, Route, RouteAction, ServedRoute, Settings, StringMatch, Variant,
};

/// A plain HTTP listener on 8080 (XFP, as Emissary's examples) and the resources given.
const LISTENER: &str = "
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http, namespace: default}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
";

fn ir(yaml: &str) -> Ir {
    ir_with(yaml, &Settings::default())
}

fn ir_with(yaml: &str, settings: &Settings) -> Ir {
    let loaded = legate_crds::loader::load_str("test.yaml", yaml).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    ir::build(&loaded.resources, settings)
}

fn mapping(name: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  hostname: \"*\"\n{extra}\n"
    )
}

/// The routes of the only virtual host of the only listener, as (mapping name, share).
fn routes(ir: &Ir) -> Vec<(String, Option<u32>)> {
    only_vhost(ir)
        .routes
        .iter()
        .filter(|r| r.variant != Some(Variant::Secure))
        .map(|r| (r.route.source.name.clone(), r.route.fraction))
        .collect()
}

fn only_vhost(ir: &Ir) -> &ir::VirtualHost {
    assert_eq!(ir.listeners.len(), 1, "{:#?}", ir.listeners);
    assert_eq!(ir.listeners[0].virtual_hosts.len(), 1);
    &ir.listeners[0].virtual_hosts[0]
}

/// The route as an insecure request meets it.
fn insecure_served<'a>(ir: &'a Ir, name: &str) -> &'a ServedRoute {
    only_vhost(ir)
        .routes
        .iter()
        .find(|r| r.route.source.name == name && r.variant != Some(Variant::Secure))
        .unwrap()
}

fn insecure_route<'a>(ir: &'a Ir, name: &str) -> &'a Route {
    &insecure_served(ir, name).route
}

fn forward(route: &Route) -> &ir::mapping::Forward {
    match &route.action {
        RouteAction::Forward(f) => f,
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn rejected(ir: &Ir) -> Vec<(String, String)> {
    ir.rejections
        .iter()
        .map(|r| (r.object.name.clone(), r.message.clone()))
        .collect()
}

#[test]
fn canary_weights_are_cumulative_in_group_order() {
    // Emissary's TestWeightWithCache: bar weight 10, foo unweighted → bar 10, then foo 100.
    let yaml = [
        LISTENER.to_owned(),
        mapping("foo", "  prefix: /svc/\n  service: foo"),
        mapping("bar", "  prefix: /svc/\n  service: bar\n  weight: 10"),
    ]
    .concat();
    assert_eq!(
        routes(&ir(&yaml)),
        vec![("bar".into(), Some(10)), ("foo".into(), Some(100))]
    );
}

#[test]
fn unweighted_members_share_the_remainder_and_a_lone_mapping_gets_everything() {
    let yaml = [
        LISTENER.to_owned(),
        mapping("a", "  prefix: /three/\n  service: a\n  weight: 40"),
        mapping("b", "  prefix: /three/\n  service: b"),
        mapping("c", "  prefix: /three/\n  service: c"),
        mapping("alone", "  prefix: /alone/\n  service: alone\n  weight: 30"),
    ]
    .concat();
    assert_eq!(
        routes(&ir(&yaml)),
        vec![
            ("a".into(), Some(40)),
            ("b".into(), Some(70)),
            ("c".into(), Some(100)),
            ("alone".into(), None)
        ]
    );
}

#[test]
fn a_weight_total_over_100_rejects_the_mapping_that_crosses_it() {
    let yaml = [
        LISTENER.to_owned(),
        mapping("first", "  prefix: /w/\n  service: first\n  weight: 70"),
        mapping("second", "  prefix: /w/\n  service: second\n  weight: 50"),
        mapping("rest", "  prefix: /w/\n  service: rest"),
    ]
    .concat();
    let ir = ir(&yaml);
    assert_eq!(
        rejected(&ir),
        vec![(
            "second".into(),
            "weight 50 takes its group's total to 120 (over 100)".into()
        )]
    );
    assert_eq!(
        routes(&ir),
        vec![("first".into(), Some(70)), ("rest".into(), Some(100))]
    );
}

#[test]
fn routes_are_ordered_by_precedence_then_prefix_length() {
    let yaml = [
        LISTENER.to_owned(),
        mapping("root", "  prefix: /\n  service: root"),
        mapping("long", "  prefix: /api/v1/users/\n  service: users"),
        mapping("short", "  prefix: /api/\n  service: api"),
        mapping("urgent", "  prefix: /z/\n  service: z\n  precedence: 10"),
        mapping(
            "with-header",
            "  prefix: /api/\n  service: beta\n  headers: {x-beta: \"1\"}",
        ),
    ]
    .concat();
    let names: Vec<String> = routes(&ir(&yaml)).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["urgent", "long", "with-header", "short", "root"]);
}

#[test]
fn ambassador_id_filters_resources_absent_meaning_default() {
    let yaml = [
        LISTENER.to_owned(),
        mapping(
            "mine",
            "  prefix: /mine/\n  service: mine\n  ambassador_id: [blue, green]",
        ),
        mapping(
            "theirs",
            "  prefix: /theirs/\n  service: theirs\n  ambassador_id: [red]",
        ),
        mapping("default", "  prefix: /default/\n  service: default"),
    ]
    .concat();
    let blue = Settings {
        ambassador_id: "blue".into(),
        ..Settings::default()
    };
    // The Listener has no ambassador_id, so only a `default` agent serves it.
    assert!(ir_with(&yaml, &blue).listeners.is_empty());
    let yaml_blue = yaml.replace("hostBinding:", "ambassador_id: [blue], hostBinding:");
    let names: Vec<String> = routes(&ir_with(&yaml_blue, &blue))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["mine"]);
    let names: Vec<String> = routes(&ir(&yaml)).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["default"]);
}

#[test]
fn mappings_bind_to_hosts_by_the_strict_association_table() {
    let yaml = [
        LISTENER.to_owned(),
        "---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: api, namespace: default}
spec: {hostname: api.example.com, requestPolicy: {insecure: {action: Route}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: selected, namespace: default}
spec:
  hostname: \"*.shop.example.com\"
  requestPolicy: {insecure: {action: Route}}
  mappingSelector:
    matchLabels: {team: shop}
    matchExpressions: [{key: tier, operator: NotIn, values: [internal]}]
"
        .to_owned(),
        // glob match, no selector on the Host: admitted
        mapping("by-name", "  prefix: /a/\n  service: a").replace("\"*\"", "api.example.com"),
        // Host with selector + Mapping with hostname: both must match
        mapping("shop-both", "  prefix: /b/\n  service: b").replace("\"*\"", "www.shop.example.com").replace("namespace: default}", "namespace: default, labels: {team: shop}}"),
        // selector matches but matchExpressions exclude it (Emissary would ignore the expression)
        mapping("internal", "  prefix: /c/\n  service: c").replace("\"*\"", "www.shop.example.com").replace("namespace: default}", "namespace: default, labels: {team: shop, tier: internal}}"),
        // no hostname and no selector picks it: never
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: nowhere, namespace: default}\nspec: {prefix: /d/, service: d}\n".to_owned(),
    ]
    .concat();
    let ir = ir(&yaml);
    let vhost = |domain: &str| -> Vec<String> {
        let v = ir.listeners[0]
            .virtual_hosts
            .iter()
            .find(|v| v.domains == [domain])
            .unwrap();
        v.routes
            .iter()
            .filter(|r| r.variant != Some(Variant::Secure))
            .map(|r| r.route.source.name.clone())
            .collect()
    };
    assert_eq!(vhost("api.example.com"), ["by-name"]);
    assert_eq!(vhost("*.shop.example.com"), ["shop-both"]);
    let unreachable: Vec<(String, String)> = ir
        .unreachable
        .iter()
        .map(|r| (r.object.name.clone(), r.message.clone()))
        .collect();
    assert_eq!(
        unreachable,
        vec![
            ("internal".into(), "no Host admits hostname \"www.shop.example.com\" (Hosts: *.shop.example.com, api.example.com)".into()),
            ("nowhere".into(), "no hostname, and no Host's mappingSelector selects it".into()),
        ]
    );
}

#[test]
fn without_hosts_a_default_host_routes_everything_in_cleartext() {
    let yaml = [
        LISTENER.to_owned(),
        mapping("m", "  prefix: /m/\n  service: m"),
    ]
    .concat();
    let ir = ir(&yaml);
    let vhost = only_vhost(&ir);
    assert_eq!(vhost.domains, ["*"]);
    // XFP, insecure requests routed: the route itself serves both (a secure copy would route
    // the same way).
    let kinds: Vec<(Option<Variant>, bool)> = vhost
        .routes
        .iter()
        .map(|r| (r.variant, r.forwards()))
        .collect();
    assert_eq!(kinds, [(None, true)]);
}

#[test]
fn insecure_requests_follow_the_host_action_with_the_acme_hole() {
    let host = |action: &str| {
        format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {{name: h, namespace: default}}\nspec: {{hostname: \"*\", requestPolicy: {{insecure: {{action: {action}}}}}}}\n"
        )
    };
    let mappings = [
        mapping("app", "  prefix: /app/\n  service: app"),
        mapping(
            "acme",
            "  prefix: /.well-known/acme-challenge/\n  service: acme",
        ),
    ]
    .concat();
    let redirect = ir(&[LISTENER, &host("Redirect"), &mappings].concat());
    assert_eq!(
        insecure_served(&redirect, "app").variant,
        Some(Variant::Redirect)
    );
    let acme = insecure_served(&redirect, "acme");
    assert!(acme.variant.is_none() && acme.forwards());

    let reject = ir(&[LISTENER, &host("Reject"), &mappings].concat());
    let insecure: Vec<String> = only_vhost(&reject)
        .routes
        .iter()
        .filter(|r| r.variant != Some(Variant::Secure))
        .map(|r| r.route.source.name.clone())
        .collect();
    assert_eq!(
        insecure,
        ["acme"],
        "Reject leaves no insecure route (404), except the ACME hole"
    );
}

#[test]
fn service_rewrite_and_timeout_defaults_are_emissarys() {
    let yaml = [
        LISTENER.to_owned(),
        mapping("default-rewrite", "  prefix: /one/\n  service: one"),
        mapping("keep-path", "  prefix: /two/\n  service: two\n  rewrite: \"\""),
        mapping("explicit", "  prefix: /three/\n  service: three:8080\n  rewrite: /v3/\n  timeout_ms: 10000"),
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: other-ns, namespace: team-a}\nspec: {hostname: \"*\", prefix: /four/, service: four}\n".to_owned(),
    ]
    .concat();
    let ir = ir(&yaml);
    let f = forward(insecure_route(&ir, "default-rewrite"));
    assert_eq!(
        (f.prefix_rewrite.as_deref(), f.timeout),
        (Some("/"), Duration::from_millis(3000))
    );
    assert_eq!(
        forward(insecure_route(&ir, "keep-path")).prefix_rewrite,
        None
    );
    let f = forward(insecure_route(&ir, "explicit"));
    assert_eq!(
        (f.prefix_rewrite.as_deref(), f.timeout),
        (Some("/v3/"), Duration::from_secs(10))
    );
    // An unqualified service in another namespace resolves in the Mapping's namespace.
    let cluster = &ir.clusters[&forward(insecure_route(&ir, "other-ns")).cluster];
    assert_eq!((cluster.host.as_str(), cluster.port), ("four.team-a", 80));
}

#[test]
fn an_invalid_mapping_is_rejected_alone_and_its_neighbours_keep_serving() {
    let yaml = [
        LISTENER.to_owned(),
        mapping("good", "  prefix: /good/\n  service: good"),
        mapping(
            "bad-regex",
            "  prefix: \"/users/([0-9+\"\n  prefix_regex: true\n  service: users",
        ),
        mapping("bad-service", "  prefix: /ftp/\n  service: ftp://files"),
    ]
    .concat();
    let ir = ir(&yaml);
    let reasons = rejected(&ir);
    assert_eq!(reasons.len(), 2, "{reasons:#?}");
    assert!(
        reasons[0].0 == "bad-regex"
            && reasons[0]
                .1
                .starts_with("prefix: invalid regular expression"),
        "{reasons:#?}"
    );
    assert_eq!(
        reasons[1],
        (
            "bad-service".into(),
            "service \"ftp://files\": scheme \"ftp\" is not http or https".into()
        )
    );
    assert_eq!(routes(&ir), vec![("good".into(), None)]);
}

#[test]
fn another_namespace_cannot_join_a_route_group() {
    let yaml = [
        LISTENER.to_owned(),
        mapping("quote", "  prefix: /quote/\n  service: quote")
            .replace("namespace: default", "namespace: team-a"),
        mapping("siphon", "  prefix: /quote/\n  service: evil\n  weight: 90")
            .replace("namespace: default", "namespace: team-b"),
    ]
    .concat();
    let ir = ir(&yaml);
    assert_eq!(routes(&ir), vec![("quote".into(), None)]);
    assert_eq!(
        rejected(&ir),
        vec![(
            "siphon".into(),
            "route conflict: Mapping team-a/quote already serves this match (prefix /quote/, hostname *); a route group never mixes namespaces".into()
        )]
    );
}

#[test]
fn matching_details_reach_the_route() {
    let yaml = [
        LISTENER.to_owned(),
        mapping(
            "detailed",
            "  prefix: /items/
  prefix_exact: true
  case_sensitive: false
  method: POST
  headers: {x-tenant: acme}
  regex_headers: {x-user: \"^[0-9]+$\"}
  query_parameters: {debug: \"1\"}
  service: items",
        ),
    ]
    .concat();
    let ir = ir(&yaml);
    let r = insecure_route(&ir, "detailed");
    assert_eq!(r.path, PathMatch::Exact("/items/".into()));
    assert!(!r.case_sensitive);
    let headers: Vec<(&str, &StringMatch)> = r
        .headers
        .iter()
        .map(|h| (h.name.as_str(), &h.value))
        .collect();
    assert_eq!(
        headers,
        [
            (":method", &StringMatch::Exact("POST".into())),
            ("x-tenant", &StringMatch::Exact("acme".into())),
            ("x-user", &StringMatch::Regex("^[0-9]+$".into())),
        ]
    );
    assert_eq!(r.query[0].name, "debug");
}

#[test]
fn no_listener_means_nothing_is_served_and_every_mapping_says_so() {
    let ir = ir(&mapping("m", "  prefix: /m/\n  service: m"));
    assert!(ir.listeners.is_empty());
    assert_eq!(ir.unreachable[0].reason, Reason::NoListener);
    assert_eq!(
        ir.unreachable[0].message,
        "no Listener: define an HTTP Listener for Mappings to be served"
    );
}

#[test]
fn what_envoy_would_refuse_is_refused_here_naming_the_field() {
    let yaml = [
        LISTENER.to_owned(),
        mapping("good", "  prefix: /good/\n  service: good"),
        mapping(
            "huge-regex",
            "  prefix: \"^/bad/[a-z]{1000}$\"\n  prefix_regex: true\n  service: bad",
        ),
        mapping(
            "pseudo-header",
            "  prefix: /p/\n  service: p\n  add_request_headers: {\":path\": /elsewhere}",
        ),
        mapping(
            "host-header",
            "  prefix: /h/\n  service: h\n  remove_request_headers: [Host]",
        ),
        mapping(
            "bad-name",
            "  prefix: /n/\n  service: names\n  add_response_headers: {\"x bad\": v}",
        ),
        mapping(
            "small-regex",
            "  prefix: \"^/api/v[0-9]+/users/[^/]+/.*$\"\n  prefix_regex: true\n  service: api",
        ),
    ]
    .concat();
    let ir = ir(&yaml);
    let reasons = rejected(&ir);
    assert_eq!(reasons.len(), 4, "{reasons:#?}");
    let reason = |name: &str| {
        reasons
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.as_str())
            .unwrap()
    };
    assert!(
        reason("huge-regex").starts_with(
            "prefix: regular expression \"^/bad/[a-z]{1000}$\" is too large (about 10"
        ),
        "{reasons:#?}"
    );
    assert_eq!(
        reason("pseudo-header"),
        "add_request_headers: \":path\" cannot be added or removed; use host_rewrite or rewrite for the host and path"
    );
    assert!(
        reason("host-header")
            .starts_with("remove_request_headers: \"Host\" cannot be added or removed")
    );
    assert_eq!(
        reason("bad-name"),
        "add_response_headers: \"x bad\" is not a valid header name"
    );
    let names: Vec<String> = routes(&ir).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["small-regex", "good"]);
}

#[test]
fn host_names_compare_case_insensitively() {
    let yaml = [
        LISTENER.to_owned(),
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: api, namespace: default}\nspec: {hostname: API.Example.com}\n".to_owned(),
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: api-again, namespace: default}\nspec: {hostname: api.example.COM}\n".to_owned(),
        mapping("m", "  prefix: /m/\n  service: m").replace("\"*\"", "api.EXAMPLE.com"),
    ]
    .concat();
    let ir = ir(&yaml);
    assert_eq!(only_vhost(&ir).domains, ["api.example.com"]);
    assert_eq!(routes(&ir), vec![("m".into(), None)]);
    assert_eq!(
        rejected(&ir),
        vec![(
            "api-again".into(),
            "hostname \"api.example.com\" is already served by Host default/api".into()
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// TLS termination

/// An HTTPS listener on 8443 beside the HTTP one on 8080.
const HTTPS_LISTENER: &str = "
---
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: https, namespace: default}
spec: {port: 8443, protocol: HTTPS, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
";

/// A `kubernetes.io/tls` Secret with a fresh self-signed certificate, as `stringData`.
fn tls_secret(namespace: &str, name: &str) -> String {
    let c = rcgen::generate_simple_self_signed(vec!["example.com".to_owned()]).unwrap();
    let indent = |t: String| t.trim_end().replace('\n', "\n    ");
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n    {}\n  tls.key: |\n    {}\n",
        indent(c.cert.pem()),
        indent(c.signing_key.serialize_pem())
    )
}

fn tls_host(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
    )
}

fn listener(ir: &Ir, port: u16) -> &ir::Listener {
    ir.listeners.iter().find(|l| l.port == port).unwrap()
}

#[test]
fn a_tls_host_gets_an_sni_chain_on_tls_listeners_with_its_context_settings() {
    let yaml = [
        LISTENER,
        HTTPS_LISTENER,
        &tls_secret("default", "tls-a"),
        &tls_host(
            "a",
            "{hostname: a.example.com, tlsSecret: {name: tls-a}, tlsContext: {name: modern}}",
        ),
        "---\napiVersion: getambassador.io/v3alpha1\nkind: TLSContext\nmetadata: {name: modern, namespace: default}\n\
         spec: {secret: tls-a, min_tls_version: v1.2, alpn_protocols: \"h2, http/1.1\", cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]}\n",
        &mapping("m", "  prefix: /\n  service: up"),
    ]
    .concat();
    let ir = ir(&yaml);
    assert_eq!(rejected(&ir), vec![]);
    assert!(ir.unreachable.is_empty(), "{:#?}", ir.unreachable);
    assert!(
        listener(&ir, 8080).tls_chains.is_empty(),
        "HTTP listeners terminate no TLS"
    );
    let https = listener(&ir, 8443);
    let [chain] = https.tls_chains.as_slice() else {
        panic!("{:#?}", https.tls_chains)
    };
    assert_eq!(chain.name, "listener-8443-tls-a.example.com");
    assert_eq!(chain.server_names, vec!["a.example.com".to_owned()]);
    assert_eq!(
        chain.tls,
        ir::DownstreamTls {
            certificate: "default/tls-a".into(),
            min_version: Some(legate_crds::tls_context::TlsVersion::V1_2),
            cipher_suites: vec!["ECDHE-RSA-AES128-GCM-SHA256".into()],
            alpn_protocols: vec!["h2".into(), "http/1.1".into()],
            ..Default::default()
        }
    );
    // The chain serves the Host's own virtual host, the same routes as in cleartext.
    assert_eq!(chain.virtual_hosts, https.virtual_hosts);
    assert_eq!(
        ir.certificates.keys().collect::<Vec<_>>(),
        vec!["default/tls-a"]
    );
    assert_eq!(
        ir.certificates["default/tls-a"].source.to_string(),
        "Secret default/tls-a"
    );
}

#[test]
fn a_star_host_with_inline_tls_matches_any_sni() {
    let yaml = [
        HTTPS_LISTENER,
        &tls_secret("default", "tls-any"),
        &tls_host(
            "any",
            "{hostname: \"*\", tlsSecret: {name: tls-any}, tls: {max_tls_version: v1.2}}",
        ),
    ]
    .concat();
    let ir = ir(&yaml);
    assert_eq!(rejected(&ir), vec![]);
    let chain = &listener(&ir, 8443).tls_chains[0];
    assert_eq!(
        (chain.name.as_str(), chain.server_names.len()),
        ("listener-8443-tls-*", 0)
    );
    assert_eq!(
        chain.tls.max_version,
        Some(legate_crds::tls_context::TlsVersion::V1_2)
    );
}

#[test]
fn a_host_whose_tls_cannot_be_served_keeps_its_cleartext_side_and_says_why() {
    let context = |name: &str, spec: &str| {
        format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: TLSContext\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
        )
    };
    let cases = [
        (
            "{hostname: a.example.com, tlsSecret: {name: nowhere}}",
            "tlsSecret: Secret default/nowhere not found",
        ),
        (
            "{hostname: a.example.com, tlsSecret: {name: tls-o, namespace: other}}",
            "tlsSecret: Secret other/tls-o is in another namespace; a Host may use Secrets of its own namespace (default) only, and Legate has no cross-namespace delegation",
        ),
        (
            "{hostname: a.example.com, tlsContext: {name: elsewhere}}",
            "tlsSecret: Secret other/tls-o is in another namespace",
        ),
        (
            "{hostname: a.example.com, tlsSecret: {name: tls-a}, tlsContext: {name: other-secret}}",
            "tlsContext: TLSContext default/other-secret uses Secret default/tls-b, not the Host's tlsSecret default/tls-a",
        ),
        (
            "{hostname: a.example.com, tlsContext: {name: missing}}",
            "tlsContext: TLSContext default/missing not found",
        ),
        (
            "{hostname: a.example.com, tls: {cert_chain_file: /c.pem, private_key_file: /k.pem}}",
            "cert_chain_file/private_key_file: keys reach Envoy over SDS only",
        ),
        // Client certificates (ir/client_certs.rs).
        (
            "{hostname: a.example.com, tlsSecret: {name: tls-a}, tls: {ca_secret: ca}}",
            "ca_secret: Secret default/ca not found",
        ),
        (
            "{hostname: a.example.com, tlsSecret: {name: tls-a}, tls: {ca_secret: tls-o.other}}",
            "ca_secret: Secret other/tls-o is in another namespace",
        ),
        (
            "{hostname: a.example.com, tlsSecret: {name: tls-a}, tls: {crl_secret: tls-b}}",
            "crl_secret: a CRL needs the CA whose certificates it revokes: set ca_secret too",
        ),
        (
            "{hostname: a.example.com, tlsSecret: {name: tls-a}, tls: {cert_required: true}}",
            "cert_required: needs ca_secret",
        ),
        (
            "{hostname: a.example.com, tlsSecret: {name: tls-a}, tls: {ca_secret: tls-b, crl_secret: tls-b}}",
            "crl_secret: Secret default/tls-b has no crl.pem",
        ),
        (
            "{hostname: a.example.com, tlsSecret: {name: tls-a}, tls: {cacert_chain_file: /ca.pem}}",
            "cacert_chain_file: CA certificates reach Envoy over SDS only, never through files",
        ),
        (
            "{hostname: a.example.com, tls: {min_tls_version: v1.2}}",
            "no certificate: set tlsSecret",
        ),
        (
            "{hostname: \"api.*\", tlsSecret: {name: tls-a}}",
            "hostname \"api.*\": SNI can match",
        ),
    ];
    for (spec, reason) in cases {
        let yaml = [
            HTTPS_LISTENER,
            &tls_secret("default", "tls-a"),
            &tls_secret("default", "tls-b"),
            &tls_secret("other", "tls-o"),
            &context("elsewhere", "{secret: tls-o.other}"),
            &context("other-secret", "{secret: tls-b}"),
            &tls_host("a", spec),
        ]
        .concat();
        let ir = ir(&yaml);
        let prefix = "TLS is not served, the Host answers cleartext only: ";
        let reasons = rejected(&ir);
        assert!(
            reasons.len() == 1
                && reasons[0].0 == "a"
                && reasons[0].1.starts_with(&format!("{prefix}{reason}")),
            "{spec}: {reasons:#?}"
        );
        let l = listener(&ir, 8443);
        assert!(
            l.tls_chains.is_empty()
                && ir.certificates.is_empty()
                && ir.validation_contexts.is_empty(),
            "{spec}"
        );
        assert_eq!(l.virtual_hosts.len(), 1, "{spec}: the cleartext side stays");
    }
}

#[test]
fn hosts_with_one_sni_share_a_chain_only_with_the_same_tls() {
    let two = |second_secret: &str| {
        [
            HTTPS_LISTENER,
            &tls_secret("default", "tls-a"),
            &tls_secret("default", "tls-b"),
            &tls_host("a", "{hostname: a.example.com, tlsSecret: {name: tls-a}}"),
            &tls_host(
                "a-port",
                &format!(
                    "{{hostname: \"a.example.com:8443\", tlsSecret: {{name: {second_secret}}}}}"
                ),
            ),
        ]
        .concat()
    };
    let shared = ir(&two("tls-a"));
    assert_eq!(rejected(&shared), vec![]);
    let chains = &listener(&shared, 8443).tls_chains;
    assert_eq!(chains.len(), 1);
    assert_eq!(chains[0].virtual_hosts.len(), 2);

    let ir = ir(&two("tls-b"));
    assert_eq!(
        rejected(&ir),
        vec![(
            "a-port".into(),
            "TLS is not served, the Host answers cleartext only: SNI \"a.example.com\" is already terminated on port 8443 with other TLS settings".into()
        )]
    );
    assert_eq!(listener(&ir, 8443).tls_chains[0].virtual_hosts.len(), 1);
}

#[test]
fn a_host_can_admit_only_its_own_namespaces_mappings_and_the_others_say_which_host_refused() {
    let yaml = [
        LISTENER,
        "---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: shop, namespace: team-a}
spec:
  hostname: shop.example.com
  mappingNamespaces: {from: Same}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: cart, namespace: team-a}
spec: {hostname: shop.example.com, prefix: /cart/, service: cart}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: sneaky, namespace: team-b}
spec: {hostname: shop.example.com, prefix: /checkout/, service: evil}
",
    ]
    .concat();
    let ir = ir(&yaml);
    assert_eq!(
        only_vhost(&ir)
            .routes
            .iter()
            .filter(|r| r.variant != Some(Variant::Secure))
            .map(|r| r.route.source.name.as_str())
            .collect::<Vec<_>>(),
        ["cart"]
    );
    let refused = &ir.unreachable[0];
    assert_eq!(refused.object.name, "sneaky");
    assert_eq!(refused.reason, Reason::NotAllowedByHost);
    assert_eq!(
        refused.message,
        "Host team-a/shop admits Mappings of its own namespace only (mappingNamespaces.from: Same)"
    );
}

#[test]
fn without_mapping_namespaces_a_host_admits_every_namespace_as_in_emissary() {
    let yaml = [
        LISTENER,
        "---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: shop, namespace: team-a}
spec: {hostname: shop.example.com}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: other, namespace: team-b}
spec: {hostname: shop.example.com, prefix: /other/, service: other}
",
    ]
    .concat();
    let ir = ir(&yaml);
    assert!(ir.unreachable.is_empty(), "{:?}", ir.unreachable);
    assert_eq!(routes(&ir), [("other".to_owned(), None)]);
}

#[test]
fn a_retry_timeout_no_duration_can_hold_refuses_its_mapping_alone_instead_of_panicking() {
    // Passes the schema's pattern; `Duration::from_secs_f64` panicked on it, on every start.
    let yaml = [
        LISTENER,
        &mapping(
            "forever",
            "  prefix: /forever/\n  service: forever\n  retry_policy: {per_try_timeout: 99999999999999999999h}",
        ),
        &mapping(
            "fine",
            "  prefix: /fine/\n  service: fine\n  retry_policy: {per_try_timeout: 1.5s}",
        ),
    ]
    .concat();
    let ir = ir(&yaml);
    assert_eq!(routes(&ir), [("fine".to_owned(), None)]);
    let refused = &ir.rejections[0];
    assert_eq!(
        (refused.object.name.as_str(), refused.reason),
        ("forever", Reason::Invalid)
    );
    assert_eq!(
        refused.message,
        "retry_policy.per_try_timeout: \"99999999999999999999h\" is out of range: at most \
         9223372035 seconds"
    );
}

/// An `Opaque` CA Secret (`tls.crt` only), as Emissary's documentation makes it.
fn ca_secret(name: &str) -> String {
    let c = rcgen::generate_simple_self_signed(vec!["ca.example.com".to_owned()]).unwrap();
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\n\
         type: Opaque\nstringData:\n  tls.crt: |\n    {}\n",
        c.cert.pem().trim_end().replace('\n', "\n    ")
    )
}

/// The CA is a validation context of its own, named by its Secret: a new CA in the same Secret
/// changes that context only, never the chain (so Envoy's listener stays as it is), and
/// `cert_required` is the chain's.
#[test]
fn a_client_ca_is_its_own_validation_context_and_rotating_it_leaves_the_chain_alone() {
    let with_ca = |ca: &str| {
        ir(&[
            HTTPS_LISTENER,
            &tls_secret("default", "tls-a"),
            ca,
            &tls_host(
                "a",
                "{hostname: a.example.com, tlsSecret: {name: tls-a}, tls: {ca_secret: client-ca, cert_required: true}}",
            ),
        ]
        .concat())
    };
    let (before, after) = (
        with_ca(&ca_secret("client-ca")),
        with_ca(&ca_secret("client-ca")),
    );
    assert_eq!(rejected(&before), vec![]);
    let client = listener(&before, 8443).tls_chains[0]
        .tls
        .client_certificates
        .clone();
    assert_eq!(
        client,
        Some(ir::ClientCertificates {
            validation: "ca:default/client-ca".into(),
            required: true
        })
    );
    let validation = &before.validation_contexts["ca:default/client-ca"];
    assert_eq!(validation.ca_source.to_string(), "Secret default/client-ca");
    assert!(
        validation
            .trusted_ca
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(
        listener(&before, 8443).tls_chains[0].tls,
        listener(&after, 8443).tls_chains[0].tls,
        "the chain names the CA, it does not hold it"
    );
    assert_ne!(before.validation_contexts, after.validation_contexts);
}
