//! The typed events a client hands to the app: the server's room events after the cache has
//! applied them, and the client's own news (connection state, outbox progress, unread counts,
//! upload progress).

use chat_core::{Message, ReadReceipt, User};

use crate::model::OutboxEntry;

/// Where the connection to the server stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Opening the WebSocket.
    Connecting,
    /// Connected; joined rooms are resumed and the outbox is flushing.
    Connected,
    /// Not connected; the next attempt is in `retry_in_ms` (exponential backoff with jitter).
    Disconnected {
        /// Why the last attempt or connection ended.
        reason: String,
        /// Milliseconds until the next attempt.
        retry_in_ms: u64,
    },
    /// The server refused the token: no retry until [`crate::Client::set_token`] gives a new one.
    Unauthorized {
        /// The server's reason.
        reason: String,
    },
    /// [`crate::Client::close`] was called.
    Closed,
}

/// An event for the app.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The connection changed state.
    Connection(ConnectionState),
    /// A course's room was joined (on every connect); `recovered` is false when the cache could
    /// not be made whole from where it was (first join, or the server's history was replaced):
    /// its history was reset and pages are reloaded from the server.
    Joined {
        /// The course.
        course_id: String,
        /// The seq live events follow.
        head_seq: u64,
        /// Whether every change since the cache's last seq is being replayed.
        recovered: bool,
    },
    /// A new message (live, or replayed on resume), already in the cache.
    NewMessage(Message),
    /// An edited message, already in the cache.
    MessageEdited(Message),
    /// A deleted message (the cache holds its tombstone).
    MessageDeleted {
        /// Its course.
        course_id: String,
        /// The deleted message.
        message_id: String,
        /// The course seq of the deletion.
        seq: u64,
    },
    /// Someone added a reaction (live, or replayed on resume); the cache holds the message with
    /// it.
    ReactionAdded {
        /// The course.
        course_id: String,
        /// The message.
        message_id: String,
        /// Who.
        user_id: String,
        /// The emoji.
        emoji: String,
        /// The course seq of the change.
        seq: u64,
    },
    /// Someone removed a reaction.
    ReactionRemoved {
        /// The course.
        course_id: String,
        /// The message.
        message_id: String,
        /// Who.
        user_id: String,
        /// The emoji.
        emoji: String,
        /// The course seq of the change.
        seq: u64,
    },
    /// A moderator pinned or unpinned a message (live, or replayed on resume); the cache holds
    /// the message with its pin.
    MessagePinned(chat_core::event::PinEvent),
    /// A moderator muted (`muted_until` set) or unmuted a user in a course.
    UserMuted(chat_core::event::UserMuted),
    /// A moderator banned or unbanned a user from a course's chat. A ban of this client's user
    /// takes the course's room away; its calls then fail with `BANNED`.
    UserBanned(chat_core::event::UserBanned),
    /// A participant flagged a message (only moderators receive this).
    MessageFlagged(chat_core::Flag),
    /// A moderator resolved a flag (only moderators receive this).
    FlagResolved(chat_core::Flag),
    /// A thread got a reply: its root's new `replyCount` and `lastReplyAt` (live only; the
    /// reply itself is a `NewMessage` with `thread_id`).
    ThreadUpdated(chat_core::event::ThreadUpdated),
    /// A message written here entered the outbox (or was retried): pending.
    SendPending(OutboxEntry),
    /// The server stored a message of the outbox: it left the outbox and is in the cache.
    SendSent {
        /// The outbox entry's client id.
        client_id: String,
        /// The stored message.
        message: Message,
    },
    /// The server refused a message of the outbox for good; it stays, failed, until retried or
    /// discarded.
    SendFailed(OutboxEntry),
    /// A failed message was discarded.
    SendDiscarded {
        /// Its course.
        course_id: String,
        /// Its client id.
        client_id: String,
    },
    /// A participant's first connection joined a room.
    UserJoined {
        /// The course.
        course_id: String,
        /// Who.
        user: User,
    },
    /// A participant's last connection left a room.
    UserLeft {
        /// The course.
        course_id: String,
        /// Who.
        user: User,
    },
    /// The online participants of a course.
    OnlineUsers {
        /// The course.
        course_id: String,
        /// Who is online.
        users: Vec<User>,
    },
    /// Someone started or stopped typing.
    Typing {
        /// The course.
        course_id: String,
        /// Who.
        user_id: String,
        /// Their name.
        name: String,
        /// Started or stopped.
        is_typing: bool,
    },
    /// A read receipt (another user's, or this user's from another device).
    MessageRead(ReadReceipt),
    /// The unread count of a course changed.
    Unread {
        /// The course.
        course_id: String,
        /// Messages of others after this user's read watermark.
        count: u64,
    },
    /// Bytes of an upload sent so far.
    UploadProgress {
        /// The upload's client id.
        client_id: String,
        /// Bytes sent.
        sent: u64,
        /// Bytes in all.
        total: u64,
    },
    /// The server reported an error that belongs to no request.
    Error {
        /// Contract code.
        code: String,
        /// Message.
        message: String,
    },
}
