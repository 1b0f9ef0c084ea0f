//! Writes: sends, edits, deletions and read receipts. Each checks its rules, writes through the
//! store (which allocates the seq and returns once durable), and only then publishes its event.

use std::sync::Arc;

use bytes::Bytes;

use super::catch_up::LOCAL_GAP_GRACE;
use super::courses::Need;
use super::rooms::typing_event;
use super::uncancellable::uncancellable;
use super::Engine;
use crate::blob;
use crate::cluster::Notice;
use crate::error::{Error, Result, Source};
use crate::event::{Envelope, Event};
use crate::hub::{Hub, Origin};
use crate::model::{check_id, Actor, FileInfo, Message, MessageType, ReadReceipt, Timestamp};
use crate::plugin::{Draft, DraftKind, Verdict};
use crate::store::{ChangeKind, Inserted, ReadAdvance, StoredFile, Update};
use crate::stream::change_event;

/// How often an edit or delete is retried when it races another change of the same message.
pub(super) const CONFLICT_RETRIES: usize = 8;

/// A new message to send.
#[derive(Debug, Clone, Default)]
pub struct SendMessage {
    /// The course (room).
    pub course_id: String,
    /// The text (trimmed; may be empty when a file is attached).
    pub message: String,
    /// The type; derived from the file when absent.
    pub message_type: Option<MessageType>,
    /// The id of a message of the same course this one answers (a quote).
    pub reply_to: Option<String>,
    /// The id of the root of the thread this message is a reply in (a message of the same
    /// course; naming a reply puts the message in that reply's thread).
    pub thread_id: Option<String>,
    /// The client's idempotency key.
    pub client_id: Option<String>,
    /// A file to upload with the message.
    pub attachment: Option<Attachment>,
}

/// A file sent with a message.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The name the client gave (display only).
    pub name: String,
    /// The bytes.
    pub bytes: Bytes,
}

impl Engine {
    fn clean_text(&self, text: &str) -> Result<String> {
        let text = text.trim();
        let max = self.inner.config.max_message_chars;
        if text.chars().count() > max {
            return Err(Error::validation(format!(
                "message is longer than {max} characters"
            )));
        }
        Ok(text.to_string())
    }

    async fn moderate(&self, mut draft: Draft) -> Result<String> {
        for plugin in self.inner.plugins.list() {
            match plugin.before_send(&draft).await {
                Ok(Verdict::Accept) => {}
                Ok(Verdict::Reject(reason)) => return Err(Error::Rejected(reason)),
                Ok(Verdict::Rewrite(text)) => draft.text = self.clean_text(&text)?,
                Err(e) => {
                    tracing::error!(plugin = %plugin.name(), error = %e, "before_send failed");
                    return Err(Error::Plugin {
                        name: plugin.name(),
                        source: Source::new(e),
                    });
                }
            }
        }
        Ok(draft.text)
    }

    /// Sends a message. Returns it once durable (or the original, for a repeated `client_id`).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, course = %req.course_id), err(level = "debug"))]
    pub async fn send(&self, actor: &Actor, req: SendMessage) -> Result<Message> {
        self.alive()?;
        self.ensure_profile(actor).await?;
        let (course, _) = self.access(actor, &req.course_id, Need::Write).await?;
        if let Some(cid) = &req.client_id {
            check_id("clientId", cid)?;
        }
        let text = self.clean_text(&req.message)?;
        if text.is_empty() && req.attachment.is_none() {
            return Err(Error::validation("a message needs text or a file"));
        }
        let upload = req
            .attachment
            .as_ref()
            .map(|a| self.check_upload(a))
            .transpose()?;
        let message_type = resolve_type(actor, req.message_type, upload.as_ref().map(|u| &u.1))?;
        let reply_to = match &req.reply_to {
            Some(id) => {
                check_id("replyTo", id)?;
                match self.inner.store.message(id).await? {
                    Some(m) if m.course_id == course.id => Some(m.preview()),
                    _ => {
                        return Err(Error::validation(
                            "replyTo must name a message of this course",
                        ))
                    }
                }
            }
            None => None,
        };
        let thread_id = match &req.thread_id {
            Some(id) => {
                check_id("threadId", id)?;
                match self.inner.store.message(id).await? {
                    Some(m) if m.course_id == course.id && !m.is_deleted => {
                        Some(m.thread_id.unwrap_or(m.id))
                    }
                    _ => {
                        return Err(Error::validation(
                            "threadId must name a message of this course",
                        ))
                    }
                }
            }
            None => None,
        };
        self.inner
            .cluster
            .rate_limits
            .take(&self.inner.send_rule, &actor.id, &course.id)
            .await?;
        let text = self
            .moderate(Draft {
                kind: DraftKind::New,
                course_id: course.id.clone(),
                message_id: None,
                sender: actor.clone(),
                text,
                message_type,
                file_mime_type: upload.as_ref().map(|u| u.1.clone()),
            })
            .await?;
        if text.is_empty() && upload.is_none() {
            return Err(Error::validation("a message needs text or a file"));
        }
        let mentions = self.mentions_in(&course.id, &actor.id, &text).await?;
        let now = Timestamp::now();
        let engine = self.clone();
        let sender = actor.clone();
        let name = req.attachment.as_ref().map(|a| a.name.clone());
        // From the file's upload to the message's publish (or the file's removal), one step that
        // the caller cannot cut short.
        let inserted = uncancellable(async move {
            let file = match (upload, name) {
                (Some((bytes, mime)), Some(name)) => Some(
                    engine
                        .store_file(&sender, &course.id, &name, bytes, mime, now)
                        .await?,
                ),
                _ => None,
            };
            let message = Message {
                id: ulid::Ulid::new().to_string(),
                course_id: course.id.clone(),
                seq: 0,
                change_seq: 0,
                sender: sender.sender(),
                message: text,
                message_type,
                file: file.clone(),
                reply_to,
                read_by: Vec::new(),
                is_edited: false,
                edited_at: None,
                is_deleted: false,
                deleted_at: None,
                client_id: req.client_id,
                created_at: now,
                updated_at: now,
                reactions: Vec::new(),
                pinned: false,
                pinned_at: None,
                pinned_by: None,
                thread_id,
                reply_count: 0,
                last_reply_at: None,
                mentions,
            };
            let hub = engine.ready_hub(&course.id).await;
            let outcome = match hub {
                Ok(hub) => match engine.inner.store.insert_message(message).await {
                    Ok(Inserted::New(m)) => {
                        if engine.inner.typing.stop(&course.id, &sender.id) {
                            engine.broadcast(typing_event(&course.id, &sender, false));
                        }
                        let env = Envelope::new(Event::NewMessage(m.clone()));
                        engine.publish_change(&hub, m.seq, env);
                        if let Some(root) = &m.thread_id {
                            engine.thread_updated(&m.course_id, root, &m.id).await;
                        }
                        return Ok(Inserted::New(m));
                    }
                    Ok(duplicate) => Ok(duplicate),
                    Err(e) => {
                        engine.after_failed_write(&hub, &course.id).await;
                        Err(e)
                    }
                },
                Err(e) => Err(e),
            };
            // Nothing refers to the file: a repeated clientId, or a failed write.
            engine.drop_blob(file.as_ref()).await;
            outcome
        })
        .await;
        match inserted? {
            Inserted::New(m) => Ok(m),
            Inserted::Duplicate(m) => self.hydrate_one(m).await,
        }
    }

    fn check_upload(&self, att: &Attachment) -> Result<(Bytes, String)> {
        let limit = self.inner.config.max_file_bytes;
        if att.bytes.len() as u64 > limit {
            return Err(Error::PayloadTooLarge { limit });
        }
        if att.bytes.is_empty() {
            return Err(Error::validation("the file is empty"));
        }
        let mime = blob::sniff(&att.bytes);
        if !self
            .inner
            .config
            .allowed_mime_types
            .iter()
            .any(|m| m == &mime)
        {
            return Err(Error::UnsupportedMediaType(mime));
        }
        Ok((att.bytes.clone(), mime))
    }

    async fn store_file(
        &self,
        actor: &Actor,
        course_id: &str,
        name: &str,
        bytes: Bytes,
        mime: String,
        now: Timestamp,
    ) -> Result<FileInfo> {
        let meta = StoredFile {
            id: ulid::Ulid::new().to_string(),
            course_id: course_id.to_string(),
            uploader_id: actor.id.clone(),
            name: blob::clean_name(name),
            size: bytes.len() as u64,
            duration_ms: blob::duration_ms(&mime, &bytes),
            mime_type: mime,
            created_at: now,
        };
        self.inner.blobs.put(&meta.id, bytes).await?;
        if let Err(e) = self.inner.store.put_file(&meta).await {
            let _ = self.inner.blobs.delete(&meta.id).await;
            return Err(e);
        }
        Ok(self.file_info(&meta))
    }

    pub(super) fn file_info(&self, meta: &StoredFile) -> FileInfo {
        FileInfo {
            id: meta.id.clone(),
            url: format!("{}{}", self.inner.config.file_url_prefix, meta.id),
            name: meta.name.clone(),
            size: meta.size,
            mime_type: meta.mime_type.clone(),
            duration_ms: meta.duration_ms,
        }
    }

    async fn drop_blob(&self, file: Option<&FileInfo>) {
        if let Some(f) = file {
            if let Err(e) = self.inner.blobs.delete(&f.id).await {
                tracing::warn!(file = %f.id, error = %e, "could not remove a file");
            }
        }
    }

    /// Publishes this node's durable change `seq` to the room, and tells the other nodes. A
    /// gap below it (an earlier write not published yet) is filled from the store if its writer
    /// does not publish it soon.
    fn publish_change(&self, hub: &Arc<Hub>, seq: u64, env: Arc<Envelope>) {
        if hub.publish_seq(seq, env, Origin::Local) {
            self.fill(hub.clone(), LOCAL_GAP_GRACE);
        }
        self.tell(Notice::Change {
            course_id: hub.course_id().to_string(),
            seq,
        });
    }

    /// After a write failed, a seq it took may never be published by it: whatever the store
    /// holds up to its head is published from there instead.
    async fn after_failed_write(&self, hub: &Arc<Hub>, course_id: &str) {
        match self.inner.store.last_seq(course_id).await {
            Ok(last) => {
                if hub.notify(last) {
                    self.fill(hub.clone(), LOCAL_GAP_GRACE);
                }
            }
            Err(e) => tracing::error!(course = course_id, error = %e, "cannot read last seq"),
        }
    }

    /// Edits a message's text (its sender only).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn edit(&self, actor: &Actor, message_id: &str, text: &str) -> Result<Message> {
        self.alive()?;
        for _ in 0..CONFLICT_RETRIES {
            let (current, course, _) = self.message_for(actor, message_id, Need::Write).await?;
            if current.is_deleted {
                return Err(Error::NotFound("message"));
            }
            if current.sender.id != actor.id {
                return Err(Error::Forbidden(
                    "only the sender can edit a message".into(),
                ));
            }
            let text = self.clean_text(text)?;
            if text.is_empty() && current.file.is_none() {
                return Err(Error::validation("a message needs text or a file"));
            }
            let text = self
                .moderate(Draft {
                    kind: DraftKind::Edit,
                    course_id: course.id.clone(),
                    message_id: Some(current.id.clone()),
                    sender: actor.clone(),
                    text,
                    message_type: current.message_type,
                    file_mime_type: current.file.as_ref().map(|f| f.mime_type.clone()),
                })
                .await?;
            if text.is_empty() && current.file.is_none() {
                return Err(Error::validation("a message needs text or a file"));
            }
            let now = Timestamp::now();
            let mut next = current.clone();
            next.mentions = self.mentions_in(&course.id, &actor.id, &text).await?;
            next.message = text;
            next.is_edited = true;
            next.edited_at = Some(now);
            next.updated_at = now;
            let update = Update {
                kind: ChangeKind::Edited,
                message: next,
                expected_change_seq: current.change_seq,
                reaction: None,
            };
            if let Some(m) = self.commit_update(update, None).await? {
                return Ok(m);
            }
        }
        Err(Error::Conflict)
    }

    /// Soft-deletes a message (its sender, the course's instructors, admins). Returns the
    /// tombstone; deleting a tombstone again returns it unchanged.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn delete(&self, actor: &Actor, message_id: &str) -> Result<Message> {
        self.alive()?;
        for _ in 0..CONFLICT_RETRIES {
            let (current, _, role) = self.message_for(actor, message_id, Need::Change).await?;
            let own = current.sender.id == actor.id;
            if !own && !Self::moderates(actor, role) {
                return Err(Error::Forbidden(
                    "only the sender, the course's instructors and admins can delete a message"
                        .into(),
                ));
            }
            if current.is_deleted {
                return self.hydrate_one(current).await;
            }
            let tombstone = current.clone().into_tombstone(Timestamp::now());
            let update = Update {
                kind: ChangeKind::Deleted,
                message: tombstone,
                expected_change_seq: current.change_seq,
                reaction: None,
            };
            if let Some(m) = self.commit_update(update, current.file).await? {
                if !own {
                    let author = Some(m.sender.id.as_str());
                    self.audit_action(
                        actor,
                        &m.course_id,
                        "delete-message",
                        author,
                        Some(&m.id),
                        None,
                    )
                    .await?;
                }
                return Ok(m);
            }
        }
        Err(Error::Conflict)
    }

    /// Writes an edit or deletion and publishes it, then removes `unused_file` (a deleted
    /// message's attachment); `None` when the message changed meanwhile (the caller re-reads and
    /// re-checks).
    pub(super) async fn commit_update(
        &self,
        update: Update,
        unused_file: Option<FileInfo>,
    ) -> Result<Option<Message>> {
        let engine = self.clone();
        uncancellable(async move {
            let course = update.message.course_id.clone();
            let kind = update.kind;
            let reaction = update.reaction.clone();
            let hub = engine.ready_hub(&course).await?;
            let stored = match engine.inner.store.update_message(update).await {
                Ok(m) => m,
                Err(Error::Conflict) => return Ok(None),
                Err(e) => {
                    engine.after_failed_write(&hub, &course).await;
                    return Err(e);
                }
            };
            // The change is durable and its seq taken: it is published whatever happens next.
            let message = match engine.hydrate_one(stored.clone()).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(course, error = %e, "cannot fill readBy; publishing as stored");
                    stored
                }
            };
            let env = Envelope::new(change_event(kind, message.clone(), reaction));
            engine.publish_change(&hub, message.change_seq, env);
            engine.drop_blob(unused_file.as_ref()).await;
            Ok(Some(message))
        })
        .await
    }

    /// Marks a message, and every earlier message of its course, read for the caller.
    /// Idempotent: marking again returns the first `readAt` and sends no event.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %actor.id, message = message_id), err(level = "debug"))]
    pub async fn mark_read(&self, actor: &Actor, message_id: &str) -> Result<ReadReceipt> {
        self.alive()?;
        self.ensure_profile(actor).await?;
        let (message, course, _) = self.message_for(actor, message_id, Need::Read).await?;
        let now = Timestamp::now();
        let engine = self.clone();
        let reader = actor.id.clone();
        // A stored receipt is announced even if the caller stops waiting.
        uncancellable(async move {
            let advance = engine
                .inner
                .store
                .advance_read(&course.id, &reader, message.seq, now)
                .await?;
            let (read_at, advanced) = match advance {
                ReadAdvance::Advanced(mark) => (mark.at, true),
                ReadAdvance::Already(mark) => (mark.at, false),
            };
            let receipt = ReadReceipt {
                message_id: message.id,
                course_id: course.id.clone(),
                user_id: reader,
                read_at,
            };
            if advanced {
                engine.broadcast(Envelope::new(Event::MessageRead(receipt.clone())));
            }
            Ok(receipt)
        })
        .await
    }
}

/// The message type of a send: given or derived from the file, and consistent with it.
fn resolve_type(
    actor: &Actor,
    given: Option<MessageType>,
    mime: Option<&String>,
) -> Result<MessageType> {
    let derived = mime.map(|m| {
        if m.starts_with("image/") {
            MessageType::Image
        } else if m.starts_with("audio/") {
            MessageType::Audio
        } else {
            MessageType::File
        }
    });
    match (given, derived) {
        (Some(MessageType::System), _) if !actor.is_admin() => Err(Error::Forbidden(
            "only admins can send system messages".into(),
        )),
        (Some(MessageType::System), None) => Ok(MessageType::System),
        (None | Some(MessageType::Text), None) => Ok(MessageType::Text),
        (Some(t), None) => Err(Error::validation(format!(
            "messageType {} needs a file",
            t.as_str()
        ))),
        (None | Some(MessageType::Text), Some(d)) => Ok(d),
        (Some(MessageType::File), Some(_)) => Ok(MessageType::File),
        (Some(t), Some(d)) if t == d => Ok(t),
        (Some(t), Some(_)) => Err(Error::validation(format!(
            "the file is not of messageType {}",
            t.as_str()
        ))),
    }
}
