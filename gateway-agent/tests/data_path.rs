//! The data path end to end: Emissary-style YAML in a config directory, the agent serving it
//! over delta ADS, a real Envoy carrying real requests to echo upstreams on 127.0.0.1.
//!
//! Each test is a scenario: the YAML it writes, the requests it sends, the answers it expects.
//! Each test has its own gateway (agent + Envoy + config directory, ~1 s to start) so a failure
//! shows only its own logs (the harness prints the agent's and Envoy's log tails when a test
//! panics) and tests cannot interfere.

mod support;

use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use reqwest::Method;
use support::{
    Agent, Client, Envoy, Upstream, free_port,
    gateway::{Gateway, HOST_ANY, WAIT, describe, mapping, route, served_by},
    write_config as write_file,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// Path matching

#[tokio::test]
async fn prefix_routing_sends_each_prefix_to_its_upstream() {
    let gw = Gateway::start().await;
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    gw.write(
        "prefix.yaml",
        &[
            route("pfx-a", &a, "prefix: /pfx-a/"),
            route("pfx-b", &b, "prefix: /pfx-b/"),
        ]
        .concat(),
    );
    gw.wait_upstream("/pfx-b/", "b").await;

    let echo = served_by(&gw.get("/pfx-a/deep/er?x=1", "example.com").await, "a");
    assert_eq!(echo["path"], "/deep/er");
    assert_eq!(echo["query"], "x=1");
    let echo = served_by(&gw.get("/pfx-b/", "example.com").await, "b");
    assert_eq!(echo["path"], "/");
    // A prefix is a string prefix, not a path segment: `/pfx-a` without the slash is no match.
    assert_eq!(gw.get("/pfx-a", "example.com").await.status, 404);
    assert_eq!(gw.get("/pfx-c/", "example.com").await.status, 404);
}

#[tokio::test]
async fn regex_routing_matches_the_whole_path() {
    let gw = Gateway::start().await;
    let a = Upstream::start("a").await;
    gw.write(
        "regex.yaml",
        &route(
            "re",
            &a,
            "prefix: \"/re/[0-9]+/item\"\nprefix_regex: true\nrewrite: \"\"",
        ),
    );
    gw.wait_upstream("/re/1/item", "a").await;

    let echo = served_by(&gw.get("/re/42/item?q=v", "example.com").await, "a");
    assert_eq!(echo["path"], "/re/42/item");
    assert_eq!(echo["query"], "q=v");
    // Envoy's safe_regex path match is a full match.
    assert_eq!(gw.get("/re/abc/item", "example.com").await.status, 404);
    assert_eq!(gw.get("/re/42/item/more", "example.com").await.status, 404);
    assert_eq!(gw.get("/x/re/42/item", "example.com").await.status, 404);
}

#[tokio::test]
async fn exact_routing_matches_only_the_exact_path() {
    let gw = Gateway::start().await;
    let a = Upstream::start("a").await;
    gw.write(
        "exact.yaml",
        &route(
            "exact",
            &a,
            "prefix: /exact/only\nprefix_exact: true\nrewrite: \"\"",
        ),
    );
    gw.wait_upstream("/exact/only", "a").await;

    let echo = served_by(&gw.get("/exact/only?x=1", "example.com").await, "a");
    assert_eq!(echo["path"], "/exact/only");
    assert_eq!(gw.get("/exact/only/", "example.com").await.status, 404);
    assert_eq!(gw.get("/exact/only/more", "example.com").await.status, 404);
    assert_eq!(gw.get("/exact/onl", "example.com").await.status, 404);
}

// ---------------------------------------------------------------------------------------------
// Shadowing

/// Emissary's `shadow: true` (`irhttpmappinggroup.py`, `v3route.py` `request_mirror_policies`):
/// the group's requests are answered by its other Mappings and copied to the shadow's service,
/// all of them, or with `weight` that share of them (a draw per request).
#[tokio::test]
async fn a_shadow_mapping_mirrors_its_weight_of_the_requests_and_answers_none() {
    let gw = Gateway::start().await;
    let primary = Upstream::start("primary").await;
    let (all, half) = (Upstream::start("all").await, Upstream::start("half").await);
    gw.write(
        "shadow.yaml",
        &[
            route("all-main", &primary, "prefix: /all/"),
            route("all-copy", &all, "prefix: /all/\nshadow: true"),
            route("half-main", &primary, "prefix: /half/"),
            route(
                "half-copy",
                &half,
                "prefix: /half/\nshadow: true\nweight: 50",
            ),
        ]
        .concat(),
    );
    // Each wait ends at its first 200, so one request of each has been served (and mirrored).
    gw.wait_upstream("/half/", "primary").await;
    gw.wait_upstream("/all/", "primary").await;
    support::eventually("the first /all/ request mirrored", WAIT, || async {
        (all.requests() == 1).then_some(())
    })
    .await;

    const N: usize = 200;
    for _ in 0..N {
        // Each answer is the primary's; the shadow's never reaches the client.
        served_by(&gw.get("/half/x", "example.com").await, "primary");
        served_by(&gw.get("/all/x", "example.com").await, "primary");
    }
    support::eventually("every /all/ request mirrored", WAIT, || async {
        (all.requests() == 1 + N).then_some(())
    })
    .await;
    // A fair draw of 200 (and the first one) at 50 %: 100 ± 7 (one standard deviation);
    // 60..=140 is over five. The /half/ mirrors went out before the /all/ ones counted above.
    let mirrored = half.requests();
    assert!(
        (60..=140).contains(&mirrored),
        "{mirrored} of {N} mirrored at weight 50"
    );
}

// ---------------------------------------------------------------------------------------------
// Hosts

#[tokio::test]
async fn hosts_make_virtual_hosts_and_an_unknown_host_gets_404() {
    let hosts = r#"
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: a, namespace: default}
spec: {hostname: a.example.com, requestPolicy: {insecure: {action: Route}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: b, namespace: default}
spec: {hostname: b.example.com, requestPolicy: {insecure: {action: Route}}}
"#;
    let gw = Gateway::start_with_hosts(hosts).await;
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let for_host = |name: &str, host: &str, upstream: &Upstream| {
        mapping(
            name,
            &format!(
                "hostname: {host}\nprefix: /vh/\nservice: {}",
                upstream.service()
            ),
        )
    };
    gw.write(
        "vhosts.yaml",
        &[
            for_host("vh-a", "a.example.com", &a),
            for_host("vh-b", "b.example.com", &b),
        ]
        .concat(),
    );
    gw.wait_for_request(
        Method::GET,
        "/vh/x",
        "b.example.com",
        &[],
        "b.example.com to be served by b",
        |r| r.upstream() == Some("b"),
    )
    .await;

    let echo = served_by(&gw.get("/vh/x", "a.example.com").await, "a");
    assert_eq!(echo["headers"]["host"], "a.example.com");
    assert_eq!(echo["path"], "/x");
    let echo = served_by(&gw.get("/vh/x", "b.example.com").await, "b");
    assert_eq!(echo["headers"]["host"], "b.example.com");
    // A port in Host is part of the name, as in Emissary (tests/emissary_compat.rs).
    let host_with_port = format!("a.example.com:{}", gw.port);
    assert_eq!(gw.get("/vh/x", &host_with_port).await.status, 404);
    let unknown = gw.get("/vh/x", "c.example.com").await;
    assert_eq!(unknown.status, 404, "{}", describe(&unknown));
    assert_eq!(unknown.upstream(), None);
}

#[tokio::test]
async fn a_host_with_insecure_action_redirect_sends_plain_http_to_https() {
    let hosts = r#"
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: secure-only, namespace: default}
spec: {hostname: "*", requestPolicy: {insecure: {action: Redirect}}}
"#;
    // `l7Depth: 1`: one trusted proxy in front, whose X-Forwarded-Proto Envoy keeps. Without
    // it Envoy overwrites the client's X-Forwarded-Proto (`use_remote_address`), as in Emissary.
    let gw = Gateway::start_with(hosts, "l7Depth: 1, ").await;
    let a = Upstream::start("a").await;
    gw.write("redirect-host.yaml", &route("hr", &a, "prefix: /hr/"));
    let reply = gw.wait_status("/hr/some/where?q=1", 301).await;
    assert_eq!(
        reply.header("location"),
        Some("https://example.com/hr/some/where?q=1"),
        "{}",
        describe(&reply)
    );
    assert_eq!(a.requests(), 0, "a redirect never reaches the upstream");

    // XFP security model: a request that came in as HTTPS (per X-Forwarded-Proto) is routed.
    let reply = gw
        .send(
            Method::GET,
            "/hr/some/where",
            "example.com",
            &[("x-forwarded-proto", "https")],
        )
        .await;
    let echo = served_by(&reply, "a");
    assert_eq!(echo["path"], "/some/where");
}

// ---------------------------------------------------------------------------------------------
// Header, query and method matching

#[tokio::test]
async fn header_and_query_parameter_matching() {
    let gw = Gateway::start().await;
    let plain = Upstream::start("plain").await;
    let header = Upstream::start("header").await;
    let regex_header = Upstream::start("regex-header").await;
    let query = Upstream::start("query").await;
    let regex_query = Upstream::start("regex-query").await;
    gw.write(
        "matching.yaml",
        &[
            route("hq-plain", &plain, "prefix: /hq/"),
            route(
                "hq-header",
                &header,
                "prefix: /hq/\nheaders: {x-variant: blue}",
            ),
            route(
                "hq-regex-header",
                &regex_header,
                "prefix: /hq/\nregex_headers: {x-variant: \"gre+n\"}",
            ),
            route(
                "hq-query",
                &query,
                "prefix: /hq/\nquery_parameters: {flavor: mint}",
            ),
            route(
                "hq-regex-query",
                &regex_query,
                "prefix: /hq/\nregex_query_parameters: {flavor: \"choc.*\"}",
            ),
        ]
        .concat(),
    );
    gw.wait_upstream("/hq/?flavor=chocolate", "regex-query")
        .await;

    /// (path and query, request headers, the upstream that must answer)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("/hq/", &[], "plain"),
        ("/hq/", &[("x-variant", "blue")], "header"),
        ("/hq/", &[("x-variant", "BLUE")], "plain"),
        ("/hq/", &[("x-variant", "green")], "regex-header"),
        ("/hq/", &[("x-variant", "greeeen")], "regex-header"),
        // A regex header match is a full match.
        ("/hq/", &[("x-variant", "greenish")], "plain"),
        ("/hq/?flavor=mint", &[], "query"),
        ("/hq/?flavor=minty", &[], "plain"),
        ("/hq/?other=1&flavor=mint", &[], "query"),
        ("/hq/?flavor=chocolate", &[], "regex-query"),
        ("/hq/?flavor=hotchoc", &[], "plain"),
        ("/hq/?Flavor=mint", &[], "plain"),
    ];
    for (path, headers, expected) in cases {
        let reply = gw.send(Method::GET, path, "example.com", headers).await;
        assert_eq!(
            reply.upstream(),
            Some(*expected),
            "GET {path} with {headers:?}: {}",
            describe(&reply)
        );
        assert_eq!(reply.status, 200);
    }
}

#[tokio::test]
async fn method_matching_exact_and_regex() {
    let gw = Gateway::start().await;
    let any = Upstream::start("any").await;
    let post = Upstream::start("post").await;
    let put = Upstream::start("put-or-patch").await;
    gw.write(
        "methods.yaml",
        &[
            route("m-any", &any, "prefix: /meth/"),
            route("m-post", &post, "prefix: /meth/\nmethod: POST"),
            route(
                "m-put",
                &put,
                "prefix: /meth/\nmethod: \"PUT|PATCH\"\nmethod_regex: true",
            ),
        ]
        .concat(),
    );
    gw.wait_for_request(
        Method::PATCH,
        "/meth/x",
        "example.com",
        &[],
        "PATCH /meth/x to reach put-or-patch",
        |r| r.upstream() == Some("put-or-patch"),
    )
    .await;

    for (method, expected) in [
        (Method::GET, "any"),
        (Method::POST, "post"),
        (Method::PUT, "put-or-patch"),
        (Method::PATCH, "put-or-patch"),
        (Method::DELETE, "any"),
    ] {
        let reply = gw.send(method.clone(), "/meth/x", "example.com", &[]).await;
        let echo = served_by(&reply, expected);
        assert_eq!(echo["method"], method.as_str());
        assert_eq!(echo["path"], "/x");
    }
}

// ---------------------------------------------------------------------------------------------
// Rewrites

#[tokio::test]
async fn rewrites_default_empty_prefix_and_regex() {
    let gw = Gateway::start().await;
    let a = Upstream::start("a").await;
    gw.write(
        "rewrite.yaml",
        &[
            route("rw-default", &a, "prefix: /rw-default/"),
            route("rw-keep", &a, "prefix: /rw-keep/\nrewrite: \"\""),
            route("rw-v1", &a, "prefix: /rw-v1/\nrewrite: /v1/"),
            route(
                "rw-regex",
                &a,
                "prefix: /rw-regex/\nregex_rewrite: {pattern: '^/rw-regex/([^/]+)/(.*)$', substitution: '/items/\\2/\\1'}",
            ),
        ]
        .concat(),
    );
    gw.wait_upstream("/rw-regex/x/y", "a").await;

    for (path, upstream_path, query) in [
        ("/rw-default/a/b", "/a/b", None),
        ("/rw-default/", "/", None),
        ("/rw-keep/a/b", "/rw-keep/a/b", None),
        ("/rw-v1/users?page=2", "/v1/users", Some("page=2")),
        ("/rw-regex/x/y/z", "/items/y/z/x", None),
    ] {
        let echo = served_by(&gw.get(path, "example.com").await, "a");
        assert_eq!(echo["path"], upstream_path, "GET {path}");
        assert_eq!(echo["query"], serde_json::json!(query), "GET {path}");
    }
}

// ---------------------------------------------------------------------------------------------
// Canary

#[tokio::test]
async fn canary_weight_30_takes_about_30_percent() {
    let gw = Gateway::start().await;
    let (stable, next) = (
        Upstream::start("stable").await,
        Upstream::start("next").await,
    );
    gw.write(
        "canary.yaml",
        &[
            route("canary-stable", &stable, "prefix: /canary/"),
            route("canary-next", &next, "prefix: /canary/\nweight: 30"),
        ]
        .concat(),
    );
    gw.wait_status("/canary/", 200).await;

    const N: usize = 500;
    let (mut to_stable, mut to_next) = (0, 0);
    for _ in 0..N {
        let reply = gw.get("/canary/", "example.com").await;
        match (reply.status, reply.upstream()) {
            (200, Some("stable")) => to_stable += 1,
            (200, Some("next")) => to_next += 1,
            _ => panic!("unexpected answer: {}", describe(&reply)),
        }
    }
    assert_eq!(to_stable + to_next, N);
    let share = to_next as f64 * 100.0 / N as f64;
    assert!(
        (22.0..=38.0).contains(&share),
        "the weight-30 canary took {share:.1}% ({to_next}/{N}), not 30% ± 8"
    );
}

// ---------------------------------------------------------------------------------------------
// Timeouts

#[tokio::test]
async fn timeouts_give_504_and_a_larger_timeout_lets_a_slow_answer_through() {
    let gw = Gateway::start().await;
    let a = Upstream::start("a").await;
    gw.write(
        "timeouts.yaml",
        &[
            route("to-short", &a, "prefix: /to-short/\ntimeout_ms: 200"),
            route("to-long", &a, "prefix: /to-long/\ntimeout_ms: 5000"),
            route("to-default", &a, "prefix: /to-default/"),
        ]
        .concat(),
    );
    gw.wait_upstream("/to-default/", "a").await;
    gw.wait_upstream("/to-short/", "a").await;

    let start = Instant::now();
    let reply = gw.get("/to-short/slow?ms=2000", "example.com").await;
    let elapsed = start.elapsed();
    assert_eq!(reply.status, 504, "{}", describe(&reply));
    assert_eq!(reply.text, "upstream request timeout");
    assert!(
        elapsed >= Duration::from_millis(150) && elapsed < Duration::from_millis(1500),
        "timed out after {elapsed:?}, not ~200 ms"
    );

    let reply = gw.get("/to-long/slow?ms=1000", "example.com").await;
    let echo = served_by(&reply, "a");
    assert_eq!(echo["path"], "/slow");

    // The default is 3000 ms (Emissary's cluster_request_timeout_ms).
    let start = Instant::now();
    let reply = gw.get("/to-default/slow?ms=2500", "example.com").await;
    served_by(&reply, "a");
    let reply = gw.get("/to-default/slow?ms=4000", "example.com").await;
    let elapsed = start.elapsed();
    assert_eq!(reply.status, 504, "{}", describe(&reply));
    assert!(
        elapsed >= Duration::from_millis(2500 + 2900)
            && elapsed < Duration::from_millis(2500 + 3900),
        "the default timeout fired after {elapsed:?} (minus 2.5 s), not ~3000 ms"
    );
}

// ---------------------------------------------------------------------------------------------
// Headers

#[tokio::test]
async fn request_and_response_headers_are_added_and_removed() {
    let gw = Gateway::start().await;
    let a = Upstream::start("a").await;
    gw.write(
        "headers.yaml",
        &route(
            "hdrs",
            &a,
            "prefix: /hdrs/
add_request_headers: {x-added: hello, x-appended: more, x-replaced: {value: ours, append: false}}
remove_request_headers: [x-secret]
add_response_headers: {x-resp: world}
remove_response_headers: [x-upstream]",
        ),
    );
    let reply = gw
        .wait_for("/hdrs/", "the x-resp response header", |r| {
            r.header("x-resp").is_some()
        })
        .await;
    assert_eq!(reply.status, 200);

    let reply = gw
        .send(
            Method::GET,
            "/hdrs/x",
            "example.com",
            &[
                ("x-secret", "s3cret"),
                ("x-keep", "kept"),
                ("x-appended", "theirs"),
                ("x-replaced", "theirs"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", describe(&reply));
    let echo = reply.json();
    assert_eq!(echo["upstream"], "a");
    let seen = &echo["headers"];
    assert_eq!(seen["x-added"], "hello");
    assert_eq!(seen["x-keep"], "kept");
    assert_eq!(
        seen.get("x-secret"),
        None,
        "x-secret reached the upstream: {seen}"
    );
    // `append` defaults to true (Emissary): the client's value stays, ours follows.
    assert_eq!(seen["x-appended"], "theirs,more");
    assert_eq!(seen["x-replaced"], "ours");
    assert_eq!(reply.header("x-resp"), Some("world"));
    assert_eq!(reply.upstream(), None, "x-upstream was not removed");
}

// ---------------------------------------------------------------------------------------------
// Redirects

#[tokio::test]
async fn mapping_redirects_with_path_prefix_and_response_code() {
    let gw = Gateway::start().await;
    gw.write(
        "redirects.yaml",
        &[
            mapping(
                "redir-path",
                "hostname: \"*\"
prefix: /redir-path/
service: other.example.com
host_redirect: true
path_redirect: /new/place",
            ),
            mapping(
                "redir-prefix",
                "hostname: \"*\"
prefix: /redir-prefix/
service: other.example.com
host_redirect: true
prefix_redirect: /moved/
redirect_response_code: 308",
            ),
            mapping(
                "redir-host",
                "hostname: \"*\"
prefix: /redir-host/
service: other.example.com
host_redirect: true",
            ),
        ]
        .concat(),
    );
    gw.wait_status("/redir-host/", 301).await;

    for (path, status, location) in [
        ("/redir-path/a/b", 301, "http://other.example.com/new/place"),
        (
            "/redir-prefix/a/b",
            308,
            "http://other.example.com/moved/a/b",
        ),
        (
            "/redir-host/a?q=1",
            301,
            "http://other.example.com/redir-host/a?q=1",
        ),
    ] {
        let reply = gw.get(path, "example.com").await;
        assert_eq!(
            (reply.status, reply.header("location")),
            (status, Some(location)),
            "GET {path}: {}",
            describe(&reply)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Rejection and filtering

#[tokio::test]
async fn an_invalid_mapping_is_rejected_while_its_neighbours_keep_serving() {
    let gw = Gateway::start().await;
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    gw.write("good.yaml", &route("inv-good", &a, "prefix: /inv-good/"));
    gw.wait_upstream("/inv-good/", "a").await;
    assert_eq!(gw.agent.metric("legate_agent_rejected").await, Some(0.0));

    // The bad Mapping shares its file with a good one.
    gw.write(
        "mixed.yaml",
        &[
            route("inv-bad", &b, "prefix: \"/x/([0-9\"\nprefix_regex: true"),
            route("inv-neighbour", &b, "prefix: /inv-neighbour/"),
        ]
        .concat(),
    );
    gw.wait_upstream("/inv-neighbour/", "b").await;
    served_by(&gw.get("/inv-good/", "example.com").await, "a");
    assert_eq!(gw.get("/x/1", "example.com").await.status, 404);

    let rejected = gw.agent.metric("legate_agent_rejected").await;
    assert!(
        rejected.is_some_and(|n| n >= 1.0),
        "legate_agent_rejected is {rejected:?}; metrics:\n{}",
        gw.agent.metrics().await
    );
    let log = gw.agent.log();
    assert!(
        log.lines()
            .any(|l| l.contains("inv-bad") && l.contains("invalid regular expression")),
        "the agent's log does not say why inv-bad was rejected:\n{}",
        gw.agent.process.log_tail(40)
    );
    // Envoy never saw (and so never rejected) the bad regex.
    let stats = gw
        .envoy
        .admin_get("/stats?filter=update_rejected$")
        .await
        .expect("Envoy's admin answers")
        .text;
    assert!(
        stats.lines().count() > 0 && stats.lines().all(|l| l.ends_with(": 0")),
        "Envoy rejected an update:\n{stats}"
    );
}

#[tokio::test]
async fn ambassador_id_filters_mappings() {
    let gw = Gateway::start().await;
    let a = Upstream::start("a").await;
    gw.write(
        "ids.yaml",
        &[
            route(
                "aid-other",
                &a,
                "prefix: /aid-other/\nambassador_id: [other]",
            ),
            route(
                "aid-default",
                &a,
                "prefix: /aid-default/\nambassador_id: [default]",
            ),
            route(
                "aid-both",
                &a,
                "prefix: /aid-both/\nambassador_id: [other, default]",
            ),
        ]
        .concat(),
    );
    gw.wait_upstream("/aid-default/", "a").await;
    served_by(&gw.get("/aid-both/", "example.com").await, "a");
    let reply = gw.get("/aid-other/", "example.com").await;
    assert_eq!(reply.status, 404, "{}", describe(&reply));
    assert_eq!(a.requests(), 2);
}

// ---------------------------------------------------------------------------------------------
// Live changes

#[tokio::test]
async fn a_directory_change_is_picked_up_live() {
    let gw = Gateway::start().await;
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    assert_eq!(gw.get("/live/", "example.com").await.status, 404);

    gw.write("live.yaml", &route("live", &a, "prefix: /live/"));
    gw.wait_upstream("/live/", "a").await;

    gw.write("live.yaml", &route("live", &b, "prefix: /live/"));
    gw.wait_upstream("/live/", "b").await;

    gw.remove("live.yaml");
    gw.wait_status("/live/", 404).await;

    // A file in a subdirectory counts too.
    std::fs::create_dir(gw.dir.path().join("team")).unwrap();
    write_file(
        &gw.dir.path().join("team"),
        "live.yaml",
        &route("live", &a, "prefix: /live/"),
    );
    gw.wait_upstream("/live/", "a").await;
}

// ---------------------------------------------------------------------------------------------
// Protocols

#[tokio::test]
async fn http2_cleartext_clients_are_served() {
    let gw = Gateway::start().await;
    let a = Upstream::start("a").await;
    gw.write(
        "h2.yaml",
        &[
            route("h2", &a, "prefix: /h2/"),
            route("h2-grpc", &a, "prefix: /h2-grpc/\ngrpc: true"),
        ]
        .concat(),
    );
    gw.wait_upstream("/h2-grpc/", "a").await;

    let reply = gw
        .client
        .get_h2(&gw.url("/h2/x?y=1"), Some("example.com"))
        .await
        .expect("an h2c request through Envoy");
    let echo = served_by(&reply, "a");
    assert_eq!(echo["path"], "/x");
    assert_eq!(echo["query"], "y=1");
    // (The harness's h2c client sends the URL's authority, not the Host header it is given.)
    // Envoy speaks HTTP/1.1 upstream unless the Mapping says `grpc: true`.
    assert_eq!(echo["version"], "HTTP/1.1");

    let reply = gw
        .client
        .get_h2(&gw.url("/h2-grpc/x"), Some("example.com"))
        .await
        .expect("an h2c request through Envoy");
    assert_eq!(served_by(&reply, "a")["version"], "HTTP/2.0");
}

/// An upstream that accepts any HTTP/1.1 upgrade with `101 Switching Protocols` and then echoes
/// the bytes of the tunnel back, prefixed with `echo:`.
async fn upgrade_echo_upstream() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let head = read_head(&mut stream).await;
                let head = head.to_ascii_lowercase();
                if !head.contains("upgrade: websocket") {
                    let _ = stream
                        .write_all(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
                    )
                    .await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut out = b"echo:".to_vec();
                    out.extend_from_slice(&buf[..n]);
                    if stream.write_all(&out).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, task)
}

/// Reads an HTTP head (through the blank line) byte by byte, so nothing after it is consumed.
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Sends a WebSocket upgrade request for `path` to the gateway; returns the response head and
/// the open stream.
async fn upgrade(gw: &Gateway, path: &str) -> (String, tokio::net::TcpStream) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .expect("connect to Envoy");
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: example.com\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream))
        .await
        .expect("a response head within 5 s");
    (head, stream)
}

#[tokio::test]
async fn websocket_upgrades_only_where_allowed() {
    let gw = Gateway::start().await;
    let (addr, task) = upgrade_echo_upstream().await;
    gw.write(
        "ws.yaml",
        &[
            mapping(
                "ws",
                &format!(
                    "hostname: \"*\"\nprefix: /ws/\nservice: {addr}\nallow_upgrade: [websocket]"
                ),
            ),
            mapping(
                "no-ws",
                &format!("hostname: \"*\"\nprefix: /no-ws/\nservice: {addr}"),
            ),
        ]
        .concat(),
    );
    // Without an upgrade the upstream answers 426: both routes are live once both say so.
    gw.wait_status("/no-ws/", 426).await;
    gw.wait_status("/ws/", 426).await;

    let (head, mut stream) = upgrade(&gw, "/ws/chat").await;
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "the upgrade through /ws/ was answered: {head}"
    );
    stream.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an echo within 5 s")
        .unwrap();
    assert_eq!(&buf[..n], b"echo:hello");

    let (head, _) = upgrade(&gw, "/no-ws/chat").await;
    assert!(
        head.starts_with("HTTP/1.1 403"),
        "an upgrade on a Mapping without allow_upgrade was answered: {head}"
    );
    task.abort();
}

// ---------------------------------------------------------------------------------------------
// Regressions: bugs found earlier, each pinned by the scenario that showed it

#[tokio::test]
async fn envoy_initializes_promptly_without_any_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_file(
        dir.path(),
        "gateway.yaml",
        &format!(
            "apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: http, namespace: default}}
spec: {{port: {port}, protocol: HTTP, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}
---{HOST_ANY}"
        ),
    );
    let agent = Agent::start(dir.path()).await;
    let envoy = Envoy::start(agent.ads_address).await;
    let start = Instant::now();
    let mut last = (0, String::new());
    while start.elapsed() < Duration::from_secs(5) {
        last = envoy.ready().await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last,
        (200, "LIVE".to_owned()),
        "Envoy was not initialized 5 s after it connected (the agent's /readyz: {:?})",
        agent.readyz().await
    );
    let reply = Client::new()
        .get(&format!("http://127.0.0.1:{port}/nothing/"), None)
        .await
        .expect("the listener answers");
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn mapping_hostnames_match_case_insensitively() {
    let hosts = r#"
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: a, namespace: default}
spec: {hostname: a.example.com, requestPolicy: {insecure: {action: Route}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: shop, namespace: default}
spec: {hostname: "*.shop.example.com", requestPolicy: {insecure: {action: Route}}}
"#;
    let gw = Gateway::start_with_hosts(hosts).await;
    let (a, shop) = (Upstream::start("a").await, Upstream::start("shop").await);
    gw.write(
        "case.yaml",
        &[
            mapping(
                "case-a",
                &format!(
                    "hostname: a.example.com\nprefix: /case/\nservice: {}",
                    a.service()
                ),
            ),
            mapping(
                "case-shop",
                &format!(
                    "hostname: \"*.shop.example.com\"\nprefix: /case/\nservice: {}",
                    shop.service()
                ),
            ),
        ]
        .concat(),
    );
    gw.wait_for_request(
        Method::GET,
        "/case/",
        "eu.shop.example.com",
        &[],
        "eu.shop.example.com to be served by shop",
        |r| r.upstream() == Some("shop"),
    )
    .await;
    served_by(&gw.get("/case/", "a.example.com").await, "a");
    // Host names are case-insensitive (RFC 9110 §4.2.3); Envoy's domain lookup agrees.
    served_by(&gw.get("/case/", "A.Example.COM").await, "a");
    served_by(&gw.get("/case/", "EU.Shop.Example.com").await, "shop");
}
