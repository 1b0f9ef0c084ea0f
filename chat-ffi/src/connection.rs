//! Event listeners: a task per connection or subscription reads `chat_core::Events` and hands
//! each event to the foreign listener on a blocking thread, in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chat_core as core;
use parking_lot::{Mutex, ReentrantMutex};
use tokio::task::JoinHandle;

use crate::engine::ChatEngine;
use crate::error::{ChatError, ListenerError};
use crate::event::Event;
use crate::types::{Actor, User};

/// Receives the events of a connection or subscription, implemented in the foreign language.
///
/// Called on a Rust thread (not the thread that connected), one event at a time, in order. An
/// error raised here is logged and the next event is delivered. After `close()` of the
/// connection, subscription or engine returns, it is not called again.
#[uniffi::export(with_foreign)]
pub trait EventListener: Send + Sync {
    /// One event of the contract.
    fn on_event(&self, event: Event) -> Result<(), ListenerError>;
}

/// The delivery task of one connection or subscription.
pub(crate) struct Pump {
    /// Held while the listener runs, so `stop` can wait for a call in flight. Re-entrant: a
    /// listener may close its own connection.
    gate: ReentrantMutex<()>,
    stopped: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
    /// The connection to close when the engine closes (none for subscriptions).
    pub(crate) conn: Mutex<Option<core::Connection>>,
}

impl Pump {
    pub(crate) fn start(
        handle: &tokio::runtime::Handle,
        mut events: core::Events,
        listener: Arc<dyn EventListener>,
        conn: Option<core::Connection>,
    ) -> Arc<Pump> {
        let pump = Arc::new(Pump {
            gate: ReentrantMutex::new(()),
            stopped: AtomicBool::new(false),
            task: Mutex::new(None),
            conn: Mutex::new(conn),
        });
        let worker = pump.clone();
        let task = handle.spawn(async move {
            while let Some(envelope) = events.recv().await {
                if worker.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let event = Event::from(envelope.event());
                let (listener, gate) = (listener.clone(), worker.clone());
                let delivered = tokio::task::spawn_blocking(move || {
                    let _held = gate.gate.lock();
                    if gate.stopped.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    listener.on_event(event)
                })
                .await;
                match delivered {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "event listener failed"),
                    Err(e) => tracing::error!(error = %e, "event listener call failed"),
                }
            }
        });
        *pump.task.lock() = Some(task);
        pump
    }

    /// Stops delivery: returns once no listener call is in flight and none will start. Gives
    /// back the connection to close, the first time.
    pub(crate) fn stop(&self) -> Option<core::Connection> {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
        drop(self.gate.lock());
        self.conn.lock().take()
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// An open connection of a user, delivering the events of the courses it joins to its listener.
/// The user is online while one of their connections is open. Close it with `close()` (dropping
/// the last reference closes it too).
#[derive(uniffi::Object)]
pub struct ChatConnection {
    engine: Arc<ChatEngine>,
    id: u64,
    actor: Actor,
    /// Holds the core connection until closed.
    pump: Arc<Pump>,
}

impl ChatConnection {
    pub(crate) fn new(engine: Arc<ChatEngine>, conn: &core::Connection, pump: Arc<Pump>) -> Self {
        ChatConnection {
            engine,
            id: conn.id(),
            actor: conn.actor().clone().into(),
            pump,
        }
    }

    fn conn(&self) -> Result<core::Connection, ChatError> {
        self.pump
            .conn
            .lock()
            .clone()
            .ok_or_else(|| ChatError::internal("connection is closed"))
    }
}

#[uniffi::export]
impl ChatConnection {
    /// This connection's id (unique in the engine).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Who this connection acts for.
    pub fn actor(&self) -> Actor {
        self.actor.clone()
    }

    /// The courses this connection has joined, sorted.
    pub fn joined(&self) -> Vec<String> {
        self.conn().map(|c| c.joined()).unwrap_or_default()
    }

    /// Whether `close()` was called (on the connection or the engine).
    pub fn is_closed(&self) -> bool {
        self.pump.is_stopped()
    }

    /// Joins a course room (`join-course`): its events start flowing to the listener. With
    /// `since_seq`, every message change after that seq is replayed first, in order, with no gap
    /// and no duplicate. The listener receives `online-users`; the room gets `user-joined` on the
    /// user's first connection. Returns the online users.
    #[uniffi::method(default(since_seq = None))]
    pub fn join(&self, course_id: String, since_seq: Option<u64>) -> Result<Vec<User>, ChatError> {
        let conn = self.conn()?;
        let users = self.engine.run(conn.join(&course_id, since_seq))?;
        Ok(users.into_iter().map(Into::into).collect())
    }

    /// Leaves a course room (`leave-course`).
    pub fn leave(&self, course_id: String) -> Result<(), ChatError> {
        let conn = self.conn()?;
        self.engine.run(conn.leave(&course_id))
    }

    /// Starts or stops a typing indicator (`typing`); it expires after the typing TTL.
    pub fn typing(&self, course_id: String, is_typing: bool) -> Result<(), ChatError> {
        let conn = self.conn()?;
        self.engine.run(conn.typing(&course_id, is_typing))
    }

    /// Closes the connection: the listener is not called again once this returns, the
    /// connection leaves its rooms, presence is updated. Idempotent.
    pub fn close(&self) {
        // `None` when already closed (by this method or by the engine's `close`).
        if let Some(conn) = self.pump.stop() {
            let _ = self.engine.run(async move {
                conn.close().await;
                Ok::<(), ChatError>(())
            });
        }
    }
}

impl Drop for ChatConnection {
    fn drop(&mut self) {
        // Dropping the core connection closes it in the background.
        drop(self.pump.stop());
    }
}

/// Follows one course without being present in it (no presence, no `user-joined`), delivering
/// its events to a listener: for bots, bridges and LMS hooks. Close it with `close()`.
#[derive(uniffi::Object)]
pub struct ChatSubscription {
    course_id: String,
    pump: Arc<Pump>,
}

impl ChatSubscription {
    pub(crate) fn new(course_id: String, pump: Arc<Pump>) -> Self {
        ChatSubscription { course_id, pump }
    }
}

#[uniffi::export]
impl ChatSubscription {
    /// The course followed.
    pub fn course_id(&self) -> String {
        self.course_id.clone()
    }

    /// Whether `close()` was called (on the subscription or the engine).
    pub fn is_closed(&self) -> bool {
        self.pump.is_stopped()
    }

    /// Stops the subscription: the listener is not called again once this returns. Idempotent.
    pub fn close(&self) {
        self.pump.stop();
    }
}

impl Drop for ChatSubscription {
    fn drop(&mut self) {
        self.pump.stop();
    }
}
