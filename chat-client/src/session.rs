//! One connected session: what happens between a socket opening and closing.
//!
//! On open it joins every joined course with the seq and epoch the cache holds (so the server
//! replays exactly what was missed), sends the read watermarks not yet acknowledged, and starts
//! the outbox. Then it applies the server's frames to the cache and turns them into events, and
//! sends the app's requests. The outbox goes one message at a time, in order: a message is sent
//! when the previous one is acknowledged or refused for good, and a rate limit or a lost
//! connection retries the same message (same `clientId`) first.
//!
//! Events of a course whose join is in flight wait for the join's answer, so a course whose
//! history must be reset (another epoch) is reset before anything new lands in it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chat_core::{Event, Message};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::client::{Command, Inner};
use crate::error::{ClientError, Result};
use crate::event::ClientEvent;
use crate::model::OutboxState;
use crate::socket::{Inbound, Socket};

/// How a session ended.
pub(crate) enum End {
    /// The app closed the client.
    Closed,
    /// The connection was lost (or replaced on the app's request), with why.
    Lost(String),
}

/// What an acknowledgement answers.
enum Waiting {
    /// An app request (`apply`: keep its answer in the cache).
    Request {
        reply: oneshot::Sender<Result<Value>>,
        apply: bool,
    },
    /// A join (`resumed`: with the cache's seq and epoch).
    Join { course: String, resumed: bool },
    /// The outbox's message in flight.
    Outbox { client_id: String },
    /// A read watermark.
    Read { course: String, message_id: String },
    /// Nothing to do with the answer (typing).
    Ignore,
}

pub(crate) struct Session<'a> {
    inner: &'a Inner,
    socket: Socket,
    next_ack: u64,
    waiting: HashMap<u64, Waiting>,
    /// Courses whose join is in flight, with the frames held back for them.
    joining: HashMap<String, Vec<Value>>,
    /// The outbox message in flight, if any.
    outbox_busy: bool,
    /// When a refused-for-now outbox message may be retried.
    outbox_retry_at: Option<Instant>,
    /// Courses whose watermark is in flight.
    reads_busy: HashSet<String>,
}

impl<'a> Session<'a> {
    pub(crate) fn new(inner: &'a Inner, socket: Socket) -> Self {
        Session {
            inner,
            socket,
            next_ack: 1,
            waiting: HashMap::new(),
            joining: HashMap::new(),
            outbox_busy: false,
            outbox_retry_at: None,
            reads_busy: HashSet::new(),
        }
    }

    /// Runs until the socket ends or the app closes the client.
    pub(crate) async fn run(mut self, commands: &mut mpsc::UnboundedReceiver<Command>) -> End {
        let end = match self.start() {
            Ok(()) => self.serve(commands).await,
            Err(e) => End::Lost(e.to_string()),
        };
        for (_, w) in self.waiting.drain() {
            if let Waiting::Request { reply, .. } = w {
                let _ = reply.send(Err(ClientError::Network("the connection was lost".into())));
            }
        }
        match end {
            End::Closed => {
                self.socket.close();
                End::Closed
            }
            lost => lost,
        }
    }

    fn start(&mut self) -> Result<()> {
        for (course, _) in self.inner.cache.joined_courses()? {
            self.join(&course)?;
        }
        self.send_reads()?;
        self.pump_outbox()
    }

    async fn serve(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) -> End {
        let idle = self.inner.options.idle_timeout;
        let mut deadline = tokio::time::Instant::now() + idle;
        loop {
            let retry_at = self.outbox_retry_at.map(tokio::time::Instant::from_std);
            let step = tokio::select! {
                inbound = self.socket.inbound.recv() => match inbound {
                    Some(Inbound::Json(frame)) => {
                        deadline = tokio::time::Instant::now() + idle;
                        self.on_frame(frame)
                    }
                    Some(Inbound::Closed(why)) => return End::Lost(why),
                    None => return End::Lost("the socket ended".into()),
                },
                command = commands.recv() => match command {
                    None | Some(Command::Close) => return End::Closed,
                    Some(Command::Reconnect) => return End::Lost("reconnect asked".into()),
                    Some(c) => self.on_command(c),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return End::Lost(format!("nothing from the server for {} s", idle.as_secs()));
                }
                _ = async {
                    match retry_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.outbox_retry_at = None;
                    self.pump_outbox()
                }
            };
            if let Err(e) = step {
                match e {
                    ClientError::Network(why) => return End::Lost(why),
                    other => tracing::warn!(error = %other, "chat-client: session step failed"),
                }
            }
        }
    }

    /// Sends `event` with a fresh ack id.
    fn emit(&mut self, event: &str, data: Value, waiting: Waiting) -> Result<()> {
        let ack = self.next_ack;
        self.next_ack += 1;
        if !self
            .socket
            .send(&json!({"event": event, "data": data, "ack": ack}))
        {
            if let Waiting::Request { reply, .. } = waiting {
                let _ = reply.send(Err(ClientError::Network("the connection was lost".into())));
            }
            return Err(ClientError::Network("the socket writer is gone".into()));
        }
        self.waiting.insert(ack, waiting);
        Ok(())
    }

    fn on_command(&mut self, command: Command) -> Result<()> {
        match command {
            Command::Request {
                event,
                data,
                reply,
                apply,
            } => self.emit(event, data, Waiting::Request { reply, apply }),
            Command::Notify { event, data } => self.emit(event, data, Waiting::Ignore),
            Command::Join(course) => self.join(&course),
            Command::Leave(course) => {
                self.joining.remove(&course);
                self.emit("leave-course", json!({"courseId": course}), Waiting::Ignore)
            }
            Command::Kick => {
                self.send_reads()?;
                self.pump_outbox()
            }
            Command::Close | Command::Reconnect => Ok(()),
        }
    }

    fn join(&mut self, course: &str) -> Result<()> {
        if self.joining.contains_key(course) {
            return Ok(());
        }
        let state = self.inner.cache.course(course)?.unwrap_or_default();
        let mut data = json!({"courseId": course});
        let resumed = match (state.last_seq, &state.epoch) {
            (Some(seq), Some(epoch)) => {
                data["sinceSeq"] = json!(seq);
                data["epoch"] = json!(epoch);
                true
            }
            _ => false,
        };
        self.joining.insert(course.to_string(), Vec::new());
        self.emit(
            "join-course",
            data,
            Waiting::Join {
                course: course.to_string(),
                resumed,
            },
        )
    }

    fn send_reads(&mut self) -> Result<()> {
        for (course, state) in self.inner.cache.joined_courses()? {
            if let Some(id) = state.pending_read {
                if self.reads_busy.insert(course.clone()) {
                    self.emit(
                        "mark-read",
                        json!({"messageId": id}),
                        Waiting::Read {
                            course,
                            message_id: id,
                        },
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Sends the oldest pending outbox message unless one is in flight or waiting for a retry.
    fn pump_outbox(&mut self) -> Result<()> {
        if self.outbox_busy || self.outbox_retry_at.is_some() {
            return Ok(());
        }
        let next = self
            .inner
            .cache
            .outbox()?
            .into_iter()
            .find(|e| e.state == OutboxState::Pending);
        let Some(entry) = next else {
            return Ok(());
        };
        let data = json!({
            "courseId": entry.course_id,
            "message": entry.message,
            "messageType": entry.message_type.as_str(),
            "replyTo": entry.reply_to,
            "clientId": entry.client_id,
        });
        self.outbox_busy = true;
        self.emit(
            "send-message",
            data,
            Waiting::Outbox {
                client_id: entry.client_id,
            },
        )
    }

    fn on_frame(&mut self, frame: Value) -> Result<()> {
        if let Some(ack) = frame.get("ack") {
            let Some(waiting) = ack.as_u64().and_then(|a| self.waiting.remove(&a)) else {
                return Ok(());
            };
            let answer = if frame.get("ok") == Some(&Value::Bool(true)) {
                Ok(frame.get("data").cloned().unwrap_or(Value::Null))
            } else {
                let err = frame.get("error").cloned().unwrap_or(Value::Null);
                let text = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                Err(ClientError::server(
                    &text("code"),
                    &text("message"),
                    err.get("retryAfter").and_then(Value::as_u64),
                ))
            };
            return self.on_answer(waiting, answer);
        }
        let course = frame
            .pointer("/data/courseId")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(held) = course.and_then(|c| self.joining.get_mut(&c)) {
            held.push(frame);
            return Ok(());
        }
        self.on_event(frame)
    }

    fn on_answer(&mut self, waiting: Waiting, answer: Result<Value>) -> Result<()> {
        match waiting {
            Waiting::Request { reply, apply } => {
                let answer = answer.and_then(|data| {
                    if apply {
                        self.inner.apply_answer(&data)?;
                    }
                    Ok(data)
                });
                let _ = reply.send(answer);
                Ok(())
            }
            Waiting::Ignore => Ok(()),
            Waiting::Join { course, resumed } => self.on_joined(course, resumed, answer),
            Waiting::Read { course, message_id } => {
                self.reads_busy.remove(&course);
                match answer {
                    Err(e) if e.is_transient() => Ok(()),
                    _ => self.inner.cache.update_course(&course, |s| {
                        if s.pending_read.as_deref() == Some(message_id.as_str()) {
                            s.pending_read = None;
                        }
                    }),
                }
            }
            Waiting::Outbox { client_id } => {
                self.outbox_busy = false;
                let answer = answer.and_then(|data| {
                    serde_json::from_value::<Message>(data)
                        .map_err(|e| ClientError::Protocol(format!("sent message: {e}")))
                });
                match answer {
                    Ok(message) => self.inner.sent(&client_id, message, true)?,
                    Err(e @ ClientError::Protocol(_)) => {
                        // An answer this client cannot read: the same clientId is sent again
                        // later (the server returns the stored message), never lost or doubled.
                        tracing::warn!(error = %e, "chat-client: outbox answer unreadable");
                        self.outbox_retry_at = Some(Instant::now() + Duration::from_secs(2));
                    }
                    Err(e) => {
                        let retry = match &e {
                            ClientError::Server {
                                code, retry_after, ..
                            } if code == "RATE_LIMITED" => Some(retry_after.unwrap_or(1).max(1)),
                            e if e.is_transient() => Some(2),
                            _ => None,
                        };
                        match retry {
                            Some(secs) => {
                                self.outbox_retry_at =
                                    Some(Instant::now() + Duration::from_secs(secs));
                            }
                            None => self.inner.failed(&client_id, &e)?,
                        }
                    }
                }
                self.pump_outbox()
            }
        }
    }

    fn on_joined(&mut self, course: String, resumed: bool, answer: Result<Value>) -> Result<()> {
        let held = self.joining.remove(&course).unwrap_or_default();
        let data = match answer {
            Ok(d) => d,
            Err(e) => {
                // A course the user may not read (unenrolled, unknown) is left; a transient
                // failure is retried on the next connection.
                if !e.is_transient() {
                    self.inner
                        .cache
                        .update_course(&course, |s| s.joined = false)?;
                }
                let (code, message) = match &e {
                    ClientError::Server { code, message, .. } => (code.clone(), message.clone()),
                    other => ("INTERNAL".to_string(), other.to_string()),
                };
                self.inner.emit(ClientEvent::Error {
                    code,
                    message: format!("join {course}: {message}"),
                });
                return Ok(());
            }
        };
        let head = data.get("headSeq").and_then(Value::as_u64).unwrap_or(0);
        let epoch = data
            .get("epoch")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let recovered = resumed && data.get("recovered") == Some(&Value::Bool(true));
        if recovered {
            self.inner
                .cache
                .update_course(&course, |s| s.epoch = Some(epoch.clone()))?;
        } else if resumed {
            // Another epoch (or a seq beyond the head): the cached history is not this server's.
            self.inner.cache.reset_course(&course, head, &epoch)?;
        } else {
            // First join: the cache follows the room from its head; older pages come over REST.
            self.inner.cache.update_course(&course, |s| {
                s.last_seq = Some(s.last_seq.unwrap_or(0).max(head));
                s.epoch = Some(epoch.clone());
                // Seqs start at 1: a room at head 0 has no history to fetch.
                s.floor = Some(if head == 0 { 0 } else { head + 1 });
            })?;
        }
        if let Ok(users) = serde_json::from_value(data.get("users").cloned().unwrap_or_default()) {
            self.inner.set_online(&course, users);
        }
        self.inner.emit(ClientEvent::Joined {
            course_id: course.clone(),
            head_seq: head,
            recovered,
        });
        for frame in held {
            self.on_event(frame)?;
        }
        self.inner.refresh_unread(&course)
    }

    fn on_event(&mut self, frame: Value) -> Result<()> {
        if frame.get("event").and_then(Value::as_str) == Some("error") {
            let text = |k: &str| {
                frame
                    .pointer(&format!("/data/{k}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            self.inner.emit(ClientEvent::Error {
                code: text("code"),
                message: text("message"),
            });
            return Ok(());
        }
        match Event::from_json(&frame) {
            Ok(event) => self.inner.apply_event(event, true),
            Err(e) => {
                // A newer server's event this client does not know: skipped.
                tracing::debug!(error = %e, "chat-client: event skipped");
                Ok(())
            }
        }
    }
}
