//! The simulated clients: what they share (counters, latency histograms), one client's
//! connection, reader and sender loop, and the tokens they present.

use super::*;

/// Counters and histograms shared by every client task.
pub(crate) struct Shared {
    pub(crate) base: Instant,
    pub(crate) proto: Proto,
    pub(crate) window_start: AtomicU64,
    pub(crate) window_end: AtomicU64,
    pub(crate) closing: AtomicBool,
    pub(crate) sent: AtomicU64,
    pub(crate) sent_window: AtomicU64,
    pub(crate) acked_window: AtomicU64,
    pub(crate) ack_ok: AtomicU64,
    pub(crate) ack_err: AtomicU64,
    pub(crate) deliveries: AtomicU64,
    pub(crate) deliveries_window: AtomicU64,
    pub(crate) deliveries_of_window_sends: AtomicU64,
    pub(crate) error_events: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) send_failures: AtomicU64,
    pub(crate) latency: Vec<Mutex<Histogram<u64>>>,
    pub(crate) ack_latency: Vec<Mutex<Histogram<u64>>>,
    /// Per client: deliveries of the window's sends; per course: the window's acked sends. When
    /// deliveries are missing, these say which clients missed how many.
    pub(crate) delivered_by_client: Vec<AtomicU64>,
    pub(crate) acked_by_course: Vec<AtomicU64>,
    pub(crate) clients_per_course: usize,
}

pub(crate) const SHARDS: usize = 16;
pub(crate) const JOIN_ACK: u64 = 1;

impl Shared {
    pub(crate) fn new(proto: Proto, courses: usize, clients_per_course: usize) -> Self {
        let hist = || {
            (0..SHARDS)
                .map(|_| {
                    Mutex::new(Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram"))
                })
                .collect()
        };
        Shared {
            base: Instant::now(),
            proto,
            window_start: AtomicU64::new(u64::MAX),
            window_end: AtomicU64::new(u64::MAX),
            closing: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            sent_window: AtomicU64::new(0),
            acked_window: AtomicU64::new(0),
            ack_ok: AtomicU64::new(0),
            ack_err: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            deliveries_window: AtomicU64::new(0),
            deliveries_of_window_sends: AtomicU64::new(0),
            error_events: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            send_failures: AtomicU64::new(0),
            latency: hist(),
            ack_latency: hist(),
            delivered_by_client: (0..courses * clients_per_course)
                .map(|_| AtomicU64::new(0))
                .collect(),
            acked_by_course: (0..courses).map(|_| AtomicU64::new(0)).collect(),
            clients_per_course: clients_per_course.max(1),
        }
    }

    /// Nanoseconds since the generator started (never below 2, so never a join ack id).
    pub(crate) fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 2
    }

    pub(crate) fn in_window(&self, t: u64) -> bool {
        t >= self.window_start.load(Relaxed) && t < self.window_end.load(Relaxed)
    }

    pub(crate) fn record(hist: &[Mutex<Histogram<u64>>], shard: usize, ns: u64) {
        let us = (ns / 1000).clamp(1, 120_000_000);
        if let Ok(mut h) = hist[shard % SHARDS].lock() {
            let _ = h.record(us);
        }
    }

    pub(crate) fn merged(hist: &[Mutex<Histogram<u64>>]) -> Histogram<u64> {
        let mut out = Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram");
        for h in hist {
            if let Ok(h) = h.lock() {
                let _ = out.add(&*h);
            }
        }
        out
    }
}

/// What a client's reader hands back to the set-up code.
pub(crate) struct ClientCtx {
    pub(crate) idx: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) writer: ws::Writer,
    pub(crate) join: Option<oneshot::Sender<Result<(), String>>>,
    pub(crate) permits: Option<Arc<Semaphore>>,
}

/// The marker at the start of every benchmark message's text: `BENCH<send ns>.`, looked for as
/// the start of the `message` field. Not `BENCH` alone: the message's id, a ULID, comes first in
/// the event and is written in Crockford base32, which has all five letters, so about one
/// message in a million has `BENCH` in its id. Read from there, that message counted as
/// delivered to none of its course's clients (the "missing 20" of rare runs).
pub(crate) const MARKER: &[u8] = b"\"message\":\"BENCH";

pub(crate) fn marker_time(payload: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(payload, MARKER)? + MARKER.len();
    let mut t: u64 = 0;
    let mut any = false;
    for &b in payload.get(at..)?.iter().take(20) {
        if b.is_ascii_digit() {
            t = t.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            any = true;
        } else {
            break;
        }
    }
    any.then_some(t)
}

impl ClientCtx {
    pub(crate) fn delivery(&self, payload: &[u8]) {
        let s = &self.shared;
        let now = s.now_ns();
        s.deliveries.fetch_add(1, Relaxed);
        if s.in_window(now) {
            s.deliveries_window.fetch_add(1, Relaxed);
        }
        if let Some(t) = marker_time(payload) {
            if s.in_window(t) {
                s.deliveries_of_window_sends.fetch_add(1, Relaxed);
                if let Some(c) = s.delivered_by_client.get(self.idx) {
                    c.fetch_add(1, Relaxed);
                }
                Shared::record(&s.latency, self.idx, now.saturating_sub(t));
            }
        }
    }

    pub(crate) fn ack(&mut self, id: Option<u64>, ok: bool, detail: &[u8]) {
        let s = &self.shared;
        match id {
            Some(JOIN_ACK) => {
                if let Some(tx) = self.join.take() {
                    let _ = tx.send(if ok {
                        Ok(())
                    } else {
                        Err(String::from_utf8_lossy(&detail[..detail.len().min(300)]).into_owned())
                    });
                }
            }
            Some(t) => {
                let now = s.now_ns();
                if ok {
                    s.ack_ok.fetch_add(1, Relaxed);
                    if s.in_window(t) {
                        s.acked_window.fetch_add(1, Relaxed);
                        if let Some(c) = s.acked_by_course.get(self.idx / s.clients_per_course) {
                            c.fetch_add(1, Relaxed);
                        }
                        Shared::record(&s.ack_latency, self.idx, now.saturating_sub(t));
                    }
                } else {
                    s.ack_err.fetch_add(1, Relaxed);
                    if s.ack_err.load(Relaxed) <= 3 {
                        eprintln!(
                            "chat-bench: failed ack: {}",
                            String::from_utf8_lossy(&detail[..detail.len().min(300)])
                        );
                    }
                }
                if let Some(p) = &self.permits {
                    p.add_permits(1);
                }
            }
            None => {}
        }
    }

    /// Handles one text frame; returns true when a pong must be written (Socket.IO ping).
    pub(crate) fn text(&mut self, payload: &[u8]) -> bool {
        match self.shared.proto {
            Proto::Native => {
                let head = &payload[..payload.len().min(40)];
                if !head.starts_with(b"{\"ack\"")
                    && memchr::memmem::find(head, b"\"new-message\"").is_some()
                {
                    self.delivery(payload);
                    return false;
                }
                match native::parse(payload) {
                    native::Frame::Ack(id, ok) => self.ack(id, ok, payload),
                    native::Frame::Event(e) if e == "error" => {
                        self.shared.error_events.fetch_add(1, Relaxed);
                    }
                    _ => {}
                }
                false
            }
            Proto::Socketio => match socketio::parse(payload) {
                socketio::Packet::Ping => true,
                socketio::Packet::Event(args) => {
                    if args.starts_with(b"[\"new-message\"") {
                        self.delivery(args);
                    } else if args.starts_with(b"[\"error\"") {
                        self.shared.error_events.fetch_add(1, Relaxed);
                    }
                    false
                }
                socketio::Packet::Ack(id, args) => {
                    let ok = socketio::ack_ok(args);
                    self.ack(Some(id), ok, args);
                    false
                }
                socketio::Packet::Closed => {
                    self.shared.error_events.fetch_add(1, Relaxed);
                    false
                }
                _ => false,
            },
        }
    }
}

pub(crate) async fn reader(mut rd: ws::WsRead, mut ctx: ClientCtx) {
    let w = ctx.writer.clone();
    let mut obligated = move |f: Frame<'static>| {
        let w = w.clone();
        async move { w.lock().await.write_frame(f).await }
    };
    loop {
        let pong = match rd.read_frame(&mut obligated).await {
            Ok(frame) => match frame.opcode {
                OpCode::Text => ctx.text(&frame.payload),
                OpCode::Close => break,
                _ => false,
            },
            Err(_) => break,
        };
        if pong
            && ws::send_text(&ctx.writer, socketio::PONG.to_vec())
                .await
                .is_err()
        {
            break;
        }
    }
    if !ctx.shared.closing.load(Relaxed) {
        ctx.shared.disconnects.fetch_add(1, Relaxed);
    }
    if let Some(tx) = ctx.join.take() {
        let _ = tx.send(Err("socket closed before the join ack".into()));
    }
}

#[derive(serde::Serialize)]
pub(crate) struct Claims<'a> {
    pub(crate) sub: &'a str,
    pub(crate) name: &'a str,
    pub(crate) role: &'a str,
    pub(crate) exp: u64,
}

pub(crate) fn token(secret: &str, sub: &str, role: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 6 * 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &Claims {
            sub,
            name: sub,
            role,
            exp,
        },
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 encoding")
}

pub(crate) fn emit(proto: Proto, event: &str, data: &str, ack: Option<u64>) -> Vec<u8> {
    match proto {
        Proto::Native => native::emit(event, data, ack),
        Proto::Socketio => socketio::emit(event, data, ack),
    }
}

/// Opens one client: WebSocket, and for Socket.IO the Engine.IO open and namespace connect.
pub(crate) async fn open_client(
    proto: Proto,
    addr: SocketAddr,
    bind: Option<IpAddr>,
    token: &str,
) -> Result<(ws::WsRead, ws::Writer), String> {
    match proto {
        Proto::Native => ws::connect(
            addr,
            bind,
            "/ws",
            &format!("Authorization: Bearer {token}\r\n"),
        )
        .await
        .map_err(|e| e.to_string()),
        Proto::Socketio => {
            let (mut rd, wr) = ws::connect(addr, bind, socketio::PATH, "")
                .await
                .map_err(|e| e.to_string())?;
            let w = wr.clone();
            let mut obligated = move |f: Frame<'static>| {
                let w = w.clone();
                async move { w.lock().await.write_frame(f).await }
            };
            let mut sent_connect = false;
            loop {
                let frame =
                    tokio::time::timeout(Duration::from_secs(20), rd.read_frame(&mut obligated))
                        .await
                        .map_err(|_| "Socket.IO handshake timed out".to_string())?
                        .map_err(|e| e.to_string())?;
                if frame.opcode != OpCode::Text {
                    continue;
                }
                let (pong, done) = match socketio::parse(&frame.payload) {
                    socketio::Packet::Open => (false, false),
                    socketio::Packet::Ping => (true, false),
                    socketio::Packet::Connected => (false, true),
                    socketio::Packet::ConnectError(e) => {
                        return Err(format!("connect_error: {}", String::from_utf8_lossy(e)))
                    }
                    socketio::Packet::Closed => return Err("closed during the handshake".into()),
                    _ => (false, false),
                };
                if done {
                    break;
                }
                if pong {
                    ws::send_text(&wr, socketio::PONG.to_vec())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if !sent_connect {
                    ws::send_text(&wr, socketio::connect(token))
                        .await
                        .map_err(|e| e.to_string())?;
                    sent_connect = true;
                }
            }
            Ok((rd, wr))
        }
    }
}

pub(crate) struct Sender {
    pub(crate) idx: usize,
    pub(crate) user: String,
    pub(crate) course: String,
    pub(crate) writer: ws::Writer,
    pub(crate) permits: Option<Arc<Semaphore>>,
}

pub(crate) async fn send_loop(
    shared: Arc<Shared>,
    s: Sender,
    period: Option<Duration>,
    start: tokio::time::Instant,
    stop: tokio::time::Instant,
    pad: Arc<String>,
) {
    let mut tick = period.map(|p| {
        let mut t = tokio::time::interval_at(start, p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    if tick.is_none() {
        tokio::time::sleep_until(start).await;
    }
    let mut n: u64 = 0;
    loop {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        } else if let Some(p) = &s.permits {
            match tokio::time::timeout_at(stop, p.acquire()).await {
                Ok(Ok(permit)) => permit.forget(),
                _ => break,
            }
        }
        if tokio::time::Instant::now() >= stop {
            break;
        }
        let t = shared.now_ns();
        n += 1;
        let data = format!(
            r#"{{"courseId":"{}","message":"BENCH{t}.{pad}","messageType":"text","clientId":"{}-{n}"}}"#,
            s.course, s.user
        );
        let frame = emit(shared.proto, "send-message", &data, Some(t));
        shared.sent.fetch_add(1, Relaxed);
        if shared.in_window(t) {
            shared.sent_window.fetch_add(1, Relaxed);
        }
        if ws::send_text(&s.writer, frame).await.is_err() {
            shared.send_failures.fetch_add(1, Relaxed);
            break;
        }
    }
    let _ = s.idx;
}

/// Names the clients that missed deliveries of acknowledged sends (at most ten), on stderr.
pub(crate) fn report_missing(s: &Shared) {
    let mut shown = 0;
    for (i, got) in s.delivered_by_client.iter().enumerate() {
        let course = i / s.clients_per_course;
        let want = s.acked_by_course[course].load(Relaxed);
        let got = got.load(Relaxed);
        if got < want {
            shown += 1;
            if shown <= 10 {
                eprintln!(
                    "chat-bench: client {i} (course {course}) got {got} of the {want} acknowledged sends of its course"
                );
            }
        }
    }
    if shown > 10 {
        eprintln!("chat-bench: ... {} clients in all missed deliveries", shown);
    }
}

pub(crate) fn percentile(h: &Histogram<u64>, q: f64) -> Value {
    if h.is_empty() {
        Value::Null
    } else {
        json!(h.value_at_quantile(q))
    }
}

#[cfg(test)]
mod tests {
    use super::marker_time;

    #[test]
    fn the_send_time_is_read_from_the_message_text_not_from_an_id_that_spells_bench() {
        let event = br#"42["new-message",{"id":"01JBENCH7Z9QK2","courseId":"c","message":"BENCH123456.xx","seq":4}]"#;
        assert_eq!(marker_time(event), Some(123_456));
        let native = br#"{"event":"new-message","data":{"id":"01JBENCHQQ","message":"BENCH42.x"}}"#;
        assert_eq!(marker_time(native), Some(42));
        assert_eq!(marker_time(br#"{"id":"BENCH9","message":"hello"}"#), None);
    }
}
