//! The engine: every rule of the contract, behind one cloneable handle.
//!
//! Each public method is one operation of the contract, called with the [`Actor`] an adapter
//! authenticated. The method checks the rules (course exists, caller enrolled or admin, chat
//! enabled, ownership, limits, rate limit), asks the plugins, writes through the [`Store`] (which
//! allocates the seq and returns once durable), and only then publishes the event to the course's
//! hub. REST handlers, WebSocket codecs and the FFI all call these same methods.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::blob::{self, BlobStore};
use crate::config::Config;
use crate::connection::{change_event, ConnInner, Connection, Detached, Events, StreamShared};
use crate::error::{Error, Result};
use crate::event::{Envelope, Event, Membership, OnlineUsers, Typing};
use crate::history::{self, HistoryPage, HistoryQuery, Pagination};
use crate::hub::Hub;
use crate::model::{
    check_id, Actor, Course, FileInfo, Message, MessageType, Participant, ReadBy, ReadReceipt,
    Role, Timestamp, User,
};
use crate::plugin::{Draft, DraftKind, Plugin, Plugins, Verdict};
use crate::presence::Presence;
use crate::rate_limit::RateLimiter;
use crate::store::{
    ChangeKind, CourseRecord, Inserted, ReadAdvance, Store, StoredFile, StoredUser, Update,
};
use crate::typing::{Check, TypingState};

/// How often an edit or delete is retried when it races another change of the same message.
const CONFLICT_RETRIES: usize = 8;

/// A new message to send.
#[derive(Debug, Clone, Default)]
pub struct SendMessage {
    /// The course (room).
    pub course_id: String,
    /// The text (trimmed; may be empty when a file is attached).
    pub message: String,
    /// The type; derived from the file when absent.
    pub message_type: Option<MessageType>,
    /// The id of a message of the same course this one answers.
    pub reply_to: Option<String>,
    /// The client's idempotency key.
    pub client_id: Option<String>,
    /// A file to upload with the message.
    pub attachment: Option<Attachment>,
}

/// A file sent with a message.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The name the client gave (display only).
    pub name: String,
    /// The bytes.
    pub bytes: Bytes,
}

/// Changes to a course's settings; absent fields keep their value (or the default on creation:
/// the name defaults to the id, chat to enabled).
#[derive(Debug, Clone, Default)]
pub struct CourseUpdate {
    /// Display name.
    pub name: Option<String>,
    /// Whether chat is enabled.
    pub chat_enabled: Option<bool>,
}

/// Builds an [`Engine`]: storage, limits and plugins.
#[derive(Default)]
pub struct EngineBuilder {
    config: Config,
    data_dir: Option<PathBuf>,
    store: Option<Arc<dyn Store>>,
    blobs: Option<Arc<dyn BlobStore>>,
    plugins: Vec<Arc<dyn Plugin>>,
}

impl EngineBuilder {
    /// Limits and settings (default: the contract's).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Keep everything in this folder: the sled store in `store/`, files in `files/`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Use this store (instead of the data folder's, or memory).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Use this blob store (instead of the data folder's, or memory).
    pub fn blobs(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// Registers a plugin; plugins run in registration order.
    pub fn plugin(mut self, plugin: Arc<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Opens the engine. Without a data folder or store, everything is kept in memory. Must run
    /// inside a Tokio runtime (plugins and typing timers are tasks).
    pub async fn open(self) -> Result<Engine> {
        let store: Arc<dyn Store> = match (self.store, &self.data_dir) {
            (Some(s), _) => s,
            (None, Some(dir)) => {
                let path = dir.join("store");
                let store =
                    tokio::task::spawn_blocking(move || crate::store::sled::SledStore::open(path))
                        .await
                        .map_err(|e| Error::Storage(e.to_string()))??;
                Arc::new(store)
            }
            (None, None) => Arc::new(crate::store::memory::MemoryStore::open()),
        };
        let blobs: Arc<dyn BlobStore> = match (self.blobs, &self.data_dir) {
            (Some(b), _) => b,
            (None, Some(dir)) => Arc::new(blob::fs::FsBlobs::open(dir.join("files"))?),
            (None, None) => Arc::new(blob::memory::MemoryBlobs::default()),
        };
        let plugins = Arc::new(Plugins::start(self.plugins, self.config.plugin_queue));
        let rate = RateLimiter::new(self.config.rate_limit_burst, self.config.rate_limit_window);
        let typing_rate =
            RateLimiter::new(self.config.typing_rate_burst, self.config.rate_limit_window);
        Ok(Engine {
            inner: Arc::new(Inner {
                config: self.config,
                store,
                blobs,
                plugins,
                hubs: Mutex::new(HashMap::new()),
                presence: Presence::default(),
                typing: TypingState::default(),
                rate,
                typing_rate,
                profiles: Mutex::new(HashMap::new()),
                streams: Mutex::new(HashMap::new()),
                online_pending: Mutex::new(HashSet::new()),
                next_id: AtomicU64::new(1),
                closed: AtomicBool::new(false),
            }),
        })
    }
}

/// The chat engine. Cheap to clone; every clone is the same engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    plugins: Arc<Plugins>,
    hubs: Mutex<HashMap<String, Arc<Hub>>>,
    presence: Presence,
    typing: TypingState,
    rate: RateLimiter,
    typing_rate: RateLimiter,
    /// Profiles known to be stored, so each call does not rewrite them.
    profiles: Mutex<HashMap<String, StoredUser>>,
    /// Courses with an `online-users` broadcast scheduled.
    online_pending: Mutex<HashSet<String>>,
    /// Open event streams, to end them on close.
    streams: Mutex<HashMap<u64, Weak<StreamShared>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// An engine keeping everything in `dir` (sled + files), with the contract's defaults.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Engine> {
        Engine::builder().data_dir(dir).open().await
    }

    /// An engine in memory, with the contract's defaults.
    pub async fn in_memory() -> Result<Engine> {
        Engine::builder().open().await
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Shuts the engine down: refuses further operations, ends every open connection's and
    /// subscription's [`Events`] stream, stops the plugins' tasks, and flushes the store. The
    /// store itself (and its folder lock) is released when the last clone of the engine drops.
    pub async fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::SeqCst);
        let streams: Vec<_> = self.inner.streams.lock().drain().map(|(_, s)| s).collect();
        for stream in streams.into_iter().filter_map(|s| s.upgrade()) {
            stream.close();
        }
        self.inner.plugins.stop();
        self.inner.store.flush().await
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    fn open_connection(&self, actor: &Actor, presence: bool) -> (Connection, Events) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (conn, events) = Connection::open(self.clone(), actor.clone(), id, presence);
        let mut streams = self.inner.streams.lock();
        streams.retain(|_, s| s.strong_count() > 0);
        streams.insert(id, Arc::downgrade(&conn.stream()));
        (conn, events)
    }

    fn alive(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::SeqCst) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    // ---- users -------------------------------------------------------------------------------

    /// Records the caller's profile (name, avatar, role) if it changed, and returns the user.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id), err(level = "debug"))]
    pub async fn upsert_user(&self, actor: &Actor) -> Result<User> {
        self.ensure_profile(actor).await?;
        self.user_view(&actor.id).await
    }

    /// A user with presence.
    #[tracing::instrument(level = "debug", skip(self), err(level = "debug"))]
    pub async fn user(&self, user_id: &str) -> Result<User> {
        check_id("userId", user_id)?;
        if self.profile(user_id).await?.is_none() {
            return Err(Error::NotFound("user"));
        }
        self.user_view(user_id).await
    }

    async fn ensure_profile(&self, actor: &Actor) -> Result<()> {
        check_id("user id", actor.id.as_str())?;
        let same = |p: &StoredUser| {
            p.name == actor.name && p.avatar == actor.avatar && p.role == actor.role
        };
        if self.inner.profiles.lock().get(&actor.id).is_some_and(same) {
            return Ok(());
        }
        let stored = self.inner.store.user(&actor.id).await?;
        let profile = match stored {
            Some(p) if same(&p) => p,
            other => {
                let p = StoredUser {
                    id: actor.id.clone(),
                    name: actor.name.clone(),
                    avatar: actor.avatar.clone(),
                    role: actor.role,
                    last_seen: other.and_then(|o| o.last_seen),
                };
                self.inner.store.put_user(&p).await?;
                p
            }
        };
        self.inner.profiles.lock().insert(actor.id.clone(), profile);
        Ok(())
    }

    async fn profile(&self, user_id: &str) -> Result<Option<StoredUser>> {
        if let Some(p) = self.inner.profiles.lock().get(user_id) {
            return Ok(Some(p.clone()));
        }
        let stored = self.inner.store.user(user_id).await?;
        if let Some(p) = &stored {
            self.inner
                .profiles
                .lock()
                .insert(user_id.to_string(), p.clone());
        }
        Ok(stored)
    }

    async fn user_view(&self, user_id: &str) -> Result<User> {
        let profile = self.profile(user_id).await?;
        let (is_online, seen) = self.inner.presence.get(user_id);
        Ok(match profile {
            Some(p) => User {
                id: p.id,
                name: p.name,
                avatar: p.avatar,
                role: p.role,
                is_online,
                last_seen: seen.or(p.last_seen),
            },
            // Enrolled by the LMS but never seen: shown by id.
            None => User {
                id: user_id.to_string(),
                name: user_id.to_string(),
                avatar: None,
                role: Role::Student,
                is_online,
                last_seen: seen,
            },
        })
    }

    /// Sets the caller's online status (`PUT /status`); it holds until their next connection
    /// opens or closes.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id), err(level = "debug"))]
    pub async fn set_status(&self, actor: &Actor, is_online: bool) -> Result<User> {
        self.ensure_profile(actor).await?;
        let now = Timestamp::now();
        if self
            .inner
            .presence
            .force(&actor.id, is_online, now)
            .is_some()
        {
            // The change is announced even if the caller stops waiting.
            let engine = self.clone();
            let user = actor.id.clone();
            committed(async move {
                if !is_online {
                    engine.save_last_seen(&user, now).await?;
                }
                engine.presence_changed(&user).await;
                Ok(())
            })
            .await?;
        }
        self.user_view(&actor.id).await
    }

    async fn save_last_seen(&self, user_id: &str, at: Timestamp) -> Result<()> {
        if let Some(mut p) = self.profile(user_id).await? {
            p.last_seen = Some(at);
            self.inner.store.put_user(&p).await?;
            self.inner.profiles.lock().insert(user_id.to_string(), p);
        }
        Ok(())
    }

    // ---- courses -----------------------------------------------------------------------------

    fn require_admin(actor: &Actor) -> Result<()> {
        if actor.is_admin() {
            Ok(())
        } else {
            Err(Error::Forbidden("only admins can provision courses".into()))
        }
    }

    /// Creates or updates a course (admins only).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn put_course(
        &self,
        actor: &Actor,
        course_id: &str,
        update: CourseUpdate,
    ) -> Result<Course> {
        self.alive()?;
        Self::require_admin(actor)?;
        check_id("courseId", course_id)?;
        let current = self.inner.store.course(course_id).await?;
        let name = match update.name.map(|n| n.trim().to_string()) {
            Some(n) if n.is_empty() || n.chars().count() > 200 => {
                return Err(Error::validation("name must be 1 to 200 characters"))
            }
            Some(n) => n,
            None => current
                .as_ref()
                .map_or_else(|| course_id.to_string(), |c| c.name.clone()),
        };
        let chat_enabled = update
            .chat_enabled
            .unwrap_or_else(|| current.as_ref().is_none_or(|c| c.chat_enabled));
        let record = CourseRecord {
            id: course_id.to_string(),
            name,
            chat_enabled,
        };
        self.inner.store.put_course(&record).await?;
        self.course_view(record).await
    }

    /// A course with its participants (participants and admins).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn course(&self, actor: &Actor, course_id: &str) -> Result<Course> {
        let (record, _) = self.access(actor, course_id).await?;
        self.course_view(record).await
    }

    async fn course_view(&self, record: CourseRecord) -> Result<Course> {
        let participants = self.inner.store.participants(&record.id).await?;
        Ok(Course {
            id: record.id,
            name: record.name,
            chat_enabled: record.chat_enabled,
            participants: participants.into_iter().map(|p| p.user_id).collect(),
        })
    }

    /// The participants of a course with their roles (participants and admins).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn participants(&self, actor: &Actor, course_id: &str) -> Result<Vec<Participant>> {
        self.access(actor, course_id).await?;
        self.inner.store.participants(course_id).await
    }

    /// Enrolls a user in a course, or changes their role (admins only).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn enroll(
        &self,
        actor: &Actor,
        course_id: &str,
        user_id: &str,
        role: Role,
    ) -> Result<Participant> {
        self.alive()?;
        Self::require_admin(actor)?;
        check_id("courseId", course_id)?;
        check_id("userId", user_id)?;
        if self.inner.store.course(course_id).await?.is_none() {
            return Err(Error::NotFound("course"));
        }
        self.inner
            .store
            .put_participant(course_id, user_id, role)
            .await?;
        Ok(Participant {
            user_id: user_id.to_string(),
            role,
        })
    }

    /// Removes a user from a course (admins only); their open connections leave its room.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn unenroll(&self, actor: &Actor, course_id: &str, user_id: &str) -> Result<()> {
        self.alive()?;
        Self::require_admin(actor)?;
        check_id("courseId", course_id)?;
        check_id("userId", user_id)?;
        let engine = self.clone();
        let (course_id, user_id) = (course_id.to_string(), user_id.to_string());
        // Once the store forgot the enrollment, the user's connections leave the room whatever
        // the caller does.
        committed(async move {
            if !engine
                .inner
                .store
                .remove_participant(&course_id, &user_id)
                .await?
            {
                return Err(Error::NotFound("participant"));
            }
            let hub = engine.inner.hubs.lock().get(&course_id).cloned();
            if let Some(hub) = hub {
                for stream in hub.kick(&user_id) {
                    stream.unfollow(&course_id);
                }
                engine.online_changed(&course_id);
            }
            Ok(())
        })
        .await
    }

    /// Checks that the course exists and the caller is a participant or an admin.
    async fn access(&self, actor: &Actor, course_id: &str) -> Result<(CourseRecord, Option<Role>)> {
        check_id("courseId", course_id)?;
        let course = self
            .inner
            .store
            .course(course_id)
            .await?
            .ok_or(Error::NotFound("course"))?;
        let role = self.inner.store.participant(course_id, &actor.id).await?;
        if role.is_none() && !actor.is_admin() {
            return Err(Error::NotEnrolled);
        }
        Ok((course, role))
    }

    fn hub(&self, course_id: &str) -> Arc<Hub> {
        self.inner
            .hubs
            .lock()
            .entry(course_id.to_string())
            .or_insert_with(|| Arc::new(Hub::new(course_id, self.inner.plugins.clone())))
            .clone()
    }

    async fn ready_hub(&self, course_id: &str) -> Result<Arc<Hub>> {
        let hub = self.hub(course_id);
        hub.ready(self.inner.store.as_ref()).await?;
        Ok(hub)
    }

    // ---- messages ----------------------------------------------------------------------------

    fn clean_text(&self, text: &str) -> Result<String> {
        let text = text.trim();
        let max = self.inner.config.max_message_chars;
        if text.chars().count() > max {
            return Err(Error::validation(format!(
                "message is longer than {max} characters"
            )));
        }
        Ok(text.to_string())
    }

    async fn moderate(&self, mut draft: Draft) -> Result<String> {
        for plugin in self.inner.plugins.list() {
            match plugin.before_send(&draft).await {
                Ok(Verdict::Accept) => {}
                Ok(Verdict::Reject(reason)) => return Err(Error::Rejected(reason)),
                Ok(Verdict::Rewrite(text)) => draft.text = self.clean_text(&text)?,
                Err(e) => {
                    tracing::error!(plugin = %plugin.name(), error = %e, "before_send failed");
                    return Err(Error::Storage(format!("plugin {} failed", plugin.name())));
                }
            }
        }
        Ok(draft.text)
    }

    /// Sends a message. Returns it once durable (or the original, for a repeated `client_id`).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = %req.course_id), err(level = "debug"))]
    pub async fn send(&self, actor: &Actor, req: SendMessage) -> Result<Message> {
        self.alive()?;
        self.ensure_profile(actor).await?;
        let (course, _) = self.access(actor, &req.course_id).await?;
        if !course.chat_enabled {
            return Err(Error::ChatDisabled);
        }
        if let Some(cid) = &req.client_id {
            check_id("clientId", cid)?;
        }
        let text = self.clean_text(&req.message)?;
        if text.is_empty() && req.attachment.is_none() {
            return Err(Error::validation("a message needs text or a file"));
        }
        let upload = req
            .attachment
            .as_ref()
            .map(|a| self.check_upload(a))
            .transpose()?;
        let message_type = resolve_type(actor, req.message_type, upload.as_ref().map(|u| &u.1))?;
        let reply_to = match &req.reply_to {
            Some(id) => {
                check_id("replyTo", id)?;
                match self.inner.store.message(id).await? {
                    Some(m) if m.course_id == course.id => Some(m.preview()),
                    _ => {
                        return Err(Error::validation(
                            "replyTo must name a message of this course",
                        ))
                    }
                }
            }
            None => None,
        };
        self.inner.rate.take(&actor.id, &course.id)?;
        let text = self
            .moderate(Draft {
                kind: DraftKind::New,
                course_id: course.id.clone(),
                message_id: None,
                sender: actor.clone(),
                text,
                message_type,
                file_mime_type: upload.as_ref().map(|u| u.1.clone()),
            })
            .await?;
        if text.is_empty() && upload.is_none() {
            return Err(Error::validation("a message needs text or a file"));
        }
        let now = Timestamp::now();
        let engine = self.clone();
        let sender = actor.clone();
        let name = req.attachment.as_ref().map(|a| a.name.clone());
        // From the file's upload to the message's publish (or the file's removal), one step that
        // the caller cannot cut short.
        let inserted = committed(async move {
            let file = match (upload, name) {
                (Some((bytes, mime)), Some(name)) => Some(
                    engine
                        .store_file(&sender, &course.id, &name, bytes, mime, now)
                        .await?,
                ),
                _ => None,
            };
            let message = Message {
                id: ulid::Ulid::new().to_string(),
                course_id: course.id.clone(),
                seq: 0,
                change_seq: 0,
                sender: sender.sender(),
                message: text,
                message_type,
                file: file.clone(),
                reply_to,
                read_by: Vec::new(),
                is_edited: false,
                edited_at: None,
                is_deleted: false,
                deleted_at: None,
                client_id: req.client_id,
                created_at: now,
                updated_at: now,
            };
            let hub = engine.ready_hub(&course.id).await;
            let outcome = match hub {
                Ok(hub) => match engine.inner.store.insert_message(message).await {
                    Ok(Inserted::New(m)) => {
                        if engine.inner.typing.stop(&course.id, &sender.id) {
                            hub.publish(typing_event(&course.id, &sender, false));
                        }
                        hub.publish_seq(m.seq, Envelope::new(Event::NewMessage(m.clone())));
                        return Ok(Inserted::New(m));
                    }
                    Ok(duplicate) => Ok(duplicate),
                    Err(e) => {
                        engine.after_failed_write(&hub, &course.id).await;
                        Err(e)
                    }
                },
                Err(e) => Err(e),
            };
            // Nothing refers to the file: a repeated clientId, or a failed write.
            engine.drop_blob(file.as_ref()).await;
            outcome
        })
        .await;
        match inserted? {
            Inserted::New(m) => Ok(m),
            Inserted::Duplicate(m) => self.hydrate_one(m).await,
        }
    }

    fn check_upload(&self, att: &Attachment) -> Result<(Bytes, String)> {
        let limit = self.inner.config.max_file_bytes;
        if att.bytes.len() as u64 > limit {
            return Err(Error::PayloadTooLarge { limit });
        }
        if att.bytes.is_empty() {
            return Err(Error::validation("the file is empty"));
        }
        let mime = blob::sniff(&att.bytes);
        if !self
            .inner
            .config
            .allowed_mime_types
            .iter()
            .any(|m| m == &mime)
        {
            return Err(Error::UnsupportedMediaType(mime));
        }
        Ok((att.bytes.clone(), mime))
    }

    async fn store_file(
        &self,
        actor: &Actor,
        course_id: &str,
        name: &str,
        bytes: Bytes,
        mime: String,
        now: Timestamp,
    ) -> Result<FileInfo> {
        let meta = StoredFile {
            id: ulid::Ulid::new().to_string(),
            course_id: course_id.to_string(),
            uploader_id: actor.id.clone(),
            name: blob::clean_name(name),
            size: bytes.len() as u64,
            mime_type: mime,
            created_at: now,
        };
        self.inner.blobs.put(&meta.id, bytes).await?;
        if let Err(e) = self.inner.store.put_file(&meta).await {
            let _ = self.inner.blobs.delete(&meta.id).await;
            return Err(e);
        }
        Ok(self.file_info(&meta))
    }

    fn file_info(&self, meta: &StoredFile) -> FileInfo {
        FileInfo {
            id: meta.id.clone(),
            url: format!("{}{}", self.inner.config.file_url_prefix, meta.id),
            name: meta.name.clone(),
            size: meta.size,
            mime_type: meta.mime_type.clone(),
        }
    }

    async fn drop_blob(&self, file: Option<&FileInfo>) {
        if let Some(f) = file {
            if let Err(e) = self.inner.blobs.delete(&f.id).await {
                tracing::warn!(file = %f.id, error = %e, "could not remove a file");
            }
        }
    }

    async fn after_failed_write(&self, hub: &Hub, course_id: &str) {
        match self.inner.store.last_seq(course_id).await {
            Ok(last) => hub.resync_order(last),
            Err(e) => tracing::error!(course = course_id, error = %e, "cannot read last seq"),
        }
    }

    async fn message_for(
        &self,
        actor: &Actor,
        message_id: &str,
    ) -> Result<(Message, CourseRecord, Option<Role>)> {
        check_id("messageId", message_id)?;
        let message = self
            .inner
            .store
            .message(message_id)
            .await?
            .ok_or(Error::NotFound("message"))?;
        let (course, role) = self.access(actor, &message.course_id).await?;
        Ok((message, course, role))
    }

    /// A message (participants and admins).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn message(&self, actor: &Actor, message_id: &str) -> Result<Message> {
        let (message, _, _) = self.message_for(actor, message_id).await?;
        self.hydrate_one(message).await
    }

    /// Edits a message's text (its sender only).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn edit(&self, actor: &Actor, message_id: &str, text: &str) -> Result<Message> {
        self.alive()?;
        for _ in 0..CONFLICT_RETRIES {
            let (current, course, _) = self.message_for(actor, message_id).await?;
            if !course.chat_enabled {
                return Err(Error::ChatDisabled);
            }
            if current.is_deleted {
                return Err(Error::NotFound("message"));
            }
            if current.sender.id != actor.id {
                return Err(Error::Forbidden(
                    "only the sender can edit a message".into(),
                ));
            }
            let text = self.clean_text(text)?;
            if text.is_empty() && current.file.is_none() {
                return Err(Error::validation("a message needs text or a file"));
            }
            let text = self
                .moderate(Draft {
                    kind: DraftKind::Edit,
                    course_id: course.id.clone(),
                    message_id: Some(current.id.clone()),
                    sender: actor.clone(),
                    text,
                    message_type: current.message_type,
                    file_mime_type: current.file.as_ref().map(|f| f.mime_type.clone()),
                })
                .await?;
            if text.is_empty() && current.file.is_none() {
                return Err(Error::validation("a message needs text or a file"));
            }
            let now = Timestamp::now();
            let mut next = current.clone();
            next.message = text;
            next.is_edited = true;
            next.edited_at = Some(now);
            next.updated_at = now;
            let update = Update {
                kind: ChangeKind::Edited,
                message: next,
                expected_change_seq: current.change_seq,
            };
            if let Some(m) = self.commit_update(update, None).await? {
                return Ok(m);
            }
        }
        Err(Error::Conflict)
    }

    /// Soft-deletes a message (its sender, the course's instructors, admins). Returns the
    /// tombstone; deleting a tombstone again returns it unchanged.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn delete(&self, actor: &Actor, message_id: &str) -> Result<Message> {
        self.alive()?;
        for _ in 0..CONFLICT_RETRIES {
            let (current, _, role) = self.message_for(actor, message_id).await?;
            let allowed = current.sender.id == actor.id
                || actor.is_admin()
                || matches!(role, Some(Role::Instructor | Role::Admin));
            if !allowed {
                return Err(Error::Forbidden(
                    "only the sender, the course's instructors and admins can delete a message"
                        .into(),
                ));
            }
            if current.is_deleted {
                return self.hydrate_one(current).await;
            }
            let tombstone = current.clone().into_tombstone(Timestamp::now());
            let update = Update {
                kind: ChangeKind::Deleted,
                message: tombstone,
                expected_change_seq: current.change_seq,
            };
            if let Some(m) = self.commit_update(update, current.file).await? {
                return Ok(m);
            }
        }
        Err(Error::Conflict)
    }

    /// Writes an edit or deletion and publishes it, then removes `unused_file` (a deleted
    /// message's attachment); `None` when the message changed meanwhile (the caller re-reads and
    /// re-checks).
    async fn commit_update(
        &self,
        update: Update,
        unused_file: Option<FileInfo>,
    ) -> Result<Option<Message>> {
        let engine = self.clone();
        committed(async move {
            let course = update.message.course_id.clone();
            let kind = update.kind;
            let hub = engine.ready_hub(&course).await?;
            let stored = match engine.inner.store.update_message(update).await {
                Ok(m) => m,
                Err(Error::Conflict) => return Ok(None),
                Err(e) => {
                    engine.after_failed_write(&hub, &course).await;
                    return Err(e);
                }
            };
            // The change is durable and its seq taken: it is published whatever happens next.
            let message = match engine.hydrate_one(stored.clone()).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(course, error = %e, "cannot fill readBy; publishing as stored");
                    stored
                }
            };
            hub.publish_seq(
                message.change_seq,
                Envelope::new(change_event(kind, message.clone())),
            );
            engine.drop_blob(unused_file.as_ref()).await;
            Ok(Some(message))
        })
        .await
    }

    /// Marks a message, and every earlier message of its course, read for the caller.
    /// Idempotent: marking again returns the first `readAt` and sends no event.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn mark_read(&self, actor: &Actor, message_id: &str) -> Result<ReadReceipt> {
        self.alive()?;
        self.ensure_profile(actor).await?;
        let (message, course, _) = self.message_for(actor, message_id).await?;
        let now = Timestamp::now();
        let engine = self.clone();
        let reader = actor.id.clone();
        // A stored receipt is announced even if the caller stops waiting.
        committed(async move {
            let advance = engine
                .inner
                .store
                .advance_read(&course.id, &reader, message.seq, now)
                .await?;
            let (read_at, advanced) = match advance {
                ReadAdvance::Advanced(mark) => (mark.at, true),
                ReadAdvance::Already(mark) => (mark.at, false),
            };
            let receipt = ReadReceipt {
                message_id: message.id,
                course_id: course.id.clone(),
                user_id: reader,
                read_at,
            };
            if advanced {
                let hub = engine.ready_hub(&course.id).await?;
                hub.publish(Envelope::new(Event::MessageRead(receipt.clone())));
            }
            Ok(receipt)
        })
        .await
    }

    /// How many messages of the course the caller has not read.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn unread_count(&self, actor: &Actor, course_id: &str) -> Result<u64> {
        self.access(actor, course_id).await?;
        let store = &self.inner.store;
        let seen = store
            .read_watermark(course_id, &actor.id)
            .await?
            .map_or(0, |m| m.seq);
        let total = store.message_count(course_id).await?;
        let read = store
            .position_of_seq(course_id, seen.saturating_add(1))
            .await?;
        Ok(total.saturating_sub(read))
    }

    /// A page of history (participants and admins).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn history(
        &self,
        actor: &Actor,
        course_id: &str,
        query: HistoryQuery,
    ) -> Result<HistoryPage> {
        self.access(actor, course_id).await?;
        let store = &self.inner.store;
        let total = store.message_count(course_id).await?;
        let before = match query.before {
            Some(seq) => Some(store.position_of_seq(course_id, seq).await?),
            None => None,
        };
        let after = match query.after {
            Some(seq) => Some(
                store
                    .position_of_seq(course_id, seq.saturating_add(1))
                    .await?,
            ),
            None => None,
        };
        let cfg = &self.inner.config;
        let slice = history::resolve(
            &query,
            cfg.default_page_limit,
            cfg.max_page_limit,
            total,
            before,
            after,
        )?;
        let count = (slice.end - slice.start) as usize;
        let messages = if count == 0 {
            Vec::new()
        } else {
            store.messages_at(course_id, slice.start, count).await?
        };
        let messages = self.hydrate(course_id, messages).await?;
        Ok(HistoryPage {
            messages,
            pagination: Pagination {
                page: slice.page,
                limit: slice.limit,
                total,
                total_pages: total.div_ceil(u64::from(slice.limit)),
                has_more: slice.has_more,
            },
        })
    }

    /// Every message change of the course after `since_seq`, in order, at most `limit`: what a
    /// client that saw `since_seq` missed. Only durable, published changes are returned.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn changes_since(
        &self,
        actor: &Actor,
        course_id: &str,
        since_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.access(actor, course_id).await?;
        let hub = self.ready_hub(course_id).await?;
        self.replay(course_id, since_seq, hub.published(), limit.min(10_000))
            .await
    }

    /// Log entries after `after` up to `upto` as events.
    pub(crate) async fn replay(
        &self,
        course_id: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let changes = self
            .inner
            .store
            .changes(course_id, after, upto, limit)
            .await?;
        let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.kind).collect();
        let messages = self
            .hydrate(course_id, changes.into_iter().map(|c| c.message).collect())
            .await?;
        Ok(kinds
            .into_iter()
            .zip(messages)
            .map(|(k, m)| change_event(k, m))
            .collect())
    }

    async fn hydrate_one(&self, message: Message) -> Result<Message> {
        let course = message.course_id.clone();
        let mut v = self.hydrate(&course, vec![message]).await?;
        v.pop().ok_or(Error::NotFound("message"))
    }

    /// Fills `readBy` from the read watermarks and refreshes reply previews.
    async fn hydrate(&self, course_id: &str, mut messages: Vec<Message>) -> Result<Vec<Message>> {
        let Some(lo) = messages.iter().map(|m| m.seq).min() else {
            return Ok(messages);
        };
        let hi = messages.iter().map(|m| m.seq).max().unwrap_or(lo);
        let marks = self.inner.store.read_marks(course_id, lo, hi).await?;
        let mut by_user: BTreeMap<&str, Vec<(u64, Timestamp)>> = BTreeMap::new();
        for m in &marks {
            by_user
                .entry(m.user_id.as_str())
                .or_default()
                .push((m.seq, m.at));
        }
        let mut previews: HashMap<String, Option<Message>> = HashMap::new();
        for message in &mut messages {
            let mut read_by: Vec<ReadBy> = by_user
                .iter()
                .filter(|(user, _)| **user != message.sender.id)
                .filter_map(|(user, marks)| {
                    let i = marks.partition_point(|(seq, _)| *seq < message.seq);
                    marks.get(i).map(|(_, at)| ReadBy {
                        user_id: user.to_string(),
                        read_at: *at,
                    })
                })
                .collect();
            read_by.sort_by(|a, b| a.read_at.cmp(&b.read_at).then(a.user_id.cmp(&b.user_id)));
            message.read_by = read_by;
            if let Some(reply) = &message.reply_to {
                if !previews.contains_key(&reply.id) {
                    let target = self.inner.store.message(&reply.id).await?;
                    previews.insert(reply.id.clone(), target);
                }
                if let Some(Some(target)) = previews.get(&reply.id) {
                    message.reply_to = Some(target.preview());
                }
            }
        }
        Ok(messages)
    }

    // ---- files -------------------------------------------------------------------------------

    /// A file's metadata and bytes (participants of its course and admins).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, file = file_id), err(level = "debug"))]
    pub async fn file(&self, actor: &Actor, file_id: &str) -> Result<(FileInfo, Bytes)> {
        blob::check_blob_id(file_id)?;
        let meta = self
            .inner
            .store
            .file(file_id)
            .await?
            .ok_or(Error::NotFound("file"))?;
        self.access(actor, &meta.course_id).await?;
        let bytes = self
            .inner
            .blobs
            .get(file_id)
            .await?
            .ok_or(Error::NotFound("file"))?;
        Ok((self.file_info(&meta), bytes))
    }

    // ---- presence, rooms, typing -------------------------------------------------------------

    /// The online participants of a course. An admin watching the room without being enrolled is
    /// not a member of it, so is not listed.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn online_users(&self, actor: &Actor, course_id: &str) -> Result<Vec<User>> {
        self.access(actor, course_id).await?;
        self.compute_online(course_id).await
    }

    async fn compute_online(&self, course_id: &str) -> Result<Vec<User>> {
        // Participants come ordered by user id.
        let ids: Vec<String> = self
            .inner
            .store
            .participants(course_id)
            .await?
            .into_iter()
            .map(|p| p.user_id)
            .filter(|id| self.inner.presence.get(id).0)
            .collect();
        let mut users = Vec::with_capacity(ids.len());
        for id in ids {
            users.push(self.user_view(&id).await?);
        }
        Ok(users)
    }

    async fn publish_online(&self, hub: &Hub, course_id: &str) {
        match self.compute_online(course_id).await {
            Ok(users) => hub.publish(Envelope::new(Event::OnlineUsers(OnlineUsers {
                course_id: course_id.to_string(),
                users,
            }))),
            Err(e) => tracing::warn!(course = course_id, error = %e, "cannot list online users"),
        }
    }

    /// A user came online or went offline: tell the rooms of the courses they take part in.
    async fn presence_changed(&self, user_id: &str) {
        let courses = match self.inner.store.courses_of(user_id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(user = user_id, error = %e, "cannot list courses");
                return;
            }
        };
        for course in courses {
            let listened = self
                .inner
                .hubs
                .lock()
                .get(&course)
                .is_some_and(|h| h.has_listeners());
            if listened {
                self.online_changed(&course);
            }
        }
    }

    /// A room's online list changed: broadcast it once the burst settles, so a whole class
    /// joining or leaving at once costs one list per `presence_debounce`, not one per user
    /// (which is quadratic in deliveries and cubic in bytes).
    fn online_changed(&self, course_id: &str) {
        if !self
            .inner
            .online_pending
            .lock()
            .insert(course_id.to_string())
        {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let course = course_id.to_string();
        let delay = self.inner.config.presence_debounce;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(inner) = weak.upgrade() else { return };
            inner.online_pending.lock().remove(&course);
            let engine = Engine { inner };
            let hub = engine.inner.hubs.lock().get(&course).cloned();
            if let Some(hub) = hub.filter(|h| h.has_listeners()) {
                engine.publish_online(&hub, &course).await;
            }
        });
    }

    /// Opens a connection for the caller: they are online until it (and their others) close.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id), err(level = "debug"))]
    pub async fn connect(&self, actor: &Actor) -> Result<(Connection, Events)> {
        self.alive()?;
        self.ensure_profile(actor).await?;
        let pair = self.open_connection(actor, true);
        if self.inner.presence.connect(&actor.id).is_some() {
            self.presence_changed(&actor.id).await;
        }
        Ok(pair)
    }

    /// Follows one course without being present in it (no presence, no `user-joined`): for
    /// plugins, bridges and listeners. With `since_seq`, replays what followed it first.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn subscribe(
        &self,
        actor: &Actor,
        course_id: &str,
        since_seq: Option<u64>,
    ) -> Result<Events> {
        self.access(actor, course_id).await?;
        self.alive()?;
        let (conn, mut events) = self.open_connection(actor, false);
        conn.join(course_id, since_seq).await?;
        // The subscription lives as long as its stream.
        events.keep_alive(conn);
        Ok(events)
    }

    pub(crate) async fn join(
        &self,
        conn: &ConnInner,
        course_id: &str,
        since_seq: Option<u64>,
    ) -> Result<Vec<User>> {
        self.alive()?;
        let actor = &conn.actor;
        let (_, role) = self.access(actor, course_id).await?;
        let hub = self.ready_hub(course_id).await?;
        let newly = conn.joined.lock().insert(course_id.to_string());
        // An admin who is not enrolled watches the room without being a member of it: not
        // online in it, no `user-joined` / `user-left`.
        let member = conn.presence && role.is_some();
        let first_in_room = member && newly && hub.add_member(&actor.id);
        let user = conn.presence.then_some(actor.id.as_str());
        hub.subscribe(conn.id, user, conn.stream.clone(), |hi| {
            conn.stream.follow(course_id, since_seq, hi)
        });
        let online = self.compute_online(course_id).await?;
        if conn.presence {
            conn.stream
                .push(Envelope::new(Event::OnlineUsers(OnlineUsers {
                    course_id: course_id.to_string(),
                    users: online.clone(),
                })));
        }
        if first_in_room {
            let me = self.user_view(&actor.id).await?;
            let joined = Event::UserJoined(Membership {
                course_id: course_id.to_string(),
                user: me,
            });
            hub.publish(Envelope::excluding(joined, &actor.id));
            self.online_changed(course_id);
        }
        Ok(online)
    }

    pub(crate) async fn leave(&self, conn: &ConnInner, course_id: &str) -> Result<()> {
        self.access(&conn.actor, course_id).await?;
        if !conn.joined.lock().remove(course_id) {
            return Ok(());
        }
        self.leave_room(&conn.actor, conn.id, conn.presence, &conn.stream, course_id)
            .await;
        Ok(())
    }

    async fn leave_room(
        &self,
        actor: &Actor,
        conn_id: u64,
        presence: bool,
        stream: &StreamShared,
        course_id: &str,
    ) {
        stream.unfollow(course_id);
        let Some(hub) = self.inner.hubs.lock().get(course_id).cloned() else {
            return;
        };
        hub.unsubscribe(conn_id);
        if presence && hub.remove_member(&actor.id) {
            if self.inner.typing.stop(course_id, &actor.id) {
                hub.publish(typing_event(course_id, actor, false));
            }
            if let Ok(me) = self.user_view(&actor.id).await {
                hub.publish(Envelope::new(Event::UserLeft(Membership {
                    course_id: course_id.to_string(),
                    user: me,
                })));
            }
            self.online_changed(course_id);
        }
    }

    pub(crate) async fn disconnect(&self, conn: &ConnInner) {
        let joined = std::mem::take(&mut *conn.joined.lock());
        self.disconnect_detached(Detached {
            actor: conn.actor.clone(),
            id: conn.id,
            presence: conn.presence,
            stream: conn.stream.clone(),
            joined,
        })
        .await;
    }

    pub(crate) async fn disconnect_detached(&self, conn: Detached) {
        conn.stream.close();
        let now = Timestamp::now();
        let went_offline = conn.presence
            && self
                .inner
                .presence
                .disconnect(&conn.actor.id, now)
                .is_some_and(|change| !change.now_online);
        if went_offline {
            if let Err(e) = self.save_last_seen(&conn.actor.id, now).await {
                tracing::warn!(user = %conn.actor.id, error = %e, "cannot save lastSeen");
            }
        }
        let mut courses: Vec<&String> = conn.joined.iter().collect();
        courses.sort();
        for course in courses {
            self.leave_room(&conn.actor, conn.id, conn.presence, &conn.stream, course)
                .await;
        }
        if went_offline {
            self.presence_changed(&conn.actor.id).await;
        }
    }

    /// Without a runtime (a connection dropped outside Tokio): undo what needs no I/O.
    pub(crate) fn disconnect_now(&self, conn: Detached) {
        conn.stream.close();
        for course in &conn.joined {
            if let Some(hub) = self.inner.hubs.lock().get(course) {
                hub.unsubscribe(conn.id);
                if conn.presence {
                    hub.remove_member(&conn.actor.id);
                }
            }
        }
        if conn.presence {
            self.inner
                .presence
                .disconnect(&conn.actor.id, Timestamp::now());
        }
    }

    pub(crate) fn resubscribe(
        &self,
        stream: &Arc<StreamShared>,
        course_id: &str,
        conn_id: u64,
        user: Option<String>,
    ) {
        let Some(hub) = self.inner.hubs.lock().get(course_id).cloned() else {
            return;
        };
        let Some(after) = stream.cursor(course_id) else {
            return;
        };
        hub.subscribe(conn_id, user.as_deref(), stream.clone(), |hi| {
            stream.follow(course_id, Some(after), hi)
        });
    }

    /// Starts (`true`) or stops a typing indicator; it expires after `typing_ttl` without a
    /// refresh. Never stored; never sent to the typist.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn typing(&self, actor: &Actor, course_id: &str, is_typing: bool) -> Result<()> {
        self.alive()?;
        let (course, _) = self.access(actor, course_id).await?;
        if !course.chat_enabled {
            return Err(Error::ChatDisabled);
        }
        let hub = self.ready_hub(course_id).await?;
        let typing = &self.inner.typing;
        if !is_typing {
            if typing.stop(course_id, &actor.id) {
                hub.publish(typing_event(course_id, actor, false));
            }
            return Ok(());
        }
        if !typing.is_active(course_id, &actor.id) {
            // Only a new indicator reaches the room; those are limited, refreshes are free.
            self.inner.typing_rate.take(&actor.id, course_id)?;
        }
        let Some((gen, deadline)) =
            typing.start(course_id, &actor.id, self.inner.config.typing_ttl)
        else {
            return Ok(()); // a refresh: the room already knows
        };
        hub.publish(typing_event(course_id, actor, true));
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let (course, actor) = (course_id.to_string(), actor.clone());
        tokio::spawn(async move {
            let mut deadline = deadline;
            loop {
                tokio::time::sleep_until(deadline).await;
                let Some(inner) = weak.upgrade() else { return };
                match inner.typing.check(&course, &actor.id, gen) {
                    Check::Gone => return,
                    Check::Wait(d) => deadline = d,
                    Check::Expired => {
                        let hub = inner.hubs.lock().get(&course).cloned();
                        if let Some(hub) = hub {
                            hub.publish(typing_event(&course, &actor, false));
                        }
                        return;
                    }
                }
            }
        });
        Ok(())
    }
}

/// Runs a write with the publish that must follow it to the end even if the caller stops
/// waiting: a REST client that disconnects mid-request drops its request's future, and a seq
/// taken but never published would hold back every later change of the course (a receipt stored
/// but never announced would leave the room's view behind). Outside a Tokio runtime the write runs
/// in place.
///
/// The write is spawned when this is called, not when the result is first awaited, so the
/// caller's future holds a task handle instead of the whole write: a connection handling a request
/// stays small.
fn committed<T: Send + 'static>(
    write: impl Future<Output = Result<T>> + Send + 'static,
) -> impl Future<Output = Result<T>> {
    let run = match tokio::runtime::Handle::try_current() {
        Ok(rt) => Committed::Spawned(rt.spawn(write)),
        Err(_) => Committed::InPlace(Box::pin(write)),
    };
    async move {
        match run {
            Committed::Spawned(task) => match task.await {
                Ok(outcome) => outcome,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => Err(Error::Closed),
            },
            Committed::InPlace(write) => write.await,
        }
    }
}

/// How [`committed`] runs its write.
enum Committed<T> {
    Spawned(tokio::task::JoinHandle<Result<T>>),
    InPlace(std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send>>),
}

fn typing_event(course_id: &str, actor: &Actor, is_typing: bool) -> Arc<Envelope> {
    Envelope::excluding(
        Event::UserTyping(Typing {
            course_id: course_id.to_string(),
            user_id: actor.id.clone(),
            name: actor.name.clone(),
            is_typing,
        }),
        &actor.id,
    )
}

/// The message type of a send: given or derived from the file, and consistent with it.
fn resolve_type(
    actor: &Actor,
    given: Option<MessageType>,
    mime: Option<&String>,
) -> Result<MessageType> {
    let derived = mime.map(|m| {
        if m.starts_with("image/") {
            MessageType::Image
        } else if m.starts_with("audio/") {
            MessageType::Audio
        } else {
            MessageType::File
        }
    });
    match (given, derived) {
        (Some(MessageType::System), _) if !actor.is_admin() => Err(Error::Forbidden(
            "only admins can send system messages".into(),
        )),
        (Some(MessageType::System), None) => Ok(MessageType::System),
        (None | Some(MessageType::Text), None) => Ok(MessageType::Text),
        (Some(t), None) => Err(Error::validation(format!(
            "messageType {} needs a file",
            t.as_str()
        ))),
        (None | Some(MessageType::Text), Some(d)) => Ok(d),
        (Some(MessageType::File), Some(_)) => Ok(MessageType::File),
        (Some(t), Some(d)) if t == d => Ok(t),
        (Some(t), Some(_)) => Err(Error::validation(format!(
            "the file is not of messageType {}",
            t.as_str()
        ))),
    }
}
