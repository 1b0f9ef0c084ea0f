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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::scripts::Script;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::local::LocalRateLimits;
use super::{Bus, Cluster, Delivery, Departure, Presence, RateLimits, Rule};
use crate::error::{Error, Result};

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

// ---- bus ----------------------------------------------------------------------------------------

struct RedisBus {
    client: Client,
    subscriber: SubscriberClient,
    channel: String,
    health: Arc<Health>,
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, message: Vec<u8>) -> Result<()> {
        self.health
            .call(
                "publishing",
                self.client
                    .publish::<i64, _, _>(self.channel.as_str(), Bytes::from(message)),
            )
            .await
            .map(|_| ())
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<Delivery>> {
        let mut messages = self.subscriber.message_rx();
        let mut reconnects = self.subscriber.reconnect_rx();
        timed(
            "subscribing",
            self.subscriber.subscribe(self.channel.as_str()),
        )
        .await?;
        let (tx, rx) = mpsc::channel(4096);
        let subscriber = self.subscriber.clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let delivery = tokio::select! {
                    m = messages.recv() => match m {
                        Ok(m) => match m.value.as_bytes() {
                            Some(b) => Delivery::Message(b.to_vec()),
                            None => continue,
                        },
                        // Messages were lost in this process: the same as a lost connection.
                        Err(RecvError::Lagged(_)) => Delivery::Resubscribed,
                        Err(RecvError::Closed) => return,
                    },
                    r = reconnects.recv() => match r {
                        Ok(_) | Err(RecvError::Lagged(_)) => {
                            // Subscribe again before saying so: what the node reads from the
                            // store afterwards then overlaps what the bus delivers next.
                            loop {
                                match subscriber.resubscribe_all().await {
                                    Ok(()) => break,
                                    Err(e) => {
                                        tracing::warn!(error = %e, "redis: resubscribing failed; retrying");
                                        tokio::time::sleep(Duration::from_millis(500)).await;
                                    }
                                }
                            }
                            tracing::info!("redis bus: resubscribed");
                            Delivery::Resubscribed
                        }
                        Err(RecvError::Closed) => return,
                    },
                };
                if tx.send(delivery).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

// ---- presence -----------------------------------------------------------------------------------

/// This node's own entries, to write again after Redis lost them.
#[derive(Default)]
struct Mine {
    users: HashMap<String, i64>,
    rooms: HashSet<(String, String)>,
}

struct RedisPresence {
    client: Client,
    keys: Keys,
    node: String,
    options: Options,
    mine: Mutex<Mine>,
    /// A call failed: Redis may disagree with `mine` until the entries are written again.
    dirty: AtomicBool,
    health: Arc<Health>,
}

/// Lua shared by the presence scripts: Redis's time, whether a node counts, whether a user is
/// online, whether a room holds a user.
const LUA_PRELUDE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function alive(nodes, node)
  local s = redis.call('ZSCORE', nodes, node)
  return s ~= false and s ~= nil and tonumber(s) >= now
end
local function online(nodes, ukey)
  local forced = redis.call('HGET', ukey, 'forced')
  if forced then return forced == '1' end
  local all = redis.call('HGETALL', ukey)
  for i = 1, #all, 2 do
    local k = all[i]
    if string.sub(k, 1, 2) == 'n:' and tonumber(all[i + 1]) > 0 and alive(nodes, string.sub(k, 3)) then
      return true
    end
  end
  return false
end
local function present(nodes, rkey)
  local fields = redis.call('HKEYS', rkey)
  for i = 1, #fields do
    if alive(nodes, fields[i]) then return true end
  end
  return false
end
"#;

fn script(body: &str) -> Script {
    Script::from_lua(format!("{LUA_PRELUDE}\n{body}"))
}

/// KEYS: nodes, user, node-users. ARGV: node, user, ttl. Returns 1 if the user came online.
fn connect_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        script(
            r#"
local before = online(KEYS[1], KEYS[2])
redis.call('HINCRBY', KEYS[2], 'n:' .. ARGV[1], 1)
redis.call('HDEL', KEYS[2], 'forced')
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
if before then return 0 end
return 1
"#,
        )
    })
}

/// KEYS: nodes, user, node-users. ARGV: node, user. Returns 1 if the user went offline.
fn disconnect_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        script(
            r#"
local before = online(KEYS[1], KEYS[2])
local left = redis.call('HINCRBY', KEYS[2], 'n:' .. ARGV[1], -1)
if left <= 0 then
  redis.call('HDEL', KEYS[2], 'n:' .. ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[2])
end
redis.call('HDEL', KEYS[2], 'forced')
if before and not online(KEYS[1], KEYS[2]) then return 1 end
return 0
"#,
        )
    })
}

/// KEYS: nodes, user. ARGV: '1' or '0', ttl. Returns 1 if what others see changed.
fn force_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        script(
            r#"
local before = online(KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'forced', ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
if before ~= (ARGV[1] == '1') then return 1 end
return 0
"#,
        )
    })
}

/// KEYS: nodes, users... Returns 1/0 per user.
fn online_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        script(
            r#"
local out = {}
for i = 2, #KEYS do
  if online(KEYS[1], KEYS[i]) then out[i - 1] = 1 else out[i - 1] = 0 end
end
return out
"#,
        )
    })
}

/// KEYS: nodes, room, node-rooms. ARGV: node, member, ttl. Returns 1 if first in the room.
fn enter_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        script(
            r#"
local before = present(KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], ARGV[1], '1')
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
if before then return 0 end
return 1
"#,
        )
    })
}

/// KEYS: nodes, room, node-rooms. ARGV: node, member. Returns 1 if it was the last.
fn exit_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        script(
            r#"
local removed = redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[2])
if removed == 1 and not present(KEYS[1], KEYS[2]) then return 1 end
return 0
"#,
        )
    })
}

/// KEYS: nodes. ARGV: prefix, node, ttl ms, key ttl s. Refreshes the node; returns whether it
/// was missing (its entries must be written again), then the departures of dead nodes it
/// claimed: flat triples of user, offline (1/0), and the rooms left joined by `\0`.
fn heartbeat_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        script(
            r#"
local p = ARGV[1]
local added = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', p .. ':nu:' .. ARGV[2], ARGV[4])
redis.call('EXPIRE', p .. ':nr:' .. ARGV[2], ARGV[4])
local out = {added}
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
for _, node in ipairs(dead) do
  if redis.call('ZREM', KEYS[1], node) == 1 then
    local gone = {}
    local order = {}
    for _, user in ipairs(redis.call('SMEMBERS', p .. ':nu:' .. node)) do
      local ukey = p .. ':u:' .. user
      redis.call('HDEL', ukey, 'n:' .. node)
      if not gone[user] then gone[user] = {offline = 0, rooms = {}}; table.insert(order, user) end
      if not online(KEYS[1], ukey) then gone[user].offline = 1 end
    end
    for _, member in ipairs(redis.call('SMEMBERS', p .. ':nr:' .. node)) do
      local sep = string.find(member, '\0', 1, true)
      if sep then
        local course = string.sub(member, 1, sep - 1)
        local user = string.sub(member, sep + 1)
        local rkey = p .. ':r:' .. member
        redis.call('HDEL', rkey, node)
        if not present(KEYS[1], rkey) then
          if not gone[user] then gone[user] = {offline = 0, rooms = {}}; table.insert(order, user) end
          table.insert(gone[user].rooms, course)
        end
      end
    end
    redis.call('DEL', p .. ':nu:' .. node, p .. ':nr:' .. node)
    for _, user in ipairs(order) do
      local g = gone[user]
      if g.offline == 1 or #g.rooms > 0 then
        table.insert(out, user)
        table.insert(out, g.offline)
        table.insert(out, table.concat(g.rooms, '\0'))
      end
    end
  end
end
return out
"#,
        )
    })
}

/// KEYS: nodes. ARGV: prefix, node. Removes every entry of the node.
fn clear_node_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        script(
            r#"
local p = ARGV[1]
local node = ARGV[2]
for _, user in ipairs(redis.call('SMEMBERS', p .. ':nu:' .. node)) do
  redis.call('HDEL', p .. ':u:' .. user, 'n:' .. node)
end
for _, member in ipairs(redis.call('SMEMBERS', p .. ':nr:' .. node)) do
  redis.call('HDEL', p .. ':r:' .. member, node)
end
redis.call('DEL', p .. ':nu:' .. node, p .. ':nr:' .. node)
return 0
"#,
        )
    })
}

/// KEYS: nodes, user, node-users. ARGV: node, user, count, ttl. Writes a node's count again.
fn restore_user_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        script(
            r#"
redis.call('HSET', KEYS[2], 'n:' .. ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return 0
"#,
        )
    })
}

impl RedisPresence {
    async fn run<R: FromValue>(
        &self,
        what: &str,
        s: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<R> {
        self.health
            .call(what, s.evalsha_with_reload(&self.client, keys, args))
            .await
    }

    fn ttl(&self) -> String {
        KEY_TTL_SECS.to_string()
    }

    /// A call's answer, or `fallback` (what this node knows alone) when Redis failed.
    fn or_alone<T>(&self, outcome: Result<T>, fallback: T) -> T {
        match outcome {
            Ok(v) => v,
            Err(_) => {
                self.dirty.store(true, Ordering::Release);
                fallback
            }
        }
    }

    /// Pushes this node's expiry forward; writes its entries again if Redis had lost them.
    async fn beat(&self) -> Result<Vec<Departure>> {
        let args = vec![
            self.keys.prefix.clone(),
            self.node.clone(),
            self.options.node_ttl.as_millis().to_string(),
            self.ttl(),
        ];
        let out: Vec<Value> = self
            .run(
                "heartbeat",
                heartbeat_script(),
                vec![self.keys.nodes()],
                args,
            )
            .await?;
        let mut items = out.into_iter();
        let added = items.next().and_then(|v| v.as_i64()).unwrap_or(0) == 1;
        if added || self.dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = self.restore().await {
                self.dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        let mut departures = Vec::new();
        while let (Some(user), Some(offline), Some(rooms)) =
            (items.next(), items.next(), items.next())
        {
            let user = user.as_string().unwrap_or_default();
            let rooms = rooms.as_string().unwrap_or_default();
            departures.push(Departure {
                user_id: user,
                offline: offline.as_i64() == Some(1),
                rooms: rooms
                    .split('\0')
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
                    .collect(),
            });
        }
        Ok(departures)
    }

    /// Writes this node's connections and rooms again (after Redis lost them, or after another
    /// node took this one for dead during a long pause).
    async fn restore(&self) -> Result<()> {
        let (users, rooms) = {
            let mine = self.mine.lock();
            (
                mine.users.clone().into_iter().collect::<Vec<_>>(),
                mine.rooms.iter().cloned().collect::<Vec<_>>(),
            )
        };
        tracing::info!(
            users = users.len(),
            rooms = rooms.len(),
            "redis presence: writing this node's entries again"
        );
        let args = vec![self.keys.prefix.clone(), self.node.clone()];
        self.run::<i64>(
            "clearing presence",
            clear_node_script(),
            vec![self.keys.nodes()],
            args,
        )
        .await?;
        for (user, count) in users {
            let keys = vec![
                self.keys.nodes(),
                self.keys.user(&user),
                self.keys.node_users(&self.node),
            ];
            let args = vec![self.node.clone(), user, count.to_string(), self.ttl()];
            self.run::<i64>("restoring presence", restore_user_script(), keys, args)
                .await?;
        }
        for (course, user) in rooms {
            let keys = vec![
                self.keys.nodes(),
                self.keys.room(&course, &user),
                self.keys.node_rooms(&self.node),
            ];
            let args = vec![self.node.clone(), format!("{course}\0{user}"), self.ttl()];
            self.run::<i64>("restoring rooms", enter_script(), keys, args)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn connect(&self, user: &str) -> Result<bool> {
        *self.mine.lock().users.entry(user.to_string()).or_insert(0) += 1;
        let keys = vec![
            self.keys.nodes(),
            self.keys.user(user),
            self.keys.node_users(&self.node),
        ];
        let args = vec![self.node.clone(), user.to_string(), self.ttl()];
        let came = self
            .run::<i64>("connect", connect_script(), keys, args)
            .await;
        Ok(self.or_alone(came, 0) == 1)
    }

    async fn disconnect(&self, user: &str) -> Result<bool> {
        {
            let mut mine = self.mine.lock();
            if let Some(n) = mine.users.get_mut(user) {
                *n -= 1;
                if *n <= 0 {
                    mine.users.remove(user);
                }
            }
        }
        let keys = vec![
            self.keys.nodes(),
            self.keys.user(user),
            self.keys.node_users(&self.node),
        ];
        let args = vec![self.node.clone(), user.to_string()];
        let went = self
            .run::<i64>("disconnect", disconnect_script(), keys, args)
            .await;
        Ok(self.or_alone(went, 0) == 1)
    }

    async fn force(&self, user: &str, online: bool) -> Result<bool> {
        let keys = vec![self.keys.nodes(), self.keys.user(user)];
        let args = vec![if online { "1" } else { "0" }.to_string(), self.ttl()];
        let changed = self.run::<i64>("status", force_script(), keys, args).await;
        Ok(self.or_alone(changed, 0) == 1)
    }

    async fn online(&self, users: &[String]) -> Result<Vec<bool>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = Vec::with_capacity(users.len() + 1);
        keys.push(self.keys.nodes());
        keys.extend(users.iter().map(|u| self.keys.user(u)));
        let flags = match self
            .run::<Vec<i64>>("online", online_script(), keys, Vec::new())
            .await
        {
            Ok(f) if f.len() == users.len() => Ok(f),
            Ok(_) => Err(Error::storage(
                "redis: online answered the wrong number of users",
            )),
            Err(e) => Err(e),
        };
        let alone = {
            let mine = self.mine.lock();
            users
                .iter()
                .map(|u| i64::from(mine.users.get(u).is_some_and(|n| *n > 0)))
                .collect()
        };
        let flags = self.or_alone(flags, alone);
        Ok(flags.into_iter().map(|f| f == 1).collect())
    }

    async fn enter(&self, course: &str, user: &str) -> Result<bool> {
        self.mine
            .lock()
            .rooms
            .insert((course.to_string(), user.to_string()));
        let keys = vec![
            self.keys.nodes(),
            self.keys.room(course, user),
            self.keys.node_rooms(&self.node),
        ];
        let args = vec![self.node.clone(), format!("{course}\0{user}"), self.ttl()];
        let first = self
            .run::<i64>("entering a room", enter_script(), keys, args)
            .await;
        Ok(self.or_alone(first, 0) == 1)
    }

    async fn exit(&self, course: &str, user: &str) -> Result<bool> {
        self.mine
            .lock()
            .rooms
            .remove(&(course.to_string(), user.to_string()));
        let keys = vec![
            self.keys.nodes(),
            self.keys.room(course, user),
            self.keys.node_rooms(&self.node),
        ];
        let args = vec![self.node.clone(), format!("{course}\0{user}")];
        let last = self
            .run::<i64>("leaving a room", exit_script(), keys, args)
            .await;
        Ok(self.or_alone(last, 0) == 1)
    }

    async fn evict(&self, course: &str, user: &str) -> Result<()> {
        self.exit(course, user).await.map(|_| ())
    }

    async fn heartbeat(&self) -> Result<Vec<Departure>> {
        self.beat().await
    }

    fn heartbeat_interval(&self) -> Option<Duration> {
        Some(self.options.heartbeat)
    }
}

// ---- rate limits --------------------------------------------------------------------------------

struct RedisRateLimits {
    client: Client,
    keys: Keys,
    /// Buckets of this node alone, while Redis is unreachable.
    fallback: LocalRateLimits,
    health: Arc<Health>,
}

/// KEYS: bucket. ARGV: burst, window ms. Returns {1, 0} when a token was taken, else {0, wait ms}.
fn take_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        Script::from_lua(
            r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local burst = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local rate = burst / window
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local taken = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
else
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 2))
return {taken, wait}
"#,
        )
    })
}

#[async_trait]
impl RateLimits for RedisRateLimits {
    async fn take(&self, rule: &Rule, user: &str, course: &str) -> Result<()> {
        let window_ms = rule.window.as_millis().max(1);
        let keys = vec![self.keys.rate(rule.name, user, course)];
        let args = vec![rule.burst.max(1).to_string(), window_ms.to_string()];
        let outcome = self
            .health
            .call(
                "rate limit",
                take_script().evalsha_with_reload::<(i64, i64), _, _>(&self.client, keys, args),
            )
            .await;
        let Ok((taken, wait)) = outcome else {
            return self.fallback.take(rule, user, course).await;
        };
        if taken == 1 {
            Ok(())
        } else {
            Err(Error::RateLimited {
                retry_after: Duration::from_millis(u64::try_from(wait.max(1)).unwrap_or(1)),
            })
        }
    }
}
