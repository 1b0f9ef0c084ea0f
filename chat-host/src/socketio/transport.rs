//! The HTTP side of `/socket.io/`: the Engine.IO handshake, long-polling `GET`/`POST`, the
//! WebSocket upgrade (probe `2probe` → `3probe`, then `5`), and WebSocket from the start.
//!
//! Query parameters: `EIO=4` (other versions get `400` code 5), `transport=polling|websocket`,
//! `sid` once the session exists. Errors are Engine.IO's: `400 {"code","message"}` with codes
//! 0 (transport unknown), 1 (session id unknown), 2 (bad handshake method), 3 (bad request),
//! 5 (unsupported protocol version); a body over `maxPayload` is a `413` and closes the session.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, WebSocket, WebSocketError};
use http_body_util::Full;
use hyper::body::Incoming as HttpBody;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::upgrade::Upgraded;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::packet::{self, eio, EioPacket, Handshake};
use super::session::{self, Incoming, Session, Transport};
use crate::frames::{join_writer, read_message, FrameWriter, Message, Outgoing, ReadError};
use crate::http::BodyError;
use crate::response::Body;
use crate::state::AppState;

/// How long a WebSocket probe may take to complete the upgrade.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

type Io = TokioIo<Upgraded>;

/// An Engine.IO error: `{"code","message"}` with a status.
fn eio_error(status: StatusCode, code: u8, message: &str) -> Response<Body> {
    let body = serde_json::json!({"code": code, "message": message}).to_string();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn text(body: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
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

/// Answers a request to `/socket.io/` (its CORS is the router's: [`crate::router`]).
pub(crate) async fn handle(state: AppState, req: Request<HttpBody>) -> Response<Body> {
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
    let token = crate::auth::request_token(req.headers(), req.uri().query(), true);
    match (transport.as_deref(), sid, req.method()) {
        (Some("polling"), None, &Method::GET) => handshake(&state, token),
        (Some("polling"), None, _) => eio_error(StatusCode::BAD_REQUEST, 2, "Bad handshake method"),
        (Some("polling"), Some(sid), m) if m == Method::GET || m == Method::POST => {
            let Some(session) = state.socketio().get(&sid) else {
                return unknown_sid();
            };
            if m == Method::GET {
                poll(&state, &session).await
            } else {
                post(&state, &session, req).await
            }
        }
        (Some("websocket"), sid, &Method::GET) => websocket(state, req, sid, token),
        (Some("polling" | "websocket"), _, _) => {
            eio_error(StatusCode::BAD_REQUEST, 3, "Bad request")
        }
        _ => eio_error(StatusCode::BAD_REQUEST, 0, "Transport unknown"),
    }
}

fn open_packet(state: &AppState, sid: &str, upgrades: &[&str]) -> String {
    let cfg = state.config();
    packet::encode_open(&Handshake {
        sid,
        upgrades,
        ping_interval_ms: cfg.ping_interval.as_millis() as u64,
        ping_timeout_ms: cfg.ping_timeout.as_millis() as u64,
        max_payload: cfg.sio_max_payload,
    })
}

fn too_many_sessions() -> Response<Body> {
    eio_error(StatusCode::SERVICE_UNAVAILABLE, 3, "Too many sessions")
}

/// `GET ?EIO=4&transport=polling`: a new session, answered with its open packet.
fn handshake(state: &AppState, token: Option<String>) -> Response<Body> {
    let Some(session) = session::open(state, Transport::Polling, token) else {
        return too_many_sessions();
    };
    text(open_packet(state, session.sid(), &["websocket"]))
}

/// `GET ?sid=…`: waits for packets (or a noop when an upgrade starts, or `1` when the session
/// closes) and answers with them.
async fn poll(state: &AppState, session: &Arc<Session>) -> Response<Body> {
    let kicked = session.kicked();
    tokio::pin!(kicked);
    kicked.as_mut().enable();
    match session.transport() {
        Transport::Polling => {}
        Transport::Upgrading => return text(eio::NOOP.into()),
        Transport::WebSocket => return eio_error(StatusCode::BAD_REQUEST, 3, "Bad request"),
    }
    let queue = session.outgoing();
    let Ok(mut rx) = queue.try_lock() else {
        // A second long-poll while one is pending: the client is confused; end this one.
        return eio_error(StatusCode::BAD_REQUEST, 3, "Overlapping poll");
    };
    let budget = state.config().sio_max_payload.max(1024);
    let mut packets: Vec<String> = Vec::new();
    // Control frames only exist on a WebSocket; a long-poll never sees one.
    loop {
        tokio::select! {
            biased;
            first = rx.recv() => match first {
                Some(Outgoing::Text(p)) => packets.push(p),
                Some(Outgoing::Control(_)) => continue,
                None => packets.push(eio::CLOSE.into()),
            },
            _ = session.closed().cancelled() => {
                while let Ok(p) = rx.try_recv() {
                    if let Outgoing::Text(p) = p {
                        packets.push(p);
                    }
                }
                packets.push(eio::CLOSE.into());
                return text(packet::encode_payload(&packets));
            }
            _ = &mut kicked => return text(eio::NOOP.into()),
        }
        break;
    }
    let mut size = packets[0].len();
    while size < budget {
        match rx.try_recv() {
            Ok(Outgoing::Text(p)) => {
                size += p.len() + 1;
                packets.push(p);
            }
            Ok(Outgoing::Control(_)) => {}
            Err(_) => break,
        }
    }
    text(packet::encode_payload(&packets))
}

/// `POST ?sid=…`: packets from the client, handed to the session's driver.
async fn post(state: &AppState, session: &Arc<Session>, req: Request<HttpBody>) -> Response<Body> {
    let max = state.config().sio_max_payload;
    let too_large = || {
        session.close();
        eio_error(StatusCode::PAYLOAD_TOO_LARGE, 3, "Payload too large")
    };
    let body = match crate::http::read_capped(req, max).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Failed(_)) => return eio_error(StatusCode::BAD_REQUEST, 3, "Bad request"),
    };
    let Ok(body) = std::str::from_utf8(&body) else {
        session.close();
        return eio_error(StatusCode::BAD_REQUEST, 3, "Bad request");
    };
    let packets = match packet::decode_payload(body) {
        Ok(p) => p,
        Err(_) => {
            session.close();
            return eio_error(StatusCode::BAD_REQUEST, 3, "Bad request");
        }
    };
    let packets: Vec<Incoming> = packets
        .into_iter()
        .filter_map(Incoming::from_packet)
        .collect();
    let closing = packets.iter().any(|p| matches!(p, Incoming::Close));
    if !session.deliver(packets).await {
        return unknown_sid();
    }
    if closing {
        // The sid is unknown from this answer on (the driver finishes the packets before it).
        session.mark_gone();
    }
    text("ok".into())
}

/// `GET ?transport=websocket[&sid=…]`: a WebSocket, new or upgrading a polling session.
fn websocket(
    state: AppState,
    mut req: Request<HttpBody>,
    sid: Option<String>,
    token: Option<String>,
) -> Response<Body> {
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return eio_error(StatusCode::BAD_REQUEST, 3, "Bad request");
    }
    let (session, probe) = match sid {
        Some(sid) => {
            let Some(session) = state.socketio().get(&sid) else {
                return unknown_sid();
            };
            if session.transport() != Transport::Polling {
                return eio_error(StatusCode::BAD_REQUEST, 3, "Bad request");
            }
            (session, true)
        }
        None => match session::open(&state, Transport::WebSocket, token) {
            Some(s) => (s, false),
            None => return too_many_sessions(),
        },
    };
    let (resp, fut) = match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok(pair) => pair,
        Err(_) => {
            if !probe {
                session.close();
            }
            return eio_error(StatusCode::BAD_REQUEST, 3, "Bad request");
        }
    };
    let task_state = state.clone();
    let f = async move {
        match fut.await {
            Ok(ws) => run(task_state, session, ws, probe).await,
            Err(e) => {
                tracing::debug!(error = %e, "Socket.IO WebSocket upgrade failed");
                if !probe {
                    session.close();
                }
            }
        }
    };
    state.tasks().spawn(f);
    resp.map(|_| Full::new(Bytes::new()))
}

type Writer = FrameWriter<tokio::io::WriteHalf<Io>>;

async fn write_text(wr: &mut Writer, text: &str, timeout: Duration) -> bool {
    wr.text(text.as_bytes());
    wr.flush(timeout).await.is_ok()
}

/// One WebSocket of a session: the upgrade probe (when `probe`) or the open packet, then the
/// reader loop here and the writer task.
async fn run(state: AppState, session: Arc<Session>, ws: WebSocket<Io>, probe: bool) {
    let cfg = state.config();
    let (mut rd, mut wr) = crate::frames::split(ws);
    rd.set_max_message_size(cfg.sio_max_payload.max(1024));
    if probe {
        // No control frames are answered during the probe (nothing to answer them with yet).
        rd.set_auto_close(false);
        rd.set_auto_pong(false);
        let mut ignore = |_| async { Ok::<(), std::convert::Infallible>(()) };
        // Boxed: the probe exchange happens once; the reader loop that follows should not carry
        // its state for the socket's life.
        let upgraded = Box::pin(tokio::time::timeout(UPGRADE_TIMEOUT, async {
            let first = read_message(&mut rd, &mut ignore, cfg.sio_max_payload, || {}).await;
            if !matches!(&first, Ok(Message::Text(t)) if t == b"2probe") {
                return false;
            }
            if !write_text(&mut wr, eio::PONG_PROBE, cfg.write_timeout).await {
                return false;
            }
            if !session.switch(Transport::Polling, Transport::Upgrading) {
                return false;
            }
            loop {
                match read_message(&mut rd, &mut ignore, cfg.sio_max_payload, || {}).await {
                    Ok(Message::Text(t)) => match std::str::from_utf8(&t).map(packet::decode_eio) {
                        Ok(Ok(EioPacket::Upgrade)) => return true,
                        Ok(Ok(EioPacket::Noop | EioPacket::Ping(_))) => continue,
                        _ => return false,
                    },
                    _ => return false,
                }
            }
        }));
        let ok = tokio::select! {
            r = upgraded => r.unwrap_or(false),
            _ = session.closed().cancelled() => false,
        };
        if !ok || !session.switch(Transport::Upgrading, Transport::WebSocket) {
            session.switch(Transport::Upgrading, Transport::Polling);
            tracing::debug!(sid = %session.sid(), "WebSocket upgrade abandoned");
            return;
        }
    } else if !write_text(
        &mut wr,
        &open_packet(&state, session.sid(), &[]),
        cfg.write_timeout,
    )
    .await
    {
        session.close();
        return;
    }
    rd.set_auto_close(true);
    rd.set_auto_pong(true);
    // Take the outgoing queue for good (a pending long-poll lets go of it on its noop).
    let queue = session.outgoing();
    let rx = tokio::select! {
        rx = queue.lock_owned() => rx,
        _ = session.closed().cancelled() => return,
    };
    let f = writer(
        wr,
        rx,
        session.clone(),
        state.shutdown().clone(),
        cfg.write_timeout,
    );
    let writer = tokio::spawn(f);
    let mut send_obligated = |frame: Frame<'static>| {
        let session = session.clone();
        async move {
            if session.control(Box::new(frame)).await {
                Ok(())
            } else {
                Err("socket writer is gone")
            }
        }
    };
    loop {
        let msg = tokio::select! {
            _ = session.closed().cancelled() => break,
            m = read_message(&mut rd, &mut send_obligated, cfg.sio_max_payload, || {}) => m,
        };
        let incoming = match msg {
            Ok(Message::Text(t)) => match String::from_utf8(t) {
                Ok(t) => match packet::decode_eio(&t) {
                    Ok(p) => Incoming::from_packet(p),
                    Err(_) => {
                        tracing::debug!(sid = %session.sid(), "bad Engine.IO packet");
                        break;
                    }
                },
                Err(_) => {
                    let e = WebSocketError::InvalidUTF8;
                    tracing::debug!(sid = %session.sid(), error = %e, "Socket.IO WebSocket read ended");
                    break;
                }
            },
            Ok(Message::Binary) => Some(Incoming::Binary),
            Ok(Message::Close) => break,
            Err(e) => {
                if matches!(e, ReadError::FrameTooLarge | ReadError::MessageTooLarge) {
                    session.try_control(Box::new(Frame::close(1009, b"message too large")));
                }
                tracing::debug!(sid = %session.sid(), error = %e, "Socket.IO WebSocket read ended");
                break;
            }
        };
        if let Some(p) = incoming {
            if !session.deliver(vec![p]).await {
                break;
            }
        }
    }
    session.close();
    join_writer(writer, cfg.write_timeout).await;
}

/// The only task writing to a session's WebSocket once it carries the session. Whatever is
/// queued at once goes out in one write.
async fn writer(
    mut wr: Writer,
    mut rx: tokio::sync::OwnedMutexGuard<mpsc::Receiver<Outgoing>>,
    session: Arc<Session>,
    shutdown: CancellationToken,
    write_timeout: Duration,
) {
    let closed = session.closed().clone();
    let closed = closed.cancelled();
    tokio::pin!(closed);
    loop {
        let mut last = tokio::select! {
            biased;
            _ = &mut closed => {
                // A close frame the reader queued just before closing goes first.
                wr.add_queued_controls(&mut rx);
                let code = if shutdown.is_cancelled() { 1001 } else { 1000 };
                wr.push(Frame::close(code, b""));
                true
            }
            out = rx.recv() => match out {
                Some(out) => wr.add(out),
                None => {
                    wr.push(Frame::close(1000, b""));
                    true
                }
            },
        };
        while !last && wr.has_room() {
            match rx.try_recv() {
                Ok(out) => last = wr.add(out),
                Err(_) => break,
            }
        }
        if let Err(e) = wr.flush(write_timeout).await {
            e.log("Socket.IO WebSocket");
            session.close();
            return;
        }
        if last {
            session.close();
            return;
        }
    }
}
