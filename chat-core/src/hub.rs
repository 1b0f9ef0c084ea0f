//! A course's fan-out on this node: who listens, who is in the room, and the order of its events.
//!
//! Message changes are published strictly in seq order. A durable change waits in `pending`
//! until every earlier seq is out; the hub also keeps `known`, the highest seq it knows to be
//! durable (from this node's writes and from other nodes' notices). When `known` runs ahead of
//! what was published — another node wrote the missing seqs, a notice was lost, or a local write
//! is slow to publish — the engine fills the gap from the store ([`Hub::gap`]): a store commits a
//! course's seqs in order, so everything up to a durable seq is durable and can be read.
//!
//! Each seq goes out once: a copy that arrives after its seq was published (from a fill, then
//! from its writer, or the reverse) is dropped. Plugins see the events of this node's own writes
//! and its own ephemeral events, each once: a local change that a fill published first is handed
//! to them when its writer publishes it.
//!
//! Subscribers have bounded queues; one that is full is removed and told it lagged (its
//! [`Events`](crate::Events) stream then catches up from the store), so a slow reader never blocks
//! a send or its neighbours.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::error::Result;
use crate::event::Envelope;
use crate::plugin::Plugins;
use crate::store::Store;
use crate::stream::{PushError, StreamShared};

struct Sub {
    id: u64,
    user: Option<String>,
    /// Receives moderator-only events (an instructor of the course, or an admin).
    moderator: bool,
    sink: Arc<StreamShared>,
}

/// Where a change to publish comes from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Origin {
    /// A write of this node (its plugins see it).
    Local,
    /// Read from the store to fill a gap, or told by another node.
    Store,
}

struct State {
    /// The next seq to publish; everything below is out (and durable).
    next_seq: u64,
    /// The highest seq known to be durable.
    known: u64,
    /// Durable changes waiting for an earlier seq to be published first.
    pending: BTreeMap<u64, (Arc<Envelope>, Origin)>,
    subs: Vec<Sub>,
    /// Users in the room through this node, and how many of their connections joined it.
    members: HashMap<String, usize>,
}

pub(crate) struct Hub {
    course_id: String,
    ready: OnceCell<()>,
    state: Mutex<State>,
    plugins: Arc<Plugins>,
    /// A fill from the store is scheduled or running.
    filling: AtomicBool,
}

impl Hub {
    pub(crate) fn new(course_id: &str, plugins: Arc<Plugins>) -> Self {
        Hub {
            course_id: course_id.to_string(),
            ready: OnceCell::new(),
            state: Mutex::new(State {
                next_seq: 1,
                known: 0,
                pending: BTreeMap::new(),
                subs: Vec::new(),
                members: HashMap::new(),
            }),
            plugins,
            filling: AtomicBool::new(false),
        }
    }

    pub(crate) fn course_id(&self) -> &str {
        &self.course_id
    }

    /// Loads where the course's seq stands. Called before any write or subscription to the course
    /// through this engine, so nothing of this node is in flight when it runs.
    pub(crate) async fn ready(&self, store: &dyn Store) -> Result<()> {
        self.ready
            .get_or_try_init(|| async {
                let last = store.last_seq(&self.course_id).await?;
                let mut st = self.state.lock();
                st.next_seq = st.next_seq.max(last + 1);
                st.known = st.known.max(last);
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
        moderator: bool,
        sink: Arc<StreamShared>,
        registered: impl FnOnce(u64),
    ) {
        let mut st = self.state.lock();
        st.subs.retain(|s| s.id != id);
        registered(st.next_seq - 1);
        st.subs.push(Sub {
            id,
            user: user.map(str::to_string),
            moderator,
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

    /// A user's connection on this node joined the room; true when it is their first here.
    pub(crate) fn add_member(&self, user: &str) -> bool {
        let mut st = self.state.lock();
        let n = st.members.entry(user.to_string()).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// A user's connection on this node left the room; true when it was their last here.
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

    /// Publishes the durable change `seq` in seq order. Returns whether a gap remains (a seq
    /// below one known to be durable is not out yet).
    pub(crate) fn publish_seq(&self, seq: u64, env: Arc<Envelope>, origin: Origin) -> bool {
        let mut st = self.state.lock();
        st.known = st.known.max(seq);
        if seq < st.next_seq {
            // Already out (a fill read it from the store first): its writer's plugins have not
            // seen it yet.
            if origin == Origin::Local {
                self.plugins.notify(&env);
            }
            return gap_in(&st).is_some();
        }
        match st.pending.get(&seq) {
            // Keep the writer's copy: it is the one the plugins must see.
            Some((_, Origin::Local)) if origin == Origin::Store => {}
            _ => {
                st.pending.insert(seq, (env, origin));
            }
        }
        self.drain(&mut st);
        gap_in(&st).is_some()
    }

    /// Publishes what a fill read from the store: the store is the truth, so a seq it does not
    /// hold below `seq` (a write that failed after taking it) is skipped instead of waited for.
    pub(crate) fn publish_filled(&self, seq: u64, env: Arc<Envelope>) {
        let mut st = self.state.lock();
        if seq > st.next_seq {
            st.next_seq = seq;
            let skipped: Vec<u64> = st.pending.range(..seq).map(|(s, _)| *s).collect();
            for s in skipped {
                if let Some((env, origin)) = st.pending.remove(&s) {
                    self.deliver(&mut st, &env, origin);
                }
            }
        }
        drop(st);
        self.publish_seq(seq, env, Origin::Store);
    }

    /// The store holds nothing up to `upto` beyond what was published: continue after it.
    pub(crate) fn skip_to(&self, upto: u64) {
        let mut st = self.state.lock();
        if upto >= st.next_seq {
            st.next_seq = upto + 1;
            self.drain(&mut st);
        }
    }

    /// The store's head is `head`: a known seq above it came from a wrong notice (another
    /// deployment's, say) and is forgotten, so nothing is skipped for it.
    pub(crate) fn distrust(&self, head: u64) {
        let mut st = self.state.lock();
        let top_pending = st.pending.keys().next_back().copied().unwrap_or(0);
        st.known = head.max(top_pending).max(st.next_seq - 1);
        self.drain(&mut st);
    }

    /// Another node (or this node's failed write) says `seq` is durable. Returns whether there
    /// is now a gap to fill.
    pub(crate) fn notify(&self, seq: u64) -> bool {
        let mut st = self.state.lock();
        st.known = st.known.max(seq);
        gap_in(&st).is_some()
    }

    /// The seqs known to be durable but not published: `(after, upto]`.
    pub(crate) fn gap(&self) -> Option<(u64, u64)> {
        gap_in(&self.state.lock())
    }

    /// Claims the right to run a fill; false if one is already scheduled.
    pub(crate) fn start_filling(&self) -> bool {
        !self.filling.swap(true, Ordering::AcqRel)
    }

    /// Ends a fill; true if a gap appeared meanwhile and the caller should fill again (it then
    /// holds the claim).
    pub(crate) fn stop_filling(&self) -> bool {
        self.filling.store(false, Ordering::Release);
        self.gap().is_some() && self.start_filling()
    }

    /// Publishes an ephemeral event (typing, presence, receipt) at once. `origin` says whether
    /// it was made on this node (plugins see it) or came from another.
    pub(crate) fn publish(&self, env: Arc<Envelope>, origin: Origin) {
        let mut st = self.state.lock();
        self.deliver(&mut st, &env, origin);
    }

    fn drain(&self, st: &mut State) {
        while let Some((env, origin)) = {
            let next = st.next_seq;
            st.pending.remove(&next)
        } {
            st.next_seq += 1;
            self.deliver(st, &env, origin);
        }
    }

    fn deliver(&self, st: &mut State, env: &Arc<Envelope>, origin: Origin) {
        if origin == Origin::Local {
            self.plugins.notify(env);
        }
        let course = &self.course_id;
        st.subs.retain(|sub| {
            if !env.is_for(sub.user.as_deref(), sub.moderator) {
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

fn gap_in(st: &State) -> Option<(u64, u64)> {
    let published = st.next_seq - 1;
    (st.known > published).then_some((published, st.known))
}
