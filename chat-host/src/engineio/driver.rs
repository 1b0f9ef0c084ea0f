//! The task that drives one session from open to close.
//!
//! Why one task per session: the client's messages, what the layer above sends by itself and the
//! heartbeat all go through one place, so a client's messages are handled in the order sent and
//! the [`Handler`] is never called twice at once. It waits on the session closing (a transport
//! gave up), the server shutting down, the client's packets (ping, pong, close, and messages for
//! the handler), [`Handler::ready`], and the [`Heartbeat`]'s timer, with no preference among them:
//! a client that always has a message in flight (a closed-loop sender) must still get its room's
//! events, which a fixed order with its packets first starved until it paused (seconds, with a
//! store whose writes take milliseconds). When it ends, the session is closed, leaves the
//! registry, and the handler is told.

use std::sync::Arc;

use tokio::time::Instant;

use super::handler::{Handler, Reason};
use super::heartbeat::{Beat, Heartbeat};
use super::packet::eio;
use super::session::{Incoming, Session};
use super::EngineIo;

/// Drives one session until it closes.
pub(crate) async fn drive<H: Handler>(
    engine: EngineIo,
    session: Arc<Session>,
    inbound: flume::Receiver<Vec<Incoming>>,
    mut handler: H,
) {
    let cfg = engine.config();
    let mut heartbeat = Heartbeat::new(cfg.ping_interval, cfg.ping_timeout, Instant::now());
    // Long-lived futures: one registration for the session's life, not one per packet.
    let closed = session.closed().clone();
    let shutdown = engine.shutdown().clone();
    let closed = closed.cancelled();
    let shutting_down = shutdown.cancelled();
    let sleep = tokio::time::sleep_until(heartbeat.deadline());
    tokio::pin!(closed, shutting_down, sleep);
    let end = 'session: loop {
        if session.writer_attached() {
            if let Some(feed) = handler.take_feed() {
                if !session.hand_over(Box::new(feed), cfg.write_timeout).await {
                    break Reason::Closed;
                }
            }
        }
        let timer = heartbeat.deadline();
        if sleep.deadline() != timer {
            sleep.as_mut().reset(timer);
        }
        // Unbiased: tokio polls the branches in a random order, so none starves another.
        tokio::select! {
            _ = &mut closed => break Reason::Closed,
            _ = &mut shutting_down => break Reason::Shutdown,
            batch = inbound.recv_async() => {
                let Ok(batch) = batch else { break Reason::Closed };
                for packet in batch {
                    match packet {
                        Incoming::Close => break 'session Reason::ClientClose,
                        Incoming::Ping(data) => {
                            session.push(format!("3{data}"));
                        }
                        Incoming::Pong => heartbeat.on_pong(Instant::now()),
                        Incoming::Binary => handler.on_binary(&session),
                        Incoming::Message(text) => {
                            // Boxed: what the handler does with a message (a call into the
                            // engine) is a large future that an idle session should not carry.
                            if let Err(e) = Box::pin(handler.on_message(&session, text)).await {
                                break 'session Reason::Handler(e);
                            }
                        }
                    }
                }
            }
            ready = handler.ready() => {
                if let Err(e) = handler.on_ready(&session, ready).await {
                    break Reason::Handler(e);
                }
            }
            _ = &mut sleep => match heartbeat.on_timer(Instant::now()) {
                Beat::TimedOut => break Reason::PingTimeout,
                Beat::Ping => {
                    session.push(eio::PING.to_string());
                }
                Beat::Wait => {}
            },
        }
    };
    tracing::debug!(sid = %session.sid(), reason = ?end, "Engine.IO session closed");
    session.close();
    engine.registry().remove(session.sid());
    // Boxed: it runs once, at the end; the driver should not carry its state all along.
    Box::pin(handler.on_close(end)).await;
}
