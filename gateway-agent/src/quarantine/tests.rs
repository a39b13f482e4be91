//! The search against a simulated Envoy that refuses any configuration holding a bad resource.

use super::*;

fn load(yaml: &str) -> Vec<Arc<Resource>> {
    let loaded = legate_crds::loader::load_str("test.yaml", yaml).expect("YAML");
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    loaded.resources.into_iter().map(Arc::new).collect()
}

/// A Listener, a Host and Mappings `m0`…; those named in `bad` have the prefix `/bad/`.
fn gateway(mappings: usize, bad: &[usize]) -> Vec<Arc<Resource>> {
    let mut yaml = String::from(
        "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: http, namespace: default}\n\
         spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}\n\
         ---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: any, namespace: default}\n\
         spec: {hostname: \"*\"}\n",
    );
    for i in 0..mappings {
        let prefix = if bad.contains(&i) { "/bad/" } else { "/good/" };
        yaml.push_str(&format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: m{i}, namespace: default}}\n\
             spec: {{hostname: \"*\", prefix: {prefix}, service: up}}\n"
        ));
    }
    load(&yaml)
}

/// Envoy: refuses a configuration with a bad Mapping, naming the first.
fn envoy(inputs: &[Arc<Resource>]) -> Result<(), String> {
    for r in inputs {
        if let Resource::Mapping(m) = &**r
            && m.spec.prefix == "/bad/"
        {
            return Err(format!("route {}: invalid", r.object_ref()));
        }
    }
    Ok(())
}

/// A configuration version: its inputs' content.
fn version(inputs: &[Arc<Resource>]) -> String {
    let mut all: Vec<String> = inputs.iter().map(|r| r.to_json().to_string()).collect();
    all.sort();
    all.join("\n")
}

/// What happened from one set of inputs on.
#[derive(Debug, Default)]
struct Run {
    /// Every configuration published, in order, and whether it was a trial.
    published: Vec<(Vec<Arc<Resource>>, bool)>,
}

impl Run {
    fn last(&self) -> &[Arc<Resource>] {
        &self.published.last().expect("something published").0
    }

    fn trials(&self) -> usize {
        self.published.iter().filter(|(_, trial)| *trial).count()
    }
}

/// Publishes `resources` as the source's and answers as `envoy` does until nothing is left to
/// publish; `acked` is what Envoy acknowledged before.
fn run(
    q: &mut Quarantine,
    resources: &[Arc<Resource>],
    envoy: impl Fn(&[Arc<Resource>]) -> Result<(), String>,
    acked: &mut Option<String>,
) -> Run {
    let mut out = Run::default();
    let mut build = Build {
        inputs: q.admit(resources),
        trial: false,
    };
    loop {
        let v = version(&build.inputs);
        let answer = envoy(&build.inputs);
        out.published.push((build.inputs, build.trial));
        let mut step = q.published(v.clone(), acked.as_deref());
        if step == Step::Wait {
            step = match answer {
                Ok(()) => {
                    *acked = Some(v.clone());
                    q.acked(&v)
                }
                Err(message) => q.refused(&v, &message),
            };
        }
        match step {
            Step::Wait => return out,
            Step::Build(next) => build = next,
        }
        assert!(out.published.len() < 1000, "the search ends");
    }
}

fn names(inputs: &[Arc<Resource>]) -> Vec<String> {
    inputs.iter().map(|r| r.object_ref().name).collect()
}

fn quarantined(q: &Quarantine) -> Vec<String> {
    q.rejections().into_iter().map(|r| r.object.name).collect()
}

#[test]
fn one_bad_mapping_among_many_on_a_fresh_start_is_found_and_the_rest_served() {
    let mut q = Quarantine::default();
    let resources = gateway(1000, &[637]);
    let run = run(&mut q, &resources, envoy, &mut None);

    assert_eq!(quarantined(&q), ["m637"]);
    let rejection = &q.rejections()[0];
    assert_eq!(rejection.reason, Reason::RefusedByEnvoy);
    assert_eq!(
        rejection.message,
        "Envoy refused the configuration this resource produces: route Mapping default/m637: invalid"
    );
    let served = names(run.last());
    assert_eq!(served.len(), 1001, "all but the bad Mapping");
    assert!(!served.contains(&"m637".to_owned()));
    assert!(envoy(run.last()).is_ok());
    // About log2(1002) trials, and the final check.
    assert!(run.trials() <= 12, "{} trials", run.trials());
    assert!(
        run.published.iter().all(|(inputs, _)| !inputs.is_empty()),
        "no trial takes everything away"
    );
    assert!(!q.searching());
}

#[test]
fn several_bad_mappings_are_each_found_and_nothing_else() {
    let mut q = Quarantine::default();
    let resources = gateway(200, &[0, 57, 58, 199]);
    let run = run(&mut q, &resources, envoy, &mut None);

    assert_eq!(quarantined(&q), ["m0", "m199", "m57", "m58"]);
    assert_eq!(names(run.last()).len(), 198);
    assert!(run.trials() <= 4 * 9 + 2, "{} trials", run.trials());
}

#[test]
fn after_an_ack_only_the_changes_are_suspects_and_trials_keep_what_envoy_had() {
    let mut q = Quarantine::default();
    let mut acked = None;
    let before = gateway(100, &[]);
    let run1 = run(&mut q, &before, envoy, &mut acked);
    assert_eq!(run1.published.len(), 1, "accepted at once: no search");

    // m5 goes bad, m100..m103 are new and good; the other resources are the same objects.
    let mut after = gateway(104, &[5]);
    for (i, r) in before.iter().enumerate() {
        if i != 2 + 5 {
            after[i] = r.clone();
        }
    }
    let run2 = run(&mut q, &after, envoy, &mut acked);
    assert_eq!(quarantined(&q), ["m5"]);
    assert!(
        run2.trials() <= 4,
        "{} trials among 5 changes",
        run2.trials()
    );
    for (inputs, _) in run2.published.iter().filter(|(_, trial)| *trial) {
        // Every resource Envoy had is in every trial (m5 bad, or as Envoy had it).
        assert!(
            before
                .iter()
                .all(|r| { inputs.iter().any(|i| i.object_ref() == r.object_ref()) })
        );
    }
    assert_eq!(names(run2.last()).len(), 105, "all but m5");
    assert!(!names(run2.last()).contains(&"m5".to_owned()));
}

#[test]
fn the_quarantine_holds_while_the_resource_is_the_same_and_lifts_when_it_changes() {
    let mut q = Quarantine::default();
    let mut acked = None;
    run(&mut q, &gateway(20, &[3]), envoy, &mut acked);
    assert_eq!(quarantined(&q), ["m3"]);

    // The same content again (new objects, as a reload makes them): still refused, no search.
    let again = run(&mut q, &gateway(20, &[3]), envoy, &mut acked);
    assert_eq!(quarantined(&q), ["m3"]);
    assert_eq!(again.published.len(), 1);

    // Fixed: tried again, and served.
    let fixed = run(&mut q, &gateway(20, &[]), envoy, &mut acked);
    assert!(q.is_empty());
    assert_eq!(fixed.published.len(), 1);
    assert!(names(fixed.last()).contains(&"m3".to_owned()));
}

#[test]
fn an_envoy_that_refuses_everything_gets_nothing_quarantined() {
    let mut q = Quarantine::default();
    let run = run(&mut q, &gateway(50, &[]), |_| Err("no".into()), &mut None);
    assert!(q.is_empty(), "{:?}", quarantined(&q));
    // Two culprits' worth of trials (log2(52) each), then the configuration without changes.
    assert!(run.trials() <= 2 * 6 + 1, "{} trials", run.trials());
}

#[test]
fn a_refused_message_is_cut_at_a_character_boundary() {
    let long = "é".repeat(MAX_MESSAGE + 10);
    let message = refusal_message(&long);
    assert!(message.ends_with('…'));
    assert_eq!(message.chars().filter(|c| *c == 'é').count(), MAX_MESSAGE);
}

#[test]
fn a_listener_envoy_refuses_is_found_without_an_empty_trial() {
    let mut q = Quarantine::default();
    let resources = gateway(30, &[]);
    let listener = resources[0].object_ref();
    let envoy = |inputs: &[Arc<Resource>]| match inputs.iter().any(|r| r.object_ref() == listener) {
        true => Err("cannot bind: Address already in use".to_owned()),
        false => Ok(()),
    };
    let run = run(&mut q, &resources, envoy, &mut None);
    assert_eq!(quarantined(&q), ["http"]);
    assert!(
        run.published.iter().all(|(inputs, _)| !inputs.is_empty()),
        "no trial takes everything away"
    );
}

#[test]
fn new_inputs_end_a_search_and_answers_to_older_configurations_are_ignored() {
    let mut q = Quarantine::default();
    let resources = gateway(10, &[4]);
    let inputs = q.admit(&resources);
    assert_eq!(q.published(version(&inputs), None), Step::Wait);
    let Step::Build(trial) = q.refused(&version(&inputs), "bad") else {
        panic!("a trial follows the refusal");
    };
    assert!(trial.trial && q.searching());
    assert_eq!(q.published(version(&trial.inputs), None), Step::Wait);

    // The source moves on before Envoy answers the trial: the search ends, and the trial's
    // answer no longer counts.
    let fixed = gateway(10, &[]);
    let inputs = q.admit(&fixed);
    assert!(!q.searching());
    assert_eq!(inputs.len(), fixed.len());
    assert_eq!(q.published(version(&inputs), None), Step::Wait);
    assert_eq!(q.refused(&version(&trial.inputs), "bad"), Step::Wait);
    assert_eq!(q.acked(&version(&inputs)), Step::Wait);
    assert!(q.is_empty() && !q.searching());
}

#[test]
fn an_auth_service_envoy_refuses_keeps_checking_its_routes_through_a_service_that_never_answers() {
    let auth = |path_prefix: &str| {
        load(&format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: AuthService\n\
             metadata: {{name: auth, namespace: default}}\n\
             spec: {{auth_service: auth:3000, path_prefix: {path_prefix}, failure_mode_allow: false, opt_in: false}}\n"
        ))
    };
    // Envoy refuses the AuthService whose path prefix is `/bad`.
    let refuses_bad_auth = |inputs: &[Arc<Resource>]| -> Result<(), String> {
        match inputs.iter().any(|r| {
            matches!(&**r, Resource::AuthService(a) if a.spec.path_prefix.as_deref() == Some("/bad"))
        }) {
            true => Err("ext_authz: invalid".to_owned()),
            false => Ok(()),
        }
    };
    let mut q = Quarantine::default();
    let mut acked = None;
    let inputs: Vec<Arc<Resource>> = gateway(4, &[]).into_iter().chain(auth("/bad")).collect();
    let served = run(&mut q, &inputs, refuses_bad_auth, &mut acked);
    assert_eq!(quarantined(&q), ["auth"]);
    // Served: not left out, but standing in, with what decides a failed check.
    let stand_in = served
        .last()
        .iter()
        .find_map(|r| match &**r {
            Resource::AuthService(a) => Some(a.spec.clone()),
            _ => None,
        })
        .expect("the AuthService stands in");
    assert_eq!(stand_in.auth_service, NOWHERE);
    assert_eq!(stand_in.path_prefix, None);
    assert_eq!(stand_in.failure_mode_allow, Some(false));
    let message = &q.rejections()[0].message;
    assert!(message.ends_with(STOOD_IN), "{message}");
}
