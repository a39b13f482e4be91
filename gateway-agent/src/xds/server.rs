//! The tonic service: one task per ADS stream, driving a [`Session`] from Envoy's requests and
//! from newly published configurations, and reporting ACKs, NACKs and connections.

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::session::{Answer, Refusal, Session};
use super::{Inner, Nack, delta, sotw, type_url};

/// The ADS gRPC service; build it with [`super::Xds::server`].
#[derive(Clone)]
pub struct AdsService {
    pub(crate) inner: Arc<Inner>,
}

type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The two wire variants over one driver.
trait Protocol: Send + 'static {
    type Req: Send + 'static;
    type Resp: Send + 'static;
    const DELTA: bool;
    fn on_request(s: &mut Session, req: Self::Req) -> Option<Answer>;
    fn next(s: &mut Session) -> Option<(Self::Resp, &'static str)>;
}

struct Sotw;
impl Protocol for Sotw {
    type Req = DiscoveryRequest;
    type Resp = DiscoveryResponse;
    const DELTA: bool = false;
    fn on_request(s: &mut Session, req: DiscoveryRequest) -> Option<Answer> {
        sotw::on_request(s, req)
    }
    fn next(s: &mut Session) -> Option<(DiscoveryResponse, &'static str)> {
        sotw::next(s).map(|r| {
            let url = type_url::known(&r.type_url).unwrap_or_default();
            (r, url)
        })
    }
}

struct Delta;
impl Protocol for Delta {
    type Req = DeltaDiscoveryRequest;
    type Resp = DeltaDiscoveryResponse;
    const DELTA: bool = true;
    fn on_request(s: &mut Session, req: DeltaDiscoveryRequest) -> Option<Answer> {
        delta::on_request(s, req)
    }
    fn next(s: &mut Session) -> Option<(DeltaDiscoveryResponse, &'static str)> {
        delta::next(s).map(|r| {
            let url = type_url::known(&r.type_url).unwrap_or_default();
            (r, url)
        })
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = Responses<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = Responses<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(Response::new(spawn::<Sotw>(
            self.inner.clone(),
            request.into_inner(),
        )))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(Response::new(spawn::<Delta>(
            self.inner.clone(),
            request.into_inner(),
        )))
    }
}

fn spawn<P: Protocol>(inner: Arc<Inner>, incoming: Streaming<P::Req>) -> Responses<P::Resp>
where
    Streaming<P::Req>: Stream<Item = Result<P::Req, Status>> + Unpin + Send,
{
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(drive::<P>(inner, incoming, tx));
    Box::pin(ReceiverStream::new(rx))
}

/// Counts the stream as connected for as long as it lives.
struct Connected(Arc<Inner>);
impl Connected {
    fn new(inner: Arc<Inner>) -> Self {
        inner.metrics.connected.inc();
        inner.status.send_modify(|s| s.connected += 1);
        Self(inner)
    }
}
impl Drop for Connected {
    fn drop(&mut self) {
        self.0.metrics.connected.dec();
        self.0.status.send_modify(|s| s.connected -= 1);
    }
}

async fn drive<P: Protocol>(
    inner: Arc<Inner>,
    mut incoming: Streaming<P::Req>,
    tx: mpsc::Sender<Result<P::Resp, Status>>,
) where
    Streaming<P::Req>: Stream<Item = Result<P::Req, Status>> + Unpin + Send,
{
    let _connected = Connected::new(inner.clone());
    let mut targets = inner.target.subscribe();
    let mut session = Session::new(targets.borrow_and_update().clone(), P::DELTA);
    let mut stop = inner.shutdown.subscribe();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    tracing::debug!(delta = P::DELTA, "ADS stream opened");
    loop {
        tokio::select! {
            msg = incoming.next() => match msg {
                Some(Ok(req)) => match P::on_request(&mut session, req) {
                    Some(Answer::Ack(url)) => inner.metrics.ack(url),
                    Some(Answer::Nack(refusal)) => report_nack(&inner, refusal),
                    None => {}
                },
                Some(Err(status)) => {
                    tracing::debug!(%status, "ADS stream failed");
                    break;
                }
                None => break,
            },
            changed = targets.changed() => {
                if changed.is_err() {
                    break;
                }
                session.set_target(targets.borrow_and_update().clone());
            }
            () = tx.closed() => break,
            () = &mut stopped => break,
        }
        if let Some((response, url)) = P::next(&mut session) {
            inner.metrics.push(url);
            if tx.send(Ok(response)).await.is_err() {
                break;
            }
        }
        report_converged(&inner, &session);
    }
    tracing::debug!(delta = P::DELTA, "ADS stream closed");
}

fn report_nack(inner: &Inner, refusal: Refusal) {
    let config_version = refusal.config_version;
    tracing::warn!(
        type_url = refusal.type_url,
        version = refusal.version,
        config_version,
        error = refusal.message,
        "Envoy refused a configuration (NACK); it keeps the last acknowledged one"
    );
    inner.metrics.nack(refusal.type_url);
    let nack = Nack {
        type_url: refusal.type_url.to_owned(),
        version: refusal.version,
        config_version,
        message: refusal.message,
    };
    // No receiver (nothing follows refusals) is fine.
    let _ = inner.refusals.send(nack.clone());
    inner.status.send_modify(|s| s.last_nack = Some(nack));
}

fn report_converged(inner: &Inner, session: &Session) {
    let Some(version) = session.converged_version() else {
        return;
    };
    inner.status.send_if_modified(|s| {
        let mut modified = false;
        if s.acked_version.as_deref() != Some(version) {
            tracing::info!(version, "Envoy acknowledged the configuration");
            // The first Envoy to have all of it; the target is the converged configuration.
            if let Some(target) = &session.target {
                inner
                    .metrics
                    .change_to_ack
                    .observe(target.since.elapsed().as_secs_f64());
            }
            s.acked_version = Some(version.to_owned());
            modified = true;
        }
        if s.last_nack.is_some() {
            s.last_nack = None;
            modified = true;
        }
        modified
    });
}
