//! The server events of the contract, as typed values.
//!
//! Transports send `name()` and `data_json()`; the native WebSocket frame is the serde form of
//! [`Event`] itself (`{"event": name, "data": …}`). Events travel to subscribers as
//! [`Arc<Envelope>`](Envelope) so a room of a thousand sockets serializes each event once.

use std::sync::{Arc, OnceLock};

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::model::{Flag, Message, ReadReceipt, Timestamp, User};

/// `message-deleted` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDeleted {
    /// The deleted message.
    pub message_id: String,
    /// Its course.
    pub course_id: String,
    /// The course seq of the deletion.
    pub seq: u64,
}

/// `reaction-added` / `reaction-removed` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionEvent {
    /// The message reacted to.
    pub message_id: String,
    /// Its course.
    pub course_id: String,
    /// Who reacted.
    pub user_id: String,
    /// The emoji.
    pub emoji: String,
    /// The course seq of the change.
    pub seq: u64,
}

/// `message-pinned` data: a message pinned (`pinned: true`, with who and when) or unpinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PinEvent {
    /// The message.
    pub message_id: String,
    /// Its course.
    pub course_id: String,
    /// Pinned (true) or unpinned.
    pub pinned: bool,
    /// Who pinned it (`null` once unpinned).
    pub pinned_by: Option<String>,
    /// When it was pinned (`null` once unpinned).
    pub pinned_at: Option<Timestamp>,
    /// The course seq of the change.
    pub seq: u64,
}

/// `user-muted` data: a user muted in a course until `mutedUntil`, or unmuted (`null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserMuted {
    /// The course.
    pub course_id: String,
    /// The user.
    pub user_id: String,
    /// Until when (`null`: unmuted).
    pub muted_until: Option<Timestamp>,
    /// The moderator.
    pub by: String,
}

/// `user-banned` data: a user banned from a course's chat, or let back in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserBanned {
    /// The course.
    pub course_id: String,
    /// The user.
    pub user_id: String,
    /// Banned (true) or unbanned.
    pub banned: bool,
    /// The moderator.
    pub by: String,
}

/// `thread-updated` data: a thread got a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadUpdated {
    /// The course.
    pub course_id: String,
    /// The thread's root message.
    pub thread_id: String,
    /// Its replies now, deleted ones included.
    pub reply_count: u64,
    /// When the latest reply was sent.
    pub last_reply_at: Timestamp,
    /// The latest reply.
    pub last_reply_id: String,
}

/// `user-joined` / `user-left` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// The course room.
    pub course_id: String,
    /// Who joined or left.
    pub user: User,
}

/// `online-users` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnlineUsers {
    /// The course room.
    pub course_id: String,
    /// The online participants (and online users in the room).
    pub users: Vec<User>,
}

/// `user-typing` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Typing {
    /// The course room.
    pub course_id: String,
    /// Who is typing.
    pub user_id: String,
    /// Their display name.
    pub name: String,
    /// Started (true) or stopped / expired (false).
    pub is_typing: bool,
}

/// A server-to-client event of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `new-message`.
    NewMessage(Message),
    /// `message-edited`.
    MessageEdited(Message),
    /// `message-deleted`.
    MessageDeleted(MessageDeleted),
    /// `user-joined`: a user's first connection joined the room.
    UserJoined(Membership),
    /// `user-left`: a user's last connection left the room.
    UserLeft(Membership),
    /// `online-users`.
    OnlineUsers(OnlineUsers),
    /// `user-typing` (never delivered to the typist).
    UserTyping(Typing),
    /// `message-read`.
    MessageRead(ReadReceipt),
    /// `reaction-added` (a seq'd change, replayed on resume).
    ReactionAdded(ReactionEvent),
    /// `reaction-removed` (a seq'd change, replayed on resume).
    ReactionRemoved(ReactionEvent),
    /// `message-pinned` (a seq'd change, replayed on resume; pins and unpins).
    MessagePinned(PinEvent),
    /// `user-muted` (mutes and unmutes).
    UserMuted(UserMuted),
    /// `user-banned` (bans and unbans).
    UserBanned(UserBanned),
    /// `message-flagged`: a new flag, to the course's moderators only.
    MessageFlagged(Flag),
    /// `flag-resolved`: a flag dealt with, to the course's moderators only.
    FlagResolved(Flag),
    /// `thread-updated`: a thread's root has a new reply (after the reply's `new-message`).
    ThreadUpdated(ThreadUpdated),
}

impl Event {
    /// The contract's event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::NewMessage(_) => "new-message",
            Event::MessageEdited(_) => "message-edited",
            Event::MessageDeleted(_) => "message-deleted",
            Event::UserJoined(_) => "user-joined",
            Event::UserLeft(_) => "user-left",
            Event::OnlineUsers(_) => "online-users",
            Event::UserTyping(_) => "user-typing",
            Event::MessageRead(_) => "message-read",
            Event::ReactionAdded(_) => "reaction-added",
            Event::ReactionRemoved(_) => "reaction-removed",
            Event::MessagePinned(_) => "message-pinned",
            Event::UserMuted(_) => "user-muted",
            Event::UserBanned(_) => "user-banned",
            Event::MessageFlagged(_) => "message-flagged",
            Event::FlagResolved(_) => "flag-resolved",
            Event::ThreadUpdated(_) => "thread-updated",
        }
    }

    /// The course the event belongs to.
    pub fn course_id(&self) -> &str {
        match self {
            Event::NewMessage(m) | Event::MessageEdited(m) => &m.course_id,
            Event::MessageDeleted(d) => &d.course_id,
            Event::UserJoined(m) | Event::UserLeft(m) => &m.course_id,
            Event::OnlineUsers(o) => &o.course_id,
            Event::UserTyping(t) => &t.course_id,
            Event::MessageRead(r) => &r.course_id,
            Event::ReactionAdded(r) | Event::ReactionRemoved(r) => &r.course_id,
            Event::MessagePinned(p) => &p.course_id,
            Event::UserMuted(m) => &m.course_id,
            Event::UserBanned(b) => &b.course_id,
            Event::MessageFlagged(f) | Event::FlagResolved(f) => &f.course_id,
            Event::ThreadUpdated(t) => &t.course_id,
        }
    }

    /// The course seq of a message change (new, edit, delete); `None` for ephemeral events.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Event::NewMessage(m) | Event::MessageEdited(m) => Some(m.change_seq),
            Event::MessageDeleted(d) => Some(d.seq),
            Event::ReactionAdded(r) | Event::ReactionRemoved(r) => Some(r.seq),
            Event::MessagePinned(p) => Some(p.seq),
            _ => None,
        }
    }

    /// Reads an event back from its `{"event", "data"}` form (what [`Serialize`] writes): how
    /// events travel between nodes.
    pub fn from_json(value: &serde_json::Value) -> Result<Event, serde_json::Error> {
        use serde::de::Error as _;
        let name = value
            .get("event")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| serde_json::Error::custom("no event name"))?;
        let data = value
            .get("data")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        Ok(match name {
            "new-message" => Event::NewMessage(serde_json::from_value(data)?),
            "message-edited" => Event::MessageEdited(serde_json::from_value(data)?),
            "message-deleted" => Event::MessageDeleted(serde_json::from_value(data)?),
            "user-joined" => Event::UserJoined(serde_json::from_value(data)?),
            "user-left" => Event::UserLeft(serde_json::from_value(data)?),
            "online-users" => Event::OnlineUsers(serde_json::from_value(data)?),
            "user-typing" => Event::UserTyping(serde_json::from_value(data)?),
            "message-read" => Event::MessageRead(serde_json::from_value(data)?),
            "reaction-added" => Event::ReactionAdded(serde_json::from_value(data)?),
            "reaction-removed" => Event::ReactionRemoved(serde_json::from_value(data)?),
            "message-pinned" => Event::MessagePinned(serde_json::from_value(data)?),
            "user-muted" => Event::UserMuted(serde_json::from_value(data)?),
            "user-banned" => Event::UserBanned(serde_json::from_value(data)?),
            "message-flagged" => Event::MessageFlagged(serde_json::from_value(data)?),
            "flag-resolved" => Event::FlagResolved(serde_json::from_value(data)?),
            "thread-updated" => Event::ThreadUpdated(serde_json::from_value(data)?),
            other => {
                return Err(serde_json::Error::custom(format!(
                    "unknown event {other:?}"
                )))
            }
        })
    }

    /// The event's data as a JSON value.
    pub fn data(&self) -> serde_json::Value {
        // Serializing these plain structs cannot fail.
        serde_json::to_value(DataRef(self)).unwrap_or(serde_json::Value::Null)
    }
}

struct DataRef<'a>(&'a Event);

impl Serialize for DataRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Event::NewMessage(m) | Event::MessageEdited(m) => m.serialize(s),
            Event::MessageDeleted(d) => d.serialize(s),
            Event::UserJoined(m) | Event::UserLeft(m) => m.serialize(s),
            Event::OnlineUsers(o) => o.serialize(s),
            Event::UserTyping(t) => t.serialize(s),
            Event::MessageRead(r) => r.serialize(s),
            Event::ReactionAdded(r) | Event::ReactionRemoved(r) => r.serialize(s),
            Event::MessagePinned(p) => p.serialize(s),
            Event::UserMuted(m) => m.serialize(s),
            Event::UserBanned(b) => b.serialize(s),
            Event::MessageFlagged(f) | Event::FlagResolved(f) => f.serialize(s),
            Event::ThreadUpdated(t) => t.serialize(s),
        }
    }
}

impl Serialize for Event {
    /// `{"event": "<name>", "data": {…}}`: the native WebSocket frame.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("event", self.name())?;
        map.serialize_entry("data", &DataRef(self))?;
        map.end()
    }
}

/// An event on its way to subscribers, with its JSON made once and shared.
#[derive(Debug)]
pub struct Envelope {
    event: Event,
    exclude_user: Option<String>,
    moderators_only: bool,
    data_json: OnceLock<String>,
}

impl Envelope {
    pub(crate) fn new(event: Event) -> Arc<Self> {
        Arc::new(Envelope {
            event,
            exclude_user: None,
            moderators_only: false,
            data_json: OnceLock::new(),
        })
    }

    pub(crate) fn excluding(event: Event, user: &str) -> Arc<Self> {
        Arc::new(Envelope {
            event,
            exclude_user: Some(user.to_string()),
            moderators_only: false,
            data_json: OnceLock::new(),
        })
    }

    /// An event only the course's moderators (its instructors and admins) receive.
    pub(crate) fn for_moderators(event: Event) -> Arc<Self> {
        Arc::new(Envelope {
            event,
            exclude_user: None,
            moderators_only: true,
            data_json: OnceLock::new(),
        })
    }

    /// Whether only moderators receive it.
    pub(crate) fn moderators_only(&self) -> bool {
        self.moderators_only
    }

    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The event's name.
    pub fn name(&self) -> &'static str {
        self.event.name()
    }

    /// The event's data as JSON text, made once for all subscribers.
    pub fn data_json(&self) -> &str {
        self.data_json.get_or_init(|| {
            serde_json::to_string(&DataRef(&self.event)).unwrap_or_else(|_| "null".into())
        })
    }

    /// Whether a subscriber acting for `user` should receive this envelope.
    /// The user this event is not for (the typist of a typing event).
    pub(crate) fn excluded_user(&self) -> Option<&str> {
        self.exclude_user.as_deref()
    }

    pub(crate) fn is_for(&self, user: Option<&str>, moderator: bool) -> bool {
        (moderator || !self.moderators_only)
            && !matches!((&self.exclude_user, user), (Some(ex), Some(u)) if ex == u)
    }
}
