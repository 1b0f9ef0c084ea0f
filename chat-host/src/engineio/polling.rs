//! Engine.IO's HTTP long-polling transport: the handshake `GET`, then `GET ?sid=…` waits for
//! the client's packets and `POST ?sid=…` brings the client's.
//!
//! Why its own module: a long-poll's rules are the subtle part of the engine. One `GET` at a time
//! holds the session's outgoing queue (a second one is refused); it answers with whatever is
//! queued (up to `maxPayload`), with a noop when a WebSocket upgrade starts (so the client lets
//! go), or with `1` when the session closes. A `POST` over `maxPayload`, not UTF-8 or not
//! packets closes the session.

use std::sync::Arc;

use hyper::body::Incoming as HttpBody;
use hyper::{Request, Response, StatusCode};

use super::packet::{self, eio};
use super::session::{Incoming, Session, Transport};
use super::{bad_request, eio_error, text, too_many_sessions, unknown_sid, EngineIo, Handler};
use crate::frames::Outgoing;
use crate::http::BodyError;
use crate::response::Body;

/// `GET ?EIO=4&transport=polling`: a new session, answered with its open packet.
pub(super) fn handshake<H: Handler>(engine: &EngineIo, handler: H) -> Response<Body> {
    let Some(session) = engine.open(Transport::Polling, handler) else {
        return too_many_sessions();
    };
    text(engine.open_packet(session.sid(), &["websocket"]))
}

/// `GET ?sid=…`: waits for packets (or a noop when an upgrade starts, or `1` when the session
/// closes) and answers with them.
pub(super) async fn poll(engine: &EngineIo, session: &Arc<Session>) -> Response<Body> {
    let kicked = session.kicked();
    tokio::pin!(kicked);
    kicked.as_mut().enable();
    match session.transport() {
        Transport::Polling => {}
        Transport::Upgrading => return text(eio::NOOP.into()),
        Transport::WebSocket => return bad_request(),
    }
    let queue = session.outgoing();
    let Ok(rx) = queue.try_lock() else {
        // A second long-poll while one is pending: the client is confused; end this one.
        return eio_error(StatusCode::BAD_REQUEST, 3, "Overlapping poll");
    };
    let budget = engine.config().max_payload.max(1024);
    let mut packets: Vec<String> = Vec::new();
    // Control frames and handovers only exist on a WebSocket; a long-poll never sees one.
    loop {
        tokio::select! {
            biased;
            first = rx.recv_async() => match first {
                Ok(Outgoing::Text(p)) => packets.push(p),
                Ok(Outgoing::Control(_) | Outgoing::Handover(_)) => continue,
                Err(_) => packets.push(eio::CLOSE.into()),
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
            Ok(Outgoing::Control(_) | Outgoing::Handover(_)) => {}
            Err(_) => break,
        }
    }
    text(packet::encode_payload(&packets))
}

/// `POST ?sid=…`: packets from the client, handed to the session's driver.
pub(super) async fn post(
    engine: &EngineIo,
    session: &Arc<Session>,
    req: Request<HttpBody>,
) -> Response<Body> {
    let max = engine.config().max_payload;
    let too_large = || {
        session.close();
        eio_error(StatusCode::PAYLOAD_TOO_LARGE, 3, "Payload too large")
    };
    let body = match crate::http::read_capped(req, max).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Failed(_)) => return bad_request(),
    };
    let Ok(body) = std::str::from_utf8(&body) else {
        session.close();
        return bad_request();
    };
    let packets = match packet::decode_payload(body) {
        Ok(p) => p,
        Err(_) => {
            session.close();
            return bad_request();
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
