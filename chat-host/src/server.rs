//! The server's life: open the engine, bind, accept, and shut down gracefully.
//!
//! [`Server::start`] returns once the port is bound (tests bind `127.0.0.1:0` and read
//! [`Server::local_addr`]). Every HTTP connection and every WebSocket is a task on one
//! [`TaskTracker`](tokio_util::task::TaskTracker). [`Server::shutdown`] stops accepting, asks
//! HTTP connections to finish their current request, tells sockets to close (`1001`), waits for
//! all of them (up to `shutdown_grace`), and then flushes the store with
//! [`Engine::close`](chat_core::Engine::close).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_core::Engine;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::auth::Authenticator;
use crate::config::{Config, StoreSetting};
use crate::error::HostError;
use crate::state::AppState;

/// A running server.
pub struct Server {
    addr: SocketAddr,
    admin_token: Option<String>,
    state: AppState,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Checks the engine's limits, opens the engine, binds the address and starts accepting.
    /// Must run inside a Tokio runtime.
    pub async fn start(config: Config) -> Result<Server, HostError> {
        crate::config::check_engine(&config.engine)?;
        crate::config::check_webhooks(&config.webhooks, config.webhook_secret.as_deref())?;
        let keys = Authenticator::load(
            &config.jwt,
            config.data_dir.as_deref(),
            config.jwt_leeway_secs,
        )?;
        let (engine, vapid) = open_engine(&config).await?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| HostError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| HostError::Bind {
            addr: config.addr,
            source,
        })?;
        let state = AppState::new(engine, keys.authenticator, config, vapid);
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        tracing::info!(%addr, "chat-host listening");
        Ok(Server {
            addr,
            admin_token: keys.admin_token,
            state,
            accept,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A ready admin token, when the server generated its JWT secret.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// The engine the server runs (for embedding programs).
    pub fn engine(&self) -> &Engine {
        self.state.engine()
    }

    /// Stops accepting, finishes in-flight requests, closes sockets, flushes the store.
    pub async fn shutdown(self) -> Result<(), HostError> {
        tracing::info!("shutting down");
        self.state.shutdown().cancel();
        if let Err(e) = self.accept.await {
            tracing::error!(error = %e, "accept loop failed");
        }
        let tasks = self.state.tasks();
        tasks.close();
        let grace = self.state.config().shutdown_grace;
        if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!(
                open = tasks.len(),
                "shutdown grace over, dropping what is left"
            );
        }
        self.state.engine().close().await?;
        tracing::info!("store flushed, bye");
        Ok(())
    }
}

/// Runs a server until `shutdown` completes, then shuts it down gracefully.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), HostError> {
    let server = Server::start(config).await?;
    shutdown.await;
    server.shutdown().await
}

async fn accept_loop(listener: TcpListener, state: AppState) {
    loop {
        let accepted = tokio::select! {
            _ = state.shutdown().cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                state.tasks().spawn(serve_connection(stream, state.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, state: AppState) {
    let svc_state = state.clone();
    let service = service_fn(move |req| {
        let state = svc_state.clone();
        async move { Ok::<_, Infallible>(crate::router::handle(state, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = state.shutdown().cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// The engine the settings describe: its store (the data folder's sled, or a shared database),
/// its files (the data folder's `files/`, which several nodes must share), and its place in a
/// deployment (a bus to the other nodes, shared presence and rate limits).
async fn open_engine(config: &Config) -> Result<(Engine, Arc<crate::push::Vapid>), HostError> {
    let mut builder = Engine::builder().config(config.engine.clone());
    if let (false, Some(secret)) = (config.webhooks.is_empty(), &config.webhook_secret) {
        let hooks = crate::webhook::Webhooks::start(&config.webhooks, secret)?;
        builder = builder.plugin(Arc::new(hooks));
    }
    if let Some(dir) = &config.data_dir {
        std::fs::create_dir_all(dir).map_err(|source| HostError::DataDir {
            path: dir.clone(),
            source,
        })?;
    }
    // After the data folder exists: the VAPID key may be kept in it.
    let vapid = Arc::new(crate::push::Vapid::load(
        config.vapid_private_key.as_deref(),
        config.data_dir.as_deref(),
        &config.vapid_subject,
    )?);
    let engine_cell = Arc::new(std::sync::OnceLock::new());
    let push = crate::push::WebPush::start(vapid.clone(), engine_cell.clone())?;
    builder = builder.plugin(Arc::new(push));
    let mut epoch = None;
    match (&config.store, &config.data_dir) {
        (StoreSetting::Sled, Some(dir)) => builder = builder.data_dir(dir),
        (StoreSetting::Sled, None) => {}
        (StoreSetting::Postgres(url), dir) => {
            let store = chat_core::store::postgres::PgStore::builder(url)
                .schema(&config.store_schema)
                .connect()
                .await?;
            epoch = Some(chat_core::Store::epoch(&store).await?);
            builder = builder.store(Arc::new(store));
            if let Some(dir) = dir {
                let files = chat_core::blob::fs::FsBlobs::open(dir.join("files"))?;
                builder = builder.blobs(Arc::new(files));
            }
        }
    }
    let node_id = config
        .node_id
        .clone()
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    if let Some(url) = &config.bus {
        // The store's epoch names the deployment, so deployments sharing a Redis never meet.
        let options = chat_core::cluster::redis::Options {
            prefix: format!("chat:{}", epoch.as_deref().unwrap_or("single")),
            ..Default::default()
        };
        let cluster = chat_core::cluster::redis::connect(url, &node_id, options).await?;
        tracing::info!(node = %node_id, bus = %url, "joined the deployment");
        builder = builder.cluster(cluster);
    } else if config.node_id.is_some() {
        let mut single = chat_core::Cluster::single();
        single.node_id = node_id;
        builder = builder.cluster(single);
    }
    let engine = builder.open().await?;
    let _ = engine_cell.set(engine.downgrade());
    Ok((engine, vapid))
}
