//! Moderation: what a course's moderators (its instructors, and admins) may do to keep its chat
//! civil, and the audit log of everything they did.
//!
//! - Pins: a pin or unpin is a seq'd change of the message (`ChangeKind::Pinned`), published as
//!   `message-pinned` and replayed on resume; `pinned` reads a course's pinned messages (any
//!   reader). At most [`MAX_PINS`] per course. A deleted message is unpinned.
//! - Mutes and bans: a [`Restriction`] of a user in a course. A muted user's sends, edits,
//!   reactions and typing are refused with `MUTED` until the mute ends; a banned user can neither
//!   read nor write the course's chat (`BANNED`) and their connections leave its room. The check
//!   lives in [`Engine::access`], where every operation on a course starts. Moderators cannot be
//!   restricted. Events `user-muted` and `user-banned` go to the room; they are not stored
//!   changes (the current restrictions are read with `restrictions`).
//! - Flags: any participant reports a message with a reason; the course's moderators receive
//!   `message-flagged` (nobody else does) and read the queue with `flags`; resolving a flag
//!   dismisses it or deletes the message (`flag-resolved`, also to moderators only). A reporter
//!   has one open flag per message.
//! - The audit log: every moderation action above, and a moderator deleting someone else's
//!   message, appends an [`AuditEntry`]; admins read it, newest first.

use std::time::Duration;

use super::courses::Need;
use super::writes::CONFLICT_RETRIES;
use super::Engine;
use crate::cluster::Notice;
use crate::error::{Error, Result};
use crate::event::{Envelope, Event, UserBanned, UserMuted};
use crate::model::{
    check_id, ordered_id, Actor, AuditEntry, Flag, FlagResolution, Message, Restriction, Role,
    Timestamp,
};
use crate::store::{ChangeKind, Update};

/// Pinned messages a course may have.
pub const MAX_PINS: usize = 50;
/// The longest mute.
pub const MAX_MUTE: Duration = Duration::from_secs(365 * 24 * 3600);
/// The longest flag reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// The most audit entries one page returns.
pub const MAX_AUDIT_PAGE: usize = 200;

impl Engine {
    /// Checks that the caller moderates the course; returns their role in it.
    async fn moderator_of(
        &self,
        actor: &Actor,
        course_id: &str,
        need: Need,
    ) -> Result<Option<Role>> {
        let (_, role) = self.access(actor, course_id, need).await?;
        Self::require_moderator(actor, role)?;
        Ok(role)
    }

    /// Refuses a caller with `role` in a course who does not moderate it.
    fn require_moderator(actor: &Actor, role: Option<Role>) -> Result<()> {
        if Self::moderates(actor, role) {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "only the course's instructors and admins can moderate it".into(),
            ))
        }
    }

    /// Appends to the audit log. The action is done by then: a failure to log it is reported
    /// to the caller but does not undo it.
    pub(super) async fn audit_action(
        &self,
        actor: &Actor,
        course_id: &str,
        action: &str,
        target_user_id: Option<&str>,
        message_id: Option<&str>,
        detail: Option<String>,
    ) -> Result<()> {
        let entry = AuditEntry {
            id: ordered_id(),
            course_id: course_id.to_string(),
            actor_id: actor.id.clone(),
            action: action.to_string(),
            target_user_id: target_user_id.map(str::to_string),
            message_id: message_id.map(str::to_string),
            detail,
            at: Timestamp::now(),
        };
        self.inner.store.append_audit(&entry).await
    }

    /// Pins a message (moderators). Pinning a pinned message changes nothing.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn pin(&self, actor: &Actor, message_id: &str) -> Result<Message> {
        self.set_pin(actor, message_id, true).await
    }

    /// Unpins a message (moderators). Unpinning a message not pinned changes nothing.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn unpin(&self, actor: &Actor, message_id: &str) -> Result<Message> {
        self.set_pin(actor, message_id, false).await
    }

    async fn set_pin(&self, actor: &Actor, message_id: &str, pin: bool) -> Result<Message> {
        self.alive()?;
        for _ in 0..CONFLICT_RETRIES {
            // One access check: the message's course and the caller's role in it.
            let (current, course, role) = self.message_for(actor, message_id, Need::Change).await?;
            Self::require_moderator(actor, role)?;
            if current.is_deleted {
                return Err(Error::NotFound("message"));
            }
            if current.pinned == pin {
                return self.hydrate_one(current).await;
            }
            if pin && self.inner.store.pinned(&course.id).await?.len() >= MAX_PINS {
                return Err(Error::validation(format!(
                    "a course has at most {MAX_PINS} pinned messages"
                )));
            }
            let now = Timestamp::now();
            let mut next = current.clone();
            next.set_pin(pin.then(|| (actor.id.clone(), now)));
            next.updated_at = now;
            let update = Update {
                kind: ChangeKind::Pinned,
                message: next,
                expected_change_seq: current.change_seq,
                reaction: None,
            };
            if let Some(m) = self.commit_update(update, None).await? {
                let action = if pin { "pin" } else { "unpin" };
                let author = Some(m.sender.id.as_str());
                self.audit_action(actor, &course.id, action, author, Some(&m.id), None)
                    .await?;
                return Ok(m);
            }
        }
        Err(Error::Conflict)
    }

    /// The pinned messages of a course, in the order they were sent (its readers).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn pinned(&self, actor: &Actor, course_id: &str) -> Result<Vec<Message>> {
        self.access(actor, course_id, Need::Read).await?;
        let pinned = self.inner.store.pinned(course_id).await?;
        self.hydrate(course_id, pinned).await
    }

    /// Checks that `user_id` may be restricted in the course: not the caller, not a moderator.
    async fn restrictable(&self, actor: &Actor, course_id: &str, user_id: &str) -> Result<()> {
        check_id("userId", user_id)?;
        if user_id == actor.id {
            return Err(Error::validation("moderators cannot restrict themselves"));
        }
        let role = self.inner.store.participant(course_id, user_id).await?;
        let admin = self
            .profile(user_id)
            .await?
            .is_some_and(|p| p.role == Role::Admin);
        if admin || matches!(role, Some(Role::Instructor | Role::Admin)) {
            return Err(Error::Forbidden(
                "the course's instructors and admins cannot be muted or banned".into(),
            ));
        }
        Ok(())
    }

    /// Writes a user's restriction (or lifts it when nothing is left in force).
    async fn save_restriction(
        &self,
        actor: &Actor,
        course_id: &str,
        user_id: &str,
        change: impl FnOnce(&mut Restriction),
    ) -> Result<Restriction> {
        let now = Timestamp::now();
        let mut r = self
            .inner
            .store
            .restriction(course_id, user_id)
            .await?
            .unwrap_or_else(|| Restriction {
                course_id: course_id.to_string(),
                user_id: user_id.to_string(),
                muted_until: None,
                banned: false,
                updated_by: actor.id.clone(),
                updated_at: now,
            });
        change(&mut r);
        if r.muted_until.is_some_and(|until| until <= now) {
            r.muted_until = None;
        }
        r.updated_by = actor.id.clone();
        r.updated_at = now;
        if r.in_force(now) {
            self.inner.store.put_restriction(&r).await?;
        } else {
            self.inner
                .store
                .remove_restriction(course_id, user_id)
                .await?;
        }
        Ok(r)
    }

    /// Mutes a user in a course for `duration` (moderators): their sends, edits, reactions and
    /// typing are refused with `MUTED` until then. Muting again sets a new end.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn mute(
        &self,
        actor: &Actor,
        course_id: &str,
        user_id: &str,
        duration: Duration,
    ) -> Result<Restriction> {
        self.alive()?;
        self.moderator_of(actor, course_id, Need::Change).await?;
        self.restrictable(actor, course_id, user_id).await?;
        if duration.is_zero() || duration > MAX_MUTE {
            return Err(Error::validation(format!(
                "a mute lasts 1 second to {} days",
                MAX_MUTE.as_secs() / 86_400
            )));
        }
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let until = Timestamp::from_millis(Timestamp::now().as_millis().saturating_add(ms))
            .ok_or_else(|| Error::validation("mute ends too far in the future"))?;
        let r = self
            .save_restriction(actor, course_id, user_id, |r| r.muted_until = Some(until))
            .await?;
        if self.inner.typing.stop(course_id, user_id) {
            let name = self.profile(user_id).await?.map(|p| p.name);
            let typist = Actor::new(user_id, name.unwrap_or_default(), Role::Student);
            self.broadcast(super::rooms::typing_event(course_id, &typist, false));
        }
        self.broadcast(Envelope::new(Event::UserMuted(UserMuted {
            course_id: course_id.to_string(),
            user_id: user_id.to_string(),
            muted_until: Some(until),
            by: actor.id.clone(),
        })));
        let detail = Some(format!("until {until}"));
        self.audit_action(actor, course_id, "mute", Some(user_id), None, detail)
            .await?;
        Ok(r)
    }

    /// Lifts a user's mute in a course (moderators); nothing happens if they were not muted.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn unmute(&self, actor: &Actor, course_id: &str, user_id: &str) -> Result<()> {
        self.alive()?;
        self.moderator_of(actor, course_id, Need::Change).await?;
        check_id("userId", user_id)?;
        let was = self.inner.store.restriction(course_id, user_id).await?;
        if !was.is_some_and(|r| r.muted_at(Timestamp::now())) {
            return Ok(());
        }
        self.save_restriction(actor, course_id, user_id, |r| r.muted_until = None)
            .await?;
        self.broadcast(Envelope::new(Event::UserMuted(UserMuted {
            course_id: course_id.to_string(),
            user_id: user_id.to_string(),
            muted_until: None,
            by: actor.id.clone(),
        })));
        self.audit_action(actor, course_id, "unmute", Some(user_id), None, None)
            .await
    }

    /// Bans a user from a course's chat (moderators): they can no longer read or write it
    /// (`BANNED`), and their connections leave its room. The ban outlives their enrolment.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn ban(&self, actor: &Actor, course_id: &str, user_id: &str) -> Result<Restriction> {
        self.alive()?;
        self.moderator_of(actor, course_id, Need::Change).await?;
        self.restrictable(actor, course_id, user_id).await?;
        let already = self
            .inner
            .store
            .restriction(course_id, user_id)
            .await?
            .is_some_and(|r| r.banned);
        let r = self
            .save_restriction(actor, course_id, user_id, |r| r.banned = true)
            .await?;
        if already {
            return Ok(r);
        }
        self.broadcast(Envelope::new(Event::UserBanned(UserBanned {
            course_id: course_id.to_string(),
            user_id: user_id.to_string(),
            banned: true,
            by: actor.id.clone(),
        })));
        self.kick_here(course_id, user_id);
        self.tell(Notice::Unenrolled {
            course_id: course_id.to_string(),
            user_id: user_id.to_string(),
        });
        self.audit_action(actor, course_id, "ban", Some(user_id), None, None)
            .await?;
        Ok(r)
    }

    /// Lifts a user's ban (moderators); nothing happens if they were not banned.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn unban(&self, actor: &Actor, course_id: &str, user_id: &str) -> Result<()> {
        self.alive()?;
        self.moderator_of(actor, course_id, Need::Change).await?;
        check_id("userId", user_id)?;
        let was = self.inner.store.restriction(course_id, user_id).await?;
        if !was.is_some_and(|r| r.banned) {
            return Ok(());
        }
        self.save_restriction(actor, course_id, user_id, |r| r.banned = false)
            .await?;
        self.broadcast(Envelope::new(Event::UserBanned(UserBanned {
            course_id: course_id.to_string(),
            user_id: user_id.to_string(),
            banned: false,
            by: actor.id.clone(),
        })));
        self.audit_action(actor, course_id, "unban", Some(user_id), None, None)
            .await
    }

    /// The restrictions in force in a course, by user id (moderators).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn restrictions(&self, actor: &Actor, course_id: &str) -> Result<Vec<Restriction>> {
        self.moderator_of(actor, course_id, Need::Read).await?;
        let now = Timestamp::now();
        let mut all = self.inner.store.restrictions(course_id).await?;
        all.retain(|r| r.in_force(now));
        for r in &mut all {
            if !r.muted_at(now) {
                r.muted_until = None;
            }
        }
        Ok(all)
    }

    /// Reports a message to the course's moderators (any reader of the course). Reporting the
    /// same message again while the first report is open returns that report.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn flag(&self, actor: &Actor, message_id: &str, reason: &str) -> Result<Flag> {
        self.alive()?;
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(Error::validation(format!(
                "reason must be 1 to {MAX_REASON_CHARS} characters"
            )));
        }
        let (message, course, _) = self.message_for(actor, message_id, Need::Change).await?;
        if message.is_deleted {
            return Err(Error::NotFound("message"));
        }
        if message.sender.id == actor.id {
            return Err(Error::validation("you cannot flag your own message"));
        }
        let flag = Flag {
            id: ordered_id(),
            course_id: course.id.clone(),
            message_id: message.id.clone(),
            reporter_id: actor.id.clone(),
            reason: reason.to_string(),
            created_at: Timestamp::now(),
            resolution: None,
        };
        let stored = self.inner.store.insert_flag(&flag).await?;
        if stored.id == flag.id {
            self.ready_hub(&course.id).await?;
            self.broadcast(Envelope::for_moderators(Event::MessageFlagged(
                stored.clone(),
            )));
        }
        Ok(stored)
    }

    /// A course's flags, oldest first: the open ones, or all (moderators).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn flags(
        &self,
        actor: &Actor,
        course_id: &str,
        open_only: bool,
    ) -> Result<Vec<Flag>> {
        self.moderator_of(actor, course_id, Need::Read).await?;
        self.inner.store.flags(course_id, open_only).await
    }

    /// Resolves a flag (moderators): dismisses it, or deletes the flagged message. Every other
    /// open flag of the message is resolved with it. Resolving a resolved flag returns it.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, flag = flag_id), err(level = "debug"))]
    pub async fn resolve_flag(
        &self,
        actor: &Actor,
        flag_id: &str,
        delete_message: bool,
    ) -> Result<Flag> {
        self.alive()?;
        check_id("flagId", flag_id)?;
        let flag = self
            .inner
            .store
            .flag(flag_id)
            .await?
            .ok_or(Error::NotFound("flag"))?;
        self.moderator_of(actor, &flag.course_id, Need::Change)
            .await?;
        if flag.resolution.is_some() {
            return Ok(flag);
        }
        if delete_message {
            self.delete(actor, &flag.message_id).await?;
        }
        let resolution = FlagResolution {
            by: actor.id.clone(),
            at: Timestamp::now(),
            message_deleted: delete_message,
        };
        let open = self.inner.store.flags(&flag.course_id, true).await?;
        let mut resolved = flag.clone();
        for mut f in open.into_iter().filter(|f| f.message_id == flag.message_id) {
            f.resolution = Some(resolution.clone());
            self.inner.store.update_flag(&f).await?;
            self.broadcast(Envelope::for_moderators(Event::FlagResolved(f.clone())));
            if f.id == flag.id {
                resolved = f;
            }
        }
        let outcome = if delete_message {
            "deleted"
        } else {
            "dismissed"
        };
        self.audit_action(
            actor,
            &flag.course_id,
            "resolve-flag",
            Some(&flag.reporter_id),
            Some(&flag.message_id),
            Some(format!("flag {}: {outcome}", flag.id)),
        )
        .await?;
        Ok(resolved)
    }

    /// The audit log, newest first (admins): of one course or all, before an entry id.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id), err(level = "debug"))]
    pub async fn audit_log(
        &self,
        actor: &Actor,
        course_id: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        if !actor.is_admin() {
            return Err(Error::Forbidden(
                "only admins can read the audit log".into(),
            ));
        }
        if let Some(c) = course_id {
            check_id("courseId", c)?;
        }
        if let Some(b) = before {
            check_id("before", b)?;
        }
        if limit == 0 || limit > MAX_AUDIT_PAGE {
            return Err(Error::validation(format!(
                "limit must be 1 to {MAX_AUDIT_PAGE}"
            )));
        }
        self.inner.store.audit(course_id, before, limit).await
    }
}
