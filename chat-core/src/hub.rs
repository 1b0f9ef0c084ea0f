//! A course's fan-out: who listens, who is in the room, and the order of its events.
//!
//! Message changes are published strictly in seq order: a writer that finished its durable write
//! for seq 7 before the writer of seq 6 waits in `pending` until 6 is out. Subscribers have
//! bounded queues; one that is full is removed and told it lagged (its [`Events`](crate::Events)
//! stream then catches up from the store), so a slow reader never blocks a send or its neighbours.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::connection::{PushError, StreamShared};
use crate::error::Result;
use crate::event::Envelope;
use crate::plugin::Plugins;
use crate::store::Store;

struct Sub {
    id: u64,
    user: Option<String>,
    sink: Arc<StreamShared>,
}

struct State {
    /// The next seq to publish; everything below is out (and durable).
    next_seq: u64,
    /// Durable changes waiting for an earlier seq to be published first.
    pending: BTreeMap<u64, Arc<Envelope>>,
    subs: Vec<Sub>,
    /// Users in the room and how many of their connections joined it.
    members: HashMap<String, usize>,
}

pub(crate) struct Hub {
    course_id: String,
    ready: OnceCell<()>,
    state: Mutex<State>,
    plugins: Arc<Plugins>,
}

impl Hub {
    pub(crate) fn new(course_id: &str, plugins: Arc<Plugins>) -> Self {
        Hub {
            course_id: course_id.to_string(),
            ready: OnceCell::new(),
            state: Mutex::new(State {
                next_seq: 1,
                pending: BTreeMap::new(),
                subs: Vec::new(),
                members: HashMap::new(),
            }),
            plugins,
        }
    }

    /// Loads where the course's seq stands. Called before any write or subscription to the course
    /// through this engine, so nothing is in flight when it runs.
    pub(crate) async fn ready(&self, store: &dyn Store) -> Result<()> {
        self.ready
            .get_or_try_init(|| async {
                let last = store.last_seq(&self.course_id).await?;
                let mut st = self.state.lock();
                st.next_seq = st.next_seq.max(last + 1);
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Adds a subscriber. `registered` runs under the hub's lock with the highest published seq,
    /// before any live event can reach the subscriber.
    pub(crate) fn subscribe(
        &self,
        id: u64,
        user: Option<&str>,
        sink: Arc<StreamShared>,
        registered: impl FnOnce(u64),
    ) {
        let mut st = self.state.lock();
        st.subs.retain(|s| s.id != id);
        registered(st.next_seq - 1);
        st.subs.push(Sub {
            id,
            user: user.map(str::to_string),
            sink,
        });
    }

    /// The highest seq published (every change up to it is durable and out).
    pub(crate) fn published(&self) -> u64 {
        self.state.lock().next_seq - 1
    }

    pub(crate) fn unsubscribe(&self, id: u64) {
        self.state.lock().subs.retain(|s| s.id != id);
    }

    /// Removes every subscriber acting for `user` (they were unenrolled).
    pub(crate) fn kick(&self, user: &str) -> Vec<Arc<StreamShared>> {
        let mut st = self.state.lock();
        st.members.remove(user);
        let (gone, kept): (Vec<Sub>, Vec<Sub>) = st
            .subs
            .drain(..)
            .partition(|s| s.user.as_deref() == Some(user));
        st.subs = kept;
        gone.into_iter().map(|s| s.sink).collect()
    }

    /// A user's connection joined the room; true when it is their first.
    pub(crate) fn add_member(&self, user: &str) -> bool {
        let mut st = self.state.lock();
        let n = st.members.entry(user.to_string()).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// A user's connection left the room; true when it was their last.
    pub(crate) fn remove_member(&self, user: &str) -> bool {
        let mut st = self.state.lock();
        match st.members.get_mut(user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                st.members.remove(user);
                true
            }
            None => false,
        }
    }

    pub(crate) fn has_listeners(&self) -> bool {
        let st = self.state.lock();
        !st.subs.is_empty() || !st.members.is_empty()
    }

    /// Publishes the durable change `seq` in seq order.
    pub(crate) fn publish_seq(&self, seq: u64, env: Arc<Envelope>) {
        let mut st = self.state.lock();
        if seq < st.next_seq {
            // Only after a store error reset the order: late, but never lost.
            self.deliver(&mut st, &env);
            return;
        }
        st.pending.insert(seq, env);
        while let Some(env) = {
            let next = st.next_seq;
            st.pending.remove(&next)
        } {
            st.next_seq += 1;
            self.deliver(&mut st, &env);
        }
    }

    /// Publishes an ephemeral event (typing, presence, receipt) at once.
    pub(crate) fn publish(&self, env: Arc<Envelope>) {
        let mut st = self.state.lock();
        self.deliver(&mut st, &env);
    }

    /// After a failed write, a seq may have been allocated that will never be published: release
    /// what waits and continue after the store's last seq.
    pub(crate) fn resync_order(&self, store_last_seq: u64) {
        let mut st = self.state.lock();
        let waiting = std::mem::take(&mut st.pending);
        for (seq, env) in waiting {
            st.next_seq = st.next_seq.max(seq + 1);
            self.deliver(&mut st, &env);
        }
        st.next_seq = st.next_seq.max(store_last_seq + 1);
    }

    fn deliver(&self, st: &mut State, env: &Arc<Envelope>) {
        self.plugins.notify(env);
        let course = &self.course_id;
        st.subs.retain(|sub| {
            if !env.is_for(sub.user.as_deref()) {
                return true;
            }
            match sub.sink.try_push(env.clone()) {
                Ok(()) => true,
                Err(PushError::Full) => {
                    sub.sink.lagged(course);
                    false
                }
                Err(PushError::Gone) => false,
            }
        });
    }
}
