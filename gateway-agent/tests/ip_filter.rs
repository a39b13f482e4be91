//! The `ambassador` Module's `ip_allow` and `ip_deny` on the data path: real Envoy answers 403 to
//! the clients the rule keeps out, as Emissary configures it (`python/ambassador/src/ambassador/
//! ir/iripallowdeny.py`, `envoy/v3/v3httpfilter.py` `V3HTTPFilter_ipallowdeny`; its tests:
//! `python/tests/src/tests/kat/t_ip_allow_deny.py`).
//!
//! Every client here is on loopback: `peer` rules match the connection's 127.0.0.1; `remote`
//! rules match the address `X-Forwarded-For` gives, on a Listener trusting one proxy
//! (`l7Depth: 1`). Each test waits for the answer only the rule it wrote gives before it
//! asserts the others.

mod support;

use pretty_assertions::assert_eq;
use reqwest::Method;
use support::{
    Upstream,
    gateway::{self, Gateway, HOST_ANY, route, served_by},
};

async fn serving(gw: &Gateway) -> Upstream {
    let up = Upstream::start("shop").await;
    gw.write("shop.yaml", &route("shop", &up, "prefix: /shop/"));
    gw.wait_upstream("/shop/", "shop").await;
    up
}

fn rule(config: &str) -> String {
    gateway::module(config)
}

/// GET /shop/ with `X-Forwarded-For: client`.
async fn from(gw: &Gateway, client: &str) -> u16 {
    gw.send(
        Method::GET,
        "/shop/",
        "example.com",
        &[("x-forwarded-for", client)],
    )
    .await
    .status
}

#[tokio::test]
async fn ip_allow_serves_only_the_peers_it_lists() {
    let gw = Gateway::start().await;
    let _up = serving(&gw).await;

    gw.write("module.yaml", &rule("ip_allow: [{peer: 10.0.0.0/8}]"));
    let denied = gw.wait_status("/shop/", 403).await;
    assert_eq!(denied.text, "RBAC: access denied");

    gw.write(
        "module.yaml",
        &rule("ip_allow: [{peer: 10.0.0.0/8}, {peer: 127.0.0.1}]"),
    );
    let reply = gw.wait_status("/shop/", 200).await;
    served_by(&reply, "shop");
}

#[tokio::test]
async fn ip_deny_refuses_the_peers_it_lists_and_serves_the_others() {
    let gw = Gateway::start().await;
    let _up = serving(&gw).await;

    gw.write("module.yaml", &rule("ip_deny: [{peer: 127.0.0.0/8}]"));
    gw.wait_status("/shop/", 403).await;

    gw.write("module.yaml", &rule("ip_deny: [{peer: \"::1\"}]"));
    served_by(&gw.wait_status("/shop/", 200).await, "shop");
}

#[tokio::test]
async fn remote_rules_match_the_client_behind_a_trusted_proxy() {
    let gw = Gateway::start_with(HOST_ANY, "l7Depth: 1, ").await;
    let _up = serving(&gw).await;

    gw.write("module.yaml", &rule("ip_deny: [{remote: 203.0.113.0/24}]"));
    gw.wait_for_request(
        Method::GET,
        "/shop/",
        "example.com",
        &[("x-forwarded-for", "203.0.113.7")],
        "the client behind the proxy to be refused",
        |r| r.status == 403,
    )
    .await;
    assert_eq!(from(&gw, "198.51.100.1").await, 200);
    // The peer (loopback) is not what a `remote` rule looks at.
    assert_eq!(from(&gw, "127.0.0.1").await, 200);
}

#[tokio::test]
async fn a_bad_entry_is_rejected_and_an_allowlist_left_empty_lets_nobody_in() {
    let gw = Gateway::start().await;
    let _up = serving(&gw).await;

    // One bad entry: the good one still applies (and the Module names the bad one).
    gw.write(
        "module.yaml",
        &rule("ip_allow: [{peer: 10.0.0.0/8}, {peer: not-an-address}]"),
    );
    gw.wait_status("/shop/", 403).await;

    // Only bad entries: Emissary would drop the filter and let everyone in; an allowlist the
    // user asked for fails closed here.
    gw.write(
        "module.yaml",
        &rule("ip_allow: [{peer: 127.0.0.1}]\nserver_name: marker"),
    );
    gw.wait_for("/shop/", "the marker Module", |r| {
        r.status == 200 && r.header("server") == Some("marker")
    })
    .await;
    gw.write("module.yaml", &rule("ip_allow: [{peer: 127.0.0.1/40}]"));
    gw.wait_status("/shop/", 403).await;
    assert_eq!(gw.agent.nacks().await, 0.0, "Envoy refused nothing");
}
