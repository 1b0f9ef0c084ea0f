//! One process: presence, rooms and rate limits counted in memory, and a bus between the engines
//! of one process.
//!
//! [`LocalPresence`] and [`LocalRateLimits`] are the engine's defaults, and the reference the
//! shared backends must behave like. Several engines in one process (tests, or an embedder
//! running nodes side by side) become one deployment by sharing one of each and a [`LocalBus`].

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::{Bus, Delivery, Departure, Presence, RateLimits, Rule};
use crate::error::{Error, Result};

/// A bus between the engines of one process: every message reaches every subscriber (a slow
/// subscriber that falls more than `capacity` behind loses messages and is told it resubscribed,
/// like a real bus that dropped its connection).
pub struct LocalBus {
    tx: broadcast::Sender<Vec<u8>>,
}

impl LocalBus {
    /// A bus that keeps up to `capacity` messages for a slow subscriber.
    pub fn new(capacity: usize) -> Self {
        LocalBus {
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        LocalBus::new(4096)
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, message: Vec<u8>) -> Result<()> {
        // No subscriber is not an error: a message may always be lost.
        let _ = self.tx.send(message);
        Ok(())
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<Delivery>> {
        let mut rx = self.tx.subscribe();
        let (out, deliveries) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let delivery = match rx.recv().await {
                    Ok(m) => Delivery::Message(m),
                    Err(broadcast::error::RecvError::Lagged(_)) => Delivery::Resubscribed,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if out.send(delivery).await.is_err() {
                    return;
                }
            }
        });
        Ok(deliveries)
    }
}

#[derive(Default)]
struct UserEntry {
    connections: usize,
    forced: Option<bool>,
}

impl UserEntry {
    fn online(&self) -> bool {
        self.forced.unwrap_or(self.connections > 0)
    }
}

/// Presence and room membership of this process's connections.
#[derive(Default)]
pub struct LocalPresence {
    users: Mutex<HashMap<String, UserEntry>>,
    /// (course, user) → connections of the user in the course's room.
    rooms: Mutex<HashMap<(String, String), usize>>,
}

#[async_trait]
impl Presence for LocalPresence {
    async fn connect(&self, user: &str) -> Result<bool> {
        let mut users = self.users.lock();
        let e = users.entry(user.to_string()).or_default();
        let before = e.online();
        e.connections += 1;
        e.forced = None;
        Ok(!before)
    }

    async fn disconnect(&self, user: &str) -> Result<bool> {
        let mut users = self.users.lock();
        let Some(e) = users.get_mut(user) else {
            return Ok(false);
        };
        let before = e.online();
        e.connections = e.connections.saturating_sub(1);
        e.forced = None;
        let after = e.online();
        if e.connections == 0 {
            users.remove(user);
        }
        Ok(before && !after)
    }

    async fn force(&self, user: &str, online: bool) -> Result<bool> {
        let mut users = self.users.lock();
        let e = users.entry(user.to_string()).or_default();
        let before = e.online();
        e.forced = Some(online);
        Ok(before != online)
    }

    async fn online(&self, users: &[String]) -> Result<Vec<bool>> {
        let known = self.users.lock();
        Ok(users
            .iter()
            .map(|u| known.get(u).is_some_and(UserEntry::online))
            .collect())
    }

    async fn enter(&self, course: &str, user: &str) -> Result<bool> {
        let mut rooms = self.rooms.lock();
        let n = rooms
            .entry((course.to_string(), user.to_string()))
            .or_insert(0);
        *n += 1;
        Ok(*n == 1)
    }

    async fn exit(&self, course: &str, user: &str) -> Result<bool> {
        let mut rooms = self.rooms.lock();
        let key = (course.to_string(), user.to_string());
        match rooms.get_mut(&key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                Ok(false)
            }
            Some(_) => {
                rooms.remove(&key);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn evict(&self, course: &str, user: &str) -> Result<()> {
        self.rooms
            .lock()
            .remove(&(course.to_string(), user.to_string()));
        Ok(())
    }

    async fn heartbeat(&self) -> Result<Vec<Departure>> {
        Ok(Vec::new())
    }

    fn heartbeat_interval(&self) -> Option<Duration> {
        None
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets in this process.
#[derive(Default)]
pub struct LocalRateLimits {
    buckets: Mutex<HashMap<(&'static str, String, String), Bucket>>,
}

#[async_trait]
impl RateLimits for LocalRateLimits {
    async fn take(&self, rule: &Rule, user: &str, course: &str) -> Result<()> {
        let burst = f64::from(rule.burst.max(1));
        let per_second = burst / rule.window.as_secs_f64().max(0.001);
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        if buckets.len() > 100_000 {
            // Forget buckets that are full again: they behave exactly like new ones.
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < burst
            });
        }
        let bucket = buckets
            .entry((rule.name, user.to_string(), course.to_string()))
            .or_insert(Bucket {
                tokens: burst,
                at: now,
            });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err(Error::RateLimited {
                retry_after: Duration::from_secs_f64(wait),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_tabs_count_once() {
        let p = LocalPresence::default();
        assert!(p.connect("u").await.unwrap());
        assert!(!p.connect("u").await.unwrap(), "second tab changes nothing");
        assert!(
            !p.disconnect("u").await.unwrap(),
            "one tab left: still online"
        );
        assert_eq!(
            p.online(&["u".into(), "v".into()]).await.unwrap(),
            [true, false]
        );
        assert!(p.disconnect("u").await.unwrap(), "last tab closes: offline");
        assert_eq!(p.online(&["u".into()]).await.unwrap(), [false]);
    }

    #[tokio::test]
    async fn status_overrides_until_next_connection_change() {
        let p = LocalPresence::default();
        p.connect("u").await.unwrap();
        assert!(p.force("u", false).await.unwrap());
        assert_eq!(p.online(&["u".into()]).await.unwrap(), [false]);
        assert!(
            p.connect("u").await.unwrap(),
            "a new connection brings them back"
        );
        assert!(!p.force("u", true).await.unwrap(), "already shown online");
    }

    #[tokio::test]
    async fn rooms_count_connections() {
        let p = LocalPresence::default();
        assert!(p.enter("c", "u").await.unwrap());
        assert!(!p.enter("c", "u").await.unwrap());
        assert!(p.enter("d", "u").await.unwrap(), "rooms are apart");
        assert!(!p.exit("c", "u").await.unwrap());
        assert!(p.exit("c", "u").await.unwrap());
        assert!(!p.exit("c", "u").await.unwrap(), "not in it any more");
        p.evict("d", "u").await.unwrap();
        assert!(!p.exit("d", "u").await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_refills() {
        let rl = LocalRateLimits::default();
        let rule = Rule {
            name: "send",
            burst: 10,
            window: Duration::from_secs(10),
        };
        for _ in 0..10 {
            rl.take(&rule, "u", "c").await.unwrap();
        }
        let Err(Error::RateLimited { retry_after }) = rl.take(&rule, "u", "c").await else {
            panic!("11th send must be limited")
        };
        assert!(retry_after <= Duration::from_secs(1) && retry_after > Duration::ZERO);
        // Other users, courses and rules have their own buckets.
        rl.take(&rule, "v", "c").await.unwrap();
        rl.take(&rule, "u", "d").await.unwrap();
        let typing = Rule {
            name: "typing",
            ..rule.clone()
        };
        rl.take(&typing, "u", "c").await.unwrap();
        tokio::time::advance(Duration::from_millis(1001)).await;
        rl.take(&rule, "u", "c").await.unwrap();
        assert!(rl.take(&rule, "u", "c").await.is_err());
    }
}
