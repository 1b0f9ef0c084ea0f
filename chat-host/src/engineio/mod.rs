//! Engine.IO v4 on `/socket.io/`: sessions, HTTP long-polling, the WebSocket upgrade and
//! WebSocket from the start, and the heartbeat. It carries text messages for the layer above and
//! knows nothing of what they mean.
//!
//! Why a layer of its own (as engineioxide is under socketioxide): the transport rules (when a
//! long-poll answers, how an upgrade hands the queue over, when a silent client is dropped) are
//! one concern, and what the messages say is another, the layer above's ([`crate::socketio`]).
//! The two meet in `Handler`, one value per session, made from the handshake request by
//! whoever calls `EngineIo::handle`.
//!
//! - [`packet`]: Engine.IO packets and long-polling bodies, encode and decode (pure);
//! - `session`: a session's queues and transport state, and the registry of sessions by sid;
//! - `handler`: the trait the layer above implements, and the `Feed` it hands a WebSocket's
//!   writer to read by itself;
//! - `driver`: the task per session (the client's packets, the handler, the heartbeat);
//! - `heartbeat`: ping every `ping_interval`, no pong within `ping_timeout` ends the session;
//! - `polling`: the handshake and long-polling `GET`/`POST`;
//! - `websocket`: the WebSocket transport, upgrade probe included.
//!
//! Here: the request's routing by query (`EIO`, `transport`, `sid`) and Engine.IO's errors, with
//! codes 0 (transport unknown), 1 (session id unknown), 2 (bad handshake method), 3 (bad
//! request), 5 (unsupported protocol version), always `400 {"code","message"}` but for `413` (a
//! body over `maxPayload`, which also closes the session) and `503` (too many sessions).

mod driver;
mod handler;
mod heartbeat;
pub mod packet;
mod polling;
mod session;
mod websocket;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming as HttpBody;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use handler::{Ended, Feed, Handler, Next, Reason};
pub(crate) use session::{random_id, Session};

use packet::Handshake;
use session::{Registry, Transport};

use crate::response::Body;

/// The engine's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// Between the server's pings.
    pub(crate) ping_interval: Duration,
    /// How long a pong may take.
    pub(crate) ping_timeout: Duration,
    /// Largest body or message accepted, in bytes (`maxPayload`).
    pub(crate) max_payload: usize,
    /// Packets queued for a client before it counts as slow.
    pub(crate) queue: usize,
    /// How long a write may wait for a client that does not read.
    pub(crate) write_timeout: Duration,
    /// Sessions open at once, at most.
    pub(crate) max_sessions: usize,
}

/// The engine: its settings, its sessions, and where it spawns their tasks. Cheap to clone.
#[derive(Clone)]
pub(crate) struct EngineIo {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    registry: Registry,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl EngineIo {
    /// An engine with no session yet, whose tasks go to `tasks` and which closes every session
    /// when `shutdown` is cancelled.
    pub(crate) fn new(config: Config, tasks: TaskTracker, shutdown: CancellationToken) -> Self {
        EngineIo {
            inner: Arc::new(Inner {
                config,
                registry: Registry::default(),
                tasks,
                shutdown,
            }),
        }
    }

    /// The settings.
    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Opens a session on `transport` and starts its driver with `handler`; `None` when the
    /// engine is at its session cap.
    fn open<H: Handler>(&self, transport: Transport, handler: H) -> Option<Arc<Session>> {
        let cfg = self.config();
        let (session, inbound) =
            self.registry()
                .insert(transport, cfg.queue.max(2), cfg.max_sessions)?;
        let f = driver::drive(self.clone(), session.clone(), inbound, handler);
        self.tasks().spawn(f);
        Some(session)
    }

    /// The open packet of session `sid`.
    fn open_packet(&self, sid: &str, upgrades: &[&str]) -> String {
        let cfg = self.config();
        packet::encode_open(&Handshake {
            sid,
            upgrades,
            ping_interval_ms: cfg.ping_interval.as_millis() as u64,
            ping_timeout_ms: cfg.ping_timeout.as_millis() as u64,
            max_payload: cfg.max_payload,
        })
    }

    /// Answers a request to the engine's path (its CORS is the router's: [`crate::router`]).
    /// `new_handler` makes the handler of a session this request opens, from the request.
    pub(crate) async fn handle<H, F>(
        &self,
        req: Request<HttpBody>,
        new_handler: F,
    ) -> Response<Body>
    where
        H: Handler,
        F: FnOnce(&Request<HttpBody>) -> H + Send,
    {
        let mut eio_version = None;
        let mut transport = None;
        let mut sid = None;
        for (k, v) in crate::http::query_pairs(req.uri().query().unwrap_or("")) {
            match k.as_str() {
                "EIO" => eio_version = Some(v),
                "transport" => transport = Some(v),
                "sid" => sid = Some(v),
                _ => {}
            }
        }
        if eio_version.as_deref() != Some("4") {
            return eio_error(StatusCode::BAD_REQUEST, 5, "Unsupported protocol version");
        }
        match (transport.as_deref(), sid, req.method()) {
            (Some("polling"), None, &Method::GET) => {
                let handler = new_handler(&req);
                polling::handshake(self, handler)
            }
            (Some("polling"), None, _) => {
                eio_error(StatusCode::BAD_REQUEST, 2, "Bad handshake method")
            }
            (Some("polling"), Some(sid), m) if m == Method::GET || m == Method::POST => {
                let Some(session) = self.registry().get(&sid) else {
                    return unknown_sid();
                };
                if m == Method::GET {
                    polling::poll(self, &session).await
                } else {
                    polling::post(self, &session, req).await
                }
            }
            (Some("websocket"), sid, &Method::GET) => {
                websocket::websocket(self, req, sid, new_handler)
            }
            (Some("polling" | "websocket"), _, _) => bad_request(),
            _ => eio_error(StatusCode::BAD_REQUEST, 0, "Transport unknown"),
        }
    }
}

/// An Engine.IO error: `{"code","message"}` with a status.
fn eio_error(status: StatusCode, code: u8, message: &str) -> Response<Body> {
    let body = serde_json::json!({"code": code, "message": message}).to_string();
    let mut resp = Response::new(crate::response::full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// A `text/plain` answer: packets, or `ok`.
fn text(body: String) -> Response<Body> {
    let mut resp = Response::new(crate::response::full(Bytes::from(body)));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn unknown_sid() -> Response<Body> {
    eio_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown")
}

fn bad_request() -> Response<Body> {
    eio_error(StatusCode::BAD_REQUEST, 3, "Bad request")
}

fn too_many_sessions() -> Response<Body> {
    eio_error(StatusCode::SERVICE_UNAVAILABLE, 3, "Too many sessions")
}
