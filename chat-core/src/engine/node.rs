//! This engine as one node of several: what it tells the others, and what it does with what they
//! tell it.
//!
//! With a [`Bus`](crate::cluster::Bus) the engine runs three background tasks:
//! - the listener: each [`Notice`] from another node becomes local work — a durable change makes
//!   the course's hub fill its gap from the store, a room event is delivered to the room's local
//!   sockets, a presence change recomputes the local online lists, an unenrolment kicks the
//!   user's local connections. When the bus says it resubscribed (it lost its broker and is back),
//!   every local room catches up from the store;
//! - the reconciler: every [`RECONCILE`] it asks the store for the head of every course with
//!   local listeners, so a change whose notice was lost is delivered even if nothing follows it;
//! - the heartbeat, when the presence backend needs one: it keeps this node's presence alive and
//!   announces what nodes that stopped heartbeating left behind (users gone offline, rooms left).

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Engine, Inner};
use crate::cluster::{Delivery, Departure, Notice, Wire};
use crate::event::{Envelope, Event, Membership};
use crate::hub::Origin;
use crate::model::Timestamp;

/// How often a node compares its rooms' heads with the store.
const RECONCILE: Duration = Duration::from_secs(2);

impl Engine {
    /// Tells the other nodes (if any).
    pub(crate) fn tell(&self, notice: Notice) {
        let Some(bus) = self.inner.cluster.bus.clone() else {
            return;
        };
        let wire = Wire {
            node: self.inner.cluster.node_id.clone(),
            notice,
        };
        let bytes = match serde_json::to_vec(&wire) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a notice");
                return;
            }
        };
        // A notice may be lost anyway (the others catch up from the store): never wait for it.
        tokio::spawn(async move {
            if let Err(e) = bus.publish(bytes).await {
                tracing::debug!(error = %e, "a notice was not published");
            }
        });
    }

    /// Publishes an ephemeral event to the course's room here and on the other nodes.
    pub(crate) fn broadcast(&self, env: Arc<Envelope>) {
        let course = env.event().course_id().to_string();
        if let Some(hub) = self.inner.hubs.lock().get(&course).cloned() {
            hub.publish(env.clone(), Origin::Local);
        } else {
            // No local room, but plugins still see this node's events.
            self.inner.plugins.notify(&env);
        }
        if self.inner.cluster.bus.is_some() {
            let event = serde_json::to_value(env.event()).unwrap_or_default();
            self.tell(Notice::Room {
                course_id: course,
                event,
                exclude_user: env.excluded_user().map(str::to_string),
                moderators_only: env.moderators_only(),
            });
        }
    }

    /// Starts the node's background tasks (see the module docs). Called once at open.
    pub(crate) async fn start_node(&self) -> crate::error::Result<()> {
        let weak = Arc::downgrade(&self.inner);
        if let Some(bus) = self.inner.cluster.bus.clone() {
            let mut deliveries = bus.subscribe().await?;
            let listener = weak.clone();
            tokio::spawn(async move {
                while let Some(delivery) = deliveries.recv().await {
                    let Some(inner) = listener.upgrade() else {
                        return;
                    };
                    let engine = Engine { inner };
                    match delivery {
                        Delivery::Message(bytes) => engine.on_message(&bytes).await,
                        Delivery::Resubscribed => engine.catch_up_all().await,
                    }
                }
            });
            let reconciler = weak.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(RECONCILE);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(inner) = reconciler.upgrade() else {
                        return;
                    };
                    Engine { inner }.catch_up_all().await;
                }
            });
        }
        if let Some(every) = self.inner.cluster.presence.heartbeat_interval() {
            tokio::spawn(heartbeat(weak, every));
        }
        Ok(())
    }

    async fn on_message(&self, bytes: &[u8]) {
        let wire: Wire = match serde_json::from_slice(bytes) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "an unreadable notice on the bus");
                return;
            }
        };
        if wire.node == self.inner.cluster.node_id {
            return;
        }
        match wire.notice {
            Notice::Change { course_id, seq } => {
                let hub = self.inner.hubs.lock().get(&course_id).cloned();
                if let Some(hub) = hub {
                    if hub.notify(seq) {
                        self.fill(hub, Duration::ZERO);
                    }
                }
            }
            Notice::Room {
                course_id,
                event,
                exclude_user,
                moderators_only,
            } => {
                let hub = self.inner.hubs.lock().get(&course_id).cloned();
                let Some(hub) = hub else { return };
                match Event::from_json(&event) {
                    Ok(ev) if ev.course_id() == course_id && ev.seq().is_none() => {
                        let env = match exclude_user {
                            _ if moderators_only => Envelope::for_moderators(ev),
                            Some(u) => Envelope::excluding(ev, &u),
                            None => Envelope::new(ev),
                        };
                        hub.publish(env, Origin::Store);
                    }
                    Ok(_) => tracing::warn!("a room notice that is not an ephemeral event"),
                    Err(e) => tracing::warn!(error = %e, "an unreadable room event on the bus"),
                }
            }
            Notice::Presence { user_id } => {
                self.forget_profile(&user_id);
                self.presence_changed(&user_id).await;
            }
            Notice::Unenrolled { course_id, user_id } => {
                self.kick_here(&course_id, &user_id);
            }
        }
    }

    /// Asks the store where every course with local listeners stands, and fills what is missing.
    async fn catch_up_all(&self) {
        let hubs: Vec<_> = self
            .inner
            .hubs
            .lock()
            .values()
            .filter(|h| h.has_listeners())
            .cloned()
            .collect();
        for chunk in hubs.chunks(500) {
            let ids: Vec<String> = chunk.iter().map(|h| h.course_id().to_string()).collect();
            match self.inner.store.last_seqs(&ids).await {
                Ok(heads) => {
                    for (hub, head) in chunk.iter().zip(heads) {
                        if hub.notify(head) {
                            self.fill(hub.clone(), Duration::ZERO);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the rooms' heads"),
            }
        }
    }

    /// What a node that stopped heartbeating left behind, announced by the node that found it.
    async fn depart(&self, departure: Departure) {
        let user = departure.user_id;
        if departure.offline {
            if let Err(e) = self.save_last_seen(&user, Timestamp::now()).await {
                tracing::warn!(user, error = %e, "cannot save lastSeen");
            }
        }
        if let Ok(me) = self.user_view(&user).await {
            for course in departure.rooms {
                self.broadcast(Envelope::new(Event::UserLeft(Membership {
                    course_id: course.clone(),
                    user: me.clone(),
                })));
                self.online_changed(&course);
            }
        }
        if departure.offline {
            self.presence_changed(&user).await;
            self.tell(Notice::Presence { user_id: user });
        }
    }
}

async fn heartbeat(engine: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let engine = Engine { inner };
        if engine.is_closed() {
            return;
        }
        match engine.inner.cluster.presence.heartbeat().await {
            Ok(departures) => {
                for d in departures {
                    engine.depart(d).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence heartbeat failed"),
        }
    }
}
