//! CORS on the data path: real Envoy answers preflights and adds the `Access-Control-*` headers
//! as Emissary configures it (`python/ambassador/src/ambassador/ir/ircors.py`, `envoy/v3/
//! v3route.py`, `v3httpfilter.py` `V3HTTPFilter_cors`; its tests: `python/tests/src/tests/kat/
//! t_cors.py` `GlobalCORSTest` and `t_optiontests.py` `CORS`).
//!
//! Each test has its own gateway and waits for an answer only the configuration it wrote can
//! give before it asserts an absence, so a missing header never comes from a configuration that
//! has not arrived yet.

mod support;

use pretty_assertions::assert_eq;
use reqwest::Method;
use support::{
    Reply, Upstream, eventually,
    gateway::{self, Gateway, WAIT, describe, route, served_by},
};

/// The `ambassador` Module in the agent's namespace with `cors: {cors}`.
fn module(cors: &str) -> String {
    gateway::module(&format!("cors: {cors}"))
}

const ALLOW_ORIGIN: &str = "access-control-allow-origin";

/// A browser's preflight of a PUT from `origin`.
fn preflight(origin: &str) -> [(&str, &str); 3] {
    [
        ("origin", origin),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "content-type"),
    ]
}

/// Sends `method path` with `headers` until the answer allows `origin`, and returns it.
async fn wait_allowed(
    gw: &Gateway,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    origin: &str,
) -> Reply {
    let what = format!("{path} to allow the origin {origin}");
    gw.wait_for_request(method, path, "example.com", headers, &what, |r| {
        r.header(ALLOW_ORIGIN) == Some(origin)
    })
    .await
}

async fn get(gw: &Gateway, path: &str, origin: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
    gw.send(Method::GET, path, "example.com", &headers).await
}

const EVERY_FIELD: &str = "prefix: /api/
cors: {origins: [\"https://shop.example.com\"], methods: [GET, PUT], headers: [Content-Type, X-Requested-With], exposed_headers: [X-Trace-Id], credentials: true, max_age: \"600\"}";

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_by_envoy_and_never_reaches_the_upstream() {
    let gw = Gateway::start().await;
    let up = Upstream::start("api").await;
    gw.write("route.yaml", &route("api", &up, EVERY_FIELD));

    // Before the route arrives Envoy answers 404 itself: the upstream sees nothing either way.
    let origin = "https://shop.example.com";
    let answer = wait_allowed(
        &gw,
        Method::OPTIONS,
        "/api/items",
        &preflight(origin),
        origin,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", describe(&answer));
    assert_eq!(
        answer.upstream(),
        None,
        "Envoy's answer, not the upstream's"
    );
    // ircors.py: the lists joined with ", ", max_age and credentials as written.
    for (header, value) in [
        ("access-control-allow-methods", "GET, PUT"),
        (
            "access-control-allow-headers",
            "Content-Type, X-Requested-With",
        ),
        ("access-control-max-age", "600"),
        ("access-control-allow-credentials", "true"),
    ] {
        assert_eq!(answer.header(header), Some(value), "{header}");
    }
    assert_eq!(up.requests(), 0, "no preflight reached the upstream");

    // A preflight from an origin not allowed is not Envoy's to answer: it goes on upstream
    // (Envoy's `forward_not_matching_preflights`, which Emissary leaves at its default), and
    // nothing allows it.
    let other = gw
        .send(
            Method::OPTIONS,
            "/api/items",
            "example.com",
            &preflight("https://evil.example.com"),
        )
        .await;
    let echo = served_by(&other, "api");
    assert_eq!(echo["method"], "OPTIONS");
    assert_eq!(other.header(ALLOW_ORIGIN), None);
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn a_request_from_an_allowed_origin_gets_the_allow_headers_and_no_other_does() {
    // t_cors.py's queries: with the allowed Origin, a wrong one, none; all served upstream.
    let gw = Gateway::start().await;
    let up = Upstream::start("api").await;
    gw.write("route.yaml", &route("api", &up, EVERY_FIELD));

    let origin = "https://shop.example.com";
    let allowed = wait_allowed(
        &gw,
        Method::GET,
        "/api/items",
        &[("origin", origin)],
        origin,
    )
    .await;
    served_by(&allowed, "api");
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        allowed.header("access-control-expose-headers"),
        Some("X-Trace-Id")
    );

    for other in [
        Some("https://evil.example.com"),
        Some("https://shop.example.com.evil"),
        None,
    ] {
        let reply = get(&gw, "/api/items", other).await;
        served_by(&reply, "api");
        for header in [
            ALLOW_ORIGIN,
            "access-control-allow-credentials",
            "access-control-expose-headers",
        ] {
            assert_eq!(reply.header(header), None, "{header} for Origin {other:?}");
        }
    }
}

#[tokio::test]
async fn an_origin_star_allows_any_origin() {
    // t_optiontests.py's CORS: `origins: ["*"]`, and the answer names the request's Origin.
    let gw = Gateway::start().await;
    let up = Upstream::start("any").await;
    gw.write(
        "route.yaml",
        &route("any", &up, "prefix: /any/\ncors: {origins: [\"*\"]}"),
    );
    let origin = "https://www.test-cors.org";
    let reply = wait_allowed(&gw, Method::GET, "/any/", &[("origin", origin)], origin).await;
    served_by(&reply, "any");
    let reply = get(&gw, "/any/", None).await;
    assert_eq!(reply.header(ALLOW_ORIGIN), None, "no Origin, no CORS");
}

#[tokio::test]
async fn the_module_default_applies_where_a_mapping_has_none_and_a_mappings_own_wins() {
    // t_cors.py's GlobalCORSTest, query by query.
    let gw = Gateway::start().await;
    let up = Upstream::start("cors").await;
    gw.write(
        "module.yaml",
        &module("{origins: [\"http://foo.example.com\"], methods: [POST, GET, OPTIONS]}"),
    );
    gw.write("foo.yaml", &route("foo", &up, "prefix: /foo/"));
    gw.write(
        "bar.yaml",
        &route(
            "bar",
            &up,
            "prefix: /bar/\ncors: {origins: [\"http://bar.example.com\"], methods: [POST, GET, OPTIONS]}",
        ),
    );
    let (foo, bar) = ("http://foo.example.com", "http://bar.example.com");
    wait_allowed(&gw, Method::GET, "/foo/", &[("origin", foo)], foo).await;
    wait_allowed(&gw, Method::GET, "/bar/", &[("origin", bar)], bar).await;

    for (path, origin, allowed) in [
        ("/foo/", None, None),
        ("/foo/", Some(foo), Some(foo)),
        ("/foo/", Some("http://wrong.example.com"), None),
        // The Mapping's own policy replaces the default: foo's origin is not bar's.
        ("/foo/", Some(bar), None),
        ("/bar/", None, None),
        ("/bar/", Some(bar), Some(bar)),
        ("/bar/", Some("http://wrong.example.com"), None),
        ("/bar/", Some(foo), None),
    ] {
        let reply = get(&gw, path, origin).await;
        served_by(&reply, "cors");
        assert_eq!(
            reply.header(ALLOW_ORIGIN),
            allowed,
            "{path} from {origin:?}"
        );
    }

    // Without the Module, the route without its own policy has none.
    gw.remove("module.yaml");
    let reply = gw
        .wait_for_request(
            Method::GET,
            "/foo/",
            "example.com",
            &[("origin", foo)],
            "the Module's default to go",
            |r| r.status == 200 && r.header(ALLOW_ORIGIN).is_none(),
        )
        .await;
    served_by(&reply, "cors");
    let reply = get(&gw, "/bar/", Some(bar)).await;
    assert_eq!(reply.header(ALLOW_ORIGIN), Some(bar));
}

/// The agent's log line rejecting `object`.
async fn rejection(gw: &Gateway, object: &str) -> String {
    let wanted = format!("rejected: {object} (Invalid): ");
    eventually(&format!("the agent to reject {object}"), WAIT, || async {
        gw.agent
            .log()
            .lines()
            .find(|l| l.contains(&wanted))
            .map(str::to_owned)
    })
    .await
}

#[tokio::test]
async fn a_bad_cors_refuses_only_its_own_resource_naming_the_field() {
    let gw = Gateway::start().await;
    let up = Upstream::start("ok").await;
    gw.write(
        "ok.yaml",
        &route(
            "ok",
            &up,
            "prefix: /ok/\ncors: {origins: [\"https://a.example.com\"]}",
        ),
    );
    // No request has an empty Origin, and `-1` is no number of seconds: Emissary would pass both
    // on; here the Mapping is refused and says which fields.
    gw.write(
        "bad.yaml",
        &route(
            "bad",
            &up,
            "prefix: /bad/\ncors: {origins: [\"\"], max_age: \"-1\"}",
        ),
    );
    let origin = "https://a.example.com";
    wait_allowed(&gw, Method::GET, "/ok/", &[("origin", origin)], origin).await;
    let line = rejection(&gw, "Mapping default/bad").await;
    assert!(
        line.contains("cors.origins[0]: is empty") && line.contains("cors.max_age: \"-1\""),
        "{line}"
    );
    assert_eq!(get(&gw, "/bad/", None).await.status, 404, "not served");

    // A bad Module default is the Module's rejection: no default applies, every route serves.
    gw.write(
        "module.yaml",
        &module("{origins: [\"https://d.example.com\"], max_age: 1h}"),
    );
    let line = rejection(&gw, "Module default/ambassador").await;
    assert!(line.contains("spec.config.cors.max_age: \"1h\""), "{line}");
    gw.write("plain.yaml", &route("plain", &up, "prefix: /plain/"));
    let reply = gw.wait_upstream("/plain/", "ok").await;
    assert_eq!(reply.header(ALLOW_ORIGIN), None);
    let reply = get(&gw, "/plain/", Some("https://d.example.com")).await;
    served_by(&reply, "ok");
    assert_eq!(
        reply.header(ALLOW_ORIGIN),
        None,
        "no default from a rejected Module"
    );
    assert_eq!(gw.agent.nacks().await, 0.0, "Envoy refused nothing");
}
