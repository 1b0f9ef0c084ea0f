//! Connections: what a socket, a tab, a device or an FFI listener holds to act in rooms.
//!
//! [`Engine::connect`] gives a [`Connection`] (a cloneable handle to join, leave, type and close)
//! and its [`Events`] (the stream to read). Presence counts connections; a room counts the
//! connections that joined it. Dropping every clone of a connection closes it in the background.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::Serialize;

use super::Engine;
use crate::error::Result;
use crate::event::Event;
use crate::model::{Actor, User};
use crate::stream::{Events, Feed, StreamShared};

/// What joining a room answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    /// The course.
    pub course_id: String,
    /// Its online participants.
    pub users: Vec<User>,
    /// The seq the room's live events follow: every change up to it was published before the
    /// connection joined (and replayed to it, when resuming).
    pub head_seq: u64,
    /// The store's epoch ([`Store::epoch`](crate::Store::epoch)): a client resuming later gives
    /// it back with its seq.
    pub epoch: String,
    /// Only when resuming: whether every change after the client's seq is replayed. `false` when
    /// the seq belongs to another epoch or lies beyond the course's head: nothing is replayed and
    /// the client reloads the history instead (never a partial replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
}

/// Where a client that reconnects left off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    /// The highest seq it saw of the course.
    pub since_seq: u64,
    /// The epoch its seq belongs to, when it knows it (from an earlier [`Joined`]).
    pub epoch: Option<String>,
}

/// One open connection of a user (a socket, a tab, a device, an FFI listener).
#[derive(Clone)]
pub struct Connection {
    inner: Arc<ConnInner>,
}

pub(super) struct ConnInner {
    pub(super) engine: Engine,
    pub(super) actor: Actor,
    pub(super) id: u64,
    /// Counts for presence (false for plain subscriptions).
    pub(super) presence: bool,
    pub(super) stream: Arc<StreamShared>,
    pub(super) joined: Mutex<HashSet<String>>,
    /// Joined courses this connection moderates (receives `message-flagged` in).
    pub(super) moderating: Mutex<HashSet<String>>,
    pub(super) closed: AtomicBool,
}

impl Connection {
    pub(super) fn open(engine: Engine, actor: Actor, id: u64, presence: bool) -> (Self, Events) {
        let stream = StreamShared::new(engine.config().subscriber_queue);
        let inner = Arc::new(ConnInner {
            engine: engine.clone(),
            actor,
            id,
            presence,
            stream: stream.clone(),
            joined: Mutex::new(HashSet::new()),
            moderating: Mutex::new(HashSet::new()),
            closed: AtomicBool::new(false),
        });
        let feed = Arc::new(ConnFeed {
            engine,
            conn: Arc::downgrade(&inner),
        });
        let events = Events::new(stream, feed);
        (Connection { inner }, events)
    }

    pub(super) fn stream(&self) -> Arc<StreamShared> {
        self.inner.stream.clone()
    }

    /// Who this connection acts for.
    pub fn actor(&self) -> &Actor {
        &self.inner.actor
    }

    /// The engine this connection belongs to (transports call its operations with
    /// [`actor`](Self::actor)).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// This connection's id (unique in the engine).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Joins a course room: its events start flowing to [`Events`]. With `since_seq`, every
    /// message change after that seq is replayed first, in order. The joiner receives
    /// `online-users`; the room gets `user-joined` if this is the user's first connection in it.
    /// Returns the online users. ([`resume`](Self::resume) says more.)
    pub async fn join(&self, course_id: &str, since_seq: Option<u64>) -> Result<Vec<User>> {
        let resume = since_seq.map(|since_seq| Resume {
            since_seq,
            epoch: None,
        });
        Ok(self.resume(course_id, resume).await?.users)
    }

    /// Joins a course room like [`join`](Self::join), resuming where the client left off when
    /// given: answers the online users, the seq live events follow, the store's epoch and, when
    /// resuming, whether the replay covers everything after the client's seq (see [`Joined`]).
    pub async fn resume(&self, course_id: &str, resume: Option<Resume>) -> Result<Joined> {
        self.inner.engine.join(&self.inner, course_id, resume).await
    }

    /// Leaves a course room (`user-left` when it was the user's last connection in it).
    pub async fn leave(&self, course_id: &str) -> Result<()> {
        self.inner.engine.leave(&self.inner, course_id).await
    }

    /// Starts or stops a typing indicator in a course.
    pub async fn typing(&self, course_id: &str, is_typing: bool) -> Result<()> {
        self.inner
            .engine
            .typing(&self.inner.actor, course_id, is_typing)
            .await
    }

    /// Courses this connection has joined.
    pub fn joined(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.joined.lock().iter().cloned().collect();
        v.sort();
        v
    }

    /// Closes the connection: leaves every room, updates presence, ends [`Events`]. Dropping
    /// every clone of the connection does the same in the background.
    pub async fn close(&self) {
        if !self.inner.closed.swap(true, Ordering::SeqCst) {
            self.inner.engine.disconnect(&self.inner).await;
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.inner.id)
            .field("user", &self.inner.actor.id)
            .finish_non_exhaustive()
    }
}

impl Drop for ConnInner {
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.stream.close();
        let engine = self.engine.clone();
        let snapshot = Detached {
            actor: self.actor.clone(),
            id: self.id,
            presence: self.presence,
            stream: self.stream.clone(),
            joined: std::mem::take(&mut *self.joined.lock()),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { engine.disconnect_detached(snapshot).await });
            }
            Err(_) => engine.disconnect_now(snapshot),
        }
    }
}

/// What is left of a dropped connection, to clean up after it.
pub(super) struct Detached {
    pub(super) actor: Actor,
    pub(super) id: u64,
    pub(super) presence: bool,
    pub(super) stream: Arc<StreamShared>,
    pub(super) joined: HashSet<String>,
}

/// What a connection's [`Events`] asks of the engine.
struct ConnFeed {
    engine: Engine,
    conn: Weak<ConnInner>,
}

#[async_trait]
impl Feed for ConnFeed {
    async fn replay(
        &self,
        course: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.engine.replay(course, after, upto, limit).await
    }

    fn resubscribe(&self, stream: &Arc<StreamShared>, course: &str) {
        let Some(conn) = self.conn.upgrade() else {
            return;
        };
        let user = conn.presence.then(|| conn.actor.id.clone());
        let moderator = conn.moderating.lock().contains(course);
        self.engine
            .resubscribe(stream, course, conn.id, user, moderator);
    }
}
