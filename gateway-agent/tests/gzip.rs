//! The `ambassador` Module's `gzip` on the data path: real Envoy compresses what the echo
//! upstream answers, as Emissary configures it (`python/ambassador/src/ambassador/envoy/v3/
//! v3httpfilter.py`, `V3HTTPFilter_gzip`; its tests: `python/tests/src/tests/kat/t_gzip.py`).
//!
//! Each test has its own gateway. A test waits for a response that only the Module it wrote can
//! produce (something compressed) before it asserts what is not compressed, so a negative answer
//! never comes from a configuration that has not arrived yet.

mod support;

use std::{
    io::Read,
    time::{Duration, Instant},
};

use pretty_assertions::assert_eq;
use serde_json::Value;
use support::{
    Upstream,
    gateway::{self, Gateway, WAIT, route},
};

/// The `ambassador` Module in the agent's namespace with `gzip: {gzip}`.
fn module(gzip: &str) -> String {
    gateway::module(&format!("gzip: {gzip}"))
}

/// Enough JSON (the echo of a query this long) to be worth compressing under any setting here.
fn padded(path: &str) -> String {
    format!("{path}?pad={}", "abcdefgh".repeat(500))
}

/// An answer as bytes: the client asks for no decoding, so a gzipped body stays gzipped.
#[derive(Debug)]
struct Answer {
    status: u16,
    encoding: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn gzipped(&self) -> bool {
        self.status == 200 && self.encoding.as_deref() == Some("gzip")
    }

    fn plain(&self) -> bool {
        self.status == 200 && self.encoding.is_none()
    }

    /// The upstream's JSON echo, gunzipped when it is gzipped.
    fn echo(&self) -> Value {
        let text = if self.gzipped() {
            let mut text = String::new();
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_string(&mut text)
                .unwrap_or_else(|e| panic!("a gzip body ({e}): {self:?}"));
            text
        } else {
            String::from_utf8_lossy(&self.body).into_owned()
        };
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON ({e}): {text}"))
    }
}

/// GET `path` through Envoy over HTTP/1.1, with `Accept-Encoding: gzip` when `gzip`.
async fn get(gw: &Gateway, path: &str, gzip: bool) -> Answer {
    let client = gw.client.http1();
    let mut request = client.get(gw.url(path)).header("host", "example.com");
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} through Envoy: {e}"));
    let status = response.status().as_u16();
    let encoding = response
        .headers()
        .get("content-encoding")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("the body of GET {path}: {e}"))
        .to_vec();
    Answer {
        status,
        encoding,
        body,
    }
}

/// Asks (with `Accept-Encoding: gzip`) until `path` comes back gzipped: the Module is applied.
async fn wait_gzipped(gw: &Gateway, path: &str) -> Answer {
    let start = Instant::now();
    loop {
        let answer = get(gw, path, true).await;
        if answer.gzipped() {
            return answer;
        }
        assert!(
            start.elapsed() < WAIT,
            "timed out after {WAIT:?} waiting for {path} to be gzipped; last answer: status {}, \
             content-encoding {:?}",
            answer.status,
            answer.encoding
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks until `path` comes back 200 and not compressed.
async fn wait_plain(gw: &Gateway, path: &str) -> Answer {
    let start = Instant::now();
    loop {
        let answer = get(gw, path, true).await;
        if answer.plain() {
            return answer;
        }
        assert!(
            start.elapsed() < WAIT,
            "timed out after {WAIT:?} waiting for {path} to be served uncompressed; last \
             answer: status {}, content-encoding {:?}",
            answer.status,
            answer.encoding
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn gzip_empty_compresses_for_clients_that_accept_it_with_emissarys_defaults() {
    // t_gzip.py's GzipMinimumConfigTest: a bare `gzip` turns compression on.
    let gw = Gateway::start().await;
    let up = Upstream::start("gz").await;
    gw.write("route.yaml", &route("gz", &up, "prefix: /gz/"));
    gw.write("module.yaml", &module("{}"));

    let path = padded("/gz/big");
    let answer = wait_gzipped(&gw, &path).await;
    let echo = answer.echo();
    assert_eq!(echo["upstream"], "gz");
    assert_eq!(echo["path"], "/big");
    assert_eq!(
        echo["query"].as_str().map(str::len),
        path.split_once('?').map(|(_, q)| q.len())
    );
    assert!(
        answer.body.len() < echo.to_string().len(),
        "compressed: {} bytes for {}",
        answer.body.len(),
        echo.to_string().len()
    );
    // Envoy's default: the upstream still sees `Accept-Encoding` (Emissary leaves
    // `remove_accept_encoding_header` unset).
    assert_eq!(echo["headers"]["accept-encoding"], "gzip");

    // A client that does not ask for gzip gets the upstream's bytes.
    let answer = get(&gw, &path, false).await;
    assert!(answer.plain(), "{answer:?}");
    assert_eq!(answer.echo()["upstream"], "gz");

    // Envoy's default min_content_length, 30 bytes: an echo without padding (a few hundred
    // bytes) is compressed too, and so is a response with an ETag (disable_on_etag_header unset).
    assert!(get(&gw, "/gz/small", true).await.gzipped());
    assert!(get(&gw, "/gz/tagged?etag=v1", true).await.gzipped());
}

#[tokio::test]
async fn a_response_shorter_than_min_content_length_is_not_compressed() {
    // t_gzip.py's GzipTest sets min_content_length (32) and window_bits (15); the echo of a
    // request without padding is a few hundred bytes, under 2000.
    let gw = Gateway::start().await;
    let up = Upstream::start("gz").await;
    gw.write("route.yaml", &route("gz", &up, "prefix: /gz/"));
    gw.write(
        "module.yaml",
        &module("{min_content_length: 2000, window_bits: 15, remove_accept_encoding_header: true}"),
    );

    let echo = wait_gzipped(&gw, &padded("/gz/big")).await.echo();
    // remove_accept_encoding_header: the upstream is not told what the client accepts.
    assert_eq!(echo["headers"].get("accept-encoding"), None, "{echo}");

    let small = get(&gw, "/gz/small", true).await;
    assert!(small.plain(), "{small:?}");
    assert!(small.body.len() < 2000, "{} bytes", small.body.len());
    assert_eq!(small.echo()["path"], "/small");
}

#[tokio::test]
async fn a_content_type_not_listed_is_not_compressed() {
    // t_gzip.py's GzipTest (text/plain listed: compressed) and GzipNotSupportedContentTypeTest
    // (application/json listed, the response is not: no Content-Encoding).
    let gw = Gateway::start().await;
    let up = Upstream::start("gz").await;
    gw.write("route.yaml", &route("gz", &up, "prefix: /gz/"));
    gw.write("module.yaml", &module("{content_type: [text/plain]}"));

    let text = wait_gzipped(&gw, &padded("/gz/text").replace('?', "?type=text/plain&")).await;
    assert_eq!(text.echo()["path"], "/text");

    let json = get(&gw, &padded("/gz/json"), true).await;
    assert!(json.plain(), "{json:?}");
    assert_eq!(json.echo()["path"], "/json");
}

#[tokio::test]
async fn with_disable_on_etag_header_a_response_with_an_etag_is_not_compressed() {
    let gw = Gateway::start().await;
    let up = Upstream::start("gz").await;
    gw.write("route.yaml", &route("gz", &up, "prefix: /gz/"));
    gw.write("module.yaml", &module("{disable_on_etag_header: true}"));

    wait_gzipped(&gw, &padded("/gz/untagged")).await;

    let tagged = get(&gw, &padded("/gz/tagged").replace('?', "?etag=v1&"), true).await;
    assert!(tagged.plain(), "{tagged:?}");
    assert_eq!(tagged.echo()["path"], "/tagged");
}

#[tokio::test]
async fn an_invalid_gzip_turns_compression_off_and_takes_nothing_else_down() {
    let gw = Gateway::start().await;
    let up = Upstream::start("gz").await;
    gw.write("route.yaml", &route("gz", &up, "prefix: /gz/"));
    gw.write("module.yaml", &module("{}"));
    let path = padded("/gz/big");
    wait_gzipped(&gw, &path).await;

    // Not one of Envoy's level names: Emissary's configuration would not load at all; here the
    // Module is rejected and the route keeps serving, uncompressed.
    gw.write("module.yaml", &module("{compression_level: LOUDEST}"));
    let answer = wait_plain(&gw, &path).await;
    assert_eq!(answer.echo()["upstream"], "gz");
    assert_eq!(gw.agent.nacks().await, 0.0, "Envoy refused nothing");
}
