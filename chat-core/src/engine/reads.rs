//! Reads: single messages, history pages, replays of the change log (what resume and lag
//! catch-up deliver), files, and filling `readBy` and reply previews from the store.

use bytes::Bytes;

use super::courses::Need;
use super::Engine;
use crate::blob;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::history::{self, HistoryPage, HistoryQuery, Pagination};
use crate::model::{Actor, FileInfo, Message, ReadBy, Timestamp};
use crate::store::{ChangeKind, ReactionChange};
use crate::stream::change_event;
use std::collections::{BTreeMap, HashMap};

impl Engine {
    /// A message (participants and admins).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn message(&self, actor: &Actor, message_id: &str) -> Result<Message> {
        let (message, _, _) = self.message_for(actor, message_id, Need::Read).await?;
        self.hydrate_one(message).await
    }

    /// How many messages of the course the caller has not read.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn unread_count(&self, actor: &Actor, course_id: &str) -> Result<u64> {
        self.access(actor, course_id, Need::Read).await?;
        let store = &self.inner.store;
        let seen = store
            .read_watermark(course_id, &actor.id)
            .await?
            .map_or(0, |m| m.seq);
        let total = store.message_count(course_id).await?;
        let read = store
            .position_of_seq(course_id, seen.saturating_add(1))
            .await?;
        Ok(total.saturating_sub(read))
    }

    /// A page of history (participants and admins).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn history(
        &self,
        actor: &Actor,
        course_id: &str,
        query: HistoryQuery,
    ) -> Result<HistoryPage> {
        self.access(actor, course_id, Need::Read).await?;
        let store = &self.inner.store;
        let total = store.message_count(course_id).await?;
        let before = match query.before {
            Some(seq) => Some(store.position_of_seq(course_id, seq).await?),
            None => None,
        };
        let after = match query.after {
            Some(seq) => Some(
                store
                    .position_of_seq(course_id, seq.saturating_add(1))
                    .await?,
            ),
            None => None,
        };
        let cfg = &self.inner.config;
        let slice = history::resolve(
            &query,
            cfg.default_page_limit,
            cfg.max_page_limit,
            total,
            before,
            after,
        )?;
        let count = (slice.end - slice.start) as usize;
        let messages = if count == 0 {
            Vec::new()
        } else {
            store.messages_at(course_id, slice.start, count).await?
        };
        let messages = self.hydrate(course_id, messages).await?;
        Ok(HistoryPage {
            messages,
            pagination: Pagination {
                page: slice.page,
                limit: slice.limit,
                total,
                total_pages: total.div_ceil(u64::from(slice.limit)),
                has_more: slice.has_more,
            },
        })
    }

    /// Every message change of the course after `since_seq`, in order, at most `limit`: what a
    /// client that saw `since_seq` missed. Only durable, published changes are returned.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = course_id), err(level = "debug"))]
    pub async fn changes_since(
        &self,
        actor: &Actor,
        course_id: &str,
        since_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.access(actor, course_id, Need::Read).await?;
        let hub = self.ready_hub(course_id).await?;
        self.replay(course_id, since_seq, hub.published(), limit.min(10_000))
            .await
    }

    /// Log entries after `after` up to `upto` as events, read from the store (replays go
    /// through [`replay`](Self::replay), which shares these reads).
    pub(super) async fn read_changes(
        &self,
        course_id: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let changes = self
            .inner
            .store
            .changes(course_id, after, upto, limit)
            .await?;
        let kinds: Vec<(ChangeKind, Option<ReactionChange>)> = changes
            .iter()
            .map(|c| (c.kind, c.reaction.clone()))
            .collect();
        let messages = self
            .hydrate(course_id, changes.into_iter().map(|c| c.message).collect())
            .await?;
        Ok(kinds
            .into_iter()
            .zip(messages)
            .map(|((k, r), m)| change_event(k, m, r))
            .collect())
    }

    pub(super) async fn hydrate_one(&self, message: Message) -> Result<Message> {
        let course = message.course_id.clone();
        let mut v = self.hydrate(&course, vec![message]).await?;
        v.pop().ok_or(Error::NotFound("message"))
    }

    /// Fills `readBy` from the read watermarks and refreshes reply previews.
    pub(super) async fn hydrate(
        &self,
        course_id: &str,
        mut messages: Vec<Message>,
    ) -> Result<Vec<Message>> {
        self.fill_read_by(course_id, &mut messages).await?;
        self.fill_links(course_id, &mut messages).await?;
        Ok(messages)
    }

    /// Fills `readBy` from the read watermarks of the span the messages cover (one read, so
    /// meant for a page: messages close together).
    async fn fill_read_by(&self, course_id: &str, messages: &mut [Message]) -> Result<()> {
        let Some(lo) = messages.iter().map(|m| m.seq).min() else {
            return Ok(());
        };
        let hi = messages.iter().map(|m| m.seq).max().unwrap_or(lo);
        let marks = self.inner.store.read_marks(course_id, lo, hi).await?;
        let mut by_user: BTreeMap<&str, Vec<(u64, Timestamp)>> = BTreeMap::new();
        for m in &marks {
            by_user
                .entry(m.user_id.as_str())
                .or_default()
                .push((m.seq, m.at));
        }
        for message in messages.iter_mut() {
            let mut read_by: Vec<ReadBy> = by_user
                .iter()
                .filter(|(user, _)| **user != message.sender.id)
                .filter_map(|(user, marks)| {
                    let i = marks.partition_point(|(seq, _)| *seq < message.seq);
                    marks.get(i).map(|(_, at)| ReadBy {
                        user_id: user.to_string(),
                        read_at: *at,
                    })
                })
                .collect();
            read_by.sort_by(|a, b| a.read_at.cmp(&b.read_at).then(a.user_id.cmp(&b.user_id)));
            message.read_by = read_by;
        }
        Ok(())
    }

    /// Refreshes reply previews and fills thread counts.
    pub(super) async fn fill_links(&self, course_id: &str, messages: &mut [Message]) -> Result<()> {
        let mut previews: HashMap<String, Option<Message>> = HashMap::new();
        for message in messages.iter_mut() {
            if let Some(reply) = &message.reply_to {
                if !previews.contains_key(&reply.id) {
                    let target = self.inner.store.message(&reply.id).await?;
                    previews.insert(reply.id.clone(), target);
                }
                if let Some(Some(target)) = previews.get(&reply.id) {
                    message.reply_to = Some(target.preview());
                }
            }
        }
        self.fill_threads(course_id, messages).await
    }

    // ---- files -------------------------------------------------------------------------------

    /// A file's metadata and bytes (participants of its course and admins).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, file = file_id), err(level = "debug"))]
    pub async fn file(&self, actor: &Actor, file_id: &str) -> Result<(FileInfo, Bytes)> {
        blob::check_blob_id(file_id)?;
        let meta = self
            .inner
            .store
            .file(file_id)
            .await?
            .ok_or(Error::NotFound("file"))?;
        self.access(actor, &meta.course_id, Need::Read).await?;
        let bytes = self
            .inner
            .blobs
            .get(file_id)
            .await?
            .ok_or(Error::NotFound("file"))?;
        Ok((self.file_info(&meta), bytes))
    }
}
