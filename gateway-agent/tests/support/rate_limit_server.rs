//! A real `envoy.service.ratelimit.v3.RateLimitService` gRPC server (tonic, cleartext HTTP/2),
//! as Emissary's KAT `RLSGRPC` plays it: it records every request's domain and descriptors,
//! allows the first `limit` requests of each set of descriptors and answers `OVER_LIMIT` past
//! that, and can be stopped (its port then refuses connections) and started again on the same
//! port.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use envoy_types::pb::envoy::service::ratelimit::v3::{
    RateLimitRequest, RateLimitResponse,
    rate_limit_response::Code,
    rate_limit_service_server::{RateLimitService, RateLimitServiceServer},
};

use super::eventually;

/// How long stopping may take: Envoy's connections are asked to go away (HTTP/2 GOAWAY).
const STOP_WAIT: Duration = Duration::from_secs(10);

/// One descriptor as the server received it: its entries as `(key, value)`.
pub type Descriptor = Vec<(String, String)>;

/// One call: the domain and the descriptors, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Call {
    pub domain: String,
    pub descriptors: Vec<Descriptor>,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// Calls seen per set of descriptors (and domain).
    counts: HashMap<Call, usize>,
}

#[derive(Clone)]
struct Service {
    state: Arc<Mutex<State>>,
    limit: usize,
}

#[tonic::async_trait]
impl RateLimitService for Service {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        let request = request.into_inner();
        let call = Call {
            domain: request.domain,
            descriptors: request
                .descriptors
                .into_iter()
                .map(|d| d.entries.into_iter().map(|e| (e.key, e.value)).collect())
                .collect(),
        };
        let mut state = self.state.lock().expect("the state lock");
        state.calls.push(call.clone());
        let seen = state.counts.entry(call).or_default();
        *seen += 1;
        let code = if *seen > self.limit {
            Code::OverLimit
        } else {
            Code::Ok
        };
        Ok(tonic::Response::new(RateLimitResponse {
            overall_code: code as i32,
            ..Default::default()
        }))
    }
}

/// The server; stopped when dropped.
pub struct RateLimitServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    limit: usize,
    task: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl RateLimitServer {
    /// A server on a free port allowing `limit` requests per set of descriptors.
    pub async fn start(limit: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the rate-limit server");
        let addr = listener.local_addr().expect("its address");
        let mut server = Self {
            addr,
            state: Arc::default(),
            limit,
            task: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let service = Service {
            state: self.state.clone(),
            limit: self.limit,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(RateLimitServiceServer::new(service))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
        });
        self.task = Some((stop, task));
    }

    /// `host:port`, as a RateLimitService's `service`.
    pub fn service(&self) -> String {
        self.addr.to_string()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().expect("the state lock").calls.clone()
    }

    /// Forgets the calls recorded (not the counts).
    pub fn clear(&self) {
        self.state.lock().expect("the state lock").calls.clear();
    }

    /// Stops serving: its connections are closed (gracefully) and its port refuses new ones.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.task.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(STOP_WAIT, task).await;
        }
        let addr = self.addr;
        eventually(
            "the rate-limit server to refuse connections",
            STOP_WAIT,
            || async move {
                tokio::net::TcpStream::connect(addr)
                    .await
                    .is_err()
                    .then_some(())
            },
        )
        .await;
    }
}

impl Drop for RateLimitServer {
    fn drop(&mut self) {
        if let Some((_, task)) = self.task.take() {
            task.abort();
        }
    }
}
