//! The send rate limit: a token bucket per user per course.
//!
//! A bucket holds `burst` tokens and refills continuously at `burst / window`; a send takes one.
//! Time is tokio's clock, so tests can pause and advance it.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::error::{Error, Result};

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets keyed by (user, course).
pub(crate) struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(burst: u32, window: Duration) -> Self {
        let burst = f64::from(burst.max(1));
        let per_second = burst / window.as_secs_f64().max(0.001);
        RateLimiter {
            burst,
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `user` in `course`, or says how long until one is available.
    pub(crate) fn take(&self, user: &str, course: &str) -> Result<()> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        if buckets.len() > 100_000 {
            // Forget buckets that are full again: they behave exactly like new ones.
            let (burst, rate) = (self.burst, self.per_second);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets
            .entry((user.to_string(), course.to_string()))
            .or_insert(Bucket {
                tokens: self.burst,
                at: now,
            });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err(Error::RateLimited {
                retry_after: Duration::from_secs_f64(wait),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_refills() {
        let rl = RateLimiter::new(10, Duration::from_secs(10));
        for _ in 0..10 {
            rl.take("u", "c").unwrap();
        }
        let Err(Error::RateLimited { retry_after }) = rl.take("u", "c") else {
            panic!("11th send must be limited")
        };
        assert!(retry_after <= Duration::from_secs(1) && retry_after > Duration::ZERO);
        // Other users and other courses have their own buckets.
        rl.take("v", "c").unwrap();
        rl.take("u", "d").unwrap();
        tokio::time::advance(Duration::from_millis(1001)).await;
        rl.take("u", "c").unwrap();
        assert!(rl.take("u", "c").is_err());
    }
}
