//! The engine: every rule of the contract, behind one cloneable handle.
//!
//! Each public method is one operation of the contract, called with the [`Actor`] an adapter
//! authenticated. The method checks the rules (course exists, caller enrolled or admin, chat
//! enabled, ownership, limits, rate limit), asks the plugins, writes through the [`Store`] (which
//! allocates the seq and returns once durable), and only then publishes the event to the course's
//! hub. REST handlers, WebSocket codecs and the FFI all call these same methods.
//!
//! One `impl Engine` block per concern, one file each:
//! - [`users`]: profiles, presence status, `lastSeen`;
//! - [`courses`]: provisioning, enrolment, and the access checks every operation starts with;
//! - [`writes`]: sends, edits, deletions, read receipts (each a durable write, then its event);
//! - [`reactions`]: emoji reactions on messages (seq'd changes like edits);
//! - [`searches`]: full-text search over a course (the index is [`crate::search`]);
//! - [`archive`]: archived courses, export, dropping a course, retention;
//! - [`mentions`]: `@someone` in a message, recorded as the user ids it names;
//! - [`push`]: Web Push subscriptions and who a new message is pushed to;
//! - [`threads`]: replies gathered under a root message, thread pages and counts;
//! - [`moderation`]: pins, mutes, bans, flags and the audit log (instructors and admins);
//! - [`reads`]: history pages, replays of the change log, files, and filling `readBy`;
//! - [`connection`]: the handle a socket holds; [`rooms`]: joining and leaving rooms,
//!   presence and typing;
//! - [`catch_up`]: reading the change log for replays and to fill a room's gaps;
//! - [`node`]: working with the other nodes of a deployment (notices, heartbeats);
//! - [`uncancellable`]: how a write and its publish finish even if the caller stops waiting.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::blob::{self, BlobStore};
use crate::cluster::{Cluster, Rule};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::model::Actor;
use crate::plugin::{Plugin, Plugins};
use crate::search::SearchIndex;
use crate::store::{Store, StoredUser};
use crate::stream::{Events, StreamShared};
use crate::typing::TypingState;

mod archive;
mod catch_up;
mod connection;
mod courses;
mod mentions;
mod moderation;
mod node;
mod push;
mod reactions;
mod reads;
mod rooms;
mod searches;
mod threads;
mod uncancellable;
mod users;
mod writes;

pub use archive::{Dropped, MAX_EXPORT_PAGE};
pub use connection::{Connection, Joined, Resume};
pub use courses::CourseUpdate;
pub use moderation::{MAX_AUDIT_PAGE, MAX_MUTE, MAX_PINS, MAX_REASON_CHARS};
pub use push::{PushTarget, MAX_PUSH_SUBSCRIPTIONS};
pub use searches::{MAX_QUERY_CHARS, MAX_SEARCH_LIMIT};
pub use writes::{Attachment, SendMessage};

/// Builds an [`Engine`]: storage, limits and plugins.
#[derive(Default)]
pub struct EngineBuilder {
    config: Config,
    data_dir: Option<PathBuf>,
    store: Option<Arc<dyn Store>>,
    blobs: Option<Arc<dyn BlobStore>>,
    plugins: Vec<Arc<dyn Plugin>>,
    cluster: Option<Cluster>,
    search_dir: Option<PathBuf>,
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

    /// Keep the search index in this folder (default: `search/` in the data folder, or in
    /// memory without one; an index in memory is rebuilt from the store on first use).
    pub fn search_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.search_dir = Some(dir.into());
        self
    }

    /// Use this blob store (instead of the data folder's, or memory).
    pub fn blobs(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// Run as one node of several (a shared store, a bus, shared presence and rate limits);
    /// without it the engine is a node on its own.
    pub fn cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = Some(cluster);
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
            #[cfg(feature = "sled")]
            (None, Some(dir)) => {
                let path = dir.join("store");
                let store =
                    tokio::task::spawn_blocking(move || crate::store::sled::SledStore::open(path))
                        .await
                        .map_err(Error::storage)??;
                Arc::new(store)
            }
            #[cfg(not(feature = "sled"))]
            (None, Some(_)) => {
                return Err(Error::storage(
                    "a data folder needs the sled feature; give a store instead",
                ))
            }
            (None, None) => Arc::new(crate::store::memory::MemoryStore::open()),
        };
        let blobs: Arc<dyn BlobStore> = match (self.blobs, &self.data_dir) {
            (Some(b), _) => b,
            (None, Some(dir)) => Arc::new(blob::fs::FsBlobs::open(dir.join("files"))?),
            (None, None) => Arc::new(blob::memory::MemoryBlobs::default()),
        };
        let mut plugins = self.plugins;
        if !self.config.blocked_words.is_empty() {
            // The built-in filter runs first: the embedder's plugins see the masked text.
            let filter = crate::word_filter::WordFilter::new(
                &self.config.blocked_words,
                self.config.blocked_words_action,
            );
            plugins.insert(0, Arc::new(filter));
        }
        let plugins = Arc::new(Plugins::start(plugins, self.config.plugin_queue));
        let search_dir = self
            .search_dir
            .or_else(|| self.data_dir.as_deref().map(SearchIndex::dir_in));
        let epoch = store.epoch().await?;
        let engine = Engine {
            inner: Arc::new(Inner {
                send_rule: Rule {
                    name: "send",
                    burst: self.config.rate_limit_burst,
                    window: self.config.rate_limit_window,
                },
                typing_rule: Rule {
                    name: "typing",
                    burst: self.config.typing_rate_burst,
                    window: self.config.rate_limit_window,
                },
                config: self.config,
                store,
                blobs,
                plugins,
                cluster: self.cluster.unwrap_or_else(Cluster::single),
                epoch,
                search: tokio::sync::OnceCell::new(),
                search_dir,
                hubs: Mutex::new(HashMap::new()),
                typing: TypingState::default(),
                replays: catch_up::Replays::default(),
                profiles: Mutex::new(HashMap::new()),
                streams: Mutex::new(HashMap::new()),
                online_pending: Mutex::new(HashSet::new()),
                next_id: AtomicU64::new(1),
                closed: AtomicBool::new(false),
            }),
        };
        engine.start_node().await?;
        engine.start_retention();
        Ok(engine)
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
    /// The other nodes (or none), shared presence and rate limits.
    cluster: Cluster,
    /// The store's epoch, read at open.
    epoch: String,
    /// The full-text index, opened at the first search.
    search: tokio::sync::OnceCell<Arc<SearchIndex>>,
    search_dir: Option<PathBuf>,
    /// This node's fan-out, per course.
    hubs: Mutex<HashMap<String, Arc<Hub>>>,
    typing: TypingState,
    send_rule: Rule,
    typing_rule: Rule,
    replays: catch_up::Replays,
    /// Profiles known to be stored, so each call does not rewrite them.
    profiles: Mutex<HashMap<String, StoredUser>>,
    /// Courses with an `online-users` broadcast scheduled.
    online_pending: Mutex<HashSet<String>>,
    /// Open event streams, to end them on close.
    streams: Mutex<HashMap<u64, Weak<StreamShared>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

/// A handle to an engine that does not keep it open: for tasks an engine owns (a plugin's
/// worker), which would otherwise keep it alive for ever.
#[derive(Clone, Debug)]
pub struct WeakEngine(Weak<Inner>);

impl WeakEngine {
    /// The engine, unless every [`Engine`] handle is gone.
    pub fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
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

    /// A handle that does not keep the engine open.
    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The store underneath (for tests of the store behind an engine).
    #[cfg(any(test, feature = "testing"))]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The id of the store's history (see [`Store::epoch`]).
    pub fn epoch(&self) -> &str {
        &self.inner.epoch
    }

    /// This node's id in its deployment.
    pub fn node_id(&self) -> &str {
        &self.inner.cluster.node_id
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
}
