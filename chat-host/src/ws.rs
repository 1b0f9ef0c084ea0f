//! The native event protocol on `GET /ws`, over fastwebsockets.
//!
//! One socket is two small tasks around one [`chat_core::Connection`]:
//! - the **reader** (this module's loop) turns text frames into [`crate::dispatch`] calls, one at a
//!   time so a client's events apply in the order sent, and queues the acknowledgement;
//! - the **writer** is the only one writing: the connection's [`chat_core::Events`] straight from
//!   the engine, the reader's acks, pings every `ping_interval`, the close frame on idle timeout or
//!   shutdown. Whatever is ready at once goes out in one write ([`crate::frames`]). A write that
//!   takes longer than `write_timeout` ends the socket; meanwhile the engine's per-subscriber queue
//!   and store catch-up absorb the room's events, so a slow reader never stalls its rooms.
//!
//! Every frame from the client counts as life (pongs included); a socket silent for
//! `idle_timeout` is closed, and closing the connection updates presence. Bad frames get an
//! `error` event (or a failed ack) and the socket goes on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_core::{Actor, Connection, Error, ErrorCode, Events};
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::upgrade::Upgraded;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::dispatch::{dispatch, error_json, Answer};
use crate::frames::{join_writer, read_message, FrameWriter, Message, Outgoing, ReadError};
use crate::response::{self, Body};
use crate::slots::{Slot, TooManyConnections};
use crate::state::AppState;

/// Close codes the server sends.
mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
}

/// Answers an upgrade request: authenticates (header or `?token=`), takes one of the user's socket
/// slots, and hands the socket to a tracked task.
pub fn upgrade(state: AppState, mut req: Request<Incoming>) -> Response<Body> {
    let actor = match state
        .auth()
        .from_request(req.headers(), req.uri().query(), true)
    {
        Ok(a) => a,
        Err(e) => return response::error(&e),
    };
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return response::fail(ErrorCode::Validation, "expected a WebSocket upgrade");
    }
    let slot = match state.take_socket_slot(&actor.id) {
        Ok(slot) => slot,
        Err(TooManyConnections) => {
            let mut resp = response::fail(TooManyConnections::CODE, TooManyConnections::MESSAGE);
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("5"));
            return resp;
        }
    };
    let (resp, fut) = match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok(pair) => pair,
        Err(e) => {
            return response::fail(
                ErrorCode::Validation,
                &format!("bad WebSocket upgrade: {e}"),
            )
        }
    };
    let task_state = state.clone();
    state.tasks().spawn(async move {
        match fut.await {
            Ok(ws) => run(task_state, actor, ws, slot).await,
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    resp.map(|_| crate::response::full(Bytes::new()))
}

/// When the client last sent anything, in milliseconds since `base`.
#[derive(Clone)]
struct Activity {
    base: Instant,
    last: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            base: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }
    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }
    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

type Io = TokioIo<Upgraded>;

async fn run(state: AppState, actor: Actor, ws: WebSocket<Io>, _slot: Slot) {
    let cfg = state.config();
    let engine = state.engine().clone();
    let (mut rd, mut wr) = crate::frames::split(ws);
    rd.set_max_message_size(cfg.max_frame_bytes);
    rd.set_auto_close(true);
    rd.set_auto_pong(true);
    let (conn, events) = match engine.connect(&actor).await {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(user = %actor.id, error = %e, "cannot open a connection");
            wr.push(Frame::close(close::INTERNAL, b"unavailable"));
            let _ = wr.flush(cfg.write_timeout).await;
            return;
        }
    };
    tracing::debug!(user = %actor.id, conn = conn.id(), "socket open");
    let stop = CancellationToken::new();
    // flume: its queue allocates as it fills (tokio's mpsc reserves 1.3 KiB per channel).
    let (out_tx, out_rx) = flume::bounded::<Outgoing>(cfg.send_queue);
    let activity = Activity::new();
    let writer = tokio::spawn(writer(
        wr,
        events,
        out_rx,
        stop.clone(),
        state.shutdown().clone(),
        activity.clone(),
        Clocks {
            ping_interval: cfg.ping_interval,
            idle_timeout: cfg.idle_timeout,
            write_timeout: cfg.write_timeout,
        },
    ));

    let mut send_obligated = |frame: Frame<'static>| {
        let tx = out_tx.clone();
        async move {
            tx.send_async(Outgoing::Control(Box::new(frame)))
                .await
                .map_err(|_| "socket writer is gone")
        }
    };
    // A close the socket owes the client before it ends (if the queue has room).
    let close_with = |code: u16, reason: &'static [u8]| {
        let _ = out_tx.try_send(Outgoing::Control(Box::new(Frame::close(code, reason))));
    };
    loop {
        let read = tokio::select! {
            _ = stop.cancelled() => break,
            r = read_message(&mut rd, &mut send_obligated, cfg.max_frame_bytes, || activity.touch()) => r,
        };
        let reply = match read {
            Ok(Message::Close) => break,
            Ok(Message::Binary) => Some(error_event(&Error::Validation(
                "binary frames are not supported".into(),
            ))),
            // Boxed: handling an event (a call into the engine) is a large future that an idle
            // socket's task should not carry.
            Ok(Message::Text(payload)) => Box::pin(handle_text(&conn, payload.as_bytes())).await,
            Err(ReadError::FrameTooLarge) => {
                close_with(close::TOO_BIG, b"frame too large");
                break;
            }
            Err(ReadError::MessageTooLarge) => {
                close_with(close::TOO_BIG, b"message too large");
                break;
            }
            Err(ReadError::UnexpectedContinuation) => {
                close_with(close::POLICY, b"unexpected continuation");
                break;
            }
            Err(ReadError::Socket(e)) => {
                tracing::debug!(user = %actor.id, error = %e, "socket read ended");
                break;
            }
        };
        if let Some(text) = reply {
            let queued = tokio::select! {
                _ = stop.cancelled() => break,
                r = tokio::time::timeout(cfg.write_timeout, out_tx.send_async(Outgoing::Text(text))) => r,
            };
            if !matches!(queued, Ok(Ok(()))) {
                tracing::info!(user = %actor.id, "socket queue full, disconnecting a slow client");
                break;
            }
        }
    }
    stop.cancel();
    Box::pin(conn.close()).await;
    join_writer(writer, cfg.write_timeout).await;
    tracing::debug!(user = %actor.id, "socket closed");
}

/// One text frame: decode `{"event","data","ack"}`, dispatch, and say what to answer (an ack, an
/// `error` event, or nothing).
async fn handle_text(conn: &Connection, payload: &[u8]) -> Option<String> {
    let value: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(_) => return Some(error_event(&Error::Validation("frame is not JSON".into()))),
    };
    let Value::Object(mut frame) = value else {
        return Some(error_event(&Error::Validation(
            "frame must be a JSON object".into(),
        )));
    };
    let ack = frame.remove("ack").filter(|a| !a.is_null());
    let data = frame.remove("data").unwrap_or(Value::Null);
    let result = match frame.get("event").and_then(Value::as_str) {
        Some(event) => dispatch(conn, event, data).await,
        None => Err(Error::Validation("frame has no \"event\" name".into())),
    };
    Some(match Answer::to(ack.is_some(), result)? {
        Answer::Ack(mut reply) => {
            // `{"ack", "ok", "data" | "error"}`: the ack id rides in the reply itself.
            reply["ack"] = ack.unwrap_or(Value::Null);
            reply.to_string()
        }
        Answer::ErrorEvent(error) => error_frame(error),
    })
}

fn error_event(e: &Error) -> String {
    error_frame(error_json(e))
}

fn error_frame(error: Value) -> String {
    json!({"event": "error", "data": error}).to_string()
}

/// Appends the event frame `{"event":name,"data":...}` to `out` (an event name is plain ASCII:
/// nothing in it to escape).
fn write_event_frame(env: &chat_core::Envelope, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"event\":\"");
    out.extend_from_slice(env.name().as_bytes());
    out.extend_from_slice(b"\",\"data\":");
    out.extend_from_slice(env.data_json().as_bytes());
    out.push(b'}');
}

type Writer = FrameWriter<tokio::io::WriteHalf<Io>>;

/// What one turn of the writer loop decided.
enum Turn {
    /// Frames were added to the batch.
    Write,
    /// A close frame was added: write it and end.
    Last,
    /// Nothing to write.
    Idle,
}

/// The writer's settings (copied: a socket's task should not hold a copy of the whole config).
#[derive(Clone, Copy)]
struct Clocks {
    ping_interval: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
}

/// Adds what the reader queued to the batch.
fn add(wr: &mut Writer, msg: Outgoing) -> Turn {
    if wr.add(msg) {
        Turn::Last
    } else {
        Turn::Write
    }
}

/// The only task writing to the socket.
#[allow(clippy::too_many_arguments)]
async fn writer(
    mut wr: Writer,
    mut events: Events,
    out: flume::Receiver<Outgoing>,
    stop: CancellationToken,
    shutdown: CancellationToken,
    activity: Activity,
    cfg: Clocks,
) {
    let mut ping = tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Long-lived futures: one registration for the socket's life, not one per frame.
    let stopped = stop.cancelled();
    let shutting_down = shutdown.cancelled();
    let idle = tokio::time::sleep_until(activity.last() + cfg.idle_timeout);
    tokio::pin!(stopped, shutting_down, idle);
    let mut events_open = true;
    loop {
        let mut turn = tokio::select! {
            biased;
            _ = &mut stopped => {
                // A close frame the reader queued just before stopping goes out.
                wr.add_queued_controls(&out);
                let _ = wr.flush(cfg.write_timeout).await;
                return;
            }
            _ = &mut shutting_down => {
                wr.push(Frame::close(close::GOING_AWAY, b"server shutting down"));
                Turn::Last
            }
            msg = out.recv_async() => match msg {
                Ok(msg) => add(&mut wr, msg),
                Err(_) => {
                    wr.push(Frame::close(close::NORMAL, b""));
                    Turn::Last
                }
            },
            env = events.recv(), if events_open => match env {
                Some(env) => {
                    wr.text_with(|buf| write_event_frame(&env, buf));
                    Turn::Write
                }
                None => {
                    events_open = false;
                    Turn::Idle
                }
            },
            _ = ping.tick() => {
                wr.push(Frame::new(true, OpCode::Ping, None, Payload::Borrowed(&[])));
                Turn::Write
            }
            _ = &mut idle => {
                let deadline = activity.last() + cfg.idle_timeout;
                if deadline > Instant::now() {
                    idle.as_mut().reset(deadline);
                    Turn::Idle
                } else {
                    tracing::debug!("socket idle, closing");
                    wr.push(Frame::close(close::GOING_AWAY, b"idle timeout"));
                    Turn::Last
                }
            }
        };
        if matches!(turn, Turn::Write) {
            // Whatever else is ready goes out in the same write.
            while wr.has_room() {
                if let Ok(msg) = out.try_recv() {
                    turn = add(&mut wr, msg);
                    if matches!(turn, Turn::Last) {
                        break;
                    }
                } else if let Some(env) = events_open.then(|| events.try_recv()).flatten() {
                    wr.text_with(|buf| write_event_frame(&env, buf));
                } else {
                    break;
                }
            }
        }
        if let Err(e) = wr.flush(cfg.write_timeout).await {
            e.log("socket");
            stop.cancel();
            return;
        }
        if matches!(turn, Turn::Last) {
            stop.cancel();
            return;
        }
    }
}
