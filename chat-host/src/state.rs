//! What every request and socket shares: the engine, the token checker, the settings, the
//! shutdown signal, the count of open sockets per user (`/ws` and Socket.IO together), and the
//! Engine.IO sessions Socket.IO runs on.

use std::sync::Arc;

use chat_core::Engine;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::engineio::{self, EngineIo};
use crate::slots::{ConnectionSlots, Slot, TooManyConnections};

/// Shared by every connection. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    auth: Authenticator,
    config: Config,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    slots: ConnectionSlots,
    engineio: EngineIo,
    vapid: Arc<crate::push::Vapid>,
}

impl AppState {
    pub(crate) fn new(
        engine: Engine,
        auth: Authenticator,
        config: Config,
        vapid: Arc<crate::push::Vapid>,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let engineio = EngineIo::new(
            engineio::Config {
                ping_interval: config.ping_interval,
                ping_timeout: config.ping_timeout,
                max_payload: config.sio_max_payload,
                queue: config.send_queue,
                write_timeout: config.write_timeout,
                max_sessions: config.sio_max_sessions,
            },
            tasks.clone(),
            shutdown.clone(),
        );
        AppState {
            inner: Arc::new(Inner {
                engine,
                auth,
                slots: ConnectionSlots::new(config.max_connections_per_user),
                config,
                shutdown,
                tasks,
                engineio,
                vapid,
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The Web Push identity.
    pub(crate) fn vapid(&self) -> &crate::push::Vapid {
        &self.inner.vapid
    }

    /// The token checker.
    pub fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Cancelled when the server starts shutting down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Connections and sockets in flight, awaited on shutdown.
    pub fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    /// The Engine.IO sessions under Socket.IO.
    pub(crate) fn engineio(&self) -> &EngineIo {
        &self.inner.engineio
    }

    /// Takes one of the user's socket slots ([`crate::slots`]).
    pub(crate) fn take_socket_slot(&self, user: &str) -> Result<Slot, TooManyConnections> {
        self.inner.slots.take(user)
    }
}
