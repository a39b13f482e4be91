#![allow(dead_code)] // the tests and the demo each use part of it

//! An echo upstream: answers every request with what it received, as JSON. Used by the
//! data-path tests (through `support`) and by `make demo` (`examples/upstream.rs`).

use std::{
    collections::{BTreeMap, HashSet},
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use serde_json::{Value, json};

/// An HTTP server on 127.0.0.1 (HTTP/1.1 and h2c, chosen per connection) that answers every
/// request with `{"upstream", "method", "path", "query", "version", "headers", "body"}` and the
/// response header `x-upstream: <name>`. `?ms=N` on `/slow` sleeps N ms first; `?status=N`
/// on any path answers with that status; `?etag=V` adds the response header `etag: "V"`;
/// `?type=T` answers `content-type: T` (the body is the same JSON); `?fail_once=K` answers 503
/// the first time it sees `K`, then as usual. The echo's `"connection"` numbers the connection
/// the request came on (1, 2, ... in the order the upstream accepted them). [`HEALTH_PATH`]
/// answers 503 while [`Upstream::set_healthy`] says so, and as any path otherwise.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// The path an active health check asks; the rest of the upstream answers as ever.
pub const HEALTH_PATH: &str = "/_health";

impl Upstream {
    pub async fn start(name: &str) -> Self {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("bind an upstream port")
    }

    /// On a given address (the demo's fixed ports).
    pub async fn start_on(name: &str, address: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicUsize::new(0));
        let healthy = Arc::new(AtomicBool::new(true));
        let (name_owned, counter) = (Arc::<str>::from(name), requests.clone());
        let health = healthy.clone();
        let failed: Arc<Mutex<HashSet<String>>> = Arc::default();
        let task = tokio::spawn(async move {
            let mut connections = 0;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                connections += 1;
                let (name, counter, failed) = (name_owned.clone(), counter.clone(), failed.clone());
                let health = health.clone();
                let connection = connections;
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        let healthy = health.load(Ordering::Relaxed);
                        echo(name.clone(), connection, failed.clone(), healthy, request)
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            name: name.to_owned(),
            addr,
            requests,
            healthy,
            task,
        })
    }

    /// Whether [`HEALTH_PATH`] answers 200 (from the start) or 503.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, as a Mapping's `service` names it.
    pub fn service(&self) -> String {
        self.addr.to_string()
    }

    /// How many requests it has answered (or is answering).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo(
    name: Arc<str>,
    connection: usize,
    failed: Arc<Mutex<HashSet<String>>>,
    healthy: bool,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let query = parts.uri.query().map(str::to_owned);
    let params: BTreeMap<String, String> = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if parts.uri.path() == "/slow" {
        let ms = params
            .get("ms")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let fail = params.get("fail_once").is_some_and(|key| {
        failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone())
    });
    let status = params
        .get("status")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| hyper::StatusCode::from_u16(s).ok())
        .filter(|_| !fail)
        .unwrap_or(if fail {
            hyper::StatusCode::SERVICE_UNAVAILABLE
        } else {
            hyper::StatusCode::OK
        });
    let status = if parts.uri.path() == HEALTH_PATH && !healthy {
        hyper::StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    };
    let mut headers = serde_json::Map::new();
    for (key, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(key.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(key.as_str().to_owned(), Value::String(value));
            }
        }
    }
    // HTTP/2 carries the host as :authority, which hyper leaves in the URI.
    if let Some(authority) = parts.uri.authority() {
        headers
            .entry("host")
            .or_insert_with(|| Value::String(authority.to_string()));
    }
    let answer = json!({
        "upstream": &*name,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": query,
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "connection": connection,
    });
    let mut response = Response::builder()
        .status(status)
        .header(
            "content-type",
            params
                .get("type")
                .map_or("application/json", String::as_str),
        )
        .header("x-upstream", &*name);
    if let Some(etag) = params.get("etag") {
        response = response.header("etag", format!("\"{etag}\""));
    }
    let response = response
        .body(Full::new(Bytes::from(answer.to_string())))
        .expect("a valid response");
    Ok(response)
}
