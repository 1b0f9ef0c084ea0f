//! The contract's values as uniffi records and enums, and their conversions to and from
//! `chat-core`.
//!
//! Timestamps cross the boundary as strings, exactly as the contract prints them: RFC 3339 UTC
//! with milliseconds (`2024-05-01T12:00:00.123Z`, like JavaScript's `toISOString`).

use chat_core as core;

/// A user's role, globally (the actor) and per course (participant role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Role {
    /// A learner.
    Student,
    /// Teaches the course: may delete any message of it.
    Instructor,
    /// May do anything, on every course, and provision courses.
    Admin,
}

impl From<core::Role> for Role {
    fn from(r: core::Role) -> Self {
        match r {
            core::Role::Student => Role::Student,
            core::Role::Instructor => Role::Instructor,
            core::Role::Admin => Role::Admin,
        }
    }
}

impl From<Role> for core::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Student => core::Role::Student,
            Role::Instructor => core::Role::Instructor,
            Role::Admin => core::Role::Admin,
        }
    }
}

/// What kind of content a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum MessageType {
    /// Text only.
    Text,
    /// An image file.
    Image,
    /// Any allowed file.
    File,
    /// An audio file.
    Audio,
    /// A message from the system (admins only).
    System,
}

impl From<core::MessageType> for MessageType {
    fn from(t: core::MessageType) -> Self {
        match t {
            core::MessageType::Text => MessageType::Text,
            core::MessageType::Image => MessageType::Image,
            core::MessageType::File => MessageType::File,
            core::MessageType::Audio => MessageType::Audio,
            core::MessageType::System => MessageType::System,
        }
    }
}

impl From<MessageType> for core::MessageType {
    fn from(t: MessageType) -> Self {
        match t {
            MessageType::Text => core::MessageType::Text,
            MessageType::Image => core::MessageType::Image,
            MessageType::File => core::MessageType::File,
            MessageType::Audio => core::MessageType::Audio,
            MessageType::System => core::MessageType::System,
        }
    }
}

/// Who is calling: the identity the embedding program authenticated. Passed to every call.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Actor {
    /// The user id (1 to 128 characters, no control characters).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Avatar URL.
    #[uniffi(default)]
    pub avatar: Option<String>,
    /// Global role.
    pub role: Role,
}

impl From<Actor> for core::Actor {
    fn from(a: Actor) -> Self {
        core::Actor {
            id: a.id,
            name: a.name,
            avatar: a.avatar,
            role: a.role.into(),
        }
    }
}

impl From<core::Actor> for Actor {
    fn from(a: core::Actor) -> Self {
        Actor {
            id: a.id,
            name: a.name,
            avatar: a.avatar,
            role: a.role.into(),
        }
    }
}

/// A user as the contract shows it, with presence.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct User {
    /// The user id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Avatar URL.
    pub avatar: Option<String>,
    /// Global role.
    pub role: Role,
    /// True while at least one connection is open (or the user said so with `set_status`).
    pub is_online: bool,
    /// When the user was last seen (RFC 3339).
    pub last_seen: Option<String>,
}

impl From<core::User> for User {
    fn from(u: core::User) -> Self {
        User {
            id: u.id,
            name: u.name,
            avatar: u.avatar,
            role: u.role.into(),
            is_online: u.is_online,
            last_seen: u.last_seen.map(|t| t.to_string()),
        }
    }
}

/// A message's author, as embedded in the message.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Sender {
    /// User id.
    pub id: String,
    /// Display name at the time of sending.
    pub name: String,
    /// Avatar URL.
    pub avatar: Option<String>,
    /// Global role.
    pub role: Role,
}

impl From<core::Sender> for Sender {
    fn from(s: core::Sender) -> Self {
        Sender {
            id: s.id,
            name: s.name,
            avatar: s.avatar,
            role: s.role.into(),
        }
    }
}

/// A course: one chat room.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Course {
    /// The course id (chosen by the LMS).
    pub id: String,
    /// Display name.
    pub name: String,
    /// When false, nobody can send, edit or type.
    pub chat_enabled: bool,
    /// Enrolled user ids, instructors included.
    pub participants: Vec<String>,
    /// Archived: read-only for good.
    #[uniffi(default = false)]
    pub archived: bool,
}

impl From<core::Course> for Course {
    fn from(c: core::Course) -> Self {
        Course {
            id: c.id,
            name: c.name,
            chat_enabled: c.chat_enabled,
            participants: c.participants,
            archived: c.archived,
        }
    }
}

/// Changes to a course; absent fields keep their value (on creation: the name defaults to the
/// id, chat to enabled).
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct CourseUpdate {
    /// Display name (1 to 200 characters).
    #[uniffi(default)]
    pub name: Option<String>,
    /// Whether chat is enabled.
    #[uniffi(default)]
    pub chat_enabled: Option<bool>,
    /// Archive the course (read-only for good) or bring it back.
    #[uniffi(default)]
    pub archived: Option<bool>,
}

impl From<CourseUpdate> for core::CourseUpdate {
    fn from(u: CourseUpdate) -> Self {
        core::CourseUpdate {
            name: u.name,
            chat_enabled: u.chat_enabled,
            archived: u.archived,
        }
    }
}

/// A participant of a course and their role in it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Participant {
    /// User id.
    pub user_id: String,
    /// Role in the course.
    pub role: Role,
}

impl From<core::Participant> for Participant {
    fn from(p: core::Participant) -> Self {
        Participant {
            user_id: p.user_id,
            role: p.role.into(),
        }
    }
}

/// An uploaded file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FileInfo {
    /// Server-made id.
    pub id: String,
    /// Where to download it (`/api/v1/chat/files/:id` by default).
    pub url: String,
    /// Display name given by the client (sanitized).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type sniffed from the bytes.
    pub mime_type: String,
    /// How long an audio file plays, in milliseconds (none for other files).
    #[uniffi(default = None)]
    pub duration_ms: Option<u64>,
}

impl From<core::FileInfo> for FileInfo {
    fn from(f: core::FileInfo) -> Self {
        FileInfo {
            id: f.id,
            url: f.url,
            name: f.name,
            size: f.size,
            mime_type: f.mime_type,
            duration_ms: f.duration_ms,
        }
    }
}

/// A file's metadata and bytes.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FileData {
    /// The metadata.
    pub info: FileInfo,
    /// The content.
    pub bytes: Vec<u8>,
}

/// What a reply shows of the message it answers.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ReplyPreview {
    /// The id of the message replied to.
    pub id: String,
    /// Its author.
    pub sender: Sender,
    /// Its first 200 characters (empty once deleted).
    pub message: String,
    /// Whether it has been deleted since.
    pub is_deleted: bool,
}

impl From<core::ReplyPreview> for ReplyPreview {
    fn from(r: core::ReplyPreview) -> Self {
        ReplyPreview {
            id: r.id,
            sender: r.sender.into(),
            message: r.message,
            is_deleted: r.is_deleted,
        }
    }
}

/// One reader of a message.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ReadBy {
    /// Who read it.
    pub user_id: String,
    /// When (RFC 3339).
    pub read_at: String,
}

impl From<core::ReadBy> for ReadBy {
    fn from(r: core::ReadBy) -> Self {
        ReadBy {
            user_id: r.user_id,
            read_at: r.read_at.to_string(),
        }
    }
}

/// The reactions of one emoji on a message.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Reaction {
    /// One emoji or a `:shortcode:`.
    pub emoji: String,
    /// How many users reacted with it.
    pub count: u64,
    /// Who, in the order they reacted.
    pub user_ids: Vec<String>,
}

impl From<core::Reaction> for Reaction {
    fn from(r: core::Reaction) -> Self {
        Reaction {
            emoji: r.emoji,
            count: r.count,
            user_ids: r.user_ids,
        }
    }
}

/// A chat message, as stored and as shown.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Message {
    /// Server-made ULID, sortable by creation.
    pub id: String,
    /// The course (room).
    pub course_id: String,
    /// The course seq at which the message was created.
    pub seq: u64,
    /// The course seq of the latest change this value reflects.
    pub change_seq: u64,
    /// Author.
    pub sender: Sender,
    /// Text (empty for a tombstone).
    pub message: String,
    /// Kind of content.
    pub message_type: MessageType,
    /// Attached file.
    pub file: Option<FileInfo>,
    /// The message this one answers.
    pub reply_to: Option<ReplyPreview>,
    /// Who has read it (never the sender).
    pub read_by: Vec<ReadBy>,
    /// Whether the text was edited.
    pub is_edited: bool,
    /// When it was last edited (RFC 3339).
    pub edited_at: Option<String>,
    /// Whether it was deleted (a tombstone).
    pub is_deleted: bool,
    /// When it was deleted (RFC 3339).
    pub deleted_at: Option<String>,
    /// The client's idempotency key, echoed back.
    pub client_id: Option<String>,
    /// When it was sent (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// Reactions by emoji, in the order each emoji was first used.
    #[uniffi(default = [])]
    pub reactions: Vec<Reaction>,
    /// Pinned by a moderator.
    #[uniffi(default = false)]
    pub pinned: bool,
    /// When it was pinned (RFC 3339).
    #[uniffi(default = None)]
    pub pinned_at: Option<String>,
    /// Who pinned it.
    #[uniffi(default = None)]
    pub pinned_by: Option<String>,
    /// The thread's root, when this message is a reply in a thread.
    #[uniffi(default = None)]
    pub thread_id: Option<String>,
    /// On a thread's root: its replies, deleted ones included.
    #[uniffi(default = 0)]
    pub reply_count: u64,
    /// On a thread's root: when the latest reply was sent (RFC 3339).
    #[uniffi(default = None)]
    pub last_reply_at: Option<String>,
    /// The participants the text mentions, by user id.
    #[uniffi(default = [])]
    pub mentions: Vec<String>,
}

impl From<core::Message> for Message {
    fn from(m: core::Message) -> Self {
        Message {
            id: m.id,
            course_id: m.course_id,
            seq: m.seq,
            change_seq: m.change_seq,
            sender: m.sender.into(),
            message: m.message,
            message_type: m.message_type.into(),
            file: m.file.map(Into::into),
            reply_to: m.reply_to.map(Into::into),
            read_by: m.read_by.into_iter().map(Into::into).collect(),
            is_edited: m.is_edited,
            edited_at: m.edited_at.map(|t| t.to_string()),
            is_deleted: m.is_deleted,
            deleted_at: m.deleted_at.map(|t| t.to_string()),
            client_id: m.client_id,
            created_at: m.created_at.to_string(),
            updated_at: m.updated_at.to_string(),
            reactions: m.reactions.into_iter().map(Into::into).collect(),
            pinned: m.pinned,
            pinned_at: m.pinned_at.map(|t| t.to_string()),
            pinned_by: m.pinned_by,
            thread_id: m.thread_id,
            reply_count: m.reply_count,
            last_reply_at: m.last_reply_at.map(|t| t.to_string()),
            mentions: m.mentions,
        }
    }
}

/// A read receipt: `user_id` has read `message_id` and everything before it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ReadReceipt {
    /// The message marked read.
    pub message_id: String,
    /// Its course.
    pub course_id: String,
    /// The reader.
    pub user_id: String,
    /// When the reader's watermark first passed the message (RFC 3339).
    pub read_at: String,
}

impl From<core::ReadReceipt> for ReadReceipt {
    fn from(r: core::ReadReceipt) -> Self {
        ReadReceipt {
            message_id: r.message_id,
            course_id: r.course_id,
            user_id: r.user_id,
            read_at: r.read_at.to_string(),
        }
    }
}

/// A file sent with a message.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Attachment {
    /// The name the client gave (display only).
    pub name: String,
    /// The bytes; the type is sniffed from them.
    pub bytes: Vec<u8>,
}

/// A new message to send.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SendMessage {
    /// The course (room).
    pub course_id: String,
    /// The text (trimmed; may be empty when a file is attached).
    pub message: String,
    /// The type; derived from the file when absent.
    #[uniffi(default)]
    pub message_type: Option<MessageType>,
    /// The id of a message of the same course this one answers.
    #[uniffi(default)]
    pub reply_to: Option<String>,
    /// The root of the thread this message is a reply in (a message of the same course).
    #[uniffi(default)]
    pub thread_id: Option<String>,
    /// The client's idempotency key: the same key returns the original message.
    #[uniffi(default)]
    pub client_id: Option<String>,
    /// A file to upload with the message.
    #[uniffi(default)]
    pub attachment: Option<Attachment>,
}

impl From<SendMessage> for core::SendMessage {
    fn from(s: SendMessage) -> Self {
        core::SendMessage {
            course_id: s.course_id,
            message: s.message,
            message_type: s.message_type.map(Into::into),
            reply_to: s.reply_to,
            thread_id: s.thread_id,
            client_id: s.client_id,
            attachment: s.attachment.map(|a| core::Attachment {
                name: a.name,
                bytes: bytes::Bytes::from(a.bytes),
            }),
        }
    }
}

/// A history request. Page 1 is the newest `limit` messages; `before` / `after` cut by seq.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct HistoryQuery {
    /// 1-based page, newest first (default 1). Ignored with `before` / `after`.
    #[uniffi(default)]
    pub page: Option<u32>,
    /// Page size (default 50, capped at 100).
    #[uniffi(default)]
    pub limit: Option<u32>,
    /// Only messages created before this seq.
    #[uniffi(default)]
    pub before: Option<u64>,
    /// Only messages created after this seq.
    #[uniffi(default)]
    pub after: Option<u64>,
}

impl From<HistoryQuery> for core::HistoryQuery {
    fn from(q: HistoryQuery) -> Self {
        core::HistoryQuery {
            page: q.page,
            limit: q.limit,
            before: q.before,
            after: q.after,
        }
    }
}

/// The contract's `pagination` object.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Pagination {
    /// The page served.
    pub page: u32,
    /// The page size used.
    pub limit: u32,
    /// Messages in the course, tombstones included.
    pub total: u64,
    /// Pages of `limit` in the course.
    pub total_pages: u64,
    /// Whether more messages lie beyond this page in the direction of the query.
    pub has_more: bool,
}

impl From<core::Pagination> for Pagination {
    fn from(p: core::Pagination) -> Self {
        Pagination {
            page: p.page,
            limit: p.limit,
            total: p.total,
            total_pages: p.total_pages,
            has_more: p.has_more,
        }
    }
}

/// A page of history: messages oldest first, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryPage {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// Where the page stands.
    pub pagination: Pagination,
}

impl From<core::HistoryPage> for HistoryPage {
    fn from(p: core::HistoryPage) -> Self {
        HistoryPage {
            messages: p.messages.into_iter().map(Into::into).collect(),
            pagination: p.pagination.into(),
        }
    }
}

/// A pin or unpin (`message-pinned`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PinChange {
    /// The message.
    pub message_id: String,
    /// Its course.
    pub course_id: String,
    /// Pinned (true) or unpinned.
    pub pinned: bool,
    /// Who pinned it (`None` once unpinned).
    pub pinned_by: Option<String>,
    /// When it was pinned (RFC 3339; `None` once unpinned).
    pub pinned_at: Option<String>,
    /// The course seq of the change.
    pub seq: u64,
}

impl From<core::event::PinEvent> for PinChange {
    fn from(p: core::event::PinEvent) -> Self {
        PinChange {
            message_id: p.message_id,
            course_id: p.course_id,
            pinned: p.pinned,
            pinned_by: p.pinned_by,
            pinned_at: p.pinned_at.map(|t| t.to_string()),
            seq: p.seq,
        }
    }
}

/// A mute or unmute (`user-muted`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MuteChange {
    /// The course.
    pub course_id: String,
    /// The user.
    pub user_id: String,
    /// Until when (RFC 3339); `None`: unmuted.
    pub muted_until: Option<String>,
    /// The moderator.
    pub by: String,
}

impl From<core::event::UserMuted> for MuteChange {
    fn from(m: core::event::UserMuted) -> Self {
        MuteChange {
            course_id: m.course_id,
            user_id: m.user_id,
            muted_until: m.muted_until.map(|t| t.to_string()),
            by: m.by,
        }
    }
}

/// A ban or unban (`user-banned`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BanChange {
    /// The course.
    pub course_id: String,
    /// The user.
    pub user_id: String,
    /// Banned (true) or unbanned.
    pub banned: bool,
    /// The moderator.
    pub by: String,
}

impl From<core::event::UserBanned> for BanChange {
    fn from(b: core::event::UserBanned) -> Self {
        BanChange {
            course_id: b.course_id,
            user_id: b.user_id,
            banned: b.banned,
            by: b.by,
        }
    }
}

/// A user's mute and ban in a course.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Restriction {
    /// The course.
    pub course_id: String,
    /// The user.
    pub user_id: String,
    /// Muted until then (RFC 3339), if muted.
    pub muted_until: Option<String>,
    /// Banned from the course's chat.
    pub banned: bool,
    /// The moderator who last changed it.
    pub updated_by: String,
    /// When (RFC 3339).
    pub updated_at: String,
}

impl From<core::Restriction> for Restriction {
    fn from(r: core::Restriction) -> Self {
        Restriction {
            course_id: r.course_id,
            user_id: r.user_id,
            muted_until: r.muted_until.map(|t| t.to_string()),
            banned: r.banned,
            updated_by: r.updated_by,
            updated_at: r.updated_at.to_string(),
        }
    }
}

/// A participant's report of a message, in the course's moderator queue.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Flag {
    /// The flag's id.
    pub id: String,
    /// The course.
    pub course_id: String,
    /// The reported message.
    pub message_id: String,
    /// Who reported it.
    pub reporter_id: String,
    /// Why.
    pub reason: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// Whether a moderator dealt with it.
    pub resolved: bool,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// When (RFC 3339).
    pub resolved_at: Option<String>,
    /// Whether resolving it deleted the message.
    pub message_deleted: bool,
}

impl From<core::Flag> for Flag {
    fn from(f: core::Flag) -> Self {
        let r = f.resolution;
        Flag {
            id: f.id,
            course_id: f.course_id,
            message_id: f.message_id,
            reporter_id: f.reporter_id,
            reason: f.reason,
            created_at: f.created_at.to_string(),
            resolved: r.is_some(),
            resolved_by: r.as_ref().map(|r| r.by.clone()),
            resolved_at: r.as_ref().map(|r| r.at.to_string()),
            message_deleted: r.is_some_and(|r| r.message_deleted),
        }
    }
}

/// One moderation action in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AuditEntry {
    /// The entry's id (sorts by time).
    pub id: String,
    /// The course.
    pub course_id: String,
    /// The moderator.
    pub actor_id: String,
    /// `mute`, `unmute`, `ban`, `unban`, `pin`, `unpin`, `delete-message`, `resolve-flag`.
    pub action: String,
    /// The user acted on.
    pub target_user_id: Option<String>,
    /// The message acted on.
    pub message_id: Option<String>,
    /// More about it.
    pub detail: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

impl From<core::AuditEntry> for AuditEntry {
    fn from(e: core::AuditEntry) -> Self {
        AuditEntry {
            id: e.id,
            course_id: e.course_id,
            actor_id: e.actor_id,
            action: e.action,
            target_user_id: e.target_user_id,
            message_id: e.message_id,
            detail: e.detail,
            at: e.at.to_string(),
        }
    }
}

/// A thread's root and a page of its replies, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ThreadPage {
    /// The root, with `reply_count` and `last_reply_at`.
    pub root: Message,
    /// The replies of the page.
    pub replies: Vec<Message>,
    /// Whether more replies follow (ask again with `after` the last reply's `seq`).
    pub has_more: bool,
}

impl From<core::ThreadPage> for ThreadPage {
    fn from(p: core::ThreadPage) -> Self {
        ThreadPage {
            root: p.root.into(),
            replies: p.replies.into_iter().map(Into::into).collect(),
            has_more: p.has_more,
        }
    }
}

/// A thread's new count (`thread-updated`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ThreadChange {
    /// The course.
    pub course_id: String,
    /// The thread's root.
    pub thread_id: String,
    /// Its replies now.
    pub reply_count: u64,
    /// When the latest reply was sent (RFC 3339).
    pub last_reply_at: String,
    /// The latest reply.
    pub last_reply_id: String,
}

impl From<core::event::ThreadUpdated> for ThreadChange {
    fn from(t: core::event::ThreadUpdated) -> Self {
        ThreadChange {
            course_id: t.course_id,
            thread_id: t.thread_id,
            reply_count: t.reply_count,
            last_reply_at: t.last_reply_at.to_string(),
            last_reply_id: t.last_reply_id,
        }
    }
}

/// One hit of a search.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SearchHit {
    /// The message (its `read_by` is left empty).
    pub message: Message,
    /// Its relevance (higher is better).
    pub score: f32,
    /// The text around the matched words, HTML-escaped, matches in `<b>…</b>`.
    pub highlight: String,
}

impl From<core::search::SearchHit> for SearchHit {
    fn from(h: core::search::SearchHit) -> Self {
        SearchHit {
            message: h.message.into(),
            score: h.score,
            highlight: h.highlight,
        }
    }
}

/// A device's Web Push subscription.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PushSubscription {
    /// Whose device.
    pub user_id: String,
    /// The push service URL.
    pub endpoint: String,
    /// The device's P-256 public key, base64url.
    pub p256dh: String,
    /// The device's auth secret, base64url.
    pub auth: String,
    /// When it was registered (RFC 3339).
    pub created_at: String,
}

impl From<core::PushSubscription> for PushSubscription {
    fn from(s: core::PushSubscription) -> Self {
        PushSubscription {
            user_id: s.user_id,
            endpoint: s.endpoint,
            p256dh: s.p256dh,
            auth: s.auth,
            created_at: s.created_at.to_string(),
        }
    }
}
