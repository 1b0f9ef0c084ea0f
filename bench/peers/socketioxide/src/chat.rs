//! The chat state, in memory behind one mutex: users (made from their tokens), courses with their
//! participants and messages, and the contract's checks on a send, as `server.js` has them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;
use serde_json::{json, Value};

/// Longest message text, in UTF-16 code units (JavaScript's `length`).
const MAX_TEXT: usize = 4000;

/// A refusal with the contract's error code.
#[derive(Debug)]
pub struct ChatError {
    pub code: &'static str,
    pub message: String,
}

impl ChatError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ChatError {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status of the REST routes for this code.
    pub fn status(&self) -> u16 {
        match self.code {
            "VALIDATION" => 400,
            "UNAUTHORIZED" => 401,
            "FORBIDDEN" | "NOT_ENROLLED" | "CHAT_DISABLED" => 403,
            "NOT_FOUND" => 404,
            _ => 500,
        }
    }

    /// `{code, message}`: the `error` of a failed acknowledgement.
    pub fn to_json(&self) -> Value {
        json!({ "code": self.code, "message": self.message })
    }
}

impl std::fmt::Display for ChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Who a request or socket acts as: the token's subject and role.
#[derive(Clone)]
pub struct Caller {
    pub id: Arc<str>,
    pub role: Arc<str>,
}

impl Caller {
    fn is_admin(&self) -> bool {
        &*self.role == "admin"
    }
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    id: Arc<str>,
    name: String,
    avatar: Option<String>,
    role: Arc<str>,
    pub is_online: bool,
    pub last_seen: Option<String>,
}

/// A user as a message's sender (and a reply's).
#[derive(Clone, Serialize)]
pub struct Sender {
    id: Arc<str>,
    name: String,
    avatar: Option<String>,
    role: Arc<str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyTo {
    id: String,
    sender: Sender,
    message: String,
    is_deleted: bool,
}

/// A message, in the shape `server.js` sends (`new-message` and the send's ack).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub course_id: String,
    pub seq: u64,
    sender: Sender,
    message: String,
    message_type: String,
    file: Option<Value>,
    reply_to: Option<ReplyTo>,
    read_by: [Value; 0],
    is_edited: bool,
    edited_at: Option<String>,
    is_deleted: bool,
    deleted_at: Option<String>,
    client_id: Option<String>,
    created_at: String,
    updated_at: String,
}

pub struct Course {
    pub id: String,
    name: String,
    chat_enabled: bool,
    /// user id → course role.
    participants: HashMap<String, String>,
    pub messages: Vec<Arc<Message>>,
    seq: u64,
    /// (sender id, clientId) → the message it made: a repeated send returns it.
    by_client: HashMap<(Arc<str>, String), Arc<Message>>,
    /// user id → that user's sockets in the course's room (socket.io's `inRoom` of `server.js`).
    pub joined: HashMap<Arc<str>, usize>,
}

#[derive(Default)]
pub struct Chat {
    pub courses: HashMap<String, Course>,
    messages_by_id: HashMap<String, Arc<Message>>,
    pub users: HashMap<Arc<str>, User>,
    /// user id → open sockets.
    pub connections: HashMap<Arc<str>, usize>,
    id_counter: u64,
}

/// What every handler shares: the token key and the state.
pub struct App {
    key: DecodingKey,
    validation: Validation,
    chat: Mutex<Chat>,
}

pub fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn base36(mut n: u64, width: usize) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.resize(digits.len().max(width), b'0');
    digits.iter().rev().map(|&b| b as char).collect()
}

fn as_str<'a>(d: &'a Value, key: &str) -> Option<&'a str> {
    d.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

impl App {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        App {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            chat: Mutex::new(Chat::default()),
        }
    }

    pub fn chat(&self) -> MutexGuard<'_, Chat> {
        self.chat.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks an HS256 token and records (or refreshes) its user, as `userFromToken` does.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Caller, ChatError> {
        let unauthorized = |m: &str| ChatError::new("UNAUTHORIZED", m);
        let token = token.ok_or_else(|| unauthorized("missing bearer token"))?;
        let claims = jsonwebtoken::decode::<Value>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => unauthorized("token expired"),
                ErrorKind::MissingRequiredClaim(_) => unauthorized("token has no exp"),
                _ => unauthorized("invalid token"),
            })?
            .claims;
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let id: Arc<str> = text(claims.get("sub").or_else(|| claims.get("id")))
            .filter(|s| !s.is_empty())
            .ok_or_else(|| unauthorized("token has no subject"))?
            .into();
        let role: Arc<str> = as_str(&claims, "role")
            .or_else(|| as_str(&claims, "accountType"))
            .unwrap_or("student")
            .to_lowercase()
            .into();
        let name = as_str(&claims, "name")
            .map(String::from)
            .unwrap_or_else(|| {
                let parts: Vec<&str> = ["firstName", "lastName"]
                    .iter()
                    .filter_map(|k| as_str(&claims, k))
                    .collect();
                if parts.is_empty() {
                    id.to_string()
                } else {
                    parts.join(" ")
                }
            });
        let mut chat = self.chat();
        let user = chat.users.entry(id.clone()).or_insert_with(|| User {
            id: id.clone(),
            name: String::new(),
            avatar: as_str(&claims, "avatar").map(String::from),
            role: role.clone(),
            is_online: false,
            last_seen: None,
        });
        user.name = name;
        user.role = role.clone();
        Ok(Caller { id, role })
    }
}

impl Chat {
    pub fn course(&self, id: Option<&str>) -> Result<&Course, ChatError> {
        id.and_then(|id| self.courses.get(id))
            .ok_or_else(|| ChatError::new("NOT_FOUND", "course not found"))
    }

    /// The course, if the caller is an admin or one of its participants.
    pub fn access(&self, caller: &Caller, course_id: Option<&str>) -> Result<&Course, ChatError> {
        if course_id.is_none() {
            return Err(ChatError::new("VALIDATION", "courseId is required"));
        }
        let c = self.course(course_id)?;
        if !caller.is_admin() && !c.participants.contains_key(&*caller.id) {
            return Err(ChatError::new(
                "NOT_ENROLLED",
                "not a participant of this course",
            ));
        }
        Ok(c)
    }

    /// The course's participants that are online, by id.
    pub fn online(&self, course_id: &str) -> Vec<User> {
        let Some(c) = self.courses.get(course_id) else {
            return Vec::new();
        };
        let mut out: Vec<User> = c
            .participants
            .keys()
            .filter_map(|id| self.users.get(id.as_str()))
            .filter(|u| u.is_online)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    pub fn user_view(&self, id: &str) -> Option<User> {
        self.users.get(id).cloned()
    }

    /// `PUT /courses/:id`: creates the course or changes its name and chat switch.
    pub fn put_course(&mut self, id: &str, body: &Value) -> Value {
        let c = self
            .courses
            .entry(id.to_string())
            .or_insert_with(|| Course {
                id: id.to_string(),
                name: id.to_string(),
                chat_enabled: true,
                participants: HashMap::new(),
                messages: Vec::new(),
                seq: 0,
                by_client: HashMap::new(),
                joined: HashMap::new(),
            });
        if let Some(name) = body.get("name").and_then(Value::as_str) {
            c.name = name.to_string();
        }
        if let Some(on) = body.get("chatEnabled").and_then(Value::as_bool) {
            c.chat_enabled = on;
        }
        json!({
            "id": c.id, "name": c.name, "chatEnabled": c.chat_enabled,
            "participants": c.participants.keys().collect::<Vec<_>>(),
        })
    }

    pub fn course_mut(&mut self, id: &str) -> Result<&mut Course, ChatError> {
        self.courses
            .get_mut(id)
            .ok_or_else(|| ChatError::new("NOT_FOUND", "course not found"))
    }

    /// `send-message` (and `POST /send` of `server.js`): the new message, or the one an earlier
    /// send with the same clientId made (then `false`: nothing is broadcast).
    pub fn send(&mut self, caller: &Caller, d: &Value) -> Result<(Arc<Message>, bool), ChatError> {
        let c = self.access(caller, as_str(d, "courseId"))?;
        if !c.chat_enabled {
            return Err(ChatError::new(
                "CHAT_DISABLED",
                "chat is disabled for this course",
            ));
        }
        let text = d.get("message").and_then(Value::as_str).unwrap_or("");
        if text.trim().is_empty() {
            return Err(ChatError::new("VALIDATION", "message text is required"));
        }
        if text.encode_utf16().count() > MAX_TEXT {
            return Err(ChatError::new("VALIDATION", "message is too long"));
        }
        let kind = as_str(d, "messageType").unwrap_or("text");
        if !["text", "image", "file", "audio", "system"].contains(&kind) {
            return Err(ChatError::new("VALIDATION", "bad messageType"));
        }
        let client_id = as_str(d, "clientId");
        if let Some(cid) = client_id {
            if let Some(prior) = c.by_client.get(&(caller.id.clone(), cid.to_string())) {
                return Ok((prior.clone(), false));
            }
        }
        let reply_to = match as_str(d, "replyTo") {
            None => None,
            Some(rid) => match self.messages_by_id.get(rid) {
                Some(r) if r.course_id == c.id => Some(ReplyTo {
                    id: r.id.clone(),
                    sender: r.sender.clone(),
                    message: r.message.chars().take(200).collect(),
                    is_deleted: r.is_deleted,
                }),
                _ => {
                    return Err(ChatError::new(
                        "VALIDATION",
                        "replyTo is not a message of this course",
                    ))
                }
            },
        };
        let course_id = c.id.clone();
        let u = &self.users[&caller.id];
        let sender = Sender {
            id: u.id.clone(),
            name: u.name.clone(),
            avatar: u.avatar.clone(),
            role: u.role.clone(),
        };
        self.id_counter += 1;
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let id = base36(ms, 10) + &base36(self.id_counter, 8);
        let c = self.course_mut(&course_id)?;
        c.seq += 1;
        let now = now_iso();
        let m = Arc::new(Message {
            id: id.clone(),
            course_id,
            seq: c.seq,
            sender,
            message: text.to_string(),
            message_type: kind.to_string(),
            file: None,
            reply_to,
            read_by: [],
            is_edited: false,
            edited_at: None,
            is_deleted: false,
            deleted_at: None,
            client_id: client_id.map(String::from),
            created_at: now.clone(),
            updated_at: now,
        });
        c.messages.push(m.clone());
        if let Some(cid) = client_id {
            c.by_client
                .insert((caller.id.clone(), cid.to_string()), m.clone());
        }
        self.messages_by_id.insert(id, m.clone());
        Ok((m, true))
    }

    /// Participants: `PUT` adds (or re-roles) one, `DELETE` removes one.
    pub fn put_participant(
        &mut self,
        course: &str,
        user: &str,
        role: &str,
    ) -> Result<(), ChatError> {
        self.course_mut(course)?
            .participants
            .insert(user.to_string(), role.to_string());
        Ok(())
    }

    pub fn delete_participant(&mut self, course: &str, user: &str) -> Result<(), ChatError> {
        self.course_mut(course)?
            .participants
            .remove(user)
            .map(|_| ())
            .ok_or_else(|| ChatError::new("NOT_FOUND", "participant not found"))
    }
}
