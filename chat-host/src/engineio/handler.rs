//! What the engine asks of the layer above it: a [`Handler`] per session.
//!
//! Why a trait: the engine (sessions, transports, heartbeat) carries text messages and never
//! reads them; whatever rides on it (Socket.IO here) plugs in with this and nothing else, the
//! way socketioxide sits on engineioxide. One handler value per session, made when the session
//! opens and driven by that session's one task ([`super::driver`]): its methods are called one at
//! a time, so it needs no lock, and it sees the client's messages in the order they were sent.
//!
//! The driver waits on the client and on [`Handler::ready`] together; what `ready` yields is then
//! handed to [`Handler::on_ready`]. The split keeps the wait cancellable (a message may come
//! first) while the sending that follows is not cut short.
//!
//! Once the session is on a WebSocket, what `ready` waits for can skip the driver: the handler
//! hands a [`Feed`] over ([`Handler::take_feed`]) and the WebSocket's writer reads it by itself,
//! framing each message straight into its write batch. That is one task between the source (a
//! room's events) and the socket instead of two, and no queue in between: most of what a
//! delivery costs besides the system call. Long-polling has no writer task, so there the driver
//! forwards as before.

use std::future::Future;

use super::session::Session;

/// Why the layer above ends a session (for the log): a message it cannot read, a deadline of
/// its own, a source of its own that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ended(pub &'static str);

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Closed by a transport: the socket ended, a body was too large, the client stopped reading.
    Closed,
    /// The client sent a close packet.
    ClientClose,
    /// No pong within `ping_timeout`.
    PingTimeout,
    /// The server is shutting down.
    Shutdown,
    /// The handler ended it.
    Handler(Ended),
}

/// What a [`Feed`] has next.
pub(crate) enum Next<T> {
    /// A message for the client.
    Message(T),
    /// The feed is finished (the layer above let go of its source); the session goes on.
    Done,
    /// The source ended under the session: the session ends.
    Ended(Ended),
}

/// Messages the layer above produces by itself, read by a WebSocket's writer directly.
pub(crate) trait Feed: Send + 'static {
    /// One message, before it is encoded.
    type Item: Send;

    /// Waits for the next message. Cancel-safe: the writer drops it when its queue comes first.
    fn next(&mut self) -> impl Future<Output = Next<Self::Item>> + Send;

    /// The next message if one is ready now.
    fn try_next(&mut self) -> Option<Self::Item>;

    /// Appends the Engine.IO message of `item` (`4…`) to `out`.
    fn write(item: &Self::Item, out: &mut Vec<u8>);
}

/// The layer above the engine, for one session.
pub(crate) trait Handler: Send + 'static {
    /// What [`Handler::ready`] waits for.
    type Ready: Send;

    /// What the handler hands over to a WebSocket writer.
    type Feed: Feed;

    /// A text message (`4…`) from the client; `Err` ends the session.
    fn on_message(
        &mut self,
        session: &Session,
        text: String,
    ) -> impl Future<Output = Result<(), Ended>> + Send;

    /// A binary message from the client (its content is not kept).
    fn on_binary(&mut self, session: &Session);

    /// Waits for something the handler acts on by itself (events to forward, a deadline); never
    /// ready when there is none. Cancel-safe: the driver drops it whenever the client comes first.
    fn ready(&mut self) -> impl Future<Output = Self::Ready> + Send;

    /// The session's WebSocket writer can take what `ready` would wait for: hand it over, so
    /// that `ready` waits for it no more. `None` when there is nothing to hand over (not yet, or
    /// handed over already); asked again after each thing the driver does.
    fn take_feed(&mut self) -> Option<Self::Feed>;

    /// Acts on what [`Handler::ready`] gave; `Err` ends the session.
    fn on_ready(
        &mut self,
        session: &Session,
        ready: Self::Ready,
    ) -> impl Future<Output = Result<(), Ended>> + Send;

    /// The session has ended (the sid is already unknown): let go of what it held.
    fn on_close(self, reason: Reason) -> impl Future<Output = ()> + Send;
}
