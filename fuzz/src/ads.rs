//! `ads`: one ADS stream's state machine (`legate_agent::fuzzing::Stream`, state of the world or
//! delta) driven by an arbitrary script of publishes, Envoy requests (subscriptions, ACKs and
//! NACKs with right, stale or made-up nonces and versions) and reconnects, as the server's
//! stream task drives it: one event, then at most one response.
//!
//! Checked on every response, beyond the absence of panics:
//! - it is for a type Envoy asked for, and no response of that type is in flight;
//! - one response in flight at a time, but endpoints and secrets may go while clusters are in
//!   flight (clusters warm with them);
//! - content Envoy refused is not sent again while the configuration is the same (and Envoy has
//!   acknowledged nothing else of that type since).
//!
//! And on [`Op::Settle`], where Envoy subscribes to everything published and acknowledges every
//! response: the stream converges to the last published version (unless Envoy refused content
//! of that configuration), and whenever it says it has converged, what Envoy holds is exactly
//! what was published, in the scope Envoy subscribed to.

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::{Arbitrary, Unstructured};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::{protobuf::Any, rpc::Status};
use legate_agent::fuzzing::{Published, Stream};
use legate_agent::xds::{Res, ResourceSet, type_url};

/// Type URLs a request may name: the five served, and one ADS does not serve.
const TYPES: [&str; 6] = [
    type_url::CLUSTER,
    type_url::ENDPOINT,
    type_url::SECRET,
    type_url::LISTENER,
    type_url::ROUTE,
    "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
];
const SERVED: [&str; 5] = [
    type_url::CLUSTER,
    type_url::ENDPOINT,
    type_url::SECRET,
    type_url::LISTENER,
    type_url::ROUTE,
];
/// Resource names: few, so subscriptions and configurations overlap.
const NAMES: [&str; 4] = ["a", "b", "c", "d"];

pub fn run(data: &[u8]) {
    let u = Unstructured::new(data);
    let Ok(script) = Script::arbitrary_take_rest(u) else {
        return;
    };
    crate::show(&script);
    Harness::new(script.delta).play(&script.ops);
}

#[derive(Arbitrary, Debug)]
struct Script {
    delta: bool,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A new configuration: for each type, resources (name, content).
    Publish([Vec<(u8, u8)>; 5]),
    Request(Request),
    /// Envoy answers the response of a type in flight: ACK, or NACK.
    Answer {
        ty: u8,
        nack: bool,
    },
    /// The stream ends and Envoy opens another, saying what it holds (or, if it lies, made-up
    /// versions).
    Reconnect {
        lie: Option<Vec<(u8, u8)>>,
    },
    Settle,
}

/// A request written by the fuzzer.
#[derive(Arbitrary, Debug)]
struct Request {
    ty: u8,
    nonce: Nonce,
    /// State of the world: the version echoed (`None`: the one sent in flight, if any).
    version: Option<u8>,
    /// State of the world: the names; delta: the names subscribed (`None` is `*`).
    names: Vec<Option<u8>>,
    /// Delta: the names unsubscribed.
    unsubscribe: Vec<Option<u8>>,
    error: bool,
}

#[derive(Arbitrary, Debug)]
enum Nonce {
    Empty,
    /// The nonce of this type's response in flight (or the last one sent).
    Current,
    Made(u8),
}

/// What Envoy has and expects, per type: the model the session is checked against.
#[derive(Default, Debug)]
struct Envoy {
    /// Name → resource version of what Envoy applied.
    held: BTreeMap<&'static str, BTreeMap<String, String>>,
    /// State of the world: the version of the last response acknowledged.
    held_version: BTreeMap<&'static str, String>,
}

impl Envoy {
    /// The version a state-of-the-world request reports for `url`: the last one acknowledged.
    fn acked_version(&self, url: &str) -> String {
        self.held_version.get(url).cloned().unwrap_or_default()
    }
}

/// What Envoy subscribed to of one type.
#[derive(Clone, Debug, Default)]
struct Scope {
    wildcard: bool,
    /// Kept while wildcard too: unsubscribing `*` leaves them.
    names: BTreeSet<String>,
}

impl Scope {
    fn contains(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// A response sent and not answered yet.
#[derive(Debug)]
struct InFlight {
    nonce: String,
    version: String,
    resources: BTreeMap<String, String>,
    removed: Vec<String>,
}

/// One stream's view from Envoy's side.
#[derive(Default, Debug)]
struct StreamView {
    /// The types requested, and the scope asked for.
    scope: BTreeMap<&'static str, Scope>,
    in_flight: BTreeMap<&'static str, InFlight>,
    last_nonce: BTreeMap<&'static str, String>,
    /// Versions refused since the last publish or the type's last ACK.
    refused: BTreeMap<&'static str, BTreeSet<String>>,
    /// Envoy claimed versions it does not hold: its model says nothing of this stream.
    lied: bool,
}

struct Harness {
    delta: bool,
    published: Option<Published>,
    stream: Stream,
    view: StreamView,
    envoy: Envoy,
    /// A NACK since the last publish: that configuration need not converge.
    nacked_since_publish: bool,
}

impl Harness {
    fn new(delta: bool) -> Self {
        Self {
            delta,
            published: None,
            stream: Stream::new(None, delta),
            view: StreamView::default(),
            envoy: Envoy::default(),
            nacked_since_publish: false,
        }
    }

    fn play(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Publish(types) => self.publish(types),
                Op::Request(r) => self.request(r),
                Op::Answer { ty, nack } => {
                    let Some(url) = self.in_flight_type(*ty) else {
                        continue;
                    };
                    self.answer(url, *nack);
                }
                Op::Reconnect { lie } => self.reconnect(lie.as_deref()),
                Op::Settle => self.settle(),
            }
            self.check_converged_means_held();
        }
    }

    fn publish(&mut self, types: &[Vec<(u8, u8)>; 5]) {
        let mut set = ResourceSet::new();
        for (url, resources) in SERVED.into_iter().zip(types) {
            for (name, content) in resources {
                // The name in the content: a state-of-the-world response names its resources
                // only there.
                let name = pick(&NAMES, *name);
                let any = Any {
                    type_url: url.to_owned(),
                    value: format!("{name}={}", content % 4).into_bytes(),
                };
                set.insert_any(url, name, any);
            }
        }
        let published = Published::new(set);
        self.stream.publish(&published);
        self.published = Some(published);
        self.view.refused.clear();
        self.nacked_since_publish = false;
        self.respond();
    }

    fn in_flight_type(&self, ty: u8) -> Option<&'static str> {
        let types: Vec<_> = self.view.in_flight.keys().copied().collect();
        (!types.is_empty()).then(|| types[usize::from(ty) % types.len()])
    }

    fn reconnect(&mut self, lie: Option<&[(u8, u8)]>) {
        self.stream = Stream::new(self.published.as_ref(), self.delta);
        self.view = StreamView {
            lied: lie.is_some(),
            ..StreamView::default()
        };
        self.nacked_since_publish = false;
        // Envoy asks again for what it had, with what it holds: as on a real reconnect.
        let held: Vec<&'static str> = SERVED
            .into_iter()
            .filter(|url| self.envoy.held.contains_key(url))
            .collect();
        for url in held {
            let names = self.held_names(url);
            if self.delta {
                let initial = match lie {
                    Some(lie) => lie
                        .iter()
                        .map(|(n, v)| (pick(&NAMES, *n).to_owned(), format!("made-up-{v}")))
                        .collect(),
                    None => self.envoy.held[url].clone().into_iter().collect(),
                };
                let subscribe = if is_wildcard(url) { Vec::new() } else { names };
                self.delta_request(DeltaDiscoveryRequest {
                    type_url: url.to_owned(),
                    resource_names_subscribe: subscribe,
                    initial_resource_versions: initial,
                    ..Default::default()
                });
            } else {
                let version_info = match lie {
                    Some(lie) => format!("made-up-{}", lie.len()),
                    None => self.envoy.acked_version(url),
                };
                self.sotw_request(DiscoveryRequest {
                    type_url: url.to_owned(),
                    version_info,
                    resource_names: names,
                    ..Default::default()
                });
            }
        }
    }

    /// The names Envoy holds of `url`, to subscribe to again.
    fn held_names(&self, url: &str) -> Vec<String> {
        self.envoy
            .held
            .get(url)
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn request(&mut self, r: &Request) {
        let url = TYPES[usize::from(r.ty) % TYPES.len()];
        let nonce = match &r.nonce {
            Nonce::Empty => String::new(),
            Nonce::Current => self.view.last_nonce.get(url).cloned().unwrap_or_default(),
            Nonce::Made(n) => n.to_string(),
        };
        let names = |list: &[Option<u8>]| -> Vec<String> {
            list.iter()
                .map(|n| n.map_or("*", |n| pick(&NAMES, n)).to_owned())
                .collect()
        };
        let error_detail = r.error.then(|| Status {
            message: "refused by the fuzzer".to_owned(),
            ..Default::default()
        });
        if self.delta {
            self.delta_request(DeltaDiscoveryRequest {
                type_url: url.to_owned(),
                response_nonce: nonce,
                resource_names_subscribe: names(&r.names),
                resource_names_unsubscribe: names(&r.unsubscribe),
                error_detail,
                ..Default::default()
            });
        } else {
            let sent = self.view.in_flight.get(url).map(|f| f.version.clone());
            let version_info = match r.version {
                None => sent.unwrap_or_default(),
                Some(v) => format!("made-up-{v}"),
            };
            self.sotw_request(DiscoveryRequest {
                type_url: url.to_owned(),
                response_nonce: nonce,
                version_info,
                resource_names: names(&r.names),
                error_detail,
                ..Default::default()
            });
        }
    }

    /// Envoy answers the response of `url` in flight, repeating its scope.
    fn answer(&mut self, url: &'static str, nack: bool) {
        let Some(f) = self.view.in_flight.get(url) else {
            return;
        };
        let error_detail = nack.then(|| Status {
            message: "refused by the fuzzer".to_owned(),
            ..Default::default()
        });
        if self.delta {
            self.delta_request(DeltaDiscoveryRequest {
                type_url: url.to_owned(),
                response_nonce: f.nonce.clone(),
                error_detail,
                ..Default::default()
            });
        } else {
            let names = self
                .view
                .scope
                .get(url)
                .map(|s| s.names.iter().cloned().collect())
                .unwrap_or_default();
            self.sotw_request(DiscoveryRequest {
                type_url: url.to_owned(),
                response_nonce: f.nonce.clone(),
                version_info: if nack {
                    self.envoy.acked_version(url)
                } else {
                    f.version.clone()
                },
                resource_names: names,
                error_detail,
                ..Default::default()
            });
        }
    }

    fn sotw_request(&mut self, req: DiscoveryRequest) {
        let known = type_url::known(&req.type_url);
        // A request with another nonce than the last response's is stale, ignored whole.
        let stale = |url: &str| {
            !req.response_nonce.is_empty()
                && self.view.last_nonce.get(url).map_or("", String::as_str) != req.response_nonce
        };
        if let Some(url) = known.filter(|url| !stale(url)) {
            self.answered(
                url,
                &req.response_nonce,
                req.error_detail.is_some()
                    || self
                        .view
                        .in_flight
                        .get(url)
                        .is_some_and(|f| f.version != req.version_info),
            );
            if req.response_nonce.is_empty()
                && !req.version_info.is_empty()
                && self.envoy.held_version.get(url) != Some(&req.version_info)
            {
                self.view.lied = true;
            }
            let scope = Scope {
                wildcard: is_wildcard(url) || req.resource_names.iter().any(|n| n == "*"),
                names: req
                    .resource_names
                    .iter()
                    .filter(|n| *n != "*")
                    .cloned()
                    .collect(),
            };
            self.view.scope.insert(url, scope);
        }
        let refused = self.stream.sotw_request(req);
        self.check_refusal(known, refused);
        self.respond();
    }

    fn delta_request(&mut self, req: DeltaDiscoveryRequest) {
        let known = type_url::known(&req.type_url);
        if let Some(url) = known {
            self.answered(url, &req.response_nonce, req.error_detail.is_some());
            let first = !self.view.scope.contains_key(url);
            let scope = self.view.scope.entry(url).or_insert_with(|| Scope {
                // A first request subscribing to nothing is the legacy wildcard.
                wildcard: req.resource_names_subscribe.is_empty(),
                names: BTreeSet::new(),
            });
            for n in &req.resource_names_subscribe {
                if n == "*" {
                    scope.wildcard = true;
                } else {
                    scope.names.insert(n.clone());
                }
            }
            for n in &req.resource_names_unsubscribe {
                if n == "*" {
                    scope.wildcard = false;
                } else {
                    scope.names.remove(n);
                }
            }
            if first
                && req
                    .initial_resource_versions
                    .iter()
                    .any(|(n, v)| self.envoy.held.get(url).and_then(|h| h.get(n)) != Some(v))
            {
                self.view.lied = true;
            }
            // Envoy forgets what it unsubscribed from.
            if let Some(scope) = self.view.scope.get(url).filter(|s| !s.wildcard)
                && let Some(held) = self.envoy.held.get_mut(url)
            {
                held.retain(|n, _| scope.names.contains(n));
            }
        }
        let refused = self.stream.delta_request(req);
        self.check_refusal(known, refused);
        self.respond();
    }

    /// Updates the model for a request carrying `nonce`: if it is that of the response of
    /// `url` in flight, Envoy applies it (ACK) or keeps what it had (NACK).
    fn answered(&mut self, url: &'static str, nonce: &str, refuse: bool) {
        if nonce.is_empty()
            || self
                .view
                .in_flight
                .get(url)
                .is_none_or(|f| f.nonce != nonce)
        {
            return;
        }
        let Some(f) = self.view.in_flight.remove(url) else {
            return;
        };
        if refuse {
            // The stream remembers the last refusal of a type only: content refused before it
            // may go again once the scope changes (a finding, left to the NACK rework in xds/).
            self.view.refused.insert(url, BTreeSet::from([f.version]));
            self.nacked_since_publish = true;
            return;
        }
        // The stream forgets a refusal once Envoy acknowledges another response of the type
        // (a scope changed in between, say): the refused content may then go again.
        self.view.refused.remove(url);
        let held = self.envoy.held.entry(url).or_default();
        if self.delta {
            let scope = self.view.scope.get(url).cloned().unwrap_or_default();
            for (n, v) in f.resources {
                if scope.contains(&n) {
                    held.insert(n, v);
                }
            }
            for n in f.removed {
                held.remove(&n);
            }
        } else {
            *held = f.resources;
        }
        self.envoy.held_version.insert(url, f.version);
    }

    /// The stream reports a refusal exactly when the model saw a NACK of a response in flight.
    fn check_refusal(&self, url: Option<&'static str>, refused: Option<String>) {
        if let (Some(url), Some(version)) = (url, refused) {
            assert!(
                self.view
                    .refused
                    .get(url)
                    .is_some_and(|r| r.contains(&version)),
                "a refusal of {url} at {version} the model did not see"
            );
        }
    }

    /// The server's step after an event: at most one response.
    fn respond(&mut self) {
        let sent = if self.delta {
            self.stream.delta_next().map(delta_response)
        } else {
            self.stream.sotw_next().map(sotw_response)
        };
        let Some((url, f)) = sent else {
            return;
        };
        let url = type_url::known(&url).unwrap_or_else(|| panic!("a response of type {url}"));
        assert!(
            self.view.scope.contains_key(url),
            "a response of {url}, which Envoy did not ask for"
        );
        let flying: Vec<&str> = self.view.in_flight.keys().copied().collect();
        assert!(
            flying.is_empty()
                || ([type_url::ENDPOINT, type_url::SECRET].contains(&url)
                    && flying == [type_url::CLUSTER]),
            "a response of {url} while {flying:?} are in flight"
        );
        assert!(
            !self
                .view
                .refused
                .get(url)
                .is_some_and(|r| r.contains(&f.version)),
            "{url} at {} again, which Envoy refused",
            f.version
        );
        if let Some(scope) = self.view.scope.get(url) {
            for n in f.resources.keys() {
                assert!(scope.contains(n), "{url} {n} sent, not subscribed");
            }
        }
        self.view.last_nonce.insert(url, f.nonce.clone());
        self.view.in_flight.insert(url, f);
    }

    /// Envoy subscribes to everything published and acknowledges every response: the stream
    /// must converge to the last published version.
    fn settle(&mut self) {
        let Some(published) = self.published.clone() else {
            return;
        };
        for url in SERVED {
            let names: Vec<String> = published
                .resources(url)
                .map(|(n, _)| n.to_owned())
                .collect();
            let nonce = self.view.last_nonce.get(url).cloned().unwrap_or_default();
            if self.delta {
                let subscribe = if is_wildcard(url) {
                    vec!["*".to_owned()]
                } else {
                    names
                };
                self.delta_request(DeltaDiscoveryRequest {
                    type_url: url.to_owned(),
                    response_nonce: nonce,
                    resource_names_subscribe: subscribe,
                    ..Default::default()
                });
            } else {
                let version_info = match self.view.in_flight.get(url) {
                    Some(f) if f.nonce == nonce => f.version.clone(),
                    _ => self.envoy.acked_version(url),
                };
                self.sotw_request(DiscoveryRequest {
                    type_url: url.to_owned(),
                    response_nonce: nonce,
                    version_info,
                    resource_names: names,
                    ..Default::default()
                });
            }
        }
        // Every response is acknowledged; each type's content changes at most twice (make
        // before break), so this ends well before the bound.
        for _ in 0..64 {
            let Some(url) = self.view.in_flight.keys().next().copied() else {
                break;
            };
            self.answer(url, false);
        }
        assert!(
            self.view.in_flight.is_empty(),
            "still sending after 64 ACKs"
        );
        // A NACK never holds back a later configuration: after the last publish, every answer an
        // ACK, the stream converges.
        if self.nacked_since_publish {
            return;
        }
        assert_eq!(
            self.stream.converged_version(),
            Some(published.version()),
            "Envoy acknowledged everything sent since the last publish"
        );
    }

    /// Whenever the stream says Envoy has the configuration, Envoy has it.
    fn check_converged_means_held(&self) {
        let (Some(version), Some(published)) =
            (self.stream.converged_version(), self.published.as_ref())
        else {
            return;
        };
        assert_eq!(version, published.version());
        if self.view.lied {
            return;
        }
        for (url, scope) in &self.view.scope {
            let wanted: BTreeMap<String, String> = published
                .resources(url)
                .filter(|(n, _)| scope.contains(n))
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            let held = self.envoy.held.get(url).cloned().unwrap_or_default();
            assert_eq!(held, wanted, "converged, but Envoy's {url} differ");
        }
    }
}

/// CDS and LDS are wildcard subscriptions.
fn is_wildcard(url: &str) -> bool {
    url == type_url::CLUSTER || url == type_url::LISTENER
}

fn pick<'a>(from: &[&'a str], i: u8) -> &'a str {
    from[usize::from(i) % from.len()]
}

fn sotw_response(r: DiscoveryResponse) -> (String, InFlight) {
    let resources = r
        .resources
        .iter()
        .map(|any| (name_of(any), version_of(any)))
        .collect();
    (
        r.type_url,
        InFlight {
            nonce: r.nonce,
            version: r.version_info,
            resources,
            removed: Vec::new(),
        },
    )
}

fn delta_response(r: DeltaDiscoveryResponse) -> (String, InFlight) {
    let resources = r
        .resources
        .into_iter()
        .map(|res| (res.name, res.version))
        .collect();
    (
        r.type_url,
        InFlight {
            nonce: r.nonce,
            version: r.system_version_info,
            resources,
            removed: r.removed_resources,
        },
    )
}

/// The name a resource was published under (see [`Harness::publish`]).
fn name_of(any: &Any) -> String {
    let text = String::from_utf8_lossy(&any.value);
    text.split_once('=').map_or("", |(n, _)| n).to_owned()
}

fn version_of(any: &Any) -> String {
    Res::new(any.clone()).version
}
