//! A TLS upstream for the origination tests: a tokio-rustls server on 127.0.0.1 with a
//! certificate from a test CA, that may require a client certificate signed by another, and
//! answers every request with what it saw of the connection, as JSON:
//! `{"upstream", "sni", "alpn", "client", "tls", "version", "path"}` (`client` is the subject of the
//! client certificate, `CN=...`; `tls` the protocol version, `TLSv1_3`; `sni` and `alpn` are null
//! when the client sent none). HTTP/1.1,
//! or HTTP/2 when the client speaks it (ALPN `h2` is offered). An HTTP/1.1 connection serves one
//! request (`connection: close`), so each request's echo is of a handshake of its own.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use http_body_util::Full;
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use serde_json::{Value, json};
use tokio_rustls::TlsAcceptor;

use super::tls::Leaf;

/// What the server saw of one TLS connection.
#[derive(Clone, Debug)]
struct Seen {
    sni: Option<String>,
    alpn: Option<String>,
    client: Option<String>,
    tls: Option<String>,
}

/// A TLS echo server; stops when dropped.
pub struct TlsUpstream {
    pub name: String,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsUpstream {
    /// Serves with `server` (certificate and key); with `client_ca`, a client must present a
    /// certificate that CA signed, or the handshake fails.
    pub async fn start(
        name: &str,
        server: &Leaf,
        client_ca: Option<CertificateDer<'static>>,
    ) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let chain = CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap();
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream: Arc<str> = Arc::from(name);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                tokio::spawn(async move {
                    // A failed handshake (no or a wrong client certificate) closes the connection.
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let connection = stream.get_ref().1;
                    let seen = Seen {
                        sni: connection.server_name().map(str::to_owned),
                        alpn: connection
                            .alpn_protocol()
                            .map(|p| String::from_utf8_lossy(p).into_owned()),
                        client: connection
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(subject),
                        tls: connection.protocol_version().map(|v| format!("{v:?}")),
                    };
                    let service =
                        service_fn(move |request| echo(upstream.clone(), seen.clone(), request));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            name: name.to_owned(),
            addr,
            task,
        }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A certificate's subject, as `CN=...`.
fn subject(der: &CertificateDer<'_>) -> String {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert.subject().to_string())
        .unwrap_or_else(|e| format!("<unparsable certificate: {e}>"))
}

async fn echo(
    upstream: Arc<str>,
    seen: Seen,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let answer: Value = json!({
        "upstream": &*upstream,
        "sni": seen.sni,
        "alpn": seen.alpn,
        "client": seen.client,
        "tls": seen.tls,
        "version": format!("{:?}", request.version()),
        "path": request.uri().path(),
    });
    let mut response = Response::builder();
    if request.version() < hyper::Version::HTTP_2 {
        response = response.header("connection", "close");
    }
    Ok(response
        .header("content-type", "application/json")
        .header("x-upstream", &*upstream)
        .body(Full::new(Bytes::from(answer.to_string())))
        .expect("a valid response"))
}
