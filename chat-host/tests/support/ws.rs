//! The WebSocket client: the handshake (on any stream), and `Ws`, which reads frames in the
//! background and hands them over as JSON.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use hyper::header::{CONNECTION, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::WAIT;

struct SpawnExecutor;

impl<Fut> hyper::rt::Executor<Fut> for SpawnExecutor
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        tokio::spawn(fut);
    }
}

/// Does the WebSocket handshake on `stream`; the status code on refusal.
pub async fn handshake<S>(
    addr: SocketAddr,
    stream: S,
    path: &str,
    auth: Option<&str>,
) -> Result<WebSocket<TokioIo<Upgraded>>, u16>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut req = Request::builder()
        .method("GET")
        .uri(path)
        .header("host", addr.to_string())
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header(
            "Sec-WebSocket-Key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("Sec-WebSocket-Version", "13");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let req = req.body(http_body_util::Empty::<Bytes>::new()).unwrap();
    match fastwebsockets::handshake::client(&SpawnExecutor, req, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(fastwebsockets::WebSocketError::InvalidStatusCode(code)) => Err(code),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

/// A WebSocket client. A background task reads frames (so timeouts never cut a frame in half)
/// and hands them over as JSON; pings (when auto-pong is off) come as `{"__ping": true}` and the
/// close frame as `{"__close": code}`.
pub struct Ws {
    rx: mpsc::UnboundedReceiver<Value>,
    tx: mpsc::UnboundedSender<Frame<'static>>,
    next_ack: u64,
    backlog: std::collections::VecDeque<Value>,
}

impl Ws {
    pub async fn connect(addr: SocketAddr, token: &str, auto_pong: bool) -> Result<Ws, u16> {
        let stream = TcpStream::connect(addr).await.unwrap();
        let ws = handshake(addr, stream, &format!("/ws?token={token}"), None).await?;
        Ok(Ws::spawn(ws, auto_pong))
    }

    pub fn spawn(ws: WebSocket<TokioIo<Upgraded>>, auto_pong: bool) -> Ws {
        let (mut rd, mut wr) = ws.split(tokio::io::split);
        rd.set_auto_pong(auto_pong);
        rd.set_auto_close(true);
        let (in_tx, in_rx) = mpsc::unbounded_channel::<Value>();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Frame<'static>>();
        tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                if wr.write_frame(frame).await.is_err() {
                    break;
                }
            }
        });
        let obligated = out_tx.clone();
        tokio::spawn(async move {
            let mut send = |f: Frame<'static>| {
                let tx = obligated.clone();
                async move { tx.send(f).map_err(|_| "gone") }
            };
            loop {
                let frame = match rd.read_frame(&mut send).await {
                    Ok(f) => f,
                    Err(_) => break,
                };
                let value = match frame.opcode {
                    OpCode::Text => {
                        serde_json::from_slice(&frame.payload).expect("server sends JSON")
                    }
                    OpCode::Ping => json!({"__ping": true}),
                    OpCode::Pong => json!({"__pong": String::from_utf8_lossy(&frame.payload)}),
                    OpCode::Close => {
                        let code = if frame.payload.len() >= 2 {
                            u16::from_be_bytes([frame.payload[0], frame.payload[1]])
                        } else {
                            1005
                        };
                        let _ = in_tx.send(json!({"__close": code}));
                        break;
                    }
                    _ => continue,
                };
                if in_tx.send(value).is_err() {
                    break;
                }
            }
        });
        Ws {
            rx: in_rx,
            tx: out_tx,
            next_ack: 0,
            backlog: Default::default(),
        }
    }

    pub fn send_raw(&self, text: &str) {
        let _ = self
            .tx
            .send(Frame::text(Payload::Owned(text.as_bytes().to_vec())));
    }

    pub fn send_frame(&self, frame: Frame<'static>) {
        let _ = self.tx.send(frame);
    }

    /// Sends an event with an ack id and returns the id.
    pub fn emit(&mut self, event: &str, data: Value) -> u64 {
        self.next_ack += 1;
        let id = self.next_ack;
        self.send_raw(&json!({"event": event, "data": data, "ack": id}).to_string());
        id
    }

    /// Sends an event without an ack.
    pub fn emit_no_ack(&self, event: &str, data: Value) {
        self.send_raw(&json!({"event": event, "data": data}).to_string());
    }

    /// Sends an event and waits for its ack (other frames are kept for later).
    pub async fn call(&mut self, event: &str, data: Value) -> Value {
        let id = self.emit(event, data);
        self.ack(id).await
    }

    pub async fn ack(&mut self, id: u64) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut skipped = Vec::new();
        loop {
            let v = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no ack {id}"))
                .unwrap_or_else(|| panic!("socket closed before ack {id}"));
            if v["ack"] == json!(id) {
                self.backlog.extend(skipped);
                return v;
            }
            skipped.push(v);
        }
    }

    /// The next frame within `within`, or `None` (timeout or closed).
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        if let Some(v) = self.backlog.pop_front() {
            return Some(v);
        }
        tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for the event `name` matching `pred`, skipping other frames; returns its data.
    pub async fn expect_where(&mut self, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no {name} event"));
            if v["event"] == name && pred(&v["data"]) {
                return v["data"].clone();
            }
        }
    }

    pub async fn expect(&mut self, name: &str) -> Value {
        self.expect_where(name, |_| true).await
    }

    /// Every frame that arrives within `within`.
    pub async fn drain(&mut self, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out: Vec<Value> = self.backlog.drain(..).collect();
        while let Ok(Some(v)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            out.push(v);
        }
        out
    }

    /// Events named `name` among `frames`.
    pub fn named<'a>(frames: &'a [Value], name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        frames
            .iter()
            .filter(move |v| v["event"] == name)
            .map(|v| &v["data"])
    }

    /// Closes the socket (a close frame, then the tasks end).
    pub fn close(&self) {
        let _ = self.tx.send(Frame::close(1000, b"bye"));
    }

    /// Waits until the server closed the socket; returns the close code (1006 for no frame).
    pub async fn closed(&mut self, within: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return None,
                Ok(None) => return Some(1006),
                Ok(Some(v)) if v.get("__close").is_some() => {
                    return v["__close"].as_u64().map(|c| c as u16)
                }
                Ok(Some(_)) => {}
            }
        }
    }
}

/// A `/ws` socket for `token` whose receive buffer is tiny: once it stops reading, the server's
/// writes back up at once (a slow or dead client).
pub async fn small_buffer_ws(addr: SocketAddr, token: &str) -> WebSocket<TokioIo<Upgraded>> {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(addr).await.unwrap();
    handshake(addr, stream, &format!("/ws?token={token}"), None)
        .await
        .unwrap()
}
