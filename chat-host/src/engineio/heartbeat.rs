//! The Engine.IO v4 heartbeat: the server pings every `ping_interval`; a client that does not
//! answer with a pong within `ping_timeout` is gone.
//!
//! Why its own module: it is a small state machine (waiting to ping, or waiting for a pong) that
//! the session's driver turns into one timer, and it reads (and is tested) best without the
//! driver's select around it. It decides; the driver sends the ping and ends the session.

use std::time::Duration;

use tokio::time::Instant;

/// What the heartbeat wants when its timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Nothing yet (the timer fired early, or for another reason).
    Wait,
    /// Send a ping now; the pong is due within `ping_timeout`.
    Ping,
    /// The pong did not come in time: the session is over.
    TimedOut,
}

/// One session's heartbeat.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    next_ping: Instant,
    /// Set while a ping waits for its pong.
    pong_deadline: Option<Instant>,
}

impl Heartbeat {
    /// A heartbeat whose first ping is one `interval` after `now`.
    pub(crate) fn new(interval: Duration, timeout: Duration, now: Instant) -> Self {
        Heartbeat {
            interval,
            timeout,
            next_ping: now + interval,
            pong_deadline: None,
        }
    }

    /// When the timer should fire next: the pong's deadline while one is awaited, else the next
    /// ping.
    pub(crate) fn deadline(&self) -> Instant {
        self.pong_deadline.unwrap_or(self.next_ping)
    }

    /// A pong came: the next ping is one interval from `now` (a pong nobody asked for changes
    /// nothing).
    pub(crate) fn on_pong(&mut self, now: Instant) {
        if self.pong_deadline.take().is_some() {
            self.next_ping = now + self.interval;
        }
    }

    /// The timer fired at `now`.
    pub(crate) fn on_timer(&mut self, now: Instant) -> Beat {
        match self.pong_deadline {
            Some(deadline) if now >= deadline => Beat::TimedOut,
            Some(_) => Beat::Wait,
            None if now >= self.next_ping => {
                self.pong_deadline = Some(now + self.timeout);
                Beat::Ping
            }
            None => Beat::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_then_waits_for_the_pong() {
        let t0 = Instant::now();
        let (interval, timeout) = (Duration::from_secs(25), Duration::from_secs(20));
        let mut h = Heartbeat::new(interval, timeout, t0);
        assert_eq!(h.deadline(), t0 + interval);
        assert_eq!(h.on_timer(t0 + Duration::from_secs(1)), Beat::Wait);
        let t1 = t0 + interval;
        assert_eq!(h.on_timer(t1), Beat::Ping);
        assert_eq!(h.deadline(), t1 + timeout);
        assert_eq!(h.on_timer(t1 + Duration::from_secs(1)), Beat::Wait);
        // The pong comes: the next ping is one interval after it.
        let t2 = t1 + Duration::from_secs(3);
        h.on_pong(t2);
        assert_eq!(h.deadline(), t2 + interval);
        // A pong nobody asked for moves nothing.
        h.on_pong(t2 + Duration::from_secs(5));
        assert_eq!(h.deadline(), t2 + interval);
        // No pong this time.
        let t3 = t2 + interval;
        assert_eq!(h.on_timer(t3), Beat::Ping);
        assert_eq!(h.on_timer(t3 + timeout), Beat::TimedOut);
    }
}
