#![allow(dead_code)] // each test binary uses part of it

//! Plain TCP for the TCPMapping tests: an echo upstream (cleartext, or TLS recording the SNI the
//! client sent), and a client that writes, half-closes and reads what comes back.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rustls::{
    ServerConfig,
    pki_types::{PrivateKeyDer, pem::PemObject},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::TlsAcceptor;

use super::tls::Leaf;

/// An echo server on 127.0.0.1: every byte it reads it writes back at once; when the client
/// half-closes, it writes `\nbye from {name}` and closes. A TLS one first terminates TLS with
/// its certificate and records the SNI each client sent.
pub struct TcpEcho {
    pub name: String,
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<u8>>>,
    sni: Arc<Mutex<Vec<Option<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpEcho {
    pub async fn start(name: &str) -> Self {
        Self::start_inner(name, None).await
    }

    /// A TLS echo server presenting `leaf`.
    pub async fn start_tls(name: &str, leaf: &Leaf) -> Self {
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("a PEM key");
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![leaf.der.clone()], key)
                .expect("a server certificate");
        Self::start_inner(name, Some(TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_inner(name: &str, tls: Option<TlsAcceptor>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an upstream port");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let received: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sni: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let (n, c, r, s) = (
            name.to_owned(),
            connections.clone(),
            received.clone(),
            sni.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (name, received, sni, tls) = (n.clone(), r.clone(), s.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => echo(stream, &name, &received).await,
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let name_sent = stream.get_ref().1.server_name().map(str::to_owned);
                            sni.lock().unwrap().push(name_sent);
                            echo(stream, &name, &received).await;
                        }
                    }
                });
            }
        });
        Self {
            name: name.to_owned(),
            addr,
            connections,
            received,
            sni,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every byte received so far, all connections together (after TLS, for a TLS one).
    pub fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }

    /// The SNI of each TLS handshake so far.
    pub fn sni(&self) -> Vec<Option<String>> {
        self.sni.lock().unwrap().clone()
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    name: &str,
    received: &Mutex<Vec<u8>>,
) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => {
                let _ = stream
                    .write_all(format!("\nbye from {name}").as_bytes())
                    .await;
                let _ = stream.shutdown().await;
                return;
            }
            Ok(n) => {
                received.lock().unwrap().extend_from_slice(&buf[..n]);
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Writes `message`, reads its echo, half-closes and reads the rest to the end: what the echo
/// upstream says then (`\nbye from NAME`). Any stream: a TCP connection, or TLS over one.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    message: &[u8],
) -> std::io::Result<(Vec<u8>, String)> {
    let limit = Duration::from_secs(10);
    stream.write_all(message).await?;
    let mut echoed = vec![0u8; message.len()];
    tokio::time::timeout(limit, stream.read_exact(&mut echoed))
        .await
        .map_err(std::io::Error::other)??;
    stream.shutdown().await?;
    let mut rest = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut rest))
        .await
        .map_err(std::io::Error::other)??;
    Ok((echoed, String::from_utf8_lossy(&rest).into_owned()))
}

/// One connection to `addr` with [`exchange`]: `(echo, farewell)`.
pub async fn round_trip(addr: SocketAddr, message: &[u8]) -> std::io::Result<(Vec<u8>, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    exchange(&mut stream, message).await
}
