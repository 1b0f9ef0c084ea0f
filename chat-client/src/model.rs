//! The client's own values: what the outbox holds, what a history page is, where a course stands
//! in the cache. The contract's values (`Message`, `User`, `ReadReceipt`, ...) are chat-core's,
//! re-exported from the crate root, so the wire has one definition.

use chat_core::{Message, MessageType};
use serde::{Deserialize, Serialize};

/// Where a message written on this device is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum OutboxState {
    /// Waiting to be delivered (offline, or on its way).
    Pending,
    /// Refused for good by the server (validation, not enrolled, forbidden...): kept until
    /// retried or discarded.
    Failed {
        /// The contract's error code.
        code: String,
        /// The server's message.
        message: String,
    },
}

/// A message written on this device and not yet acknowledged by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    /// The idempotency key sent with every attempt: the server stores the message once.
    pub client_id: String,
    /// The course it goes to.
    pub course_id: String,
    /// Its text.
    pub message: String,
    /// Its kind (text for the outbox; files go through [`crate::Client::send_file`]).
    pub message_type: MessageType,
    /// The id of the message it answers.
    pub reply_to: Option<String>,
    /// Pending or failed.
    pub state: OutboxState,
    /// When it was written, in milliseconds since the Unix epoch (device clock).
    pub created_at_ms: u64,
}

/// A page of a course's history, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// The messages, oldest first (tombstones included, as the server shows them).
    pub messages: Vec<Message>,
    /// Whether older messages exist (ask again with `before` = the first message's seq).
    pub has_more: bool,
    /// False when the page could not be completed from the server (offline): it holds what the
    /// cache has, and a later call fills the rest.
    pub complete: bool,
}

/// What the cache knows about a course.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CourseState {
    /// Whether the course's room is joined on every (re)connect.
    pub joined: bool,
    /// The highest change seq held (messages' `changeSeq`, deletions' `seq`): what a resume asks
    /// to be replayed after. `None` until the first join.
    pub last_seq: Option<u64>,
    /// The store epoch `last_seq` belongs to.
    pub epoch: Option<String>,
    /// Every message created at or after this seq is in the cache (0: the whole history). `None`
    /// when nothing is known.
    pub floor: Option<u64>,
    /// This user's read watermark: the seq of the newest message they have read.
    pub read_seq: u64,
    /// A mark-read not yet acknowledged by the server (sent on the next connection).
    pub pending_read: Option<String>,
}
