//! The index as watch events drive it: each test is the events in, the snapshot out.

use std::sync::Arc;

use kube::{api::DynamicObject, runtime::watcher::Event};
use legate_crds::Resource;

use super::{Change, Index, StreamKey};

fn mappings(namespace: &str) -> StreamKey {
    StreamKey {
        kind: "Mapping",
        namespace: Some(namespace.to_owned()),
        selector: None,
    }
}

/// A Mapping as a watch delivers it; `extra` goes under the object (status, say).
fn mapping(name: &str, prefix: &str, resource_version: &str, extra: &str) -> DynamicObject {
    serde_saphyr::from_str(&format!(
        "apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: {name}
  namespace: team-a
  uid: uid-{name}
  generation: 1
  resourceVersion: \"{resource_version}\"
spec:
  prefix: {prefix}
  service: {name}
{extra}"
    ))
    .unwrap()
}

fn listed(index: &mut Index, key: &StreamKey, objects: Vec<DynamicObject>) -> Change {
    index.apply(key, Event::Init);
    for o in objects {
        index.apply(key, Event::InitApply(o));
    }
    index.apply(key, Event::InitDone)
}

fn names(index: &Index) -> Vec<String> {
    index
        .snapshot()
        .resources
        .iter()
        .map(|r| r.object_ref().to_string())
        .collect()
}

#[test]
fn nothing_is_complete_until_every_stream_has_listed_once() {
    let mut index = Index::default();
    let (a, b) = (mappings("team-a"), mappings("team-b"));
    index.add_stream(a.clone());
    index.add_stream(b.clone());
    assert!(!index.synced());
    assert_eq!(
        listed(&mut index, &a, vec![mapping("quote", "/q/", "1", "")]),
        Change::Content
    );
    assert!(!index.synced(), "team-b has not listed yet");
    assert_eq!(listed(&mut index, &b, vec![]), Change::Content);
    assert!(index.synced());
    assert_eq!(names(&index), ["Mapping team-a/quote"]);
}

#[test]
fn a_relist_of_the_same_objects_changes_nothing_and_keeps_every_resource_shared() {
    let mut index = Index::default();
    let key = mappings("team-a");
    index.add_stream(key.clone());
    listed(
        &mut index,
        &key,
        vec![mapping("a", "/a/", "1", ""), mapping("b", "/b/", "2", "")],
    );
    let before = index.snapshot();
    // The watch lost its place: the server lists everything again, as it was.
    let changed = listed(
        &mut index,
        &key,
        vec![mapping("b", "/b/", "2", ""), mapping("a", "/a/", "1", "")],
    );
    assert_eq!(changed, Change::None);
    let after = index.snapshot();
    assert_eq!(before, after);
    for (x, y) in before.resources.iter().zip(&after.resources) {
        assert!(
            Arc::ptr_eq(x, y),
            "the translator's memos hit on the same Arc"
        );
    }

    // Written meanwhile without a change of content (new resourceVersions): the live objects
    // changed, the resources are still the very same.
    let changed = listed(
        &mut index,
        &key,
        vec![mapping("b", "/b/", "7", ""), mapping("a", "/a/", "8", "")],
    );
    assert_eq!(changed, Change::Live);
    for (x, y) in before.resources.iter().zip(&index.snapshot().resources) {
        assert!(Arc::ptr_eq(x, y));
    }
}

#[test]
fn a_status_write_keeps_the_resource_and_updates_what_the_status_writer_sees() {
    let mut index = Index::default();
    let key = mappings("team-a");
    index.add_stream(key.clone());
    listed(&mut index, &key, vec![mapping("a", "/a/", "1", "")]);
    let before = index.snapshot();
    let written = mapping(
        "a",
        "/a/",
        "2",
        "status:\n  conditions:\n  - {type: Accepted, status: 'True', reason: Accepted, message: ok, lastTransitionTime: '2026-01-01T00:00:00Z'}",
    );
    assert_eq!(
        index.apply(&key, Event::Apply(written)),
        Change::Live,
        "the status changed, and nothing else"
    );
    let after = index.snapshot();
    assert!(Arc::ptr_eq(&before.resources[0], &after.resources[0]));
    let live = &after.live[&before.resources[0].object_ref()];
    assert_eq!(live.uid.as_deref(), Some("uid-a"));
    assert_eq!(
        live.status.as_ref().unwrap()["conditions"][0]["reason"],
        "Accepted"
    );
    if let Resource::Mapping(m) = &*after.resources[0] {
        assert_eq!(m.status, None, "the translator never sees status");
    }
}

#[test]
fn a_spec_change_replaces_the_resource_and_a_delete_removes_it() {
    let mut index = Index::default();
    let key = mappings("team-a");
    index.add_stream(key.clone());
    listed(&mut index, &key, vec![mapping("a", "/a/", "1", "")]);
    let before = index.snapshot();
    assert_eq!(
        index.apply(&key, Event::Apply(mapping("a", "/other/", "2", ""))),
        Change::Content
    );
    assert!(!Arc::ptr_eq(
        &before.resources[0],
        &index.snapshot().resources[0]
    ));
    assert_eq!(
        index.apply(&key, Event::Delete(mapping("a", "/other/", "3", ""))),
        Change::Content
    );
    assert!(index.snapshot().resources.is_empty());
}

#[test]
fn a_bad_object_is_rejected_with_its_field_and_the_others_still_serve() {
    let mut index = Index::default();
    let key = mappings("team-a");
    index.add_stream(key.clone());
    let bad = mapping("bad", "/bad/", "1", "  weight: 150\n");
    listed(&mut index, &key, vec![bad, mapping("good", "/g/", "2", "")]);
    let snapshot = index.snapshot();
    assert_eq!(names(&index), ["Mapping team-a/good"]);
    assert_eq!(snapshot.rejected.len(), 1);
    let rejection = &snapshot.rejected[0];
    assert_eq!(rejection.object.as_ref().unwrap().name, "bad");
    assert!(
        rejection.message.contains("spec.weight"),
        "{}",
        rejection.message
    );
    assert!(
        snapshot.live.keys().any(|o| o.name == "bad"),
        "its status can still be written"
    );
}

#[test]
fn a_stream_removed_takes_its_objects_with_it() {
    let mut index = Index::default();
    let (a, b) = (mappings("team-a"), mappings("team-b"));
    index.add_stream(a.clone());
    index.add_stream(b.clone());
    listed(&mut index, &a, vec![mapping("a", "/a/", "1", "")]);
    listed(&mut index, &b, vec![]);
    index.remove_stream(&a);
    assert!(index.synced());
    assert!(index.snapshot().resources.is_empty());
    assert_eq!(
        index.apply(&a, Event::Apply(mapping("late", "/l/", "9", ""))),
        Change::None,
        "an event of a stopped stream is dropped"
    );
}

#[test]
fn a_namespace_admitted_later_joins_once_all_its_streams_have_listed() {
    let mut index = Index::default();
    let a = mappings("team-a");
    index.add_stream(a.clone());
    listed(&mut index, &a, vec![mapping("a", "/a/", "1", "")]);
    let (b_mappings, b_services) = (
        mappings("team-b"),
        StreamKey {
            kind: "Service",
            namespace: Some("team-b".to_owned()),
            selector: None,
        },
    );
    index.add_stream(b_mappings.clone());
    index.add_stream(b_services.clone());
    let mut b = mapping("b", "/b/", "2", "");
    b.metadata.namespace = Some("team-b".into());
    listed(&mut index, &b_mappings, vec![b]);
    assert_eq!(
        names(&index),
        ["Mapping team-a/a"],
        "team-b's Services have not listed yet (its RBAC may still be on its way)"
    );
    listed(&mut index, &b_services, vec![]);
    assert_eq!(names(&index), ["Mapping team-a/a", "Mapping team-b/b"]);
}
