//! Persistence behind one small trait.
//!
//! [`Store`] is what the engine needs from a database, and nothing more. Its one hard rule is the
//! spine of the project: **every message change takes the next seq of its course in the same atomic
//! write that stores it, and the call returns only once that write is durable.** Seq allocation
//! lives behind the trait, never in callers, so a database shared by nodes (Postgres) can keep
//! the same guarantee across nodes.
//!
//! Backends:
//! - [`kv`]: the whole logic of the trait over an ordered key-value map ([`kv::KvBackend`]),
//!   shared by the two embedded backends so they cannot drift apart;
//! - [`memory`]: a `BTreeMap`, for tests and ephemeral use;
//! - [`sled`](mod@crate::store::sled): sled on disk, the default, made durable by a write-ahead
//!   log (`wal`) with group commit;
//! - `postgres` (cargo feature `postgres`): PostgreSQL through sqlx, one database shared by
//!   several server processes; seqs come from a locked counter row per course;
//! - [`conformance`]: the one test suite every backend must pass.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{
    AuditEntry, Flag, Message, Participant, PushSubscription, Restriction, Role, Timestamp,
};

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod kv;
pub mod memory;
#[cfg(feature = "sled")]
mod pending;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sled")]
pub mod sled;
#[cfg(feature = "sled")]
mod wal;

/// A user's stored profile (presence lives in memory, `last_seen` is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredUser {
    /// User id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Avatar URL.
    pub avatar: Option<String>,
    /// Global role.
    pub role: Role,
    /// When their last connection closed.
    pub last_seen: Option<Timestamp>,
}

/// A course's stored settings (participants are kept apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CourseRecord {
    /// Course id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether sending, editing and typing are allowed.
    pub chat_enabled: bool,
    /// Archived: read-only for good (every write is refused with `CHAT_DISABLED`), and ready
    /// to be exported and dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

/// What a change did to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Created.
    New,
    /// Text edited.
    Edited,
    /// Soft-deleted (tombstone).
    Deleted,
    /// A reaction added or removed (the change's `reaction` says which).
    Reacted,
    /// Pinned or unpinned by a moderator (the message's `pinned` says which).
    Pinned,
}

/// What a [`ChangeKind::Reacted`] change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionChange {
    /// Who reacted.
    pub user_id: String,
    /// With what.
    pub emoji: String,
    /// Added (true) or removed.
    pub added: bool,
}

/// One entry of a course's change log: the message as it was right after change `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The course seq of the change.
    pub seq: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The message after the change (`change_seq == seq`). Once a message is deleted, every earlier
    /// snapshot of it is scrubbed to a tombstone too.
    pub message: Message,
    /// For a reaction change, who added or removed which emoji.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<ReactionChange>,
}

/// The outcome of [`Store::insert_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Stored with a new seq.
    New(Message),
    /// The same sender already sent this `clientId` in this course: the original, nothing written.
    Duplicate(Message),
}

/// An edit, deletion or reaction to apply with [`Store::update_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// `Edited`, `Deleted`, `Reacted` or `Pinned`.
    pub kind: ChangeKind,
    /// The full new state of the message (its `change_seq` is set by the store).
    pub message: Message,
    /// The `change_seq` the caller read; if the message changed since, the store answers
    /// [`Error::Conflict`](crate::Error::Conflict) and writes nothing.
    pub expected_change_seq: u64,
    /// With `Reacted`: the reaction added or removed, kept in the change log so a resume replays
    /// it as `reaction-added` / `reaction-removed`.
    pub reaction: Option<ReactionChange>,
}

impl Update {
    /// Refuses what no backend may store: a `New` change (that is [`Store::insert_message`]'s) or
    /// a message whose stored course (`home`) is not the one the update names.
    pub fn check(&self, home: &str) -> crate::error::Result<()> {
        if self.kind == ChangeKind::New {
            return Err(crate::error::Error::validation(
                "update_message takes an edit, a deletion or a reaction",
            ));
        }
        if (self.kind == ChangeKind::Reacted) != self.reaction.is_some() {
            return Err(crate::error::Error::validation(
                "a reaction change (and only one) names its reaction",
            ));
        }
        if home != self.message.course_id {
            return Err(crate::error::Error::validation(
                "a message cannot move to another course",
            ));
        }
        Ok(())
    }
}

/// One step of a user's read watermark in a course: at `at`, they had read up to `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadMark {
    /// The reader.
    pub user_id: String,
    /// Every message with a creation seq at most this is read.
    pub seq: u64,
    /// When the watermark moved there.
    pub at: Timestamp,
}

/// The outcome of [`Store::advance_read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadAdvance {
    /// The watermark moved to the new mark.
    Advanced(ReadMark),
    /// It was already there: the earliest mark that covers the seq.
    Already(ReadMark),
}

/// Metadata of an uploaded file (the bytes are in a [`BlobStore`](crate::blob::BlobStore)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredFile {
    /// Server-made id.
    pub id: String,
    /// The course it was sent to (who may download it).
    pub course_id: String,
    /// Who uploaded it.
    pub uploader_id: String,
    /// Display name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Sniffed content type.
    pub mime_type: String,
    /// Playing time of an audio file, in milliseconds (see [`crate::FileInfo::duration_ms`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Upload time.
    pub created_at: Timestamp,
}

/// How many replies a thread has and when the latest was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSummary {
    /// The thread's root message.
    pub root_id: String,
    /// Its replies, deleted ones included.
    pub reply_count: u64,
    /// When the latest reply was sent.
    pub last_reply_at: Timestamp,
}

/// What the engine needs from a database. Every write returns only once it is durable.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates or replaces a user's profile.
    async fn put_user(&self, user: &StoredUser) -> Result<()>;
    /// A user's profile.
    async fn user(&self, id: &str) -> Result<Option<StoredUser>>;

    /// Creates or replaces a course's settings.
    async fn put_course(&self, course: &CourseRecord) -> Result<()>;
    /// A course's settings.
    async fn course(&self, id: &str) -> Result<Option<CourseRecord>>;
    /// Every course's id, ordered.
    async fn course_ids(&self) -> Result<Vec<String>>;
    /// Removes a course and everything of it (messages, change log, receipts, participants,
    /// restrictions, flags, file metadata; the audit log stays), returning the ids of its files
    /// so their bytes can go too. The course record goes last, so an interrupted drop can be run
    /// again. Its seqs start over if it is made again.
    async fn drop_course(&self, course_id: &str) -> Result<Vec<String>>;
    /// Enrolls a user (or changes their role).
    async fn put_participant(&self, course_id: &str, user_id: &str, role: Role) -> Result<()>;
    /// Removes a user from a course; false if they were not enrolled.
    async fn remove_participant(&self, course_id: &str, user_id: &str) -> Result<bool>;
    /// A user's role in a course, if enrolled.
    async fn participant(&self, course_id: &str, user_id: &str) -> Result<Option<Role>>;
    /// Every participant of a course, ordered by user id.
    async fn participants(&self, course_id: &str) -> Result<Vec<Participant>>;
    /// Every course a user is enrolled in, ordered by course id.
    async fn courses_of(&self, user_id: &str) -> Result<Vec<String>>;

    /// Stores a new message: allocates the next seq of its course (setting `seq` and
    /// `change_seq`), appends it to the change log and the timeline, indexes its `client_id`, all
    /// in one atomic write, which also moves the sender's read watermark to the new seq. A
    /// `client_id` already used by the same sender in the same course returns the original
    /// instead.
    async fn insert_message(&self, message: Message) -> Result<Inserted>;
    /// Applies an edit or deletion atomically with the next seq, if the message is still at
    /// `expected_change_seq`. Returns the stored message.
    async fn update_message(&self, update: Update) -> Result<Message>;
    /// A message's current state.
    async fn message(&self, id: &str) -> Result<Option<Message>>;
    /// The highest seq allocated in a course (0 when none).
    async fn last_seq(&self, course_id: &str) -> Result<u64>;
    /// [`last_seq`](Self::last_seq) of several courses, in the order given: what a node checks
    /// every few seconds to notice changes it was not told about.
    async fn last_seqs(&self, course_ids: &[String]) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(course_ids.len());
        for c in course_ids {
            out.push(self.last_seq(c).await?);
        }
        Ok(out)
    }
    /// The id of this store's history: made once when the store is created and never changed,
    /// so a seq a client remembers can be told apart from the same number in another store (a
    /// wiped or replaced database). Resume checks it before replaying.
    async fn epoch(&self) -> Result<String>;
    /// Log entries with `after < seq <= upto`, oldest first, at most `limit`.
    async fn changes(
        &self,
        course_id: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Change>>;
    /// How many messages a course has (tombstones included).
    async fn message_count(&self, course_id: &str) -> Result<u64>;
    /// Messages in creation order starting at position `from` (0 is the oldest), at most `limit`.
    async fn messages_at(&self, course_id: &str, from: u64, limit: usize) -> Result<Vec<Message>>;
    /// How many messages of the course were created with a seq below `seq`.
    async fn position_of_seq(&self, course_id: &str, seq: u64) -> Result<u64>;

    /// Moves a user's read watermark in a course up to `seq` (never down).
    async fn advance_read(
        &self,
        course_id: &str,
        user_id: &str,
        seq: u64,
        at: Timestamp,
    ) -> Result<ReadAdvance>;
    /// A user's current watermark in a course.
    async fn read_watermark(&self, course_id: &str, user_id: &str) -> Result<Option<ReadMark>>;
    /// For every user whose watermark reached `lo`: their marks with `lo <= seq <= hi`, plus their
    /// first mark above `hi` (what a page of messages between `lo` and `hi` needs for `readBy`).
    async fn read_marks(&self, course_id: &str, lo: u64, hi: u64) -> Result<Vec<ReadMark>>;

    /// Stores a file's metadata.
    async fn put_file(&self, file: &StoredFile) -> Result<()>;
    /// A file's metadata.
    async fn file(&self, id: &str) -> Result<Option<StoredFile>>;

    /// The summaries of the threads rooted at `root_ids` (messages of `course_id`); roots
    /// without replies are left out. [`insert_message`](Self::insert_message) indexes a message
    /// with a `thread_id` under its root in the same write.
    async fn thread_summaries(
        &self,
        course_id: &str,
        root_ids: &[String],
    ) -> Result<Vec<ThreadSummary>>;
    /// The replies of the thread rooted at `root_id` created after seq `after`, oldest first, at
    /// most `limit`, each in its current state.
    async fn thread_replies(&self, root_id: &str, after: u64, limit: usize)
        -> Result<Vec<Message>>;

    /// The pinned messages of a course (those whose current state has `pinned`), in creation
    /// order. [`update_message`](Self::update_message) keeps what this reads in step.
    async fn pinned(&self, course_id: &str) -> Result<Vec<Message>>;

    /// Creates or replaces a user's restriction in a course.
    async fn put_restriction(&self, restriction: &Restriction) -> Result<()>;
    /// Lifts a user's restriction in a course; false if there was none.
    async fn remove_restriction(&self, course_id: &str, user_id: &str) -> Result<bool>;
    /// A user's restriction in a course (possibly an expired mute).
    async fn restriction(&self, course_id: &str, user_id: &str) -> Result<Option<Restriction>>;
    /// Every restriction of a course, ordered by user id.
    async fn restrictions(&self, course_id: &str) -> Result<Vec<Restriction>>;

    /// Stores a new flag, unless its reporter already has an open flag on the same message:
    /// then that one, unchanged.
    async fn insert_flag(&self, flag: &Flag) -> Result<Flag>;
    /// Replaces a stored flag (to resolve it).
    async fn update_flag(&self, flag: &Flag) -> Result<()>;
    /// A flag.
    async fn flag(&self, id: &str) -> Result<Option<Flag>>;
    /// A course's flags, oldest first: the open ones only, or all.
    async fn flags(&self, course_id: &str, open_only: bool) -> Result<Vec<Flag>>;

    /// Appends an entry to the audit log.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// Audit entries newest first, of one course or of all, with ids below `before`, at most
    /// `limit`.
    async fn audit(
        &self,
        course_id: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>>;

    /// Stores (or replaces, by endpoint) one of a user's push subscriptions.
    async fn put_push_subscription(&self, subscription: &PushSubscription) -> Result<()>;
    /// Forgets one of a user's push subscriptions; false if there was none.
    async fn remove_push_subscription(&self, user_id: &str, endpoint: &str) -> Result<bool>;
    /// A user's push subscriptions, by endpoint.
    async fn push_subscriptions(&self, user_id: &str) -> Result<Vec<PushSubscription>>;
    /// The course's participants that have push subscriptions, by user id, each with theirs by
    /// endpoint: what every new message asks, so it is one read, and next to nothing when nobody
    /// subscribed.
    async fn push_subscribers(
        &self,
        course_id: &str,
    ) -> Result<Vec<(String, Vec<PushSubscription>)>>;

    /// Makes everything written so far durable (writes already are; this is for shutdown).
    async fn flush(&self) -> Result<()>;
}

/// Subscriptions ordered by user, grouped per user: the shape of
/// [`Store::push_subscribers`], shared by the backends.
pub(crate) fn by_user(
    subscriptions: impl IntoIterator<Item = PushSubscription>,
) -> Vec<(String, Vec<PushSubscription>)> {
    let mut out: Vec<(String, Vec<PushSubscription>)> = Vec::new();
    for sub in subscriptions {
        match out.last_mut() {
            Some((user, subs)) if *user == sub.user_id => subs.push(sub),
            _ => out.push((sub.user_id.clone(), vec![sub])),
        }
    }
    out
}
