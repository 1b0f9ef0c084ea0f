//! The domain values of the contract: users, courses, messages, receipts, files.
//!
//! They serialize to exactly the contract's JSON (camelCase fields, RFC 3339 UTC timestamps with
//! milliseconds, like JavaScript's `toISOString`), so every adapter can send them as they are.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A point in time, UTC, with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time, truncated to milliseconds.
    pub fn now() -> Self {
        Timestamp(Utc::now().trunc_subsecs(3))
    }

    /// From milliseconds since the Unix epoch.
    pub fn from_millis(ms: i64) -> Option<Self> {
        DateTime::from_timestamp_millis(ms).map(Timestamp)
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// The underlying chrono value.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, `2026-11-24T09:05:00.250Z`. Written digit by digit:
    /// every stored message and event carries timestamps, and chrono's format strings cost more
    /// than the rest of a message's encoding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use chrono::{Datelike, Timelike};
        let d = self.0;
        // Years outside 0..=9999 take chrono's signed, wider form.
        let year = match u32::try_from(d.year()) {
            Ok(year) if year <= 9999 => year,
            _ => return write!(f, "{}", d.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
        };
        // A leap second's nanoseconds run past 1e9; it prints as the second's last millisecond.
        let ms = (d.nanosecond() / 1_000_000).min(999);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, d.month());
        put(8, 2, d.day());
        put(11, 2, d.hour());
        put(14, 2, d.minute());
        put(17, 2, d.second());
        put(20, 3, ms);
        // Only ASCII digits and separators were written.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for Timestamp {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| Timestamp(d.with_timezone(&Utc).trunc_subsecs(3)))
            .map_err(|e| Error::validation(format!("bad timestamp {s:?}: {e}")))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A user's role. Globally (from the JWT) and per course (participant role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A learner; the default, for a token without a role and an enrolment that names none.
    #[default]
    Student,
    /// Teaches the course: may delete any message of it.
    Instructor,
    /// May do anything, on every course, and provision courses.
    Admin,
}

impl Role {
    /// The role as the contract spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Instructor => "instructor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    /// Accepts `student`/`instructor`/`admin` in any case (so `Student`, `Instructor` and `Admin`
    /// from an `accountType` claim work too).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "student" => Ok(Role::Student),
            "instructor" => Ok(Role::Instructor),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::validation(format!("unknown role {s:?}"))),
        }
    }
}

/// Who is calling: the identity an adapter authenticated (from a JWT, or the embedding program).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Avatar URL.
    pub avatar: Option<String>,
    /// Global role.
    pub role: Role,
}

impl Actor {
    /// A caller with the given id, name and role and no avatar.
    pub fn new(id: impl Into<String>, name: impl Into<String>, role: Role) -> Self {
        Actor {
            id: id.into(),
            name: name.into(),
            avatar: None,
            role,
        }
    }

    /// The embedding program itself: an admin named `system`.
    pub fn system() -> Self {
        Actor::new("system", "System", Role::Admin)
    }

    /// True for the global admin role.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub(crate) fn sender(&self) -> Sender {
        Sender {
            id: self.id.clone(),
            name: self.name.clone(),
            avatar: self.avatar.clone(),
            role: self.role,
        }
    }
}

/// A user as the contract shows it, with presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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
    /// When the user was last seen (their last connection closed).
    pub last_seen: Option<Timestamp>,
}

/// A message's author, as embedded in the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// A course: one chat room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Course {
    /// The course id (chosen by the LMS).
    pub id: String,
    /// Display name.
    pub name: String,
    /// When false, nobody can send, edit or type.
    pub chat_enabled: bool,
    /// Enrolled user ids, instructors included.
    pub participants: Vec<String>,
    /// Archived: read-only for good (left out of the JSON unless true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

/// A participant of a course and their role in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// User id.
    pub user_id: String,
    /// Role in the course (`student` or `instructor`; `admin` is accepted too).
    pub role: Role,
}

/// What kind of content a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    /// Text only.
    #[default]
    Text,
    /// An image file.
    Image,
    /// Any allowed file.
    File,
    /// An audio file.
    Audio,
    /// A message from the system (admins and the embedding program only).
    System,
}

impl MessageType {
    /// The type as the contract spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Text => "text",
            MessageType::Image => "image",
            MessageType::File => "file",
            MessageType::Audio => "audio",
            MessageType::System => "system",
        }
    }
}

impl FromStr for MessageType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "text" => Ok(MessageType::Text),
            "image" => Ok(MessageType::Image),
            "file" => Ok(MessageType::File),
            "audio" => Ok(MessageType::Audio),
            "system" => Ok(MessageType::System),
            _ => Err(Error::validation(format!(
                "messageType must be one of text, image, file, audio, system (got {s:?})"
            ))),
        }
    }
}

/// An uploaded file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    /// Server-made id (a ULID).
    pub id: String,
    /// Where to download it (`/api/v1/chat/files/:id` by default).
    pub url: String,
    /// Display name given by the client (sanitized; never used as a path).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type sniffed from the bytes.
    pub mime_type: String,
    /// How long an audio file plays, in milliseconds, read from its headers (`durationMs`); absent
    /// for other files and audio whose length cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// What a reply shows of the message it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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

/// One reader of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadBy {
    /// Who read it.
    pub user_id: String,
    /// When their read watermark first passed it.
    pub read_at: Timestamp,
}

/// The reactions of one emoji on a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    /// One grapheme cluster (`👍`) or a `:shortcode:`.
    pub emoji: String,
    /// How many users reacted with it (`userIds.len()`).
    pub count: u64,
    /// Who, in the order they reacted.
    pub user_ids: Vec<String>,
}

/// A chat message, as stored and as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Server-made ULID, sortable by creation.
    pub id: String,
    /// The course (room).
    pub course_id: String,
    /// The course seq at which the message was created: its place in history.
    pub seq: u64,
    /// The course seq of the latest change this value reflects (equal to `seq` until the message is
    /// edited or deleted). A client resuming keeps the highest `changeSeq` / deletion `seq` it saw.
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
    /// Who has read it (the sender is never listed).
    pub read_by: Vec<ReadBy>,
    /// Whether the text was edited.
    pub is_edited: bool,
    /// When it was last edited.
    pub edited_at: Option<Timestamp>,
    /// Whether it was deleted (a tombstone).
    pub is_deleted: bool,
    /// When it was deleted.
    pub deleted_at: Option<Timestamp>,
    /// The client's idempotency key, echoed back.
    pub client_id: Option<String>,
    /// When it was sent.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Reactions by emoji, in the order each emoji was first used (left out of the JSON when
    /// there are none, so a message without reactions reads as the contract shows it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// Pinned by a moderator (left out of the JSON when false, like `pinnedAt` and `pinnedBy`
    /// when absent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
    /// When it was pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_at: Option<Timestamp>,
    /// Who pinned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_by: Option<String>,
    /// The id of the thread's root when this message is a reply in a thread (left out of the
    /// JSON otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// On a thread's root: how many replies it has, deleted ones included (left out while
    /// there are none). Filled in when the message is read, never stored with it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reply_count: u64,
    /// On a thread's root: when its latest reply was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply_at: Option<Timestamp>,
    /// The participants the text mentions (`@id` or `@DisplayName`), by user id (left out of
    /// the JSON when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Message {
    /// The message turned into a tombstone: no text, no file, no reactions, not pinned.
    pub fn into_tombstone(mut self, at: Timestamp) -> Self {
        self.message = String::new();
        self.file = None;
        self.reactions = Vec::new();
        self.mentions = Vec::new();
        self.set_pin(None);
        self.is_deleted = true;
        self.deleted_at = Some(at);
        self.updated_at = at;
        self
    }

    /// Adds (`added`) or removes `user_id`'s `emoji` in `reactions`, as a `reaction-added` /
    /// `reaction-removed` change does; whether anything changed. An emoji nobody uses any more
    /// is dropped. (The engine checks the emoji and the cap on distinct emoji before.)
    pub fn apply_reaction(&mut self, user_id: &str, emoji: &str, added: bool) -> bool {
        let at = self.reactions.iter().position(|r| r.emoji == emoji);
        match (at, added) {
            (Some(i), true) => {
                let r = &mut self.reactions[i];
                if r.user_ids.iter().any(|u| u == user_id) {
                    return false;
                }
                r.user_ids.push(user_id.to_string());
                r.count = r.user_ids.len() as u64;
            }
            (None, true) => self.reactions.push(Reaction {
                emoji: emoji.to_string(),
                count: 1,
                user_ids: vec![user_id.to_string()],
            }),
            (Some(i), false) => {
                let r = &mut self.reactions[i];
                let before = r.user_ids.len();
                r.user_ids.retain(|u| u != user_id);
                if r.user_ids.len() == before {
                    return false;
                }
                r.count = r.user_ids.len() as u64;
                if r.user_ids.is_empty() {
                    self.reactions.remove(i);
                }
            }
            (None, false) => return false,
        }
        true
    }

    /// Pins the message (`Some((by, at))`) or unpins it (`None`).
    pub fn set_pin(&mut self, pin: Option<(String, Timestamp)>) {
        self.pinned = pin.is_some();
        (self.pinned_by, self.pinned_at) = match pin {
            Some((by, at)) => (Some(by), Some(at)),
            None => (None, None),
        };
    }

    pub(crate) fn preview(&self) -> ReplyPreview {
        ReplyPreview {
            id: self.id.clone(),
            sender: self.sender.clone(),
            message: self.message.chars().take(200).collect(),
            is_deleted: self.is_deleted,
        }
    }
}

/// A moderator's restriction of a user in one course: muted until a time, banned, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Restriction {
    /// The course.
    pub course_id: String,
    /// The restricted user.
    pub user_id: String,
    /// Sends, edits, reactions and typing are refused with `MUTED` until then.
    pub muted_until: Option<Timestamp>,
    /// Banned from the course's chat: nothing of it can be read or written (`BANNED`).
    pub banned: bool,
    /// The moderator who last changed it.
    pub updated_by: String,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl Restriction {
    /// Whether the user is muted at `now`.
    pub fn muted_at(&self, now: Timestamp) -> bool {
        self.muted_until.is_some_and(|until| until > now)
    }

    /// Whether it still restricts anything at `now` (an expired mute alone does not).
    pub fn in_force(&self, now: Timestamp) -> bool {
        self.banned || self.muted_at(now)
    }
}

/// What became of a flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagResolution {
    /// The moderator who resolved it.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Whether the message was deleted (else the flag was dismissed).
    pub message_deleted: bool,
}

/// A participant's report of a message, waiting in the course's moderator queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flag {
    /// Server-made id (a ULID).
    pub id: String,
    /// The message's course.
    pub course_id: String,
    /// The reported message.
    pub message_id: String,
    /// Who reported it.
    pub reporter_id: String,
    /// Why (1 to 500 characters).
    pub reason: String,
    /// When.
    pub created_at: Timestamp,
    /// Set once a moderator dealt with it; an open flag has none.
    pub resolution: Option<FlagResolution>,
}

/// One moderation action, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Server-made id (a ULID: the log's order).
    pub id: String,
    /// The course acted in.
    pub course_id: String,
    /// The moderator.
    pub actor_id: String,
    /// `mute`, `unmute`, `ban`, `unban`, `pin`, `unpin`, `delete-message`, `resolve-flag`.
    pub action: String,
    /// The user acted on, if any.
    pub target_user_id: Option<String>,
    /// The message acted on, if any.
    pub message_id: Option<String>,
    /// Anything else worth keeping (a mute's end, a flag's id and outcome, a reason).
    pub detail: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// A thread's root with a page of its replies, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadPage {
    /// The root, with `replyCount` and `lastReplyAt`.
    pub root: Message,
    /// Replies created after the page's `after` seq, oldest first.
    pub replies: Vec<Message>,
    /// Whether more replies follow the last one (ask again with `after` its `seq`).
    pub has_more: bool,
}

/// A device's Web Push subscription (the browser's `PushSubscription`), kept for its user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushSubscription {
    /// Whose device it is.
    pub user_id: String,
    /// The push service URL to POST to.
    pub endpoint: String,
    /// The device's P-256 public key (`keys.p256dh`, base64url).
    pub p256dh: String,
    /// The device's authentication secret (`keys.auth`, base64url).
    pub auth: String,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// A read receipt: `userId` has read `messageId` (and everything before it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadReceipt {
    /// The message marked read.
    pub message_id: String,
    /// Its course.
    pub course_id: String,
    /// The reader.
    pub user_id: String,
    /// When the reader's watermark first passed the message.
    pub read_at: Timestamp,
}

/// A new ULID, greater than every one made before by this process (even within one
/// millisecond), so records keyed by it (flags, audit entries) list in the order they were made.
pub fn ordered_id() -> String {
    static IDS: std::sync::LazyLock<parking_lot::Mutex<ulid::Generator>> =
        std::sync::LazyLock::new(|| parking_lot::Mutex::new(ulid::Generator::new()));
    let made = IDS.lock().generate();
    made.unwrap_or_else(|_| ulid::Ulid::new()).to_string()
}

/// Checks an id given by a client or an LMS (course, user, message, client id): non-empty, at most
/// 128 bytes, no control characters.
pub fn check_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control()) {
        return Err(Error::validation(format!(
            "{what} must be 1 to 128 characters without control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_like_javascript() {
        let t = Timestamp::from_millis(1_700_000_000_123).unwrap();
        assert_eq!(t.to_string(), "2023-11-14T22:13:20.123Z");
        assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn timestamps_print_as_chrono_would() {
        let mut ms: i64 = 0;
        let samples = (0..20_000).map(|i| {
            ms = ms
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407 + i);
            ms.rem_euclid(253_402_300_800_000) // up to 9999-12-31
        });
        for ms in samples.chain([0, 1, 999, 1_000, 946_684_799_999, 253_402_300_799_999]) {
            let t = Timestamp::from_millis(ms).unwrap();
            let chrono = t.0.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            assert_eq!(t.to_string(), chrono, "{ms}");
            assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        }
        // Before year 0 and after 9999, chrono's own form.
        let far = Timestamp::from_millis(253_402_300_800_000).unwrap();
        assert_eq!(far.to_string(), "+10000-01-01T00:00:00.000Z");
    }

    #[test]
    fn roles_parse_in_any_case() {
        assert_eq!("Instructor".parse::<Role>().unwrap(), Role::Instructor);
        assert_eq!("ADMIN".parse::<Role>().unwrap(), Role::Admin);
        assert!("teacher".parse::<Role>().is_err());
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("courseId", "c1").is_ok());
        assert!(check_id("courseId", "").is_err());
        assert!(check_id("courseId", "a\0b").is_err());
        assert!(check_id("courseId", &"x".repeat(129)).is_err());
    }
}
