//! From a verdict and the live status to the status to apply, or to nothing when the live one
//! already says it. Pure.
//!
//! A gateway owns its own entry of `status.gateways` (keyed by installation) and shares the
//! summary beside it: `status.conditions` `Accepted` and `Programmed` (`True` when some
//! gateway's verdict is, else the first gateway's), `observedGeneration`, and a Mapping's
//! Emissary `state`/`reason`. The summary is a function of all entries, so every gateway that
//! reads the same entries computes the same summary: shared ownership under server-side apply,
//! and no two installations ever flip a field back and forth.
//!
//! A condition keeps its `lastTransitionTime` while its status stays the same, so comparing the
//! desired status with the live one ignores time: a resync, a restart or a second replica with
//! the same inputs finds nothing to write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use legate_crds::{
    printable::clipped,
    status::{GatewayVerdict, condition},
};
use serde_json::{Map, Value, json};

use super::verdict::{Judgement, Verdict, reasons};

/// The parts of a live status this gateway reads.
#[derive(Debug, Default)]
struct LiveStatus {
    gateways: Vec<GatewayVerdict>,
    conditions: Vec<Condition>,
    observed_generation: Option<i64>,
    state: Option<String>,
    reason: Option<String>,
}

impl LiveStatus {
    fn parse(status: Option<&Value>) -> Self {
        let Some(Value::Object(s)) = status else {
            return Self::default();
        };
        let list = |key: &str| s.get(key).cloned().unwrap_or(Value::Array(Vec::new()));
        Self {
            // Entries another writer left malformed are not ours to judge: read what parses.
            gateways: parse_each(list("gateways")),
            conditions: parse_each(list("conditions")),
            observed_generation: s.get("observedGeneration").and_then(Value::as_i64),
            state: s.get("state").and_then(Value::as_str).map(str::to_owned),
            reason: s.get("reason").and_then(Value::as_str).map(str::to_owned),
        }
    }
}

fn parse_each<T: serde::de::DeserializeOwned>(list: Value) -> Vec<T> {
    match list {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|i| serde_json::from_value(i).ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// The status to apply to one object (`kind`, its live `status` and `generation`) for the
/// gateway `installation`, whose verdict is `verdict` (`None`: the object is not its concern,
/// so its entry, if any, goes). `None` when the live status already says it all.
pub fn desired(
    kind: &str,
    installation: &str,
    verdict: Option<&Verdict>,
    live_status: Option<&Value>,
    generation: Option<i64>,
    now: &Time,
) -> Option<Value> {
    let live = LiveStatus::parse(live_status);
    let live_entry = live
        .gateways
        .iter()
        .find(|g| g.installation == installation);
    let entry = verdict.map(|v| {
        let live_conditions = live_entry.map(|e| &e.conditions[..]);
        // Waiting for Envoy's answer (a new configuration, or an agent restarted while Envoy
        // reconnects) says nothing new about a resource already programmed at this generation:
        // Envoy keeps what it has. Keep saying so rather than flapping to Unknown and back.
        let programmed = match live_conditions.and_then(|l| find(l, condition::PROGRAMMED)) {
            Some(live)
                if v.programmed.reason == reasons::PENDING
                    && live.status == "True"
                    && live.observed_generation == generation =>
            {
                live.clone()
            }
            _ => condition(
                condition::PROGRAMMED,
                &v.programmed,
                generation,
                live_conditions,
                now,
            ),
        };
        GatewayVerdict {
            installation: installation.to_owned(),
            conditions: vec![
                condition(
                    condition::ACCEPTED,
                    &v.accepted,
                    generation,
                    live_conditions,
                    now,
                ),
                programmed,
            ],
        }
    });
    if entry.is_none() && live_entry.is_none() {
        return None;
    }

    let mut entries: Vec<&GatewayVerdict> = live
        .gateways
        .iter()
        .filter(|g| g.installation != installation)
        .chain(entry.as_ref())
        .collect();
    entries.sort_by(|a, b| a.installation.cmp(&b.installation));
    let summary: Vec<Condition> = [condition::ACCEPTED, condition::PROGRAMMED]
        .into_iter()
        .filter_map(|type_| summarize(type_, &entries, &live.conditions, generation, now))
        .collect();
    let (state, reason) = emissary_state(kind, &summary);

    let unchanged = live_entry == entry.as_ref()
        && [condition::ACCEPTED, condition::PROGRAMMED]
            .into_iter()
            .all(|t| find(&live.conditions, t) == find(&summary, t))
        && (summary.is_empty() || live.observed_generation == generation)
        && live.state == state
        && live.reason == reason;
    if unchanged {
        return None;
    }

    let mut status = Map::new();
    if let Some(entry) = entry {
        status.insert("gateways".into(), json!([entry]));
    }
    if !summary.is_empty() {
        status.insert("conditions".into(), json!(summary));
        if let Some(g) = generation {
            status.insert("observedGeneration".into(), json!(g));
        }
    }
    if let Some(state) = state {
        status.insert("state".into(), json!(state));
    }
    if let Some(reason) = reason {
        status.insert("reason".into(), json!(reason));
    }
    Some(Value::Object(status))
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// A condition's message is at most this long, as `metav1.Condition` has it: one quoting a huge
/// value must not make the status too large to write.
const MAX_CONDITION_MESSAGE: usize = 32 * 1024;

/// A condition from a judgement, keeping the live one's transition time while its status holds.
fn condition(
    type_: &str,
    judgement: &Judgement,
    generation: Option<i64>,
    live: Option<&[Condition]>,
    now: &Time,
) -> Condition {
    let since = live
        .and_then(|l| find(l, type_))
        .filter(|c| c.status == judgement.status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: judgement.status.to_owned(),
        reason: judgement.reason.clone(),
        message: clipped(&judgement.message, MAX_CONDITION_MESSAGE).into_owned(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The summary of one condition type over every gateway's entry.
fn summarize(
    type_: &str,
    entries: &[&GatewayVerdict],
    live: &[Condition],
    generation: Option<i64>,
    now: &Time,
) -> Option<Condition> {
    let all: Vec<&Condition> = entries
        .iter()
        .filter_map(|e| find(&e.conditions, type_))
        .collect();
    let chosen = all
        .iter()
        .find(|c| c.status == "True")
        .or_else(|| all.first())?;
    let judgement = Judgement {
        status: match chosen.status.as_str() {
            "True" => "True",
            "False" => "False",
            _ => "Unknown",
        },
        reason: chosen.reason.clone(),
        message: chosen.message.clone(),
    };
    Some(condition(type_, &judgement, generation, Some(live), now))
}

/// Emissary's Mapping `state` (`Running` or `Inactive`) and `reason`, for tools written for it.
fn emissary_state(kind: &str, summary: &[Condition]) -> (Option<String>, Option<String>) {
    if kind != "Mapping" {
        return (None, None);
    }
    match find(summary, condition::ACCEPTED) {
        None => (None, None),
        Some(c) if c.status == "True" => (Some("Running".into()), None),
        Some(c) => (Some("Inactive".into()), Some(c.message.clone())),
    }
}

#[cfg(test)]
mod tests;
