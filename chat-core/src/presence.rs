//! Presence: who is online, counted by open connections.
//!
//! A user is online while at least one of their connections is open (tabs and devices count once)
//! or while their own `set_status(true)` says so; `set_status` overrides until their next
//! connection opens or closes. `lastSeen` is set when the last connection closes.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::model::Timestamp;

#[derive(Default)]
struct Entry {
    connections: usize,
    forced: Option<bool>,
    last_seen: Option<Timestamp>,
}

impl Entry {
    fn online(&self) -> bool {
        self.forced.unwrap_or(self.connections > 0)
    }
}

#[derive(Default)]
pub(crate) struct Presence {
    users: Mutex<HashMap<String, Entry>>,
}

/// A change of a user's online state.
pub(crate) struct Change {
    pub(crate) now_online: bool,
}

impl Presence {
    /// A connection opened. Returns the change if the user came online.
    pub(crate) fn connect(&self, user: &str) -> Option<Change> {
        let mut users = self.users.lock();
        let e = users.entry(user.to_string()).or_default();
        let before = e.online();
        e.connections += 1;
        e.forced = None;
        (!before).then_some(Change { now_online: true })
    }

    /// A connection closed. Returns the change if the user went offline.
    pub(crate) fn disconnect(&self, user: &str, now: Timestamp) -> Option<Change> {
        let mut users = self.users.lock();
        let e = users.entry(user.to_string()).or_default();
        let before = e.online();
        e.connections = e.connections.saturating_sub(1);
        e.forced = None;
        if e.connections == 0 {
            e.last_seen = Some(now);
        }
        (before && !e.online()).then_some(Change { now_online: false })
    }

    /// The user's own override. Returns the change if their state changed.
    pub(crate) fn force(&self, user: &str, online: bool, now: Timestamp) -> Option<Change> {
        let mut users = self.users.lock();
        let e = users.entry(user.to_string()).or_default();
        let before = e.online();
        e.forced = Some(online);
        if !online {
            e.last_seen = Some(now);
        }
        (before != online).then_some(Change { now_online: online })
    }

    /// Whether the user is online, and their last-seen time if known here.
    pub(crate) fn get(&self, user: &str) -> (bool, Option<Timestamp>) {
        match self.users.lock().get(user) {
            Some(e) => (e.online(), e.last_seen),
            None => (false, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_tabs_count_once() {
        let p = Presence::default();
        let t = Timestamp::now();
        assert!(p.connect("u").is_some());
        assert!(p.connect("u").is_none(), "second tab changes nothing");
        assert!(p.disconnect("u", t).is_none(), "one tab left: still online");
        assert!(p.get("u").0);
        let c = p.disconnect("u", t).expect("last tab closes: offline");
        assert!(!c.now_online);
        assert_eq!(p.get("u"), (false, Some(t)));
    }

    #[test]
    fn status_overrides_until_next_connection_change() {
        let p = Presence::default();
        let t = Timestamp::now();
        p.connect("u");
        assert!(p.force("u", false, t).is_some());
        assert!(!p.get("u").0);
        assert!(
            p.connect("u").is_some(),
            "a new connection brings them back"
        );
        assert!(p.get("u").0);
    }
}
