//! Verdicts as a user reads them: resources in, what `kubectl describe` will say out.

use std::sync::Arc;

use legate_crds::loader::load_str;

use super::{Programmed, Verdict, verdicts};
use crate::{
    ir::{self, Settings},
    source::{Rejection, SourceSnapshot},
};

const LISTENER: &str = "
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http, namespace: team-a}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
";

fn judge(yaml: &str, programmed: Programmed) -> std::collections::BTreeMap<String, Verdict> {
    let loaded = load_str("test.yaml", yaml).unwrap();
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let snapshot = SourceSnapshot {
        resources: loaded.resources.into_iter().map(Arc::new).collect(),
        ..SourceSnapshot::default()
    };
    let ir = ir::Builder::new(Settings::default()).build(&snapshot.resources);
    verdicts(&snapshot, &ir, "default", &programmed)
        .into_iter()
        .map(|(o, v)| (o.to_string(), v))
        .collect()
}

fn mapping(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
         metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}\n"
    )
}

#[test]
fn a_served_mapping_is_accepted_and_programmed_once_envoy_acknowledges() {
    let yaml = [
        LISTENER,
        &mapping(
            "team-a",
            "quote",
            "  prefix: /quote/\n  service: quote\n  hostname: '*'",
        ),
    ]
    .concat();
    let v = &judge(&yaml, Programmed::Acked)["Mapping team-a/quote"];
    assert_eq!(
        (v.accepted.status, v.accepted.reason.as_str()),
        ("True", "Accepted")
    );
    assert_eq!(
        (v.programmed.status, v.programmed.reason.as_str()),
        ("True", "Programmed")
    );

    let pending = &judge(&yaml, Programmed::Pending)["Mapping team-a/quote"];
    assert_eq!(pending.programmed.status, "Unknown");
    let refused = &judge(&yaml, Programmed::Refused("bad regex".into()))["Mapping team-a/quote"];
    assert_eq!(
        (
            refused.programmed.status,
            refused.programmed.reason.as_str()
        ),
        ("False", "Refused")
    );
    assert!(refused.programmed.message.contains("bad regex"));
}

#[test]
fn another_teams_same_prefix_mapping_is_refused_with_conflict_naming_the_winner() {
    let yaml = [
        LISTENER,
        &mapping(
            "team-a",
            "quote",
            "  prefix: /quote/\n  service: quote\n  hostname: '*'",
        ),
        &mapping(
            "team-b",
            "steal",
            "  prefix: /quote/\n  service: steal\n  weight: 50\n  hostname: '*'",
        ),
    ]
    .concat();
    let verdicts = judge(&yaml, Programmed::Acked);
    let thief = &verdicts["Mapping team-b/steal"];
    assert_eq!(
        (thief.accepted.status, thief.accepted.reason.as_str()),
        ("False", "Conflict")
    );
    assert!(
        thief.accepted.message.contains("Mapping team-a/quote"),
        "{}",
        thief.accepted.message
    );
    assert_eq!(thief.programmed.status, "False");
    assert!(verdicts["Mapping team-a/quote"].accepted.is_true());
}

#[test]
fn a_mapping_no_host_admits_is_accepted_but_not_programmed_with_no_matching_host() {
    let yaml = [
        LISTENER,
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\n\
         metadata: {name: shop, namespace: team-a}\nspec: {hostname: shop.example.com}\n",
        &mapping(
            "team-a",
            "lost",
            "  prefix: /x/\n  service: x\n  hostname: api.example.com",
        ),
    ]
    .concat();
    let v = &judge(&yaml, Programmed::Acked)["Mapping team-a/lost"];
    assert!(v.accepted.is_true());
    assert_eq!(
        (v.programmed.status, v.programmed.reason.as_str()),
        ("False", "NoMatchingHost")
    );
    assert!(v.programmed.message.contains("api.example.com"));
}

#[test]
fn without_a_listener_every_mapping_says_no_listener() {
    let yaml = mapping(
        "team-a",
        "quote",
        "  prefix: /quote/\n  service: quote\n  hostname: '*'",
    );
    let v = &judge(&yaml, Programmed::Acked)["Mapping team-a/quote"];
    assert_eq!(v.programmed.reason, "NoListener");
}

#[test]
fn an_auth_service_is_programmed_and_a_second_default_one_says_which_won() {
    let auth = |ns: &str| {
        format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: AuthService\n\
             metadata: {{name: auth, namespace: {ns}}}\nspec: {{auth_service: auth:3000}}\n"
        )
    };
    // The one in the gateway's namespace (`default`) wins.
    let yaml = [auth("team-a"), auth("default")].concat();
    let verdicts = judge(&yaml, Programmed::Acked);
    let won = &verdicts["AuthService default/auth"];
    assert!(
        won.accepted.is_true() && won.programmed.is_true(),
        "{won:?}"
    );
    let lost = &verdicts["AuthService team-a/auth"];
    assert_eq!(
        (lost.accepted.status, lost.accepted.reason.as_str()),
        ("False", "Conflict")
    );
    assert!(
        lost.accepted
            .message
            .contains("AuthService default/auth is the gateway's default"),
        "{}",
        lost.accepted.message
    );
}

#[test]
fn resources_for_another_ambassador_id_get_no_verdict_from_this_gateway() {
    let yaml = [
        LISTENER,
        &mapping(
            "team-a",
            "other",
            "  prefix: /o/\n  service: o\n  ambassador_id: [internal]",
        ),
    ]
    .concat();
    let verdicts = judge(&yaml, Programmed::Acked);
    assert!(!verdicts.contains_key("Mapping team-a/other"));
    assert!(verdicts.contains_key("Listener team-a/http"));
}

#[test]
fn an_object_the_loader_refused_is_not_accepted_with_its_field() {
    let snapshot = SourceSnapshot {
        rejected: vec![Rejection {
            scope: crate::source::RejectionScope::Document,
            origin: "Kubernetes".into(),
            index: None,
            object: Some(legate_crds::ObjectRef {
                kind: "Mapping".into(),
                namespace: Some("team-a".into()),
                name: "bad".into(),
            }),
            message: "spec.weight: must be at most 100, got 150".into(),
        }],
        ..SourceSnapshot::default()
    };
    let ir = ir::Ir::default();
    let verdicts = verdicts(&snapshot, &ir, "default", &Programmed::Acked);
    let v = verdicts.values().next().unwrap();
    assert_eq!(
        (v.accepted.status, v.accepted.reason.as_str()),
        ("False", "Invalid")
    );
    assert!(v.accepted.message.contains("spec.weight"));
}
