//! Catching up from the store: filling a hub's gaps, and replays that many streams share.
//!
//! Two things read the change log besides history pages:
//! - a hub whose known durable seq ran ahead of what it published ([`Hub::gap`]) fills the gap
//!   from the store, once per course however many notices arrived ([`Engine::fill`]);
//! - streams replay what a client missed (`sinceSeq`, or a lag). After a node dies, its clients
//!   rejoin another node at once, most with nearly the same `sinceSeq`: each course's replays go
//!   through one [`Replays`] window, so a reconnect storm costs about one store read per course,
//!   not one per client. A read fetches some history before the first seq asked for, so the
//!   clients that come next with an earlier `sinceSeq` are served from it too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::Engine;
use crate::error::Result;
use crate::event::{Envelope, Event};
use crate::hub::Hub;

/// How many log entries a fill reads at a time.
const FILL_CHUNK: usize = 512;
/// How much history before the asked range a shared replay read also fetches.
const LOOK_BEHIND: u64 = 256;
/// The most a shared replay read fetches at once.
const WINDOW_MAX: usize = 1024;
/// How long a replay window serves others (events carry `readBy` as read then).
const WINDOW_TTL: Duration = Duration::from_secs(1);
/// How long a local gap may wait for the write that will publish it before it is read instead.
pub(crate) const LOCAL_GAP_GRACE: Duration = Duration::from_millis(50);

/// Consecutive change events of a course, as read from the store at `read_at`.
struct Window {
    /// The events are the changes after this seq.
    after: u64,
    events: Vec<Event>,
    read_at: Instant,
}

impl Window {
    fn end(&self) -> u64 {
        self.after + self.events.len() as u64
    }

    /// The events in `(after, upto]`, at most `limit`, if this window holds them all.
    fn serve(&self, after: u64, upto: u64, limit: usize) -> Option<Vec<Event>> {
        if after < self.after || self.read_at.elapsed() > WINDOW_TTL {
            return None;
        }
        let want_end = upto.min(after.saturating_add(limit as u64));
        if want_end > self.end() {
            return None;
        }
        let from = usize::try_from(after - self.after).ok()?;
        let to = usize::try_from(want_end - self.after).ok()?;
        Some(self.events.get(from..to)?.to_vec())
    }
}

/// Per course, the last replay read, shared by the replays that follow it.
#[derive(Default)]
pub(crate) struct Replays {
    courses: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Window>>>>>,
}

impl Replays {
    fn slot(&self, course: &str) -> Arc<tokio::sync::Mutex<Option<Window>>> {
        let mut courses = self.courses.lock();
        if courses.len() > 10_000 {
            courses.retain(|_, w| Arc::strong_count(w) > 1);
        }
        courses.entry(course.to_string()).or_default().clone()
    }
}

impl Engine {
    /// Every message change of the course after `after` up to `upto`, in order, at most `limit`,
    /// as events (hydrated: `readBy` and reply previews as the store holds them now).
    pub(crate) async fn replay(
        &self,
        course_id: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Event>> {
        if upto <= after || limit == 0 {
            return Ok(Vec::new());
        }
        let slot = self.inner.replays.slot(course_id);
        let mut window = slot.lock().await;
        if let Some(events) = window.as_ref().and_then(|w| w.serve(after, upto, limit)) {
            return Ok(events);
        }
        // Read a little more than asked: the next clients of a storm are served from it.
        let from = after.saturating_sub(LOOK_BEHIND);
        let want = usize::try_from(upto - from).unwrap_or(usize::MAX);
        let events = self
            .read_changes(course_id, from, upto, want.min(WINDOW_MAX).max(limit))
            .await?;
        // A window holds consecutive seqs only (a log may skip a seq a failed write took).
        let consecutive = events
            .iter()
            .enumerate()
            .all(|(i, e)| e.seq() == Some(from + 1 + i as u64));
        let served = if consecutive {
            let w = Window {
                after: from,
                events,
                read_at: Instant::now(),
            };
            let served = w.serve(after, upto, limit);
            *window = Some(w);
            served
        } else {
            None
        };
        match served {
            Some(events) => Ok(events),
            None => {
                // Holes, or more than a window: read exactly what was asked.
                drop(window);
                self.read_changes(course_id, after, upto, limit).await
            }
        }
    }

    /// Publishes from the store what `hub` knows is durable but has not published, after
    /// `delay` (a local write usually publishes its own seq within it). One fill runs per hub;
    /// calls while it runs only make it look again.
    pub(crate) fn fill(&self, hub: Arc<Hub>, delay: Duration) {
        if !hub.start_filling() {
            return;
        }
        let engine = self.clone();
        let run = async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            loop {
                while let Some((after, upto)) = hub.gap() {
                    // Exactly the gap: a fill asks for the newest seqs, never served by a
                    // replay window, and the look-behind would re-read old history every time.
                    match engine
                        .read_changes(hub.course_id(), after, upto, FILL_CHUNK)
                        .await
                    {
                        Ok(events) if events.is_empty() => {
                            // Nothing there: a seq a failed write took (skip it), or a notice
                            // that was wrong (believe the store's head instead).
                            match engine.inner.store.last_seq(hub.course_id()).await {
                                Ok(head) if head >= upto => hub.skip_to(upto),
                                Ok(head) => hub.distrust(head),
                                Err(e) => {
                                    tracing::warn!(course = hub.course_id(), error = %e, "cannot read a course's head");
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                }
                            }
                        }
                        Ok(events) => {
                            for event in events {
                                if let Some(seq) = event.seq() {
                                    hub.publish_filled(seq, Envelope::new(event));
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(course = hub.course_id(), error = %e, "cannot fill a gap from the store; retrying");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            if engine.is_closed() {
                                return;
                            }
                        }
                    }
                }
                if !hub.stop_filling() {
                    return;
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(run);
            }
            Err(_) => tracing::warn!("no runtime to fill a gap from the store"),
        }
    }
}
