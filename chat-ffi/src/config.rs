//! The engine's limits as a uniffi record: fields left out take the defaults, and the result is
//! checked by the engine's own rule ([`chat_core::Config::validate`]).

use chat_core as core;

use crate::error::ChatError;

/// The engine's limits; absent fields take the contract's defaults. Durations in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct EngineConfig {
    /// Longest message text in characters (default 4,000).
    #[uniffi(default)]
    pub max_message_chars: Option<u32>,
    /// Largest file in bytes (default 10 MiB).
    #[uniffi(default)]
    pub max_file_bytes: Option<u64>,
    /// Content types (as sniffed) a file may have (default: the contract's list).
    #[uniffi(default)]
    pub allowed_mime_types: Option<Vec<String>>,
    /// Sends allowed in a burst per user per course (default 10).
    #[uniffi(default)]
    pub rate_limit_burst: Option<u32>,
    /// The window in which the burst refills, in ms (default 10,000).
    #[uniffi(default)]
    pub rate_limit_window_ms: Option<u64>,
    /// How long a typing indicator lives without a refresh, in ms (default 5,000).
    #[uniffi(default)]
    pub typing_ttl_ms: Option<u64>,
    /// Events queued per subscriber before it lags (default 1,024).
    #[uniffi(default)]
    pub subscriber_queue: Option<u32>,
    /// Events queued per plugin before events are dropped for it (default 4,096).
    #[uniffi(default)]
    pub plugin_queue: Option<u32>,
    /// Default history page size (default 50).
    #[uniffi(default)]
    pub default_page_limit: Option<u32>,
    /// Largest history page size (default 100).
    #[uniffi(default)]
    pub max_page_limit: Option<u32>,
    /// Prefix of file download URLs (default `/api/v1/chat/files/`).
    #[uniffi(default)]
    pub file_url_prefix: Option<String>,
    /// Words the built-in word filter masks in sends and edits (default none).
    #[uniffi(default)]
    pub blocked_words: Option<Vec<String>>,
    /// Refuse a message with a blocked word (`Forbidden`) instead of masking it (default false).
    #[uniffi(default)]
    pub reject_blocked_words: Option<bool>,
    /// Delete messages older than this many days, as tombstones (default: keep every message).
    #[uniffi(default)]
    pub retention_days: Option<u32>,
}

/// Fields given replace the defaults; the result is checked by [`core::Config::validate`], the
/// engine's one rule for its limits (a zero limit, a zero or over-a-day duration... are
/// `Validation` errors).
impl TryFrom<EngineConfig> for core::Config {
    type Error = ChatError;
    fn try_from(c: EngineConfig) -> Result<Self, ChatError> {
        let d = core::Config::default();
        let millis = std::time::Duration::from_millis;
        let out = core::Config {
            max_message_chars: c
                .max_message_chars
                .map_or(d.max_message_chars, |v| v as usize),
            max_file_bytes: c.max_file_bytes.unwrap_or(d.max_file_bytes),
            allowed_mime_types: c.allowed_mime_types.unwrap_or(d.allowed_mime_types),
            rate_limit_burst: c.rate_limit_burst.unwrap_or(d.rate_limit_burst),
            rate_limit_window: c.rate_limit_window_ms.map_or(d.rate_limit_window, millis),
            typing_ttl: c.typing_ttl_ms.map_or(d.typing_ttl, millis),
            subscriber_queue: c
                .subscriber_queue
                .map_or(d.subscriber_queue, |v| v as usize),
            plugin_queue: c.plugin_queue.map_or(d.plugin_queue, |v| v as usize),
            default_page_limit: c.default_page_limit.unwrap_or(d.default_page_limit),
            max_page_limit: c.max_page_limit.unwrap_or(d.max_page_limit),
            file_url_prefix: c.file_url_prefix.unwrap_or(d.file_url_prefix),
            blocked_words: c.blocked_words.unwrap_or_default(),
            blocked_words_action: if c.reject_blocked_words.unwrap_or(false) {
                core::word_filter::WordFilterAction::Reject
            } else {
                core::word_filter::WordFilterAction::Mask
            },
            retention_days: c.retention_days,
            ..d
        };
        out.validate()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_configs_are_checked_by_the_engines_rule() {
        let c = core::Config::try_from(EngineConfig {
            rate_limit_window_ms: Some(1500),
            max_page_limit: Some(80),
            ..EngineConfig::default()
        })
        .unwrap();
        assert_eq!(c.rate_limit_window, std::time::Duration::from_millis(1500));
        assert_eq!(c.max_page_limit, 80);
        for bad in [
            EngineConfig {
                typing_ttl_ms: Some(0),
                ..EngineConfig::default()
            },
            EngineConfig {
                max_page_limit: Some(0),
                ..EngineConfig::default()
            },
            EngineConfig {
                rate_limit_burst: Some(0),
                ..EngineConfig::default()
            },
        ] {
            assert!(matches!(
                core::Config::try_from(bad),
                Err(ChatError::Validation { .. })
            ));
        }
    }
}
