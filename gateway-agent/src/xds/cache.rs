//! Versioned resource sets: what a configuration is, and how its versions derive from content.
//!
//! Every version here is a function of bytes only (no counters, no clocks), so a restarted agent
//! fed the same inputs serves the same versions and Envoy sees no churn:
//! - a resource's version is the hash of its encoded bytes, except a route configuration
//!   assembled from virtual hosts: the hash of its name and of its virtual hosts' hashes (so one
//!   changed virtual host costs the hash of its own bytes, not of a table of thousands);
//! - a type's version is the hash of its sorted `(name, resource version)` pairs;
//! - a configuration's version is the hash of its `(type URL, type version)` pairs.

use std::collections::{BTreeMap, btree_map::Entry};
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use sha2::{Digest, Sha256};

use super::type_url;

/// One complete configuration: for each type URL, resources by name, already encoded as `Any`
/// and versioned. A resource is shared (`Arc`), so a configuration built from the parts of the
/// last one costs neither copies nor hashes for the parts that did not change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceSet {
    by_type: BTreeMap<&'static str, BTreeMap<String, Arc<Res>>>,
}

impl ResourceSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes `msg` and stores it under its own type URL.
    ///
    /// # Panics
    /// If `M` is not one of the types ADS serves ([`type_url::ALL`]): a programming error.
    pub fn insert<M: prost::Name>(&mut self, name: impl Into<String>, msg: &M) -> &mut Self {
        self.insert_res(name, Arc::new(Res::encode(msg)))
    }

    /// Stores an already encoded resource.
    pub fn insert_any(
        &mut self,
        type_url: &'static str,
        name: impl Into<String>,
        any: Any,
    ) -> &mut Self {
        self.by_type
            .entry(type_url)
            .or_default()
            .insert(name.into(), Arc::new(Res::new(any)));
        self
    }

    /// Stores an encoded, versioned resource (kept from an earlier configuration, say).
    ///
    /// # Panics
    /// If its type is not one ADS serves.
    pub fn insert_res(&mut self, name: impl Into<String>, res: Arc<Res>) -> &mut Self {
        let url = &res.any.type_url;
        let Some(known) = type_url::known(url) else {
            panic!("ADS does not serve {url}; known types: {:?}", type_url::ALL)
        };
        self.by_type
            .entry(known)
            .or_default()
            .insert(name.into(), res);
        self
    }

    /// Stores encoded, versioned resources of one type at once: built in one go when they come
    /// sorted by name (as from another map), which costs far less than one insertion each.
    ///
    /// # Panics
    /// If `type_url` is not one ADS serves.
    pub fn extend_res(
        &mut self,
        type_url: &str,
        resources: impl IntoIterator<Item = (String, Arc<Res>)>,
    ) -> &mut Self {
        let Some(known) = type_url::known(type_url) else {
            panic!(
                "ADS does not serve {type_url}; known types: {:?}",
                type_url::ALL
            )
        };
        let built: BTreeMap<String, Arc<Res>> = resources.into_iter().collect();
        debug_assert!(built.values().all(|r| r.any.type_url == known));
        match self.by_type.entry(known) {
            Entry::Vacant(e) => {
                e.insert(built);
            }
            Entry::Occupied(mut e) => e.get_mut().extend(built),
        }
        self
    }

    /// The resources of one type (empty if none).
    pub fn of_type(&self, type_url: &str) -> impl Iterator<Item = (&String, &Any)> {
        self.by_type
            .get(type_url)
            .into_iter()
            .flatten()
            .map(|(name, res)| (name, &res.any))
    }

    /// Every resource, by type and name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &String, &Arc<Res>)> {
        self.by_type
            .iter()
            .flat_map(|(url, by_name)| by_name.iter().map(move |(n, r)| (*url, n, r)))
    }

    pub fn len(&self) -> usize {
        self.by_type.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One encoded resource with its content-derived version, computed once when it is made.
#[derive(Debug, PartialEq)]
pub struct Res {
    pub version: String,
    pub any: Any,
}

impl Res {
    pub fn new(any: Any) -> Self {
        Self {
            version: resource_version(&any),
            any,
        }
    }

    /// A resource whose version is already known (see [`Res::version_of_parts`]).
    pub fn with_version(any: Any, version: String) -> Self {
        Self { version, any }
    }

    /// The digest of one part of a resource.
    pub fn digest(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    /// The version of a resource assembled from parts: the hash of its name and of the parts'
    /// digests, in order.
    pub fn version_of_parts<'a>(
        name: &str,
        digests: impl IntoIterator<Item = &'a [u8; 32]>,
    ) -> String {
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update([0]);
        for d in digests {
            h.update(d);
        }
        short_hex(&h.finalize())
    }

    /// `msg`, encoded under its own type URL.
    pub fn encode<M: prost::Name>(msg: &M) -> Self {
        Self::new(Any {
            type_url: M::type_url(),
            value: msg.encode_to_vec(),
        })
    }
}

/// The resources of one type, with the type's version.
#[derive(Debug, Default)]
pub(crate) struct TypeSnapshot {
    pub version: String,
    pub resources: BTreeMap<String, Arc<Res>>,
}

/// A published configuration, every known type present (possibly empty).
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub version: String,
    pub types: BTreeMap<&'static str, TypeSnapshot>,
    /// When the change this configuration serves reached the agent: its acknowledgement
    /// measures the time from a change to Envoy applying it.
    pub since: std::time::Instant,
}

/// Short hex of a SHA-256 digest: 16 hex digits (64 bits) are plenty to tell versions apart.
fn short_hex(digest: &[u8]) -> String {
    let mut hex = String::with_capacity(16);
    crate::hex::push_lower_hex(&mut hex, &digest[..8]);
    hex
}

pub(crate) fn resource_version(any: &Any) -> String {
    short_hex(&Sha256::digest(&any.value))
}

/// The version of a set of named, versioned resources (sorted by name: a `BTreeMap` iterates so).
pub(crate) fn set_version<'a>(
    pairs: impl IntoIterator<Item = (&'a String, &'a Arc<Res>)>,
) -> String {
    let mut h = Sha256::new();
    for (name, res) in pairs {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(res.version.as_bytes());
        h.update([0]);
    }
    short_hex(&h.finalize())
}

impl Snapshot {
    /// Builds the snapshot of `set`: its resources already carry their versions, so this costs
    /// one pass over names and versions, whatever the size of the resources.
    pub fn build(set: ResourceSet, since: std::time::Instant) -> Self {
        let mut by_type = set.by_type;
        let mut types = BTreeMap::new();
        let mut all = Sha256::new();
        for url in type_url::ALL {
            let resources = by_type.remove(url).unwrap_or_default();
            let version = set_version(&resources);
            all.update(url.as_bytes());
            all.update([0]);
            all.update(version.as_bytes());
            all.update([0]);
            types.insert(url, TypeSnapshot { version, resources });
        }
        for url in by_type.keys() {
            tracing::warn!(
                type_url = url,
                "ignoring resources of a type ADS does not serve"
            );
        }
        Snapshot {
            version: short_hex(&all.finalize()),
            types,
            since,
        }
    }

    pub fn of(&self, url: &str) -> &TypeSnapshot {
        static EMPTY: std::sync::OnceLock<TypeSnapshot> = std::sync::OnceLock::new();
        self.types
            .get(url)
            .unwrap_or_else(|| EMPTY.get_or_init(TypeSnapshot::default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn any(bytes: &[u8]) -> Any {
        Any {
            type_url: type_url::CLUSTER.into(),
            value: bytes.to_vec(),
        }
    }

    fn set(pairs: &[(&str, &[u8])]) -> ResourceSet {
        let mut s = ResourceSet::default();
        for (n, b) in pairs {
            s.insert_any(type_url::CLUSTER, *n, any(b));
        }
        s
    }

    #[test]
    fn versions_are_a_function_of_content_only() {
        let a = Snapshot::build(set(&[("a", b"1"), ("b", b"2")]), Instant::now());
        let b = Snapshot::build(set(&[("b", b"2"), ("a", b"1")]), Instant::now());
        assert_eq!(a.version, b.version);
        assert_eq!(
            a.of(type_url::CLUSTER).version,
            b.of(type_url::CLUSTER).version
        );
        assert_eq!(a.version.len(), 16);
    }

    #[test]
    fn one_change_moves_its_resource_type_and_config_versions_only() {
        let a = Snapshot::build(set(&[("a", b"1"), ("b", b"2")]), Instant::now());
        let b = Snapshot::build(set(&[("a", b"1"), ("b", b"3")]), Instant::now());
        let (ca, cb) = (a.of(type_url::CLUSTER), b.of(type_url::CLUSTER));
        assert_eq!(ca.resources["a"].version, cb.resources["a"].version);
        assert_ne!(ca.resources["b"].version, cb.resources["b"].version);
        assert_ne!(ca.version, cb.version);
        assert_ne!(a.version, b.version);
        assert_eq!(
            a.of(type_url::LISTENER).version,
            b.of(type_url::LISTENER).version
        );
    }

    #[test]
    fn versions_are_the_first_eight_digest_bytes_in_lowercase_hex() {
        let digest = [0x01, 0xab, 0x10, 0xff, 0x00, 0x7e, 0xc3, 0x5d, 0x99];
        assert_eq!(short_hex(&digest), "01ab10ff007ec35d");
    }

    #[test]
    fn renaming_a_resource_changes_the_type_version() {
        let a = Snapshot::build(set(&[("a", b"1")]), Instant::now());
        let b = Snapshot::build(set(&[("z", b"1")]), Instant::now());
        assert_ne!(a.version, b.version);
    }
}
