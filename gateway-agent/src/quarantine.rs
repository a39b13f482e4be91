//! When Envoy refuses (NACKs) a configuration anyway: find the resources responsible, refuse
//! them, and serve the rest. In-process validation should leave Envoy nothing to refuse; this is
//! the last line of defence, so that one bad resource never takes the others down.
//!
//! A [`Quarantine`] is a pure state machine between the build loop ([`crate::run`]) and what
//! Envoy answers. The loop builds from [`Quarantine::admit`]'s inputs (the source's resources
//! minus the quarantined ones), tells it what it published ([`Quarantine::published`]) and what
//! Envoy said ([`Quarantine::acked`], [`Quarantine::refused`]); it answers with the next inputs to
//! build, if any ([`Step`]).
//!
//! # Finding the resources responsible
//! Envoy's message does not reliably name a resource the agent can map back (a whole route table
//! is refused for one route), so the agent asks Envoy: it bisects. The suspects are the resources
//! that changed since the last configuration Envoy acknowledged (on a fresh start: all). A trial
//! is that acknowledged configuration's inputs with some of the changes applied (a changed
//! resource not applied keeps its acknowledged content, a new one is left out, so traffic keeps
//! what it had); Envoy's answer to it halves the suspects. A culprit costs about `log2(n)` trials;
//! once found it is quarantined and the rest is tried again, until Envoy accepts everything but
//! the quarantined. Suspects are tried in dependency order (Secrets, Services, Listeners and
//! Hosts before the Mappings that need them), so a Mapping's fault is not blamed on the Host that
//! makes it reachable. Before a second culprit is blamed while Envoy has accepted nothing, the
//! configuration with none of the changes is tried: an Envoy that refuses everything gets nothing
//! quarantined. At most [`MAX_TRIALS`] trials a search: past that the agent stops looking until
//! the inputs change, and Envoy keeps the last configuration it accepted.
//!
//! On a fresh start (nothing acknowledged yet, all resources suspects) a trial serves a subset:
//! an Envoy that kept its configuration across an agent restart briefly serves less while the
//! search runs (milliseconds a trial).
//!
//! With several Envoy streams, a NACK of the configuration awaited from any of them is a refusal;
//! the first stream to acknowledge it all is an acceptance.
//!
//! # Quarantine
//! A quarantined resource is refused: [`Reason::RefusedByEnvoy`], with Envoy's message. It is left
//! out of every configuration, as from scratch: a restarted agent finds it again and serves the
//! same. The quarantine lifts when the resource changes or goes: its new content is tried again.
//! An AuthService is not left out, which would leave the routes it checks open: a stand-in
//! keeps checking them through a service that never answers, so its `failure_mode_allow`
//! decides (by default, they are denied).

use std::collections::BTreeMap;
use std::sync::Arc;

use legate_crds::{ObjectRef, Resource};
use tracing::{info, warn};

use crate::ir::{Reason, Rejection};

mod search;

use search::Search;

/// Trials one search may publish: a few culprits among thousands of resources (about 13 trials
/// each among 10,000) fit; a configuration Envoy refuses whatever it holds does not loop.
pub const MAX_TRIALS: u32 = 128;

/// The longest Envoy message a refusal carries: Envoy lists every listener or cluster it failed.
const MAX_MESSAGE: usize = 1024;

/// What the build loop does next.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Nothing: wait for Envoy, or for the source.
    Wait,
    /// Build from these inputs and publish, then call [`Quarantine::published`].
    Build(Build),
}

#[derive(Debug, PartialEq)]
pub struct Build {
    pub inputs: Vec<Arc<Resource>>,
    /// A trial is only for Envoy to answer: no status, no report. Otherwise this is what the
    /// gateway serves, with [`Quarantine::rejections`].
    pub trial: bool,
}

/// A resource Envoy refused, and what it said.
#[derive(Debug)]
struct Refused {
    resource: Arc<Resource>,
    message: String,
}

/// Which configuration is awaited.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Built from new inputs: a refusal starts a search.
    Fresh,
    /// A trial of the search.
    Trial,
    /// What a search ended with: a refusal is logged, not searched again.
    Settled,
}

#[derive(Debug, Default)]
pub struct Quarantine {
    refused: BTreeMap<ObjectRef, Refused>,
    /// The inputs of the last configuration Envoy acknowledged (indexed only when a search
    /// needs them: every build passes here, searches are rare).
    acked: Option<Vec<Arc<Resource>>>,
    /// Built, not published yet.
    building: Option<(Vec<Arc<Resource>>, Kind)>,
    /// Published, waiting for Envoy's answer: the version and the inputs.
    awaiting: Option<(String, Vec<Arc<Resource>>, Kind)>,
    search: Option<Search>,
    /// The last configuration refused: a trial that builds the same is refused at once.
    last_refused: Option<(String, String)>,
    trials: u64,
}

impl Quarantine {
    /// New inputs from the source: ends any search, lifts the quarantine of a resource that
    /// changed or went, and returns what to build (the inputs minus the quarantined).
    pub fn admit(&mut self, resources: &[Arc<Resource>]) -> Vec<Arc<Resource>> {
        if self.search.take().is_some() {
            info!("new inputs: the search for what Envoy refuses starts over if it refuses again");
        }
        // The common case costs a copy of the list, not an index of every name.
        let inputs: Vec<Arc<Resource>> = if self.refused.is_empty() {
            resources.to_vec()
        } else {
            self.lift(resources);
            self.without_refused(resources)
        };
        self.building = Some((inputs.clone(), Kind::Fresh));
        inputs
    }

    /// Lifts the quarantine of the resources that changed or went.
    fn lift(&mut self, resources: &[Arc<Resource>]) {
        let now: BTreeMap<ObjectRef, &Arc<Resource>> =
            resources.iter().map(|r| (r.object_ref(), r)).collect();
        self.refused.retain(|object, refused| {
            let kept = now.get(object).is_some_and(|r| same(r, &refused.resource));
            if !kept {
                info!(%object, "a resource Envoy refused changed: trying it again");
            }
            kept
        });
    }

    /// The inputs last returned (by [`Quarantine::admit`] or a [`Step::Build`]) were built and
    /// published as `version`. `acked` is the configuration Envoy acknowledged last: publishing
    /// what Envoy already has is an answer at once.
    pub fn published(&mut self, version: String, acked: Option<&str>) -> Step {
        let Some((inputs, kind)) = self.building.take() else {
            return Step::Wait;
        };
        self.awaiting = Some((version.clone(), inputs, kind));
        if acked == Some(version.as_str()) {
            return self.acked(&version);
        }
        // A trial that builds what Envoy just refused is refused: publishing it again is a
        // no-op, and no answer would come.
        if kind != Kind::Fresh
            && let Some((refused, message)) = self.last_refused.clone()
            && refused == version
        {
            return self.refused(&version, &message);
        }
        Step::Wait
    }

    /// Envoy acknowledged the configuration `version`.
    pub fn acked(&mut self, version: &str) -> Step {
        let Some((_, inputs, kind)) = self.awaiting.take_if(|(awaited, _, _)| awaited == version)
        else {
            return Step::Wait;
        };
        self.acked = Some(inputs);
        match (kind, &mut self.search) {
            (Kind::Trial, Some(search)) => {
                search.accepted();
                self.next()
            }
            _ => Step::Wait,
        }
    }

    /// Envoy refused the configuration `version`, saying `message`.
    pub fn refused(&mut self, version: &str, message: &str) -> Step {
        self.last_refused = Some((version.to_owned(), message.to_owned()));
        let Some((_, inputs, kind)) = self.awaiting.take_if(|(awaited, _, _)| awaited == version)
        else {
            return Step::Wait;
        };
        match kind {
            Kind::Fresh => {
                let search = Search::new(inputs, self.acked.as_deref(), message);
                warn!(
                    version,
                    suspects = search.suspects.len(),
                    "Envoy refused the configuration: finding the resources responsible"
                );
                self.search = Some(search);
                self.next()
            }
            Kind::Trial => {
                if let Some(search) = &mut self.search {
                    search.refused(message);
                }
                self.next()
            }
            Kind::Settled => {
                warn!(
                    version,
                    error = message,
                    "Envoy refused the configuration left once the resources it refused were \
                     set aside; it keeps the last one it accepted until the inputs change"
                );
                Step::Wait
            }
        }
    }

    /// The quarantined resources, each refused with Envoy's message.
    pub fn rejections(&self) -> Vec<Rejection> {
        self.refused
            .iter()
            .map(|(object, r)| {
                let message = match stand_in(&r.resource) {
                    Some(_) => format!("{}{STOOD_IN}", r.message),
                    None => r.message.clone(),
                };
                Rejection::new(object.clone(), Reason::RefusedByEnvoy, message)
            })
            .collect()
    }

    /// How many resources are quarantined.
    pub fn len(&self) -> usize {
        self.refused.len()
    }

    pub fn is_empty(&self) -> bool {
        self.refused.is_empty()
    }

    /// Trials published so far.
    pub fn trials(&self) -> u64 {
        self.trials
    }

    /// Whether a search is under way.
    pub fn searching(&self) -> bool {
        self.search.is_some()
    }

    /// `resources` but the quarantined ones ([`stand_in`] for some).
    fn without_refused(&self, resources: &[Arc<Resource>]) -> Vec<Arc<Resource>> {
        resources
            .iter()
            .filter_map(|r| match self.refused.contains_key(&r.object_ref()) {
                false => Some(r.clone()),
                true => stand_in(r),
            })
            .collect()
    }

    /// The search's next trial, or its end: everything but the quarantined.
    fn next(&mut self) -> Step {
        let Some(search) = &mut self.search else {
            return Step::Wait;
        };
        let build = match search.next() {
            Some(inputs) => {
                self.trials += 1;
                Build {
                    inputs,
                    trial: true,
                }
            }
            None => {
                let Some(search) = self.search.take() else {
                    return Step::Wait;
                };
                for (object, refused) in search.found {
                    warn!(
                        %object,
                        error = refused.message,
                        "Envoy refuses the configuration this resource produces: it is set aside until it changes"
                    );
                    self.refused.insert(object, refused);
                }
                info!(
                    trials = search.trials,
                    quarantined = self.refused.len(),
                    "search done: serving every resource but those Envoy refuses"
                );
                let inputs = self.without_refused(&search.full);
                Build {
                    inputs,
                    trial: false,
                }
            }
        };
        let kind = if build.trial {
            Kind::Trial
        } else {
            Kind::Settled
        };
        self.building = Some((build.inputs.clone(), kind));
        Step::Build(build)
    }
}

/// What a quarantined AuthService says besides Envoy's message.
const STOOD_IN: &str = "; until it changes, the routes it checks are checked by a service that \
                        never answers, so its failure_mode_allow decides (by default: denied)";

/// Where an AuthService's service would be, one that never answers: `.invalid` never resolves
/// (RFC 2606).
pub const NOWHERE: &str = "envoy-refused.invalid:1";

/// What is built in place of a quarantined resource: nothing, except for an AuthService, left
/// out, would leave the routes it checks open. It keeps checking them, through a service that
/// never answers, with its own `failure_mode_allow`, `opt_in` and `ambassador_id` and nothing
/// else (whatever Envoy refused is gone).
fn stand_in(r: &Arc<Resource>) -> Option<Arc<Resource>> {
    let Resource::AuthService(a) = &**r else {
        return None;
    };
    let spec = legate_crds::auth_service::AuthServiceSpec {
        ambassador_id: a.spec.ambassador_id.clone(),
        auth_service: NOWHERE.to_owned(),
        failure_mode_allow: a.spec.failure_mode_allow,
        opt_in: a.spec.opt_in,
        ..Default::default()
    };
    Some(Arc::new(Resource::AuthService(
        legate_crds::auth_service::AuthService {
            metadata: a.metadata.clone(),
            spec,
            status: None,
        },
    )))
}

/// The same content (the source shares an unchanged resource: the address is the cheap answer).
fn same(a: &Arc<Resource>, b: &Arc<Resource>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// What a quarantined resource's status says: Envoy's message, cut at a character boundary.
fn refusal_message(envoy: &str) -> String {
    let mut message = String::from("Envoy refused the configuration this resource produces: ");
    match envoy.char_indices().nth(MAX_MESSAGE) {
        Some((end, _)) => {
            message.push_str(&envoy[..end]);
            message.push('…');
        }
        None => message.push_str(envoy),
    }
    message
}

#[cfg(test)]
mod tests;
