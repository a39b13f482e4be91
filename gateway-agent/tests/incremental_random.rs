//! A [`Translator`] keeps memos from one build to the next (compiled Mappings, groups, bound
//! virtual hosts, cluster counts, endpoints, encodings); whatever the history, each build must
//! equal a build from scratch: the IR and every Envoy resource with its version, byte for byte.
//! In the spirit of Emissary's randomized cache test, random sequences of changes to a mixed
//! fleet check that after every step, as Kubernetes (authority over Services) and as a directory
//! of YAML.
//!
//! The fleet is drawn from a small vocabulary so that resources collide: a few names per kind
//! and namespace (a new object often replaces one, which is an edit), the same prefixes and
//! hostnames (canary groups, namespace conflicts, Hosts that claim the same name), labels and
//! selectors that come and go, `ambassador_id`s that move a resource in and out of the
//! gateway, Secrets and TLSContexts that Hosts refer to, Services with their EndpointSlices and
//! Endpoints, values the IR refuses, and now and then an object declared twice (two files of a
//! directory can). A step changes one resource or several at once: put a new one (or a new
//! version of one), renew one (the same content in a new `Arc`: recompiled, nothing may change),
//! delete one, or hand the same resources over in another order. A failure shrinks to a minimal
//! sequence of steps and prints it, each resource as the JSON the loader read: the makings of a
//! focused regression test.
//!
//! In CI it runs `CASES` sequences, from a new seed each time. A long run takes more, with any
//! of proptest's settings (`PROPTEST_RNG_SEED=N` repeats a run; `--nocapture` prints how many
//! steps ran and how fast, shrinking included):
//!
//! ```text
//! PROPTEST_CASES=20000 cargo test --workspace --test incremental_random -- --nocapture
//! ```

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use legate_agent::{
    ir::{ServiceNamespaces, Settings},
    pipeline::{Configuration, Translator},
    xds::type_url,
};
use legate_crds::{ObjectRef, Resource, loader};
use proptest::{
    collection::vec,
    option,
    prelude::*,
    sample::{Index, select},
    strategy::Union,
    test_runner::{Config, TestCaseError, TestError, TestRunner},
};
use serde_json::{Map, Value, json};

/// Sequences run in CI when `PROPTEST_CASES` does not say: about 4,000 steps, each built
/// incrementally and from scratch in both modes.
const CASES: u32 = 200;

#[test]
fn every_step_of_a_random_history_builds_as_from_scratch() {
    let mut config = Config {
        // A failure is turned into a focused regression test, not a file beside this one.
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    let started = Instant::now();
    let result = TestRunner::new(config).run(&history(), |steps| {
        check(&steps).map_err(TestCaseError::fail)
    });
    let steps = STEPS.load(Ordering::Relaxed);
    eprintln!(
        "{steps} steps in {:.1} s ({:.0} steps/s)",
        started.elapsed().as_secs_f64(),
        steps as f64 / started.elapsed().as_secs_f64()
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(_, steps)) => {
            let (steps, why) = minimized(steps);
            panic!("{why}\nminimal sequence of steps:\n{}", Steps(&steps))
        }
        Err(e) => panic!("{e}"),
    }
}

/// Steps replayed, over every sequence (shrinking included).
static STEPS: AtomicU64 = AtomicU64::new(0);

/// [`replay`], with a panic (a memo's broken invariant) as a failure like any other.
fn check(steps: &[Step]) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| replay(steps))).unwrap_or_else(
        |panic| {
            let message = (panic.downcast_ref::<String>().cloned())
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            Err(format!("panicked: {}", message.unwrap_or_default()))
        },
    )
}

/// Applies the steps one after the other; after each, every mode's incremental build must be the
/// build from scratch.
fn replay(steps: &[Step]) -> Result<(), String> {
    let mut fleet = Fleet::default();
    let mut modes: Vec<(&str, Settings, Translator)> = modes()
        .into_iter()
        .map(|(name, settings)| (name, settings.clone(), Translator::new(settings)))
        .collect();
    for (i, step) in steps.iter().enumerate() {
        STEPS.fetch_add(1, Ordering::Relaxed);
        fleet.apply(step);
        let current = fleet.resources();
        let owned: Vec<Resource> = current.iter().map(|r| Resource::clone(r)).collect();
        for (mode, settings, translator) in &mut modes {
            let incremental = translator.build(&current);
            let fresh = Configuration::build(&owned, settings);
            if incremental != fresh {
                return Err(format!(
                    "{mode}: after step {}, the incremental build is not the build from scratch:\n{}",
                    i + 1,
                    difference(&incremental, &fresh)
                ));
            }
        }
    }
    Ok(())
}

/// A failing history without the steps and changes it fails without, and why it fails.
/// proptest's shrinking stops short on a list of lists whose later steps point into what
/// earlier ones built; taking out one step or one change at a time, while it still fails,
/// finishes the job.
fn minimized(mut steps: Vec<Step>) -> (Vec<Step>, String) {
    let mut why = check(&steps).err().unwrap_or_default();
    loop {
        let smaller = one_less(&steps).find_map(|fewer| {
            let w = check(&fewer).err()?;
            Some((fewer, w))
        });
        match smaller {
            Some(smaller) => (steps, why) = smaller,
            None => return (steps, why),
        }
    }
}

/// Every history with one step, or one change of a step, taken out.
fn one_less(steps: &[Step]) -> impl Iterator<Item = Vec<Step>> + '_ {
    let without_step = (0..steps.len()).map(move |i| {
        let mut fewer = steps.to_vec();
        fewer.remove(i);
        fewer
    });
    let without_change = (0..steps.len()).flat_map(move |i| {
        (0..steps[i].0.len()).map(move |j| {
            let mut fewer = steps.to_vec();
            fewer[i].0.remove(j);
            fewer
        })
    });
    without_step.chain(without_change)
}

/// As a directory of YAML (no authority over Services), and as Kubernetes (authority over every
/// namespace: a missing Service is then an empty one, not a DNS name).
fn modes() -> [(&'static str, Settings); 2] {
    [
        ("directory", Settings::default()),
        (
            "kubernetes",
            Settings {
                service_namespaces: Some(ServiceNamespaces::All),
                ..Settings::default()
            },
        ),
    ]
}

/// The resources the source holds, one per kind, namespace and name, as it hands them over:
/// each in its own `Arc`, shared from one snapshot to the next while unchanged, in an order
/// of its own (a build may depend on what changed, never on the order it is given).
#[derive(Default)]
struct Fleet {
    /// By key, and by the file that declares it: a directory may declare an object twice.
    resources: BTreeMap<(ObjectRef, File), Arc<Resource>>,
    /// Resources are handed over by the hash of their key with this seed; `0`: by key.
    order: u64,
}

impl Fleet {
    fn apply(&mut self, step: &Step) {
        for change in &step.0 {
            match change {
                Change::Put(doc, file) => {
                    // A document the loader refuses never reaches the translator: no change.
                    let loaded = loader::load_object("random", doc.0.clone());
                    for r in loaded.resources {
                        self.resources.insert((r.object_ref(), *file), Arc::new(r));
                    }
                }
                Change::Renew(at) => {
                    if let Some((_, r)) = self.nth(at) {
                        *r = Arc::new(Resource::clone(r));
                    }
                }
                Change::Delete(at) => {
                    if let Some((key, _)) = self.nth(at) {
                        let key = key.clone();
                        self.resources.remove(&key);
                    }
                }
                Change::Shuffle(order) => self.order = *order,
            }
        }
    }

    fn nth(&mut self, at: &Index) -> Option<(&(ObjectRef, File), &mut Arc<Resource>)> {
        if self.resources.is_empty() {
            return None;
        }
        let i = at.index(self.resources.len());
        self.resources.iter_mut().nth(i)
    }

    fn resources(&self) -> Vec<Arc<Resource>> {
        let mut in_order: Vec<(u64, &Arc<Resource>)> = self
            .resources
            .iter()
            .map(|(key, r)| {
                let mut hasher = DefaultHasher::new();
                (self.order, key).hash(&mut hasher);
                (if self.order == 0 { 0 } else { hasher.finish() }, r)
            })
            .collect();
        // Stable: with order 0, by key.
        in_order.sort_by_key(|(rank, _)| *rank);
        in_order.into_iter().map(|(_, r)| r.clone()).collect()
    }
}

/// Changes the source applies together, then one build.
#[derive(Clone, Debug)]
struct Step(Vec<Change>);

#[derive(Clone, Debug)]
enum Change {
    /// A new resource, or a new version of the one with its kind, namespace and name in that
    /// file.
    Put(Doc, File),
    /// The same content in a new `Arc`, as a source that decoded it again hands it over.
    Renew(Index),
    Delete(Index),
    /// The same resources in another order.
    Shuffle(u64),
}

/// Which file declares a resource: mostly the first; an object declared in both is two
/// resources with one name, as a directory of YAML can have (Kubernetes cannot).
type File = u8;

fn file() -> impl Strategy<Value = File> {
    prop_oneof![9 => Just(0), 1 => Just(1)]
}

/// A document as the API server or a file gives it, printed as compact JSON.
#[derive(Clone)]
struct Doc(Value);

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Steps one per line, for the report of a failure.
struct Steps<'a>(&'a [Step]);

impl fmt::Display for Steps<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            writeln!(f, "step {}:", i + 1)?;
            for change in &step.0 {
                writeln!(f, "  {change:?}")?;
            }
        }
        Ok(())
    }
}

/// A history: a first batch that builds a fleet at once, then single changes and bursts.
fn history() -> impl Strategy<Value = Vec<Step>> {
    let doc = document(key_pairs()).boxed();
    let change = prop_oneof![
        6 => (doc.clone(), file()).prop_map(|(doc, file)| Change::Put(doc, file)),
        2 => any::<Index>().prop_map(Change::Renew),
        2 => any::<Index>().prop_map(Change::Delete),
        1 => any::<u64>().prop_map(Change::Shuffle),
    ]
    .boxed();
    let first = vec(
        (doc, file()).prop_map(|(doc, file)| Change::Put(doc, file)),
        0..40,
    )
    .prop_map(Step);
    // Past 16 changes at once, grouping and notes merge instead of inserting one by one.
    let step = prop_oneof![
        16 => vec(change.clone(), 1..=1),
        4 => vec(change.clone(), 2..12),
        1 => vec(change, 12..48),
    ]
    .prop_map(Step);
    (first, vec(step, 1..40)).prop_map(|(first, rest)| {
        let mut steps = vec![first];
        steps.extend(rest);
        steps
    })
}

/// Any of the kinds, Mappings the most.
fn document(key_pairs: Choices) -> impl Strategy<Value = Doc> {
    prop_oneof![
        8 => mapping(),
        3 => host(),
        2 => listener(),
        1 => tls_context(),
        3 => secret(key_pairs),
        2 => service(),
        2 => endpoint_slice(),
        1 => endpoints(),
        1 => module(),
        1 => rate_limit_service(),
        1 => log_service(),
        1 => tracing_service(),
    ]
    .prop_map(Doc)
}

/// Field values in a document: the first of each list is the most common.
type Choices = Vec<(u32, Value)>;

/// One of `choices`, each as likely as its weight.
fn one_of(choices: Choices) -> impl Strategy<Value = Value> {
    Union::new_weighted(choices.into_iter().map(|(w, v)| (w, Just(v))).collect())
}

/// One of `values`, each as likely.
fn pick<T: Clone + fmt::Debug + 'static>(values: impl Into<Vec<T>>) -> impl Strategy<Value = T> {
    select(values.into())
}

/// One of `values` in half the documents, else the field is left out.
fn maybe(values: impl Into<Vec<Value>>) -> impl Strategy<Value = Option<Value>> {
    option::of(pick(values))
}

/// One of `values` in one document out of five.
fn rarely(values: impl Into<Vec<Value>>) -> impl Strategy<Value = Option<Value>> {
    option::weighted(0.2, pick(values))
}

/// An object of the fields that are set.
fn object<const N: usize>(fields: [(&str, Option<Value>); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect::<Map<_, _>>(),
    )
}

/// `a` with the fields of `b` (both objects).
fn merged(mut a: Value, b: Value) -> Value {
    if let (Value::Object(a), Value::Object(b)) = (&mut a, b) {
        a.extend(b);
    }
    a
}

fn resource(api_version: &str, kind: &str, metadata: Value, body: Value) -> Value {
    let head = json!({"apiVersion": api_version, "kind": kind, "metadata": metadata});
    merged(head, body)
}

/// A name among `names` in one of the namespaces (the gateway's most often), with `labels`;
/// sometimes a creation time (the older Mapping owns a contested match).
fn metadata(
    names: &'static [&'static str],
    labels: impl Strategy<Value = Option<Value>>,
) -> impl Strategy<Value = Value> {
    (
        pick(names),
        one_of(vec![
            (3, json!("default")),
            (2, json!("team-a")),
            (1, json!("team-b")),
        ]),
        labels,
        rarely([json!("2026-01-01T00:00:00Z"), json!("2026-02-01T00:00:00Z")]),
    )
        .prop_map(|(name, namespace, labels, created)| {
            object([
                ("name", Some(json!(name))),
                ("namespace", Some(namespace)),
                ("labels", labels),
                ("creationTimestamp", created),
            ])
        })
}

/// Mostly absent (`default`), else a list that keeps or takes away this gateway.
fn ambassador_id() -> impl Strategy<Value = Option<Value>> {
    rarely([
        json!(["default"]),
        json!(["other"]),
        json!(["other", "default"]),
    ])
}

fn ambassador(kind: &str, metadata: Value, spec: Value) -> Value {
    resource(
        "getambassador.io/v3alpha1",
        kind,
        metadata,
        json!({ "spec": spec }),
    )
}

fn mapping() -> impl Strategy<Value = Value> {
    let labels = maybe([
        json!({"team": "a"}),
        json!({"team": "b"}),
        json!({"team": "a", "tier": "gold"}),
    ]);
    let matching = (
        one_of(vec![
            (3, json!("/a/")),
            (2, json!("/")),
            (2, json!("/a/b/")),
            (2, json!("/b/")),
            (1, json!("/[ab]/")),
            (1, json!("/(")),
        ]),
        rarely([json!(true)]), // prefix_regex
        rarely([json!(true)]), // prefix_exact
        one_of(vec![
            (3, json!({})),
            (3, json!({"hostname": "a.example.com"})),
            (2, json!({"hostname": "b.example.com"})),
            (1, json!({"hostname": "*"})),
            (1, json!({"hostname": "*.example.com"})),
            (1, json!({"hostname": "A.Example.COM"})),
            (1, json!({"hostname": "a.example.com:8443"})),
            (1, json!({"host": "a.example.com"})),
            (
                1,
                json!({"host": "^[ab]\\.example\\.com$", "host_regex": true}),
            ),
        ]),
        rarely([json!("GET"), json!("POST")]),
        rarely([json!({"x-canary": "1"}), json!({"x-canary": true})]),
        rarely([json!(1), json!(-1)]), // precedence
        rate_limit_labels(),
    );
    let action = (
        one_of(vec![
            (4, json!("svc-a")),
            (3, json!("svc-b")),
            (1, json!("svc-a.team-a")),
            (1, json!("svc-b.default:http")),
            (1, json!("svc-a:8080")),
            (1, json!("svc-a:grpc")),
            (1, json!("https://svc-b")),
            (1, json!("10.0.0.1:8080")),
            (1, json!("ext.example.com")),
            (1, json!("http://svc-a/path")),
            (1, json!("svc-a.team-b.svc.cluster.local:80")),
        ]),
        maybe([json!(0), json!(10), json!(50), json!(60), json!(100)]), // weight
        // A shadow, a redirect (never both: the loader refuses that), or neither.
        one_of(vec![
            (8, json!({})),
            (1, json!({"shadow": true})),
            (1, json!({"host_redirect": true})),
        ]),
        rarely([json!("/"), json!("/x/")]), // rewrite
        rarely([json!(true), json!("ctx-a"), json!("ctx-b")]), // tls: null context, or one
        rarely([json!(true)]),              // grpc
        rarely([json!(1000)]),              // timeout_ms
        rarely([json!(500)]),               // connect_timeout_ms
        cors(),
    );
    (
        metadata(&["m1", "m2", "m3", "m4"], labels),
        ambassador_id(),
        matching,
        action,
    )
        .prop_map(
            |(
                meta,
                id,
                (prefix, regex, exact, host, method, headers, precedence, rl_labels),
                (service, weight, role, rewrite, tls, grpc, timeout, connect, cors),
            )| {
                let spec = object([
                    ("ambassador_id", id),
                    ("prefix", Some(prefix)),
                    ("prefix_regex", regex),
                    ("prefix_exact", exact),
                    ("method", method),
                    ("headers", headers),
                    ("precedence", precedence),
                    ("service", Some(service)),
                    ("weight", weight),
                    ("rewrite", rewrite),
                    ("tls", tls),
                    ("grpc", grpc),
                    ("timeout_ms", timeout),
                    ("connect_timeout_ms", connect),
                    ("cors", cors),
                    ("labels", rl_labels),
                ]);
                ambassador("Mapping", meta, merged(merged(spec, host), role))
            },
        )
}

/// A CORS policy, sometimes one that is refused: every compiled Mapping without one depends on
/// the gateway Module's.
fn cors() -> impl Strategy<Value = Option<Value>> {
    rarely([
        json!({"origins": ["https://a.example.com"]}),
        json!({"origins": ["*"], "methods": ["GET"], "credentials": true}),
        json!({}),
        json!({"max_age": "-1"}),
    ])
}

/// The gateway Module (named `ambassador`, mostly in the gateway's namespace), or another.
fn module() -> impl Strategy<Value = Value> {
    (
        metadata(&["ambassador", "ambassador", "other"], Just(None)),
        cors(),
        rarely([json!("ambassador"), json!("other")]), // default_label_domain
        rarely([
            json!({"ambassador": {"defaults": ["remote_address"]}}),
            json!({"other": {"defaults": [{"generic_key": {"value": "d"}}]}}),
            json!({"ambassador": {"defaults": [{"generic_key": {}}]}}), // refused
        ]),
    )
        .prop_map(|(meta, cors, domain, defaults)| {
            let config = object([
                ("cors", cors),
                ("default_label_domain", domain),
                ("default_labels", defaults),
            ]);
            ambassador("Module", meta, json!({ "config": config }))
        })
}

/// Rate-limit labels: the domains the services and the Module name, and a malformed one.
fn rate_limit_labels() -> impl Strategy<Value = Option<Value>> {
    rarely([
        json!({"ambassador": [{"g": ["remote_address", {"generic_key": {"value": "v"}}]}]}),
        json!({"other": [{"g": [{"request_headers": {"key": "u", "header_name": "x-u"}}]}]}),
        json!({"ambassador": [{"g": [{"nonsense": {}}]}]}),
    ])
}

/// The gateway's RateLimitService: a few that compete, domains that come and go, services that
/// resolve to a Kubernetes Service or not.
fn rate_limit_service() -> impl Strategy<Value = Value> {
    (
        metadata(&["rl1", "rl2"], Just(None)),
        ambassador_id(),
        one_of(vec![
            (2, json!("svc-a:8081")),
            (1, json!("svc-b.default:http")),
        ]),
        rarely([json!("ambassador"), json!("other"), json!("")]),
        rarely([json!(true)]), // failure_mode_deny
    )
        .prop_map(|(meta, id, service, domain, deny)| {
            let spec = object([
                ("ambassador_id", id),
                ("service", Some(service)),
                ("domain", domain),
                ("failure_mode_deny", deny),
            ]);
            ambassador("RateLimitService", meta, spec)
        })
}

/// LogServices: several log at once, with services that resolve to a Kubernetes Service or
/// not, and settings that refuse one.
fn log_service() -> impl Strategy<Value = Value> {
    (
        metadata(&["ls1", "ls2"], Just(None)),
        ambassador_id(),
        one_of(vec![
            (2, json!("svc-a:3000")),
            (1, json!("svc-b.default:http")),
        ]),
        maybe([json!("http"), json!("tcp")]),
        rarely([
            json!({"additional_log_headers": [{"header_name": "x-a"}]}),
            json!({"additional_log_headers": [{"header_name": "x a"}]}),
        ]),
        rarely([json!("v2")]),
    )
        .prop_map(|(meta, id, service, driver, config, version)| {
            let spec = object([
                ("ambassador_id", id),
                ("service", Some(service)),
                ("driver", driver),
                ("driver_config", config),
                ("protocol_version", version),
            ]);
            ambassador("LogService", meta, spec)
        })
}

/// The gateway's TracingService: a few that compete, drivers that change the cluster's protocol
/// or are refused, services that resolve to a Kubernetes Service or not.
fn tracing_service() -> impl Strategy<Value = Value> {
    (
        metadata(&["tr1", "tr2"], Just(None)),
        ambassador_id(),
        one_of(vec![
            (2, json!("zipkin")),
            (1, json!("opentelemetry")),
            (1, json!("lightstep")),
        ]),
        one_of(vec![
            (2, json!("svc-a:9411")),
            (1, json!("svc-b.default:http")),
        ]),
        rarely([json!({"random": 10}), json!({"client": 0, "overall": 50})]),
    )
        .prop_map(|(meta, id, driver, service, sampling)| {
            let spec = object([
                ("ambassador_id", id),
                ("driver", Some(driver)),
                ("service", Some(service)),
                ("sampling", sampling),
            ]);
            ambassador("TracingService", meta, spec)
        })
}

fn host() -> impl Strategy<Value = Value> {
    (
        metadata(
            &["h1", "h2", "h3"],
            maybe([json!({"gw": "x"}), json!({"gw": "y"})]),
        ),
        ambassador_id(),
        one_of(vec![
            (1, json!({})),
            (3, json!({"hostname": "a.example.com"})),
            (2, json!({"hostname": "b.example.com"})),
            (2, json!({"hostname": "*.example.com"})),
            (1, json!({"hostname": "*"})),
            (1, json!({"hostname": "A.Example.COM"})),
            (1, json!({"hostname": "a.example.com:8443"})),
        ]),
        rarely([
            json!({"matchLabels": {"team": "a"}}),
            json!({"matchLabels": {"team": "b"}}),
            json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]}),
        ]),
        maybe([
            json!({"name": "cert-a"}),
            json!({"name": "cert-a"}),
            json!({"name": "cert-b"}),
            json!({"name": "cert-a", "namespace": "team-a"}),
            json!({"name": "missing"}),
        ]),
        rarely([json!({"name": "ctx-a"}), json!({"name": "ctx-b"})]),
        maybe(["Redirect", "Route", "Reject"].map(|a| json!({"insecure": {"action": a}}))),
        rarely([json!({"from": "Same"}), json!({"from": "All"})]),
    )
        .prop_map(
            |(meta, id, hostname, selector, secret, context, policy, namespaces)| {
                let spec = object([
                    ("ambassador_id", id),
                    ("mappingSelector", selector),
                    ("tlsSecret", secret),
                    ("tlsContext", context),
                    ("requestPolicy", policy),
                    ("mappingNamespaces", namespaces),
                ]);
                ambassador("Host", meta, merged(spec, hostname))
            },
        )
}

fn listener() -> impl Strategy<Value = Value> {
    (
        metadata(&["l1", "l2"], Just(None)),
        ambassador_id(),
        one_of(vec![(3, json!(8080)), (3, json!(8443)), (1, json!(9000))]),
        one_of(vec![
            (4, json!("HTTP")),
            (3, json!("HTTPS")),
            (1, json!("HTTPPROXY")),
            (1, json!("TCP")),
        ]),
        one_of(vec![
            (4, json!("XFP")),
            (1, json!("SECURE")),
            (1, json!("INSECURE")),
        ]),
        one_of(vec![
            (6, json!("ALL")),
            (2, json!("SELF")),
            (1, json!("SELECTOR")),
        ]),
        rarely([json!({"matchLabels": {"gw": "x"}})]),
        rarely([json!("edge")]),
        rarely([json!(1)]),
    )
        .prop_map(
            |(meta, id, port, protocol, security, from, selector, stats, depth)| {
                let binding = object([
                    ("namespace", Some(json!({ "from": from }))),
                    ("selector", selector),
                ]);
                let spec = object([
                    ("ambassador_id", id),
                    ("port", Some(port)),
                    ("protocol", Some(protocol)),
                    ("securityModel", Some(security)),
                    ("hostBinding", Some(binding)),
                    ("statsPrefix", stats),
                    ("l7Depth", depth),
                ]);
                ambassador("Listener", meta, spec)
            },
        )
}

fn tls_context() -> impl Strategy<Value = Value> {
    (
        metadata(&["ctx-a", "ctx-b"], Just(None)),
        ambassador_id(),
        rarely([json!(["a.example.com"]), json!(["*.example.com"])]),
        maybe([json!("cert-a"), json!("cert-b"), json!("missing")]),
        maybe([json!("v1.2")]),
        maybe([json!("h2,http/1.1")]),
        // Origination (a Mapping's `tls: ctx-a`): the CA it verifies the upstream with.
        rarely([json!("cert-a"), json!("missing")]),
        rarely([json!("api.internal")]),
    )
        .prop_map(|(meta, id, hosts, secret, min, alpn, ca, sni)| {
            let spec = object([
                ("ambassador_id", id),
                ("hosts", hosts),
                ("secret", secret),
                ("min_tls_version", min),
                ("alpn_protocols", alpn),
                ("ca_secret", ca),
                ("sni", sni),
            ]);
            ambassador("TLSContext", meta, spec)
        })
}

/// Two certificates with their keys, and (rarely) a certificate with the other's key, which
/// the loader refuses: the Secret is then missing.
fn key_pairs() -> Choices {
    let pairs: Vec<(String, String)> = ["a.example.com", "b.example.com"]
        .into_iter()
        .map(|name| {
            let c = rcgen::generate_simple_self_signed(vec![name.to_owned()])
                .expect("a self-signed test certificate");
            (c.cert.pem(), c.signing_key.serialize_pem())
        })
        .collect();
    let data = |crt: &str, key: &str| json!({"tls.crt": crt, "tls.key": key});
    vec![
        (4, data(&pairs[0].0, &pairs[0].1)),
        (4, data(&pairs[1].0, &pairs[1].1)),
        (1, data(&pairs[0].0, &pairs[1].1)),
    ]
}

fn secret(key_pairs: Choices) -> impl Strategy<Value = Value> {
    (
        metadata(&["cert-a", "cert-b"], Just(None)),
        one_of(key_pairs),
    )
        .prop_map(|(meta, data)| {
            let body = json!({"type": "kubernetes.io/tls", "stringData": data});
            resource("v1", "Secret", meta, body)
        })
}

fn service() -> impl Strategy<Value = Value> {
    (
        metadata(&["svc-a", "svc-b"], Just(None)),
        one_of(vec![
            (
                4,
                json!({"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}),
            ),
            (1, json!({"ports": [{"port": 8080, "targetPort": 8080}]})),
            (
                2,
                json!({"ports": [{"name": "http", "port": 80}, {"name": "grpc", "port": 9000}]}),
            ),
            (
                1,
                json!({"type": "ExternalName", "externalName": "ext.example.com",
                       "ports": [{"name": "http", "port": 80}]}),
            ),
        ]),
    )
        .prop_map(|(meta, spec)| resource("v1", "Service", meta, json!({ "spec": spec })))
}

fn endpoint_slice() -> impl Strategy<Value = Value> {
    (
        metadata(
            &["slice-1", "slice-2"],
            pick(["svc-a", "svc-b"]).prop_map(|s| Some(json!({ "kubernetes.io/service-name": s }))),
        ),
        one_of(vec![
            (4, json!([{"name": "http", "port": 8080}])),
            (1, json!([{"port": 8080}])),
            (1, json!([{"name": "grpc", "port": 9001}])),
        ]),
        one_of(vec![
            (1, json!([])),
            (3, json!([{"addresses": ["10.1.0.1"]}])),
            (
                2,
                json!([{"addresses": ["10.1.0.1"], "conditions": {"ready": true}},
                       {"addresses": ["10.1.0.2"], "conditions": {"ready": false}}]),
            ),
            (2, json!([{"addresses": ["10.1.0.2"]}])),
        ]),
    )
        .prop_map(|(meta, ports, endpoints)| {
            let body = json!({"addressType": "IPv4", "ports": ports, "endpoints": endpoints});
            resource("discovery.k8s.io/v1", "EndpointSlice", meta, body)
        })
}

fn endpoints() -> impl Strategy<Value = Value> {
    (
        metadata(&["svc-a", "svc-b"], Just(None)),
        one_of(vec![
            (1, json!([])),
            (
                2,
                json!([{"addresses": [{"ip": "10.2.0.1"}], "ports": [{"port": 3000}]}]),
            ),
            (
                2,
                json!([{"addresses": [{"ip": "10.2.0.2"}], "ports": [{"name": "http", "port": 3000}]}]),
            ),
        ]),
    )
        .prop_map(|(meta, subsets)| {
            resource("v1", "Endpoints", meta, json!({ "subsets": subsets }))
        })
}

/// resources whose encodings differ, else their versions.
fn difference(incremental: &Configuration, fresh: &Configuration) -> String {
    if incremental.ir != fresh.ir {
        return line_difference(
            &format!("{:#?}", incremental.ir),
            &format!("{:#?}", fresh.ir),
        );
    }
    let mut out = String::new();
    for t in type_url::ALL {
        let a: BTreeMap<_, _> = incremental.resources.of_type(t).collect();
        let b: BTreeMap<_, _> = fresh.resources.of_type(t).collect();
        let names: BTreeSet<&&String> = a.keys().chain(b.keys()).collect();
        for name in names {
            if a.get(name) != b.get(name) {
                out.push_str(&format!(
                    "{t} {name}: incremental {:?}, from scratch {:?}\n",
                    a.get(name).map(|r| r.value.len()),
                    b.get(name).map(|r| r.value.len())
                ));
            }
        }
    }
    if out.is_empty() {
        out.push_str("same resources, different versions\n");
    }
    out
}

/// The lines that differ, with a little context: `-` incremental, `+` from scratch.
fn line_difference(incremental: &str, fresh: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (incremental.lines().collect(), fresh.lines().collect());
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let from = head.saturating_sub(6);
    let mut out = String::new();
    for line in &a[from..head] {
        out.push_str(&format!("  {line}\n"));
    }
    for line in &a[head..a.len() - tail] {
        out.push_str(&format!("- {line}\n"));
    }
    for line in &b[head..b.len() - tail] {
        out.push_str(&format!("+ {line}\n"));
    }
    out
}
