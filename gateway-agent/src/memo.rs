//! Results of pure functions kept from one build to the next, so that a build after one change
//! recomputes only what that change touched.
//!
//! A [`Memo`] keeps what the last build used and drops the rest when a build finishes:
//! its size follows the configuration, never its history. Keys are either values or
//! [`ByAddress`]: an `Arc` compared by pointer, which the key itself keeps alive, so an address
//! cannot be reused for other content while it is a key.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, Hasher, RandomState},
    sync::Arc,
};

/// Values by key, each stamped with the last build that used it.
#[derive(Debug)]
pub struct Memo<K, V, S = RandomState> {
    values: HashMap<K, (V, u64), S>,
    build: u64,
}

impl<K, V, S: Default> Default for Memo<K, V, S> {
    fn default() -> Self {
        Self {
            values: HashMap::default(),
            build: 0,
        }
    }
}

impl<K: Hash + Eq, V: Clone, S: BuildHasher> Memo<K, V, S> {
    /// The value for `key`, computed by `f` only if neither this build nor the last one has it.
    pub fn get_or_insert_with(&mut self, key: K, f: impl FnOnce() -> V) -> V {
        // One look-up per call: a hit is restamped in place.
        let (v, used) = self.values.entry(key).or_insert_with(|| (f(), self.build));
        *used = self.build;
        v.clone()
    }

    /// As [`Memo::get_or_insert_with`], the value in place: a caller may bring it up to date.
    pub fn entry_or_insert_with(&mut self, key: K, f: impl FnOnce() -> V) -> &mut V {
        let (v, used) = self.values.entry(key).or_insert_with(|| (f(), self.build));
        *used = self.build;
        v
    }

    /// Ends a build: what it did not use is dropped.
    pub fn finish(&mut self) {
        self.finish_returning_unused();
    }

    /// Ends a build, returning what it did not use (what went away since the last build).
    pub fn finish_returning_unused(&mut self) -> Vec<V> {
        let build = self.build;
        let unused = self
            .values
            .extract_if(|_, (_, used)| *used != build)
            .map(|(_, (v, _))| v)
            .collect();
        self.build += 1;
        unused
    }
}

/// Memos keyed by [`ByAddress`] (alone or with a small tag): tens of thousands of look-ups per
/// build, and an address needs no keyed hash (the keys are not chosen by anyone), so a fixed seed.
pub type ByAddressMemo<K, V> = Memo<K, V, AddressHasher>;

/// The hasher of address keys; see [`ByAddressMemo`].
pub type AddressHasher = foldhash::fast::FixedState;

/// An `Arc` as a key by identity: cheap to hash and compare whatever the size of its content.
#[derive(Debug)]
pub struct ByAddress<T>(pub Arc<T>);

impl<T> Clone for ByAddress<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> PartialEq for ByAddress<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> Eq for ByAddress<T> {}

impl<T> Hash for ByAddress<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_the_last_build_used_and_drops_the_rest() {
        let mut memo = Memo::default();
        let mut calls = 0;
        let mut get = |memo: &mut Memo<u32, u32>, k| {
            memo.get_or_insert_with(k, || {
                calls += 1;
                k * 10
            })
        };
        assert_eq!(get(&mut memo, 1), 10);
        assert_eq!(get(&mut memo, 2), 20);
        memo.finish();
        assert_eq!(get(&mut memo, 1), 10); // kept
        memo.finish();
        assert_eq!(get(&mut memo, 1), 10); // kept again
        assert_eq!(get(&mut memo, 2), 20); // not used by the last build: dropped
        assert_eq!(calls, 3);
    }

    #[test]
    fn a_build_returns_what_it_no_longer_uses() {
        let mut memo: Memo<u32, u32> = Memo::default();
        memo.get_or_insert_with(1, || 10);
        memo.get_or_insert_with(2, || 20);
        assert!(memo.finish_returning_unused().is_empty());
        memo.get_or_insert_with(2, || 20);
        assert_eq!(memo.finish_returning_unused(), vec![10]);
    }

    #[test]
    fn addresses_tell_equal_contents_apart() {
        let (a, b) = (Arc::new(1), Arc::new(1));
        assert_eq!(ByAddress(a.clone()), ByAddress(a.clone()));
        assert_ne!(ByAddress(a), ByAddress(b));
    }
}
