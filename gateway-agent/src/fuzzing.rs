//! Test-only: the ADS session state machine without gRPC, for the fuzz targets (`fuzz/`) and
//! their replay test. Not part of the agent's API; nothing in the agent uses it.

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};

use crate::xds::{
    Answer, ResourceSet, Session, Snapshot, delta_next, delta_request, sotw_next, sotw_request,
};

/// A published configuration, as [`crate::xds::Xds::publish`] makes it.
#[derive(Clone, Debug)]
pub struct Published(Arc<Snapshot>);

impl Published {
    pub fn new(set: ResourceSet) -> Self {
        Self(Arc::new(Snapshot::build(set, std::time::Instant::now())))
    }

    /// The configuration's version.
    pub fn version(&self) -> &str {
        &self.0.version
    }

    /// The resources of one type: name and resource version.
    pub fn resources(&self, type_url: &str) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .of(type_url)
            .resources
            .iter()
            .map(|(n, r)| (n.as_str(), r.version.as_str()))
    }
}

/// One ADS stream's state, driven as the server's stream task drives it: one request or one
/// publish, then at most one response.
#[derive(Debug)]
pub struct Stream(Session);

impl Stream {
    /// A new stream (Envoy connects, or reconnects) while `target` is published.
    pub fn new(target: Option<&Published>, delta: bool) -> Self {
        Self(Session::new(target.map(|p| p.0.clone()), delta))
    }

    pub fn publish(&mut self, target: &Published) {
        self.0.set_target(Some(target.0.clone()));
    }

    /// A state-of-the-world request; the version Envoy refused, if it is a NACK.
    pub fn sotw_request(&mut self, req: DiscoveryRequest) -> Option<String> {
        refused(sotw_request(&mut self.0, req))
    }

    pub fn sotw_next(&mut self) -> Option<DiscoveryResponse> {
        sotw_next(&mut self.0)
    }

    /// A delta request; the version Envoy refused, if it is a NACK.
    pub fn delta_request(&mut self, req: DeltaDiscoveryRequest) -> Option<String> {
        refused(delta_request(&mut self.0, req))
    }

    pub fn delta_next(&mut self) -> Option<DeltaDiscoveryResponse> {
        delta_next(&mut self.0)
    }

    /// The version the server would report as acknowledged by this stream.
    pub fn converged_version(&self) -> Option<&str> {
        self.0.converged_version()
    }
}

/// The version Envoy refused, if the answer is a NACK.
fn refused(answer: Option<Answer>) -> Option<String> {
    match answer? {
        Answer::Nack(r) => Some(r.version),
        Answer::Ack(_) => None,
    }
}
