//! The admin endpoint: `/metrics` (Prometheus text), `/healthz` (the process is alive) and
//! `/readyz` (the program says it can do its job; 503 with the reason until then).
//!
//! `/metrics` is OpenMetrics, unless the program appends metrics of another process (the
//! agent appends its Envoy's): then it is all Prometheus text 0.0.4, one scrape for both.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, Uri},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{encoding::text::encode, registry::Registry};

/// Whether the program is ready, and if not, why; a ready program may carry a note (say, a
/// configuration Envoy refused while it keeps serving the last good one). Cheap to clone; all
/// clones share one state.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<Mutex<Result<Option<String>, String>>>);

impl Readiness {
    /// Starts not ready, with the reason given.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(Arc::new(Mutex::new(Err(reason.into()))))
    }

    pub fn set_ready(&self) {
        *self.lock() = Ok(None);
    }

    /// Ready, with something worth knowing.
    pub fn set_ready_noting(&self, note: impl Into<String>) {
        *self.lock() = Ok(Some(note.into()));
    }

    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.lock() = Err(reason.into());
    }

    pub fn get(&self) -> Result<Option<String>, String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Result<Option<String>, String>> {
        // A panic elsewhere while holding the lock leaves a plain value behind; keep serving it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Metrics of another process to serve after the program's own, in Prometheus text 0.0.4: called
/// on every scrape with the scrape's query string (e.g. Envoy's `usedonly` or `filter`). It runs
/// before the program's own metrics are encoded, so it may set gauges about itself.
pub type Appendix =
    Arc<dyn Fn(Option<String>) -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    readiness: Readiness,
    appendix: Option<Appendix>,
}

/// A bound admin server, ready to run.
pub struct AdminServer {
    listener: tokio::net::TcpListener,
    state: AdminState,
    routes: Router,
}

impl AdminServer {
    /// Binds now, so a busy port fails at start-up rather than later.
    pub async fn bind(
        address: SocketAddr,
        registry: Registry,
        readiness: Readiness,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let state = AdminState {
            registry: Arc::new(registry),
            readiness,
            appendix: None,
        };
        Ok(Self {
            listener,
            state,
            routes: Router::new(),
        })
    }

    /// Adds routes of the program's own (e.g. the agent's `/drain`) beside the standard ones.
    pub fn merge(mut self, routes: Router) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// Serves `appendix` after the program's own metrics on `/metrics`.
    pub fn append_metrics(mut self, appendix: Appendix) -> Self {
        self.state.appendix = Some(appendix);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // The peer's address reaches handlers that decide by it (the agent's `/drain`).
        let service = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(self.state)
            .merge(self.routes)
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

async fn metrics(State(state): State<AdminState>, uri: Uri) -> impl IntoResponse {
    let appended = match &state.appendix {
        Some(appendix) => Some(appendix(uri.query().map(str::to_owned)).await),
        None => None,
    };
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => {
            let (content_type, body) = match appended {
                None => (
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Some(appended) => {
                    let mut text = crate::prometheus_text::from_openmetrics(&body);
                    text.push_str(&appended);
                    if !text.ends_with('\n') {
                        text.push('\n');
                    }
                    ("text/plain; version=0.0.4; charset=utf-8", text)
                }
            };
            (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, content_type)],
                body,
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response(),
    }
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    match state.readiness.get() {
        Ok(None) => (StatusCode::OK, "ok\n".to_owned()),
        Ok(Some(note)) => (StatusCode::OK, format!("ok; {note}\n")),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(address: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
        (status, body)
    }

    #[tokio::test]
    async fn serves_health_readiness_and_metrics() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("test_events", "Events seen", counter.clone());
        counter.inc();
        let readiness = Readiness::new("no configuration acknowledged yet");
        let server = AdminServer::bind("127.0.0.1:0".parse().unwrap(), registry, readiness.clone())
            .await
            .unwrap();
        let address = server.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));

        assert_eq!(get(address, "/healthz").await, (200, "ok\n".into()));
        assert_eq!(
            get(address, "/readyz").await,
            (503, "not ready: no configuration acknowledged yet\n".into())
        );
        readiness.set_ready();
        assert_eq!(get(address, "/readyz").await, (200, "ok\n".into()));
        readiness.set_ready_noting("Envoy refused version abc");
        assert_eq!(
            get(address, "/readyz").await,
            (200, "ok; Envoy refused version abc\n".into())
        );
        let (status, body) = get(address, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("test_events_total 1"), "{body}");
        assert_eq!(get(address, "/nope").await.0, 404);

        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn appended_metrics_follow_the_programs_own_as_prometheus_text() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("test_events", "Events seen", counter.clone());
        let appendix: Appendix = Arc::new(|query| {
            Box::pin(async move {
                format!(
                    "# TYPE envoy_up gauge\nenvoy_up{{query=\"{}\"}} 1",
                    query.unwrap_or_default()
                )
            })
        });
        let server = AdminServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            registry,
            Readiness::new("-"),
        )
        .await
        .unwrap()
        .append_metrics(appendix);
        let address = server.local_addr().unwrap();
        let task = tokio::spawn(server.serve(std::future::pending()));

        let (status, body) = get(address, "/metrics?usedonly").await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            "# HELP test_events_total Events seen.\n# TYPE test_events_total counter\n\
             test_events_total 0\n# TYPE envoy_up gauge\nenvoy_up{query=\"usedonly\"} 1\n"
        );
        task.abort();
    }
}
