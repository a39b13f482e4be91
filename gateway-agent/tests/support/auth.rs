#![allow(dead_code)] // each test binary uses part of it

//! Real external authorization services for the AuthService tests: an HTTP one (Emissary's
//! `proto: http`: the client's request, its path after `path_prefix`, answered 200 to allow,
//! anything else to deny) and a gRPC one (`envoy.service.auth.v3.Authorization/Check`). Both
//! record every check they receive and decide by the request's path:
//! - a path containing `deny`: denied, with [`DENIED_STATUS`] (HTTP) or [`GRPC_DENIED_STATUS`]
//!   (gRPC), the body [`DENIED_BODY`] and `www-authenticate: Basic realm="test"`;
//! - a path containing `slow`: answered after 2 s (longer than the tests' `timeout_ms`);
//! - anything else: allowed, adding `x-auth-user: <the server's name>` (and, from the HTTP one,
//!   `x-auth-secret: leaked`, which no AuthService allows through) to the upstream request.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use envoy_types::pb::{
    envoy::{
        config::core::v3::{HeaderValue, HeaderValueOption},
        service::auth::v3::{
            CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
            authorization_server::{Authorization, AuthorizationServer},
            check_response::HttpResponse,
        },
        r#type::v3::HttpStatus,
    },
    google::rpc::Status as RpcStatus,
};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};

pub const DENIED_STATUS: u16 = 401;
pub const GRPC_DENIED_STATUS: u16 = 418;
pub const DENIED_BODY: &str = "denied by the test's auth service";
const SLOW: Duration = Duration::from_secs(2);

/// One check request as the auth service saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Check {
    pub path: String,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// gRPC only.
    pub context_extensions: BTreeMap<String, String>,
}

/// A running auth service; stopped on drop or by [`AuthServer::stop`].
pub struct AuthServer {
    pub name: String,
    pub addr: SocketAddr,
    checks: Arc<Mutex<Vec<Check>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AuthServer {
    /// `host:port`, as `auth_service` names it.
    pub fn service(&self) -> String {
        self.addr.to_string()
    }

    /// Every check received so far.
    pub fn checks(&self) -> Vec<Check> {
        self.checks.lock().expect("checks").clone()
    }

    /// The checks received for paths containing `part`.
    pub fn checks_of(&self, part: &str) -> Vec<Check> {
        self.checks()
            .into_iter()
            .filter(|c| c.path.contains(part))
            .collect()
    }

    /// Closes the port: checks fail as when the service is down.
    pub fn stop(&self) {
        self.task.abort();
    }

    /// An HTTP auth service.
    pub async fn http(name: &str) -> Self {
        let (listener, addr) = bind().await;
        let checks: Arc<Mutex<Vec<Check>>> = Arc::default();
        let (recorded, server_name) = (checks.clone(), Arc::<str>::from(name));
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (recorded, server_name) = (recorded.clone(), server_name.clone());
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (recorded, server_name) = (recorded.clone(), server_name.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let check = Check {
                            path: parts.uri.path().to_owned(),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                })
                                .collect(),
                            body: String::from_utf8_lossy(&body).into_owned(),
                            context_extensions: BTreeMap::new(),
                        };
                        let path = check.path.clone();
                        recorded.lock().expect("checks").push(check);
                        if path.contains("slow") {
                            tokio::time::sleep(SLOW).await;
                        }
                        let response = if path.contains("deny") {
                            Response::builder()
                                .status(DENIED_STATUS)
                                .header("www-authenticate", "Basic realm=\"test\"")
                                .header("x-auth-secret", "leaked")
                                .body(Full::new(Bytes::from(DENIED_BODY)))
                        } else {
                            Response::builder()
                                .status(200)
                                .header("x-auth-user", &*server_name)
                                .header("x-auth-secret", "leaked")
                                .body(Full::new(Bytes::new()))
                        };
                        Ok::<_, Infallible>(response.expect("a valid response"))
                    }
                });
                connections.spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self::running(name, addr, checks, task)
    }

    fn running(
        name: &str,
        addr: SocketAddr,
        checks: Arc<Mutex<Vec<Check>>>,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            addr,
            checks,
            task,
        }
    }

    /// A gRPC auth service (`envoy.service.auth.v3`).
    pub async fn grpc(name: &str) -> Self {
        let (listener, addr) = bind().await;
        let checks: Arc<Mutex<Vec<Check>>> = Arc::default();
        let service = GrpcAuth {
            name: name.to_owned(),
            checks: checks.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(AuthorizationServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        Self::running(name, addr, checks, task)
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the auth service");
    let addr = listener.local_addr().expect("its address");
    (listener, addr)
}

struct GrpcAuth {
    name: String,
    checks: Arc<Mutex<Vec<Check>>>,
}

fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Authorization for GrpcAuth {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let attributes = request.into_inner().attributes.unwrap_or_default();
        let http = attributes.request.and_then(|r| r.http).unwrap_or_default();
        let check = Check {
            path: http.path.clone(),
            headers: http.headers.into_iter().collect(),
            body: http.body,
            context_extensions: attributes.context_extensions.into_iter().collect(),
        };
        self.checks.lock().expect("checks").push(check);
        if http.path.contains("slow") {
            tokio::time::sleep(SLOW).await;
        }
        let response = if http.path.contains("deny") {
            CheckResponse {
                // PERMISSION_DENIED
                status: Some(RpcStatus {
                    code: 7,
                    ..Default::default()
                }),
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus {
                        code: i32::from(GRPC_DENIED_STATUS),
                    }),
                    headers: vec![header("www-authenticate", "Basic realm=\"test\"")],
                    body: DENIED_BODY.to_owned(),
                })),
                ..Default::default()
            }
        } else {
            CheckResponse {
                status: Some(RpcStatus::default()),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers: vec![header("x-auth-user", &self.name)],
                    ..Default::default()
                })),
                ..Default::default()
            }
        };
        Ok(tonic::Response::new(response))
    }
}
