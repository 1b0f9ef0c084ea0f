//! [`Client`]: the app's handle. It owns the cache, a background task that keeps one socket to
//! the server (reconnecting with exponential backoff and jitter), and the subscribers of events.
//! Reads are served from the cache; writes that can wait (messages, read watermarks) go through
//! the cache first and reach the server when it is reachable; the rest need the connection.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chat_core::{Event, Message, MessageType, User};
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};

use crate::cache::{Applied, Cache};
use crate::error::{ClientError, Result};
use crate::event::{ClientEvent, ConnectionState};
use crate::model::{HistoryPage, OutboxEntry, OutboxState};
use crate::rest::{Rest, Upload};
use crate::session::{End, Session};
use crate::socket::{self, Endpoint, OpenError};
use crate::token;

/// Settings of a client beyond its URL, token and folder.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// PEM certificates trusted for `wss://` / `https://` besides the webpki roots (a private CA).
    pub extra_root_certificates_pem: Vec<String>,
    /// First reconnect delay (default 500 ms); it doubles per failed attempt.
    pub backoff_min: Duration,
    /// Longest reconnect delay (default 30 s).
    pub backoff_max: Duration,
    /// A connection from which nothing (not even the server's pings) arrived for this long is
    /// considered dead and replaced (default 75 s: the server pings every 25 s).
    pub idle_timeout: Duration,
    /// Typing is reported stopped after this long without a keystroke (default 3 s), and
    /// refreshed at most this often while it goes on.
    pub typing_idle: Duration,
    /// How long opening a socket may take (default 10 s).
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            extra_root_certificates_pem: Vec::new(),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            typing_idle: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// What the app asks of the session task.
pub(crate) enum Command {
    /// A request whose answer the app awaits; `apply`: the answer is a message change to keep
    /// in the cache and announce (edits, deletions) rather than wait for from the room.
    Request {
        event: &'static str,
        data: Value,
        reply: oneshot::Sender<Result<Value>>,
        apply: bool,
    },
    /// A request whose answer nobody awaits (typing).
    Notify { event: &'static str, data: Value },
    /// Join a course's room now.
    Join(String),
    /// Leave a course's room.
    Leave(String),
    /// The outbox or a read watermark changed: send what is pending.
    Kick,
    /// Drop the connection and connect again now (a new token, or the app knows the network is
    /// back).
    Reconnect,
    /// Stop.
    Close,
}

/// Who gets events; what came before the first subscriber waits for it.
#[derive(Default)]
struct Subscribers {
    senders: Vec<mpsc::UnboundedSender<ClientEvent>>,
    early: std::collections::VecDeque<ClientEvent>,
}

/// Events kept for the first subscriber (the oldest are dropped beyond it).
const EARLY_EVENTS: usize = 1024;

#[derive(Default)]
struct TypingState {
    active: bool,
    last_sent: Option<Instant>,
    generation: u64,
}

pub(crate) struct Inner {
    endpoint: Endpoint,
    token: RwLock<String>,
    me: String,
    pub(crate) cache: Cache,
    rest: Rest,
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
    pub(crate) options: ClientOptions,
    commands: mpsc::UnboundedSender<Command>,
    subscribers: Mutex<Subscribers>,
    state: watch::Sender<ConnectionState>,
    online: Mutex<HashMap<String, Vec<User>>>,
    unread: Mutex<HashMap<String, u64>>,
    typing: Mutex<HashMap<String, TypingState>>,
    /// The session task, awaited by `close` (so the cache is released once the app drops the
    /// client: the same folder can be opened again at once).
    driver: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A chat client: one user's connection to one chat-host, with its local cache and outbox.
/// Cheap to clone (all clones are the same client). Needs a tokio runtime. Dropping the last
/// clone stops the connection too (prefer [`Client::close`], which also waits for it).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    _last: Arc<StopOnDrop>,
}

/// Held by every clone of a [`Client`] (not by its background task): when the app drops the last
/// one, the task is told to stop, so it does not run (and hold the cache) forever.
struct StopOnDrop(mpsc::UnboundedSender<Command>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(Command::Close);
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The server's rule for ids (chat-core's), checked before anything is queued.
fn check_id(what: &str, id: &str) -> Result<()> {
    chat_core::model::check_id(what, id).map_err(|e| ClientError::InvalidArgument(e.to_string()))
}

impl Client {
    /// Opens the cache in `cache_dir` (created if missing) and starts connecting to the server at
    /// `url` (`ws://`, `wss://`, `http://` or `https://` and `host:port`) as the user `token`
    /// names. Returns at once: the cache and the outbox work before (and without) a connection.
    pub async fn connect(url: &str, token: &str, cache_dir: impl AsRef<Path>) -> Result<Client> {
        Client::connect_with(url, token, cache_dir, ClientOptions::default()).await
    }

    /// [`Client::connect`] with options.
    pub async fn connect_with(
        url: &str,
        token: &str,
        cache_dir: impl AsRef<Path>,
        options: ClientOptions,
    ) -> Result<Client> {
        let endpoint = Endpoint::parse(url)?;
        let me = token::user_id(token)?;
        let dir = cache_dir.as_ref().to_path_buf();
        let cache = tokio::task::spawn_blocking(move || Cache::open(&dir))
            .await
            .map_err(|e| ClientError::Cache(e.to_string()))??;
        cache.claim(&me)?;
        let tls = socket::tls_config(&options.extra_root_certificates_pem)?;
        let rest = Rest::new(&endpoint, &options.extra_root_certificates_pem)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (state, _) = watch::channel(ConnectionState::Connecting);
        let inner = Arc::new(Inner {
            endpoint,
            token: RwLock::new(token.to_string()),
            me,
            cache,
            rest,
            tls,
            options,
            commands: tx,
            subscribers: Mutex::new(Subscribers::default()),
            state,
            online: Mutex::new(HashMap::new()),
            unread: Mutex::new(HashMap::new()),
            typing: Mutex::new(HashMap::new()),
            driver: Mutex::new(None),
        });
        *inner.driver.lock() = Some(tokio::spawn(drive(inner.clone(), rx)));
        let last = Arc::new(StopOnDrop(inner.commands.clone()));
        Ok(Client { inner, _last: last })
    }

    /// The user this client acts as (the token's `sub` or `id`).
    pub fn user_id(&self) -> &str {
        &self.inner.me
    }

    /// A new stream of events: each subscriber gets every event from now on, in order. The first
    /// subscriber also gets what happened since [`Client::connect`] (up to 1,024 events), so
    /// nothing is missed between connecting and subscribing.
    pub fn events(&self) -> mpsc::UnboundedReceiver<ClientEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut subs = self.inner.subscribers.lock();
        for e in subs.early.drain(..) {
            let _ = tx.send(e);
        }
        subs.senders.push(tx);
        rx
    }

    /// Where the connection stands.
    pub fn connection_state(&self) -> ConnectionState {
        self.inner.state.borrow().clone()
    }

    /// Waits until connected (true) or `within` passes (false).
    pub async fn wait_connected(&self, within: Duration) -> bool {
        let mut rx = self.inner.state.subscribe();
        tokio::time::timeout(within, rx.wait_for(|s| *s == ConnectionState::Connected))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Replaces the token (an expired one is refused with [`ConnectionState::Unauthorized`]) and
    /// reconnects with it.
    pub fn set_token(&self, token: &str) -> Result<()> {
        let user = token::user_id(token)?;
        if user != self.inner.me {
            return Err(ClientError::InvalidArgument(format!(
                "the token is for user {user:?}, this client is {:?}'s",
                self.inner.me
            )));
        }
        *self.inner.token.write() = token.to_string();
        self.inner.command(Command::Reconnect);
        Ok(())
    }

    /// Drops the connection (if any) and connects again at once, skipping the backoff delay (the
    /// app knows the network is back).
    pub fn reconnect_now(&self) {
        self.inner.command(Command::Reconnect);
    }

    /// Stops the connection and writes the cache to disk. The client answers `Closed` afterwards;
    /// the outbox is kept for the next [`Client::connect`] on the same folder.
    pub async fn close(&self) -> Result<()> {
        self.inner.command(Command::Close);
        let driver = self.inner.driver.lock().take();
        if let Some(task) = driver {
            let _ = task.await;
        }
        self.inner.cache.flush().await
    }

    // ---- rooms --------------------------------------------------------------------------------

    /// Joins a course's room: its events reach this client and its messages are cached, now and
    /// on every reconnect (resuming from the last seq held). Remembered across restarts.
    pub fn join(&self, course_id: &str) -> Result<()> {
        check_id("courseId", course_id)?;
        let was = self.inner.cache.update_course(course_id, |s| {
            let was = s.joined;
            s.joined = true;
            was
        })?;
        if !was {
            self.inner.command(Command::Join(course_id.to_string()));
        }
        Ok(())
    }

    /// Leaves a course's room (its cache stays until the course is joined again).
    pub fn leave(&self, course_id: &str) -> Result<()> {
        check_id("courseId", course_id)?;
        self.inner
            .cache
            .update_course(course_id, |s| s.joined = false)?;
        self.inner.command(Command::Leave(course_id.to_string()));
        Ok(())
    }

    /// The courses joined (remembered across restarts).
    pub fn joined_courses(&self) -> Result<Vec<String>> {
        Ok(self
            .inner
            .cache
            .joined_courses()?
            .into_iter()
            .map(|(c, _)| c)
            .collect())
    }

    /// The online participants of a joined course, as last told by the server.
    pub fn online_users(&self, course_id: &str) -> Vec<User> {
        self.inner
            .online
            .lock()
            .get(course_id)
            .cloned()
            .unwrap_or_default()
    }

    // ---- history ------------------------------------------------------------------------------

    /// The newest `limit` (1 to 100) messages created before seq `before` (the newest overall
    /// when `None`), oldest first. Served from the cache; what the cache lacks is fetched from the
    /// server and kept. Offline, the page holds what the cache has and says `complete: false`.
    pub async fn history(
        &self,
        course_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage> {
        check_id("courseId", course_id)?;
        let limit = limit.clamp(1, 100);
        let cache = &self.inner.cache;
        loop {
            let state = cache.course(course_id)?.unwrap_or_default();
            let cached = cache.page(course_id, before, limit)?;
            match state.floor {
                Some(0) => {
                    let has_more = match cached.first() {
                        Some(first) if cached.len() == limit => {
                            !cache.page(course_id, Some(first.seq), 1)?.is_empty()
                        }
                        _ => false,
                    };
                    return Ok(HistoryPage {
                        messages: cached,
                        has_more,
                        complete: true,
                    });
                }
                Some(floor) if cached.len() == limit && cached[0].seq >= floor => {
                    return Ok(HistoryPage {
                        messages: cached,
                        has_more: true,
                        complete: true,
                    });
                }
                Some(floor) if before.is_none_or(|b| b >= floor) => {
                    // Extend the complete range downwards by a full page, then answer from it.
                    let token = self.inner.token.read().clone();
                    match self
                        .inner
                        .rest
                        .history(&token, course_id, Some(floor), 100)
                        .await
                    {
                        Ok(page) => {
                            let new_floor = match page.messages.first() {
                                Some(first) if page.has_more && first.seq > 1 => first.seq,
                                _ => 0,
                            };
                            cache.put_history(course_id, &page.messages, new_floor)?;
                            self.inner.learn_reads(course_id, &page.messages)?;
                        }
                        Err(e) if e.is_transient() => {
                            return Ok(HistoryPage {
                                messages: cached,
                                has_more: true,
                                complete: false,
                            })
                        }
                        Err(e) => return Err(e),
                    }
                }
                _ => {
                    // Nothing followed yet (or a page below the complete range): ask the server
                    // and keep what it says, without claiming the range complete.
                    let token = self.inner.token.read().clone();
                    match self
                        .inner
                        .rest
                        .history(&token, course_id, before, limit)
                        .await
                    {
                        Ok(page) => {
                            for m in &page.messages {
                                cache.put_message(m, false)?;
                            }
                            self.inner.learn_reads(course_id, &page.messages)?;
                            return Ok(HistoryPage {
                                messages: page.messages,
                                has_more: page.has_more,
                                complete: true,
                            });
                        }
                        Err(e) if e.is_transient() => {
                            return Ok(HistoryPage {
                                messages: cached,
                                has_more: true,
                                complete: false,
                            })
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// A cached message by id.
    pub fn message(&self, message_id: &str) -> Result<Option<Message>> {
        self.inner.cache.message(message_id)
    }

    // ---- the outbox ---------------------------------------------------------------------------

    /// Writes a text message: it enters the outbox (on disk) and is returned at once, pending,
    /// with a fresh `clientId`; it is delivered in order when the server is reachable, exactly
    /// once. Events: [`ClientEvent::SendPending`], then `SendSent` or `SendFailed`.
    pub async fn send(&self, course_id: &str, text: &str) -> Result<OutboxEntry> {
        self.send_reply(course_id, text, None).await
    }

    /// [`Client::send`] answering the message `reply_to`.
    pub async fn send_reply(
        &self,
        course_id: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<OutboxEntry> {
        check_id("courseId", course_id)?;
        let entry = OutboxEntry {
            client_id: ulid::Ulid::new().to_string(),
            course_id: course_id.to_string(),
            message: text.to_string(),
            message_type: MessageType::Text,
            reply_to: reply_to.map(str::to_string),
            state: OutboxState::Pending,
            created_at_ms: now_ms(),
        };
        self.inner.cache.outbox_push(&entry).await?;
        self.inner.emit(ClientEvent::SendPending(entry.clone()));
        self.inner.command(Command::Kick);
        Ok(entry)
    }

    /// The outbox (pending and failed messages), oldest first; one course's when given.
    pub fn outbox(&self, course_id: Option<&str>) -> Result<Vec<OutboxEntry>> {
        let mut all = self.inner.cache.outbox()?;
        if let Some(c) = course_id {
            all.retain(|e| e.course_id == c);
        }
        Ok(all)
    }

    /// Puts a failed message back in the queue (same `clientId`).
    pub async fn retry(&self, client_id: &str) -> Result<OutboxEntry> {
        let mut entry = self.outbox_entry(client_id)?;
        entry.state = OutboxState::Pending;
        self.inner.cache.outbox_update(&entry)?;
        self.inner.cache.flush().await?;
        self.inner.emit(ClientEvent::SendPending(entry.clone()));
        self.inner.command(Command::Kick);
        Ok(entry)
    }

    /// Drops a failed message from the outbox (a pending one may be on its way: it cannot be).
    pub async fn discard(&self, client_id: &str) -> Result<()> {
        let entry = self.outbox_entry(client_id)?;
        if entry.state == OutboxState::Pending {
            return Err(ClientError::InvalidArgument(
                "a pending message may already be on its way; only a failed one can be discarded"
                    .into(),
            ));
        }
        self.inner.cache.outbox_remove(client_id)?;
        self.inner.cache.flush().await?;
        self.inner.emit(ClientEvent::SendDiscarded {
            course_id: entry.course_id,
            client_id: client_id.to_string(),
        });
        Ok(())
    }

    fn outbox_entry(&self, client_id: &str) -> Result<OutboxEntry> {
        self.inner
            .cache
            .outbox()?
            .into_iter()
            .find(|e| e.client_id == client_id)
            .ok_or_else(|| ClientError::InvalidArgument(format!("no outbox message {client_id:?}")))
    }

    /// Uploads a file (at most the server's file limit) with an optional caption: a message of
    /// type `message_type` (the server derives it from the content when `None`). Progress comes as
    /// [`ClientEvent::UploadProgress`]; retried on network failures with the same `clientId`.
    pub async fn send_file(
        &self,
        course_id: &str,
        file_name: &str,
        bytes: Vec<u8>,
        caption: &str,
        message_type: Option<MessageType>,
    ) -> Result<Message> {
        check_id("courseId", course_id)?;
        let client_id = ulid::Ulid::new().to_string();
        let bytes = Bytes::from(bytes);
        let mut attempt = 0;
        loop {
            let inner = self.inner.clone();
            let id = client_id.clone();
            let progress = Arc::new(move |sent, total| {
                inner.emit(ClientEvent::UploadProgress {
                    client_id: id.clone(),
                    sent,
                    total,
                })
            });
            let token = self.inner.token.read().clone();
            let upload = Upload {
                course_id,
                client_id: &client_id,
                file_name,
                bytes: bytes.clone(),
                caption,
                message_type: message_type.map(MessageType::as_str),
            };
            match self.inner.rest.upload(&token, upload, progress).await {
                Ok(message) => {
                    self.inner.sent(&client_id, message.clone(), false)?;
                    return Ok(message);
                }
                Err(ClientError::Network(e)) if attempt < 2 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "chat-client: upload retried");
                    tokio::time::sleep(self.inner.backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    // ---- changes that need the server ----------------------------------------------------------

    async fn request(&self, event: &'static str, data: Value, apply: bool) -> Result<Value> {
        if *self.inner.state.borrow() != ConnectionState::Connected {
            return Err(ClientError::Offline(format!("{event} needs a connection")));
        }
        let (reply, answer) = oneshot::channel();
        self.inner.command(Command::Request {
            event,
            data,
            reply,
            apply,
        });
        answer
            .await
            .map_err(|_| ClientError::Network("the connection was lost".into()))?
    }

    /// Edits one of this user's messages (online only); the cache and events follow.
    pub async fn edit(&self, message_id: &str, text: &str) -> Result<Message> {
        check_id("messageId", message_id)?;
        let data = self
            .request(
                "edit-message",
                json!({"messageId": message_id, "newMessage": text}),
                true,
            )
            .await?;
        serde_json::from_value(data).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Deletes a message (online only); returns the tombstone.
    pub async fn delete(&self, message_id: &str) -> Result<Message> {
        check_id("messageId", message_id)?;
        let data = self
            .request("delete-message", json!({"messageId": message_id}), true)
            .await?;
        serde_json::from_value(data).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Adds this user's `emoji` to a message (online only). The answer is the message with its
    /// reactions; the cache and [`ClientEvent::ReactionAdded`] follow from the room's event, as
    /// for anyone else's reaction.
    pub async fn react(&self, message_id: &str, emoji: &str) -> Result<Message> {
        self.reaction("add-reaction", message_id, emoji).await
    }

    /// Removes this user's `emoji` from a message (online only).
    pub async fn unreact(&self, message_id: &str, emoji: &str) -> Result<Message> {
        self.reaction("remove-reaction", message_id, emoji).await
    }

    async fn reaction(
        &self,
        event: &'static str,
        message_id: &str,
        emoji: &str,
    ) -> Result<Message> {
        check_id("messageId", message_id)?;
        let data = self
            .request(
                event,
                json!({"messageId": message_id, "emoji": emoji}),
                false,
            )
            .await?;
        serde_json::from_value(data).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Marks a cached message (and everything before it in its course) read: the unread count
    /// drops at once, and the watermark reaches the server now or on the next connection.
    pub fn mark_read(&self, message_id: &str) -> Result<()> {
        let m = self.inner.cache.message(message_id)?.ok_or_else(|| {
            ClientError::InvalidArgument(format!("no cached message {message_id:?}"))
        })?;
        let moved = self.inner.cache.update_course(&m.course_id, |s| {
            if m.seq > s.read_seq {
                s.read_seq = m.seq;
                s.pending_read = Some(m.id.clone());
                true
            } else {
                false
            }
        })?;
        if moved {
            self.inner.refresh_unread(&m.course_id)?;
            self.inner.command(Command::Kick);
        }
        Ok(())
    }

    /// Messages of others after this user's read watermark in a course (from the cache).
    pub fn unread(&self, course_id: &str) -> Result<u64> {
        self.inner.cache.unread(course_id, &self.inner.me)
    }

    /// Says this user is typing (`true`, call it on every keystroke) or stopped (`false`).
    /// Debounced: the server hears `true` once, a refresh at most every `typing_idle`, and `false`
    /// after `typing_idle` without a keystroke. Offline, nothing is sent.
    pub fn typing(&self, course_id: &str, is_typing: bool) -> Result<()> {
        check_id("courseId", course_id)?;
        let idle = self.inner.options.typing_idle;
        let mut all = self.inner.typing.lock();
        let t = all.entry(course_id.to_string()).or_default();
        t.generation += 1;
        if is_typing {
            if !t.active || t.last_sent.is_none_or(|at| at.elapsed() >= idle) {
                t.active = true;
                t.last_sent = Some(Instant::now());
                self.inner.notify_typing(course_id, true);
            }
            let generation = t.generation;
            // Weak: a pending stop must not keep a closed client's cache open.
            let inner = Arc::downgrade(&self.inner);
            let course = course_id.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(idle).await;
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                let mut all = inner.typing.lock();
                if let Some(t) = all.get_mut(&course) {
                    if t.generation == generation && t.active {
                        t.active = false;
                        inner.notify_typing(&course, false);
                    }
                }
            });
        } else if t.active {
            t.active = false;
            self.inner.notify_typing(course_id, false);
        }
        Ok(())
    }
}

/// The session task: connect, serve, and on loss wait (backoff with jitter) and connect again.
async fn drive(inner: Arc<Inner>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut failures = 0u32;
    loop {
        inner.set_state(ConnectionState::Connecting);
        let token = inner.token.read().clone();
        let opened = socket::open(
            &inner.endpoint,
            &token,
            &inner.tls,
            inner.options.connect_timeout,
        )
        .await;
        let reason = match opened {
            Ok(sock) => {
                inner.set_state(ConnectionState::Connected);
                let since = Instant::now();
                match Session::new(&inner, sock).run(&mut commands).await {
                    End::Closed => break,
                    End::Lost(why) => {
                        // A connection that lived a while resets the backoff; one dropped at
                        // once keeps growing it, so a refusing server is not hammered.
                        if since.elapsed() >= Duration::from_secs(10) {
                            failures = 0;
                        }
                        why
                    }
                }
            }
            Err(OpenError::Unauthorized) => {
                inner.set_state(ConnectionState::Unauthorized {
                    reason: "the server refused the token".into(),
                });
                if wait_offline(&mut commands, None).await {
                    break;
                }
                continue;
            }
            Err(OpenError::Failed(why)) => why,
        };
        failures = failures.saturating_add(1);
        let delay = inner.backoff(failures);
        inner.set_state(ConnectionState::Disconnected {
            reason,
            retry_in_ms: delay.as_millis() as u64,
        });
        if wait_offline(&mut commands, Some(delay)).await {
            break;
        }
    }
    inner.set_state(ConnectionState::Closed);
}

/// Waits `delay` (forever when `None`) or until the app asks to reconnect; answers requests with
/// `Offline` meanwhile. True when the app closed the client.
async fn wait_offline(
    commands: &mut mpsc::UnboundedReceiver<Command>,
    delay: Option<Duration>,
) -> bool {
    let sleep = async {
        match delay {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return false,
            command = commands.recv() => match command {
                None | Some(Command::Close) => return true,
                Some(Command::Reconnect) => return false,
                Some(Command::Request { event, reply, .. }) => {
                    let _ = reply.send(Err(ClientError::Offline(format!("{event} needs a connection"))));
                }
                // Joins, the outbox and watermarks are in the cache: the next session sends them.
                Some(_) => {}
            }
        }
    }
}

impl Inner {
    pub(crate) fn emit(&self, event: ClientEvent) {
        let mut subs = self.subscribers.lock();
        if subs.senders.is_empty() {
            if subs.early.len() == EARLY_EVENTS {
                subs.early.pop_front();
            }
            subs.early.push_back(event);
            return;
        }
        subs.senders.retain(|tx| tx.send(event.clone()).is_ok());
    }

    fn command(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    fn set_state(&self, state: ConnectionState) {
        let changed = self.state.send_if_modified(|s| {
            if *s == state {
                false
            } else {
                *s = state.clone();
                true
            }
        });
        if changed {
            self.emit(ClientEvent::Connection(state));
        }
    }

    /// The delay before reconnect attempt `n` (1-based): `backoff_min · 2^(n-1)` capped at
    /// `backoff_max`, then a random point in its upper half (jitter, so clients that lost one
    /// server do not all come back at the same instant).
    pub(crate) fn backoff(&self, n: u32) -> Duration {
        let (min, max) = (self.options.backoff_min, self.options.backoff_max);
        let exp = min
            .saturating_mul(1u32 << n.saturating_sub(1).min(20))
            .min(max);
        let ms = exp.as_millis() as u64;
        Duration::from_millis(ms / 2 + fastrand::u64(0..=ms / 2))
    }

    fn notify_typing(&self, course: &str, is_typing: bool) {
        if *self.state.borrow() == ConnectionState::Connected {
            self.command(Command::Notify {
                event: "typing",
                data: json!({"courseId": course, "isTyping": is_typing}),
            });
        }
    }

    pub(crate) fn set_online(&self, course: &str, users: Vec<User>) {
        self.online.lock().insert(course.to_string(), users.clone());
        self.emit(ClientEvent::OnlineUsers {
            course_id: course.to_string(),
            users,
        });
    }

    /// Emits `Unread` for a course when its count changed.
    pub(crate) fn refresh_unread(&self, course: &str) -> Result<()> {
        let count = self.cache.unread(course, &self.me)?;
        let changed = self.unread.lock().insert(course.to_string(), count) != Some(count);
        if changed {
            self.emit(ClientEvent::Unread {
                course_id: course.to_string(),
                count,
            });
        }
        Ok(())
    }

    /// Moves this user's read watermark to the newest of `messages` the server lists them as a
    /// reader of (`readBy`): a new device learns how far the user had read.
    pub(crate) fn learn_reads(&self, course: &str, messages: &[Message]) -> Result<()> {
        let newest = messages
            .iter()
            .filter(|m| m.read_by.iter().any(|r| r.user_id == self.me))
            .map(|m| m.seq)
            .max();
        if let Some(seq) = newest {
            let moved = self.cache.update_course(course, |s| {
                let moved = seq > s.read_seq;
                s.read_seq = s.read_seq.max(seq);
                moved
            })?;
            if moved {
                self.refresh_unread(course)?;
            }
        }
        Ok(())
    }

    /// A message of this device was stored by the server: out of the outbox (`from_outbox`; an
    /// upload never was in it), into the cache. Reported once: the room's copy of it or the
    /// answer, whichever comes first, takes it out of the outbox.
    pub(crate) fn sent(&self, client_id: &str, message: Message, from_outbox: bool) -> Result<()> {
        self.cache.put_message(&message, false)?;
        self.own_message(&message, Some(client_id), !from_outbox)?;
        self.refresh_unread(&message.course_id)
    }

    /// A message of this user is stored (an answer, or the room's copy): it moves the read
    /// watermark, and the outbox entry of `client_id` leaves the outbox with `SendSent` (also
    /// reported when `always`, for uploads, which never were in it). Whether it was reported.
    fn own_message(&self, m: &Message, client_id: Option<&str>, always: bool) -> Result<bool> {
        self.cache
            .update_course(&m.course_id, |s| s.read_seq = s.read_seq.max(m.seq))?;
        let Some(cid) = client_id else {
            return Ok(false);
        };
        let reported = self.cache.outbox_remove(cid)?.is_some() || always;
        if reported {
            self.emit(ClientEvent::SendSent {
                client_id: cid.to_string(),
                message: m.clone(),
            });
        }
        Ok(reported)
    }

    /// The server refused an outbox message for good.
    pub(crate) fn failed(&self, client_id: &str, error: &ClientError) -> Result<()> {
        let Some(mut entry) = self
            .cache
            .outbox()?
            .into_iter()
            .find(|e| e.client_id == client_id)
        else {
            return Ok(());
        };
        let (code, message) = match error {
            ClientError::Server { code, message, .. } => (code.clone(), message.clone()),
            other => ("INTERNAL".to_string(), other.to_string()),
        };
        entry.state = OutboxState::Failed { code, message };
        self.cache.outbox_update(&entry)?;
        self.emit(ClientEvent::SendFailed(entry));
        Ok(())
    }

    fn apply_reaction(
        &self,
        r: chat_core::event::ReactionEvent,
        added: bool,
        live: bool,
    ) -> Result<()> {
        if self.cache.react(&r.course_id, &r, added, live)?.is_some() {
            let (course_id, message_id, user_id, emoji, seq) =
                (r.course_id, r.message_id, r.user_id, r.emoji, r.seq);
            self.emit(if added {
                ClientEvent::ReactionAdded {
                    course_id,
                    message_id,
                    user_id,
                    emoji,
                    seq,
                }
            } else {
                ClientEvent::ReactionRemoved {
                    course_id,
                    message_id,
                    user_id,
                    emoji,
                    seq,
                }
            });
        }
        Ok(())
    }

    /// The answer of an app request that carries a message (an edit, a deletion's tombstone):
    /// kept in the cache and announced (the room's own event for it is then a duplicate).
    pub(crate) fn apply_answer(&self, data: &Value) -> Result<()> {
        let Ok(m) = serde_json::from_value::<Message>(data.clone()) else {
            return Ok(());
        };
        let event = if m.is_deleted {
            Event::MessageDeleted(chat_core::event::MessageDeleted {
                message_id: m.id.clone(),
                course_id: m.course_id.clone(),
                seq: m.change_seq,
            })
        } else {
            Event::MessageEdited(m)
        };
        self.apply_event(event, false)
    }

    /// Applies a room event to the cache and tells the app. `live`: from the room's stream (it
    /// moves the course's resume seq); an answer's copy does not, since the stream may not have
    /// delivered the changes before it yet.
    pub(crate) fn apply_event(&self, event: Event, live: bool) -> Result<()> {
        match event {
            Event::NewMessage(m) => {
                let course = m.course_id.clone();
                let applied = self.cache.put_message(&m, live)?;
                let reported = m.sender.id == self.me
                    && self.own_message(&m, m.client_id.as_deref(), false)?;
                if applied == Applied::Stored && !reported {
                    self.emit(ClientEvent::NewMessage(m));
                }
                self.refresh_unread(&course)
            }
            Event::MessageEdited(m) => {
                if self.cache.put_message(&m, live)? == Applied::Stored {
                    self.emit(ClientEvent::MessageEdited(m));
                }
                Ok(())
            }
            Event::MessageDeleted(d) => {
                let applied =
                    self.cache
                        .delete_message(&d.course_id, &d.message_id, d.seq, live)?;
                if applied == Applied::Stored {
                    self.emit(ClientEvent::MessageDeleted {
                        course_id: d.course_id.clone(),
                        message_id: d.message_id,
                        seq: d.seq,
                    });
                }
                self.refresh_unread(&d.course_id)
            }
            Event::ReactionAdded(r) => self.apply_reaction(r, true, live),
            Event::ReactionRemoved(r) => self.apply_reaction(r, false, live),
            Event::MessagePinned(p) => {
                if self.cache.pin(&p, live)? == Applied::Stored {
                    self.emit(ClientEvent::MessagePinned(p));
                }
                Ok(())
            }
            Event::UserMuted(m) => {
                self.emit(ClientEvent::UserMuted(m));
                Ok(())
            }
            Event::UserBanned(b) => {
                self.emit(ClientEvent::UserBanned(b));
                Ok(())
            }
            Event::MessageFlagged(f) => {
                self.emit(ClientEvent::MessageFlagged(f));
                Ok(())
            }
            Event::FlagResolved(f) => {
                self.emit(ClientEvent::FlagResolved(f));
                Ok(())
            }
            Event::ThreadUpdated(t) => {
                self.emit(ClientEvent::ThreadUpdated(t));
                Ok(())
            }
            Event::UserJoined(j) => {
                self.emit(ClientEvent::UserJoined {
                    course_id: j.course_id,
                    user: j.user,
                });
                Ok(())
            }
            Event::UserLeft(l) => {
                self.emit(ClientEvent::UserLeft {
                    course_id: l.course_id,
                    user: l.user,
                });
                Ok(())
            }
            Event::OnlineUsers(o) => {
                self.set_online(&o.course_id, o.users);
                Ok(())
            }
            Event::UserTyping(t) => {
                self.emit(ClientEvent::Typing {
                    course_id: t.course_id,
                    user_id: t.user_id,
                    name: t.name,
                    is_typing: t.is_typing,
                });
                Ok(())
            }
            Event::MessageRead(r) => {
                if r.user_id == self.me {
                    if let Some(m) = self.cache.message(&r.message_id)? {
                        self.cache
                            .update_course(&r.course_id, |s| s.read_seq = s.read_seq.max(m.seq))?;
                        self.refresh_unread(&r.course_id)?;
                    }
                }
                self.emit(ClientEvent::MessageRead(r));
                Ok(())
            }
        }
    }
}
