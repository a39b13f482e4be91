//! State of the world (`StreamAggregatedResources`): every response carries the whole served set
//! of its type; `version_info` is the content version of that set.
//!
//! A request whose `response_nonce` is that of the response in flight answers it: an ACK if it has
//! no `error_detail` and repeats the sent `version_info`, a NACK otherwise. A request carrying an
//! older nonce is stale and ignored (Envoy follows the newer response with a newer request). A
//! first request may carry the `version_info` Envoy already has (it reconnected): if that is what
//! the stream would serve, nothing is sent.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::session::{Answer, Pending, Session};
use super::type_url::{self, CLUSTER, LISTENER};

/// Applies one request; returns Envoy's answer (ACK or NACK) to a response in flight.
pub(crate) fn on_request(s: &mut Session, req: DiscoveryRequest) -> Option<Answer> {
    let Some(url) = type_url::known(&req.type_url) else {
        tracing::debug!(
            type_url = req.type_url,
            "ignoring a request for a type ADS does not serve"
        );
        return None;
    };
    tracing::trace!(
        type_url = url,
        nonce = req.response_nonce,
        version = req.version_info,
        names = ?req.resource_names,
        nack = req.error_detail.is_some(),
        "request"
    );
    let ts = s.state(url);
    let mut answer = None;
    if req.response_nonce.is_empty() {
        if !req.version_info.is_empty() && ts.acked_version.is_none() {
            ts.acked_version = Some(req.version_info.clone());
        }
    } else if req.response_nonce != ts.last_nonce {
        tracing::debug!(
            type_url = url,
            nonce = req.response_nonce,
            "ignoring a stale request"
        );
        return None;
    } else if let Some(p) = &ts.pending {
        let message = match &req.error_detail {
            Some(status) => Some(status.message.clone()),
            None if req.version_info != p.version => Some(format!(
                "no error_detail, but version_info {:?} is not the version sent",
                req.version_info
            )),
            None => None,
        };
        answer = s.answer(url, message);
    }
    let ts = s.state(url);
    // LDS and CDS are wildcard in state of the world; other types list what they want.
    let wildcard = url == CLUSTER || url == LISTENER || req.resource_names.iter().any(|n| n == "*");
    let names: BTreeSet<String> = req
        .resource_names
        .into_iter()
        .filter(|n| n != "*")
        .collect();
    // Every request repeats the scope; only a different one is a change.
    if !ts.subscribed || ts.wildcard != wildcard || ts.names != names {
        ts.rescoped();
    }
    ts.subscribed = true;
    ts.wildcard = wildcard;
    ts.names = names;
    answer
}

/// The next response, if the plan has one; records it as in flight.
pub(crate) fn next(s: &mut Session) -> Option<DiscoveryResponse> {
    let (url, served) = s.plan()?;
    let brings = served.key();
    let (version, resources) = served.into_parts();
    let resources = resources.into_owned();
    let nonce = s.next_nonce();
    tracing::trace!(type_url = url, nonce, version, names = ?resources.keys().collect::<Vec<_>>(), "response");
    let response = DiscoveryResponse {
        version_info: version.clone(),
        resources: resources.values().map(|r| r.any.clone()).collect(),
        type_url: url.to_owned(),
        nonce: nonce.clone(),
        ..Default::default()
    };
    s.sent(
        url,
        nonce,
        Pending {
            version,
            resources,
            removed: Vec::new(),
            brings,
        },
    );
    Some(response)
}
