//! Client events to engine calls: the one place an event name and its JSON data become a
//! `chat-core` operation.
//!
//! [`ClientEvent`] is the contract's event list, its decoding and its dispatch in one type. It
//! knows nothing of frames, sockets or ack ids, so every event transport (the native protocol on
//! `/ws` and Socket.IO on `/socket.io/`) calls [`dispatch`] unchanged and only encodes its
//! [`Answer`]: the acknowledgement `{ok, data}` / `{ok: false, error}`, or an `error` event. The
//! data shapes are the contract's; an unknown event, a missing or mistyped field is a
//! `VALIDATION` error, never a panic.

use std::str::FromStr;

use chat_core::engine::Resume;
use chat_core::{Connection, Error, MessageType, SendMessage};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// A client event of the contract: its name (`event`) and its data (`data`), decoded in one step.
/// The variants are the contract's event list; [`ClientEvent::run`] is what each one does.
#[derive(Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "kebab-case")]
pub enum ClientEvent {
    /// `join-course` `{courseId, sinceSeq?}`.
    JoinCourse(Join),
    /// `leave-course` `{courseId}`.
    LeaveCourse(CourseOnly),
    /// `send-message`: [`SendFields`].
    SendMessage(SendFields),
    /// `edit-message` `{messageId, newMessage}`.
    EditMessage(Edit),
    /// `delete-message` `{messageId}`.
    DeleteMessage(MessageOnly),
    /// `typing` `{courseId, isTyping}`.
    Typing(TypingData),
    /// `mark-read` `{messageId}`.
    MarkRead(MessageOnly),
    /// `add-reaction` `{messageId, emoji}`.
    AddReaction(ReactionData),
    /// `remove-reaction` `{messageId, emoji}`.
    RemoveReaction(ReactionData),
    /// `get-thread` `{messageId, after?, limit?}`.
    GetThread(ThreadQuery),
    /// `search-messages` `{courseId, q, limit?, before?}`.
    SearchMessages(SearchQuery),
    /// `pin-message` `{messageId}` (moderators).
    PinMessage(MessageOnly),
    /// `unpin-message` `{messageId}` (moderators).
    UnpinMessage(MessageOnly),
    /// `flag-message` `{messageId, reason}`.
    FlagMessage(FlagData),
    /// `mute-user` `{courseId, userId, durationSeconds}` (moderators).
    MuteUser(MuteData),
    /// `unmute-user` `{courseId, userId}` (moderators).
    UnmuteUser(UserInCourse),
    /// `ban-user` `{courseId, userId}` (moderators).
    BanUser(UserInCourse),
    /// `unban-user` `{courseId, userId}` (moderators).
    UnbanUser(UserInCourse),
    /// Any other name (refused as `unknown event "name"`).
    #[serde(other)]
    Unknown,
}

/// The data of `join-course`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Join {
    course_id: String,
    #[serde(default)]
    since_seq: Option<u64>,
    /// The store epoch the client's `sinceSeq` belongs to (from an earlier join's answer).
    #[serde(default)]
    epoch: Option<String>,
}

/// The data of an event about one course.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CourseOnly {
    course_id: String,
}

/// The fields of a new message, as JSON (REST body or `send-message` data).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SendFields {
    /// The course.
    pub course_id: String,
    /// The text.
    #[serde(default)]
    pub message: Option<String>,
    /// `text`, `image`, `file`, `audio` or `system`.
    #[serde(default)]
    pub message_type: Option<String>,
    /// The message answered.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// The root of the thread the message is a reply in.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// The idempotency key.
    #[serde(default)]
    pub client_id: Option<String>,
}

impl SendFields {
    /// The engine's request (without a file).
    pub fn into_request(self) -> Result<SendMessage, Error> {
        let message_type = match self.message_type.as_deref() {
            None | Some("") => None,
            Some(t) => Some(MessageType::from_str(t)?),
        };
        Ok(SendMessage {
            course_id: self.course_id,
            message: self.message.unwrap_or_default(),
            message_type,
            reply_to: self.reply_to.filter(|r| !r.is_empty()),
            thread_id: self.thread_id.filter(|t| !t.is_empty()),
            client_id: self.client_id.filter(|c| !c.is_empty()),
            attachment: None,
        })
    }
}

/// The data of `edit-message`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Edit {
    message_id: String,
    new_message: String,
}

/// The data of an event about one message.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageOnly {
    message_id: String,
}

/// The data of `add-reaction` / `remove-reaction`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionData {
    message_id: String,
    emoji: String,
}

/// The data of `get-thread`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadQuery {
    message_id: String,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<u32>,
}

/// The data of `search-messages`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchQuery {
    course_id: String,
    q: String,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    before: Option<u64>,
}

/// The data of `flag-message`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagData {
    message_id: String,
    reason: String,
}

/// The data of `mute-user`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MuteData {
    course_id: String,
    user_id: String,
    duration_seconds: u64,
}

/// The data of an event about a user in a course (`unmute-user`, `ban-user`, `unban-user`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInCourse {
    course_id: String,
    user_id: String,
}

/// The data of `typing`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingData {
    course_id: String,
    is_typing: bool,
}

/// Decodes event data (or a JSON body) into `T`; a mismatch is a `VALIDATION` error.
pub fn decode<T: DeserializeOwned>(data: Value) -> Result<T, Error> {
    serde_json::from_value(data).map_err(|e| Error::Validation(format!("invalid data: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(Error::encoding)
}

impl ClientEvent {
    /// The event `name` with `data`. An unknown name is `unknown event "name"`, data of the wrong
    /// shape `invalid data: …`, both `VALIDATION`.
    pub fn decode(name: &str, data: Value) -> Result<ClientEvent, Error> {
        let unknown = || Error::Validation(format!("unknown event {:?}", truncate(name, 64)));
        match serde_json::from_value(json!({"event": name, "data": data})) {
            Ok(ClientEvent::Unknown) => Err(unknown()),
            Ok(event) => Ok(event),
            // Only an unknown name decodes without its data: tell the two refusals apart.
            Err(e) => match serde_json::from_value(json!({ "event": name })) {
                Ok(ClientEvent::Unknown) => Err(unknown()),
                _ => Err(Error::Validation(format!("invalid data: {e}"))),
            },
        }
    }

    /// Runs the event on `conn` (for the connection's actor) and returns what to acknowledge
    /// with: `join-course` → `{"courseId", "users", "headSeq", "epoch"}` (the online users, the
    /// seq live events follow, the store's epoch; with `sinceSeq` also `recovered`), `leave-course` →
    /// `{"courseId"}`, `send-message` / `edit-message` → the message, `delete-message` → the
    /// tombstone, `typing` → `{"courseId", "isTyping"}`, `mark-read` → the receipt,
    /// `add-reaction` / `remove-reaction` → the message with its reactions, `get-thread` →
    /// `{"root", "replies", "hasMore"}`, `search-messages` → the hits, `pin-message` /
    /// `unpin-message` → the message, `flag-message` → the flag, `mute-user` / `ban-user` → the
    /// restriction, `unmute-user` / `unban-user` → `{"courseId", "userId"}`.
    pub async fn run(self, conn: &Connection) -> Result<Value, Error> {
        let engine = conn.engine();
        let actor = conn.actor();
        match self {
            ClientEvent::JoinCourse(j) => {
                let resume = j.since_seq.map(|since_seq| Resume {
                    since_seq,
                    epoch: j.epoch.filter(|e| !e.is_empty()),
                });
                encode(&conn.resume(&j.course_id, resume).await?)
            }
            ClientEvent::LeaveCourse(c) => {
                conn.leave(&c.course_id).await?;
                Ok(json!({"courseId": c.course_id}))
            }
            ClientEvent::SendMessage(s) => encode(&engine.send(actor, s.into_request()?).await?),
            ClientEvent::EditMessage(e) => {
                encode(&engine.edit(actor, &e.message_id, &e.new_message).await?)
            }
            ClientEvent::DeleteMessage(d) => encode(&engine.delete(actor, &d.message_id).await?),
            ClientEvent::Typing(t) => {
                conn.typing(&t.course_id, t.is_typing).await?;
                Ok(json!({"courseId": t.course_id, "isTyping": t.is_typing}))
            }
            ClientEvent::MarkRead(m) => encode(&engine.mark_read(actor, &m.message_id).await?),
            ClientEvent::AddReaction(r) => {
                encode(&engine.react(actor, &r.message_id, &r.emoji).await?)
            }
            ClientEvent::RemoveReaction(r) => {
                encode(&engine.unreact(actor, &r.message_id, &r.emoji).await?)
            }
            ClientEvent::GetThread(q) => encode(
                &engine
                    .thread(actor, &q.message_id, q.after, q.limit)
                    .await?,
            ),
            ClientEvent::SearchMessages(q) => encode(
                &engine
                    .search(actor, &q.course_id, &q.q, q.limit, q.before)
                    .await?,
            ),
            ClientEvent::PinMessage(m) => encode(&engine.pin(actor, &m.message_id).await?),
            ClientEvent::UnpinMessage(m) => encode(&engine.unpin(actor, &m.message_id).await?),
            ClientEvent::FlagMessage(f) => {
                encode(&engine.flag(actor, &f.message_id, &f.reason).await?)
            }
            ClientEvent::MuteUser(m) => {
                let duration = std::time::Duration::from_secs(m.duration_seconds);
                encode(
                    &engine
                        .mute(actor, &m.course_id, &m.user_id, duration)
                        .await?,
                )
            }
            ClientEvent::UnmuteUser(u) => {
                engine.unmute(actor, &u.course_id, &u.user_id).await?;
                Ok(json!({"courseId": u.course_id, "userId": u.user_id}))
            }
            ClientEvent::BanUser(u) => encode(&engine.ban(actor, &u.course_id, &u.user_id).await?),
            ClientEvent::UnbanUser(u) => {
                engine.unban(actor, &u.course_id, &u.user_id).await?;
                Ok(json!({"courseId": u.course_id, "userId": u.user_id}))
            }
            ClientEvent::Unknown => Err(Error::Validation("unknown event".into())),
        }
    }
}

/// Decodes and runs one client event on `conn`: [`ClientEvent::decode`], then
/// [`ClientEvent::run`].
pub async fn dispatch(conn: &Connection, event: &str, data: Value) -> Result<Value, Error> {
    ClientEvent::decode(event, data)?.run(conn).await
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// What the result of a client event calls for, whatever the transport.
pub(crate) enum Answer {
    /// The acknowledgement `{"ok": true, "data"}` or `{"ok": false, "error"}`.
    Ack(Value),
    /// An `error` event with the contract's error object (the client asked for no ack).
    ErrorEvent(Value),
}

impl Answer {
    /// The answer to an event whose client asked for an acknowledgement (`wants_ack`) or not;
    /// `None` when nothing is owed (a success without ack).
    pub(crate) fn to(wants_ack: bool, result: Result<Value, Error>) -> Option<Answer> {
        match (wants_ack, result) {
            (true, Ok(data)) => Some(Answer::Ack(json!({"ok": true, "data": data}))),
            (true, Err(e)) => Some(Answer::Ack(json!({"ok": false, "error": error_json(&e)}))),
            (false, Ok(_)) => None,
            (false, Err(e)) => Some(Answer::ErrorEvent(error_json(&e))),
        }
    }
}

/// The contract's error object `{"code", "message"}` (plus `retryAfter` seconds when rate
/// limited), as acknowledgements and `error` events carry it.
pub fn error_json(err: &Error) -> Value {
    if err.code() == chat_core::ErrorCode::Internal {
        tracing::error!(error = %err, "internal error in an event");
    }
    let mut v = json!({"code": err.code().as_str(), "message": err.public_message()});
    if let Error::RateLimited { retry_after } = err {
        v["retryAfter"] = json!(retry_after.as_secs_f64().ceil().max(1.0) as u64);
    }
    if let Error::Muted { until } = err {
        v["mutedUntil"] = json!(until);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(name: &str, data: Value) -> String {
        match ClientEvent::decode(name, data) {
            Err(Error::Validation(m)) => m,
            Err(e) => panic!("{name}: not a validation error: {e}"),
            Ok(_) => panic!("{name}: decoded"),
        }
    }

    #[test]
    fn events_decode_by_their_contract_names() {
        let typing = json!({"courseId": "c1", "isTyping": true});
        assert!(matches!(
            ClientEvent::decode("typing", typing),
            Ok(ClientEvent::Typing(TypingData {
                is_typing: true,
                ..
            }))
        ));
        let join = json!({"courseId": "c1", "sinceSeq": 3});
        assert!(matches!(
            ClientEvent::decode("join-course", join),
            Ok(ClientEvent::JoinCourse(Join {
                since_seq: Some(3),
                ..
            }))
        ));
        let mark = json!({"messageId": "m"});
        assert!(matches!(
            ClientEvent::decode("mark-read", mark),
            Ok(ClientEvent::MarkRead(_))
        ));
    }

    #[test]
    fn unknown_events_and_bad_data_are_told_apart() {
        assert_eq!(refusal("nope", json!({"a": 1})), "unknown event \"nope\"");
        assert_eq!(refusal("nope", Value::Null), "unknown event \"nope\"");
        assert_eq!(refusal("Typing", json!({})), "unknown event \"Typing\"");
        let long = "x".repeat(100);
        assert_eq!(
            refusal(&long, Value::Null),
            format!("unknown event {:?}", "x".repeat(64))
        );
        assert_eq!(
            refusal("typing", json!({"courseId": "c1"})),
            "invalid data: missing field `isTyping`"
        );
        assert_eq!(
            refusal("join-course", Value::Null),
            "invalid data: invalid type: null, expected struct Join"
        );
    }
}
