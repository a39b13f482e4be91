//! The ADS server Envoy connects to: listeners, routes, clusters, endpoints and secrets on one
//! aggregated gRPC stream, state of the world ([`sotw`]) or incremental ([`delta`]).
//!
//! # Versions
//! Derived from content only ([`cache`]): a resource's version is the hash of its bytes, a type's
//! the hash of its `(name, version)` pairs, a configuration's the hash of its types' versions. A
//! restarted agent serves the same versions for the same inputs; publishing an identical
//! configuration sends nothing. Before the first [`Xds::publish`] nothing is served at all, so a
//! restarting agent never wipes the configuration Envoy kept.
//!
//! # Ordering: no request routed to a cluster Envoy does not have
//! Each stream sends at most one response at a time and waits for its ACK before the next, walking
//! the types in the order of [`session::ORDER`]: CDS, EDS, SDS, LDS, RDS. A new configuration thus
//! reaches Envoy as "clusters, then their endpoints, then secrets, then listeners, then routes",
//! each step acknowledged before the next, and a type whose content did not change is skipped.
//! One exception: endpoints do not wait for the ACK of the clusters before them. Envoy holds
//! that ACK until the clusters it adds have warmed, and an EDS cluster warms only when its
//! endpoints arrive; so while clusters are in flight an EDS response may go (Envoy asks for the
//! new clusters' endpoints as it adds them), and nothing after it. A scale event changes only
//! endpoints, and is one EDS response. Secrets likewise: a cluster that originates TLS warms
//! only when its client certificate and CA arrive over SDS, so SDS may go while clusters are in
//! flight too.
//!
//! Make before break: clusters (and their endpoints) that the new configuration drops stay in
//! what CDS/EDS serve while the old routes may still use them, that is until Envoy has
//! acknowledged the new listeners and every new route configuration (and subscribed to all of
//! them). Then a follow-up CDS (and EDS) push removes them. Only clusters this stream sent itself
//! can be kept so (a stream opened by a reconnecting Envoy does not know the content of what Envoy
//! holds); the window that leaves is one reconnect racing one publish.
//!
//! # ACK and NACK
//! Every response has its own nonce. Envoy answering it without `error_detail` (state of the world:
//! and with the `version_info` sent) is an ACK; with `error_detail` a NACK. A NACK is logged
//! (`warn`, with Envoy's message), counted (`xds_nacks_total{type}`), recorded in
//! [`AckStatus::last_nack`] and sent to [`Xds::refusals`], naming the configuration the refused
//! response was cut from. The refused content is not resent for the same configuration and the
//! types after it in the order wait (they may depend on it), so Envoy keeps running the last
//! acknowledged configuration. Envoy applies what it can of a refused response (each listener or
//! cluster on its own), so what it holds of that type is unknown afterwards: the next response of
//! the type carries it again, whole, even if it matches the last ACK. The next publish gets a
//! fresh answer for every type, the refused one included, even with the very content refused
//! before: a refusal can depend on more than content (a port another process held), and a stream
//! that never resent it would hold back every type after it, silently. Once Envoy has
//! acknowledged a whole configuration, [`AckStatus::acked_version`] names it and `last_nack` is
//! cleared. Finding the resources Envoy refused and serving the rest is the caller's
//! ([`crate::quarantine`]).
//!
//! # Metrics
//! `xds_pushes_total{type}`, `xds_nacks_total{type}` (`type` is `cds`, `eds`, `lds`, `rds`, `sds`)
//! and `xds_connected_streams`, registered in the caller's registry (which sets the prefix).

mod cache;
mod delta;
mod metrics;
mod server;
mod session;
mod sotw;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use tokio::sync::{broadcast, watch};
use tonic::transport::server::TcpIncoming;

pub use cache::{Res, ResourceSet};
pub use server::AdsService;

pub(crate) use cache::Snapshot;
use metrics::Metrics;

/// NACKs kept for a slow reader of [`Xds::refusals`]: Envoy answers one response at a time per
/// stream, so a handful is plenty.
const REFUSALS_BUFFERED: usize = 64;

// The pure state machine of a stream, for the test-only `crate::fuzzing`.
pub(crate) use delta::{next as delta_next, on_request as delta_request};
pub(crate) use session::{Answer, Session};
pub(crate) use sotw::{next as sotw_next, on_request as sotw_request};

/// The type URLs ADS serves.
pub mod type_url {
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
    pub const ALL: [&str; 5] = [CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET];

    /// The `'static` constant equal to `url`, if ADS serves that type.
    pub fn known(url: &str) -> Option<&'static str> {
        ALL.into_iter().find(|k| *k == url)
    }

    /// The short name used in metric labels: `cds`, `eds`, `lds`, `rds`, `sds`.
    pub fn short(url: &str) -> &'static str {
        match url {
            CLUSTER => "cds",
            ENDPOINT => "eds",
            LISTENER => "lds",
            ROUTE => "rds",
            SECRET => "sds",
            _ => "other",
        }
    }
}

/// What Envoy made of the configurations published.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AckStatus {
    /// The version of the last configuration Envoy acknowledged on every type it subscribed to.
    pub acked_version: Option<String>,
    /// The last refusal, until a configuration is acknowledged after it.
    pub last_nack: Option<Nack>,
    /// ADS streams open now.
    pub connected: usize,
}

/// Envoy refused a response.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Nack {
    pub type_url: String,
    /// The refused response's version (the type's content version as served).
    pub version: String,
    /// The configuration the refused response was cut from.
    pub config_version: String,
    /// Envoy's `error_detail` message.
    pub message: String,
}

pub(crate) struct Inner {
    target: watch::Sender<Option<Arc<Snapshot>>>,
    status: watch::Sender<AckStatus>,
    refusals: broadcast::Sender<Nack>,
    shutdown: watch::Sender<bool>,
    metrics: Metrics,
}

/// The ADS server's shared state; cheap to clone.
#[derive(Clone)]
pub struct Xds {
    inner: Arc<Inner>,
}

impl Xds {
    /// A server with nothing to serve yet; registers its metrics in `registry`.
    pub fn new(registry: &mut prometheus_client::registry::Registry) -> Self {
        Self {
            inner: Arc::new(Inner {
                target: watch::Sender::new(None),
                status: watch::Sender::new(AckStatus::default()),
                refusals: broadcast::Sender::new(REFUSALS_BUFFERED),
                shutdown: watch::Sender::new(false),
                metrics: Metrics::register(registry),
            }),
        }
    }

    /// A new desired configuration. Its versions derive from its content; an identical one is a
    /// no-op.
    pub fn publish(&self, set: ResourceSet) {
        self.publish_since(set, std::time::Instant::now());
    }

    /// As [`Xds::publish`], for a change that reached the agent at `since`: the time from then
    /// to Envoy's acknowledgement is `change_to_ack_seconds`.
    pub fn publish_since(&self, set: ResourceSet, since: std::time::Instant) {
        let snapshot = Snapshot::build(set, since);
        self.inner.target.send_if_modified(|current| {
            if current
                .as_ref()
                .is_some_and(|c| c.version == snapshot.version)
            {
                return false;
            }
            tracing::debug!(version = snapshot.version, "publishing a configuration");
            *current = Some(Arc::new(snapshot));
            true
        });
    }

    /// The version of the configuration last published, if any.
    pub fn published_version(&self) -> Option<String> {
        self.inner
            .target
            .borrow()
            .as_ref()
            .map(|s| s.version.clone())
    }

    pub fn status(&self) -> watch::Receiver<AckStatus> {
        self.inner.status.subscribe()
    }

    /// Every NACK from now on, from every stream, each naming the configuration it refused.
    /// [`Xds::status`] keeps only the last one, until an ACK clears it; a caller that must know
    /// whether a given configuration was refused reads them here.
    pub fn refusals(&self) -> broadcast::Receiver<Nack> {
        self.inner.refusals.subscribe()
    }

    pub fn server(&self) -> AggregatedDiscoveryServiceServer<AdsService> {
        AggregatedDiscoveryServiceServer::new(AdsService {
            inner: self.inner.clone(),
        })
        .max_encoding_message_size(usize::MAX)
    }

    /// Serves ADS on `addr` until `shutdown` completes; open streams are then closed.
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the ADS address {addr}"))?;
        Ok(self.serve_on(listener, shutdown).await?)
    }

    /// As [`Xds::serve`], on a listener already bound (tests bind port 0).
    pub async fn serve_on(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), tonic::transport::Error> {
        let inner = self.inner.clone();
        // No Nagle: the tail of a large response would otherwise wait for the peer's delayed
        // ACK (40 ms on Linux) before it leaves. The builder's own `tcp_nodelay` only applies to
        // the addresses it binds itself.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(self.server())
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                inner.shutdown.send_replace(true);
            })
            .await
    }
}
