//! Conversation affinity: once a conversation's history trips the primary's input
//! moderation, every later turn carries the same flagged message and would be blocked
//! again. Such conversations stick to the provider that answered, for a bounded number
//! of conversations (least recently used are forgotten first).
//!
//! A conversation is recognised by its history: turn N+1 of a chat repeats every
//! message of turn N, plus the assistant's answer and the new user message. So the
//! key stored for a request is a hash of all its messages, and the keys looked up for a
//! new request are the hashes of its history without the last one or two messages.

use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use crate::wire::Message;

/// A bounded map from conversation to the index of the provider it sticks to.
#[derive(Debug)]
pub struct Affinity {
    map: Mutex<LruCache<u64, usize>>,
}

impl Affinity {
    /// Remembers at most `capacity` conversations.
    pub fn new(capacity: usize) -> Self {
        Affinity {
            map: Mutex::new(LruCache::new(NonZeroUsize::new(capacity.max(1)).expect("max(1)"))),
        }
    }

    /// The provider a conversation sticks to, if any.
    pub fn lookup(&self, messages: &[Message]) -> Option<usize> {
        let n = messages.len();
        let mut map = self.map.lock().expect("affinity poisoned");
        [n.checked_sub(2), n.checked_sub(1), Some(n)]
            .into_iter()
            .flatten()
            .filter(|&len| len > 0)
            .find_map(|len| map.get(&key(&messages[..len])).copied())
    }

    /// Makes a conversation stick to provider `index` from now on.
    pub fn remember(&self, messages: &[Message], index: usize) {
        self.map
            .lock()
            .expect("affinity poisoned")
            .put(key(messages), index);
    }

    /// How many conversations are remembered.
    pub fn len(&self) -> usize {
        self.map.lock().expect("affinity poisoned").len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn key(messages: &[Message]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for m in messages {
        // Roles and texts identify a turn; clients re-serialise other fields freely.
        format!("{:?}", m.role).hash(&mut h);
        m.content.as_ref().map(|c| c.text()).hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_turns_of_a_flagged_conversation_are_found() {
        let a = Affinity::new(2);
        let turn1 = vec![Message::user("flagged question")];
        a.remember(&turn1, 1);
        let mut turn2 = turn1.clone();
        turn2.push(Message::assistant("an answer from the fallback"));
        turn2.push(Message::user("and a follow-up"));
        assert_eq!(a.lookup(&turn2), Some(1));
        assert_eq!(a.lookup(&[Message::user("another chat")]), None);
    }

    #[test]
    fn memory_is_bounded() {
        let a = Affinity::new(2);
        for i in 0..5 {
            a.remember(&[Message::user(format!("chat {i}"))], 1);
        }
        assert_eq!(a.len(), 2);
        assert_eq!(a.lookup(&[Message::user("chat 0")]), None);
        assert_eq!(a.lookup(&[Message::user("chat 4")]), Some(1));
    }
}
