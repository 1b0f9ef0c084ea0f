//! Event streams: what a socket (or an FFI listener) reads, in order.
//!
//! A connection's [`Events`] guarantees, per joined course, that message changes arrive in seq
//! order with no gap and no duplicate, including the replay requested with `since_seq` and the
//! catch-up after the subscriber lagged: both read the store up to the seq the hub had published
//! when the subscription was registered, and live events of that course are held back until the
//! replay is out. [`StreamShared`] is the half the hubs push into.
//!
//! The stream knows nothing of the engine: what it needs from it (the change log to replay, and a
//! new place in a room's fan-out after a lag) comes through the small [`Feed`] trait, so the
//! engine, the hubs and the streams depend on each other in one direction only.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use atomic_waker::AtomicWaker;
use parking_lot::Mutex;

use crate::error::Result;
use crate::event::{Envelope, Event, MessageDeleted, PinEvent, ReactionEvent};
use crate::store::ChangeKind;

/// What a stream needs from the engine.
#[async_trait]
pub(crate) trait Feed: Send + Sync + 'static {
    /// The course's log entries after `after` up to `upto`, at most `limit`, as events.
    async fn replay(&self, course: &str, after: u64, upto: u64, limit: usize)
        -> Result<Vec<Event>>;
    /// The course's hub dropped `stream` for being slow: subscribe it again, replaying from its
    /// cursor.
    fn resubscribe(&self, stream: &Arc<StreamShared>, course: &str);
}

/// How many log entries a replay reads at a time.
const REPLAY_CHUNK: usize = 256;

/// What a stream shares with the hubs feeding it.
pub(crate) struct StreamShared {
    /// Events delivered and not yet taken by the reader, at most `capacity`. A plain locked
    /// queue rather than a channel: a room's publish pushes to every member's queue, and this
    /// costs one uncontended lock and no allocation per delivery (and nothing while idle).
    queue: Mutex<Queue>,
    capacity: usize,
    state: Mutex<StreamState>,
    /// Whether `state` holds a replay job or a lag to handle (kept under the state's lock), so
    /// that a live event costs no look at it when there is none.
    work: AtomicBool,
    /// The reader waiting in [`Events::recv`], and whether it was woken since it last looked.
    waker: AtomicWaker,
    woken: AtomicBool,
    closed: AtomicBool,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Arc<Envelope>>,
    /// The reader ([`Events`]) is gone: hubs drop this subscriber.
    reader_gone: bool,
}

/// Why [`StreamShared::try_push`] did not queue an event.
pub(crate) enum PushError {
    /// The queue holds `capacity` events: the subscriber is too slow.
    Full,
    /// Nobody reads this stream any more.
    Gone,
}

#[derive(Default)]
struct StreamState {
    /// Joined courses and the highest seq delivered in each.
    cursors: HashMap<String, u64>,
    /// Replays to run before live events of the course: `(after, upto]`.
    jobs: HashMap<String, (u64, u64)>,
    /// Courses whose hub dropped us for being slow.
    lagged: HashSet<String>,
}

impl StreamShared {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(StreamShared {
            queue: Mutex::new(Queue::default()),
            capacity: capacity.max(1),
            state: Mutex::new(StreamState::default()),
            work: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            woken: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        })
    }

    /// Queues an event for the reader, unless the queue is full or the reader gone.
    pub(crate) fn try_push(&self, env: Arc<Envelope>) -> std::result::Result<(), PushError> {
        let mut q = self.queue.lock();
        if q.reader_gone {
            return Err(PushError::Gone);
        }
        if q.items.len() >= self.capacity {
            return Err(PushError::Full);
        }
        q.items.push_back(env);
        drop(q);
        self.waker.wake();
        Ok(())
    }

    /// Moves every queued event to `into`; false when there was none.
    fn take_all(&self, into: &mut VecDeque<Arc<Envelope>>) -> bool {
        let mut q = self.queue.lock();
        if q.items.is_empty() {
            return false;
        }
        if into.is_empty() {
            std::mem::swap(into, &mut q.items);
        } else {
            into.extend(q.items.drain(..));
        }
        true
    }

    /// Wakes the reader so it looks at `state` (or notices the stream closed).
    fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.waker.wake();
    }

    pub(crate) fn lagged(&self, course: &str) {
        tracing::debug!(course, "a subscriber lagged: it catches up from the store");
        let mut st = self.state.lock();
        st.lagged.insert(course.to_string());
        self.work.store(true, Ordering::Release);
        drop(st);
        self.wake();
    }

    /// Starts following `course`: replay after `since` (if given) up to the published seq `hi`.
    pub(crate) fn follow(&self, course: &str, since: Option<u64>, hi: u64) {
        let mut st = self.state.lock();
        match since {
            Some(since) if since < hi => {
                st.jobs.insert(course.to_string(), (since, hi));
                st.cursors.insert(course.to_string(), since);
                self.work.store(true, Ordering::Release);
            }
            // Nothing to replay: deliver what follows `since` (a client may know of a seq that
            // is durable but not yet published here).
            Some(since) => {
                st.jobs.remove(course);
                st.cursors.insert(course.to_string(), since);
            }
            // Already following (a re-join without a replay): the cursor stands, nothing is lost.
            None => {
                st.cursors.entry(course.to_string()).or_insert(hi);
            }
        }
        drop(st);
        self.wake();
    }

    pub(crate) fn cursor(&self, course: &str) -> Option<u64> {
        self.state.lock().cursors.get(course).copied()
    }

    pub(crate) fn unfollow(&self, course: &str) {
        let mut st = self.state.lock();
        st.cursors.remove(course);
        st.jobs.remove(course);
        st.lagged.remove(course);
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Queues an event for this stream only (e.g. `online-users` to a joiner).
    pub(crate) fn push(&self, env: Arc<Envelope>) {
        if self.try_push(env).is_err() {
            tracing::debug!("stream full, direct event dropped");
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        // Hubs drop a subscriber whose reader is gone at their next publish.
        let mut q = self.stream.queue.lock();
        q.reader_gone = true;
        q.items.clear();
    }
}

/// The events of a connection, in order. Read with [`Events::recv`].
pub struct Events {
    feed: Arc<dyn Feed>,
    stream: Arc<StreamShared>,
    /// Events taken from the shared queue, not yet routed.
    incoming: VecDeque<Arc<Envelope>>,
    pending: VecDeque<Arc<Envelope>>,
    holdback: HashMap<String, Vec<Arc<Envelope>>>,
    /// What must live as long as the stream (a plain subscription's connection).
    keep_alive: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Events {
    pub(crate) fn new(stream: Arc<StreamShared>, feed: Arc<dyn Feed>) -> Self {
        Events {
            feed,
            stream,
            incoming: VecDeque::new(),
            pending: VecDeque::new(),
            holdback: HashMap::new(),
            keep_alive: None,
        }
    }

    /// Ties something's life (a plain subscription's connection, which has no other handle) to
    /// this stream.
    pub(crate) fn keep_alive(&mut self, handle: impl std::any::Any + Send + Sync) {
        self.keep_alive = Some(Box::new(handle));
    }

    /// The next event, or `None` once the connection is closed.
    pub async fn recv(&mut self) -> Option<Arc<Envelope>> {
        loop {
            if let Some(env) = self.pending.pop_front() {
                if self.accept(&env) {
                    return Some(env);
                }
                continue;
            }
            if self.stream.closed.load(Ordering::SeqCst) {
                return None;
            }
            let (job, lagged) = if self.stream.work.load(Ordering::Acquire) {
                let mut st = self.stream.state.lock();
                let job = st.jobs.iter().next().map(|(c, r)| (c.clone(), *r));
                // Replays first; a lag is handled once they are out (it resumes from the cursor
                // they leave).
                let lagged: Vec<String> = if job.is_none() {
                    st.lagged.drain().collect()
                } else {
                    Vec::new()
                };
                if job.is_none() {
                    self.stream.work.store(false, Ordering::Release);
                }
                (job, lagged)
            } else {
                (None, Vec::new())
            };
            if let Some((course, (after, upto))) = job {
                // Boxed: a replay is a large future that a waiting stream should not carry.
                Box::pin(self.run_job(&course, after, upto)).await;
                continue;
            }
            if !lagged.is_empty() {
                for course in lagged {
                    self.feed.resubscribe(&self.stream, &course);
                }
                continue;
            }
            if self.incoming.is_empty() {
                // Wait for events, or for a wake-up to look at the state again.
                let stream = &self.stream;
                let incoming = &mut self.incoming;
                std::future::poll_fn(|cx| {
                    if stream.take_all(incoming) || stream.woken.swap(false, Ordering::AcqRel) {
                        return Poll::Ready(());
                    }
                    stream.waker.register(cx.waker());
                    if stream.take_all(incoming) || stream.woken.swap(false, Ordering::AcqRel) {
                        return Poll::Ready(());
                    }
                    Poll::Pending
                })
                .await;
            }
            while let Some(env) = self.incoming.pop_front() {
                self.route(env);
            }
        }
    }

    /// The next event if one is ready now, without waiting: for a transport that writes what is
    /// ready in one batch. `None` does not mean the stream ended (that is [`recv`](Self::recv)'s
    /// `None`); replays and catch-ups run only in `recv`.
    pub fn try_recv(&mut self) -> Option<Arc<Envelope>> {
        loop {
            if let Some(env) = self.pending.pop_front() {
                if self.accept(&env) {
                    return Some(env);
                }
                continue;
            }
            if self.stream.closed.load(Ordering::SeqCst) || self.stream.work.load(Ordering::Acquire)
            {
                return None;
            }
            if self.incoming.is_empty() && !self.stream.take_all(&mut self.incoming) {
                return None;
            }
            while let Some(env) = self.incoming.pop_front() {
                self.route(env);
            }
        }
    }

    /// Like [`recv`](Self::recv) but gives up after `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<Arc<Envelope>> {
        tokio::time::timeout(timeout, self.recv())
            .await
            .ok()
            .flatten()
    }

    fn route(&mut self, env: Arc<Envelope>) {
        let course = env.event().course_id();
        let has_job = self.stream.work.load(Ordering::Acquire)
            && self.stream.state.lock().jobs.contains_key(course);
        if has_job {
            self.holdback
                .entry(course.to_string())
                .or_default()
                .push(env);
        } else {
            self.pending.push_back(env);
        }
    }

    /// Drops what is not for a joined course and message changes already delivered.
    fn accept(&mut self, env: &Arc<Envelope>) -> bool {
        let mut st = self.stream.state.lock();
        let course = env.event().course_id();
        let Some(cursor) = st.cursors.get_mut(course) else {
            return false;
        };
        match env.event().seq() {
            Some(seq) if seq <= *cursor => false,
            Some(seq) => {
                *cursor = seq;
                true
            }
            None => true,
        }
    }

    async fn run_job(&mut self, course: &str, after: u64, upto: u64) {
        match self.feed.replay(course, after, upto, REPLAY_CHUNK).await {
            Ok(events) => {
                let last = events.last().and_then(|e| e.seq());
                let mut st = self.stream.state.lock();
                let done = match last {
                    Some(last) if last < upto && events.len() == REPLAY_CHUNK => {
                        st.jobs.insert(course.to_string(), (last, upto));
                        false
                    }
                    _ => {
                        st.jobs.remove(course);
                        true
                    }
                };
                drop(st);
                self.pending.extend(events.into_iter().map(Envelope::new));
                if done {
                    if let Some(held) = self.holdback.remove(course) {
                        self.pending.extend(held);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(course, error = %e, "replay failed, retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Turns log entries into the events a live subscriber would have seen.
pub(crate) fn change_event(
    kind: ChangeKind,
    message: crate::model::Message,
    reaction: Option<crate::store::ReactionChange>,
) -> Event {
    match (kind, reaction) {
        (ChangeKind::New, _) => Event::NewMessage(message),
        (ChangeKind::Edited, _) => Event::MessageEdited(message),
        (ChangeKind::Deleted, _) => Event::MessageDeleted(MessageDeleted {
            message_id: message.id,
            course_id: message.course_id,
            seq: message.change_seq,
        }),
        (ChangeKind::Pinned, _) => Event::MessagePinned(PinEvent {
            message_id: message.id,
            course_id: message.course_id,
            pinned: message.pinned,
            pinned_by: message.pinned_by,
            pinned_at: message.pinned_at,
            seq: message.change_seq,
        }),
        (ChangeKind::Reacted, r) => {
            let r = r.unwrap_or(crate::store::ReactionChange {
                user_id: String::new(),
                emoji: String::new(),
                added: true,
            });
            let data = ReactionEvent {
                message_id: message.id,
                course_id: message.course_id,
                user_id: r.user_id,
                emoji: r.emoji,
                seq: message.change_seq,
            };
            if r.added {
                Event::ReactionAdded(data)
            } else {
                Event::ReactionRemoved(data)
            }
        }
    }
}
