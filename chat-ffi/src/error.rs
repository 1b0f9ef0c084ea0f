//! Errors: one exception type per contract code, and the errors foreign callbacks may raise.

use chat_core as core;

/// An engine error: one variant per contract code, each carrying the human-readable reason.
/// Becomes an exception in the foreign language (`ChatError.NotFound`, …).
///
/// The field is `reason` rather than `message` because Kotlin exceptions already have a
/// `message` property.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ChatError {
    /// `VALIDATION`: the input is malformed or breaks a limit.
    #[error("{reason}")]
    Validation { reason: String },
    /// `UNAUTHORIZED`: the caller is not authenticated.
    #[error("{reason}")]
    Unauthorized { reason: String },
    /// `FORBIDDEN`: the caller may not do this (also: a plugin rejected the message).
    #[error("{reason}")]
    Forbidden { reason: String },
    /// `NOT_ENROLLED`: the caller is not a participant of the course.
    #[error("{reason}")]
    NotEnrolled { reason: String },
    /// `CHAT_DISABLED`: the course has chat disabled.
    #[error("{reason}")]
    ChatDisabled { reason: String },
    /// `MUTED`: a moderator muted the caller in this course (the reason says until when).
    #[error("{reason}")]
    Muted { reason: String },
    /// `BANNED`: a moderator banned the caller from this course's chat.
    #[error("{reason}")]
    Banned { reason: String },
    /// `NOT_FOUND`: the course, message, user, participant or file does not exist.
    #[error("{reason}")]
    NotFound { reason: String },
    /// `PAYLOAD_TOO_LARGE`: the file is larger than `limit` bytes.
    #[error("{reason}")]
    PayloadTooLarge { reason: String, limit: u64 },
    /// `UNSUPPORTED_MEDIA_TYPE`: the sniffed content type is not allowed.
    #[error("{reason}")]
    UnsupportedMediaType { reason: String },
    /// `RATE_LIMITED`: too many sends; retry after `retry_after_ms`.
    #[error("{reason}")]
    RateLimited { reason: String, retry_after_ms: u64 },
    /// `INTERNAL`: storage failure, a failing plugin, or the engine is closed.
    #[error("{reason}")]
    Internal { reason: String },
    /// `OFFLINE` (the client SDK only): the call needs a connection to the server, and there is
    /// none now.
    #[error("{reason}")]
    Offline { reason: String },
    /// `NETWORK` (the client SDK only): the connection failed during the call; the server may or
    /// may not have applied it.
    #[error("{reason}")]
    Network { reason: String },
}

impl ChatError {
    pub(crate) fn validation(reason: impl Into<String>) -> Self {
        ChatError::Validation {
            reason: reason.into(),
        }
    }

    pub(crate) fn internal(reason: impl Into<String>) -> Self {
        ChatError::Internal {
            reason: reason.into(),
        }
    }

    pub(crate) fn closed() -> Self {
        ChatError::internal("engine is closed")
    }
}

#[uniffi::export]
impl ChatError {
    /// The contract's code: `VALIDATION`, `NOT_FOUND`, `RATE_LIMITED`, …
    pub fn code(&self) -> String {
        match self {
            ChatError::Validation { .. } => "VALIDATION",
            ChatError::Unauthorized { .. } => "UNAUTHORIZED",
            ChatError::Forbidden { .. } => "FORBIDDEN",
            ChatError::NotEnrolled { .. } => "NOT_ENROLLED",
            ChatError::ChatDisabled { .. } => "CHAT_DISABLED",
            ChatError::Muted { .. } => "MUTED",
            ChatError::Banned { .. } => "BANNED",
            ChatError::NotFound { .. } => "NOT_FOUND",
            ChatError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            ChatError::UnsupportedMediaType { .. } => "UNSUPPORTED_MEDIA_TYPE",
            ChatError::RateLimited { .. } => "RATE_LIMITED",
            ChatError::Internal { .. } => "INTERNAL",
            ChatError::Offline { .. } => "OFFLINE",
            ChatError::Network { .. } => "NETWORK",
        }
        .to_string()
    }

    /// The HTTP status the contract pairs with the code.
    pub fn http_status(&self) -> u16 {
        match self {
            ChatError::Validation { .. } => 400,
            ChatError::Unauthorized { .. } => 401,
            ChatError::Forbidden { .. }
            | ChatError::NotEnrolled { .. }
            | ChatError::ChatDisabled { .. }
            | ChatError::Muted { .. }
            | ChatError::Banned { .. } => 403,
            ChatError::NotFound { .. } => 404,
            ChatError::PayloadTooLarge { .. } => 413,
            ChatError::UnsupportedMediaType { .. } => 415,
            ChatError::RateLimited { .. } => 429,
            ChatError::Internal { .. } => 500,
            ChatError::Offline { .. } | ChatError::Network { .. } => 503,
        }
    }
}

impl From<core::Error> for ChatError {
    fn from(e: core::Error) -> Self {
        use core::Error as E;
        let reason = e.to_string();
        match e {
            E::Validation(_) => ChatError::Validation { reason },
            E::Unauthorized(_) => ChatError::Unauthorized { reason },
            E::Forbidden(_) | E::Rejected(_) => ChatError::Forbidden { reason },
            E::NotEnrolled => ChatError::NotEnrolled { reason },
            E::ChatDisabled => ChatError::ChatDisabled { reason },
            E::Muted { .. } => ChatError::Muted { reason },
            E::Banned => ChatError::Banned { reason },
            E::NotFound(_) => ChatError::NotFound { reason },
            E::PayloadTooLarge { limit } => ChatError::PayloadTooLarge { reason, limit },
            E::UnsupportedMediaType(_) => ChatError::UnsupportedMediaType { reason },
            E::RateLimited { retry_after } => ChatError::RateLimited {
                reason,
                retry_after_ms: u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
            },
            E::Conflict
            | E::Storage(_)
            | E::Plugin { .. }
            | E::Encoding(_)
            | E::Corrupt(_)
            | E::Closed => ChatError::Internal { reason },
        }
    }
}

/// What a foreign [`EventListener`](crate::EventListener) may raise. The engine logs it and keeps
/// delivering the next events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ListenerError {
    /// The listener failed.
    #[error("{reason}")]
    Failed { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for ListenerError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ListenerError::Failed { reason: e.reason }
    }
}

/// What a foreign [`MessagePlugin`](crate::MessagePlugin) may raise. In `before_send` it refuses
/// the message with `ChatError.Internal` (fail closed); in `after_event` it is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum PluginError {
    /// The plugin failed.
    #[error("{reason}")]
    Failed { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for PluginError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        PluginError::Failed { reason: e.reason }
    }
}
