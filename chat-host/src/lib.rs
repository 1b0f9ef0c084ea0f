//! # chat-host
//!
//! The course-chat server: the contract's REST routes, provisioning, and the native event
//! protocol on `GET /ws` and Socket.IO v4 on `/socket.io/`, over hyper 1 and fastwebsockets. No business rule lives here: each
//! request is authenticated, decoded, handed to [`chat_core`], and its answer encoded.
//!
//! Reading order:
//! - [`config`]: the settings (flags, environment, `.env`) and their defaults;
//! - [`server`]: start, accept loop, graceful shutdown ([`Server`], [`serve`]);
//! - [`state`]: what connections share (engine, token checker, limits, socket counts);
//!   `slots`: the per-user count of open sockets;
//! - [`auth`]: where a request's token is, and bearer JWT to [`chat_core::Actor`];
//! - [`router`]: which request goes where, and which browser pages may call it (`cors`);
//! - [`rest`]: the REST handlers; [`http`]: reading requests (capped bodies, queries, JSON);
//!   [`multipart`]: uploads; [`response`]: the JSON envelope;
//! - [`ws`]: the WebSocket transport; [`dispatch`]: client events to engine calls (shared by
//!   every event transport); [`frames`]: WebSocket frames in (read into a buffer only as large
//!   as what waits, so an idle socket stays small) and out (batched into one write);
//! - [`engineio`]: Engine.IO v4 (sessions, long-polling, WebSocket, heartbeat) on `/socket.io/`,
//!   carrying messages it does not read; [`socketio`]: Socket.IO v4 on top of it (the namespace,
//!   its auth, events and acks);
//! - [`webhook`]: every event POSTed, signed, to the `--webhook` URLs (a chat-core plugin);
//! - [`error`]: the crate's error type.
//!
//! The protocol is documented in `docs/protocol.md` and `docs/openapi.yaml`.

// Input comes from the network: no unwrap outside tests (clippy.toml allows it in tests).
#![warn(clippy::unwrap_used)]

pub(crate) mod archive;
pub mod auth;
pub mod config;
pub(crate) mod cors;
pub mod dispatch;
pub mod engineio;
pub mod error;
pub mod frames;
pub mod http;
pub(crate) mod moderation;
pub mod multipart;
pub mod push;
pub mod response;
pub mod rest;
pub mod router;
pub mod server;
pub(crate) mod slots;
pub mod socketio;
pub mod state;
pub mod webhook;
pub mod ws;

pub use config::{Cli, Config, JwtKey, StoreSetting};
pub use error::HostError;
pub use server::{serve, Server};
