//! Courses: provisioning and enrolment (admins), and the access check every operation starts
//! with: the course exists and the caller takes part in it (or is an admin).

use super::uncancellable::uncancellable;
use super::Engine;
use crate::cluster::Notice;
use crate::error::{Error, Result};
use crate::model::{check_id, Actor, Course, Message, Participant, Role, Timestamp};
use crate::store::CourseRecord;

/// Changes to a course's settings; absent fields keep their value (or the default on creation:
/// the name defaults to the id, chat to enabled).
#[derive(Debug, Clone, Default)]
pub struct CourseUpdate {
    /// Display name.
    pub name: Option<String>,
    /// Whether chat is enabled.
    pub chat_enabled: Option<bool>,
    /// Archive the course (`true`: read-only, every write refused with `CHAT_DISABLED`) or
    /// bring it back (`false`).
    pub archived: Option<bool>,
}

/// What an operation needs of a course.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// To read it: the course exists and the caller takes part (or is an admin).
    Read,
    /// To write to it (send, edit, type): that, chat enabled and the course not archived.
    Write,
    /// To change it otherwise (pins, flags, moderation, deletions): readable and not archived.
    Change,
}

impl Engine {
    fn require_admin(actor: &Actor) -> Result<()> {
        if actor.is_admin() {
            Ok(())
        } else {
            Err(Error::Forbidden("only admins can provision courses".into()))
        }
    }

    /// Creates or updates a course (admins only).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn put_course(
        &self,
        actor: &Actor,
        course_id: &str,
        update: CourseUpdate,
    ) -> Result<Course> {
        self.alive()?;
        Self::require_admin(actor)?;
        check_id("courseId", course_id)?;
        let current = self.inner.store.course(course_id).await?;
        let name = match update.name.map(|n| n.trim().to_string()) {
            Some(n) if n.is_empty() || n.chars().count() > 200 => {
                return Err(Error::validation("name must be 1 to 200 characters"))
            }
            Some(n) => n,
            None => current
                .as_ref()
                .map_or_else(|| course_id.to_string(), |c| c.name.clone()),
        };
        let chat_enabled = update
            .chat_enabled
            .unwrap_or_else(|| current.as_ref().is_none_or(|c| c.chat_enabled));
        let archived = update
            .archived
            .unwrap_or_else(|| current.as_ref().is_some_and(|c| c.archived));
        let record = CourseRecord {
            id: course_id.to_string(),
            name,
            chat_enabled,
            archived,
        };
        self.inner.store.put_course(&record).await?;
        self.course_view(record).await
    }

    /// A course with its participants (participants and admins).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn course(&self, actor: &Actor, course_id: &str) -> Result<Course> {
        let (record, _) = self.access(actor, course_id, Need::Read).await?;
        self.course_view(record).await
    }

    async fn course_view(&self, record: CourseRecord) -> Result<Course> {
        let participants = self.inner.store.participants(&record.id).await?;
        Ok(Course {
            id: record.id,
            name: record.name,
            chat_enabled: record.chat_enabled,
            participants: participants.into_iter().map(|p| p.user_id).collect(),
            archived: record.archived,
        })
    }

    /// The participants of a course with their roles (participants and admins).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn participants(&self, actor: &Actor, course_id: &str) -> Result<Vec<Participant>> {
        self.access(actor, course_id, Need::Read).await?;
        self.inner.store.participants(course_id).await
    }

    /// Enrolls a user in a course, or changes their role (admins only).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn enroll(
        &self,
        actor: &Actor,
        course_id: &str,
        user_id: &str,
        role: Role,
    ) -> Result<Participant> {
        self.alive()?;
        Self::require_admin(actor)?;
        check_id("courseId", course_id)?;
        check_id("userId", user_id)?;
        if self.inner.store.course(course_id).await?.is_none() {
            return Err(Error::NotFound("course"));
        }
        self.inner
            .store
            .put_participant(course_id, user_id, role)
            .await?;
        Ok(Participant {
            user_id: user_id.to_string(),
            role,
        })
    }

    /// Removes a user from a course (admins only); their open connections leave its room.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn unenroll(&self, actor: &Actor, course_id: &str, user_id: &str) -> Result<()> {
        self.alive()?;
        Self::require_admin(actor)?;
        check_id("courseId", course_id)?;
        check_id("userId", user_id)?;
        let engine = self.clone();
        let (course_id, user_id) = (course_id.to_string(), user_id.to_string());
        // Once the store forgot the enrollment, the user's connections leave the room whatever
        // the caller does.
        uncancellable(async move {
            if !engine
                .inner
                .store
                .remove_participant(&course_id, &user_id)
                .await?
            {
                return Err(Error::NotFound("participant"));
            }
            engine.kick_here(&course_id, &user_id);
            engine.tell(Notice::Unenrolled { course_id, user_id });
            Ok(())
        })
        .await
    }

    /// Checks that the course exists, that the caller is a participant or an admin, and for a
    /// write that chat is enabled; returns the course and the caller's role in it (`None` for an
    /// admin who is not enrolled). Every operation on a course starts here.
    pub(super) async fn access(
        &self,
        actor: &Actor,
        course_id: &str,
        need: Need,
    ) -> Result<(CourseRecord, Option<Role>)> {
        check_id("courseId", course_id)?;
        let course = self
            .inner
            .store
            .course(course_id)
            .await?
            .ok_or(Error::NotFound("course"))?;
        let role = self.inner.store.participant(course_id, &actor.id).await?;
        if role.is_none() && !actor.is_admin() {
            return Err(Error::NotEnrolled);
        }
        if (need == Need::Write && !course.chat_enabled) || (need != Need::Read && course.archived)
        {
            return Err(Error::ChatDisabled);
        }
        if !Self::moderates(actor, role) {
            if let Some(r) = self.inner.store.restriction(course_id, &actor.id).await? {
                if r.banned {
                    return Err(Error::Banned);
                }
                match r.muted_until {
                    Some(until) if need == Need::Write && until > Timestamp::now() => {
                        return Err(Error::Muted { until })
                    }
                    _ => {}
                }
            }
        }
        Ok((course, role))
    }

    /// Whether a caller with `role` in a course moderates it: its instructors and admins.
    pub(super) fn moderates(actor: &Actor, role: Option<Role>) -> bool {
        actor.is_admin() || matches!(role, Some(Role::Instructor | Role::Admin))
    }

    /// A message and the caller's access to its course.
    pub(super) async fn message_for(
        &self,
        actor: &Actor,
        message_id: &str,
        need: Need,
    ) -> Result<(Message, CourseRecord, Option<Role>)> {
        check_id("messageId", message_id)?;
        let message = self
            .inner
            .store
            .message(message_id)
            .await?
            .ok_or(Error::NotFound("message"))?;
        let (course, role) = self.access(actor, &message.course_id, need).await?;
        Ok((message, course, role))
    }
}
