//! The crate's one error type, for what can fail while starting or running the server.
//!
//! Request-level failures are not here: they are [`chat_core::Error`] values (the contract's codes),
//! turned into the JSON envelope by [`crate::response`] or into `error` events by [`crate::ws`].
//! This enum covers what stops the server itself: bad settings, a port in use, a data folder that
//! cannot be written, a store that does not open.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the server could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A setting is missing or malformed.
    #[error("bad setting: {0}")]
    Config(String),
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A file of the data folder (the JWT secret, the folder itself) could not be read or written.
    #[error("cannot use {path}: {source}")]
    DataDir {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The engine failed to open or to flush.
    #[error("engine: {0}")]
    Engine(#[from] chat_core::Error),
    /// The JWT key could not be loaded.
    #[error("JWT key: {0}")]
    Jwt(String),
    /// The server task ended abnormally.
    #[error("server task failed: {0}")]
    Task(String),
}
