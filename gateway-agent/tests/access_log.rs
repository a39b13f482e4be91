//! Access logs through real Envoy: every request a line on Envoy's standard output (what
//! `kubectl logs` shows), in Emissary's text format by default or as the gateway Module's
//! `envoy_log_type`, `envoy_log_format` and `envoy_log_path` say (Emissary's
//! `envoy/v3/v3listener.py` `access_log`; its tests: `python/tests/src/tests/kat/t_envoy_logs.py`).
//!
//! Each test sends requests only the configuration it wrote routes, then waits for their lines:
//! Envoy writes access logs in batches.

mod support;

use pretty_assertions::assert_eq;
use reqwest::Method;
use serde_json::Value;
use support::{
    Upstream, eventually,
    gateway::{self, Gateway, WAIT, route, served_by},
};

/// Sends GET `path` with a user agent of its own, until it is served by `app`; each on a new
/// connection, so that it reaches the listener as the last configuration made it (a changed
/// listener keeps its open connections until they drain).
async fn request(gw: &Gateway, path: &str) {
    let headers = [("user-agent", "legate-test/1"), ("connection", "close")];
    // Until the route serves (those requests log with their query), then once: a change is
    // built as soon as it is written, so the log format may be served before the route.
    gw.wait_for_request(
        Method::GET,
        &format!("{path}?ready"),
        "example.com",
        &headers,
        &format!("{path} to be served"),
        |r| r.status == 200,
    )
    .await;
    let reply = gw.send(Method::GET, path, "example.com", &headers).await;
    served_by(&reply, "app");
}

/// The first line of `log` (once it has one) that holds `needle`.
async fn line_with(log: impl Fn() -> String, needle: &str) -> String {
    eventually(&format!("an access log line with {needle:?}"), WAIT, || {
        let text = log();
        async move { text.lines().find(|l| l.contains(needle)).map(str::to_owned) }
    })
    .await
}

/// The first JSON line of Envoy's output whose `field` is `value`.
async fn json_line(gw: &Gateway, field: &str, value: &str) -> Value {
    eventually(
        &format!("a JSON access log line with {field}: {value:?}"),
        WAIT,
        || {
            let text = gw.envoy.log();
            async move {
                text.lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|o| o[field] == value)
            }
        },
    )
    .await
}

#[tokio::test]
async fn by_default_each_request_is_a_line_of_emissarys_text_format_on_stdout() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write("app.yaml", &route("app", &app, "prefix: /app/"));
    request(&gw, "/app/hello").await;
    let line = line_with(|| gw.envoy.log(), "\"GET /app/hello HTTP/1.1\" 200").await;
    // ACCESS [START_TIME] "METHOD PATH PROTOCOL" CODE FLAGS RECEIVED SENT DURATION UPSTREAM_TIME
    // "XFF" "USER-AGENT" "REQUEST-ID" "AUTHORITY" "UPSTREAM_HOST"
    let format = regex::Regex::new(
        r#"^ACCESS \[[^\]]+\] "GET /app/hello HTTP/1\.1" 200 - 0 (\d+) \d+ \d+ "[^"]*" "legate-test/1" "[0-9a-f-]{36}" "example\.com" "([^"]+)"$"#,
    )
    .unwrap();
    let captures = format
        .captures(&line)
        .unwrap_or_else(|| panic!("not Emissary's format: {line}"));
    assert!(captures[1].parse::<u64>().unwrap() > 0, "{line}");
    assert_eq!(&captures[2], app.service(), "{line}");
}

#[tokio::test]
async fn json_logs_the_modules_fields_one_object_a_line() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write(
        "module.yaml",
        &gateway::module(
            "envoy_log_type: json\n\
             envoy_log_format: {method: \"%REQ(:METHOD)%\", path: \"%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%\", \
             status: \"%RESPONSE_CODE%\", agent: \"%REQ(USER-AGENT)%\", when: \"%START_TIME(%Y)%\"}",
        ),
    );
    gw.write("app.yaml", &route("app", &app, "prefix: /app/"));
    request(&gw, "/app/json").await;
    let object = json_line(&gw, "path", "/app/json").await;
    let year = object["when"].as_str().map(str::len);
    assert_eq!(year, Some(4), "{object}");
    assert_eq!(
        object,
        serde_json::json!({
            "method": "GET",
            "path": "/app/json",
            "status": 200,
            "agent": "legate-test/1",
            "when": object["when"],
        })
    );
}

#[tokio::test]
async fn json_without_a_format_logs_emissarys_fields() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write("module.yaml", &gateway::module("envoy_log_type: json"));
    gw.write("app.yaml", &route("app", &app, "prefix: /app/"));
    request(&gw, "/app/fields").await;
    let object = json_line(&gw, "path", "/app/fields").await;
    assert_eq!(object["method"], "GET");
    assert_eq!(object["response_code"], 200);
    assert_eq!(object["user_agent"], "legate-test/1");
    assert_eq!(object["authority"], "example.com");
    assert_eq!(object["upstream_host"], app.service().as_str());
    assert!(object["upstream_cluster"].as_str().is_some(), "{object}");
}

/// Every command Legate passes on is one Envoy takes: a format using them all is served, not
/// refused (a NACK would keep the old listener, whose default format has no `CMDS`).
#[tokio::test]
async fn every_command_legate_passes_on_is_taken_by_envoy_and_a_log_path_is_a_file() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start().await;
    let file = gw.dir.path().join("access.log");
    let commands = legate_agent::ir::access_log::PLAIN
        .iter()
        .map(|c| format!("%{c}%"))
        .collect::<Vec<_>>()
        .join(" ");
    let format = format!(
        "CMDS {commands} %REQ(x-a?x-b):5% %RESP(content-type)% %TRAILER(grpc-status)% \
         %START_TIME(%Y-%m-%dT%H:%M:%S%z)% 100%%"
    );
    gw.write(
        "module.yaml",
        &gateway::module(&format!(
            "envoy_log_format: \"{format}\"\nenvoy_log_path: {}",
            file.display()
        )),
    );
    gw.write("app.yaml", &route("app", &app, "prefix: /app/"));
    request(&gw, "/app/every").await;
    let line = line_with(
        || std::fs::read_to_string(&file).unwrap_or_default(),
        "CMDS ",
    )
    .await;
    assert!(line.ends_with(" 100%"), "{line}");
    assert_eq!(gw.agent.nacks().await, 0.0);
}

/// A format Envoy would refuse is refused on the Module, naming the command; Emissary's format
/// is used meanwhile, and nothing is NACKed.
#[tokio::test]
async fn an_unknown_command_is_refused_and_emissarys_format_used() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start().await;
    gw.write(
        "module.yaml",
        &gateway::module("envoy_log_format: \"SEEN %NO_SUCH_COMMAND%\""),
    );
    gw.write("app.yaml", &route("app", &app, "prefix: /app/"));
    request(&gw, "/app/unknown").await;
    let line = line_with(|| gw.envoy.log(), "\"GET /app/unknown HTTP/1.1\" 200").await;
    assert!(line.starts_with("ACCESS ["), "{line}");
    assert_eq!(gw.agent.nacks().await, 0.0);
    let refused = line_with(|| gw.agent.log(), "NO_SUCH_COMMAND").await;
    assert!(
        refused.contains(
            "spec.config.envoy_log_format: %NO_SUCH_COMMAND% is not an access-log command"
        ),
        "{refused}"
    );
}
