//! The Socket.IO namespace adapter: what the Engine.IO messages of one session mean for the chat.
//!
//! Why here, on top of [`crate::engineio`]: the engine carries messages, this reads them. It is
//! the session's [`Handler`]: the main namespace's CONNECT (a token from the `auth` payload, else
//! the handshake request's; one of the user's socket slots; the [`chat_core::Connection`]),
//! `CONNECT_ERROR` when that is refused, events to [`crate::dispatch`] and their
//! acknowledgements (or `error` events), the connection's [`chat_core::Events`] to `42` packets,
//! and Socket.IO's `connectTimeout` (a session with no namespace connection within 45 s ends).
//! When the session ends, the chat connection is closed (presence updated).
//!
//! On a WebSocket the connection's events skip the session's driver: they are handed over as a
//! [`RoomFeed`], which the WebSocket's writer reads and frames itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_core::{Connection, Envelope, Error, ErrorCode, Events};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::packet::{self, SioKind};
use crate::dispatch::{dispatch, Answer};
use crate::engineio::{random_id, Ended, Feed, Handler, Next, Reason, Session};
use crate::slots::{Slot, TooManyConnections};
use crate::state::AppState;

/// How long a session may stay without a namespace connection (like Socket.IO's `connectTimeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);

/// One Engine.IO session's Socket.IO side.
pub(crate) struct Adapter {
    state: AppState,
    /// The token of the handshake request (header or query), used when the CONNECT carries none.
    handshake_token: Option<String>,
    ns: Option<Namespace>,
    /// Whether the namespace was ever connected (the connect timeout no longer applies).
    ever_connected: bool,
    connect_deadline: Instant,
    /// Binary attachments still to come of packets already refused.
    skip_binary: usize,
}

/// The main namespace, once connected.
struct Namespace {
    conn: Connection,
    /// The connection's events, until they are handed over to a WebSocket writer.
    events: Option<Events>,
    /// Set when the client leaves the namespace, so that a handed-over feed ending then does
    /// not end the session.
    left: Arc<AtomicBool>,
    _slot: Slot,
}

/// A connection's events as the WebSocket writer reads them: each one an Engine.IO message
/// `42["name",data]`, framed from the event's shared JSON with no copy of its own.
pub(crate) struct RoomFeed {
    events: Events,
    left: Arc<AtomicBool>,
}

impl Feed for RoomFeed {
    type Item = Arc<Envelope>;

    async fn next(&mut self) -> Next<Arc<Envelope>> {
        match self.events.recv().await {
            Some(env) => Next::Message(env),
            None if self.left.load(Ordering::Acquire) => Next::Done,
            None => Next::Ended(Ended("events ended")),
        }
    }

    fn try_next(&mut self) -> Option<Arc<Envelope>> {
        self.events.try_recv()
    }

    fn write(env: &Arc<Envelope>, out: &mut Vec<u8>) {
        out.push(b'4');
        packet::write_event(env.name(), env.data_json(), out);
    }
}

/// What the adapter waits for by itself.
pub(crate) enum Ready {
    /// The connection's next event (`None`: its stream ended).
    Event(Option<Arc<Envelope>>),
    /// No namespace connection in time.
    ConnectTimeout,
}

impl Adapter {
    /// The adapter of a session opened now by a request that carried `handshake_token`.
    pub(crate) fn new(state: AppState, handshake_token: Option<String>) -> Self {
        Adapter {
            state,
            handshake_token,
            ns: None,
            ever_connected: false,
            connect_deadline: Instant::now() + CONNECT_TIMEOUT,
            skip_binary: 0,
        }
    }
}

impl Handler for Adapter {
    type Ready = Ready;
    type Feed = RoomFeed;

    async fn on_message(&mut self, session: &Session, text: String) -> Result<(), Ended> {
        let p = match packet::decode_sio(&text) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(sid = %session.sid(), error = %e, "bad Socket.IO packet");
                return Err(Ended("bad Socket.IO packet"));
            }
        };
        self.on_packet(session, p).await;
        self.ever_connected |= self.ns.is_some();
        Ok(())
    }

    fn on_binary(&mut self, _session: &Session) {
        // Attachments of a binary event already refused, or stray data.
        self.skip_binary = self.skip_binary.saturating_sub(1);
    }

    async fn ready(&mut self) -> Ready {
        match &mut self.ns {
            Some(Namespace {
                events: Some(events),
                ..
            }) => Ready::Event(events.recv().await),
            // Handed over: the WebSocket writer reads them.
            Some(_) => std::future::pending().await,
            None if !self.ever_connected => {
                tokio::time::sleep_until(self.connect_deadline).await;
                Ready::ConnectTimeout
            }
            None => std::future::pending().await,
        }
    }

    fn take_feed(&mut self) -> Option<RoomFeed> {
        let ns = self.ns.as_mut()?;
        Some(RoomFeed {
            events: ns.events.take()?,
            left: ns.left.clone(),
        })
    }

    async fn on_ready(&mut self, session: &Session, ready: Ready) -> Result<(), Ended> {
        let env = match ready {
            Ready::Event(Some(env)) => env,
            Ready::Event(None) => return Err(Ended("events ended")),
            Ready::ConnectTimeout => return Err(Ended("connect timeout")),
        };
        let write_timeout = self.state.config().write_timeout;
        let text = packet::event_raw(env.name(), env.data_json());
        session.send_paced(text, write_timeout).await;
        // What else is ready goes to the writer now, to leave in the same write.
        while let Some(env) = self
            .ns
            .as_mut()
            .and_then(|ns| ns.events.as_mut())
            .and_then(Events::try_recv)
        {
            let text = packet::event_raw(env.name(), env.data_json());
            if !session.send_paced(text, write_timeout).await {
                break;
            }
        }
        Ok(())
    }

    async fn on_close(self, _reason: Reason) {
        if let Some(ns) = self.ns {
            Box::pin(ns.conn.close()).await;
        }
    }
}

impl Adapter {
    /// One Socket.IO packet from the client.
    async fn on_packet(&mut self, session: &Session, p: packet::SioPacket) {
        if p.nsp != "/" {
            // Only the main namespace exists.
            if p.kind == SioKind::Connect {
                session.send(packet::connect_error(
                    &p.nsp,
                    "Invalid namespace",
                    &json!({"code": "NOT_FOUND", "message": "unknown namespace"}),
                ));
            }
            self.skip_binary += p.attachments;
            return;
        }
        match p.kind {
            SioKind::Connect => {
                if self.ns.is_some() {
                    // Already connected: answer again, as the reference server does for a repeat.
                    session.send(packet::connect_ok("/", &random_id()));
                    return;
                }
                match connect(&self.state, &self.handshake_token, p.data.as_ref()).await {
                    Ok(connected) => {
                        tracing::debug!(sid = %session.sid(), user = %connected.conn.actor().id, "Socket.IO connected");
                        self.ns = Some(connected);
                        session.send(packet::connect_ok("/", &random_id()));
                    }
                    Err((code, message)) => {
                        let code = code.as_str();
                        session.send(packet::connect_error(
                            "/",
                            code,
                            &json!({"code": code, "message": message}),
                        ));
                    }
                }
            }
            SioKind::Disconnect => {
                if let Some(ns) = self.ns.take() {
                    ns.left.store(true, Ordering::Release);
                    ns.conn.close().await;
                }
            }
            SioKind::Event => {
                let Some(connected) = self.ns.as_ref() else {
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
                self.skip_binary += p.attachments;
                if p.kind == SioKind::BinaryEvent && self.ns.is_some() {
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
}

/// Sends what an event's result calls for: an ack, an `error` event, or nothing.
fn answer(session: &Session, id: Option<u64>, result: Result<Value, Error>) {
    match (id, Answer::to(id.is_some(), result)) {
        (Some(id), Some(Answer::Ack(reply))) => {
            session.send(packet::ack("/", id, &reply));
        }
        (_, Some(Answer::ErrorEvent(error))) => {
            session.send(packet::event("error", &error));
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
        events: Some(events),
        left: Arc::new(AtomicBool::new(false)),
        _slot: slot,
    })
}
