//! Presence over Redis: who is online and in which rooms, per node, kept by Lua scripts so that
//! "first connection anywhere" and "last one gone" are decided once; the heartbeat that keeps a
//! node's entries alive and claims a dead node's.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;
use parking_lot::Mutex;

use super::{Health, Keys, Options, KEY_TTL_SECS};
use crate::cluster::{Departure, Presence};
use crate::error::{Error, Result};

/// This node's own entries, to write again after Redis lost them.
#[derive(Default)]
pub(super) struct Mine {
    pub(super) users: HashMap<String, i64>,
    pub(super) rooms: HashSet<(String, String)>,
}

pub(super) struct RedisPresence {
    pub(super) client: Client,
    pub(super) keys: Keys,
    pub(super) node: String,
    pub(super) options: Options,
    pub(super) mine: Mutex<Mine>,
    /// A call failed: Redis may disagree with `mine` until the entries are written again.
    pub(super) dirty: AtomicBool,
    pub(super) health: Arc<Health>,
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

/// A script's body after the helpers every presence script shares.
fn with_prelude(body: &str) -> String {
    format!("{LUA_PRELUDE}\n{body}")
}

lua_script!(
    /// KEYS: nodes, user, node-users. ARGV: node, user, ttl. Returns 1 if the user came online.
    connect_script = with_prelude(r#"
local before = online(KEYS[1], KEYS[2])
redis.call('HINCRBY', KEYS[2], 'n:' .. ARGV[1], 1)
redis.call('HDEL', KEYS[2], 'forced')
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
if before then return 0 end
return 1
"#));

lua_script!(
    /// KEYS: nodes, user, node-users. ARGV: node, user. Returns 1 if the user went offline.
    disconnect_script = with_prelude(r#"
local before = online(KEYS[1], KEYS[2])
local left = redis.call('HINCRBY', KEYS[2], 'n:' .. ARGV[1], -1)
if left <= 0 then
  redis.call('HDEL', KEYS[2], 'n:' .. ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[2])
end
redis.call('HDEL', KEYS[2], 'forced')
if before and not online(KEYS[1], KEYS[2]) then return 1 end
return 0
"#));

lua_script!(
    /// KEYS: nodes, user. ARGV: '1' or '0', ttl. Returns 1 if what others see changed.
    force_script = with_prelude(r#"
local before = online(KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'forced', ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
if before ~= (ARGV[1] == '1') then return 1 end
return 0
"#));

lua_script!(
    /// KEYS: nodes, users... Returns 1/0 per user.
    online_script = with_prelude(r#"
local out = {}
for i = 2, #KEYS do
  if online(KEYS[1], KEYS[i]) then out[i - 1] = 1 else out[i - 1] = 0 end
end
return out
"#));

lua_script!(
    /// KEYS: nodes, room, node-rooms. ARGV: node, member, ttl. Returns 1 if first in the room.
    enter_script = with_prelude(r#"
local before = present(KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], ARGV[1], '1')
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
if before then return 0 end
return 1
"#));

lua_script!(
    /// KEYS: nodes, room, node-rooms. ARGV: node, member. Returns 1 if it was the last.
    exit_script = with_prelude(r#"
local removed = redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[2])
if removed == 1 and not present(KEYS[1], KEYS[2]) then return 1 end
return 0
"#));

lua_script!(
    /// KEYS: nodes. ARGV: prefix, node, ttl ms, key ttl s. Refreshes the node; returns whether it
    /// was missing (its entries must be written again), then the departures of dead nodes it
    /// claimed: flat triples of user, offline (1/0), and the rooms left joined by `\0`.
    heartbeat_script = with_prelude(r#"
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
"#));

lua_script!(
    /// KEYS: nodes. ARGV: prefix, node. Removes every entry of the node.
    clear_node_script = with_prelude(r#"
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
"#));

lua_script!(
    /// KEYS: nodes, user, node-users. ARGV: node, user, count, ttl. Writes a node's count again.
    restore_user_script = with_prelude(r#"
redis.call('HSET', KEYS[2], 'n:' .. ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return 0
"#));

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
    pub(super) async fn beat(&self) -> Result<Vec<Departure>> {
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
