//! Threads: replies gathered under a root message.
//!
//! A reply is an ordinary message of the course with a `threadId` (sent with
//! [`SendMessage::thread_id`](super::SendMessage::thread_id)): it takes the next seq, is
//! announced as `new-message`, sits in the course's history like any message and is replayed on
//! resume like one, so a client that knows nothing of threads still sees every message. The
//! store indexes it under its root in the same write. A root's `replyCount` and `lastReplyAt`
//! are filled in whenever the root is read (history, events of its edits, the thread page),
//! never stored with it. After each reply, the room gets `thread-updated` with the new count.
//!
//! Rules: the root is a message of the same course that is not deleted; naming a reply as the
//! thread puts the message in that reply's thread (threads do not nest). `replyTo` quoting is
//! independent of threads and may be used inside one.

use super::courses::Need;
use super::Engine;
use crate::error::{Error, Result};
use crate::event::{Envelope, Event, ThreadUpdated};
use crate::model::{Actor, Message, ThreadPage};

impl Engine {
    /// A thread: its root and its replies created after seq `after`, oldest first, at most
    /// `limit` (the default page size when `None`, capped like history pages). Naming a reply
    /// answers its thread.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn thread(
        &self,
        actor: &Actor,
        message_id: &str,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<ThreadPage> {
        let (message, course, _) = self.message_for(actor, message_id, Need::Read).await?;
        let root = match &message.thread_id {
            Some(root) => self
                .inner
                .store
                .message(root)
                .await?
                .ok_or_else(|| Error::corrupt("a reply whose thread root is missing"))?,
            None => message,
        };
        let cfg = &self.inner.config;
        let limit = limit.unwrap_or(cfg.default_page_limit);
        if limit == 0 || limit > cfg.max_page_limit {
            return Err(Error::validation(format!(
                "limit must be 1 to {}",
                cfg.max_page_limit
            )));
        }
        let mut replies = self
            .inner
            .store
            .thread_replies(&root.id, after.unwrap_or(0), limit as usize + 1)
            .await?;
        let has_more = replies.len() > limit as usize;
        replies.truncate(limit as usize);
        let root = self.hydrate_one(root).await?;
        let replies = self.hydrate(&course.id, replies).await?;
        Ok(ThreadPage {
            root,
            replies,
            has_more,
        })
    }

    /// Fills `replyCount` and `lastReplyAt` of the thread roots among `messages`.
    pub(super) async fn fill_threads(
        &self,
        course_id: &str,
        messages: &mut [Message],
    ) -> Result<()> {
        let roots: Vec<String> = messages
            .iter()
            .filter(|m| m.thread_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        if roots.is_empty() {
            return Ok(());
        }
        let summaries = self.inner.store.thread_summaries(course_id, &roots).await?;
        for s in summaries {
            for m in messages.iter_mut().filter(|m| m.id == s.root_id) {
                m.reply_count = s.reply_count;
                m.last_reply_at = Some(s.last_reply_at);
            }
        }
        Ok(())
    }

    /// A reply to `root` was published: tells the room the thread's new count. A failure to
    /// read it is logged (the reply itself is stored and out).
    pub(super) async fn thread_updated(&self, course_id: &str, root: &str, reply_id: &str) {
        let roots = [root.to_string()];
        match self.inner.store.thread_summaries(course_id, &roots).await {
            Ok(summaries) => {
                for s in summaries {
                    self.broadcast(Envelope::new(Event::ThreadUpdated(ThreadUpdated {
                        course_id: course_id.to_string(),
                        thread_id: s.root_id,
                        reply_count: s.reply_count,
                        last_reply_at: s.last_reply_at,
                        last_reply_id: reply_id.to_string(),
                    })));
                }
            }
            Err(e) => tracing::warn!(course_id, root, error = %e, "cannot count a thread"),
        }
    }
}
