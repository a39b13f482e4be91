//! Incremental xDS (`DeltaAggregatedResources`): a response carries only the resources whose
//! version differs from what Envoy has, and the names of those it must drop.
//!
//! Subscriptions are diffs: `resource_names_subscribe` / `_unsubscribe` (`*` for the wildcard; a
//! first request subscribing to nothing is the legacy wildcard). `initial_resource_versions` on a
//! new stream says what Envoy already has, so a reconnect after an agent restart with the same
//! inputs sends nothing. Subscription changes apply even on a request with a stale nonce (they
//! are diffs and would be lost otherwise); only the ACK/NACK part of a stale request is ignored.

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};

use super::session::{Pending, Refusal, Session};
use super::type_url;

/// Applies one request; returns Envoy's refusal if it NACKed.
pub(crate) fn on_request(s: &mut Session, req: DeltaDiscoveryRequest) -> Option<Refusal> {
    let Some(url) = type_url::known(&req.type_url) else {
        tracing::debug!(
            type_url = req.type_url,
            "ignoring a request for a type ADS does not serve"
        );
        return None;
    };
    let mut refusal = None;
    let ts = s.state(url);
    if !req.response_nonce.is_empty() {
        if req.response_nonce == ts.last_nonce && ts.pending.is_some() {
            let message = req.error_detail.as_ref().map(|e| e.message.clone());
            refusal = s.answer(url, message);
        } else if req.response_nonce != ts.last_nonce {
            tracing::debug!(type_url = url, nonce = req.response_nonce, "stale nonce");
        }
    }
    let ts = s.state(url);
    if !ts.subscribed {
        ts.subscribed = true;
        ts.wildcard = req.resource_names_subscribe.is_empty();
        for (name, version) in req.initial_resource_versions {
            ts.acked.insert(name, version);
        }
    }
    for name in req.resource_names_subscribe {
        if name == "*" {
            ts.wildcard = true;
        } else {
            ts.names.insert(name);
        }
    }
    for name in req.resource_names_unsubscribe {
        if name == "*" {
            ts.wildcard = false;
        } else {
            ts.names.remove(&name);
        }
    }
    // Envoy forgets what it unsubscribed from.
    if !ts.wildcard {
        let names = &ts.names;
        ts.acked.retain(|n, _| names.contains(n));
        ts.acked_res.retain(|n, _| names.contains(n));
    }
    refusal
}

/// The next response, if the plan has one; records it as in flight.
pub(crate) fn next(s: &mut Session) -> Option<DeltaDiscoveryResponse> {
    let (url, served) = s.plan()?;
    let acked = &s.types[url].acked;
    let changed: std::collections::BTreeMap<_, _> = served
        .resources
        .iter()
        .filter(|(n, r)| acked.get(*n) != Some(&r.version))
        .map(|(n, r)| (n.clone(), r.clone()))
        .collect();
    let removed: Vec<String> = acked
        .keys()
        .filter(|n| !served.resources.contains_key(*n))
        .cloned()
        .collect();
    let version = served.version;
    let nonce = s.next_nonce();
    let response = DeltaDiscoveryResponse {
        system_version_info: version.clone(),
        resources: changed
            .iter()
            .map(|(n, r)| Resource {
                name: n.clone(),
                version: r.version.clone(),
                resource: Some(r.any.clone()),
                ..Default::default()
            })
            .collect(),
        type_url: url.to_owned(),
        removed_resources: removed.clone(),
        nonce: nonce.clone(),
        ..Default::default()
    };
    s.sent(
        url,
        nonce,
        Pending {
            version,
            resources: changed,
            removed,
        },
    );
    Some(response)
}
