//! Socket.IO v4 on `/socket.io/`: the contract's events for the npm `socket.io-client`.
//!
//! Engine.IO v4 (HTTP long-polling, WebSocket upgrade, WebSocket from the start, heartbeats) and
//! the Socket.IO v5 packet protocol of `socket.io` 3/4 (main namespace, CONNECT with an `auth`
//! payload, events, acknowledgements by id, CONNECT_ERROR), JSON only. Events go through the same
//! [`crate::dispatch`] as `/ws`.
//!
//! - [`packet`]: Engine.IO and Socket.IO packets, encode and decode (pure);
//! - [`session`]: sessions by sid, their queues, the driver (namespace, dispatch, heartbeat);
//! - [`transport`]: the HTTP and WebSocket handling of `/socket.io/`, and CORS;
//! - [`client_bundle`]: the npm client's browser bundles at `/socket.io/socket.io.js`.
//!
//! The wire format and its choices are documented in `docs/protocol.md`.

pub mod client_bundle;
pub mod packet;
pub(crate) mod session;
pub mod transport;

pub(crate) use session::Registry;

/// The path Socket.IO clients use by default.
pub const PATH: &str = "/socket.io/";
