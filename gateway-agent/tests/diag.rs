//! The diagnostics page through a real headless browser (Chromium): `make demo`'s configuration
//! plus a bad Mapping and one whose name is markup, served by the agent beside a real Envoy.
//! The browser's DOM must show the route table, the bad Mapping's error, and the markup as text.
//! The screenshot is kept as a test artifact (`target/tmp/diag.png`).

mod support;

use std::{path::PathBuf, process::Command};

use serde_json::Value;
use support::{
    Client, Upstream, eventually,
    gateway::{Gateway, HOST_ANY, WAIT, mapping, route},
};

/// Chromium from Debian (`make test-tools` installs it), or `LEGATE_CHROMIUM`.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("LEGATE_CHROMIUM") {
        return path.into();
    }
    let path = PathBuf::from("/usr/bin/chromium");
    assert!(
        path.exists(),
        "{} is missing: run `make test-tools`",
        path.display()
    );
    path
}

/// Runs headless Chromium on `url` with `args` (`--dump-dom`, `--screenshot=...`); its stdout.
fn browse(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args([
            "--no-first-run",
            "--disable-extensions",
            "--window-size=1200,1800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("a UTF-8 DOM")
}

/// The demo's Mappings (config/samples/local/mappings.yaml), on the test's upstreams.
async fn demo(gw: &Gateway, api: &Upstream, canary: &Upstream) {
    gw.write(
        "demo.yaml",
        &[
            route("backend", api, "prefix: /backend/"),
            route("api", api, "prefix: /api/\nrewrite: /v1/"),
            route("canary-stable", api, "prefix: /canary/"),
            route("canary-next", canary, "prefix: /canary/\nweight: 20"),
        ]
        .concat(),
    );
    // A regex that does not compile, and a name that is markup.
    gw.write(
        "bad.yaml",
        &[
            route("bad", api, "prefix: \"/x/([0-9\"\nprefix_regex: true"),
            mapping(
                "\"<script>alert(1)</script>\"",
                "hostname: \"*\"\nprefix: /s/\nservice: 127.0.0.1:1",
            ),
        ]
        .concat(),
    );
    gw.wait_upstream("/backend/", "api").await;
}

#[tokio::test]
async fn a_browser_shows_the_route_table_the_errors_and_markup_as_text() {
    let api = Upstream::start("api").await;
    let canary = Upstream::start("canary").await;
    let gw = Gateway::start_observed(HOST_ANY).await;
    demo(&gw, &api, &canary).await;
    for _ in 0..3 {
        assert_eq!(gw.get("/backend/", "example.com").await.status, 200);
    }
    let base = format!("{}/diag/", gw.agent.metrics_url);
    // The page once Envoy acknowledged what the agent publishes.
    let client = Client::new();
    let json: Value = eventually(
        "the page to show the acknowledged configuration",
        WAIT,
        || {
            let url = format!("{base}?json=true");
            let client = &client;
            async move {
                let page: Value = client.get(&url, None).await.ok()?.json();
                // Every file written: a change is built as soon as it is written, so the
                // first builds may hold only some of them.
                let done = page["envoy"]["acknowledged"] == page["envoy"]["published"]
                    && page["summary"]["routes"].as_u64() >= Some(5)
                    && page["summary"]["errors"] == 2;
                done.then_some(page)
            }
        },
    )
    .await;
    assert_eq!(json["summary"]["errors"], 2, "{json:#}");

    let dom = browse(&base, &["--dump-dom"]);
    // The route table in Envoy's order (Emissary's route weight: the longest prefix first, a
    // canary before the rest of its group); no secure copies, since insecure requests are
    // routed alike.
    let table = dom
        .split("class=\"route-table\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .expect("a route table");
    let paths: Vec<&str> = table
        .split("<tr><td>")
        .skip(1)
        .filter_map(|row| row.split("<code>").nth(1)?.split("</code>").next())
        .collect();
    assert_eq!(
        paths,
        [
            "prefix /backend/",
            "prefix /__probe/",
            "prefix /canary/",
            "prefix /canary/",
            "prefix /api/",
        ]
    );
    for text in [
        "rewrite <code>prefix → /v1/</code>",
        "canary: weight 20%",
        "canary: the rest",
        "Mapping default/canary-next",
    ] {
        assert!(
            table.contains(text),
            "{text:?} is not in the route table:\n{table}"
        );
    }
    // The backend's cluster: Envoy's view of its endpoint, every request a success.
    let cluster = dom
        .split("<tr>")
        .find(|row| row.contains("Mapping default/backend") && row.contains("dot "))
        .expect("the backend's cluster");
    assert!(cluster.contains("dot green"), "{cluster}");
    assert!(cluster.contains("healthy"), "{cluster}");
    // The bad Mapping's row is an error, with its reason and the field.
    let bad = dom
        .split("<tr")
        .find(|row| row.contains("Mapping default/bad"))
        .expect("a row for the bad Mapping");
    assert!(bad.contains("class=\"error\""), "{bad}");
    assert!(bad.contains("Invalid"), "{bad}");
    assert!(bad.contains("invalid regular expression"), "{bad}");
    // The name that is markup (refused: not a DNS-1123 name) is text: the browser made no
    // script element of it.
    assert!(
        dom.contains("metadata.name: \"&lt;script&gt;alert(1)&lt;/script&gt;\" is not a DNS-1123"),
        "{dom}"
    );
    assert!(!dom.contains("<script"), "{dom}");

    // Errors only: the bad Mappings, not the good ones.
    let errors = browse(&format!("{base}?errors=true"), &["--dump-dom"]);
    assert!(errors.contains("Mapping default/bad"), "{errors}");
    assert!(!errors.contains("Mapping default/backend"), "{errors}");

    // One resource: its routes and what it wrote.
    let one = browse(
        &format!("{base}?resource=Mapping/default/api"),
        &["--dump-dom"],
    );
    assert!(one.contains("prefix /api/"), "{one}");
    assert!(
        one.contains("&quot;rewrite&quot;: &quot;/v1/&quot;")
            || one.contains("\"rewrite\": \"/v1/\""),
        "{one}"
    );

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("diag.png");
    browse(&base, &[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    eprintln!("screenshot: {}", shot.display());
}
