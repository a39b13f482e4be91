//! The status a gateway applies, given what the object's status says now.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use serde_json::{Value, json};

use super::desired;
use crate::status::verdict::{Judgement, Verdict};

fn at(seconds: i64) -> Time {
    Time(Timestamp::from_second(seconds).unwrap())
}

fn verdict(accepted: (&'static str, &str), programmed: (&'static str, &str)) -> Verdict {
    let j = |(status, reason): (&'static str, &str)| Judgement {
        status,
        reason: reason.to_owned(),
        message: format!("{reason} message"),
    };
    Verdict {
        accepted: j(accepted),
        programmed: j(programmed),
    }
}

fn ok() -> Verdict {
    verdict(("True", "Accepted"), ("True", "Programmed"))
}

/// What a first write produces, as the API server would then hold it.
fn written(installation: &str, v: &Verdict, time: i64) -> Value {
    desired("Mapping", installation, Some(v), None, Some(1), &at(time)).unwrap()
}

#[test]
fn a_new_verdict_writes_the_gateways_entry_the_summary_and_emissarys_state() {
    let status = written("gw/edge", &ok(), 100);
    assert_eq!(status["gateways"][0]["installation"], "gw/edge");
    assert_eq!(status["gateways"][0]["conditions"][0]["type"], "Accepted");
    assert_eq!(status["conditions"][1]["type"], "Programmed");
    assert_eq!(status["conditions"][1]["status"], "True");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["state"], "Running");
    assert!(status.get("reason").is_none());
}

#[test]
fn the_same_verdict_later_writes_nothing() {
    let live = written("gw/edge", &ok(), 100);
    assert_eq!(
        desired(
            "Mapping",
            "gw/edge",
            Some(&ok()),
            Some(&live),
            Some(1),
            &at(999)
        ),
        None,
        "a resync, a restart or a second replica finds nothing to write"
    );
}

#[test]
fn a_changed_verdict_moves_only_the_condition_that_changed_in_time() {
    let live = written("gw/edge", &ok(), 100);
    let refused = verdict(("False", "Conflict"), ("False", "Conflict"));
    let status = desired(
        "Mapping",
        "gw/edge",
        Some(&refused),
        Some(&live),
        Some(1),
        &at(200),
    )
    .unwrap();
    assert_eq!(status["conditions"][0]["status"], "False");
    assert_eq!(status["conditions"][0]["reason"], "Conflict");
    assert_eq!(
        status["conditions"][0]["lastTransitionTime"],
        json!(at(200))
    );
    assert_eq!(status["state"], "Inactive");
    assert_eq!(status["reason"], "Conflict message");

    // Only the message changes: the status holds, and so does its time.
    let live = written("gw/edge", &ok(), 100);
    let mut reworded = ok();
    reworded.programmed.message = "other words".into();
    let status = desired(
        "Mapping",
        "gw/edge",
        Some(&reworded),
        Some(&live),
        Some(1),
        &at(300),
    )
    .unwrap();
    assert_eq!(
        status["conditions"][1]["lastTransitionTime"],
        json!(at(100))
    );
}

#[test]
fn a_new_generation_is_written_even_with_the_same_verdict() {
    let live = written("gw/edge", &ok(), 100);
    let status = desired(
        "Mapping",
        "gw/edge",
        Some(&ok()),
        Some(&live),
        Some(2),
        &at(200),
    )
    .unwrap();
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(
        status["gateways"][0]["conditions"][0]["observedGeneration"],
        2
    );
}

#[test]
fn two_gateways_keep_their_own_entries_and_agree_on_the_summary() {
    // gw/internal refuses (wrong port, say) and wrote first; gw/edge accepts.
    let refused = verdict(("False", "Invalid"), ("False", "Invalid"));
    let internal = written("gw/internal", &refused, 100);
    let edge = desired(
        "Mapping",
        "gw/edge",
        Some(&ok()),
        Some(&internal),
        Some(1),
        &at(200),
    )
    .unwrap();
    assert_eq!(
        edge["gateways"].as_array().unwrap().len(),
        1,
        "a gateway applies only its own entry; the API server merges by installation"
    );
    assert_eq!(
        edge["conditions"][0]["status"], "True",
        "some gateway accepts it"
    );

    // The object as the server holds it after both writes: internal's view of it then agrees.
    let mut merged = edge.clone();
    merged["gateways"] = json!([internal["gateways"][0], edge["gateways"][0]]);
    assert_eq!(
        desired(
            "Mapping",
            "gw/internal",
            Some(&refused),
            Some(&merged),
            Some(1),
            &at(300)
        ),
        None,
        "the other gateway computes the same summary and writes nothing"
    );
    assert_eq!(
        desired(
            "Mapping",
            "gw/edge",
            Some(&ok()),
            Some(&merged),
            Some(1),
            &at(300)
        ),
        None
    );
}

#[test]
fn a_resource_no_longer_this_gateways_concern_loses_its_entry() {
    let live = written("gw/edge", &ok(), 100);
    let status = desired("Mapping", "gw/edge", None, Some(&live), Some(1), &at(200)).unwrap();
    assert!(status.get("gateways").is_none());
    assert!(status.get("conditions").is_none());
    assert_eq!(
        desired("Mapping", "gw/edge", None, None, Some(1), &at(200)),
        None,
        "nothing to remove"
    );
}

#[test]
fn other_kinds_have_no_emissary_state() {
    let status = desired("Host", "gw/edge", Some(&ok()), None, Some(1), &at(1)).unwrap();
    assert!(status.get("state").is_none());
}

#[test]
fn waiting_for_envoy_keeps_a_resource_programmed_at_its_generation() {
    let live = written("gw/edge", &ok(), 100);
    let pending = verdict(("True", "Accepted"), ("Unknown", "Pending"));
    assert_eq!(
        desired(
            "Mapping",
            "gw/edge",
            Some(&pending),
            Some(&live),
            Some(1),
            &at(200)
        ),
        None,
        "a restarted agent whose Envoy has not reconnected yet writes nothing"
    );
    let status = desired(
        "Mapping",
        "gw/edge",
        Some(&pending),
        Some(&live),
        Some(2),
        &at(200),
    )
    .unwrap();
    assert_eq!(
        status["gateways"][0]["conditions"][1]["status"], "Unknown",
        "a new generation is not programmed until Envoy says so"
    );
}

#[test]
fn a_huge_message_is_clipped_so_the_status_stays_writable() {
    let mut v = verdict(("False", "Invalid"), ("False", "Refused"));
    v.accepted.message = format!("spec.regex_rewrite.pattern: {}", "x".repeat(2 << 20));
    let status = written("gw/edge", &v, 100);
    let message = status["gateways"][0]["conditions"][0]["message"]
        .as_str()
        .unwrap();
    assert!(message.len() <= 32 * 1024, "{}", message.len());
    assert!(message.starts_with("spec.regex_rewrite.pattern: xxx") && message.ends_with('…'));
    assert_eq!(status["conditions"][0]["message"], message);
    assert_eq!(status["reason"], message);
}
