//! The contract's server events as one uniffi enum, converted from `chat-core`'s, and their
//! contract names.

use chat_core as core;

use crate::types::{BanChange, Flag, Message, MuteChange, PinChange, ThreadChange, User};

/// A server event of the contract (the names in comments are the contract's event names).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Event {
    /// `new-message`.
    NewMessage { message: Message },
    /// `message-edited`.
    MessageEdited { message: Message },
    /// `message-deleted`: `seq` is the course seq of the deletion.
    MessageDeleted {
        message_id: String,
        course_id: String,
        seq: u64,
    },
    /// `user-joined`: a user's first connection joined the room.
    UserJoined { course_id: String, user: User },
    /// `user-left`: a user's last connection left the room.
    UserLeft { course_id: String, user: User },
    /// `online-users`.
    OnlineUsers { course_id: String, users: Vec<User> },
    /// `user-typing` (never delivered to the typist).
    UserTyping {
        course_id: String,
        user_id: String,
        name: String,
        is_typing: bool,
    },
    /// `message-read`.
    MessageRead {
        message_id: String,
        course_id: String,
        user_id: String,
        read_at: String,
    },
    /// `reaction-added`: `seq` is the course seq of the change (replayed on resume).
    ReactionAdded {
        message_id: String,
        course_id: String,
        user_id: String,
        emoji: String,
        seq: u64,
    },
    /// `reaction-removed`.
    ReactionRemoved {
        message_id: String,
        course_id: String,
        user_id: String,
        emoji: String,
        seq: u64,
    },
    /// `message-pinned`: pinned or unpinned (a seq'd change, replayed on resume).
    MessagePinned { pin: PinChange },
    /// `user-muted`: muted until `muted_until`, or unmuted (`None`).
    UserMuted { mute: MuteChange },
    /// `user-banned`: banned or unbanned.
    UserBanned { ban: BanChange },
    /// `message-flagged` (moderators only).
    MessageFlagged { flag: Flag },
    /// `flag-resolved` (moderators only).
    FlagResolved { flag: Flag },
    /// `thread-updated`: a thread got a reply.
    ThreadUpdated { thread: ThreadChange },
}

impl From<&core::Event> for Event {
    fn from(e: &core::Event) -> Self {
        use core::Event as E;
        match e.clone() {
            E::NewMessage(m) => Event::NewMessage { message: m.into() },
            E::MessageEdited(m) => Event::MessageEdited { message: m.into() },
            E::MessageDeleted(d) => Event::MessageDeleted {
                message_id: d.message_id,
                course_id: d.course_id,
                seq: d.seq,
            },
            E::UserJoined(m) => Event::UserJoined {
                course_id: m.course_id,
                user: m.user.into(),
            },
            E::UserLeft(m) => Event::UserLeft {
                course_id: m.course_id,
                user: m.user.into(),
            },
            E::OnlineUsers(o) => Event::OnlineUsers {
                course_id: o.course_id,
                users: o.users.into_iter().map(Into::into).collect(),
            },
            E::UserTyping(t) => Event::UserTyping {
                course_id: t.course_id,
                user_id: t.user_id,
                name: t.name,
                is_typing: t.is_typing,
            },
            E::MessageRead(r) => Event::MessageRead {
                message_id: r.message_id,
                course_id: r.course_id,
                user_id: r.user_id,
                read_at: r.read_at.to_string(),
            },
            E::ReactionAdded(r) => Event::ReactionAdded {
                message_id: r.message_id,
                course_id: r.course_id,
                user_id: r.user_id,
                emoji: r.emoji,
                seq: r.seq,
            },
            E::ReactionRemoved(r) => Event::ReactionRemoved {
                message_id: r.message_id,
                course_id: r.course_id,
                user_id: r.user_id,
                emoji: r.emoji,
                seq: r.seq,
            },
            E::MessagePinned(p) => Event::MessagePinned { pin: p.into() },
            E::UserMuted(m) => Event::UserMuted { mute: m.into() },
            E::UserBanned(b) => Event::UserBanned { ban: b.into() },
            E::MessageFlagged(f) => Event::MessageFlagged { flag: f.into() },
            E::FlagResolved(f) => Event::FlagResolved { flag: f.into() },
            E::ThreadUpdated(t) => Event::ThreadUpdated { thread: t.into() },
        }
    }
}

/// The contract's name of an event (`new-message`, `user-typing`, …).
#[uniffi::export]
pub fn event_name(event: &Event) -> String {
    match event {
        Event::NewMessage { .. } => "new-message",
        Event::MessageEdited { .. } => "message-edited",
        Event::MessageDeleted { .. } => "message-deleted",
        Event::UserJoined { .. } => "user-joined",
        Event::UserLeft { .. } => "user-left",
        Event::OnlineUsers { .. } => "online-users",
        Event::UserTyping { .. } => "user-typing",
        Event::MessageRead { .. } => "message-read",
        Event::ReactionAdded { .. } => "reaction-added",
        Event::ReactionRemoved { .. } => "reaction-removed",
        Event::MessagePinned { .. } => "message-pinned",
        Event::UserMuted { .. } => "user-muted",
        Event::UserBanned { .. } => "user-banned",
        Event::MessageFlagged { .. } => "message-flagged",
        Event::FlagResolved { .. } => "flag-resolved",
        Event::ThreadUpdated { .. } => "thread-updated",
    }
    .to_string()
}
