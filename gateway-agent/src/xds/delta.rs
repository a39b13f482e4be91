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

use std::{collections::BTreeMap, sync::Arc};

use super::Res;
use super::session::{Answer, Pending, Session};
use super::type_url;

/// Applies one request; returns Envoy's answer (ACK or NACK) to a response in flight.
pub(crate) fn on_request(s: &mut Session, req: DeltaDiscoveryRequest) -> Option<Answer> {
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
        subscribe = ?req.resource_names_subscribe,
        unsubscribe = ?req.resource_names_unsubscribe,
        nack = req.error_detail.is_some(),
        "request"
    );
    let mut answer = None;
    let ts = s.state(url);
    if !req.response_nonce.is_empty() {
        if req.response_nonce == ts.last_nonce && ts.pending.is_some() {
            let message = req.error_detail.as_ref().map(|e| e.message.clone());
            answer = s.answer(url, message);
        } else if req.response_nonce != ts.last_nonce {
            tracing::debug!(type_url = url, nonce = req.response_nonce, "stale nonce");
        }
    }
    let ts = s.state(url);
    if !ts.subscribed
        || !req.resource_names_subscribe.is_empty()
        || !req.resource_names_unsubscribe.is_empty()
    {
        ts.rescoped();
    }
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
    answer
}

/// What Envoy lacks of `served` (absent, or at another version) and what it has that `served`
/// does not. Both sides are sorted by name: one walk side by side, not a look-up per resource
/// (a configuration has thousands of clusters).
fn diff<'a>(
    acked: &BTreeMap<String, String>,
    served: impl IntoIterator<Item = (&'a String, &'a Arc<Res>)>,
) -> (BTreeMap<String, Arc<Res>>, Vec<String>) {
    let mut changed = BTreeMap::new();
    let mut removed = Vec::new();
    let mut acked = acked.iter().peekable();
    for (name, res) in served {
        while let Some((gone, _)) = acked.next_if(|(n, _)| *n < name) {
            removed.push(gone.clone());
        }
        if acked.next_if(|(n, _)| *n == name).map(|(_, v)| v) != Some(&res.version) {
            changed.insert(name.clone(), res.clone());
        }
    }
    removed.extend(acked.map(|(n, _)| n.clone()));
    (changed, removed)
}

/// The next response, if the plan has one; records it as in flight.
pub(crate) fn next(s: &mut Session) -> Option<DeltaDiscoveryResponse> {
    let (url, served) = s.plan()?;
    let (changed, removed) = diff(&s.types[url].acked, served.resources.iter());
    let brings = served.key();
    let (version, _) = served.into_parts();
    let nonce = s.next_nonce();
    tracing::trace!(type_url = url, nonce, version, changed = ?changed.keys().collect::<Vec<_>>(), ?removed, "response");
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
            brings,
        },
    );
    Some(response)
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::protobuf::Any;

    use super::*;

    #[test]
    fn diff_finds_new_changed_and_removed_names_in_one_walk() {
        let res = |v: &[u8]| {
            Arc::new(Res::new(Any {
                type_url: super::type_url::CLUSTER.into(),
                value: v.to_vec(),
            }))
        };
        let served: BTreeMap<String, Arc<Res>> =
            [("b", res(b"1")), ("c", res(b"2")), ("e", res(b"3"))]
                .into_iter()
                .map(|(n, r)| (n.to_owned(), r))
                .collect();
        let acked: BTreeMap<String, String> = [
            ("a", "old".to_owned()),
            ("b", served["b"].version.clone()),
            ("c", "old".to_owned()),
            ("d", "old".to_owned()),
            ("f", "old".to_owned()),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect();
        let (changed, removed) = diff(&acked, &served);
        assert_eq!(changed.keys().collect::<Vec<_>>(), ["c", "e"]);
        assert_eq!(removed, ["a", "d", "f"]);
    }
}
