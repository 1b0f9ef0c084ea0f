//! The engine's limits and settings, with the contract's defaults.

use std::time::Duration;

use unicode_segmentation::UnicodeSegmentation;

/// Limits and settings of an [`Engine`](crate::Engine). `Config::default()` is the contract.
#[derive(Debug, Clone)]
pub struct Config {
    /// Longest message text, in characters (default 4,000).
    pub max_message_chars: usize,
    /// Largest file, in bytes (default 10 MiB).
    pub max_file_bytes: u64,
    /// Content types (as sniffed) a file may have.
    pub allowed_mime_types: Vec<String>,
    /// Sends allowed in a burst per user per course (default 10).
    pub rate_limit_burst: u32,
    /// The window in which `rate_limit_burst` sends refill (default 10 s).
    pub rate_limit_window: Duration,
    /// New typing indicators (`isTyping: true` after a stop or an expiry) allowed per user per
    /// course per `rate_limit_window` (default 20); refreshes and stops are not counted. Beyond
    /// it, `typing` answers `RATE_LIMITED` and the room hears nothing.
    pub typing_rate_burst: u32,
    /// How long a typing indicator lives without a refresh (default 5 s).
    pub typing_ttl: Duration,
    /// Events queued per subscriber before it is considered lagging (default 1,024). A lagging
    /// subscriber misses ephemeral events (typing, presence, receipts) but never a message change:
    /// its stream catches up from the store.
    pub subscriber_queue: usize,
    /// Events queued per plugin before events are dropped for it (default 4,096).
    pub plugin_queue: usize,
    /// Default history page size (default 50).
    pub default_page_limit: u32,
    /// Largest history page size (default 100).
    pub max_page_limit: u32,
    /// How long a room's `online-users` broadcast waits for more joins and leaves to coalesce
    /// (default 250 ms). The joiner always gets the list at once.
    pub presence_debounce: Duration,
    /// Prefix of file download URLs; the file id is appended (default `/api/v1/chat/files/`).
    pub file_url_prefix: String,
    /// Words the built-in word filter ([`crate::word_filter`]) masks or refuses in sends and
    /// edits (default none: no filter).
    pub blocked_words: Vec<String>,
    /// What the word filter does with a blocked word (default: mask it).
    pub blocked_words_action: crate::word_filter::WordFilterAction,
    /// Messages older than this many days are deleted (as tombstones, each a seq'd deletion),
    /// checked at start and then hourly (default `None`: kept for ever; 1 to 36,500).
    pub retention_days: Option<u32>,
}

/// The contract's default file allow-list.
pub const DEFAULT_ALLOWED_MIME_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "audio/mpeg",
    "audio/ogg",
    "audio/x-wav",
    "audio/webm",
    "text/plain",
];

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_chars: 4000,
            max_file_bytes: 10 * 1024 * 1024,
            allowed_mime_types: DEFAULT_ALLOWED_MIME_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            rate_limit_burst: 10,
            rate_limit_window: Duration::from_secs(10),
            typing_rate_burst: 20,
            typing_ttl: Duration::from_secs(5),
            subscriber_queue: 1024,
            plugin_queue: 4096,
            default_page_limit: 50,
            max_page_limit: 100,
            presence_debounce: Duration::from_millis(250),
            file_url_prefix: "/api/v1/chat/files/".to_string(),
            blocked_words: Vec::new(),
            blocked_words_action: crate::word_filter::WordFilterAction::Mask,
            retention_days: None,
        }
    }
}

/// The longest duration a config may hold (one day), so that no deadline computed from it can
/// overflow the clock.
pub const MAX_CONFIG_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

impl Config {
    /// Refuses limits the engine cannot run with: a zero size, count, burst or queue (a queue of
    /// zero cannot even be made), a zero or over-a-day window or expiry, a default page larger
    /// than the largest. Every front end (the host's settings, the FFI's `EngineConfig`) checks
    /// its values here, so the rules are the same whichever way an engine is configured.
    /// The error is `VALIDATION`, naming the field.
    pub fn validate(&self) -> crate::Result<()> {
        fn at_least_one(name: &str, value: u64) -> crate::Result<()> {
            if value == 0 {
                return Err(crate::Error::Validation(format!(
                    "{name} must be at least 1"
                )));
            }
            Ok(())
        }
        fn duration(name: &str, value: Duration, zero_allowed: bool) -> crate::Result<()> {
            if (value.is_zero() && !zero_allowed) || value > MAX_CONFIG_DURATION {
                let low = if zero_allowed { 0 } else { 1 };
                return Err(crate::Error::Validation(format!(
                    "{name} must be between {low} and {} ms",
                    MAX_CONFIG_DURATION.as_millis()
                )));
            }
            Ok(())
        }
        at_least_one("max_message_chars", self.max_message_chars as u64)?;
        at_least_one("max_file_bytes", self.max_file_bytes)?;
        at_least_one("rate_limit_burst", u64::from(self.rate_limit_burst))?;
        duration("rate_limit_window", self.rate_limit_window, false)?;
        at_least_one("typing_rate_burst", u64::from(self.typing_rate_burst))?;
        duration("typing_ttl", self.typing_ttl, false)?;
        at_least_one("subscriber_queue", self.subscriber_queue as u64)?;
        at_least_one("plugin_queue", self.plugin_queue as u64)?;
        at_least_one("default_page_limit", u64::from(self.default_page_limit))?;
        at_least_one("max_page_limit", u64::from(self.max_page_limit))?;
        if self.default_page_limit > self.max_page_limit {
            return Err(crate::Error::Validation(format!(
                "default_page_limit ({}) must not exceed max_page_limit ({})",
                self.default_page_limit, self.max_page_limit
            )));
        }
        duration("presence_debounce", self.presence_debounce, true)?;
        if self.retention_days.is_some_and(|d| d == 0 || d > 36_500) {
            return Err(crate::Error::Validation(
                "retention_days must be 1 to 36500".into(),
            ));
        }
        if let Some(w) = self
            .blocked_words
            .iter()
            .find(|w| w.trim().is_empty() || w.trim().split_word_bounds().count() != 1)
        {
            return Err(crate::Error::Validation(format!(
                "blocked word {w:?} must be one word"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(change: impl FnOnce(&mut Config)) -> String {
        let mut c = Config::default();
        change(&mut c);
        match c.validate() {
            Err(crate::Error::Validation(m)) => m,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        Config::default().validate().unwrap();
        let c = Config {
            presence_debounce: Duration::ZERO,
            default_page_limit: 7,
            max_page_limit: 7,
            ..Config::default()
        };
        c.validate().unwrap();
    }

    #[test]
    fn limits_the_engine_cannot_run_with_are_refused() {
        assert_eq!(
            refused(|c| c.rate_limit_burst = 0),
            "rate_limit_burst must be at least 1"
        );
        assert_eq!(
            refused(|c| c.rate_limit_window = Duration::ZERO),
            "rate_limit_window must be between 1 and 86400000 ms"
        );
        refused(|c| c.rate_limit_window = MAX_CONFIG_DURATION + Duration::from_millis(1));
        refused(|c| c.max_message_chars = 0);
        refused(|c| c.max_file_bytes = 0);
        refused(|c| c.typing_rate_burst = 0);
        refused(|c| c.typing_ttl = Duration::ZERO);
        refused(|c| c.subscriber_queue = 0);
        refused(|c| c.plugin_queue = 0);
        refused(|c| c.default_page_limit = 0);
        refused(|c| c.max_page_limit = 0);
        assert_eq!(
            refused(|c| c.default_page_limit = 101),
            "default_page_limit (101) must not exceed max_page_limit (100)"
        );
        refused(|c| c.presence_debounce = Duration::from_secs(2 * 86_400));
    }
}
