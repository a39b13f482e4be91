//! The verdict status would carry, computed from YAML as the running agent computes it: for
//! tests that check a resource's Accepted condition beside its traffic.

use std::sync::Arc;

use legate_agent::{
    ir::{self, Settings},
    source::SourceSnapshot,
    status::verdict::{Programmed, verdicts},
};

/// The Accepted condition of `kind` `name` in `yaml` from the `default` gateway whose Envoy
/// acknowledged its configuration: `(status, reason, message)`.
pub fn accepted(yaml: &str, kind: &str, name: &str) -> (&'static str, String, String) {
    let loaded = legate_crds::loader::load_str("test.yaml", yaml).expect("the YAML loads");
    let ir = ir::build(&loaded.resources, &Settings::default());
    let snapshot = SourceSnapshot {
        resources: loaded.resources.into_iter().map(Arc::new).collect(),
        ..SourceSnapshot::default()
    };
    let statuses = verdicts(&snapshot, &ir, "default", &Programmed::Acked);
    let v = statuses
        .iter()
        .find(|(o, _)| o.kind == kind && o.name == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no verdict for {kind} {name}: {statuses:?}"));
    (v.accepted.status, v.accepted.reason, v.accepted.message)
}
