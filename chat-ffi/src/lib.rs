//! # chat-ffi
//!
//! `chat-core` exported through [uniffi](https://mozilla.github.io/uniffi-rs/) (proc-macros,
//! library mode) to Python, Kotlin and Swift. This crate converts types and nothing else: every
//! rule lives in `chat-core`.
//!
//! - [`ChatEngine`]: an engine on a folder (sled) or in memory, with its own tokio runtime; every
//!   method is synchronous for the foreign caller and blocks on that runtime.
//! - [`ChatConnection`] / [`ChatSubscription`]: event streams delivered to a foreign
//!   [`EventListener`] on Rust threads.
//! - [`MessagePlugin`]: moderation and notification hooks written in the foreign language.
//! - [`ChatClient`] (`client`): the client SDK (`chat-client`) for apps — a connection to a
//!   chat-host with a local cache and an outbox — with events to a foreign [`ClientListener`].
//! - [`ChatError`]: one variant per contract code (plus `OFFLINE` / `NETWORK` for the client);
//!   it becomes an exception.
//! - the contract's values as records (`types`), its events as [`Event`], the engine's limits as
//!   [`EngineConfig`].
//!
//! Timestamps are strings, RFC 3339 UTC with milliseconds, exactly as the contract prints them.
//! Generate the bindings with the in-crate `uniffi-bindgen` binary (`bindings/generate.sh`).

mod client;
mod config;
mod connection;
mod engine;
mod error;
mod event;
mod plugin;
mod types;

pub use client::{
    CachedPage, ChatClient, ClientEvent, ClientListener, ClientSettings, ConnectionState,
    OutboxEntry, OutboxState,
};
pub use config::EngineConfig;
pub use connection::{ChatConnection, ChatSubscription, EventListener};
pub use engine::ChatEngine;
pub use error::{ChatError, ListenerError, PluginError};
pub use event::{event_name, Event};
pub use plugin::{Draft, DraftKind, MessagePlugin, Verdict};
pub use types::*;

uniffi::setup_scaffolding!();
