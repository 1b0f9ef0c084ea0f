//! What every request and socket shares: the engine, the token checker, the settings, the
//! shutdown signal, the count of open sockets per user (`/ws` and Socket.IO together), and the
//! Socket.IO sessions.

use std::collections::HashMap;
use std::sync::Arc;

use chat_core::Engine;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::config::Config;

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
    sockets: parking_lot::Mutex<HashMap<String, usize>>,
    socketio: crate::socketio::Registry,
}

impl AppState {
    pub(crate) fn new(engine: Engine, auth: Authenticator, config: Config) -> Self {
        AppState {
            inner: Arc::new(Inner {
                engine,
                auth,
                config,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                sockets: parking_lot::Mutex::new(HashMap::new()),
                socketio: crate::socketio::Registry::default(),
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
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

    /// The Socket.IO sessions.
    pub(crate) fn socketio(&self) -> &crate::socketio::Registry {
        &self.inner.socketio
    }

    /// Takes one of the user's socket slots, or `None` when they have all in use.
    pub(crate) fn take_socket_slot(&self, user: &str) -> Option<SocketSlot> {
        let mut map = self.inner.sockets.lock();
        let n = map.entry(user.to_string()).or_insert(0);
        if *n >= self.inner.config.max_connections_per_user {
            return None;
        }
        *n += 1;
        Some(SocketSlot {
            state: self.clone(),
            user: user.to_string(),
        })
    }
}

/// A socket's place in its user's count; released on drop.
pub(crate) struct SocketSlot {
    state: AppState,
    user: String,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut map = self.state.inner.sockets.lock();
        if let Some(n) = map.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}
