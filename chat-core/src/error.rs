//! One error type for the whole engine.
//!
//! Every failure a caller can cause maps to one contract code ([`ErrorCode`]), so the host turns it
//! into an HTTP status, the WebSocket codecs into an `error` event, and the FFI into an exception,
//! all from the same value. Storage and corruption problems are `INTERNAL`: they never leak detail
//! that a client could use, but keep it for the logs.

use std::sync::Arc;
use std::time::Duration;

/// The result of every engine operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input is malformed or breaks a limit (empty text, too long, bad id, bad page).
    #[error("{0}")]
    Validation(String),
    /// The caller is not authenticated (used by adapters that authenticate, e.g. JWT checks).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is authenticated but may not do this (edit someone else's message, provisioning
    /// without the admin role, ...).
    #[error("{0}")]
    Forbidden(String),
    /// The caller is not a participant of the course.
    #[error("you are not enrolled in this course")]
    NotEnrolled,
    /// The course has chat disabled: no sending, editing or typing.
    #[error("chat is disabled for this course")]
    ChatDisabled,
    /// A moderator muted the caller in this course: no sending, editing, reacting or typing
    /// until `until`.
    #[error("you are muted in this course until {until}")]
    Muted {
        /// When the mute ends.
        until: crate::model::Timestamp,
    },
    /// A moderator banned the caller from this course's chat.
    #[error("you are banned from this course's chat")]
    Banned,
    /// The course, message, user or file does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A file (or body) is larger than allowed.
    #[error("file is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// A file's sniffed content type is not on the allow-list.
    #[error("file type {0} is not allowed")]
    UnsupportedMediaType(String),
    /// Too many sends; try again after `retry_after`.
    #[error("too many messages, retry in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// How long until a send would be accepted.
        retry_after: Duration,
    },
    /// A plugin refused the message (moderation).
    #[error("message rejected: {0}")]
    Rejected(String),
    /// The message changed between read and write; the engine retries these internally.
    #[error("concurrent change, try again")]
    Conflict,
    /// The store failed (I/O, flush, a database error).
    #[error("storage error: {0}")]
    Storage(#[source] Source),
    /// A plugin's `before_send` failed (not a verdict: the plugin itself broke).
    #[error("plugin {name} failed: {source}")]
    Plugin {
        /// The plugin's name.
        name: String,
        /// What it said.
        #[source]
        source: Source,
    },
    /// A value could not be encoded (a bug, never the client's input).
    #[error("encoding error: {0}")]
    Encoding(#[source] Source),
    /// Stored data could not be decoded.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The engine is closed.
    #[error("engine is closed")]
    Closed,
}

/// The contract's error codes (`code` in REST and event errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `VALIDATION`, HTTP 400.
    Validation,
    /// `UNAUTHORIZED`, HTTP 401.
    Unauthorized,
    /// `FORBIDDEN`, HTTP 403.
    Forbidden,
    /// `NOT_ENROLLED`, HTTP 403.
    NotEnrolled,
    /// `CHAT_DISABLED`, HTTP 403.
    ChatDisabled,
    /// `MUTED`, HTTP 403.
    Muted,
    /// `BANNED`, HTTP 403.
    Banned,
    /// `NOT_FOUND`, HTTP 404.
    NotFound,
    /// `PAYLOAD_TOO_LARGE`, HTTP 413.
    PayloadTooLarge,
    /// `UNSUPPORTED_MEDIA_TYPE`, HTTP 415.
    UnsupportedMediaType,
    /// `RATE_LIMITED`, HTTP 429.
    RateLimited,
    /// `INTERNAL`, HTTP 500.
    Internal,
}

impl ErrorCode {
    /// The code as the contract spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Validation => "VALIDATION",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotEnrolled => "NOT_ENROLLED",
            ErrorCode::ChatDisabled => "CHAT_DISABLED",
            ErrorCode::Muted => "MUTED",
            ErrorCode::Banned => "BANNED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// The HTTP status the contract pairs with the code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Validation => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden
            | ErrorCode::NotEnrolled
            | ErrorCode::ChatDisabled
            | ErrorCode::Muted
            | ErrorCode::Banned => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
        }
    }
}

impl Error {
    /// The contract code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Validation(_) => ErrorCode::Validation,
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::Forbidden(_) | Error::Rejected(_) => ErrorCode::Forbidden,
            Error::NotEnrolled => ErrorCode::NotEnrolled,
            Error::ChatDisabled => ErrorCode::ChatDisabled,
            Error::Muted { .. } => ErrorCode::Muted,
            Error::Banned => ErrorCode::Banned,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Error::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Conflict
            | Error::Storage(_)
            | Error::Plugin { .. }
            | Error::Encoding(_)
            | Error::Corrupt(_)
            | Error::Closed => ErrorCode::Internal,
        }
    }

    /// The message to show a client: internal details are replaced by a generic text.
    pub fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal => "internal error".to_string(),
            _ => self.to_string(),
        }
    }

    pub(crate) fn validation(msg: impl Into<String>) -> Self {
        Error::Validation(msg.into())
    }

    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Error::Corrupt(what.to_string())
    }

    /// A storage failure caused by `source`.
    pub fn storage(source: impl Into<Source>) -> Self {
        Error::Storage(source.into())
    }

    /// A storage failure caused by `source` while doing `what` (kept as the source's context).
    pub fn storage_during(
        what: impl std::fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Storage(Source(Arc::new(During {
            what: what.to_string(),
            source: Box::new(source),
        })))
    }

    /// An encoding failure caused by `source`.
    pub fn encoding(source: impl Into<Source>) -> Self {
        Error::Encoding(source.into())
    }
}

/// The cause of an internal error, kept for the logs and for [`std::error::Error::source`]
/// chains. Cloneable (errors are shared between waiters); two are equal when they read the same.
#[derive(Clone)]
pub struct Source(Arc<dyn std::error::Error + Send + Sync>);

impl Source {
    /// Wraps an error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Source(Arc::new(e))
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Source {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Source {}

/// An error with what was being done when it happened.
#[derive(Debug)]
struct During {
    what: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for During {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for During {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// A message with no error behind it.
#[derive(Debug)]
struct Message(String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

impl From<String> for Source {
    fn from(s: String) -> Self {
        Source(Arc::new(Message(s)))
    }
}

impl From<&str> for Source {
    fn from(s: &str) -> Self {
        Source::from(s.to_string())
    }
}

impl From<std::io::Error> for Source {
    fn from(e: std::io::Error) -> Self {
        Source::new(e)
    }
}

impl From<tokio::task::JoinError> for Source {
    fn from(e: tokio::task::JoinError) -> Self {
        Source::new(e)
    }
}

impl From<serde_json::Error> for Source {
    fn from(e: serde_json::Error) -> Self {
        Source::new(e)
    }
}

#[cfg(feature = "sled")]
impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { .. } => Error::Corrupt(e.to_string()),
            other => Error::Storage(Source::new(other)),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Storage(Source::new(e))
    }
}
