//! A bounded map from texts to what was computed of them, newest kept: the one memory behind
//! the prompt judgments a cascade remembers ([`super::prompt_memo`]) and the answer vectors
//! an encoder tier keeps ([`super::encoder::EncoderClassifier`]).
//!
//! Keys are the texts' sha256, not the texts, so memory is bounded by the entry count
//! whatever the texts' length. Entries are cloned out (share them behind an `Arc` or a
//! shared future). A poisoned lock only means another thread panicked mid-update of the
//! LRU order; the entries themselves are whole, so it is used as it is.

use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

use lru::LruCache;
use sha2::{Digest, Sha256};

/// At most `capacity` entries keyed by text, the least recently used dropped first.
pub struct TextLru<V> {
    entries: Mutex<LruCache<[u8; 32], V>>,
}

impl<V: Clone> TextLru<V> {
    /// A map keeping at most `capacity` entries (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        TextLru {
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    fn key(text: &str) -> [u8; 32] {
        Sha256::digest(text.as_bytes()).into()
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<[u8; 32], V>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry of `text`, if kept (it becomes the newest).
    pub fn get(&self, text: &str) -> Option<V> {
        self.lock().get(&Self::key(text)).cloned()
    }

    /// Keeps `value` as the entry of `text`.
    pub fn put(&self, text: &str, value: V) {
        self.lock().put(Self::key(text), value);
    }

    /// The entry of `text`, or the one `make` gives, kept; `make` runs under the lock, so
    /// two callers never both make one (it should only start work, not do it).
    pub fn get_or_insert_with(&self, text: &str, make: impl FnOnce() -> V) -> V {
        let key = Self::key(text);
        let mut entries = self.lock();
        if let Some(v) = entries.get(&key) {
            return v.clone();
        }
        let v = make();
        entries.put(key, v.clone());
        v
    }

    /// Forgets the entry of `text`, if kept.
    pub fn remove(&self, text: &str) {
        self.lock().pop(&Self::key(text));
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries kept.
    pub fn capacity(&self) -> usize {
        self.lock().cap().get()
    }
}
