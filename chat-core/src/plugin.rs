//! Plugins: the embedder's hooks into the message path.
//!
//! [`Plugin::before_send`] runs before a new or edited message is stored and may accept it,
//! reject it with a reason (the caller gets [`Error::Rejected`](crate::Error::Rejected), code
//! `FORBIDDEN`) or rewrite its text (moderation, profanity filters). [`Plugin::after_event`] sees
//! every event once, after it is durable, on a task of its own with a bounded queue, so a slow
//! webhook never slows a send: when a plugin's queue is full, events are dropped for that plugin
//! and counted in a warning.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::event::Envelope;
use crate::model::{Actor, MessageType};

/// Whether a draft is a new message or an edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftKind {
    /// A send.
    New,
    /// An edit of `message_id`.
    Edit,
}

/// A message about to be stored, as a plugin sees it.
#[derive(Debug, Clone)]
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

/// A plugin's decision on a draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Store it as it is.
    Accept,
    /// Refuse it; the reason is shown to the sender.
    Reject(String),
    /// Store it with this text instead.
    Rewrite(String),
}

/// A plugin failed; the send is refused with an internal error (fail closed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin failed: {0}")]
pub struct PluginError(pub String);

/// A hook the embedder registers on the engine.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// A name for logs.
    fn name(&self) -> String {
        "plugin".to_string()
    }

    /// Called before a new or edited message is stored.
    async fn before_send(&self, draft: &Draft) -> Result<Verdict, PluginError> {
        let _ = draft;
        Ok(Verdict::Accept)
    }

    /// Called after every event, once, in order, once it is durable.
    async fn after_event(&self, event: &crate::Event) -> Result<(), PluginError> {
        let _ = event;
        Ok(())
    }
}

/// The registered plugins and their event queues.
pub(crate) struct Plugins {
    list: Vec<Arc<dyn Plugin>>,
    queues: Vec<mpsc::Sender<Arc<Envelope>>>,
    tasks: parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    dropped: AtomicU64,
    stopped: AtomicBool,
}

impl Plugins {
    /// Starts one delivery task per plugin. Needs a tokio runtime when there are plugins.
    pub(crate) fn start(list: Vec<Arc<dyn Plugin>>, queue: usize) -> Self {
        let mut tasks = Vec::new();
        let queues = list
            .iter()
            .map(|plugin| {
                let (tx, mut rx) = mpsc::channel::<Arc<Envelope>>(queue.max(1));
                let plugin = plugin.clone();
                tasks.push(tokio::spawn(async move {
                    while let Some(env) = rx.recv().await {
                        if let Err(e) = plugin.after_event(env.event()).await {
                            tracing::warn!(plugin = %plugin.name(), error = %e, "after_event failed");
                        }
                    }
                }));
                tx
            })
            .collect();
        Plugins {
            list,
            queues,
            tasks: parking_lot::Mutex::new(tasks),
            dropped: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    pub(crate) fn list(&self) -> &[Arc<dyn Plugin>] {
        if self.stopped.load(Ordering::SeqCst) {
            return &[];
        }
        &self.list
    }

    /// Stops every plugin's delivery task: no plugin is called after this returns (a call under
    /// way is cancelled at its next await).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }

    /// Hands an event to every plugin without waiting.
    pub(crate) fn notify(&self, env: &Arc<Envelope>) {
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        for (tx, plugin) in self.queues.iter().zip(&self.list) {
            if tx.try_send(env.clone()).is_err() {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(plugin = %plugin.name(), dropped = n, "plugin queue full, event dropped");
            }
        }
    }
}
