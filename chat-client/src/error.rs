//! The one error type of the client.
//!
//! Errors the server sends keep the contract's `code` (`VALIDATION`, `FORBIDDEN`, ...), so an app
//! can tell a send refused for good from a network failure worth retrying.

/// What went wrong in a client call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request with a contract error (`code` as in CONTRACT.md).
    #[error("{code}: {message}")]
    Server {
        /// The contract's error code (`VALIDATION`, `NOT_ENROLLED`, `RATE_LIMITED`, ...).
        code: String,
        /// The server's human-readable message.
        message: String,
        /// Seconds to wait before trying again (`RATE_LIMITED`).
        retry_after: Option<u64>,
    },
    /// Not connected now: the call needs the server (the outbox and mark-read do not).
    #[error("offline: {0}")]
    Offline(String),
    /// The network failed during the call (the server may or may not have applied it).
    #[error("network: {0}")]
    Network(String),
    /// The server's answer could not be understood.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A bad argument (an empty course id, an unknown local message, a malformed URL...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The local cache failed (disk full, a corrupt file...).
    #[error("cache: {0}")]
    Cache(String),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}

impl ClientError {
    pub(crate) fn server(code: &str, message: &str, retry_after: Option<u64>) -> Self {
        ClientError::Server {
            code: code.to_string(),
            message: message.to_string(),
            retry_after,
        }
    }

    /// The contract code of a server refusal (`None` for local and network errors).
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether trying the same request again later may succeed: network failures, rate limits and
    /// the server's internal errors. Validation, permission and not-found refusals are final.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Server { code, .. } => {
                matches!(code.as_str(), "RATE_LIMITED" | "INTERNAL" | "UNAUTHORIZED")
            }
            ClientError::Offline(_) | ClientError::Network(_) => true,
            _ => false,
        }
    }
}

impl From<sled::Error> for ClientError {
    fn from(e: sled::Error) -> Self {
        ClientError::Cache(e.to_string())
    }
}

/// Shorthand for the client's results.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
