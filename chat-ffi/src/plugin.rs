//! Plugins implemented in the foreign language, adapted to `chat_core::Plugin`.

use std::sync::Arc;

use chat_core as core;

use crate::error::PluginError;
use crate::event::Event;
use crate::types::{Actor, MessageType};

/// Whether a draft is a new message or an edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DraftKind {
    /// A send.
    New,
    /// An edit of `message_id`.
    Edit,
}

/// A message about to be stored, as a plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Draft {
    /// New message or edit.
    pub kind: DraftKind,
    /// The course.
    pub course_id: String,
    /// For an edit, the message edited.
    pub message_id: Option<String>,
    /// The author.
    pub sender: Actor,
    /// The text (already trimmed and length-checked).
    pub text: String,
    /// The message type.
    pub message_type: MessageType,
    /// The sniffed content type of an attached file, if any.
    pub file_mime_type: Option<String>,
}

impl From<&core::Draft> for Draft {
    fn from(d: &core::Draft) -> Self {
        Draft {
            kind: match d.kind {
                core::DraftKind::New => DraftKind::New,
                core::DraftKind::Edit => DraftKind::Edit,
            },
            course_id: d.course_id.clone(),
            message_id: d.message_id.clone(),
            sender: d.sender.clone().into(),
            text: d.text.clone(),
            message_type: d.message_type.into(),
            file_mime_type: d.file_mime_type.clone(),
        }
    }
}

/// A plugin's decision on a draft.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Verdict {
    /// Store it as it is.
    Accept,
    /// Refuse it; the sender gets `ChatError.Forbidden` with this reason.
    Reject { reason: String },
    /// Store it with this text instead (checked again against the limits).
    Rewrite { text: String },
}

impl From<Verdict> for core::Verdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Accept => core::Verdict::Accept,
            Verdict::Reject { reason } => core::Verdict::Reject(reason),
            Verdict::Rewrite { text } => core::Verdict::Rewrite(text),
        }
    }
}

/// A plugin implemented in the foreign language, registered when the engine opens.
///
/// Both methods are called on a Rust thread of the engine's runtime (never on the caller's
/// thread for `after_event`). `before_send` runs before every new or edited message is stored, in
/// registration order; `after_event` sees every event once, in order, after it is durable.
#[uniffi::export(with_foreign)]
pub trait MessagePlugin: Send + Sync {
    /// Accept, reject or rewrite a message about to be stored. Raising refuses the message with
    /// `ChatError.Internal` (fail closed).
    fn before_send(&self, draft: Draft) -> Result<Verdict, PluginError>;

    /// Called after every event (a notification hook: webhooks, analytics, …).
    fn after_event(&self, event: Event) -> Result<(), PluginError>;
}

/// Runs a foreign plugin as a `chat_core::Plugin`: each call goes to a blocking thread so a slow
/// foreign method never stalls the runtime's workers.
pub(crate) struct PluginAdapter {
    pub(crate) index: usize,
    pub(crate) plugin: Arc<dyn MessagePlugin>,
}

#[async_trait::async_trait]
impl core::Plugin for PluginAdapter {
    fn name(&self) -> String {
        format!("foreign-plugin-{}", self.index)
    }

    async fn before_send(&self, draft: &core::Draft) -> Result<core::Verdict, core::PluginError> {
        let plugin = self.plugin.clone();
        let draft = Draft::from(draft);
        match tokio::task::spawn_blocking(move || plugin.before_send(draft)).await {
            Ok(Ok(verdict)) => Ok(verdict.into()),
            Ok(Err(e)) => Err(core::PluginError(e.to_string())),
            Err(e) => Err(core::PluginError(format!("plugin call failed: {e}"))),
        }
    }

    async fn after_event(&self, event: &core::Event) -> Result<(), core::PluginError> {
        let plugin = self.plugin.clone();
        let event = Event::from(event);
        match tokio::task::spawn_blocking(move || plugin.after_event(event)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(core::PluginError(e.to_string())),
            Err(e) => Err(core::PluginError(format!("plugin call failed: {e}"))),
        }
    }
}
