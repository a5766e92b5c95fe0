//! The compiled cache: the newest compiled version of each schema or pipeline, per tenant,
//! read without locks.
//!
//! Readers load an immutable map through `ArcSwap` (no lock, no allocation: a lookup by
//! `&str` is two hash probes and an `Arc` clone). Writers, which are rare (a registration or a
//! change from another instance), copy the map, change the copy and swap it in, serialised by
//! a mutex that readers never touch. The cache is bounded: past `capacity` entries the ones
//! compiled longest ago are dropped, and come back on their next use.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

/// A compiled resource and the version it was compiled from.
#[derive(Debug)]
pub struct Compiled<T> {
    /// The version.
    pub version: u32,
    /// The compiled form.
    pub value: T,
}

// foldhash rather than SipHash: keys are names chosen by tenants, but a lookup is on every
// request and SipHash's DoS resistance is not needed for maps that only registered names enter.
type Hasher = foldhash::fast::RandomState;
type Names<T> = HashMap<String, Arc<Compiled<T>>, Hasher>;
type Tenants<T> = HashMap<String, Names<T>, Hasher>;

/// A bounded, lock-free-to-read map of (tenant, name) to the newest compiled version.
pub struct Cache<T> {
    map: ArcSwap<Tenants<T>>,
    /// Insertion order for eviction; only writers use it.
    order: Mutex<VecDeque<(String, String)>>,
    capacity: usize,
}

impl<T> Cache<T> {
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: ArcSwap::from_pointee(Tenants::default()),
            order: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    /// The hot path.
    #[inline]
    pub fn get(&self, tenant: &str, name: &str) -> Option<Arc<Compiled<T>>> {
        self.map.load().get(tenant)?.get(name).cloned()
    }

    /// How many entries are cached.
    pub fn len(&self) -> usize {
        self.map.load().values().map(HashMap::len).sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Caches `compiled` unless a newer version is already there.
    pub fn insert(&self, tenant: &str, name: &str, compiled: Compiled<T>) {
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.map.load_full();
        if current
            .get(tenant)
            .and_then(|n| n.get(name))
            .is_some_and(|c| c.version > compiled.version)
        {
            return;
        }
        let mut next = (*current).clone();
        let fresh = next
            .entry(tenant.to_owned())
            .or_default()
            .insert(name.to_owned(), Arc::new(compiled))
            .is_none();
        if fresh {
            order.push_back((tenant.to_owned(), name.to_owned()));
        }
        while order.len() > self.capacity {
            let Some((t, n)) = order.pop_front() else {
                break;
            };
            remove_from(&mut next, &t, &n);
        }
        self.map.store(Arc::new(next));
    }

    /// Forgets a resource (deleted).
    pub fn remove(&self, tenant: &str, name: &str) {
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (*self.map.load_full()).clone();
        if remove_from(&mut next, tenant, name) {
            order.retain(|(t, n)| !(t == tenant && n == name));
            self.map.store(Arc::new(next));
        }
    }

    /// Replaces everything (a warm start or a resync), keeping the newest `capacity`.
    pub fn replace_all(&self, entries: Vec<(String, String, Compiled<T>)>) {
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Tenants::<T>::default();
        order.clear();
        let skip = entries.len().saturating_sub(self.capacity);
        for (tenant, name, compiled) in entries.into_iter().skip(skip) {
            order.push_back((tenant.clone(), name.clone()));
            next.entry(tenant)
                .or_default()
                .insert(name, Arc::new(compiled));
        }
        self.map.store(Arc::new(next));
    }
}

fn remove_from<T>(map: &mut Tenants<T>, tenant: &str, name: &str) -> bool {
    let Some(names) = map.get_mut(tenant) else {
        return false;
    };
    let removed = names.remove(name).is_some();
    if names.is_empty() {
        map.remove(tenant);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(version: u32) -> Compiled<&'static str> {
        Compiled {
            version,
            value: "x",
        }
    }

    #[test]
    fn newest_version_wins() {
        let cache = Cache::new(10);
        cache.insert("t", "a", c(2));
        cache.insert("t", "a", c(1));
        assert_eq!(cache.get("t", "a").unwrap().version, 2);
        cache.insert("t", "a", c(3));
        assert_eq!(cache.get("t", "a").unwrap().version, 3);
        assert!(cache.get("u", "a").is_none());
        cache.remove("t", "a");
        assert!(cache.get("t", "a").is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn bounded_with_eviction_of_the_oldest() {
        let cache = Cache::new(2);
        cache.insert("t", "a", c(1));
        cache.insert("t", "b", c(1));
        cache.insert("t", "c", c(1));
        assert_eq!(cache.len(), 2);
        assert!(cache.get("t", "a").is_none());
        assert!(cache.get("t", "c").is_some());
        cache.replace_all(vec![
            ("t".into(), "x".into(), c(1)),
            ("t".into(), "y".into(), c(1)),
            ("t".into(), "z".into(), c(1)),
        ]);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("t", "x").is_none());
    }
}
