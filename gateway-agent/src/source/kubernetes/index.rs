//! The objects the watches have delivered, kept per watch stream and fed by its events
//! (`apply`, `delete`, and a relist's `Init`…`InitDone`), as linkerd's policy-controller keeps
//! its indexes: pure, so tests drive it with events and no server.
//!
//! Each object is decoded once, by the same loader as a YAML file (same checks, same messages),
//! into a [`Resource`] without what changes on every write and says nothing about what to serve:
//! `resourceVersion`, `managedFields` and `status`. An object whose decoded content equals what
//! the index holds keeps the held `Arc`, so a relist, a status write or a label-only resync hands
//! the translator the very same resource and every memo keyed on it keeps hitting. What the
//! status writer needs of the live object (uid, generation, the status as written) is kept beside
//! it.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use kube::{api::DynamicObject, runtime::watcher::Event};
use legate_crds::{ObjectRef, Resource, loader};
use serde_json::Value;

use crate::source::{Live, Rejection, SourceSnapshot};

/// Where a rejection of a watched object says it came from.
pub const ORIGIN: &str = "Kubernetes";

/// One watch: a kind in one namespace, or in all of them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// The kind as Legate names it (`Mapping`, `Secret`, ...).
    pub kind: &'static str,
    /// `None`: every namespace.
    pub namespace: Option<String>,
    /// The watch's field selector: a kind can have two watches (Secrets: `kubernetes.io/tls`
    /// and `Opaque`), each its own stream.
    pub selector: Option<&'static str>,
}

/// One watched object, decoded.
#[derive(Clone, Debug, PartialEq)]
enum Entry {
    Served {
        resource: Arc<Resource>,
        live: Arc<Live>,
        warnings: Vec<String>,
    },
    Rejected {
        rejection: Rejection,
        live: Arc<Live>,
    },
    /// Not Legate's business (an object Legate reads no kind of): only a warning.
    Skipped { warning: String },
    /// A Secret Legate does not read: most `Opaque` Secrets of a namespace (its client CA
    /// watch sees them all), none of its business and not worth a warning each. A TLSContext
    /// naming one says why it cannot use it.
    Ignored,
}

impl Entry {
    /// The same as `other` in everything but what the status writer reads of the live object
    /// (its resourceVersion, generation and status): what the gateway serves and reports.
    fn same_content(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Self::Served {
                    resource: a,
                    warnings: wa,
                    ..
                },
                Self::Served {
                    resource: b,
                    warnings: wb,
                    ..
                },
            ) => (Arc::ptr_eq(a, b) || a == b) && wa == wb,
            (Self::Rejected { rejection: a, .. }, Self::Rejected { rejection: b, .. }) => a == b,
            (Self::Skipped { warning: a }, Self::Skipped { warning: b }) => a == b,
            (Self::Ignored, Self::Ignored) => true,
            _ => false,
        }
    }

    fn live(&self) -> Option<&Arc<Live>> {
        match self {
            Self::Served { live, .. } | Self::Rejected { live, .. } => Some(live),
            Self::Skipped { .. } | Self::Ignored => None,
        }
    }
}

type Name = (String, String);

/// What one watch event changed in what a snapshot would hold; ordered by how much.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    None,
    /// Only what the status writer reads of a live object: a status written (most often the
    /// echo of the gateway's own write), a new resourceVersion or generation.
    Live,
    /// What the gateway serves or reports: an object added, deleted, or changed beyond that.
    Content,
}

impl Change {
    fn between(before: Option<&Entry>, after: Option<&Entry>) -> Self {
        match (before, after) {
            (None, None) => Self::None,
            // Everything else is the same: the resource is not compared a second time.
            (Some(a), Some(b)) if a.same_content(b) => {
                if a.live() == b.live() {
                    Self::None
                } else {
                    Self::Live
                }
            }
            _ => Self::Content,
        }
    }
}

#[derive(Debug, Default)]
struct Stream {
    objects: BTreeMap<Name, Entry>,
    /// A relist in progress: what it has listed so far, swapped in whole at `InitDone`.
    relist: Option<BTreeMap<Name, Entry>>,
    /// The stream has completed its first list.
    synced: bool,
}

/// Every stream's objects; see the module doc.
#[derive(Debug, Default)]
pub struct Index {
    streams: HashMap<StreamKey, Stream>,
}

impl Index {
    /// Starts tracking a stream: the index is not synced until it has listed once.
    pub fn add_stream(&mut self, key: StreamKey) {
        self.streams.entry(key).or_default();
    }

    /// Stops tracking a stream and forgets its objects (a namespace no longer admitted).
    pub fn remove_stream(&mut self, key: &StreamKey) {
        self.streams.remove(key);
    }

    pub fn streams(&self) -> impl Iterator<Item = &StreamKey> {
        self.streams.keys()
    }

    /// Every stream has listed at least once: a snapshot now is complete.
    pub fn synced(&self) -> bool {
        self.streams.values().all(|s| s.synced)
    }

    /// Applies one watch event of `key`'s stream. Returns what it changed of what a snapshot
    /// would hold (a relist that lists what was there already changes nothing).
    pub fn apply(&mut self, key: &StreamKey, event: Event<DynamicObject>) -> Change {
        let Some(stream) = self.streams.get_mut(key) else {
            return Change::None; // a stream stopped while its last events were in flight
        };
        let change = match event {
            Event::Init => {
                stream.relist = Some(BTreeMap::new());
                Change::None
            }
            Event::InitApply(object) => {
                let name = name_of(&object);
                let previous = stream.objects.get(&name);
                let entry = decode(key.kind, object, previous);
                stream.relist.get_or_insert_default().insert(name, entry);
                Change::None
            }
            Event::InitDone => {
                let listed = stream.relist.take().unwrap_or_default();
                let change = if stream.synced {
                    relisted(&stream.objects, &listed)
                } else {
                    Change::Content
                };
                stream.objects = listed;
                stream.synced = true;
                return change;
            }
            Event::Apply(object) => {
                let name = name_of(&object);
                let entry = decode(key.kind, object, stream.objects.get(&name));
                let change = Change::between(stream.objects.get(&name), Some(&entry));
                stream.objects.insert(name, entry);
                change
            }
            Event::Delete(object) => {
                let removed = stream.objects.remove(&name_of(&object));
                Change::between(removed.as_ref(), None)
            }
        };
        if stream.synced { change } else { Change::None }
    }

    /// Everything held now, in a deterministic order (kind, namespace, name): the same objects
    /// give the same snapshot whatever order their events came in. A namespace whose streams
    /// have not all listed yet (newly admitted, or its RBAC not granted yet) is left out whole,
    /// so its Mappings never go live without the Services and Secrets they refer to, and it
    /// holds nobody else back.
    pub fn snapshot(&self) -> SourceSnapshot {
        let unsynced: std::collections::HashSet<&Option<String>> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.synced)
            .map(|(k, _)| &k.namespace)
            .collect();
        let mut keys: Vec<&StreamKey> = self
            .streams
            .keys()
            .filter(|k| !unsynced.contains(&k.namespace))
            .collect();
        keys.sort();
        let mut snapshot = SourceSnapshot::default();
        // Built in order (streams sorted by kind and namespace, each one's objects by name), so
        // the map is built in bulk rather than by one insertion each.
        let mut live = Vec::new();
        for key in keys {
            for ((namespace, name), entry) in &self.streams[key].objects {
                let object = ObjectRef {
                    kind: key.kind.to_owned(),
                    namespace: (!namespace.is_empty()).then(|| namespace.clone()),
                    name: name.clone(),
                };
                match entry {
                    Entry::Served {
                        resource, warnings, ..
                    } => {
                        snapshot.resources.push(resource.clone());
                        snapshot.warnings.extend(warnings.iter().cloned());
                    }
                    Entry::Rejected { rejection, .. } => snapshot.rejected.push(rejection.clone()),
                    Entry::Skipped { warning } => snapshot.warnings.push(warning.clone()),
                    Entry::Ignored => {}
                }
                if let Some(l) = entry.live() {
                    live.push((object, l.clone()));
                }
            }
        }
        snapshot.live = Arc::new(live.into_iter().collect());
        snapshot
    }
}

fn name_of(object: &DynamicObject) -> Name {
    (
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

/// Decodes a watched object, keeping `previous`'s resource when the content is the same.
/// What a relist changed: `before` and `after` are sorted by name.
fn relisted(before: &BTreeMap<Name, Entry>, after: &BTreeMap<Name, Entry>) -> Change {
    if before.len() != after.len() || before.keys().ne(after.keys()) {
        return Change::Content;
    }
    before
        .values()
        .zip(after.values())
        .map(|(a, b)| Change::between(Some(a), Some(b)))
        .max()
        .unwrap_or(Change::None)
}

fn decode(kind: &'static str, object: DynamicObject, previous: Option<&Entry>) -> Entry {
    // The same object at the same resourceVersion (a relist after a reconnect): nothing to decode.
    if let Some(previous) = previous.filter(|p| {
        p.live().is_some_and(|l| {
            l.resource_version.is_some()
                && l.resource_version == object.metadata.resource_version
                && l.uid == object.metadata.uid
        })
    }) {
        return previous.clone();
    }
    let (document, live) = document(kind, object);
    let live = Arc::new(live);
    let object_ref = document_ref(kind, &document);
    let loaded = loader::load_object(ORIGIN, document);
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    if let Some(e) = loaded.errors.first() {
        let mut rejection = Rejection::from_document(e);
        rejection.index = None;
        return Entry::Rejected { rejection, live };
    }
    let Some(resource) = loaded.resources.into_iter().next() else {
        if kind == "Secret" {
            return Entry::Ignored;
        }
        let warning = warnings
            .into_iter()
            .next()
            .unwrap_or_else(|| format!("{object_ref}: skipped"));
        return Entry::Skipped { warning };
    };
    let resource = match previous {
        Some(Entry::Served { resource: held, .. }) if **held == resource => held.clone(),
        _ => Arc::new(resource),
    };
    Entry::Served {
        resource,
        live,
        warnings,
    }
}

fn document_ref(kind: &str, document: &Value) -> ObjectRef {
    let text = |pointer: &str| document.pointer(pointer).and_then(Value::as_str);
    ObjectRef {
        kind: kind.to_owned(),
        namespace: text("/metadata/namespace").map(str::to_owned),
        name: text("/metadata/name").unwrap_or_default().to_owned(),
    }
}

/// The object as a document for the loader, without what changes on every write, and its
/// live parts apart. List items may lack `apiVersion` and `kind`: the stream knows them.
fn document(kind: &str, object: DynamicObject) -> (Value, Live) {
    let DynamicObject {
        types,
        mut metadata,
        data,
    } = object;
    let live = Live {
        uid: metadata.uid.clone(),
        resource_version: metadata.resource_version.clone(),
        generation: metadata.generation,
        status: None,
    };
    metadata.resource_version = None;
    metadata.managed_fields = None;
    let mut document = match data {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let status = document.remove("status");
    let api_version = types
        .map(|t| t.api_version)
        .filter(|a| !a.is_empty())
        .or_else(|| legate_crds::api_version(kind));
    if let Some(api_version) = api_version {
        document.insert("apiVersion".into(), Value::String(api_version));
    }
    document.insert("kind".into(), Value::String(kind.to_owned()));
    if let Ok(metadata) = serde_json::to_value(metadata) {
        document.insert("metadata".into(), metadata);
    }
    (
        Value::Object(document),
        Live {
            status: status.filter(|s| !s.is_null()),
            ..live
        },
    )
}

#[cfg(test)]
mod tests;
