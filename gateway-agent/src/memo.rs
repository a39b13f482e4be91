//! Results of pure functions kept from one build to the next, so that a build after one change
//! recomputes only what that change touched.
//!
//! A [`Memo`] keeps what the last build used and drops the rest when the next build finishes:
//! its size follows the configuration, never its history. Keys are either values or
//! [`ByAddress`]: an `Arc` compared by pointer, which the key itself keeps alive, so an address
//! cannot be reused for other content while it is a key.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::Arc,
};

/// Values by key: those the running build used, and those the previous one used.
#[derive(Debug)]
pub struct Memo<K, V> {
    previous: HashMap<K, V>,
    current: HashMap<K, V>,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Self {
            previous: HashMap::new(),
            current: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    /// The value for `key`, computed by `f` only if neither this build nor the last one has it.
    pub fn get_or_insert_with(&mut self, key: K, f: impl FnOnce() -> V) -> V {
        if let Some(v) = self.current.get(&key) {
            return v.clone();
        }
        let v = self.previous.remove(&key).unwrap_or_else(f);
        self.current.insert(key, v.clone());
        v
    }

    /// Ends a build: what it did not use is dropped.
    pub fn finish(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }
}

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
    fn addresses_tell_equal_contents_apart() {
        let (a, b) = (Arc::new(1), Arc::new(1));
        assert_eq!(ByAddress(a.clone()), ByAddress(a.clone()));
        assert_ne!(ByAddress(a), ByAddress(b));
    }
}
