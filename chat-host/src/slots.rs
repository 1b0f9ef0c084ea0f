//! The per-user connection slots: how many sockets a user has open, `/ws` and Socket.IO together,
//! capped at `max_connections_per_user`.
//!
//! Why a slot is a value: it is taken when a socket (or a Socket.IO namespace connection) opens
//! and given back when that value is dropped, whichever way the socket ends, so a count can
//! never leak. Both transports refuse the one-too-many the same way ([`TooManyConnections`]).

use std::collections::HashMap;
use std::sync::Arc;

use chat_core::ErrorCode;
use parking_lot::Mutex;

/// The open-socket count of every user with at least one.
pub(crate) struct ConnectionSlots {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    limit: usize,
}

/// The refusal of a socket beyond the user's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyConnections;

impl TooManyConnections {
    /// The contract's code of the refusal.
    pub(crate) const CODE: ErrorCode = ErrorCode::RateLimited;
    /// Its message.
    pub(crate) const MESSAGE: &'static str = "too many open connections for this user";
}

impl ConnectionSlots {
    /// Slots for at most `limit` sockets per user.
    pub(crate) fn new(limit: usize) -> Self {
        ConnectionSlots {
            counts: Arc::new(Mutex::new(HashMap::new())),
            limit,
        }
    }

    /// Takes one of the user's slots, or refuses when they have all in use.
    pub(crate) fn take(&self, user: &str) -> Result<Slot, TooManyConnections> {
        let mut map = self.counts.lock();
        let n = map.entry(user.to_string()).or_insert(0);
        if *n >= self.limit {
            return Err(TooManyConnections);
        }
        *n += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            user: user.to_string(),
        })
    }
}

/// A socket's place in its user's count; given back on drop.
pub(crate) struct Slot {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.counts.lock();
        if let Some(n) = map.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_user_and_given_back_on_drop() {
        let slots = ConnectionSlots::new(2);
        let a = slots.take("u1").unwrap();
        let b = slots.take("u1").unwrap();
        assert_eq!(slots.take("u1").err(), Some(TooManyConnections));
        let other = slots.take("u2").unwrap();
        drop(a);
        let c = slots.take("u1").unwrap();
        drop((b, c, other));
        assert!(slots.counts.lock().is_empty());
    }
}
