//! Engine.IO sessions: one per `sid`, whatever transport carries it, and every live one by sid.
//!
//! A [`Session`] is what the transports share with its driver ([`super::driver`]):
//! - one bounded **outgoing queue** of encoded Engine.IO packets (and, on a WebSocket, the pong
//!   and close frames its reader owes the client). Its receiver is behind an async mutex: a
//!   long-poll `GET` holds it while it waits, and after an upgrade the WebSocket writer holds it
//!   for good, so packets queued during the switch are neither lost nor duplicated. A client that
//!   reads nothing for `write_timeout` while it is full is disconnected: it never stalls a room.
//! - one bounded **incoming queue** of decoded packets, fed by `POST` bodies and WebSocket
//!   messages, read by the driver one at a time, so a client's messages apply in the order sent;
//! - the transport state (`Polling` → `Upgrading` → `WebSocket`), a [`Notify`] to end a pending
//!   long-poll with a noop when an upgrade starts, and a [`CancellationToken`] that closes it all.
//!
//! Why apart from the driver and the transports: this is the state they share, and the only
//! part of the engine the layer above touches ([`Session::send`], [`Session::send_paced`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, Notify};
use tokio_util::sync::CancellationToken;

use super::packet;
use crate::frames::{Control, Outgoing};

/// Incoming packets queued per session before `POST`s and WebSocket reads wait.
const INBOUND_QUEUE: usize = 64;

/// The transport a session is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    /// HTTP long-polling.
    Polling,
    /// Polling, with a WebSocket probe answered: long-polls get a noop until the client says `5`.
    Upgrading,
    /// WebSocket (upgraded, or from the start).
    WebSocket,
}

/// A packet from the client, decoded by the transport.
#[derive(Debug)]
pub(super) enum Incoming {
    /// `1`.
    Close,
    /// `2…` (a v4 client does not ping, but the answer is cheap).
    Ping(String),
    /// `3`.
    Pong,
    /// `4…`: a message for the layer above.
    Message(String),
    /// Binary data.
    Binary,
}

impl Incoming {
    /// The owned form of a decoded packet; `None` for what the driver has nothing to do with.
    pub(super) fn from_packet(p: packet::EioPacket<'_>) -> Option<Incoming> {
        use packet::EioPacket as P;
        match p {
            P::Close => Some(Incoming::Close),
            P::Ping(d) => Some(Incoming::Ping(d.to_string())),
            P::Pong(_) => Some(Incoming::Pong),
            P::Message(m) => Some(Incoming::Message(m.to_string())),
            P::Binary => Some(Incoming::Binary),
            P::Open(_) | P::Upgrade | P::Noop => None,
        }
    }
}

/// One Engine.IO session: what its transports and its driver share.
pub(crate) struct Session {
    sid: String,
    out_tx: flume::Sender<Outgoing>,
    out_rx: Arc<AsyncMutex<flume::Receiver<Outgoing>>>,
    inbound: flume::Sender<Vec<Incoming>>,
    transport: parking_lot::Mutex<Transport>,
    kick: Notify,
    closed: CancellationToken,
    /// Set when the client sent a close packet: the sid is unknown from then on, while the
    /// driver finishes the packets that came before it.
    gone: std::sync::atomic::AtomicBool,
    /// Set once a WebSocket writer holds the outgoing queue for good: the driver may then hand
    /// it the handler's feed.
    writer_attached: std::sync::atomic::AtomicBool,
}

impl Session {
    /// A session on `transport` with room for `queue` outgoing packets, and the receiving end of
    /// its incoming queue (the driver's).
    fn new(
        sid: String,
        transport: Transport,
        queue: usize,
    ) -> (Arc<Session>, flume::Receiver<Vec<Incoming>>) {
        // flume rather than tokio's mpsc: its queues allocate as they fill, where tokio's
        // allocate a block of 32 slots and a cache-padded channel up front (2.6 KiB for the
        // two of an idle session).
        let (out_tx, out_rx) = flume::bounded(queue);
        let (in_tx, in_rx) = flume::bounded(INBOUND_QUEUE);
        let session = Arc::new(Session {
            sid,
            out_tx,
            out_rx: Arc::new(AsyncMutex::new(out_rx)),
            inbound: in_tx,
            transport: parking_lot::Mutex::new(transport),
            kick: Notify::new(),
            closed: CancellationToken::new(),
            gone: std::sync::atomic::AtomicBool::new(false),
            writer_attached: std::sync::atomic::AtomicBool::new(false),
        });
        (session, in_rx)
    }

    /// The session id.
    pub(crate) fn sid(&self) -> &str {
        &self.sid
    }

    /// The transport now.
    pub(super) fn transport(&self) -> Transport {
        *self.transport.lock()
    }

    /// Moves from `from` to `to`; false (and no change) when the session is not on `from`.
    pub(super) fn switch(&self, from: Transport, to: Transport) -> bool {
        let mut t = self.transport.lock();
        if *t != from {
            return false;
        }
        *t = to;
        drop(t);
        if to == Transport::Upgrading {
            self.kick.notify_waiters();
        }
        true
    }

    /// Woken when an upgrade starts (a pending long-poll answers with a noop).
    pub(super) fn kicked(&self) -> tokio::sync::futures::Notified<'_> {
        self.kick.notified()
    }

    /// The outgoing queue's receiver (held by a long-poll, or by the WebSocket writer).
    pub(super) fn outgoing(&self) -> Arc<AsyncMutex<flume::Receiver<Outgoing>>> {
        self.out_rx.clone()
    }

    /// Queues packets from the client for the driver; false when the session is gone.
    pub(super) async fn deliver(&self, packets: Vec<Incoming>) -> bool {
        if packets.is_empty() {
            return !self.closed.is_cancelled();
        }
        tokio::select! {
            r = self.inbound.send_async(packets) => r.is_ok(),
            _ = self.closed.cancelled() => false,
        }
    }

    /// A WebSocket writer has taken the outgoing queue for good.
    pub(super) fn attach_writer(&self) {
        self.writer_attached
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether a WebSocket writer holds the outgoing queue for good.
    pub(super) fn writer_attached(&self) -> bool {
        self.writer_attached
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Queues a handler's feed for the WebSocket writer, behind what is queued already (so it
    /// is read after the messages the driver forwarded from it); false when the session is gone.
    pub(super) async fn hand_over(
        &self,
        feed: Box<dyn std::any::Any + Send>,
        timeout: Duration,
    ) -> bool {
        match self.out_tx.try_send(Outgoing::Handover(feed)) {
            Ok(()) => true,
            Err(flume::TrySendError::Disconnected(_)) => false,
            Err(flume::TrySendError::Full(item)) => {
                Box::pin(self.wait_for_room(item, timeout)).await
            }
        }
    }

    /// Queues a message (`4…`) for the client; false when the queue is full (the session is then
    /// closed) or the session is gone.
    pub(crate) fn send(&self, text: String) -> bool {
        self.push(packet::message(text))
    }

    /// Queues a message, waiting up to `timeout` for room: a burst (a long replay) is paced by the
    /// client's reading, while a client that reads nothing for that long is disconnected. What
    /// feeds the caller should never wait on this: keep it bounded, and let it catch up by itself.
    pub(crate) async fn send_paced(&self, text: String, timeout: Duration) -> bool {
        let text = match self.out_tx.try_send(Outgoing::Text(packet::message(text))) {
            Ok(()) => return true,
            Err(flume::TrySendError::Disconnected(_)) => return false,
            Err(flume::TrySendError::Full(text)) => text,
        };
        // Boxed: waiting is rare, and its timer would otherwise be part of every session's
        // driver for the session's life.
        Box::pin(self.wait_for_room(text, timeout)).await
    }

    async fn wait_for_room(&self, text: Outgoing, timeout: Duration) -> bool {
        match tokio::time::timeout(timeout, self.out_tx.send_async(text)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::info!(sid = %self.sid, "Engine.IO client stopped reading, disconnecting it");
                self.close();
                false
            }
        }
    }

    /// Queues an Engine.IO packet for the client; false when the queue is full (the session is
    /// then closed) or the session is gone.
    pub(super) fn push(&self, text: String) -> bool {
        match self.out_tx.try_send(Outgoing::Text(text)) {
            Ok(()) => true,
            Err(flume::TrySendError::Full(_)) => {
                tracing::info!(sid = %self.sid, "Engine.IO queue full, disconnecting a slow client");
                self.close();
                false
            }
            Err(flume::TrySendError::Disconnected(_)) => false,
        }
    }

    /// Queues a control frame for the WebSocket writer, waiting for room; false when the
    /// session is gone.
    pub(super) async fn control(&self, frame: Control) -> bool {
        self.out_tx
            .send_async(Outgoing::Control(frame))
            .await
            .is_ok()
    }

    /// Queues a control frame if there is room.
    pub(super) fn try_control(&self, frame: Control) {
        let _ = self.out_tx.try_send(Outgoing::Control(frame));
    }

    /// Makes the sid unknown to new requests (the client said it is closing).
    pub(super) fn mark_gone(&self) {
        self.gone.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Closes the session (idempotent): transports stop, the driver cleans up.
    pub(crate) fn close(&self) {
        self.closed.cancel();
    }

    /// Cancelled once the session is closed.
    pub(super) fn closed(&self) -> &CancellationToken {
        &self.closed
    }
}

/// Every live session, by sid.
#[derive(Default)]
pub(super) struct Registry {
    sessions: parking_lot::Mutex<HashMap<String, Arc<Session>>>,
}

impl Registry {
    /// A live session by sid (a closed one is unknown at once, even before its driver has
    /// removed it).
    pub(super) fn get(&self, sid: &str) -> Option<Arc<Session>> {
        self.sessions
            .lock()
            .get(sid)
            .filter(|s| {
                !s.closed.is_cancelled() && !s.gone.load(std::sync::atomic::Ordering::SeqCst)
            })
            .cloned()
    }

    /// A new session under a fresh random sid, and its incoming queue's receiver; `None` when
    /// `max` sessions are live already.
    pub(super) fn insert(
        &self,
        transport: Transport,
        queue: usize,
        max: usize,
    ) -> Option<(Arc<Session>, flume::Receiver<Vec<Incoming>>)> {
        let mut map = self.sessions.lock();
        if map.len() >= max {
            return None;
        }
        let sid = loop {
            let sid = random_id();
            if !map.contains_key(&sid) {
                break sid;
            }
        };
        let (session, inbound) = Session::new(sid.clone(), transport, queue);
        map.insert(sid, session.clone());
        Some((session, inbound))
    }

    /// Forgets a session (its driver, once it has ended).
    pub(super) fn remove(&self, sid: &str) {
        self.sessions.lock().remove(sid);
    }
}

/// A random id: 16 bytes as 32 hex characters.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: fall back on the clock and a counter (still unique, less unguessable).
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&(t as u64).to_le_bytes());
        bytes[8..].copy_from_slice(&n.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
