//! # chat-client
//!
//! The SDK an app embeds to talk to a chat-host: a Rust core with a local store and a send queue
//! (the shape of matrix-rust-sdk), bound to Kotlin, Swift and Python through chat-ffi.
//!
//! - [`Client`] (`client`): `Client::connect(url, token, cache_dir)`; history pages, the outbox,
//!   edits and deletions, read watermarks, typing, presence, uploads; the background task that
//!   keeps one connection (reconnect with exponential backoff and jitter).
//! - `session`: one connected socket's life: joins with the last seq held (gap-free resume),
//!   the outbox one message at a time, frames to cache changes and events.
//! - `cache`: the sled cache (messages, course states, the outbox), atomic per change.
//! - `socket`: `/ws` over TCP or TLS (rustls), reader and writer tasks.
//! - `rest`: history pages and multipart uploads over HTTP(S).
//! - `token`: the user id a JWT names.
//! - [`ClientEvent`] (`event`), [`OutboxEntry`] and the other values (`model`), [`ClientError`]
//!   (`error`).
//!
//! Delivery: a message written with [`Client::send`] is on disk before `send` returns, carries a
//! `clientId` the server de-duplicates on, and is retried until the server stores it or refuses
//! it for good; so it appears once, whatever the network does. After any reconnect each joined
//! course resumes from the highest seq the cache holds, and changes are applied by `changeSeq`,
//! so the cache never shows a gap or a duplicate.

#![warn(clippy::unwrap_used, missing_docs)]

mod cache;
mod client;
mod error;
mod event;
mod model;
mod rest;
mod session;
mod socket;
mod token;

pub use chat_core::{
    FileInfo, Message, MessageType, ReadReceipt, ReplyPreview, Role, Sender, User,
};
pub use client::{Client, ClientOptions};
pub use error::{ClientError, Result};
pub use event::{ClientEvent, ConnectionState};
pub use model::{CourseState, HistoryPage, OutboxEntry, OutboxState};
