//! Engine.IO's WebSocket transport: a session's WebSocket, new (`transport=websocket` without a
//! sid: the open packet comes first) or upgrading a polling session (`2probe` → `3probe`, then
//! `5`, within 10 s).
//!
//! Why its own module: it owns the socket's two halves. The reader (this task) decodes packets
//! into the session's incoming queue; the writer task takes the session's outgoing queue for good
//! once the upgrade is done (a pending long-poll lets go of it on its noop), so nothing queued
//! during the switch is lost or sent twice. From then on the driver hands the writer the
//! handler's [`Feed`] through that queue, and the writer reads the feed itself: a room's events
//! go from the engine to the socket through this one task. Frames in and out go through
//! [`crate::frames`], shared with `/ws`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, WebSocket};
use hyper::body::Incoming as HttpBody;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::handler::{Feed, Next};
use super::packet::{self, eio, EioPacket};
use super::session::{Incoming, Session, Transport};
use super::{bad_request, too_many_sessions, unknown_sid, EngineIo, Handler};
use crate::frames::{join_writer, read_message, FrameWriter, Message, Outgoing, ReadError};
use crate::response::Body;

/// How long a WebSocket probe may take to complete the upgrade.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

type Io = TokioIo<Upgraded>;

/// `GET ?transport=websocket[&sid=…]`: a WebSocket, new or upgrading a polling session.
pub(super) fn websocket<H, F>(
    engine: &EngineIo,
    mut req: Request<HttpBody>,
    sid: Option<String>,
    new_handler: F,
) -> Response<Body>
where
    H: Handler,
    F: FnOnce(&Request<HttpBody>) -> H,
{
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return bad_request();
    }
    let (session, probe) = match sid {
        Some(sid) => {
            let Some(session) = engine.registry().get(&sid) else {
                return unknown_sid();
            };
            if session.transport() != Transport::Polling {
                return bad_request();
            }
            (session, true)
        }
        None => match engine.open(Transport::WebSocket, new_handler(&req)) {
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
            return bad_request();
        }
    };
    let task_engine = engine.clone();
    let f = async move {
        match fut.await {
            Ok(ws) => run::<H::Feed>(task_engine, session, ws, probe).await,
            Err(e) => {
                tracing::debug!(error = %e, "Engine.IO WebSocket upgrade failed");
                if !probe {
                    session.close();
                }
            }
        }
    };
    engine.tasks().spawn(f);
    resp.map(|_| crate::response::full(Bytes::new()))
}

type Writer = FrameWriter<tokio::io::WriteHalf<Io>>;

async fn write_text(wr: &mut Writer, text: &str, timeout: Duration) -> bool {
    wr.text(text.as_bytes());
    wr.flush(timeout).await.is_ok()
}

/// One WebSocket of a session: the upgrade probe (when `probe`) or the open packet, then the
/// reader loop here and the writer task.
async fn run<F: Feed>(engine: EngineIo, session: Arc<Session>, ws: WebSocket<Io>, probe: bool) {
    let cfg = engine.config();
    let (mut rd, mut wr) = crate::frames::split(ws);
    rd.set_max_message_size(cfg.max_payload.max(1024));
    if probe {
        // No control frames are answered during the probe (nothing to answer them with yet).
        rd.set_auto_close(false);
        rd.set_auto_pong(false);
        let mut ignore = |_| async { Ok::<(), std::convert::Infallible>(()) };
        // Boxed: the probe exchange happens once; the reader loop that follows should not carry
        // its state for the socket's life.
        let upgraded = Box::pin(tokio::time::timeout(UPGRADE_TIMEOUT, async {
            let first = read_message(&mut rd, &mut ignore, cfg.max_payload, || {}).await;
            if !matches!(&first, Ok(Message::Text(t)) if t == "2probe") {
                return false;
            }
            if !write_text(&mut wr, eio::PONG_PROBE, cfg.write_timeout).await {
                return false;
            }
            if !session.switch(Transport::Polling, Transport::Upgrading) {
                return false;
            }
            loop {
                match read_message(&mut rd, &mut ignore, cfg.max_payload, || {}).await {
                    Ok(Message::Text(t)) => match packet::decode_eio(&t) {
                        Ok(EioPacket::Upgrade) => return true,
                        Ok(EioPacket::Noop | EioPacket::Ping(_)) => continue,
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
        &engine.open_packet(session.sid(), &[]),
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
    session.attach_writer();
    let f = writer::<F>(
        wr,
        rx,
        session.clone(),
        engine.shutdown().clone(),
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
            m = read_message(&mut rd, &mut send_obligated, cfg.max_payload, || {}) => m,
        };
        let incoming = match msg {
            Ok(Message::Text(t)) => match packet::decode_eio(&t) {
                Ok(p) => Incoming::from_packet(p),
                Err(_) => {
                    tracing::debug!(sid = %session.sid(), "bad Engine.IO packet");
                    break;
                }
            },
            Ok(Message::Binary) => Some(Incoming::Binary),
            Ok(Message::Close) => break,
            Err(e) => {
                if matches!(e, ReadError::FrameTooLarge | ReadError::MessageTooLarge) {
                    session.try_control(Box::new(Frame::close(1009, b"message too large")));
                }
                tracing::debug!(sid = %session.sid(), error = %e, "Engine.IO WebSocket read ended");
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

/// The only task writing to a session's WebSocket once it carries the session: the session's
/// queue, and the handler's [`Feed`] once the driver hands it over through that queue (so what
/// the driver forwarded before goes first). Whatever is ready at once goes out in one write.
async fn writer<F: Feed>(
    mut wr: Writer,
    rx: tokio::sync::OwnedMutexGuard<flume::Receiver<Outgoing>>,
    session: Arc<Session>,
    shutdown: CancellationToken,
    write_timeout: Duration,
) {
    let closed = session.closed().clone();
    let closed = closed.cancelled();
    tokio::pin!(closed);
    let mut feed: Option<F> = None;
    loop {
        let mut last = tokio::select! {
            biased;
            _ = &mut closed => {
                // A close frame the reader queued just before closing goes first.
                wr.add_queued_controls(&rx);
                let code = if shutdown.is_cancelled() { 1001 } else { 1000 };
                wr.push(Frame::close(code, b""));
                true
            }
            out = rx.recv_async() => match out {
                Ok(out) => add(&mut wr, &mut feed, out),
                Err(_) => {
                    wr.push(Frame::close(1000, b""));
                    true
                }
            },
            next = next_of(&mut feed) => {
                match next {
                    Next::Message(item) => wr.text_with(|buf| F::write(&item, buf)),
                    Next::Done => feed = None,
                    Next::Ended(why) => {
                        tracing::debug!(sid = %session.sid(), reason = why.0, "Engine.IO feed ended");
                        feed = None;
                        session.close();
                    }
                }
                false
            }
        };
        while !last && wr.has_room() {
            if let Ok(out) = rx.try_recv() {
                last = add(&mut wr, &mut feed, out);
            } else if let Some(item) = feed.as_mut().and_then(F::try_next) {
                wr.text_with(|buf| F::write(&item, buf));
            } else {
                break;
            }
        }
        if let Err(e) = wr.flush(write_timeout).await {
            e.log("Engine.IO WebSocket");
            session.close();
            return;
        }
        if last {
            session.close();
            return;
        }
    }
}

/// Adds a queued item to the batch, or takes the feed it hands over; true after a close frame.
fn add<F: Feed>(wr: &mut Writer, feed: &mut Option<F>, out: Outgoing) -> bool {
    match out {
        Outgoing::Handover(handed) => {
            match handed.downcast::<F>() {
                Ok(handed) => *feed = Some(*handed),
                Err(_) => tracing::error!("Engine.IO WebSocket handed a feed of another type"),
            }
            false
        }
        out => wr.add(out),
    }
}

/// The feed's next message; never ready without a feed.
async fn next_of<F: Feed>(feed: &mut Option<F>) -> Next<F::Item> {
    match feed {
        Some(feed) => feed.next().await,
        None => std::future::pending().await,
    }
}
