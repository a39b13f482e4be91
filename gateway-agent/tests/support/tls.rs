//! TLS for the data-path tests: a certificate authority made at test time, leaf certificates it
//! signs, their `kubernetes.io/tls` Secret documents, and an HTTPS client (rustls, verifying
//! against that CA) that reports the certificate the server presented.

use std::{net::SocketAddr, sync::Arc};

use http_body_util::{BodyExt, Empty};
use hyper::{Request, body::Bytes, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use k8s_openapi::ByteString;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName},
};
use tokio_rustls::TlsConnector;

/// A CA that signs leaf certificates for hostnames.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Ca {
    pub fn new() -> Self {
        Self::named("legate test CA")
    }

    /// A CA with its own subject (CAs trusted together need distinct names: a verifier finds a
    /// certificate's issuer by name).
    pub fn named(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    /// A certificate for `names`, signed by this CA.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A client trusting this CA only.
    pub fn client(&self) -> TlsClient {
        self.client_offering(&[])
    }

    /// A client trusting this CA only that offers `alpn` (e.g. `h2`, `http/1.1`).
    pub fn client_offering(&self, alpn: &[&str]) -> TlsClient {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
        }
    }
}

impl Default for Ca {
    fn default() -> Self {
        Self::new()
    }
}

/// A `kubernetes.io/tls` Secret document (`data`, base64) for `leaf`.
pub fn secret_yaml(namespace: &str, name: &str, leaf: &Leaf) -> String {
    let b64 = |t: &str| {
        serde_json::to_value(ByteString(t.as_bytes().to_vec()))
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         type: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(&leaf.cert_pem),
        b64(&leaf.key_pem)
    )
}

/// HTTPS over HTTP/1.1, verifying the server against the test CA.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
}

/// One HTTPS connection, kept open across requests.
pub struct TlsConnection {
    sender: SendRequest<Empty<Bytes>>,
    /// The leaf certificate the server presented.
    pub peer: CertificateDer<'static>,
}

/// An HTTPS answer.
#[derive(Debug)]
pub struct TlsReply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl TlsReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TlsClient {
    /// Connects to `addr` with SNI `sni`; fails when the handshake does (no certificate for
    /// that name, or one the CA did not sign for it).
    pub async fn connect(&self, addr: SocketAddr, sni: &str) -> std::io::Result<TlsConnection> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = ServerName::try_from(sni.to_owned()).map_err(std::io::Error::other)?;
        let stream = self.connector.connect(name, tcp).await?;
        let peer = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .cloned()
            .expect("a TLS server presents a certificate");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(TlsConnection { sender, peer })
    }

    /// One GET of `path` (`:authority` `sni`) on a new connection, over HTTP/2 when the server
    /// chose `h2` by ALPN, else HTTP/1.1: the protocol chosen and the reply.
    pub async fn get_negotiated(
        &self,
        addr: SocketAddr,
        sni: &str,
        path: &str,
    ) -> std::io::Result<(Option<String>, TlsReply)> {
        let stream = self.connect_stream(addr, sni).await?;
        let alpn = stream
            .get_ref()
            .1
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        if alpn.as_deref() != Some("h2") {
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(connection);
            let mut c = TlsConnection {
                sender,
                peer: CertificateDer::from(Vec::new()),
            };
            return Ok((alpn, c.get(path, sni).await?));
        }
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(stream),
        )
        .await
        .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        let request = Request::get(format!("https://{sni}{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(std::io::Error::other)?;
        Ok((alpn, reply(response).await?))
    }

    /// A TLS stream to `addr` with SNI `sni`, for protocols other than HTTP.
    pub async fn connect_stream(
        &self,
        addr: SocketAddr,
        sni: &str,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = ServerName::try_from(sni.to_owned()).map_err(std::io::Error::other)?;
        self.connector.connect(name, tcp).await
    }

    /// One GET on a new connection: `(peer certificate, reply)`.
    pub async fn get(
        &self,
        addr: SocketAddr,
        sni: &str,
        path: &str,
    ) -> std::io::Result<(CertificateDer<'static>, TlsReply)> {
        let mut c = self.connect(addr, sni).await?;
        let reply = c.get(path, sni).await?;
        Ok((c.peer.clone(), reply))
    }
}

impl TlsConnection {
    /// GET `path` with `Host: host` on this connection.
    pub async fn get(&mut self, path: &str, host: &str) -> std::io::Result<TlsReply> {
        let request = Request::get(path)
            .header(hyper::header::HOST, host)
            .body(Empty::new())
            .unwrap();
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(std::io::Error::other)?;
        reply(response).await
    }
}

async fn reply(response: hyper::Response<hyper::body::Incoming>) -> std::io::Result<TlsReply> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok(TlsReply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

// Client certificates (tests/client_certs.rs, support/client_certs.rs).
impl Ca {
    /// The CA's own certificate, PEM: what a `ca_secret` holds.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA as rcgen signs with it (client certificates, CRLs).
    pub fn issuer(&self) -> &CertifiedIssuer<'static, KeyPair> {
        &self.issuer
    }
}

impl TlsClient {
    /// A client made from its rustls configuration (one that presents a client certificate).
    pub fn from_config(config: ClientConfig) -> Self {
        Self {
            connector: TlsConnector::from(Arc::new(config)),
        }
    }
}

/// What TLS origination tests need of a CA besides server certificates.
impl Ca {
    /// The CA's own certificate, for a server that verifies the certificates it signed.
    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A client certificate whose subject is `CN=<common_name>`, signed by this CA.
    pub fn client_leaf(&self, common_name: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// The CA's certificate and key as a [`Leaf`], for a `kubernetes.io/tls` Secret holding
    /// the CA (as cert-manager's CA issuers keep theirs).
    pub fn as_leaf(&self) -> Leaf {
        Leaf {
            cert_pem: self.issuer.pem(),
            key_pem: self.issuer.key().serialize_pem(),
            der: self.issuer.der().clone(),
        }
    }
}
