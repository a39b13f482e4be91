//! One search for the resources Envoy refuses: the changes since the last acknowledged
//! configuration, halved by Envoy's answers (see the parent module).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use legate_crds::{ObjectRef, Resource};
use tracing::warn;

use super::{MAX_TRIALS, Refused, refusal_message, same};

/// One search: the changes since the last acknowledged configuration, by their index in
/// `full`, split as Envoy's answers come.
#[derive(Debug)]
pub(super) struct Search {
    /// The inputs the search serves in the end (minus what it finds).
    pub(super) full: Vec<Arc<Resource>>,
    /// The acknowledged content of the changed resources that had one.
    before: BTreeMap<usize, Arc<Resource>>,
    /// The changed resources (indices into `full`).
    changed: BTreeSet<usize>,
    /// Changes Envoy accepted together.
    good: BTreeSet<usize>,
    /// A culprit is among these when `refusal` is set: `good` and all of them were refused.
    pub(super) suspects: Vec<usize>,
    /// Not examined yet.
    later: Vec<usize>,
    /// Envoy's message refusing `good` with `suspects`.
    refusal: Option<String>,
    /// How many suspects the trial in flight applies (a prefix of `suspects`).
    trying: usize,
    /// Envoy accepted a trial (or the configuration the search started from). Until then a
    /// second culprit is blamed only once Envoy accepts the configuration with none of the
    /// changes, so an Envoy that refuses everything gets nothing quarantined. (Not before the
    /// first: that trial would take every route away from an Envoy that kept its configuration
    /// across an agent restart, and the usual case, one culprit, needs no such check.)
    base_accepted: bool,
    /// The trial in flight applies no change, to learn `base_accepted`.
    checking_base: bool,
    /// Envoy refused even the configuration with none of the changes.
    gave_up: bool,
    pub(super) trials: u32,
    /// Culprits found, handed over when the search ends (and dropped if it gives up).
    pub(super) found: Vec<(ObjectRef, Refused)>,
}

impl Search {
    /// `acked`: the inputs of the configuration Envoy acknowledged last, if any.
    pub(super) fn new(
        full: Vec<Arc<Resource>>,
        acked: Option<&[Arc<Resource>]>,
        message: &str,
    ) -> Self {
        let base_accepted = acked.is_some();
        let acked: BTreeMap<ObjectRef, &Arc<Resource>> = acked
            .into_iter()
            .flatten()
            .map(|r| (r.object_ref(), r))
            .collect();
        let mut before = BTreeMap::new();
        let mut suspects = Vec::new();
        for (i, r) in full.iter().enumerate() {
            match acked.get(&r.object_ref()) {
                Some(old) if same(old, r) => continue,
                Some(old) => {
                    before.insert(i, Arc::clone(old));
                }
                None => {}
            }
            suspects.push(i);
        }
        // Stable: the source's order within a rank, so a restarted agent searches the same way.
        suspects.sort_by_key(|i| rank(&full[*i]));
        Self {
            changed: suspects.iter().copied().collect(),
            full,
            before,
            good: BTreeSet::new(),
            suspects,
            later: Vec::new(),
            refusal: Some(message.to_owned()),
            trying: 0,
            // A configuration Envoy acknowledged: already known.
            base_accepted,
            checking_base: false,
            gave_up: false,
            trials: 0,
            found: Vec::new(),
        }
    }

    /// The next trial's inputs, or `None` when the search is over.
    pub(super) fn next(&mut self) -> Option<Vec<Arc<Resource>>> {
        loop {
            if self.gave_up {
                self.found.clear();
                return None;
            }
            match (&self.refusal, self.suspects.as_slice()) {
                (Some(_), [_]) if !self.base_accepted && !self.found.is_empty() => {
                    self.checking_base = true;
                    self.trying = 0;
                    break;
                }
                (Some(message), [culprit]) => {
                    let resource = self.full[*culprit].clone();
                    let refused = Refused {
                        message: refusal_message(message),
                        resource: resource.clone(),
                    };
                    self.found.push((resource.object_ref(), refused));
                    self.suspects = std::mem::take(&mut self.later);
                    self.refusal = None;
                }
                (Some(_), []) | (None, []) => {
                    if self.later.is_empty() {
                        return None;
                    }
                    self.suspects = std::mem::take(&mut self.later);
                    self.refusal = None;
                }
                (None, suspects) => {
                    self.trying = suspects.len();
                    break;
                }
                (Some(_), suspects) => {
                    self.trying = suspects.len() / 2;
                    break;
                }
            }
        }
        if self.trials >= MAX_TRIALS {
            warn!(
                trials = self.trials,
                left = self.suspects.len() + self.later.len(),
                "giving up the search for what Envoy refuses: too many trials"
            );
            return None;
        }
        self.trials += 1;
        let applied: BTreeSet<usize> = self.suspects[..self.trying].iter().copied().collect();
        Some(self.trial(|i| self.good.contains(&i) || applied.contains(&i)))
    }

    /// Envoy accepted the trial in flight.
    pub(super) fn accepted(&mut self) {
        self.base_accepted = true;
        if std::mem::take(&mut self.checking_base) {
            return;
        }
        self.good.extend(self.suspects.drain(..self.trying));
        if self.suspects.is_empty() {
            self.refusal = None;
        }
    }

    /// Envoy refused the trial in flight.
    pub(super) fn refused(&mut self, message: &str) {
        if std::mem::take(&mut self.checking_base) {
            warn!(
                error = message,
                "Envoy refuses even the configuration without any of the changes: \
                 no resource is to blame, nothing is set aside"
            );
            self.gave_up = true;
            return;
        }
        let rest = self.suspects.split_off(self.trying);
        self.later.splice(0..0, rest);
        self.refusal = Some(message.to_owned());
    }

    /// The acknowledged inputs with the changes `applied` names applied.
    fn trial(&self, applied: impl Fn(usize) -> bool) -> Vec<Arc<Resource>> {
        self.full
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                if !self.changed.contains(&i) || applied(i) {
                    Some(r.clone())
                } else {
                    self.before.get(&i).cloned()
                }
            })
            .collect()
    }
}

/// Dependencies first: what other resources refer to before what refers to them.
fn rank(r: &Resource) -> u8 {
    match r {
        Resource::Secret(_)
        | Resource::Service(_)
        | Resource::EndpointSlice(_)
        | Resource::Endpoints(_)
        | Resource::GatewayInstallation(_) => 0,
        Resource::Module(_)
        | Resource::TLSContext(_)
        | Resource::KubernetesServiceResolver(_)
        | Resource::KubernetesEndpointResolver(_)
        | Resource::ConsulResolver(_) => 1,
        Resource::Listener(_) => 2,
        Resource::Host(_) => 3,
        Resource::AuthService(_)
        | Resource::RateLimitService(_)
        | Resource::LogService(_)
        | Resource::TracingService(_) => 4,
        Resource::Mapping(_) | Resource::TCPMapping(_) => 5,
    }
}
