//! Rate limits over Redis: one token bucket per rule, user and course for every node (a Lua
//! script on Redis's clock); this node's own buckets while Redis is unreachable.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;

use super::{Health, Keys};
use crate::cluster::local::LocalRateLimits;
use crate::cluster::{RateLimits, Rule};
use crate::error::{Error, Result};

pub(super) struct RedisRateLimits {
    pub(super) client: Client,
    pub(super) keys: Keys,
    /// Buckets of this node alone, while Redis is unreachable.
    pub(super) fallback: LocalRateLimits,
    pub(super) health: Arc<Health>,
}

lua_script!(
    /// KEYS: bucket. ARGV: burst, window ms. Returns {1, 0} when a token was taken, else {0, wait ms}.
    take_script = r#"
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
"#);

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
