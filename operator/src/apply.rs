//! Server-side apply of one child under the operator's field manager, and deletion of a child
//! this pass no longer wants. Nothing is written when the live object already says what the
//! manifest says (DESIGN.md: zero writes when nothing changed).
//!
//! "Already says" is decided by two checks: every field of the manifest has the same value in the
//! live object (the server adds defaults, never removes what we set), and the live object carries
//! the hash of the manifest in [`APPLIED_HASH_ANNOTATION`]. The second catches a field the new
//! manifest dropped: only an apply removes a field this manager owned.

use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    build::{INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, OWNER_NAMESPACE_LABEL},
    children::{Child, ChildKind, Slot},
    error::{Error, Verb},
};

/// The one field manager of the operator's writes.
pub const FIELD_MANAGER: &str = "legate-operator";
/// On every child: a hash of the manifest last applied.
pub const APPLIED_HASH_ANNOTATION: &str = "legate.dev/applied-hash";

/// What a pass did to one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
    Deleted,
}

impl Change {
    /// The Event reason (and verb) for the change; `None` when there is nothing to tell.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Self::Created => Some("Created"),
            Self::Updated => Some("Updated"),
            Self::Deleted => Some("Deleted"),
            Self::Unchanged => None,
        }
    }
}

fn api(client: &Client, slot: &Slot) -> Api<DynamicObject> {
    let resource = slot.kind.api_resource();
    match &slot.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// The live object in `slot`, if there is one.
pub async fn read(client: &Client, slot: &Slot) -> Result<Option<DynamicObject>, Error> {
    api(client, slot)
        .get_opt(&slot.name)
        .await
        .map_err(|e| Error::kube(Verb::Read, slot, e))
}

/// Applies `child` unless the live object is already up to date; returns the live object after.
pub async fn apply(client: &Client, child: &Child) -> Result<(Change, DynamicObject), Error> {
    let api = api(client, &child.slot);
    let manifest = with_applied_hash(&child.manifest);
    let live = read(client, &child.slot).await?;
    if let Some(live) = live.as_ref().filter(|l| up_to_date(&manifest, l)) {
        return Ok((Change::Unchanged, live.clone()));
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = api
        .patch(&child.slot.name, &params, &Patch::Apply(&manifest))
        .await
        .map_err(|e| Error::kube(Verb::Apply, &child.slot, e))?;
    let change = if live.is_some() {
        Change::Updated
    } else {
        Change::Created
    };
    Ok((change, applied))
}

/// The children of `kind` that carry the labels of the installation `namespace/name` together
/// with its namespace label, in every namespace: the RoleBindings in admitted namespaces, which no
/// fixed name or owner reference finds. One list call, so a pass that changes nothing still
/// writes nothing.
pub async fn labelled(
    client: &Client,
    kind: ChildKind,
    namespace: &str,
    name: &str,
) -> Result<Vec<Slot>, Error> {
    let selector = format!(
        "{MANAGED_BY_LABEL}={MANAGED_BY},{INSTANCE_LABEL}={name},{OWNER_NAMESPACE_LABEL}={namespace}"
    );
    let list = Api::<DynamicObject>::all_with(client.clone(), &kind.api_resource())
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::List {
            what: kind.api_resource().plural,
            selector: selector.clone(),
            source,
        })?;
    let mut slots: Vec<Slot> = list
        .items
        .into_iter()
        .filter_map(|object| {
            Some(Slot {
                kind,
                namespace: object.metadata.namespace,
                name: object.metadata.name?,
            })
        })
        .collect();
    slots.sort();
    Ok(slots)
}

/// Deletes the child in `slot` if it exists and belongs to the installation `namespace/name`;
/// anything else by that name is left alone.
pub async fn delete(
    client: &Client,
    slot: &Slot,
    namespace: &str,
    name: &str,
) -> Result<Change, Error> {
    let live = read(client, slot).await?;
    if !live.is_some_and(|l| belongs_to(&l, namespace, name)) {
        return Ok(Change::Unchanged);
    }
    match api(client, slot)
        .delete(&slot.name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(Change::Deleted),
        // Gone between the read and the delete: what we wanted.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Change::Unchanged),
        Err(e) => Err(Error::kube(Verb::Delete, slot, e)),
    }
}

/// Whether `live` was made by the operator for the installation `namespace/name`.
fn belongs_to(live: &DynamicObject, namespace: &str, name: &str) -> bool {
    let labels = live.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    // The namespace label where there is one (cluster-scoped children, RoleBindings in admitted
    // namespaces), else the child's own namespace.
    let owner_namespace = label(OWNER_NAMESPACE_LABEL).or(live.metadata.namespace.as_deref());
    let same_namespace = owner_namespace == Some(namespace);
    label(MANAGED_BY_LABEL) == Some(MANAGED_BY)
        && label(INSTANCE_LABEL) == Some(name)
        && same_namespace
}

/// `manifest` with the hash of itself in [`APPLIED_HASH_ANNOTATION`].
pub fn with_applied_hash(manifest: &Value) -> Value {
    let hash = Sha256::digest(manifest.to_string().as_bytes());
    let hash: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    let mut manifest = manifest.clone();
    let metadata = &mut manifest["metadata"];
    if !metadata["annotations"].is_object() {
        metadata["annotations"] = Value::Object(serde_json::Map::new());
    }
    metadata["annotations"][APPLIED_HASH_ANNOTATION] = Value::String(hash);
    manifest
}

/// Whether applying `manifest` (with its hash) would change nothing in `live`.
pub fn up_to_date(manifest: &Value, live: &DynamicObject) -> bool {
    let live = serde_json::to_value(live).expect("a DynamicObject always serializes");
    contains(&live, manifest)
}

/// Whether every field of `wanted` has the same value in `live`. Lists match element by element
/// (the server keeps their order); an empty list, map or null matches an absent field, since the
/// server drops those.
pub fn contains(live: &Value, wanted: &Value) -> bool {
    match (live, wanted) {
        (Value::Object(live), Value::Object(wanted)) => {
            wanted.iter().all(|(key, w)| match live.get(key) {
                Some(l) => contains(l, w),
                None => is_empty(w),
            })
        }
        (Value::Array(live), Value::Array(wanted)) => {
            live.len() == wanted.len() && live.iter().zip(wanted).all(|(l, w)| contains(l, w))
        }
        (Value::Null, wanted) => is_empty(wanted),
        _ => live == wanted,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_defaults_do_not_count_as_a_difference() {
        let live =
            json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}], "type": "ClusterIP"}});
        assert!(contains(&live, &json!({"spec": {"ports": [{"port": 80}]}})));
    }

    #[test]
    fn a_changed_value_or_a_missing_element_is_a_difference() {
        let live = json!({"spec": {"ports": [{"port": 80}]}});
        assert!(!contains(
            &live,
            &json!({"spec": {"ports": [{"port": 81}]}})
        ));
        assert!(!contains(
            &live,
            &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}})
        ));
    }

    #[test]
    fn empty_values_match_absent_fields() {
        let live = json!({"metadata": {"name": "a"}});
        assert!(contains(
            &live,
            &json!({"metadata": {"name": "a", "annotations": {}, "finalizers": [], "x": null}})
        ));
    }

    #[test]
    fn the_hash_follows_the_manifest() {
        let a = with_applied_hash(&json!({"metadata": {"name": "a"}}));
        let b = with_applied_hash(&json!({"metadata": {"name": "b"}}));
        let hash = |v: &Value| v["metadata"]["annotations"][APPLIED_HASH_ANNOTATION].clone();
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(a, with_applied_hash(&json!({"metadata": {"name": "a"}})));
    }
}
