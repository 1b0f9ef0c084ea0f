//! Engine.IO sessions: one per `sid`, whatever transport carries it, and the task that drives it.
//!
//! A [`Session`] is what the transports share with its driver:
//! - one bounded **outgoing queue** of encoded Engine.IO packets (and, on a WebSocket, the pong
//!   and close frames its reader owes the client). Its receiver is behind an async mutex: a
//!   long-poll `GET` holds it while it waits, and after an upgrade the WebSocket writer holds it
//!   for good, so packets queued during the switch are neither lost nor duplicated. A client that
//!   reads nothing for `write_timeout` while it is full is disconnected: it never stalls a room.
//! - one bounded **incoming queue** of decoded packets, fed by `POST` bodies and WebSocket
//!   messages, read by the driver one at a time, so a client's events apply in the order sent;
//! - the transport state (`Polling` → `Upgrading` → `WebSocket`), a [`Notify`] to end a pending
//!   long-poll with a noop when an upgrade starts, and a [`CancellationToken`] that closes it all.
//!
//! The **driver** ([`drive`]) owns the chat side: the Socket.IO namespace connection (auth, one of
//! the user's socket slots, the [`chat_core::Connection`]), events to [`crate::dispatch`],
//! acknowledgements, the connection's [`chat_core::Events`] to `42` packets, and the heartbeat
//! (a ping every `ping_interval`; no pong within `ping_timeout` closes the session). When it ends,
//! the chat connection is closed (presence updated) and the session leaves the registry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chat_core::{Connection, Error, ErrorCode, Events};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex as AsyncMutex, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::packet::{self, eio, SioKind};
use crate::dispatch::{dispatch, Answer};
use crate::frames::{Control, Outgoing};
use crate::slots::{Slot, TooManyConnections};
use crate::state::AppState;

/// How long a session may stay without a namespace connection (like Socket.IO's `connectTimeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);

/// Incoming packets queued per session before `POST`s and WebSocket reads wait.
const INBOUND_QUEUE: usize = 64;

/// The transport a session is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// HTTP long-polling.
    Polling,
    /// Polling, with a WebSocket probe answered: long-polls get a noop until the client says `5`.
    Upgrading,
    /// WebSocket (upgraded, or from the start).
    WebSocket,
}

/// A packet from the client, decoded by the transport.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// `1`.
    Close,
    /// `2…` (a v4 client does not ping, but the answer is cheap).
    Ping(String),
    /// `3`.
    Pong,
    /// `4…`: a Socket.IO packet.
    Message(String),
    /// Binary data.
    Binary,
}

impl Incoming {
    /// The owned form of a decoded packet; `None` for what the driver has nothing to do with.
    pub(crate) fn from_packet(p: packet::EioPacket<'_>) -> Option<Incoming> {
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

/// One Engine.IO session.
pub(crate) struct Session {
    sid: String,
    out_tx: mpsc::Sender<Outgoing>,
    out_rx: Arc<AsyncMutex<mpsc::Receiver<Outgoing>>>,
    inbound: mpsc::Sender<Vec<Incoming>>,
    transport: parking_lot::Mutex<Transport>,
    kick: Notify,
    closed: CancellationToken,
    /// Set when the client sent a close packet: the sid is unknown from then on, while the
    /// driver finishes the packets that came before it.
    gone: std::sync::atomic::AtomicBool,
}

impl Session {
    /// The session id.
    pub(crate) fn sid(&self) -> &str {
        &self.sid
    }

    /// The transport now.
    pub(crate) fn transport(&self) -> Transport {
        *self.transport.lock()
    }

    /// Moves from `from` to `to`; false (and no change) when the session is not on `from`.
    pub(crate) fn switch(&self, from: Transport, to: Transport) -> bool {
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
    pub(crate) fn kicked(&self) -> tokio::sync::futures::Notified<'_> {
        self.kick.notified()
    }

    /// The outgoing queue's receiver (held by a long-poll, or by the WebSocket writer).
    pub(crate) fn outgoing(&self) -> Arc<AsyncMutex<mpsc::Receiver<Outgoing>>> {
        self.out_rx.clone()
    }

    /// Queues packets from the client for the driver; false when the session is gone.
    pub(crate) async fn deliver(&self, packets: Vec<Incoming>) -> bool {
        if packets.is_empty() {
            return !self.closed.is_cancelled();
        }
        tokio::select! {
            r = self.inbound.send(packets) => r.is_ok(),
            _ = self.closed.cancelled() => false,
        }
    }

    /// Queues a packet for the client; false when the queue is full (the session is then closed)
    /// or the session is gone.
    fn push(&self, text: String) -> bool {
        match self.out_tx.try_send(Outgoing::Text(text)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::info!(sid = %self.sid, "Socket.IO queue full, disconnecting a slow client");
                self.close();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues an event, waiting up to `timeout` for room: a burst (a long `sinceSeq` replay) is
    /// paced by the client's reading, while a client that reads nothing for that long is
    /// disconnected. The room never waits: the engine's stream behind this one is bounded and
    /// catches up from the store.
    async fn push_paced(&self, text: String, timeout: Duration) -> bool {
        let text = match self.out_tx.try_send(Outgoing::Text(text)) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(text)) => text,
        };
        match tokio::time::timeout(timeout, self.out_tx.send(text)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::info!(sid = %self.sid, "Socket.IO client stopped reading, disconnecting it");
                self.close();
                false
            }
        }
    }

    /// Queues a control frame for the WebSocket writer, waiting for room; false when the
    /// session is gone.
    pub(crate) async fn control(&self, frame: Control) -> bool {
        self.out_tx.send(Outgoing::Control(frame)).await.is_ok()
    }

    /// Queues a control frame if there is room.
    pub(crate) fn try_control(&self, frame: Control) {
        let _ = self.out_tx.try_send(Outgoing::Control(frame));
    }

    /// Makes the sid unknown to new requests (the client said it is closing).
    pub(crate) fn mark_gone(&self) {
        self.gone.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Closes the session (idempotent): transports stop, the driver cleans up.
    pub(crate) fn close(&self) {
        self.closed.cancel();
    }

    /// Cancelled once the session is closed.
    pub(crate) fn closed(&self) -> &CancellationToken {
        &self.closed
    }
}

/// Every live session, by sid.
#[derive(Default)]
pub(crate) struct Registry {
    sessions: parking_lot::Mutex<HashMap<String, Arc<Session>>>,
}

impl Registry {
    /// A live session by sid (a closed one is unknown at once, even before its driver has
    /// removed it).
    pub(crate) fn get(&self, sid: &str) -> Option<Arc<Session>> {
        self.sessions
            .lock()
            .get(sid)
            .filter(|s| {
                !s.closed.is_cancelled() && !s.gone.load(std::sync::atomic::Ordering::SeqCst)
            })
            .cloned()
    }

    fn remove(&self, sid: &str) {
        self.sessions.lock().remove(sid);
    }
}

/// Opens a session on `transport` and starts its driver; `None` when the server is at its session
/// cap. `handshake_token` is the token of the handshake request (header or query), used when the
/// namespace CONNECT carries none.
pub(crate) fn open(
    state: &AppState,
    transport: Transport,
    handshake_token: Option<String>,
) -> Option<Arc<Session>> {
    let cfg = state.config();
    let (out_tx, out_rx) = mpsc::channel(cfg.send_queue.max(2));
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let session = {
        let registry = state.socketio();
        let mut map = registry.sessions.lock();
        if map.len() >= cfg.sio_max_sessions {
            return None;
        }
        let sid = loop {
            let sid = random_id();
            if !map.contains_key(&sid) {
                break sid;
            }
        };
        let session = Arc::new(Session {
            sid: sid.clone(),
            out_tx,
            out_rx: Arc::new(AsyncMutex::new(out_rx)),
            inbound: in_tx,
            transport: parking_lot::Mutex::new(transport),
            kick: Notify::new(),
            closed: CancellationToken::new(),
            gone: std::sync::atomic::AtomicBool::new(false),
        });
        map.insert(sid, session.clone());
        session
    };
    let f = drive(state.clone(), session.clone(), in_rx, handshake_token);
    state.tasks().spawn(f);
    Some(session)
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

/// The main namespace, once connected.
struct Namespace {
    conn: Connection,
    events: Events,
    _slot: Slot,
}

/// Why a session ended (for the log).
#[derive(Debug)]
enum End {
    Closed,
    ClientClose,
    PingTimeout,
    ConnectTimeout,
    Shutdown,
    ParseError,
    EventsEnded,
}

async fn next_event(ns: &mut Option<Namespace>) -> Option<Arc<chat_core::Envelope>> {
    match ns {
        Some(ns) => ns.events.recv().await,
        None => std::future::pending().await,
    }
}

/// Drives one session until it closes.
async fn drive(
    state: AppState,
    session: Arc<Session>,
    mut inbound: mpsc::Receiver<Vec<Incoming>>,
    handshake_token: Option<String>,
) {
    let cfg = state.config();
    let mut ns: Option<Namespace> = None;
    let mut ever_connected = false;
    let connect_deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut next_ping = Instant::now() + cfg.ping_interval;
    let mut pong_deadline: Option<Instant> = None;
    let mut skip_binary = 0usize;
    // Long-lived futures: one registration for the session's life, not one per packet.
    let closed = session.closed.clone();
    let shutdown = state.shutdown().clone();
    let closed = closed.cancelled();
    let shutting_down = shutdown.cancelled();
    let sleep = tokio::time::sleep_until(connect_deadline.min(next_ping));
    tokio::pin!(closed, shutting_down, sleep);
    let end = 'session: loop {
        let mut timer = pong_deadline.unwrap_or(next_ping);
        if !ever_connected {
            timer = timer.min(connect_deadline);
        }
        if sleep.deadline() != timer {
            sleep.as_mut().reset(timer);
        }
        tokio::select! {
            biased;
            _ = &mut closed => break End::Closed,
            _ = &mut shutting_down => break End::Shutdown,
            batch = inbound.recv() => {
                let Some(batch) = batch else { break End::Closed };
                for packet in batch {
                    match packet {
                        Incoming::Close => break 'session End::ClientClose,
                        Incoming::Ping(data) => {
                            session.push(format!("3{data}"));
                        }
                        Incoming::Pong => {
                            if pong_deadline.take().is_some() {
                                next_ping = Instant::now() + cfg.ping_interval;
                            }
                        }
                        Incoming::Binary => {
                            // Attachments of a binary event already refused, or stray data.
                            skip_binary = skip_binary.saturating_sub(1);
                        }
                        Incoming::Message(text) => {
                            let p = match packet::decode_sio(&text) {
                                Ok(p) => p,
                                Err(e) => {
                                    tracing::debug!(sid = %session.sid, error = %e, "bad Socket.IO packet");
                                    break 'session End::ParseError;
                                }
                            };
                            // Boxed: the handling of a packet (dispatch into the engine) is a large
                            // future that an idle session should not carry.
                            Box::pin(on_packet(&state, &session, &handshake_token, &mut ns, &mut skip_binary, p)).await;
                            ever_connected |= ns.is_some();
                        }
                    }
                }
            }
            env = next_event(&mut ns) => match env {
                Some(env) => {
                    let text = packet::event_raw(env.name(), env.data_json());
                    session.push_paced(text, cfg.write_timeout).await;
                    // What else is ready goes to the writer now, to leave in the same write.
                    while let Some(env) = ns.as_mut().and_then(|ns| ns.events.try_recv()) {
                        let text = packet::event_raw(env.name(), env.data_json());
                        if !session.push_paced(text, cfg.write_timeout).await {
                            break;
                        }
                    }
                }
                None => break End::EventsEnded,
            },
            _ = &mut sleep => {
                let now = Instant::now();
                if !ever_connected && now >= connect_deadline {
                    break End::ConnectTimeout;
                }
                match pong_deadline {
                    Some(deadline) if now >= deadline => break End::PingTimeout,
                    Some(_) => {}
                    None if now >= next_ping => {
                        session.push(eio::PING.to_string());
                        pong_deadline = Some(now + cfg.ping_timeout);
                    }
                    None => {}
                }
            }
        }
    };
    tracing::debug!(sid = %session.sid, reason = ?end, "Socket.IO session closed");
    session.close();
    state.socketio().remove(&session.sid);
    if let Some(ns) = ns.take() {
        Box::pin(ns.conn.close()).await;
    }
}

/// One Socket.IO packet from the client.
async fn on_packet(
    state: &AppState,
    session: &Session,
    handshake_token: &Option<String>,
    ns: &mut Option<Namespace>,
    skip_binary: &mut usize,
    p: packet::SioPacket,
) {
    if p.nsp != "/" {
        // Only the main namespace exists.
        if p.kind == SioKind::Connect {
            session.push(packet::connect_error(
                &p.nsp,
                "Invalid namespace",
                &json!({"code": "NOT_FOUND", "message": "unknown namespace"}),
            ));
        }
        *skip_binary += p.attachments;
        return;
    }
    match p.kind {
        SioKind::Connect => {
            if ns.is_some() {
                // Already connected: answer again, as the reference server does for a repeat.
                session.push(packet::connect_ok("/", &random_id()));
                return;
            }
            match connect(state, handshake_token, p.data.as_ref()).await {
                Ok(connected) => {
                    tracing::debug!(sid = %session.sid, user = %connected.conn.actor().id, "Socket.IO connected");
                    *ns = Some(connected);
                    session.push(packet::connect_ok("/", &random_id()));
                }
                Err((code, message)) => {
                    let code = code.as_str();
                    session.push(packet::connect_error(
                        "/",
                        code,
                        &json!({"code": code, "message": message}),
                    ));
                }
            }
        }
        SioKind::Disconnect => {
            if let Some(ns) = ns.take() {
                ns.conn.close().await;
            }
        }
        SioKind::Event => {
            let Some(connected) = ns.as_ref() else {
                return;
            };
            let mut args = match p.data {
                Some(Value::Array(a)) => a.into_iter(),
                _ => return,
            };
            let name = match args.next() {
                Some(Value::String(s)) => s,
                _ => return,
            };
            let data = args.next().unwrap_or(Value::Null);
            let result = dispatch(&connected.conn, &name, data).await;
            answer(session, p.id, result);
        }
        SioKind::BinaryEvent | SioKind::BinaryAck => {
            *skip_binary += p.attachments;
            if p.kind == SioKind::BinaryEvent && ns.is_some() {
                answer(
                    session,
                    p.id,
                    Err(Error::Validation(
                        "binary payloads are not supported".into(),
                    )),
                );
            }
        }
        // The server asks for no acknowledgements; a client does not send these.
        SioKind::Ack | SioKind::ConnectError => {}
    }
}

/// Sends what an event's result calls for: an ack, an `error` event, or nothing.
fn answer(session: &Session, id: Option<u64>, result: Result<Value, Error>) {
    match (id, Answer::to(id.is_some(), result)) {
        (Some(id), Some(Answer::Ack(reply))) => {
            session.push(packet::ack("/", id, &reply));
        }
        (_, Some(Answer::ErrorEvent(error))) => {
            session.push(packet::event("error", &error));
        }
        _ => {}
    }
}

/// The namespace CONNECT: authenticate (`auth.token`, else the handshake's token), take a socket
/// slot, open the chat connection. A refusal is its code and message.
async fn connect(
    state: &AppState,
    handshake_token: &Option<String>,
    auth: Option<&Value>,
) -> Result<Namespace, (ErrorCode, String)> {
    let token = crate::auth::auth_payload_token(auth).or_else(|| handshake_token.clone());
    let Some(token) = token else {
        return Err((ErrorCode::Unauthorized, "missing token".into()));
    };
    let actor = state
        .auth()
        .authenticate(&token)
        .map_err(|e| (e.code(), e.public_message()))?;
    let slot = state
        .take_socket_slot(&actor.id)
        .map_err(|TooManyConnections| {
            (TooManyConnections::CODE, TooManyConnections::MESSAGE.into())
        })?;
    let (conn, events) = state.engine().connect(&actor).await.map_err(|e| {
        tracing::warn!(user = %actor.id, error = %e, "cannot open a connection");
        (ErrorCode::Internal, "internal error".to_string())
    })?;
    Ok(Namespace {
        conn,
        events,
        _slot: slot,
    })
}
