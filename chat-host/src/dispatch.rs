//! Client events to engine calls: the one place an event name and its JSON data become a
//! `chat-core` operation.
//!
//! It knows nothing of frames, sockets or ack ids, so every event transport (the native `/ws`
//! protocol on `/ws` and Socket.IO on `/socket.io/`) calls [`dispatch`] unchanged and only encodes its result: the
//! value to acknowledge with, or the [`chat_core::Error`] to report. The data shapes are the
//! contract's; a missing or mistyped field is a `VALIDATION` error, never a panic.

use std::str::FromStr;

use chat_core::engine::Resume;
use chat_core::{Connection, Error, MessageType, SendMessage};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// The client events of the contract.
pub const EVENTS: &[&str] = &[
    "join-course",
    "leave-course",
    "send-message",
    "edit-message",
    "delete-message",
    "typing",
    "mark-read",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Join {
    course_id: String,
    #[serde(default)]
    since_seq: Option<u64>,
    /// The store epoch the client's `sinceSeq` belongs to (from an earlier join's answer).
    #[serde(default)]
    epoch: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CourseOnly {
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
            client_id: self.client_id.filter(|c| !c.is_empty()),
            attachment: None,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Edit {
    message_id: String,
    new_message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageOnly {
    message_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypingData {
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

/// Runs one client event on `conn` (for the connection's actor) and returns what to acknowledge with:
/// `join-course` → `{"courseId", "users", "headSeq", "epoch"}` (the online users, the seq live
/// events follow, the store's epoch; with `sinceSeq` also `recovered`), `leave-course` →
/// `{"courseId"}`,
/// `send-message` / `edit-message` → the message, `delete-message` → the tombstone,
/// `typing` → `{"courseId", "isTyping"}`, `mark-read` → the receipt.
pub async fn dispatch(conn: &Connection, event: &str, data: Value) -> Result<Value, Error> {
    let engine = conn.engine();
    let actor = conn.actor();
    match event {
        "join-course" => {
            let j: Join = decode(data)?;
            let resume = j.since_seq.map(|since_seq| Resume {
                since_seq,
                epoch: j.epoch.filter(|e| !e.is_empty()),
            });
            encode(&conn.resume(&j.course_id, resume).await?)
        }
        "leave-course" => {
            let c: CourseOnly = decode(data)?;
            conn.leave(&c.course_id).await?;
            Ok(json!({"courseId": c.course_id}))
        }
        "send-message" => {
            let s: SendFields = decode(data)?;
            encode(&engine.send(actor, s.into_request()?).await?)
        }
        "edit-message" => {
            let e: Edit = decode(data)?;
            encode(&engine.edit(actor, &e.message_id, &e.new_message).await?)
        }
        "delete-message" => {
            let d: MessageOnly = decode(data)?;
            encode(&engine.delete(actor, &d.message_id).await?)
        }
        "typing" => {
            let t: TypingData = decode(data)?;
            conn.typing(&t.course_id, t.is_typing).await?;
            Ok(json!({"courseId": t.course_id, "isTyping": t.is_typing}))
        }
        "mark-read" => {
            let m: MessageOnly = decode(data)?;
            encode(&engine.mark_read(actor, &m.message_id).await?)
        }
        other => Err(Error::Validation(format!(
            "unknown event {:?}",
            truncate(other, 64)
        ))),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
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
    v
}
