//! The installation's status, computed from its children: pure, so every condition is a unit
//! test. A condition keeps its `lastTransitionTime` while its status stays the same, so the
//! computed status equals the current one when nothing changed, and the reconciler writes nothing.
//!
//! The status has two writers. The operator owns the conditions `Ready`, `Progressing` and
//! `Degraded`, `observedGeneration`, `replicas` and `readyReplicas`; the agents own
//! `configVersion` and `routes` (server-side applied under `legate-agent/<namespace>/<name>`).
//! [`compute`] returns the operator's part only, and the operator applies just that, so neither
//! writer ever clears or claims the other's fields.

use k8s_openapi::{
    api::apps::v1::Deployment,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
};
use legate_crds::{gateway_installation::GatewayInstallationStatus, status::condition};

/// A spec the operator cannot fully honour, for the `Degraded` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase, stable: the condition's and the Warning Event's reason.
    pub reason: &'static str,
    /// For a person: names the field and says what to do.
    pub message: String,
}

/// Reasons of [`Problem`]s.
pub mod reason {
    /// `spec` cannot be built into objects (a bad image, clashing ports, ...).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The API server lacks an API version the spec needs (policy/v1, autoscaling/v2).
    pub const UNSUPPORTED_BY_SERVER: &str = "UnsupportedByServer";
}

/// What the reconciler saw.
#[derive(Clone, Debug, Default)]
pub struct Observed<'a> {
    /// `metadata.generation` of the installation.
    pub generation: Option<i64>,
    /// The gateway's Deployment as the API server returned it, if it exists.
    pub deployment: Option<&'a Deployment>,
    pub problems: &'a [Problem],
}

/// The condition types the operator writes.
pub const OPERATOR_CONDITIONS: [&str; 3] = [
    condition::READY,
    condition::PROGRESSING,
    condition::DEGRADED,
];

/// The operator's part of `status`: without what the agents write (`configVersion`, `routes`)
/// and without conditions of other types.
pub fn operators_part(status: &GatewayInstallationStatus) -> GatewayInstallationStatus {
    GatewayInstallationStatus {
        conditions: status
            .conditions
            .iter()
            .filter(|c| OPERATOR_CONDITIONS.contains(&c.type_.as_str()))
            .cloned()
            .collect(),
        config_version: None,
        routes: None,
        ..status.clone()
    }
}

/// The operator's part of the status `observed` calls for, keeping unchanged conditions'
/// transition times from `current`.
pub fn compute(
    current: Option<&GatewayInstallationStatus>,
    observed: &Observed,
    now: &Time,
) -> GatewayInstallationStatus {
    let current = current.cloned().unwrap_or_default();
    let replicas = observed.deployment.map(replicas);
    let (ready, progressing) = match &replicas {
        Some(r) => (ready(r), progressing(r)),
        None => (
            not_deployed(condition::READY),
            not_deployed(condition::PROGRESSING),
        ),
    };
    let mut conditions = vec![ready, progressing, degraded(observed.problems)];
    for c in &mut conditions {
        c.observed_generation = observed.generation;
        c.last_transition_time = current
            .conditions
            .iter()
            .find(|old| old.type_ == c.type_ && old.status == c.status)
            .map_or_else(|| now.clone(), |old| old.last_transition_time.clone());
    }
    GatewayInstallationStatus {
        conditions,
        observed_generation: observed.generation,
        replicas: replicas.as_ref().map(|r| r.desired),
        ready_replicas: replicas.as_ref().map(|r| r.ready),
        config_version: None,
        routes: None,
    }
}

/// Replica counts of the Deployment, and whether its latest spec is rolled out.
struct Replicas {
    desired: i32,
    ready: i32,
    updated: i32,
    rolled_out: bool,
}

fn replicas(deployment: &Deployment) -> Replicas {
    let status = deployment.status.clone().unwrap_or_default();
    // With an HPA the Deployment leaves `replicas` unset: the server defaults it to 1, and the
    // HPA's choice shows in the spec as soon as it scales.
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let seen = status.observed_generation >= deployment.metadata.generation;
    Replicas {
        desired,
        ready: status.ready_replicas.unwrap_or(0),
        updated,
        // Old pods gone too: `replicas` counts every pod of the Deployment.
        rolled_out: seen && updated >= desired && status.replicas.unwrap_or(0) <= desired,
    }
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: None,
        last_transition_time: Time(Default::default()),
    }
}

fn not_deployed(type_: &str) -> Condition {
    let message = "the gateway's Deployment does not exist yet".to_owned();
    condition(type_, false, "NotDeployed", message)
}

fn ready(r: &Replicas) -> Condition {
    let counts = format!("{}/{} replicas ready", r.ready, r.desired);
    if r.desired == 0 {
        condition(condition::READY, false, "ScaledToZero", counts)
    } else if r.ready >= r.desired && r.rolled_out {
        condition(condition::READY, true, "AllReplicasReady", counts)
    } else {
        condition(condition::READY, false, "ReplicasNotReady", counts)
    }
}

fn progressing(r: &Replicas) -> Condition {
    if !r.rolled_out {
        let message = format!("rolling out: {}/{} replicas updated", r.updated, r.desired);
        condition(condition::PROGRESSING, true, "RollingOut", message)
    } else if r.ready < r.desired {
        let message = format!("{}/{} replicas ready", r.ready, r.desired);
        condition(condition::PROGRESSING, true, "WaitingForReplicas", message)
    } else {
        let message = format!("{} replicas up to date", r.desired);
        condition(condition::PROGRESSING, false, "RolloutComplete", message)
    }
}

fn degraded(problems: &[Problem]) -> Condition {
    match problems {
        [] => condition(
            condition::DEGRADED,
            false,
            "AsExpected",
            "the spec is honoured".to_owned(),
        ),
        [first, ..] => {
            let message = problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            condition(condition::DEGRADED, true, first.reason, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    use super::*;

    fn deployment(status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "edge", "generation": 1},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn find<'a>(status: &'a GatewayInstallationStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_flips() {
        let rolling = deployment(
            json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1}),
        );
        let observed = Observed {
            generation: Some(1),
            deployment: Some(&rolling),
            problems: &[],
        };
        let first = compute(None, &observed, &at(100));
        assert_eq!(find(&first, "Ready").last_transition_time, at(100));

        // Same inputs later: the very same status, so nothing to write.
        assert_eq!(compute(Some(&first), &observed, &at(200)), first);

        let ready = deployment(
            json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}),
        );
        let observed = Observed {
            deployment: Some(&ready),
            ..observed
        };
        let second = compute(Some(&first), &observed, &at(300));
        assert_eq!(find(&second, "Ready").status, "True");
        assert_eq!(find(&second, "Ready").last_transition_time, at(300));
        assert_eq!(find(&second, "Degraded").last_transition_time, at(100));
    }

    #[test]
    fn what_the_agents_report_is_neither_cleared_nor_claimed() {
        let current = GatewayInstallationStatus {
            config_version: Some("v1-abc".to_owned()),
            routes: Some(legate_crds::gateway_installation::RouteCounts {
                accepted: 3,
                rejected: 1,
            }),
            ..GatewayInstallationStatus::default()
        };
        let status = compute(Some(&current), &Observed::default(), &at(1));
        // Not in what the operator applies at all: the agents' field manager keeps them.
        assert_eq!((&status.config_version, &status.routes), (&None, &None));
        assert_eq!(find(&status, "Ready").reason, "NotDeployed");
        // The same status with the agents' fields is, for the operator, the same status.
        let written = GatewayInstallationStatus {
            config_version: Some("v2-def".to_owned()),
            ..compute(None, &Observed::default(), &at(1))
        };
        assert_eq!(
            operators_part(&written),
            compute(Some(&written), &Observed::default(), &at(2))
        );
    }

    #[test]
    fn problems_make_one_degraded_condition_with_every_message() {
        let problems = [
            Problem {
                reason: reason::UNSUPPORTED_BY_SERVER,
                message: "a".to_owned(),
            },
            Problem {
                reason: reason::INVALID_SPEC,
                message: "b".to_owned(),
            },
        ];
        let observed = Observed {
            problems: &problems,
            ..Observed::default()
        };
        let status = compute(None, &observed, &at(1));
        let degraded = find(&status, "Degraded");
        assert_eq!(
            (
                degraded.status.as_str(),
                degraded.reason.as_str(),
                degraded.message.as_str()
            ),
            ("True", "UnsupportedByServer", "a; b")
        );
    }

    #[test]
    fn scaled_to_zero_is_not_ready_and_says_so() {
        let zero: Deployment = serde_json::from_value(json!({
            "metadata": {"generation": 1},
            "spec": {"replicas": 0, "selector": {}, "template": {}},
            "status": {"observedGeneration": 1},
        }))
        .unwrap();
        let observed = Observed {
            deployment: Some(&zero),
            ..Observed::default()
        };
        let status = compute(None, &observed, &at(1));
        assert_eq!(find(&status, "Ready").reason, "ScaledToZero");
        assert_eq!(find(&status, "Progressing").status, "False");
    }
}
