//! One gateway's verdict on each route resource it sees: `Accepted` (valid, admitted, not in
//! conflict) and `Programmed` (its Envoy serves a configuration carrying it), each with a stable
//! reason and a message naming the field or the resource that won. Pure: the snapshot, the IR
//! and what Envoy said in, verdicts out.

use std::collections::BTreeMap;

use legate_crds::ObjectRef;

use crate::{
    ir::{self, Ir, Reason},
    source::{SourceSnapshot, kubernetes::kinds},
};

/// Condition reasons beside [`Reason`]'s.
pub mod reasons {
    pub const ACCEPTED: &str = "Accepted";
    pub const PROGRAMMED: &str = "Programmed";
    /// Envoy has not acknowledged the configuration carrying it yet.
    pub const PENDING: &str = "Pending";
    /// Envoy refused the configuration carrying it; the last good one keeps serving.
    pub const REFUSED: &str = "Refused";
}

/// `True`, `False` or `Unknown`, with a reason and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

impl Judgement {
    fn yes(reason: &str, message: impl Into<String>) -> Self {
        Self {
            status: "True",
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    fn no(reason: &str, message: impl Into<String>) -> Self {
        Self {
            status: "False",
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// One resource's verdict from one gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub accepted: Judgement,
    pub programmed: Judgement,
}

/// What Envoy made of the configuration built from the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Programmed {
    /// Acknowledged.
    Acked,
    /// Refused, with Envoy's message.
    Refused(String),
    /// Not answered yet.
    Pending,
}

/// Kinds the gateway does not translate at all yet: accepted, never programmed.
fn translated(kind: &str) -> bool {
    kind != "ConsulResolver"
}

/// The verdict of the gateway answering to `ambassador_id` on every route resource of the
/// snapshot that is its concern (resources for other `ambassador_id`s get none).
pub fn verdicts(
    snapshot: &SourceSnapshot,
    ir: &Ir,
    ambassador_id: &str,
    programmed: &Programmed,
) -> BTreeMap<ObjectRef, Verdict> {
    let mut notes: BTreeMap<&ObjectRef, (Vec<&ir::Rejection>, Vec<&ir::Rejection>)> =
        BTreeMap::new();
    for r in &ir.rejections {
        notes.entry(&r.object).or_default().0.push(r);
    }
    for r in &ir.unreachable {
        notes.entry(&r.object).or_default().1.push(r);
    }

    let mut out = BTreeMap::new();
    for resource in &snapshot.resources {
        if !kinds::has_status(resource.kind()) || !ir::for_gateway(resource, ambassador_id) {
            continue;
        }
        let object = resource.object_ref();
        let (refused, unserved) = notes.get(&object).cloned().unwrap_or_default();
        out.insert(
            object.clone(),
            judge(&object, &refused, &unserved, programmed),
        );
    }
    // What the loader refused (a value the API server let through but Legate cannot serve).
    for r in &snapshot.rejected {
        let Some(object) = &r.object else { continue };
        if !kinds::has_status(&object.kind) {
            continue;
        }
        let reason = Reason::Invalid.as_str();
        out.insert(
            object.clone(),
            Verdict {
                accepted: Judgement::no(reason, r.message.clone()),
                programmed: Judgement::no(reason, "not served: it is not accepted"),
            },
        );
    }
    out
}

fn judge(
    object: &ObjectRef,
    refused: &[&ir::Rejection],
    unserved: &[&ir::Rejection],
    programmed: &Programmed,
) -> Verdict {
    if let Some(first) = refused.first() {
        let reason = first.reason.as_str();
        return Verdict {
            accepted: Judgement::no(reason, joined(refused)),
            programmed: Judgement::no(reason, "not served: it is not accepted"),
        };
    }
    let (not_applied, not_served): (Vec<&ir::Rejection>, Vec<&ir::Rejection>) = unserved
        .iter()
        .partition(|r| r.reason == Reason::NotSupported);
    let accepted = match not_applied.first() {
        Some(_) => Judgement::yes(Reason::NotSupported.as_str(), joined(&not_applied)),
        None => Judgement::yes(reasons::ACCEPTED, "accepted"),
    };
    let programmed = if let Some(first) = not_served.first() {
        Judgement::no(first.reason.as_str(), joined(&not_served))
    } else if !translated(&object.kind) {
        Judgement::no(
            Reason::NotSupported.as_str(),
            format!("{} is not implemented by this gateway yet", object.kind),
        )
    } else {
        match programmed {
            Programmed::Acked => {
                Judgement::yes(reasons::PROGRAMMED, "the gateway's Envoy serves it")
            }
            Programmed::Refused(message) => Judgement::no(
                reasons::REFUSED,
                format!(
                    "Envoy refused the configuration carrying it (the last good one keeps \
                     serving): {message}"
                ),
            ),
            Programmed::Pending => Judgement {
                status: "Unknown",
                reason: reasons::PENDING.to_owned(),
                message: "waiting for the gateway's Envoy to acknowledge its configuration"
                    .to_owned(),
            },
        }
    };
    Verdict {
        accepted,
        programmed,
    }
}

fn joined(notes: &[&ir::Rejection]) -> String {
    let mut messages: Vec<&str> = notes.iter().map(|n| n.message.as_str()).collect();
    messages.dedup();
    messages.join("; ")
}

#[cfg(test)]
mod tests;
