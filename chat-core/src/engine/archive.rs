//! Archiving: exporting a course's whole history, making a course read-only for good, dropping
//! it from the store with its files, and deleting messages past a retention period.
//!
//! - An archived course (`CourseUpdate::archived`, set by an admin) refuses every write with
//!   `CHAT_DISABLED`: sends, edits, reactions, typing, pins, flags, moderation, deletions. It
//!   can still be read and exported.
//! - [`Engine::export_page`] reads the history in creation order, page by page, as history shows
//!   it (with `readBy`): the host streams it as JSON Lines. The course's instructors and admins
//!   may export.
//! - [`Engine::drop_course`] (admins) removes an archived course and everything of it from the
//!   store, and its files from the blob store; its rooms are emptied. The audit log keeps the
//!   drop.
//! - Retention (`Config::retention_days`): a task deletes messages older than that, as
//!   tombstones — seq'd deletions like a user's, so every client and resume sees them. It runs
//!   at start and then hourly, each node on its own (a deletion already made is skipped).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::courses::Need;
use super::writes::CONFLICT_RETRIES;
use super::Engine;
use crate::cluster::Notice;
use crate::error::{Error, Result};
use crate::model::{check_id, Actor, Message, Timestamp};
use crate::store::{ChangeKind, Update};

/// The most messages one export page holds.
pub const MAX_EXPORT_PAGE: usize = 1_000;
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// How many messages retention reads at a time.
const RETENTION_CHUNK: usize = 500;

/// What [`Engine::drop_course`] removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dropped {
    /// The course.
    pub course_id: String,
    /// How many messages it had (tombstones included).
    pub messages: u64,
    /// How many files were removed.
    pub files: u64,
}

impl Engine {
    /// Up to `limit` messages of a course's history from position `from` (0 is the oldest), in
    /// creation order, with `readBy` (the course's instructors and admins). An empty page is the
    /// end.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn export_page(
        &self,
        actor: &Actor,
        course_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let (_, role) = self.access(actor, course_id, Need::Read).await?;
        if !Self::moderates(actor, role) {
            return Err(Error::Forbidden(
                "only the course's instructors and admins can export it".into(),
            ));
        }
        if limit == 0 || limit > MAX_EXPORT_PAGE {
            return Err(Error::validation(format!(
                "limit must be 1 to {MAX_EXPORT_PAGE}"
            )));
        }
        let page = self.inner.store.messages_at(course_id, from, limit).await?;
        self.hydrate(course_id, page).await
    }

    /// Removes an archived course from the store with its files (admins). Its rooms are
    /// emptied everywhere; the audit log keeps the drop.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn drop_course(&self, actor: &Actor, course_id: &str) -> Result<Dropped> {
        self.alive()?;
        if !actor.is_admin() {
            return Err(Error::Forbidden("only admins can drop a course".into()));
        }
        check_id("courseId", course_id)?;
        let course = self
            .inner
            .store
            .course(course_id)
            .await?
            .ok_or(Error::NotFound("course"))?;
        if !course.archived {
            return Err(Error::validation(
                "archive the course (and export it) before dropping it",
            ));
        }
        let messages = self.inner.store.message_count(course_id).await?;
        let participants = self.inner.store.participants(course_id).await?;
        let files = self.inner.store.drop_course(course_id).await?;
        for file in &files {
            if let Err(e) = self.inner.blobs.delete(file).await {
                tracing::warn!(course_id, file, error = %e, "cannot remove a dropped course's file");
            }
        }
        for p in &participants {
            self.kick_here(course_id, &p.user_id);
            self.tell(Notice::Unenrolled {
                course_id: course_id.to_string(),
                user_id: p.user_id.clone(),
            });
        }
        // Its fan-out starts over with the course, if it is made again.
        self.inner.hubs.lock().remove(course_id);
        let detail = Some(format!("{messages} messages, {} files", files.len()));
        self.audit_action(actor, course_id, "drop-course", None, None, detail)
            .await?;
        Ok(Dropped {
            course_id: course_id.to_string(),
            messages,
            files: files.len() as u64,
        })
    }

    /// Starts the retention task when a retention period is set.
    pub(super) fn start_retention(&self) {
        let Some(days) = self.inner.config.retention_days else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            // Where each course's expired prefix ended at the last run.
            let mut done: HashMap<String, u64> = HashMap::new();
            let mut tick = tokio::time::interval(RETENTION_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let engine = Engine { inner };
                if engine.is_closed() {
                    return;
                }
                if let Err(e) = engine.apply_retention(days, &mut done).await {
                    tracing::warn!(error = %e, "retention run failed; next run in an hour");
                }
            }
        });
    }

    /// Runs a retention pass now (it also runs at start and hourly): deletes every message
    /// older than `Config::retention_days`; how many it deleted (0 without a retention period).
    pub async fn run_retention(&self) -> Result<u64> {
        self.alive()?;
        match self.inner.config.retention_days {
            Some(days) => self.apply_retention(days, &mut HashMap::new()).await,
            None => Ok(0),
        }
    }

    /// Deletes every message older than `days`, course by course, oldest first.
    pub(super) async fn apply_retention(
        &self,
        days: u32,
        done: &mut HashMap<String, u64>,
    ) -> Result<u64> {
        let cutoff = Timestamp::now().as_millis() - i64::from(days) * 86_400_000;
        let mut deleted = 0;
        for course in self.inner.store.course_ids().await? {
            let mut at = done.get(&course).copied().unwrap_or(0);
            'course: loop {
                let page = self
                    .inner
                    .store
                    .messages_at(&course, at, RETENTION_CHUNK)
                    .await?;
                if page.is_empty() {
                    break;
                }
                for m in page {
                    if m.created_at.as_millis() >= cutoff {
                        break 'course;
                    }
                    if !m.is_deleted && self.expire(m).await? {
                        deleted += 1;
                    }
                    at += 1;
                }
            }
            done.insert(course, at);
        }
        if deleted > 0 {
            tracing::info!(deleted, days, "retention deleted old messages");
        }
        Ok(deleted)
    }

    /// Deletes one expired message as the system (no rules but the store's); whether it was
    /// deleted here.
    async fn expire(&self, mut current: Message) -> Result<bool> {
        for _ in 0..CONFLICT_RETRIES {
            if current.is_deleted {
                return Ok(false);
            }
            let update = Update {
                kind: ChangeKind::Deleted,
                message: current.clone().into_tombstone(Timestamp::now()),
                expected_change_seq: current.change_seq,
                reaction: None,
            };
            let file = current.file.clone();
            if self.commit_update(update, file).await?.is_some() {
                return Ok(true);
            }
            match self.inner.store.message(&current.id).await? {
                Some(m) => current = m,
                None => return Ok(false),
            }
        }
        Err(Error::Conflict)
    }
}
