//! Rooms: connecting, joining and leaving course rooms, who is online in them, and typing.
//!
//! Presence and room membership are counted by the cluster's [`Presence`](crate::cluster::Presence)
//! (in memory for one node, shared for several), so "online", `user-joined` and `user-left`
//! mean the same whichever node a user's connections are on. Each node keeps its own fan-out per
//! course (a [`Hub`]) for the connections it serves; events that are not stored reach the other
//! nodes' rooms as notices ([`Engine::broadcast`]).

use std::sync::{Arc, Weak};

use super::catch_up::LOCAL_GAP_GRACE;
use super::connection::{ConnInner, Detached, Joined, Resume};
use super::courses::Need;
use super::{Connection, Engine, Inner};
use crate::cluster::Notice;
use crate::error::Result;
use crate::event::{Envelope, Event, Membership, OnlineUsers, Typing};
use crate::hub::{Hub, Origin};
use crate::model::{Actor, Timestamp, User};
use crate::stream::{Events, StreamShared};
use crate::typing::Check;

impl Engine {
    pub(super) fn hub(&self, course_id: &str) -> Arc<Hub> {
        self.inner
            .hubs
            .lock()
            .entry(course_id.to_string())
            .or_insert_with(|| Arc::new(Hub::new(course_id, self.inner.plugins.clone())))
            .clone()
    }

    pub(super) async fn ready_hub(&self, course_id: &str) -> Result<Arc<Hub>> {
        let hub = self.hub(course_id);
        hub.ready(self.inner.store.as_ref()).await?;
        Ok(hub)
    }

    /// The online participants of a course. An admin watching the room without being enrolled is
    /// not a member of it, so is not listed.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn online_users(&self, actor: &Actor, course_id: &str) -> Result<Vec<User>> {
        self.access(actor, course_id, Need::Read).await?;
        self.compute_online(course_id).await
    }

    async fn compute_online(&self, course_id: &str) -> Result<Vec<User>> {
        // Participants come ordered by user id.
        let ids: Vec<String> = self
            .inner
            .store
            .participants(course_id)
            .await?
            .into_iter()
            .map(|p| p.user_id)
            .collect();
        let online = self.inner.cluster.presence.online(&ids).await?;
        let mut users = Vec::new();
        for (id, on) in ids.into_iter().zip(online) {
            if on {
                let profile = self.profile(&id).await?;
                users.push(self.user_from(&id, profile, true));
            }
        }
        Ok(users)
    }

    /// A user came online or went offline: the online lists of this node's rooms of the courses
    /// they take part in change.
    pub(super) async fn presence_changed(&self, user_id: &str) {
        let courses = match self.inner.store.courses_of(user_id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(user = user_id, error = %e, "cannot list courses");
                return;
            }
        };
        for course in courses {
            let listened = self
                .inner
                .hubs
                .lock()
                .get(&course)
                .is_some_and(|h| h.has_listeners());
            if listened {
                self.online_changed(&course);
            }
        }
    }

    /// A room's online list changed: broadcast it once the burst settles, so a whole class
    /// joining or leaving at once costs one list per `presence_debounce`, not one per user
    /// (which is quadratic in deliveries and cubic in bytes). Each node sends its own rooms the
    /// list.
    pub(super) fn online_changed(&self, course_id: &str) {
        if !self
            .inner
            .online_pending
            .lock()
            .insert(course_id.to_string())
        {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let course = course_id.to_string();
        let delay = self.inner.config.presence_debounce;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(inner) = weak.upgrade() else { return };
            inner.online_pending.lock().remove(&course);
            let engine = Engine { inner };
            let hub = engine.inner.hubs.lock().get(&course).cloned();
            let Some(hub) = hub.filter(|h| h.has_listeners()) else {
                return;
            };
            match engine.compute_online(&course).await {
                Ok(users) => hub.publish(
                    Envelope::new(Event::OnlineUsers(OnlineUsers {
                        course_id: course.clone(),
                        users,
                    })),
                    Origin::Local,
                ),
                Err(e) => tracing::warn!(course, error = %e, "cannot list online users"),
            }
        });
    }

    /// Opens a connection for the caller: they are online until it (and their others, on any
    /// node) close.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id), err(level = "debug"))]
    pub async fn connect(&self, actor: &Actor) -> Result<(Connection, Events)> {
        self.alive()?;
        self.ensure_profile(actor).await?;
        let pair = self.open_connection(actor, true);
        if self.inner.cluster.presence.connect(&actor.id).await? {
            self.presence_changed(&actor.id).await;
            self.tell(Notice::Presence {
                user_id: actor.id.clone(),
            });
        }
        Ok(pair)
    }

    /// Follows one course without being present in it (no presence, no `user-joined`): for
    /// plugins, bridges and listeners. With `since_seq`, replays what followed it first.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn subscribe(
        &self,
        actor: &Actor,
        course_id: &str,
        since_seq: Option<u64>,
    ) -> Result<Events> {
        self.access(actor, course_id, Need::Read).await?;
        self.alive()?;
        let (conn, mut events) = self.open_connection(actor, false);
        conn.join(course_id, since_seq).await?;
        // The subscription lives as long as its stream.
        events.keep_alive(conn);
        Ok(events)
    }

    pub(super) async fn join(
        &self,
        conn: &ConnInner,
        course_id: &str,
        resume: Option<Resume>,
    ) -> Result<Joined> {
        self.alive()?;
        let actor = &conn.actor;
        let (_, role) = self.access(actor, course_id, Need::Read).await?;
        let hub = self.ready_hub(course_id).await?;
        let (since_seq, recovered) = match resume {
            None => (None, None),
            Some(r) => {
                let ok = self.resumable(&hub, &r).await?;
                (ok.then_some(r.since_seq), Some(ok))
            }
        };
        let newly = conn.joined.lock().insert(course_id.to_string());
        // An admin who is not enrolled watches the room without being a member of it: not
        // online in it, no `user-joined` / `user-left`.
        let member = conn.presence && role.is_some();
        let first_here = member && newly && hub.add_member(&actor.id);
        let user = conn.presence.then_some(actor.id.as_str());
        let moderator = Self::moderates(actor, role);
        if moderator {
            conn.moderating.lock().insert(course_id.to_string());
        }
        let mut head_seq = 0;
        hub.subscribe(conn.id, user, moderator, conn.stream.clone(), |hi| {
            head_seq = hi;
            conn.stream.follow(course_id, since_seq, hi)
        });
        let first_anywhere = first_here
            && self
                .inner
                .cluster
                .presence
                .enter(course_id, &actor.id)
                .await?;
        let users = self.compute_online(course_id).await?;
        if conn.presence {
            conn.stream
                .push(Envelope::new(Event::OnlineUsers(OnlineUsers {
                    course_id: course_id.to_string(),
                    users: users.clone(),
                })));
        }
        if first_anywhere {
            let me = self.user_view(&actor.id).await?;
            let joined = Event::UserJoined(Membership {
                course_id: course_id.to_string(),
                user: me,
            });
            self.broadcast(Envelope::excluding(joined, &actor.id));
        }
        if first_here {
            self.online_changed(course_id);
        }
        Ok(Joined {
            course_id: course_id.to_string(),
            users,
            head_seq,
            epoch: self.inner.epoch.clone(),
            recovered,
        })
    }

    /// Whether every change after `resume` can be replayed: the seq is of this store's epoch and
    /// not beyond the course's head. A seq the store holds but this node has not published yet
    /// (the client saw it on another node) makes the room fill from the store now.
    async fn resumable(&self, hub: &Arc<Hub>, resume: &Resume) -> Result<bool> {
        if resume
            .epoch
            .as_deref()
            .is_some_and(|e| e != self.inner.epoch)
        {
            return Ok(false);
        }
        if resume.since_seq <= hub.published() {
            return Ok(true);
        }
        let head = self.inner.store.last_seq(hub.course_id()).await?;
        if resume.since_seq > head {
            return Ok(false);
        }
        if hub.notify(head) {
            self.fill(hub.clone(), LOCAL_GAP_GRACE);
        }
        Ok(true)
    }

    pub(super) async fn leave(&self, conn: &ConnInner, course_id: &str) -> Result<()> {
        self.access(&conn.actor, course_id, Need::Read).await?;
        conn.moderating.lock().remove(course_id);
        if !conn.joined.lock().remove(course_id) {
            return Ok(());
        }
        self.leave_room(&conn.actor, conn.id, conn.presence, &conn.stream, course_id)
            .await;
        Ok(())
    }

    async fn leave_room(
        &self,
        actor: &Actor,
        conn_id: u64,
        presence: bool,
        stream: &StreamShared,
        course_id: &str,
    ) {
        stream.unfollow(course_id);
        let Some(hub) = self.inner.hubs.lock().get(course_id).cloned() else {
            return;
        };
        hub.unsubscribe(conn_id);
        if !(presence && hub.remove_member(&actor.id)) {
            return;
        }
        if self.inner.typing.stop(course_id, &actor.id) {
            self.broadcast(typing_event(course_id, actor, false));
        }
        let last_anywhere = match self.inner.cluster.presence.exit(course_id, &actor.id).await {
            Ok(last) => last,
            Err(e) => {
                tracing::warn!(course = course_id, user = %actor.id, error = %e, "cannot record leaving a room");
                false
            }
        };
        if last_anywhere {
            if let Ok(me) = self.user_view(&actor.id).await {
                self.broadcast(Envelope::new(Event::UserLeft(Membership {
                    course_id: course_id.to_string(),
                    user: me,
                })));
            }
        }
        self.online_changed(course_id);
    }

    pub(super) async fn disconnect(&self, conn: &ConnInner) {
        let joined = std::mem::take(&mut *conn.joined.lock());
        self.disconnect_detached(Detached {
            actor: conn.actor.clone(),
            id: conn.id,
            presence: conn.presence,
            stream: conn.stream.clone(),
            joined,
        })
        .await;
    }

    pub(super) async fn disconnect_detached(&self, conn: Detached) {
        conn.stream.close();
        let now = Timestamp::now();
        let went_offline = conn.presence
            && match self.inner.cluster.presence.disconnect(&conn.actor.id).await {
                Ok(offline) => offline,
                Err(e) => {
                    tracing::warn!(user = %conn.actor.id, error = %e, "cannot record a disconnect");
                    false
                }
            };
        if went_offline {
            if let Err(e) = self.save_last_seen(&conn.actor.id, now).await {
                tracing::warn!(user = %conn.actor.id, error = %e, "cannot save lastSeen");
            }
        }
        let mut courses: Vec<&String> = conn.joined.iter().collect();
        courses.sort();
        for course in courses {
            self.leave_room(&conn.actor, conn.id, conn.presence, &conn.stream, course)
                .await;
        }
        if went_offline {
            self.presence_changed(&conn.actor.id).await;
            self.tell(Notice::Presence {
                user_id: conn.actor.id.clone(),
            });
        }
    }

    /// Without a runtime (a connection dropped outside Tokio): undo what needs no I/O. Presence
    /// backends that need I/O catch up at their next heartbeat.
    pub(super) fn disconnect_now(&self, conn: Detached) {
        conn.stream.close();
        let presence = self.inner.cluster.presence.clone();
        for course in &conn.joined {
            if let Some(hub) = self.inner.hubs.lock().get(course) {
                hub.unsubscribe(conn.id);
                if conn.presence && hub.remove_member(&conn.actor.id) {
                    let _ = poll_now(presence.exit(course, &conn.actor.id));
                }
            }
        }
        if conn.presence {
            let _ = poll_now(presence.disconnect(&conn.actor.id));
        }
    }

    pub(super) fn resubscribe(
        &self,
        stream: &Arc<StreamShared>,
        course_id: &str,
        conn_id: u64,
        user: Option<String>,
        moderator: bool,
    ) {
        let Some(hub) = self.inner.hubs.lock().get(course_id).cloned() else {
            return;
        };
        let Some(after) = stream.cursor(course_id) else {
            return;
        };
        hub.subscribe(conn_id, user.as_deref(), moderator, stream.clone(), |hi| {
            stream.follow(course_id, Some(after), hi)
        });
    }

    /// The user was unenrolled from the course: their connections on this node leave its room.
    pub(super) fn kick_here(&self, course_id: &str, user_id: &str) {
        let hub = self.inner.hubs.lock().get(course_id).cloned();
        if let Some(hub) = hub {
            for stream in hub.kick(user_id) {
                stream.unfollow(course_id);
            }
            self.online_changed(course_id);
        }
        let presence = self.inner.cluster.presence.clone();
        let (course, user) = (course_id.to_string(), user_id.to_string());
        tokio::spawn(async move {
            if let Err(e) = presence.evict(&course, &user).await {
                tracing::warn!(course, user, error = %e, "cannot forget a room membership");
            }
        });
    }

    /// Starts (`true`) or stops a typing indicator; it expires after `typing_ttl` without a
    /// refresh. Never stored; never sent to the typist.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn typing(&self, actor: &Actor, course_id: &str, is_typing: bool) -> Result<()> {
        self.alive()?;
        self.access(actor, course_id, Need::Write).await?;
        self.ready_hub(course_id).await?;
        let typing = &self.inner.typing;
        if !is_typing {
            if typing.stop(course_id, &actor.id) {
                self.broadcast(typing_event(course_id, actor, false));
            }
            return Ok(());
        }
        if !typing.is_active(course_id, &actor.id) {
            // Only a new indicator reaches the room; those are limited, refreshes are free.
            self.inner
                .cluster
                .rate_limits
                .take(&self.inner.typing_rule, &actor.id, course_id)
                .await?;
        }
        let Some((gen, deadline)) =
            typing.start(course_id, &actor.id, self.inner.config.typing_ttl)
        else {
            return Ok(()); // a refresh: the room already knows
        };
        self.broadcast(typing_event(course_id, actor, true));
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let (course, actor) = (course_id.to_string(), actor.clone());
        tokio::spawn(async move {
            let mut deadline = deadline;
            loop {
                tokio::time::sleep_until(deadline).await;
                let Some(inner) = weak.upgrade() else { return };
                match inner.typing.check(&course, &actor.id, gen) {
                    Check::Gone => return,
                    Check::Wait(d) => deadline = d,
                    Check::Expired => {
                        Engine { inner }.broadcast(typing_event(&course, &actor, false));
                        return;
                    }
                }
            }
        });
        Ok(())
    }
}

pub(super) fn typing_event(course_id: &str, actor: &Actor, is_typing: bool) -> Arc<Envelope> {
    Envelope::excluding(
        Event::UserTyping(Typing {
            course_id: course_id.to_string(),
            user_id: actor.id.clone(),
            name: actor.name.clone(),
            is_typing,
        }),
        &actor.id,
    )
}

/// Runs a future that needs no I/O to completion without a runtime, if it completes at once.
fn poll_now<T>(fut: impl std::future::Future<Output = T>) -> Option<T> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}
