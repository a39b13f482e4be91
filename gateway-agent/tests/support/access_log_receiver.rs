//! A real `envoy.service.accesslog.v3.AccessLogService` gRPC server (tonic, cleartext HTTP/2),
//! as Emissary's KAT plays one for `t_logservice.py`: it keeps every entry Envoy streams to it,
//! each with the `log_name` its stream started with, reduced to what the tests look at.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use envoy_types::pb::envoy::{
    config::core::v3::RequestMethod,
    service::accesslog::v3::{
        StreamAccessLogsMessage, StreamAccessLogsResponse,
        access_log_service_server::{AccessLogService, AccessLogServiceServer},
        stream_access_logs_message::LogEntries,
    },
};
use tokio_stream::StreamExt;

/// One HTTP entry (driver `http`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpEntry {
    pub log_name: String,
    pub method: String,
    /// The client's path (Envoy's `original_path` when a route rewrote it).
    pub path: String,
    /// The path sent upstream.
    pub upstream_path: String,
    pub authority: String,
    pub status: u32,
    pub request_headers: BTreeMap<String, String>,
    pub response_headers: BTreeMap<String, String>,
    pub response_trailers: BTreeMap<String, String>,
    pub upstream_cluster: String,
}

/// One TCP entry (driver `tcp`): a request or a connection, without HTTP details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpEntry {
    pub log_name: String,
    pub upstream_cluster: String,
    pub received_bytes: u64,
    pub sent_bytes: u64,
}

#[derive(Default)]
struct State {
    http: Vec<HttpEntry>,
    tcp: Vec<TcpEntry>,
}

#[derive(Clone)]
struct Service {
    state: Arc<Mutex<State>>,
}

#[tonic::async_trait]
impl AccessLogService for Service {
    async fn stream_access_logs(
        &self,
        request: tonic::Request<tonic::Streaming<StreamAccessLogsMessage>>,
    ) -> Result<tonic::Response<StreamAccessLogsResponse>, tonic::Status> {
        let mut stream = request.into_inner();
        // Envoy names the log on a stream's first message only.
        let mut log_name = String::new();
        while let Some(message) = stream.next().await {
            let message = message?;
            if let Some(id) = message.identifier {
                log_name = id.log_name;
            }
            let mut state = self.state.lock().expect("the state lock");
            match message.log_entries {
                Some(LogEntries::HttpLogs(logs)) => {
                    for e in logs.log_entry {
                        let request = e.request.unwrap_or_default();
                        let response = e.response.unwrap_or_default();
                        state.http.push(HttpEntry {
                            log_name: log_name.clone(),
                            method: RequestMethod::try_from(request.request_method)
                                .map(|m| m.as_str_name().to_owned())
                                .unwrap_or_default(),
                            path: if request.original_path.is_empty() {
                                request.path.clone()
                            } else {
                                request.original_path
                            },
                            upstream_path: request.path,
                            authority: request.authority,
                            status: response.response_code.map_or(0, |c| c.value),
                            request_headers: request.request_headers.into_iter().collect(),
                            response_headers: response.response_headers.into_iter().collect(),
                            response_trailers: response.response_trailers.into_iter().collect(),
                            upstream_cluster: e
                                .common_properties
                                .map(|c| c.upstream_cluster)
                                .unwrap_or_default(),
                        });
                    }
                }
                Some(LogEntries::TcpLogs(logs)) => {
                    for e in logs.log_entry {
                        let connection = e.connection_properties.unwrap_or_default();
                        state.tcp.push(TcpEntry {
                            log_name: log_name.clone(),
                            upstream_cluster: e
                                .common_properties
                                .map(|c| c.upstream_cluster)
                                .unwrap_or_default(),
                            received_bytes: connection.received_bytes,
                            sent_bytes: connection.sent_bytes,
                        });
                    }
                }
                None => {}
            }
        }
        Ok(tonic::Response::new(StreamAccessLogsResponse {}))
    }
}

/// The server; stopped when dropped.
pub struct AccessLogReceiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl AccessLogReceiver {
    /// A receiver on a free port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the access-log receiver");
        let addr = listener.local_addr().expect("its address");
        let state: Arc<Mutex<State>> = Arc::default();
        let service = Service {
            state: state.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(AccessLogServiceServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        Self { addr, state, task }
    }

    /// `host:port`, as a LogService's `service`.
    pub fn service(&self) -> String {
        self.addr.to_string()
    }

    /// Every HTTP entry so far, in the order received.
    pub fn http(&self) -> Vec<HttpEntry> {
        self.state.lock().expect("the state lock").http.clone()
    }

    /// Every TCP entry so far, in the order received.
    pub fn tcp(&self) -> Vec<TcpEntry> {
        self.state.lock().expect("the state lock").tcp.clone()
    }
}

impl Drop for AccessLogReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
