//! The cluster over Redis (cargo feature `redis`): a pub/sub bus, presence and rooms with
//! heartbeats, and shared token buckets.
//!
//! One Redis serves every node of a deployment (a single server, or a primary with replicas; not
//! Redis Cluster: the scripts compute the keys they touch). Every key starts with a prefix
//! (default `chat`; chat-host uses `chat:<store epoch>`, so deployments on one Redis never meet):
//!
//! | key | what |
//! |---|---|
//! | `{p}:bus` | the pub/sub channel of [`Notice`](super::Notice)s; nothing is stored |
//! | `{p}:nodes` | sorted set: node id → the time (ms, Redis's clock) its entries expire |
//! | `{p}:u:{user}` | hash: `n:{node}` → the user's connections on that node; `forced` → `1`/`0` |
//! | `{p}:r:{course}\0{user}` | hash: node → `1` while the user has a connection in the room there |
//! | `{p}:nu:{node}`, `{p}:nr:{node}` | sets: the users / `course\0user` rooms a node holds |
//! | `{p}:rate:{rule}:{user}\0{course}` | hash: a token bucket's tokens and time |
//!
//! **Why heartbeats.** A node killed with `-9` never says goodbye. Each node pushes its expiry in
//! `{p}:nodes` forward every [`HEARTBEAT`]; an entry counts only while its node's expiry is in
//! the future, so a dead node's users stop counting within [`NODE_TTL`]. The next heartbeat of a
//! live node finds the dead one, claims it (removing it from `{p}:nodes`, so exactly one node
//! does), deletes its entries and reports who went offline and which rooms they left.
//!
//! **Why scripts.** "Was this the user's first connection anywhere?" must be answered by one
//! node only; each read-modify-write is one Lua script, atomic in Redis. Time is Redis's (`TIME`),
//! never a node's clock.
//!
//! **Redis unreachable** never stops a send or a connection: the store holds the messages, and
//! while Redis is away each node answers from what it knows itself (its own connections, a local
//! token bucket) and logs it. Its next heartbeat that reaches Redis writes the node's entries
//! again from its own count, as it does when Redis lost its data (a restart without persistence)
//! and the node finds itself missing from `{p}:nodes`. The bus keeps nothing; a node that was cut off resubscribes and catches up from the
//! store. Presence keys carry their own expiry and must not be evicted early: run Redis with
//! `maxmemory-policy noeviction` (its default) or a `volatile-*` policy.
//!
//! - [`bus`]: the pub/sub channel of notices, resubscribed after a lost connection;
//! - [`presence`]: users and rooms per node, the heartbeat and the claim of dead nodes (Lua);
//! - [`rate`]: token buckets shared by every node (Lua), local ones while Redis is away.

/// `fn $name() -> &'static Script`: the Lua script `$body`, made once (fred runs it by its hash
/// and loads it again when Redis does not know it).
macro_rules! lua_script {
    ($(#[$doc:meta])* $name:ident = $body:expr) => {
        $(#[$doc])*
        fn $name() -> &'static fred::types::scripts::Script {
            static SCRIPT: std::sync::OnceLock<fred::types::scripts::Script> =
                std::sync::OnceLock::new();
            SCRIPT.get_or_init(|| fred::types::scripts::Script::from_lua($body))
        }
    };
}

mod bus;
mod presence;
mod rate;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::local::LocalRateLimits;
use super::Cluster;
use crate::error::{Error, Result};
use bus::RedisBus;
use presence::{Mine, RedisPresence};
use rate::RedisRateLimits;

/// How often a node refreshes its presence entries.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a node's entries count without a heartbeat.
pub const NODE_TTL: Duration = Duration::from_secs(20);
/// How long one Redis command may take before the call fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failed command, how long calls answer from this node alone without trying Redis
/// (so an outage costs each send nothing, not a timeout).
const BACKOFF: Duration = Duration::from_secs(1);
/// Expiry of every presence and bucket key, so nothing leaks if every node dies.
const KEY_TTL_SECS: u64 = 86_400;

/// Options of [`connect`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Prefix of every key and of the channel.
    pub prefix: String,
    /// How often the node heartbeats.
    pub heartbeat: Duration,
    /// How long its entries count without one.
    pub node_ttl: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prefix: "chat".to_string(),
            heartbeat: HEARTBEAT,
            node_ttl: NODE_TTL,
        }
    }
}

/// Connects to Redis at `url` (`redis://host:6379`) as node `node_id`: a [`Cluster`] with the
/// Redis bus, presence and rate limits. Fails if Redis cannot be reached now; once connected,
/// lost connections are re-established forever, with backoff.
pub async fn connect(url: &str, node_id: &str, options: Options) -> Result<Cluster> {
    let config = Config::from_url(url).map_err(|e| Error::storage_during("redis: bad URL", e))?;
    let mut builder = Builder::from_config(config);
    builder
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .with_connection_config(|c| {
            c.connection_timeout = COMMAND_TIMEOUT;
            c.internal_command_timeout = COMMAND_TIMEOUT;
        });
    let client = builder
        .build()
        .map_err(|e| Error::storage_during("redis", e))?;
    timed("connecting", client.init()).await?;
    let subscriber = builder
        .build_subscriber_client()
        .map_err(|e| Error::storage_during("redis", e))?;
    timed("connecting", subscriber.init()).await?;
    let keys = Keys {
        prefix: options.prefix.clone(),
    };
    let health = Arc::new(Health::default());
    let presence = Arc::new(RedisPresence {
        client: client.clone(),
        keys: keys.clone(),
        node: node_id.to_string(),
        options: options.clone(),
        mine: Mutex::new(Mine::default()),
        dirty: AtomicBool::new(false),
        health: health.clone(),
    });
    presence.beat().await?;
    Ok(Cluster {
        node_id: node_id.to_string(),
        bus: Some(Arc::new(RedisBus {
            client: client.clone(),
            subscriber,
            channel: keys.bus(),
            health: health.clone(),
        })),
        presence,
        rate_limits: Arc::new(RedisRateLimits {
            client,
            keys,
            fallback: LocalRateLimits::default(),
            health,
        }),
    })
}

async fn timed<T>(
    what: &str,
    call: impl std::future::Future<Output = std::result::Result<T, fred::error::Error>>,
) -> Result<T> {
    match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::storage_during(format!("redis: {what}"), e)),
        Err(_) => Err(Error::storage(format!("redis: {what}: timed out"))),
    }
}

/// Whether Redis answered lately: a failure makes calls skip Redis for [`BACKOFF`], and is
/// logged at most every ten seconds (an outage fails every call).
#[derive(Default)]
struct Health {
    down_until: Mutex<Option<Instant>>,
    logged: Mutex<Option<Instant>>,
}

impl Health {
    /// Runs `call` unless Redis failed within [`BACKOFF`].
    async fn call<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = std::result::Result<T, fred::error::Error>>,
    ) -> Result<T> {
        if self.down_until.lock().is_some_and(|t| Instant::now() < t) {
            return Err(Error::storage(format!("redis: {what}: unavailable")));
        }
        let outcome = timed(what, call).await;
        if let Err(e) = &outcome {
            *self.down_until.lock() = Some(Instant::now() + BACKOFF);
            let mut logged = self.logged.lock();
            if logged.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                *logged = Some(Instant::now());
                tracing::warn!(error = %e, "redis unreachable: answering from this node alone");
            }
        }
        outcome
    }
}

#[derive(Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn bus(&self) -> String {
        format!("{}:bus", self.prefix)
    }
    fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    fn user(&self, user: &str) -> String {
        format!("{}:u:{user}", self.prefix)
    }
    fn room(&self, course: &str, user: &str) -> String {
        format!("{}:r:{course}\0{user}", self.prefix)
    }
    fn node_users(&self, node: &str) -> String {
        format!("{}:nu:{node}", self.prefix)
    }
    fn node_rooms(&self, node: &str) -> String {
        format!("{}:nr:{node}", self.prefix)
    }
    fn rate(&self, rule: &str, user: &str, course: &str) -> String {
        format!("{}:rate:{rule}:{user}\0{course}", self.prefix)
    }
}
