//! The client SDK (`chat-client`) for apps: [`ChatClient`] with its own tokio runtime, events
//! handed to a foreign [`ClientListener`] on a Rust thread, and the SDK's values as records.
//! Conversions only: every behaviour is `chat_client::Client`'s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_client as cc;
use parking_lot::{Mutex, ReentrantMutex};
use tokio::runtime::{Handle, Runtime};

use crate::error::{ChatError, ListenerError};
use crate::types::{
    BanChange, Flag, Message, MessageType, MuteChange, PinChange, ReadReceipt, ThreadChange, User,
};

/// Where the connection to the server stands.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ConnectionState {
    /// Opening the WebSocket.
    Connecting,
    /// Connected; joined rooms resumed, the outbox flushing.
    Connected,
    /// Not connected; the next attempt in `retry_in_ms`.
    Disconnected { reason: String, retry_in_ms: u64 },
    /// The token was refused: call `set_token` with a new one.
    Unauthorized { reason: String },
    /// `close()` was called.
    Closed,
}

impl From<cc::ConnectionState> for ConnectionState {
    fn from(s: cc::ConnectionState) -> Self {
        match s {
            cc::ConnectionState::Connecting => ConnectionState::Connecting,
            cc::ConnectionState::Connected => ConnectionState::Connected,
            cc::ConnectionState::Disconnected {
                reason,
                retry_in_ms,
            } => ConnectionState::Disconnected {
                reason,
                retry_in_ms,
            },
            cc::ConnectionState::Unauthorized { reason } => {
                ConnectionState::Unauthorized { reason }
            }
            cc::ConnectionState::Closed => ConnectionState::Closed,
        }
    }
}

/// Where an outbox message is.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum OutboxState {
    /// Waiting to be delivered.
    Pending,
    /// Refused for good: retry or discard it.
    Failed { code: String, reason: String },
}

/// A message written on this device and not yet stored by the server.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OutboxEntry {
    /// The idempotency key of every attempt.
    pub client_id: String,
    /// The course.
    pub course_id: String,
    /// The text.
    pub message: String,
    /// The kind.
    pub message_type: MessageType,
    /// The message it answers.
    pub reply_to: Option<String>,
    /// Pending or failed.
    pub state: OutboxState,
    /// When it was written (ms since the Unix epoch, device clock).
    pub created_at_ms: u64,
}

impl From<cc::OutboxEntry> for OutboxEntry {
    fn from(e: cc::OutboxEntry) -> Self {
        OutboxEntry {
            client_id: e.client_id,
            course_id: e.course_id,
            message: e.message,
            message_type: e.message_type.into(),
            reply_to: e.reply_to,
            state: match e.state {
                cc::OutboxState::Pending => OutboxState::Pending,
                cc::OutboxState::Failed { code, message } => OutboxState::Failed {
                    code,
                    reason: message,
                },
            },
            created_at_ms: e.created_at_ms,
        }
    }
}

/// A page of cached history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CachedPage {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// Whether older messages exist.
    pub has_more: bool,
    /// False when offline and the cache could not fill the page.
    pub complete: bool,
}

/// A client event, after the cache applied it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ClientEvent {
    /// The connection changed state.
    Connection { state: ConnectionState },
    /// A room was (re)joined; `recovered` false means its history was reset.
    Joined {
        course_id: String,
        head_seq: u64,
        recovered: bool,
    },
    /// A new message (live or replayed).
    NewMessage { message: Message },
    /// An edited message.
    MessageEdited { message: Message },
    /// A deleted message.
    MessageDeleted {
        course_id: String,
        message_id: String,
        seq: u64,
    },
    /// A reaction was added (live or replayed); the cache holds the message with it.
    ReactionAdded {
        course_id: String,
        message_id: String,
        user_id: String,
        emoji: String,
        seq: u64,
    },
    /// A reaction was removed.
    ReactionRemoved {
        course_id: String,
        message_id: String,
        user_id: String,
        emoji: String,
        seq: u64,
    },
    /// A message entered the outbox (or was retried).
    SendPending { entry: OutboxEntry },
    /// The server stored an outbox message.
    SendSent { client_id: String, message: Message },
    /// The server refused an outbox message for good.
    SendFailed { entry: OutboxEntry },
    /// A failed message was discarded.
    SendDiscarded {
        course_id: String,
        client_id: String,
    },
    /// A participant's first connection joined.
    UserJoined { course_id: String, user: User },
    /// A participant's last connection left.
    UserLeft { course_id: String, user: User },
    /// The online participants.
    OnlineUsers { course_id: String, users: Vec<User> },
    /// Someone started or stopped typing.
    Typing {
        course_id: String,
        user_id: String,
        name: String,
        is_typing: bool,
    },
    /// A read receipt.
    MessageRead { receipt: ReadReceipt },
    /// A course's unread count changed.
    Unread { course_id: String, count: u64 },
    /// Upload progress.
    UploadProgress {
        client_id: String,
        sent: u64,
        total: u64,
    },
    /// An error the server reported outside any request.
    ServerError { code: String, reason: String },
    /// A moderator pinned or unpinned a message (the cache holds it so).
    MessagePinned { pin: PinChange },
    /// A moderator muted (`muted_until` set) or unmuted a user in a course.
    UserMuted { mute: MuteChange },
    /// A moderator banned or unbanned a user from a course's chat.
    UserBanned { ban: BanChange },
    /// A participant flagged a message (moderators only).
    MessageFlagged { flag: Flag },
    /// A moderator resolved a flag (moderators only).
    FlagResolved { flag: Flag },
    /// A thread got a reply (its root's new count).
    ThreadUpdated { thread: ThreadChange },
}

impl From<cc::ClientEvent> for ClientEvent {
    fn from(e: cc::ClientEvent) -> Self {
        use cc::ClientEvent as E;
        match e {
            E::Connection(s) => ClientEvent::Connection { state: s.into() },
            E::Joined {
                course_id,
                head_seq,
                recovered,
            } => ClientEvent::Joined {
                course_id,
                head_seq,
                recovered,
            },
            E::NewMessage(m) => ClientEvent::NewMessage { message: m.into() },
            E::MessageEdited(m) => ClientEvent::MessageEdited { message: m.into() },
            E::MessageDeleted {
                course_id,
                message_id,
                seq,
            } => ClientEvent::MessageDeleted {
                course_id,
                message_id,
                seq,
            },
            E::ReactionAdded {
                course_id,
                message_id,
                user_id,
                emoji,
                seq,
            } => ClientEvent::ReactionAdded {
                course_id,
                message_id,
                user_id,
                emoji,
                seq,
            },
            E::ReactionRemoved {
                course_id,
                message_id,
                user_id,
                emoji,
                seq,
            } => ClientEvent::ReactionRemoved {
                course_id,
                message_id,
                user_id,
                emoji,
                seq,
            },
            E::SendPending(entry) => ClientEvent::SendPending {
                entry: entry.into(),
            },
            E::SendSent { client_id, message } => ClientEvent::SendSent {
                client_id,
                message: message.into(),
            },
            E::SendFailed(entry) => ClientEvent::SendFailed {
                entry: entry.into(),
            },
            E::SendDiscarded {
                course_id,
                client_id,
            } => ClientEvent::SendDiscarded {
                course_id,
                client_id,
            },
            E::UserJoined { course_id, user } => ClientEvent::UserJoined {
                course_id,
                user: user.into(),
            },
            E::UserLeft { course_id, user } => ClientEvent::UserLeft {
                course_id,
                user: user.into(),
            },
            E::OnlineUsers { course_id, users } => ClientEvent::OnlineUsers {
                course_id,
                users: users.into_iter().map(Into::into).collect(),
            },
            E::Typing {
                course_id,
                user_id,
                name,
                is_typing,
            } => ClientEvent::Typing {
                course_id,
                user_id,
                name,
                is_typing,
            },
            E::MessageRead(r) => ClientEvent::MessageRead { receipt: r.into() },
            E::Unread { course_id, count } => ClientEvent::Unread { course_id, count },
            E::UploadProgress {
                client_id,
                sent,
                total,
            } => ClientEvent::UploadProgress {
                client_id,
                sent,
                total,
            },
            E::Error { code, message } => ClientEvent::ServerError {
                code,
                reason: message,
            },
            E::MessagePinned(p) => ClientEvent::MessagePinned { pin: p.into() },
            E::UserMuted(m) => ClientEvent::UserMuted { mute: m.into() },
            E::UserBanned(b) => ClientEvent::UserBanned { ban: b.into() },
            E::MessageFlagged(f) => ClientEvent::MessageFlagged { flag: f.into() },
            E::FlagResolved(f) => ClientEvent::FlagResolved { flag: f.into() },
            E::ThreadUpdated(t) => ClientEvent::ThreadUpdated { thread: t.into() },
        }
    }
}

/// The client's settings (all optional).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ClientSettings {
    /// PEM certificates trusted for `wss://` / `https://` besides the public roots.
    #[uniffi(default = [])]
    pub extra_root_certificates_pem: Vec<String>,
    /// First reconnect delay in ms (doubling per failure, with jitter).
    #[uniffi(default = 500)]
    pub backoff_min_ms: u64,
    /// Longest reconnect delay in ms.
    #[uniffi(default = 30000)]
    pub backoff_max_ms: u64,
    /// Typing is reported stopped after this many ms without a keystroke.
    #[uniffi(default = 3000)]
    pub typing_idle_ms: u64,
}

impl Default for ClientSettings {
    fn default() -> Self {
        let d = cc::ClientOptions::default();
        ClientSettings {
            extra_root_certificates_pem: d.extra_root_certificates_pem,
            backoff_min_ms: d.backoff_min.as_millis() as u64,
            backoff_max_ms: d.backoff_max.as_millis() as u64,
            typing_idle_ms: d.typing_idle.as_millis() as u64,
        }
    }
}

impl From<ClientSettings> for cc::ClientOptions {
    fn from(s: ClientSettings) -> Self {
        cc::ClientOptions {
            extra_root_certificates_pem: s.extra_root_certificates_pem,
            backoff_min: Duration::from_millis(s.backoff_min_ms.max(1)),
            backoff_max: Duration::from_millis(s.backoff_max_ms.max(s.backoff_min_ms).max(1)),
            typing_idle: Duration::from_millis(s.typing_idle_ms.max(1)),
            ..cc::ClientOptions::default()
        }
    }
}

impl From<cc::ClientError> for ChatError {
    fn from(e: cc::ClientError) -> Self {
        let reason = e.to_string();
        match e {
            cc::ClientError::Server {
                code,
                message,
                retry_after,
            } => match code.as_str() {
                "VALIDATION" => ChatError::Validation { reason: message },
                "UNAUTHORIZED" => ChatError::Unauthorized { reason: message },
                "FORBIDDEN" => ChatError::Forbidden { reason: message },
                "NOT_ENROLLED" => ChatError::NotEnrolled { reason: message },
                "CHAT_DISABLED" => ChatError::ChatDisabled { reason: message },
                "MUTED" => ChatError::Muted { reason: message },
                "BANNED" => ChatError::Banned { reason: message },
                "NOT_FOUND" => ChatError::NotFound { reason: message },
                "PAYLOAD_TOO_LARGE" => ChatError::PayloadTooLarge {
                    reason: message,
                    limit: 0,
                },
                "UNSUPPORTED_MEDIA_TYPE" => ChatError::UnsupportedMediaType { reason: message },
                "RATE_LIMITED" => ChatError::RateLimited {
                    reason: message,
                    retry_after_ms: retry_after.unwrap_or(1).saturating_mul(1000),
                },
                _ => ChatError::Internal { reason: message },
            },
            cc::ClientError::Offline(_) => ChatError::Offline { reason },
            cc::ClientError::Network(_) => ChatError::Network { reason },
            cc::ClientError::InvalidArgument(_) => ChatError::Validation { reason },
            cc::ClientError::Protocol(_) | cc::ClientError::Cache(_) | cc::ClientError::Closed => {
                ChatError::Internal { reason }
            }
        }
    }
}

/// Receives a client's events, implemented in the foreign language: called on a Rust thread, one
/// event at a time, in order. An error raised here is logged and the next event is delivered.
/// Not called after `close()` returns.
#[uniffi::export(with_foreign)]
pub trait ClientListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: ClientEvent) -> Result<(), ListenerError>;
}

/// Delivers events to the listener; `stop` waits for a call in flight (re-entrant: a listener
/// may close the client).
struct Delivery {
    gate: ReentrantMutex<()>,
    stopped: AtomicBool,
}

/// A chat client: one user's connection to a chat-host, with a local cache and an outbox in
/// `cache_dir`. Every method is synchronous (it blocks on the client's own runtime); call
/// `close()` before the program exits (Python: `atexit.register(client.close)`).
#[derive(uniffi::Object)]
pub struct ChatClient {
    /// `None` once closed, so the cache folder (and its lock) is released.
    client: parking_lot::RwLock<Option<cc::Client>>,
    handle: Handle,
    runtime: Mutex<Option<Runtime>>,
    delivery: Arc<Delivery>,
}

impl ChatClient {
    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.handle.block_on(f)
    }

    /// The client, or `Internal` once closed.
    fn client(&self) -> Result<cc::Client, ChatError> {
        self.client
            .read()
            .clone()
            .ok_or_else(|| ChatError::internal("the client is closed"))
    }
}

#[uniffi::export]
impl ChatClient {
    /// Opens the cache in `cache_dir` and starts connecting to `url` (`ws://`, `wss://`,
    /// `http://`, `https://`) as the user `token` names; returns at once. `listener` gets every
    /// event from the start.
    #[uniffi::constructor(default(settings = None))]
    pub fn connect(
        url: String,
        token: String,
        cache_dir: String,
        listener: Arc<dyn ClientListener>,
        settings: Option<ClientSettings>,
    ) -> Result<Arc<Self>, ChatError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("chat-client")
            .enable_all()
            .build()
            .map_err(|e| ChatError::internal(format!("cannot start the runtime: {e}")))?;
        let options = settings.unwrap_or_default().into();
        let client =
            match runtime.block_on(cc::Client::connect_with(&url, &token, cache_dir, options)) {
                Ok(c) => c,
                Err(e) => {
                    runtime.shutdown_background();
                    return Err(e.into());
                }
            };
        let delivery = Arc::new(Delivery {
            gate: ReentrantMutex::new(()),
            stopped: AtomicBool::new(false),
        });
        let mut events = client.events();
        let worker = delivery.clone();
        runtime.spawn(async move {
            while let Some(event) = events.recv().await {
                let (listener, gate) = (listener.clone(), worker.clone());
                let delivered = tokio::task::spawn_blocking(move || {
                    let _held = gate.gate.lock();
                    if gate.stopped.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    listener.on_event(event.into())
                })
                .await;
                match delivered {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "client listener failed"),
                    Err(e) => tracing::error!(error = %e, "client listener call failed"),
                }
                if worker.stopped.load(Ordering::SeqCst) {
                    break;
                }
            }
        });
        Ok(Arc::new(ChatClient {
            client: parking_lot::RwLock::new(Some(client)),
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            delivery,
        }))
    }

    /// The user this client acts as.
    pub fn user_id(&self) -> Result<String, ChatError> {
        Ok(self.client()?.user_id().to_string())
    }

    /// Where the connection stands.
    pub fn connection_state(&self) -> ConnectionState {
        match self.client.read().as_ref() {
            Some(c) => c.connection_state().into(),
            None => ConnectionState::Closed,
        }
    }

    /// Waits up to `timeout_ms` for the connection; true when connected.
    pub fn wait_connected(&self, timeout_ms: u64) -> bool {
        match self.client() {
            Ok(c) => self.block_on(c.wait_connected(Duration::from_millis(timeout_ms))),
            Err(_) => false,
        }
    }

    /// Joins a course's room (remembered; resumed on every reconnect).
    pub fn join(&self, course_id: String) -> Result<(), ChatError> {
        Ok(self.client()?.join(&course_id)?)
    }

    /// Leaves a course's room.
    pub fn leave(&self, course_id: String) -> Result<(), ChatError> {
        Ok(self.client()?.leave(&course_id)?)
    }

    /// The joined courses.
    pub fn joined_courses(&self) -> Result<Vec<String>, ChatError> {
        Ok(self.client()?.joined_courses()?)
    }

    /// The online participants of a joined course.
    pub fn online_users(&self, course_id: String) -> Result<Vec<User>, ChatError> {
        Ok(self
            .client()?
            .online_users(&course_id)
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The newest `limit` messages before seq `before` (newest overall when absent), oldest
    /// first, from the cache, filled from the server when missing.
    pub fn history(
        &self,
        course_id: String,
        before: Option<u64>,
        limit: u32,
    ) -> Result<CachedPage, ChatError> {
        let page = self.block_on(self.client()?.history(&course_id, before, limit as usize))?;
        Ok(CachedPage {
            messages: page.messages.into_iter().map(Into::into).collect(),
            has_more: page.has_more,
            complete: page.complete,
        })
    }

    /// A cached message by id.
    pub fn message(&self, message_id: String) -> Result<Option<Message>, ChatError> {
        Ok(self.client()?.message(&message_id)?.map(Into::into))
    }

    /// Writes a message: into the outbox (on disk) at once, pending; delivered exactly once.
    #[uniffi::method(default(reply_to = None))]
    pub fn send(
        &self,
        course_id: String,
        text: String,
        reply_to: Option<String>,
    ) -> Result<OutboxEntry, ChatError> {
        let entry = self.block_on(self.client()?.send_reply(
            &course_id,
            &text,
            reply_to.as_deref(),
        ))?;
        Ok(entry.into())
    }

    /// The outbox (pending and failed), oldest first; one course's when given.
    #[uniffi::method(default(course_id = None))]
    pub fn outbox(&self, course_id: Option<String>) -> Result<Vec<OutboxEntry>, ChatError> {
        Ok(self
            .client()?
            .outbox(course_id.as_deref())?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Queues a failed message again.
    pub fn retry(&self, client_id: String) -> Result<OutboxEntry, ChatError> {
        Ok(self.block_on(self.client()?.retry(&client_id))?.into())
    }

    /// Drops a failed message.
    pub fn discard(&self, client_id: String) -> Result<(), ChatError> {
        Ok(self.block_on(self.client()?.discard(&client_id))?)
    }

    /// Edits one of this user's messages (needs the connection).
    pub fn edit(&self, message_id: String, text: String) -> Result<Message, ChatError> {
        Ok(self
            .block_on(self.client()?.edit(&message_id, &text))?
            .into())
    }

    /// Deletes a message (needs the connection); the tombstone.
    pub fn delete(&self, message_id: String) -> Result<Message, ChatError> {
        Ok(self.block_on(self.client()?.delete(&message_id))?.into())
    }

    /// Adds this user's emoji to a message (needs the connection); `ReactionAdded` follows.
    pub fn react(&self, message_id: String, emoji: String) -> Result<Message, ChatError> {
        Ok(self
            .block_on(self.client()?.react(&message_id, &emoji))?
            .into())
    }

    /// Removes this user's emoji from a message (needs the connection).
    pub fn unreact(&self, message_id: String, emoji: String) -> Result<Message, ChatError> {
        Ok(self
            .block_on(self.client()?.unreact(&message_id, &emoji))?
            .into())
    }

    /// Marks a cached message and all before it read (sent now or on the next connection).
    pub fn mark_read(&self, message_id: String) -> Result<(), ChatError> {
        Ok(self.client()?.mark_read(&message_id)?)
    }

    /// Messages of others after this user's read watermark.
    pub fn unread(&self, course_id: String) -> Result<u64, ChatError> {
        Ok(self.client()?.unread(&course_id)?)
    }

    /// Typing (`true` on every keystroke) or stopped; debounced.
    pub fn typing(&self, course_id: String, is_typing: bool) -> Result<(), ChatError> {
        let _rt = self.handle.enter();
        Ok(self.client()?.typing(&course_id, is_typing)?)
    }

    /// Uploads a file with a caption (needs the connection); progress as `UploadProgress`.
    #[uniffi::method(default(caption = "", message_type = None))]
    pub fn send_file(
        &self,
        course_id: String,
        file_name: String,
        bytes: Vec<u8>,
        caption: String,
        message_type: Option<MessageType>,
    ) -> Result<Message, ChatError> {
        let m = self.block_on(self.client()?.send_file(
            &course_id,
            &file_name,
            bytes,
            &caption,
            message_type.map(Into::into),
        ))?;
        Ok(m.into())
    }

    /// Replaces the token and reconnects with it.
    pub fn set_token(&self, token: String) -> Result<(), ChatError> {
        Ok(self.client()?.set_token(&token)?)
    }

    /// Reconnects at once (the app knows the network is back).
    pub fn reconnect_now(&self) -> Result<(), ChatError> {
        self.client()?.reconnect_now();
        Ok(())
    }

    /// Stops the connection and the listener, writes the cache to disk and releases the folder
    /// (the outbox is kept for the next `connect`). Idempotent.
    pub fn close(&self) -> Result<(), ChatError> {
        let Some(runtime) = self.runtime.lock().take() else {
            return Ok(());
        };
        let client = self.client.write().take();
        let closed = match &client {
            Some(c) => runtime.block_on(c.close()),
            None => Ok(()),
        };
        drop(client);
        self.delivery.stopped.store(true, Ordering::SeqCst);
        drop(self.delivery.gate.lock());
        runtime.shutdown_timeout(Duration::from_secs(2));
        Ok(closed?)
    }
}

impl Drop for ChatClient {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.lock().take() {
            self.delivery.stopped.store(true, Ordering::SeqCst);
            runtime.shutdown_background();
        }
    }
}
