//! The engine's limits and settings, with the contract's defaults.

use std::time::Duration;

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
        }
    }
}
