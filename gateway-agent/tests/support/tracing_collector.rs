#![allow(dead_code)] // each test binary uses part of it

//! Real trace collectors for the TracingService tests:
//! - [`HttpCollector`]: records every HTTP request it receives (Zipkin's `POST /api/v2/spans`
//!   with JSON v2 spans, Datadog's agent API), and answers 202 as Zipkin does;
//! - [`OtlpCollector`]: an OTLP gRPC receiver (`opentelemetry.proto.collector.trace.v1.
//!   TraceService/Export`). Its messages are the few OTLP ones it reads, written here with prost
//!   (the `opentelemetry-proto` crate's `trace` feature brings the whole OpenTelemetry SDK).

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use serde_json::Value;
use tonic::codegen::{BoxFuture, http};

async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the collector");
    let addr = listener.local_addr().expect("its address");
    (listener, addr)
}

/// One request an [`HttpCollector`] received.
#[derive(Clone, Debug)]
pub struct Post {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
}

/// An HTTP collector; stopped when dropped.
pub struct HttpCollector {
    pub addr: SocketAddr,
    posts: Arc<Mutex<Vec<Post>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpCollector {
    pub async fn start() -> Self {
        let (listener, addr) = bind().await;
        let posts: Arc<Mutex<Vec<Post>>> = Arc::default();
        let recorded = posts.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = recorded.clone();
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let recorded = recorded.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        recorded.lock().expect("posts").push(Post {
                            method: parts.method.to_string(),
                            path: parts.uri.path().to_owned(),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                })
                                .collect(),
                            body,
                        });
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(202)
                                .body(Full::new(Bytes::new()))
                                .expect("a valid response"),
                        )
                    }
                });
                connections.spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, posts, task }
    }

    /// `host:port`, as a TracingService's `service`.
    pub fn service(&self) -> String {
        self.addr.to_string()
    }

    pub fn posts(&self) -> Vec<Post> {
        self.posts.lock().expect("posts").clone()
    }

    /// Every Zipkin v2 JSON span posted to `path` so far.
    pub fn zipkin_spans(&self, path: &str) -> Vec<Value> {
        self.posts()
            .iter()
            .filter(|p| p.path == path)
            .filter_map(|p| serde_json::from_slice::<Vec<Value>>(&p.body).ok())
            .flatten()
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// OTLP: opentelemetry/proto/collector/trace/v1/trace_service.proto and the messages it uses,
// only the fields read here (prost skips the others).

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceResponse {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<OtlpResource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OtlpResource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<OtlpSpan>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OtlpSpan {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    pub name: String,
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4")]
    pub value: Option<any_value::Value>,
}

pub mod any_value {
    #[derive(Clone, PartialEq, prost::Oneof)]
    // OTLP names them string_value, bool_value, ...
    pub enum Value {
        #[prost(string, tag = "1")]
        String(String),
        #[prost(bool, tag = "2")]
        Bool(bool),
        #[prost(int64, tag = "3")]
        Int(i64),
        #[prost(double, tag = "4")]
        Double(f64),
    }
}

/// A span as received, with its resource's attributes and its own, as text.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    pub name: String,
    pub kind: i32,
    pub resource: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
}

fn text(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::String(s)) => s.clone(),
                Some(any_value::Value::Bool(b)) => b.to_string(),
                Some(any_value::Value::Int(i)) => i.to_string(),
                Some(any_value::Value::Double(d)) => d.to_string(),
                None => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC service, as tonic's generated servers are written.
#[derive(Clone)]
struct TraceService {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

impl tonic::server::NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

struct Export(TraceService);

impl tonic::server::UnaryService<ExportTraceServiceRequest> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<ExportTraceServiceRequest>) -> Self::Future {
        let spans = self.0.spans.clone();
        Box::pin(async move {
            let mut received = Vec::new();
            for rs in request.into_inner().resource_spans {
                let resource = text(rs.resource.map(|r| r.attributes).as_deref().unwrap_or(&[]));
                for s in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                    received.push(ReceivedSpan {
                        attributes: text(&s.attributes),
                        trace_id: s.trace_id,
                        span_id: s.span_id,
                        parent_span_id: s.parent_span_id,
                        name: s.name,
                        kind: s.kind,
                        resource: resource.clone(),
                    });
                }
            }
            spans.lock().expect("spans").extend(received);
            Ok(tonic::Response::new(ExportTraceServiceResponse {}))
        })
    }
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for TraceService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            if request.uri().path() != EXPORT {
                return Ok(
                    tonic::Status::unimplemented(request.uri().path().to_owned()).into_http(),
                );
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(Export(service), request).await)
        })
    }
}

/// An OTLP gRPC collector; stopped when dropped.
pub struct OtlpCollector {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtlpCollector {
    pub async fn start() -> Self {
        let (listener, addr) = bind().await;
        let spans: Arc<Mutex<Vec<ReceivedSpan>>> = Arc::default();
        let service = TraceService {
            spans: spans.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        Self { addr, spans, task }
    }

    /// `host:port`, as a TracingService's `service`.
    pub fn service(&self) -> String {
        self.addr.to_string()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("spans").clone()
    }
}
