//! The engine object: a `chat_core::Engine` plus the tokio runtime it runs on.
//!
//! Every method is synchronous for the foreign caller: it blocks on the engine's own
//! multi-threaded runtime. Foreign callbacks (listeners, plugins) run on that runtime's blocking
//! threads, where calling back into the engine is allowed.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use chat_core as core;
use parking_lot::{Mutex, RwLock};
use tokio::runtime::{Handle, Runtime};

use crate::config::EngineConfig;
use crate::connection::{ChatConnection, ChatSubscription, EventListener, Pump};
use crate::error::ChatError;
use crate::event::Event;
use crate::plugin::{MessagePlugin, PluginAdapter};
use crate::types::{
    Actor, AuditEntry, Course, CourseUpdate, FileData, Flag, HistoryPage, HistoryQuery, Message,
    Participant, PushSubscription, ReadReceipt, Restriction, Role, SearchHit, SendMessage,
    ThreadPage, User,
};

/// How long `close()` waits for background work (listener and plugin calls) to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The chat engine. Open it on a folder (`open`) or in memory (`in_memory`), call its methods
/// with the `Actor` you authenticated, and `close()` it before the program exits (in Python,
/// register `engine.close` with `atexit`): close stops the background threads that call your
/// listeners and plugins.
#[derive(uniffi::Object)]
pub struct ChatEngine {
    /// `None` once closed, so the store (and its folder lock) is released.
    engine: RwLock<Option<core::Engine>>,
    handle: Handle,
    runtime: Mutex<Option<Runtime>>,
    closed: AtomicBool,
    pumps: Mutex<Vec<Weak<Pump>>>,
}

impl ChatEngine {
    fn start(
        data_dir: Option<PathBuf>,
        config: Option<EngineConfig>,
        plugins: Vec<Arc<dyn MessagePlugin>>,
    ) -> Result<Arc<Self>, ChatError> {
        let config: core::Config = config.unwrap_or_default().try_into()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("chat-engine")
            .enable_all()
            .build()
            .map_err(|e| ChatError::internal(format!("cannot start the runtime: {e}")))?;
        let mut builder = core::Engine::builder().config(config);
        if let Some(dir) = data_dir {
            builder = builder.data_dir(dir);
        }
        for (index, plugin) in plugins.into_iter().enumerate() {
            builder = builder.plugin(Arc::new(PluginAdapter { index, plugin }));
        }
        let engine = match runtime.block_on(builder.open()) {
            Ok(engine) => engine,
            Err(e) => {
                runtime.shutdown_background();
                return Err(e.into());
            }
        };
        Ok(Arc::new(ChatEngine {
            engine: RwLock::new(Some(engine)),
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            closed: AtomicBool::new(false),
            pumps: Mutex::new(Vec::new()),
        }))
    }

    /// Runs an engine future to completion on the engine's runtime.
    pub(crate) fn run<T, E>(&self, fut: impl Future<Output = Result<T, E>>) -> Result<T, ChatError>
    where
        ChatError: From<E>,
    {
        if self.closed.load(Ordering::SeqCst) {
            return Err(ChatError::closed());
        }
        self.handle.block_on(fut).map_err(ChatError::from)
    }

    /// Runs `op` on the engine, unless it is closed.
    fn with<T, E, F, Fut>(&self, op: F) -> Result<T, ChatError>
    where
        F: FnOnce(core::Engine) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        ChatError: From<E>,
    {
        let engine = self.engine.read().clone().ok_or_else(ChatError::closed)?;
        self.run(op(engine))
    }

    fn track(&self, pump: &Arc<Pump>) {
        let mut pumps = self.pumps.lock();
        pumps.retain(|p| p.strong_count() > 0);
        pumps.push(Arc::downgrade(pump));
    }
}

fn actor_of(actor: Actor) -> core::Actor {
    actor.into()
}

#[uniffi::export]
impl ChatEngine {
    /// Opens an engine keeping everything in `data_dir` (a sled store in `store/`, uploaded
    /// files in `files/`). One engine per folder per process. `config` defaults to the
    /// contract's limits; `plugins` run in order.
    #[uniffi::constructor(default(config = None, plugins = []))]
    pub fn open(
        data_dir: String,
        config: Option<EngineConfig>,
        plugins: Vec<Arc<dyn MessagePlugin>>,
    ) -> Result<Arc<Self>, ChatError> {
        if data_dir.trim().is_empty() {
            return Err(ChatError::validation("data_dir must not be empty"));
        }
        Self::start(Some(PathBuf::from(data_dir)), config, plugins)
    }

    /// Opens an engine keeping everything in memory (tests, demos).
    #[uniffi::constructor(default(config = None, plugins = []))]
    pub fn in_memory(
        config: Option<EngineConfig>,
        plugins: Vec<Arc<dyn MessagePlugin>>,
    ) -> Result<Arc<Self>, ChatError> {
        Self::start(None, config, plugins)
    }

    /// Closes every connection and subscription, flushes the store and stops the background
    /// threads. No listener or plugin is called once it returns. Later calls raise
    /// `ChatError.Internal`. Idempotent.
    pub fn close(&self) -> Result<(), ChatError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let pumps: Vec<Arc<Pump>> = self
            .pumps
            .lock()
            .drain(..)
            .filter_map(|p| p.upgrade())
            .collect();
        let conns: Vec<core::Connection> = pumps.iter().filter_map(|p| p.stop()).collect();
        let engine = self.engine.write().take();
        let flushed = self.handle.block_on(async move {
            for conn in conns {
                conn.close().await;
            }
            match engine {
                Some(engine) => engine.close().await,
                None => Ok(()),
            }
        });
        if let Some(runtime) = self.runtime.lock().take() {
            if Handle::try_current().is_ok() {
                // Called from a listener or plugin: this thread belongs to the runtime.
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
            }
        }
        flushed.map_err(Into::into)
    }

    /// Whether `close()` was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    // ---- users -------------------------------------------------------------------------------

    /// Records the actor's profile (name, avatar, role) and returns the user.
    pub fn upsert_user(&self, actor: Actor) -> Result<User, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.upsert_user(&actor).await })
            .map(Into::into)
    }

    /// A user with presence (`NOT_FOUND` if never seen).
    pub fn user(&self, user_id: String) -> Result<User, ChatError> {
        self.with(|e| async move { e.user(&user_id).await })
            .map(Into::into)
    }

    /// Sets the actor's online status (`PUT /status`).
    pub fn set_status(&self, actor: Actor, is_online: bool) -> Result<User, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.set_status(&actor, is_online).await })
            .map(Into::into)
    }

    // ---- provisioning ------------------------------------------------------------------------

    /// Creates or updates a course (admins only).
    pub fn put_course(
        &self,
        actor: Actor,
        course_id: String,
        update: CourseUpdate,
    ) -> Result<Course, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.put_course(&actor, &course_id, update.into()).await })
            .map(Into::into)
    }

    /// A course with its participants (participants and admins).
    pub fn course(&self, actor: Actor, course_id: String) -> Result<Course, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.course(&actor, &course_id).await })
            .map(Into::into)
    }

    /// The participants of a course with their roles (participants and admins).
    pub fn participants(
        &self,
        actor: Actor,
        course_id: String,
    ) -> Result<Vec<Participant>, ChatError> {
        let actor = actor_of(actor);
        let list = self.with(|e| async move { e.participants(&actor, &course_id).await })?;
        Ok(list.into_iter().map(Into::into).collect())
    }

    /// Enrolls a user in a course or changes their role (admins only).
    pub fn enroll(
        &self,
        actor: Actor,
        course_id: String,
        user_id: String,
        role: Role,
    ) -> Result<Participant, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.enroll(&actor, &course_id, &user_id, role.into()).await })
            .map(Into::into)
    }

    /// Removes a user from a course (admins only); their connections leave its room.
    pub fn unenroll(
        &self,
        actor: Actor,
        course_id: String,
        user_id: String,
    ) -> Result<(), ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.unenroll(&actor, &course_id, &user_id).await })
    }

    // ---- messages ----------------------------------------------------------------------------

    /// Sends a message; returns it once durable (or the original, for a repeated `client_id`).
    pub fn send(&self, actor: Actor, request: SendMessage) -> Result<Message, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.send(&actor, request.into()).await })
            .map(Into::into)
    }

    /// A message (participants and admins).
    pub fn message(&self, actor: Actor, message_id: String) -> Result<Message, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.message(&actor, &message_id).await })
            .map(Into::into)
    }

    /// Edits a message's text (its sender only).
    pub fn edit(
        &self,
        actor: Actor,
        message_id: String,
        new_message: String,
    ) -> Result<Message, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.edit(&actor, &message_id, &new_message).await })
            .map(Into::into)
    }

    /// Adds the caller's `emoji` (one emoji or a `:shortcode:`) to a message; the message with its
    /// reactions. Adding it again changes nothing.
    pub fn react(
        &self,
        actor: Actor,
        message_id: String,
        emoji: String,
    ) -> Result<Message, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.react(&actor, &message_id, &emoji).await })
            .map(Into::into)
    }

    /// Removes the caller's `emoji` from a message; the message with its reactions.
    pub fn unreact(
        &self,
        actor: Actor,
        message_id: String,
        emoji: String,
    ) -> Result<Message, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.unreact(&actor, &message_id, &emoji).await })
            .map(Into::into)
    }

    /// A thread: its root (with `reply_count`, `last_reply_at`) and its replies created after
    /// seq `after`, oldest first, at most `limit` (default 50, at most 100). Naming a reply
    /// answers its thread.
    pub fn thread(
        &self,
        actor: Actor,
        message_id: String,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<ThreadPage, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.thread(&actor, &message_id, after, limit).await })
            .map(Into::into)
    }

    /// The messages of a course matching every word of `q`, best first, at most `limit`
    /// (default 20, at most 50), created before seq `before` when given, with highlighted
    /// snippets.
    pub fn search(
        &self,
        actor: Actor,
        course_id: String,
        q: String,
        limit: Option<u32>,
        before: Option<u64>,
    ) -> Result<Vec<SearchHit>, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.search(&actor, &course_id, &q, limit, before).await })
            .map(|v| v.into_iter().map(Into::into).collect())
    }

    /// Up to `limit` (1 to 1,000) messages of a course's history from position `from` (0 is the
    /// oldest), in creation order (the course's instructors and admins): page through with
    /// `from` += the page's length until a page is empty.
    pub fn export_page(
        &self,
        actor: Actor,
        course_id: String,
        from: u64,
        limit: u32,
    ) -> Result<Vec<Message>, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move {
            e.export_page(&actor, &course_id, from, limit as usize)
                .await
        })
        .map(|v| v.into_iter().map(Into::into).collect())
    }

    /// Drops an archived course from the store with its files (admins); how many messages it
    /// had.
    pub fn drop_course(&self, actor: Actor, course_id: String) -> Result<u64, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.drop_course(&actor, &course_id).await })
            .map(|d| d.messages)
    }

    /// Runs a retention pass now (it also runs at open and hourly); how many messages it
    /// deleted.
    pub fn run_retention(&self) -> Result<u64, ChatError> {
        self.with(|e| async move { e.run_retention().await })
    }

    /// Registers (or refreshes, by endpoint) one of the actor's devices for Web Push: a
    /// chat-host node on the same store pushes new messages to it while the actor has no
    /// open connection.
    pub fn put_push_subscription(
        &self,
        actor: Actor,
        endpoint: String,
        p256dh: String,
        auth: String,
    ) -> Result<PushSubscription, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move {
            e.put_push_subscription(&actor, &endpoint, &p256dh, &auth)
                .await
        })
        .map(Into::into)
    }

    /// Forgets one of the actor's push subscriptions.
    pub fn remove_push_subscription(
        &self,
        actor: Actor,
        endpoint: String,
    ) -> Result<(), ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.remove_push_subscription(&actor, &endpoint).await })
    }

    /// The actor's push subscriptions.
    pub fn push_subscriptions(&self, actor: Actor) -> Result<Vec<PushSubscription>, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.push_subscriptions(&actor).await })
            .map(|v| v.into_iter().map(Into::into).collect())
    }

    /// Pins a message (the course's instructors and admins); the message.
    pub fn pin(&self, actor: Actor, message_id: String) -> Result<Message, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.pin(&actor, &message_id).await })
            .map(Into::into)
    }

    /// Unpins a message (the course's instructors and admins); the message.
    pub fn unpin(&self, actor: Actor, message_id: String) -> Result<Message, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.unpin(&actor, &message_id).await })
            .map(Into::into)
    }

    /// The pinned messages of a course, oldest first.
    pub fn pinned(&self, actor: Actor, course_id: String) -> Result<Vec<Message>, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.pinned(&actor, &course_id).await })
            .map(|v| v.into_iter().map(Into::into).collect())
    }

    /// Mutes a user in a course for `duration_seconds` (moderators): their sends, edits,
    /// reactions and typing fail with `MUTED` until then.
    pub fn mute(
        &self,
        actor: Actor,
        course_id: String,
        user_id: String,
        duration_seconds: u64,
    ) -> Result<Restriction, ChatError> {
        let actor = actor_of(actor);
        let duration = std::time::Duration::from_secs(duration_seconds);
        self.with(|e| async move { e.mute(&actor, &course_id, &user_id, duration).await })
            .map(Into::into)
    }

    /// Lifts a user's mute in a course (moderators).
    pub fn unmute(
        &self,
        actor: Actor,
        course_id: String,
        user_id: String,
    ) -> Result<(), ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.unmute(&actor, &course_id, &user_id).await })
    }

    /// Bans a user from a course's chat (moderators): they can neither read nor write it.
    pub fn ban(
        &self,
        actor: Actor,
        course_id: String,
        user_id: String,
    ) -> Result<Restriction, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.ban(&actor, &course_id, &user_id).await })
            .map(Into::into)
    }

    /// Lifts a user's ban (moderators).
    pub fn unban(&self, actor: Actor, course_id: String, user_id: String) -> Result<(), ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.unban(&actor, &course_id, &user_id).await })
    }

    /// The mutes and bans in force in a course (moderators).
    pub fn restrictions(
        &self,
        actor: Actor,
        course_id: String,
    ) -> Result<Vec<Restriction>, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.restrictions(&actor, &course_id).await })
            .map(|v| v.into_iter().map(Into::into).collect())
    }

    /// Reports a message to the course's moderators with a reason; the flag (the caller's
    /// open one, if they had flagged it already).
    pub fn flag(
        &self,
        actor: Actor,
        message_id: String,
        reason: String,
    ) -> Result<Flag, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.flag(&actor, &message_id, &reason).await })
            .map(Into::into)
    }

    /// A course's flags, oldest first: the open ones, or all (moderators).
    pub fn flags(
        &self,
        actor: Actor,
        course_id: String,
        open_only: bool,
    ) -> Result<Vec<Flag>, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.flags(&actor, &course_id, open_only).await })
            .map(|v| v.into_iter().map(Into::into).collect())
    }

    /// Resolves a flag (moderators): dismisses it, or deletes the message.
    pub fn resolve_flag(
        &self,
        actor: Actor,
        flag_id: String,
        delete_message: bool,
    ) -> Result<Flag, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.resolve_flag(&actor, &flag_id, delete_message).await })
            .map(Into::into)
    }

    /// The audit log, newest first (admins): of one course or all, before an entry id, at most
    /// `limit` (1 to 200).
    pub fn audit_log(
        &self,
        actor: Actor,
        course_id: Option<String>,
        before: Option<String>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move {
            e.audit_log(
                &actor,
                course_id.as_deref(),
                before.as_deref(),
                limit as usize,
            )
            .await
        })
        .map(|v| v.into_iter().map(Into::into).collect())
    }

    /// Deletes a message (its sender, the course's instructors, admins); returns the tombstone.
    pub fn delete(&self, actor: Actor, message_id: String) -> Result<Message, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.delete(&actor, &message_id).await })
            .map(Into::into)
    }

    /// Marks a message and every earlier one of its course read for the actor. Idempotent.
    pub fn mark_read(&self, actor: Actor, message_id: String) -> Result<ReadReceipt, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.mark_read(&actor, &message_id).await })
            .map(Into::into)
    }

    /// How many messages of the course the actor has not read.
    pub fn unread_count(&self, actor: Actor, course_id: String) -> Result<u64, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.unread_count(&actor, &course_id).await })
    }

    /// A page of history, oldest first (page 1 is the newest `limit` messages).
    pub fn history(
        &self,
        actor: Actor,
        course_id: String,
        query: HistoryQuery,
    ) -> Result<HistoryPage, ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.history(&actor, &course_id, query.into()).await })
            .map(Into::into)
    }

    /// Every message change of the course after `since_seq`, in order, at most `limit` (capped at
    /// 10,000): what a client that saw `since_seq` missed.
    #[uniffi::method(default(limit = 1000))]
    pub fn changes_since(
        &self,
        actor: Actor,
        course_id: String,
        since_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, ChatError> {
        let actor = actor_of(actor);
        let events = self.with(|e| async move {
            e.changes_since(&actor, &course_id, since_seq, limit as usize)
                .await
        })?;
        Ok(events.iter().map(Event::from).collect())
    }

    /// A file's metadata and bytes (participants of its course and admins).
    pub fn file(&self, actor: Actor, file_id: String) -> Result<FileData, ChatError> {
        let actor = actor_of(actor);
        let (info, bytes) = self.with(|e| async move { e.file(&actor, &file_id).await })?;
        Ok(FileData {
            info: info.into(),
            bytes: bytes.to_vec(),
        })
    }

    // ---- presence, typing, events ------------------------------------------------------------

    /// The online participants of a course.
    pub fn online_users(&self, actor: Actor, course_id: String) -> Result<Vec<User>, ChatError> {
        let actor = actor_of(actor);
        let users = self.with(|e| async move { e.online_users(&actor, &course_id).await })?;
        Ok(users.into_iter().map(Into::into).collect())
    }

    /// Starts or stops a typing indicator without a connection.
    pub fn typing(
        &self,
        actor: Actor,
        course_id: String,
        is_typing: bool,
    ) -> Result<(), ChatError> {
        let actor = actor_of(actor);
        self.with(|e| async move { e.typing(&actor, &course_id, is_typing).await })
    }

    /// Opens a connection for the actor (they are online until it closes) whose events go to
    /// `listener`, called on a Rust thread. Join courses with `ChatConnection.join`.
    pub fn connect(
        self: Arc<Self>,
        actor: Actor,
        listener: Arc<dyn EventListener>,
    ) -> Result<Arc<ChatConnection>, ChatError> {
        let actor = actor_of(actor);
        let (conn, events) = self.with(|e| async move { e.connect(&actor).await })?;
        let pump = Pump::start(&self.handle, events, listener, Some(conn.clone()));
        self.track(&pump);
        Ok(Arc::new(ChatConnection::new(self.clone(), &conn, pump)))
    }

    /// Follows one course without presence; with `since_seq`, what followed it is replayed
    /// first. Events go to `listener`, called on a Rust thread.
    pub fn subscribe(
        &self,
        actor: Actor,
        course_id: String,
        since_seq: Option<u64>,
        listener: Arc<dyn EventListener>,
    ) -> Result<Arc<ChatSubscription>, ChatError> {
        let actor = actor_of(actor);
        let course = course_id.clone();
        let events = self.with(|e| async move { e.subscribe(&actor, &course, since_seq).await })?;
        let pump = Pump::start(&self.handle, events, listener, None);
        self.track(&pump);
        Ok(Arc::new(ChatSubscription::new(course_id, pump)))
    }
}

impl Drop for ChatEngine {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.get_mut().take() {
            runtime.shutdown_background();
        }
    }
}
