//! Typing indicators: never stored, expiring.
//!
//! `isTyping: true` starts an indicator (one `user-typing` event) or refreshes its deadline
//! (no event); one timer per indicator ends it with `isTyping: false` once the deadline passes
//! without a refresh. A stop, or a send, ends it at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

type Key = (String, String);

#[derive(Default)]
pub(crate) struct TypingState {
    active: Mutex<HashMap<Key, (u64, Instant)>>,
    generation: AtomicU64,
}

/// What a timer finds when it wakes.
pub(crate) enum Check {
    /// Stopped, or replaced by a newer indicator: the timer ends quietly.
    Gone,
    /// Refreshed: sleep until this deadline.
    Wait(Instant),
    /// Expired and removed: announce `isTyping: false`.
    Expired,
}

impl TypingState {
    /// Starts or refreshes. Returns the generation of a new indicator (arm a timer for it), or
    /// `None` for a refresh.
    pub(crate) fn start(&self, course: &str, user: &str, ttl: Duration) -> Option<(u64, Instant)> {
        let deadline = Instant::now() + ttl;
        let mut active = self.active.lock();
        match active.get_mut(&(course.to_string(), user.to_string())) {
            Some(entry) => {
                entry.1 = deadline;
                None
            }
            None => {
                let gen = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                active.insert((course.to_string(), user.to_string()), (gen, deadline));
                Some((gen, deadline))
            }
        }
    }

    /// Whether the user has an indicator up in the course.
    pub(crate) fn is_active(&self, course: &str, user: &str) -> bool {
        self.active
            .lock()
            .contains_key(&(course.to_string(), user.to_string()))
    }

    /// Stops; true if the user was typing.
    pub(crate) fn stop(&self, course: &str, user: &str) -> bool {
        self.active
            .lock()
            .remove(&(course.to_string(), user.to_string()))
            .is_some()
    }

    /// The timer of generation `gen` woke up.
    pub(crate) fn check(&self, course: &str, user: &str, gen: u64) -> Check {
        let mut active = self.active.lock();
        let key = (course.to_string(), user.to_string());
        match active.get(&key) {
            Some(&(g, deadline)) if g == gen => {
                if deadline > Instant::now() {
                    Check::Wait(deadline)
                } else {
                    active.remove(&key);
                    Check::Expired
                }
            }
            _ => Check::Gone,
        }
    }
}
