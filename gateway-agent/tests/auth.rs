//! External authorization through real Envoy: AuthServices (`getambassador.io/v3alpha1`) in
//! front of real auth services written in the test suite (`support::auth`: an HTTP one and a
//! gRPC `envoy.service.auth.v3` one), as Emissary configures `ext_authz`
//! (`python/ambassador/src/ambassador/ir/irauth.py`, `envoy/v3/v3httpfilter.py`
//! `V3HTTPFilter_authv1`, `envoy/v3/v3route.py`; its tests: `python/tests/src/tests/kat/
//! t_extauth.py`), and the Legate extensions: a Mapping's `auth_service_ref` and an AuthService's
//! `opt_in`.
//!
//! Each test has its own gateway and first waits for an answer only the configuration it wrote
//! can give.

mod support;

use std::collections::BTreeMap;

use pretty_assertions::assert_eq;
use reqwest::Method;
use support::{
    Reply, Upstream,
    auth::{AuthServer, Check, DENIED_BODY, DENIED_STATUS, GRPC_DENIED_STATUS},
    gateway::{self, Gateway, describe, route, served_by},
};

/// An AuthService document in namespace `default`; `spec` one field per line.
fn auth_service(name: &str, spec: &str) -> String {
    gateway::document("AuthService", name, spec)
}

/// An HTTP AuthService as Emissary's documentation writes one.
fn http_auth(server: &AuthServer, extra: &str) -> String {
    auth_service(
        "http-auth",
        &format!(
            "auth_service: {}\nproto: http\npath_prefix: /extauth\ntimeout_ms: 500\n\
             allowed_request_headers: [x-test-id]\nallowed_authorization_headers: [x-auth-user]\n\
             add_auth_headers: {{x-added-by: legate}}\n{extra}",
            server.service()
        ),
    )
}

fn grpc_auth(name: &str, server: &AuthServer, extra: &str) -> String {
    auth_service(
        name,
        &format!(
            "auth_service: {}\nproto: grpc\nprotocol_version: v3\ntimeout_ms: 500\n{extra}",
            server.service()
        ),
    )
}

async fn get(gw: &Gateway, path: &str) -> Reply {
    gw.send(Method::GET, path, "example.com", &[("x-test-id", "7")])
        .await
}

/// Waits until `path` is denied by an auth service (its status), the sign that the
/// AuthService's filter is in place.
async fn wait_denied(gw: &Gateway, path: &str, status: u16) -> Reply {
    gw.wait_for(path, &format!("{path} to be denied with {status}"), |r| {
        r.status == status
    })
    .await
}

#[tokio::test]
async fn an_http_auth_service_allows_denies_and_adds_the_headers_it_allows() {
    let auth = AuthServer::http("alice").await;
    let app = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write("auth.yaml", &http_auth(&auth, ""));
    gw.write(
        "app.yaml",
        &[
            route("app", &app, "prefix: /app/"),
            route("open", &app, "prefix: /open/\nbypass_auth: true"),
        ]
        .concat(),
    );

    // Denied: the auth service's status and body reach the client, with the headers it may
    // send (Emissary's list: `www-authenticate`), not the others.
    let denied = wait_denied(&gw, "/app/deny", DENIED_STATUS).await;
    assert_eq!(denied.text, DENIED_BODY, "{}", describe(&denied));
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Basic realm=\"test\"")
    );
    assert_eq!(denied.header("x-auth-secret"), None);
    let before = app.requests();
    assert_eq!(get(&gw, "/app/deny").await.status, DENIED_STATUS);
    assert_eq!(
        app.requests(),
        before,
        "a denied request never reaches the upstream"
    );

    // Allowed: the upstream gets the headers the AuthService allows from the answer.
    let seen = served_by(&get(&gw, "/app/hello").await, "app");
    assert_eq!(seen["headers"]["x-auth-user"], "alice");
    assert_eq!(seen["headers"].get("x-auth-secret"), None);

    // The check request: `path_prefix` before the client's path, the headers Emissary always
    // allows plus `allowed_request_headers`, and `add_auth_headers`.
    let check = auth
        .checks_of("/hello")
        .pop()
        .expect("the check of /app/hello");
    assert_eq!(check.path, "/extauth/app/hello");
    assert_eq!(
        check.headers.get("x-test-id").map(String::as_str),
        Some("7")
    );
    assert_eq!(
        check.headers.get("x-added-by").map(String::as_str),
        Some("legate")
    );
    assert!(check.headers.contains_key("x-forwarded-proto"), "{check:?}");

    // `bypass_auth: true`: served, and the auth service never asked.
    served_by(&get(&gw, "/open/deny").await, "app");
    assert_eq!(auth.checks_of("/open/"), Vec::<Check>::new());
}

#[tokio::test]
async fn a_grpc_auth_service_gets_the_context_extensions_and_its_answers_reach_the_client() {
    let auth = AuthServer::grpc("grpc-alice").await;
    let app = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write("auth.yaml", &grpc_auth("grpc-auth", &auth, ""));
    gw.write(
        "app.yaml",
        &route(
            "app",
            &app,
            "prefix: /app/\nauth_context_extensions: {team: payments, tier: gold}",
        ),
    );

    let denied = wait_denied(&gw, "/app/deny", GRPC_DENIED_STATUS).await;
    assert_eq!(denied.text, DENIED_BODY, "{}", describe(&denied));
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Basic realm=\"test\"")
    );

    let seen = served_by(&get(&gw, "/app/hello").await, "app");
    assert_eq!(seen["headers"]["x-auth-user"], "grpc-alice");

    // A gRPC check carries every header and the route's context extensions.
    let check = auth
        .checks_of("/app/hello")
        .pop()
        .expect("the check of /app/hello");
    assert_eq!(
        check.context_extensions,
        BTreeMap::from([
            ("team".to_owned(), "payments".to_owned()),
            ("tier".to_owned(), "gold".to_owned()),
        ])
    );
    assert_eq!(
        check.headers.get("x-test-id").map(String::as_str),
        Some("7")
    );
}

#[tokio::test]
async fn an_auth_service_that_cannot_answer_denies_unless_failure_mode_allow() {
    let auth = AuthServer::http("alice").await;
    let app = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write("auth.yaml", &http_auth(&auth, ""));
    gw.write("app.yaml", &route("app", &app, "prefix: /app/"));
    wait_denied(&gw, "/app/deny", DENIED_STATUS).await;

    // Slower than `timeout_ms`: Envoy's `status_on_error` default, 403.
    let slow = get(&gw, "/app/slow").await;
    assert_eq!(slow.status, 403, "{}", describe(&slow));

    // Down, with `status_on_error`: that status.
    auth.stop();
    gw.write(
        "auth.yaml",
        &http_auth(&auth, "status_on_error: {code: 503}"),
    );
    wait_denied(&gw, "/app/hello", 503).await;
    let before = app.requests();
    assert_eq!(get(&gw, "/app/hello").await.status, 503);
    assert_eq!(
        app.requests(),
        before,
        "a request not checked never reaches the upstream"
    );

    // Down, with `failure_mode_allow: true`: let through.
    gw.write("auth.yaml", &http_auth(&auth, "failure_mode_allow: true"));
    gw.wait_upstream("/app/hello", "app").await;
}

#[tokio::test]
async fn a_misconfigured_auth_service_still_guards_its_routes() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write("app.yaml", &route("app", &app, "prefix: /app/"));
    gw.wait_upstream("/app/hello", "app").await;
    // A TLSContext that does not exist: refused, and its routes fail closed, not open.
    gw.write(
        "auth.yaml",
        &auth_service(
            "broken",
            "auth_service: auth.example:8443\ntls: missing-context",
        ),
    );
    let denied = wait_denied(&gw, "/app/hello", 403).await;
    let before = app.requests();
    assert_eq!(
        get(&gw, "/app/hello").await.status,
        403,
        "{}",
        describe(&denied)
    );
    assert_eq!(app.requests(), before);
}

#[tokio::test]
async fn include_body_sends_the_body_up_to_max_bytes() {
    let auth = AuthServer::http("alice").await;
    let app = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write(
        "auth.yaml",
        &http_auth(&auth, "include_body: {max_bytes: 5, allow_partial: true}"),
    );
    gw.write("app.yaml", &route("app", &app, "prefix: /app/"));
    wait_denied(&gw, "/app/deny", DENIED_STATUS).await;
    let reply = gw
        .client
        .send(
            Method::POST,
            &gw.url("/app/body"),
            Some("example.com"),
            &[],
            Some("0123456789".to_owned()),
        )
        .await
        .expect("a POST through Envoy");
    let seen = served_by(&reply, "app");
    assert_eq!(seen["body"], "0123456789", "the upstream gets all of it");
    let check = auth
        .checks_of("/body")
        .pop()
        .expect("the check of /app/body");
    assert_eq!(check.body, "01234");
}

#[tokio::test]
async fn a_mapping_picks_its_auth_service_and_opt_in_ones_check_only_who_asks() {
    let default = AuthServer::http("default-auth").await;
    let strict = AuthServer::grpc("strict-auth").await;
    let app = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write(
        "auth.yaml",
        &[
            http_auth(&default, ""),
            grpc_auth("strict", &strict, "opt_in: true"),
        ]
        .concat(),
    );
    gw.write(
        "app.yaml",
        &[
            route("app", &app, "prefix: /app/"),
            route(
                "payments",
                &app,
                "prefix: /payments/\nauth_service_ref: {name: strict}",
            ),
        ]
        .concat(),
    );
    wait_denied(&gw, "/payments/deny", GRPC_DENIED_STATUS).await;

    // The default AuthService checks the Mapping that names none; the opt-in one does not.
    let seen = served_by(&get(&gw, "/app/hello").await, "app");
    assert_eq!(seen["headers"]["x-auth-user"], "default-auth");
    assert_eq!(strict.checks_of("/app/"), Vec::<Check>::new());

    // The Mapping that names the opt-in one is checked by it alone.
    let seen = served_by(&get(&gw, "/payments/hello").await, "app");
    assert_eq!(seen["headers"]["x-auth-user"], "strict-auth");
    assert_eq!(default.checks_of("/payments/"), Vec::<Check>::new());

    // With only the opt-in one, a Mapping that names none is not checked at all.
    gw.write("auth.yaml", &grpc_auth("strict", &strict, "opt_in: true"));
    let seen = gw
        .wait_for("/app/deny", "/app/deny to be served unchecked", |r| {
            r.status == 200
        })
        .await;
    assert!(
        served_by(&seen, "app")["headers"]
            .get("x-auth-user")
            .is_none()
    );
    let denied = get(&gw, "/payments/deny").await;
    assert_eq!(denied.status, GRPC_DENIED_STATUS, "{}", describe(&denied));
}

#[tokio::test]
async fn an_insecure_request_is_redirected_before_it_is_checked() {
    let auth = AuthServer::http("alice").await;
    let app = Upstream::start("app").await;
    // XFP behind one trusted proxy: a request whose X-Forwarded-Proto is not https is
    // redirected (the Host's default `requestPolicy`).
    let gw = Gateway::start_with(
        "apiVersion: getambassador.io/v3alpha1\nkind: Host\n\
         metadata: {name: secure, namespace: default}\nspec: {hostname: \"*\"}\n",
        "l7Depth: 1, ",
    )
    .await;
    gw.write("auth.yaml", &http_auth(&auth, ""));
    gw.write("app.yaml", &route("app", &app, "prefix: /app/"));
    let https = [("x-forwarded-proto", "https")];
    let denied = gw
        .wait_for_request(
            Method::GET,
            "/app/deny",
            "example.com",
            &https,
            "/app/deny over https to be denied",
            |r| r.status == DENIED_STATUS,
        )
        .await;
    assert_eq!(denied.text, DENIED_BODY);
    let redirected = gw
        .client
        .send(
            Method::GET,
            &gw.url("/app/deny"),
            Some("example.com"),
            &[("x-forwarded-proto", "http")],
            None,
        )
        .await
        .expect("an answer");
    assert_eq!(redirected.status, 301, "{}", describe(&redirected));
    assert_eq!(
        redirected.header("location"),
        Some("https://example.com/app/deny")
    );
    assert_eq!(auth.checks().len(), auth.checks_of("/app/deny").len());
}
