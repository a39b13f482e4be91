//! Which AuthService checks which route, and what an AuthService that cannot be used says:
//! resources in, IR out.

use legate_crds::loader::load_str;
use pretty_assertions::assert_eq;

use super::{AuthFilter, DEFAULT_FILTER, RouteAuth, Transport};
use crate::ir::{self, Ir, Reason, Settings};

const LISTENER: &str = "---
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http, namespace: default}
spec: {port: 8080, protocol: HTTP, securityModel: INSECURE, hostBinding: {namespace: {from: ALL}}}
";

fn auth_service(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: AuthService\n\
         metadata: {{name: {name}, namespace: {namespace}}}\nspec: {{{spec}}}\n"
    )
}

fn mapping(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
         metadata: {{name: {name}, namespace: default}}\n\
         spec: {{hostname: \"*\", prefix: /{name}/, service: {name}, {spec}}}\n"
    )
}

fn build(docs: &[String]) -> Ir {
    let yaml = [LISTENER.to_owned()]
        .into_iter()
        .chain(docs.iter().cloned())
        .collect::<String>();
    let loaded = load_str("test.yaml", &yaml).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    ir::build(&loaded.resources, &Settings::default())
}

/// Each served route's Mapping name and how it is checked.
fn checks(ir: &Ir) -> Vec<(String, RouteAuth)> {
    let mut out: Vec<(String, RouteAuth)> = ir.listeners[0]
        .virtual_hosts
        .iter()
        .flat_map(|v| &v.routes)
        .map(|s| (s.route.source.name.clone(), s.route.auth.clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup();
    out
}

fn filters(ir: &Ir) -> Vec<AuthFilter> {
    ir.listeners[0].auth.iter().map(|f| (**f).clone()).collect()
}

/// The rejections of `kind`, as `(name, reason, message)`.
fn refused(ir: &Ir, kind: &str) -> Vec<(String, Reason, String)> {
    ir.rejections
        .iter()
        .filter(|r| r.object.kind == kind)
        .map(|r| (r.object.name.clone(), r.reason, r.message.clone()))
        .collect()
}

#[test]
fn every_route_is_checked_by_the_default_auth_service_unless_it_bypasses_or_redirects() {
    let ir = build(&[
        auth_service("default", "auth", "auth_service: auth:3000"),
        mapping("plain", ""),
        mapping("context", "auth_context_extensions: {team: a}"),
        mapping("open", "bypass_auth: true"),
        mapping("moved", "host_redirect: true"),
    ]);
    assert!(ir.rejections.is_empty(), "{:#?}", ir.rejections);
    assert_eq!(
        checks(&ir),
        vec![
            (
                "context".into(),
                RouteAuth::Default([("team".into(), "a".into())].into())
            ),
            ("moved".into(), RouteAuth::Bypass),
            ("open".into(), RouteAuth::Bypass),
            ("plain".into(), RouteAuth::Default(Default::default())),
        ]
    );
    let f = &filters(&ir)[0];
    assert_eq!((f.name.as_str(), f.opt_in), (DEFAULT_FILTER, false));
    assert_eq!(f.timeout, std::time::Duration::from_millis(5000));
    // Emissary's defaults: deny when the service fails, with Envoy's 403.
    assert_eq!((f.failure_mode_allow, f.status_on_error), (false, None));
    let Transport::Http {
        uri,
        allowed_request_headers,
        ..
    } = &f.transport
    else {
        panic!("an HTTP AuthService: {f:?}");
    };
    assert_eq!(uri, "http://auth:3000");
    assert!(allowed_request_headers.contains(&"authorization".to_owned()));
}

#[test]
fn without_an_auth_service_nothing_is_checked() {
    let ir = build(&[mapping("plain", ""), mapping("open", "bypass_auth: true")]);
    assert!(ir.listeners[0].auth.is_empty());
    assert!(checks(&ir).iter().all(|(_, a)| *a == RouteAuth::None));
}

#[test]
fn of_two_default_auth_services_the_one_in_the_gateways_namespace_wins() {
    let ir = build(&[
        auth_service("team-a", "auth", "auth_service: a:3000"),
        auth_service("default", "zz-auth", "auth_service: b:3000"),
        mapping("plain", ""),
    ]);
    assert_eq!(filters(&ir).len(), 1);
    assert_eq!(filters(&ir)[0].source.name, "zz-auth");
    let lost = refused(&ir, "AuthService");
    assert_eq!(lost.len(), 1);
    assert_eq!((lost[0].0.as_str(), lost[0].1), ("auth", Reason::Conflict));
    assert!(
        lost[0]
            .2
            .contains("AuthService default/zz-auth is the gateway's default AuthService"),
        "{}",
        lost[0].2
    );
    assert!(lost[0].2.contains("opt_in: true"), "{}", lost[0].2);
}

#[test]
fn a_mapping_names_an_opt_in_auth_service_or_is_refused() {
    let ir = build(&[
        auth_service("default", "auth", "auth_service: auth:3000"),
        auth_service(
            "default",
            "strict",
            "auth_service: strict:50051, proto: grpc, protocol_version: v3, opt_in: true",
        ),
        mapping("plain", ""),
        mapping("payments", "auth_service_ref: {name: strict}"),
        mapping(
            "named-default",
            "auth_service_ref: {name: auth, namespace: default}",
        ),
        mapping("typo", "auth_service_ref: {name: strikt}"),
    ]);
    let strict = format!("{DEFAULT_FILTER}/default/strict");
    assert_eq!(
        checks(&ir),
        vec![
            (
                "named-default".into(),
                RouteAuth::Default(Default::default())
            ),
            (
                "payments".into(),
                RouteAuth::Only {
                    filter: strict.clone(),
                    context_extensions: Default::default()
                }
            ),
            ("plain".into(), RouteAuth::Default(Default::default())),
        ]
    );
    let names: Vec<(String, bool)> = filters(&ir)
        .into_iter()
        .map(|f| (f.name, f.opt_in))
        .collect();
    assert_eq!(
        names,
        vec![(DEFAULT_FILTER.to_owned(), false), (strict, true)]
    );
    let typo = refused(&ir, "Mapping");
    assert_eq!(typo.len(), 1);
    assert_eq!(
        (typo[0].0.as_str(), typo[0].1),
        ("typo", Reason::AuthServiceNotFound)
    );
    assert!(
        typo[0]
            .2
            .starts_with("auth_service_ref: this gateway uses no AuthService default/strikt")
    );
}

#[test]
fn with_only_opt_in_auth_services_a_mapping_that_names_none_is_not_checked() {
    let ir = build(&[
        auth_service(
            "default",
            "strict",
            "auth_service: strict:3000, opt_in: true",
        ),
        mapping("plain", ""),
    ]);
    assert_eq!(checks(&ir), vec![("plain".into(), RouteAuth::Bypass)]);
}

#[test]
fn an_auth_service_that_cannot_be_used_is_refused_naming_the_field_and_still_guards() {
    // (A gRPC one without `protocol_version: v3` is refused by its schema, before the IR.)
    for (spec, reason, message) in [
        (
            "auth_service: \"http://auth:port\"",
            Reason::Invalid,
            "auth_service: ",
        ),
        (
            "auth_service: auth:3000, path_prefix: extauth",
            Reason::Invalid,
            "path_prefix \"extauth\": must start with /",
        ),
        (
            "auth_service: auth:3000, status_on_error: {code: 299}",
            Reason::Invalid,
            "status_on_error.code: 299 is not an HTTP status code",
        ),
        (
            "auth_service: auth:3000, allowed_request_headers: [\"bad header\"]",
            Reason::Invalid,
            "allowed_request_headers[0]",
        ),
        (
            "auth_service: auth:3000, add_auth_headers: {x-a: \"a\\nb\"}",
            Reason::Invalid,
            "add_auth_headers.x-a",
        ),
        (
            "auth_service: auth:3000, tls: missing",
            Reason::SecretNotFound,
            "TLSContext default/missing not found",
        ),
    ] {
        let ir = build(&[auth_service("default", "auth", spec), mapping("plain", "")]);
        let refusals = refused(&ir, "AuthService");
        assert_eq!(refusals.len(), 1, "{spec}: {refusals:#?}");
        let (_, got, text) = &refusals[0];
        assert_eq!(*got, reason, "{spec}: {text}");
        assert!(text.contains(message), "{spec}: {text}");
        assert!(
            text.ends_with(
                "denied with status 403, as when the service is down (failure_mode_allow: false)"
            ),
            "{spec}: {text}"
        );
        // Its routes are still checked, by a filter whose service never answers.
        assert_eq!(
            checks(&ir),
            vec![("plain".into(), RouteAuth::Default(Default::default()))]
        );
        let cluster = &ir.clusters[&filters(&ir)[0].cluster];
        assert!(
            cluster
                .service
                .as_ref()
                .is_some_and(|s| s.port_name.is_none()),
            "{cluster:?}"
        );
    }
}

#[test]
fn an_auth_service_naming_a_kubernetes_service_is_served_from_its_endpoints() {
    let service = "---
apiVersion: v1
kind: Service
metadata: {name: auth, namespace: default}
spec: {ports: [{name: http, port: 3000, targetPort: 8080}]}
";
    let ir = build(&[
        service.to_owned(),
        auth_service("default", "auth", "auth_service: auth:3000"),
        mapping("plain", ""),
    ]);
    let f = &filters(&ir)[0];
    let cluster = &ir.clusters[&f.cluster];
    assert_eq!(
        cluster.service.as_ref().map(|s| s.name.as_str()),
        Some("auth")
    );
    // No ready endpoint yet: its status says so.
    let notes: Vec<_> = ir
        .unreachable
        .iter()
        .filter(|r| r.object.kind == "AuthService")
        .map(|r| r.reason)
        .collect();
    assert_eq!(notes, vec![Reason::NoReadyEndpoints]);
}
