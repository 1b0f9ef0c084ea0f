//! Test harness: an in-process server on a free port, tokens, an HTTP client and a WebSocket
//! client, all over real sockets.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chat_host::{Config, Server};
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use http_body_util::{BodyExt, Full};
use hyper::header::{CONNECTION, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::Request;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub const SECRET: &str = "test-secret-please-change";
pub const COURSE: &str = "c1";
/// How long a test waits for something that must happen.
pub const WAIT: Duration = Duration::from_secs(5);

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
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

/// Unpadded base64url, to hand-make JWT parts that no library would sign.
pub fn b64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// `GET /socket.io/?EIO=4&transport=polling`: a new Engine.IO session's open packet (checked to
/// be a `200` starting with `0`).
pub async fn sio_open(addr: SocketAddr) -> Value {
    let r = request(
        addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.starts_with('0'), "{text}");
    serde_json::from_str(&text[1..]).unwrap()
}

/// An HS256 token with the test secret for these claims (plus `exp` in an hour unless given).
pub fn token_with(claims: Value) -> String {
    let mut claims = claims.as_object().unwrap().clone();
    claims.entry("exp").or_insert(json!(now() + 3600));
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

pub fn token(sub: &str, name: &str, role: &str) -> String {
    token_with(json!({"sub": sub, "name": name, "role": role}))
}

/// A test config: in memory, free port, long heartbeats (tests that need short ones say so).
pub fn config() -> Config {
    let mut c = Config::for_tests(SECRET);
    c.shutdown_grace = Duration::from_secs(3);
    c
}

/// A running server with a provisioned course `c1`: students u1 (Ada) and u2 (Bob), instructor
/// i1 (Ines); x1 (Xavier) is an outsider; `admin` is the admin.
pub struct World {
    pub server: Server,
    pub addr: SocketAddr,
    pub admin: String,
    pub u1: String,
    pub u2: String,
    pub i1: String,
    pub x1: String,
}

impl World {
    pub async fn start() -> World {
        World::with(config()).await
    }

    pub async fn with(config: Config) -> World {
        let server = Server::start(config).await.expect("server starts");
        let addr = server.local_addr();
        let w = World {
            addr,
            server,
            admin: token("admin", "Admin", "admin"),
            u1: token("u1", "Ada", "student"),
            u2: token("u2", "Bob", "student"),
            i1: token("i1", "Ines", "instructor"),
            x1: token("x1", "Xavier", "student"),
        };
        let r = w
            .put(
                &w.admin,
                "/api/v1/chat/courses/c1",
                json!({"name": "Course 1"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        for (user, role) in [("u1", "student"), ("u2", "student"), ("i1", "instructor")] {
            let path = format!("/api/v1/chat/courses/c1/participants/{user}");
            let r = w.put(&w.admin, &path, json!({"role": role})).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
        w
    }

    pub async fn get(&self, token: &str, path: &str) -> Resp {
        request(self.addr, "GET", path, Some(token), None).await
    }
    pub async fn post(&self, token: &str, path: &str, body: Value) -> Resp {
        request(self.addr, "POST", path, Some(token), Some(json_body(&body))).await
    }
    pub async fn put(&self, token: &str, path: &str, body: Value) -> Resp {
        request(self.addr, "PUT", path, Some(token), Some(json_body(&body))).await
    }
    pub async fn delete(&self, token: &str, path: &str) -> Resp {
        request(self.addr, "DELETE", path, Some(token), None).await
    }
    /// Sends a text message over REST and returns it.
    pub async fn send(&self, token: &str, text: &str) -> Value {
        let r = self
            .post(
                token,
                "/api/v1/chat/send",
                json!({"courseId": COURSE, "message": text}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.data()
    }
    pub async fn ws(&self, token: &str) -> Ws {
        Ws::connect(self.addr, token, true)
            .await
            .expect("socket opens")
    }
    /// A socket that has joined `c1` and read its join ack.
    pub async fn joined(&self, token: &str) -> Ws {
        let mut ws = self.ws(token).await;
        let ack = ws.call("join-course", json!({"courseId": COURSE})).await;
        assert_eq!(ack["ok"], true, "{ack}");
        ws
    }
}

pub fn json_body(v: &Value) -> (String, Bytes) {
    (
        "application/json".into(),
        Bytes::from(serde_json::to_vec(v).unwrap()),
    )
}

/// A multipart body: text fields, then an optional file part.
pub fn multipart(fields: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> (String, Bytes) {
    let boundary = "----chat-host-test-boundary-7d1f";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, ctype, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {ctype}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        Bytes::from(body),
    )
}

/// A 1x1 PNG.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82";

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }
    pub fn data(&self) -> Value {
        let v = self.json();
        assert_eq!(v["success"], true, "{v}");
        v["data"].clone()
    }
    pub fn code(&self) -> String {
        let v = self.json();
        assert_eq!(v["success"], false, "{v}");
        assert!(v["message"].is_string(), "{v}");
        v["code"].as_str().unwrap_or_default().to_string()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(String, Bytes)>,
) -> Resp {
    request_with(
        addr,
        method,
        path,
        token.map(|t| format!("Bearer {t}")),
        body,
    )
    .await
}

pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<String>,
    body: Option<(String, Bytes)>,
) -> Resp {
    let mut headers = Vec::new();
    if let Some(a) = &authorization {
        headers.push(("authorization", a.as_str()));
    }
    send(addr, method, path, &headers, body).await
}

/// One bodiless request with the given headers.
pub async fn request_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Resp {
    send(addr, method, path, headers, None).await
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(String, Bytes)>,
) -> Resp {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let bytes = match body {
        Some((ctype, bytes)) => {
            req = req.header("content-type", ctype);
            bytes
        }
        None => Bytes::new(),
    };
    let resp = sender
        .send_request(req.body(Full::new(bytes)).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

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
