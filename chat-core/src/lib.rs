//! # chat-core
//!
//! The course-chat engine: every rule of the contract (`docs/CONTRACT.md`) in one library that
//! the server (`chat-host`), the bindings (`chat-ffi`) and Rust programs embed.
//!
//! Start with [`Engine`]: open it on a folder ([`Engine::open`]) or in memory
//! ([`Engine::in_memory`]), provision courses, and call its methods with the [`Actor`] you
//! authenticated. Real-time clients [`connect`](Engine::connect) and read [`Events`].
//!
//! The spine is the per-course sequence: every message change (new, edit, delete) takes the next
//! seq of its course in the same atomic, durable write that stores it; events carry it; history,
//! resume and de-duplication are all "what came after seq N".
//!
//! Where things live:
//! - [`model`]: users, courses, messages, receipts, files, reactions (the contract's JSON);
//! - [`event`]: the server events;
//! - [`engine`]: the operations and their rules, one concern a file (users, courses and access,
//!   writes, reads, rooms), and how a node works with others;
//! - [`stream`]: a connection's ordered, gap-free event stream ([`Events`]);
//! - [`store`]: the [`Store`] trait and its backends (sled, memory), with a conformance suite;
//! - [`cluster`]: what the nodes of a deployment share besides the store (a bus, presence, rate
//!   limits), with single-node defaults;
//! - [`blob`]: uploaded bytes, content sniffing and the file policy;
//! - [`plugin`]: moderation and notification hooks; [`word_filter`]: the built-in one, masking or
//!   refusing listed words (`Config::blocked_words`);
//! - [`history`]: history pages; [`search`]: the full-text index that follows the change log;
//! - `hub`, `typing`: a course's fan-out on this node, typing expiry (internal);
//! - [`config`], [`error`]: limits and the one error type.

pub mod blob;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod error;
pub mod event;
pub mod history;
mod hub;
pub mod model;
pub mod plugin;
pub mod search;
pub mod store;
pub mod stream;
mod typing;
pub mod word_filter;

pub use cluster::Cluster;
pub use config::Config;
pub use engine::{
    Attachment, Connection, CourseUpdate, Engine, EngineBuilder, Joined, Resume, SendMessage,
    WeakEngine,
};
pub use error::{Error, ErrorCode, Result};
pub use event::{Envelope, Event};
pub use history::{HistoryPage, HistoryQuery, Pagination};
pub use model::{
    Actor, AuditEntry, Course, FileInfo, Flag, FlagResolution, Message, MessageType, Participant,
    PushSubscription, Reaction, ReadBy, ReadReceipt, ReplyPreview, Restriction, Role, Sender,
    ThreadPage, Timestamp, User,
};
pub use plugin::{Draft, DraftKind, Plugin, PluginError, Verdict};
pub use store::Store;
pub use stream::Events;
