//! Hostile but schema-valid resources served beside good ones through a real Envoy: each is
//! refused alone, with its reason and field, Envoy acknowledges the rest (no NACK), and the good
//! routes answer. Before the agent checked what Envoy accepts, any one of them made Envoy NACK
//! the whole update: on a fresh start nothing was served at all.

mod support;

use legate_agent::ir::{self, Reason};
use std::time::Duration;

use support::{Agent, Client, Envoy, Upstream, eventually, free_port, write_config};

/// How long Envoy may take to serve what it acknowledged.
const WAIT: Duration = Duration::from_secs(20);

/// One hostile Mapping: its name, the field its refusal must name, its spec (flow YAML, added
/// to `hostname: "*"` and a prefix of its own).
struct Hostile {
    name: String,
    field: &'static str,
    spec: String,
}

/// Every rule, one Mapping each: regexes RE2 refuses (prefix, headers, query, method, host,
/// rewrite, redirect), NUL/CR/LF where Envoy takes header values, names Envoy refuses, header
/// formatting commands, a zero connect timeout, a duration past Envoy's, an SNI with a NUL.
fn hostile_mappings() -> Vec<Hostile> {
    let service = "service: 127.0.0.1:1";
    let regexes = [
        "\\\\u0041",
        "\\\\x{100}",
        "/\\\\p{greek}",
        "/a**",
        "/a{1001}",
        "(?x)/a b",
        "(?<n>/a)",
        "/[a&&b]",
        "/[a[b]]",
        "/a{197}",
        "/\\\\<w",
        "/(",
    ];
    let mut cases: Vec<(&'static str, String)> = regexes
        .iter()
        .map(|r| {
            (
                "prefix",
                format!("prefix: \"{r}\", prefix_regex: true, {service}"),
            )
        })
        .collect();
    let others: [(&'static str, &str); 37] = [
        ("regex_headers.x-a", "regex_headers: {x-a: \"\"}"),
        (
            "regex_headers.x-a",
            "regex_headers: {x-a: \"\\\\U00000041\"}",
        ),
        (
            "regex_query_parameters.q",
            "regex_query_parameters: {q: \"a{2}{3}\"}",
        ),
        (
            "regex_rewrite.pattern",
            "regex_rewrite: {pattern: \"(?u)a\", substitution: x}",
        ),
        (
            "regex_rewrite.substitution",
            "regex_rewrite: {pattern: \"a\", substitution: \"/\\0\"}",
        ),
        ("headers", "headers: {\"\": \"1\"}"),
        ("headers", "headers: {\"x\\0\": \"1\"}"),
        ("query_parameters", "query_parameters: {\"\": \"1\"}"),
        ("rewrite", "rewrite: \"/x\\n\""),
        ("host_rewrite", "host_rewrite: \"a\\0\""),
        (
            "add_request_headers.x-a",
            "add_request_headers: {x-a: \"50%\"}",
        ),
        (
            "add_request_headers.x-a",
            "add_request_headers: {x-a: \"%FOO%\"}",
        ),
        (
            "add_response_headers.x-a",
            "add_response_headers: {x-a: \"a\\r\\nb\"}",
        ),
        ("add_request_headers", "add_request_headers: {\"x a\": b}"),
        ("allow_upgrade", "allow_upgrade: [\"\"]"),
        ("allow_upgrade", "allow_upgrade: [\"a\\0\"]"),
        ("connect_timeout_ms", "connect_timeout_ms: 0"),
        (
            "retry_policy.per_try_timeout",
            "retry_policy: {per_try_timeout: 9223372036s}",
        ),
        (
            "load_balancer.header",
            "load_balancer: {policy: ring_hash, header: \"x\\0\"}",
        ),
        (
            "load_balancer.cookie.name",
            "load_balancer: {policy: maglev, cookie: {name: \"a b\"}}",
        ),
        (
            "load_balancer.cookie.path",
            "load_balancer: {policy: ring_hash, cookie: {name: c, path: \"/\\n\"}}",
        ),
        (
            "load_balancer.cookie.ttl",
            "load_balancer: {policy: ring_hash, cookie: {name: c, ttl: 9223372036s}}",
        ),
        ("service", "service: \"bad\\0host\""),
        ("service", "service: \"https://sni\\0name\""),
        ("service", "service: \"sp ace\""),
        ("method", "method: \"\\\\U00000041\", method_regex: true"),
        ("host", "host: \"\", host_regex: true"),
        ("service", "host_redirect: true, service: \"a\\0b\""),
        (
            "path_redirect",
            "host_redirect: true, service: a.example, path_redirect: \"/\\n\"",
        ),
        (
            "prefix_redirect",
            "host_redirect: true, service: a.example, prefix_redirect: \"/\\0\"",
        ),
        (
            "regex_redirect.pattern",
            "host_redirect: true, service: a.example, regex_redirect: {pattern: \"a{2}{2}\", substitution: x}",
        ),
        (
            "regex_redirect.substitution",
            "host_redirect: true, service: a.example, regex_redirect: {pattern: a, substitution: \"\\r\"}",
        ),
        (
            "add_request_headers.x-a",
            "add_request_headers: {x-a: \"%REQ()%\"}",
        ),
        (
            "cors.origins[0]",
            "cors: {origins: [\"https://a\\0.example\"]}",
        ),
        (
            "cors.methods[1]",
            "cors: {methods: [GET, \"PUT\\r\\nX-Evil: 1\"]}",
        ),
        (
            "cors.exposed_headers[0]",
            "cors: {exposed_headers: [\"a\\nb\"]}",
        ),
        ("cors.max_age", "cors: {max_age: \"-1\"}"),
    ];
    for (field, spec) in others {
        let spec = if spec.contains("service:") {
            spec.to_owned()
        } else {
            format!("{spec}, {service}")
        };
        let spec = if spec.contains("prefix:") {
            spec
        } else {
            format!("prefix: /hostile/, {spec}")
        };
        cases.push((field, spec));
    }
    cases
        .into_iter()
        .enumerate()
        .map(|(i, (field, spec))| Hostile {
            name: format!("hostile-{i}"),
            field,
            spec,
        })
        .collect()
}

/// A Mapping for any hostname, unless its spec matches on the deprecated `host`.
fn mapping(name: &str, spec: &str) -> String {
    let hostname = if spec.starts_with("host:") || spec.contains(" host:") {
        ""
    } else {
        "hostname: \"*\", "
    };
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: {name}, namespace: default}}\nspec: {{{hostname}{spec}}}\n"
    )
}

/// Good Mappings, some with values at the edge of what Envoy takes: each must be served.
fn good_mappings(upstream: &str) -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "good",
            format!("prefix: /good/, service: {upstream}"),
            "/good/x",
        ),
        (
            "tricky-regex",
            format!(
                "prefix: \"^/tricky/[^/]+/\\\\d+\\\\.\\\\w*\\\\/?$\", prefix_regex: true, service: {upstream}"
            ),
            "/tricky/a/12.x/",
        ),
        (
            "upgrades-twice",
            format!(
                "prefix: /upgrades/, allow_upgrade: [websocket, WebSocket], use_websocket: true, service: {upstream}"
            ),
            "/upgrades/",
        ),
        (
            "formatted-headers",
            format!(
                "prefix: /formatted/, add_request_headers: {{x-a: \"100%%\", x-b: \"%DOWNSTREAM_REMOTE_ADDRESS%\", x-c: \"%REQ(x-d?x-e):10%\"}}, service: {upstream}"
            ),
            "/formatted/",
        ),
    ]
}

const HOST_ANY: &str = "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: any, namespace: default}\nspec: {hostname: \"*\", requestPolicy: {insecure: {action: Route}}}\n";

fn listener(name: &str, port: u16, extra: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {{name: {name}, namespace: default}}\nspec: {{port: {port}, protocol: HTTP, securityModel: XFP, {extra}hostBinding: {{namespace: {{from: ALL}}}}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_resources_are_refused_alone_and_envoy_serves_the_rest() {
    let upstream = Upstream::start("good").await;
    let dir = tempfile::tempdir().expect("a config directory");
    let port = free_port();
    let hostile = hostile_mappings();
    let good = good_mappings(&upstream.service());
    let mut yaml = [
        listener("http", port, ""),
        listener("no-stats-prefix", free_port(), "statsPrefix: \"\", "),
        HOST_ANY.to_owned(),
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: nul-host, namespace: default}\nspec: {hostname: \"bad\\0host\"}\n".to_owned(),
    ]
    .concat();
    for h in &hostile {
        yaml += &mapping(&h.name, &h.spec);
    }
    for (name, spec, _) in &good {
        yaml += &mapping(name, spec);
    }
    write_config(dir.path(), "all.yaml", &yaml);

    // Served from the start: Envoy acknowledges (the agent is ready only then), never NACKs,
    // and every good route answers.
    let agent = Agent::start(dir.path()).await;
    let mut envoy = Envoy::start(agent.ads_address).await;
    envoy.wait_ready().await;
    agent.wait_ready().await;
    let client = Client::new();
    for (name, _, path) in &good {
        let url = format!("http://127.0.0.1:{port}{path}");
        // The listener binds once Envoy has its routes: wait for the first answer.
        let reply = eventually(&format!("{name}: GET {path}"), WAIT, || async {
            client.get(&url, Some("example.com")).await.ok()
        })
        .await;
        assert_eq!(
            (reply.status, reply.upstream()),
            (200, Some("good")),
            "{name}: {path}; Envoy log:\n{}",
            envoy.log()
        );
    }
    assert_eq!(
        agent.nacks().await,
        0.0,
        "Envoy refused a configuration; log:\n{}",
        envoy.log()
    );

    // Each hostile resource is refused, as invalid, naming its field; the good ones are not.
    let loaded = legate_crds::loader::load_dir(dir.path()).expect("the directory");
    assert!(
        loaded.loaded.errors.is_empty(),
        "{:#?}",
        loaded.loaded.errors
    );
    let built = ir::build(&loaded.loaded.resources, &ir::Settings::default());
    let refusal = |name: &str| {
        built
            .rejections
            .iter()
            .find(|r| r.object.name == name)
            .map(|r| (r.reason, r.message.clone()))
    };
    for h in &hostile {
        let (reason, message) =
            refusal(&h.name).unwrap_or_else(|| panic!("{} ({}) is not refused", h.name, h.spec));
        assert_eq!(reason, Reason::Invalid, "{}: {message}", h.name);
        assert!(
            message.starts_with(&format!("{}: ", h.field))
                || message.starts_with(&format!("{} ", h.field)),
            "{} ({}) names {:?}: {message}",
            h.name,
            h.spec,
            h.field
        );
    }
    for (name, field) in [
        ("no-stats-prefix", "statsPrefix: "),
        ("nul-host", "hostname: "),
    ] {
        let (reason, message) = refusal(name).unwrap_or_else(|| panic!("{name} is not refused"));
        assert!(
            reason == Reason::Invalid && message.starts_with(field),
            "{name}: {reason} {message}"
        );
    }
    for (name, _, _) in &good {
        assert_eq!(refusal(name), None, "{name}");
    }
    assert!(hostile.len() >= 40, "{} hostile Mappings", hostile.len());
}
