//! Two chat-host processes, one PostgreSQL, one Redis: one deployment.
//!
//! Each test starts its own Redis (`redis-server` on a free port, so restarting it disturbs no
//! one else) and its own schema in the machine's PostgreSQL (`CHAT_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`), then two `chat-host` binaries on them:
//! - clients on either node see each other's messages, edits, deletions, typing and presence, and
//!   a user with a socket on each node is online once;
//! - a send retried on the other node with the same `clientId` is stored once;
//! - Socket.IO clients on WebSocket from the start, one per node, talk with no sticky sessions;
//! - node A killed with -9: a client resumes on node B with `sinceSeq` and gets every
//!   acknowledged change after it, once and in order, and A's users go offline within 60 s;
//! - Redis restarted mid-traffic: the sockets on the other node still get every change once.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

fn postgres_url() -> String {
    std::env::var("CHAT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A private `redis-server` that can be restarted on the same port.
struct Redis {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package) must be installed");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One chat-host process.
struct Node {
    addr: SocketAddr,
    child: Child,
}

impl Node {
    async fn start(id: &str, schema: &str, redis: &Redis, data: &std::path::Path) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-host"))
            .args(["--addr", "127.0.0.1:0", "--jwt-secret", SECRET])
            .arg("--data-dir")
            .arg(data)
            .args(["--store", &postgres_url(), "--store-schema", schema])
            .args(["--bus", &redis.url(), "--node-id", id])
            .args(["--rate-limit", "10000"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("chat-host starts");
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            let first = lines.next();
            // Keep draining so the node never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            first
        })
        .await
        .unwrap()
        .expect("chat-host printed its address")
        .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Node { addr, child }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    async fn ws(&self, token: &str) -> Ws {
        Ws::connect(self.addr, token, true)
            .await
            .expect("socket opens")
    }

    async fn joined(&self, token: &str) -> Ws {
        let mut ws = self.ws(token).await;
        let ack = ws.call("join-course", json!({"courseId": COURSE})).await;
        assert_eq!(ack["ok"], true, "{ack}");
        ws
    }

    async fn put(&self, token: &str, path: &str, body: Value) -> Resp {
        request(self.addr, "PUT", path, Some(token), Some(json_body(&body))).await
    }

    async fn get(&self, token: &str, path: &str) -> Resp {
        request(self.addr, "GET", path, Some(token), None).await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Redis, a schema and two nodes with course `c1` (students u1, u2).
struct Deployment {
    redis: Redis,
    a: Node,
    b: Node,
    admin: String,
    u1: String,
    u2: String,
    _data: tempfile::TempDir,
}

impl Deployment {
    async fn start() -> Deployment {
        let redis = Redis::start();
        let schema = format!("chat_it_{}", ulid::Ulid::new().to_string().to_lowercase());
        // One data folder for both: it holds the uploaded files, which the nodes must share.
        let data = tempfile::tempdir().unwrap();
        let a = Node::start("a", &schema, &redis, data.path()).await;
        let b = Node::start("b", &schema, &redis, data.path()).await;
        let d = Deployment {
            redis,
            a,
            b,
            admin: token("admin", "Admin", "admin"),
            u1: token("u1", "Ada", "student"),
            u2: token("u2", "Bob", "student"),
            _data: data,
        };
        let r =
            d.a.put(&d.admin, "/api/v1/chat/courses/c1", json!({"name": "C1"}))
                .await;
        assert_eq!(r.status, 200, "{}", r.text());
        for user in ["u1", "u2"] {
            let path = format!("/api/v1/chat/courses/c1/participants/{user}");
            let r = d.b.put(&d.admin, &path, json!({"role": "student"})).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
        d
    }
}

fn ids(users: &Value) -> Vec<String> {
    let mut v: Vec<String> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Message-change events on `ws` until `n` arrived: `(event, seq)`.
async fn changes(ws: &mut Ws, n: usize, within: Duration) -> Vec<(String, u64)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(v) = ws.next(left).await else {
            panic!("only {} of {n} changes arrived: {out:?}", out.len());
        };
        let seq = match v["event"].as_str() {
            Some("new-message") | Some("message-edited") => v["data"]["changeSeq"].as_u64(),
            Some("message-deleted") => v["data"]["seq"].as_u64(),
            _ => None,
        };
        if let Some(seq) = seq {
            out.push((v["event"].as_str().unwrap_or_default().to_string(), seq));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_serve_one_deployment() {
    let d = Deployment::start().await;
    let mut ada = d.a.joined(&d.u1).await;
    let mut bob = d.b.joined(&d.u2).await;
    // Presence across nodes.
    let joined = ada
        .expect_where("user-joined", |x| x["user"]["id"] == "u2")
        .await;
    assert_eq!(joined["user"]["isOnline"], true);
    for node in [&d.a, &d.b] {
        let online = node.get(&d.u1, "/api/v1/chat/online/c1").await.data();
        assert_eq!(ids(&online), ["u1", "u2"]);
    }

    // Messages, edits and deletions both ways.
    let ack = ada
        .call(
            "send-message",
            json!({"courseId": COURSE, "message": "from A"}),
        )
        .await;
    let m1 = ack["data"].clone();
    bob.expect_where("new-message", |m| m["id"] == m1["id"])
        .await;
    let ack = bob
        .call(
            "send-message",
            json!({"courseId": COURSE, "message": "from B"}),
        )
        .await;
    let m2 = ack["data"].clone();
    ada.expect_where("new-message", |m| m["id"] == m2["id"])
        .await;
    bob.call(
        "edit-message",
        json!({"messageId": m2["id"], "newMessage": "from B, edited"}),
    )
    .await;
    ada.expect_where("message-edited", |m| m["message"] == "from B, edited")
        .await;
    ada.call("delete-message", json!({"messageId": m1["id"]}))
        .await;
    bob.expect_where("message-deleted", |d| d["messageId"] == m1["id"])
        .await;

    // Typing both ways.
    bob.emit_no_ack("typing", json!({"courseId": COURSE, "isTyping": true}));
    let t = ada.expect("user-typing").await;
    assert_eq!(
        (t["userId"].as_str(), t["isTyping"].as_bool()),
        (Some("u2"), Some(true))
    );
    ada.emit_no_ack("typing", json!({"courseId": COURSE, "isTyping": true}));
    bob.expect_where("user-typing", |t| t["userId"] == "u1")
        .await;

    // A send retried on the other node with the same clientId is stored once.
    let req = json!({"courseId": COURSE, "message": "once", "clientId": "retry-1"});
    let first = ada.call("send-message", req.clone()).await["data"].clone();
    let mut ada_on_b = d.b.ws(&d.u1).await;
    let again = ada_on_b.call("send-message", req).await["data"].clone();
    ada_on_b.close();
    assert_eq!(first["id"], again["id"], "{first}\n{again}");
    let page = d.b.get(&d.u1, "/api/v1/chat/course/c1").await.data();
    let onces = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["message"] == "once")
        .count();
    assert_eq!(onces, 1);

    // Bob's second tab is on node A: closing the one on B is not leaving; closing both is.
    let bob_on_a = d.a.joined(&d.u2).await;
    bob.close();
    let frames = ada.drain(Duration::from_millis(500)).await;
    assert!(
        Ws::named(&frames, "user-left").next().is_none(),
        "{frames:?}"
    );
    let online = d.b.get(&d.u1, "/api/v1/chat/online/c1").await.data();
    assert_eq!(ids(&online), ["u1", "u2"]);
    bob_on_a.close();
    let left = ada
        .expect_where("user-left", |x| x["user"]["id"] == "u2")
        .await;
    assert_eq!(left["user"]["isOnline"], false);
    let online = d.b.get(&d.u1, "/api/v1/chat/online/c1").await.data();
    assert_eq!(ids(&online), ["u1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_the_other_node_after_a_kill_9() {
    let mut d = Deployment::start().await;
    // An admin watches the room from node B.
    let mut watcher = d.b.joined(&d.admin).await;
    let mut bob = d.a.ws(&d.u2).await;
    let join = bob.call("join-course", json!({"courseId": COURSE})).await;
    let epoch = join["data"]["epoch"].as_str().unwrap().to_string();
    // Bob sees the first ten on node A, then node A dies while Ada keeps sending on it.
    let mut ada = d.a.joined(&d.u1).await;
    let mut acked = Vec::new();
    for i in 0..10 {
        let ack = ada
            .call(
                "send-message",
                json!({"courseId": COURSE, "message": format!("m{i}")}),
            )
            .await;
        acked.push(ack["data"]["seq"].as_u64().unwrap());
    }
    let seen = changes(&mut bob, 10, WAIT).await;
    let last_seen = seen.last().unwrap().1;
    for i in 10..25 {
        let ack = ada
            .call(
                "send-message",
                json!({"courseId": COURSE, "message": format!("m{i}")}),
            )
            .await;
        acked.push(ack["data"]["seq"].as_u64().unwrap());
    }
    d.a.kill9();
    // Bob reconnects to node B with what he saw.
    let mut bob = d.b.ws(&d.u2).await;
    let ack = bob
        .call(
            "join-course",
            json!({"courseId": COURSE, "sinceSeq": last_seen, "epoch": epoch}),
        )
        .await;
    assert_eq!(ack["data"]["recovered"], true, "{ack}");
    // Live events follow headSeq; a change node B has not published yet comes live after it.
    let head = ack["data"]["headSeq"].as_u64().unwrap();
    assert!((last_seen..=25).contains(&head), "{ack}");
    let got: Vec<u64> = changes(&mut bob, 15, WAIT)
        .await
        .into_iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(
        got,
        acked[10..],
        "every acknowledged send after {last_seen}, once, in order"
    );
    // The watcher on B saw all 25 live, in order.
    let all: Vec<u64> = changes(&mut watcher, 25, WAIT)
        .await
        .into_iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(all, acked);
    // Ada's only connection was on A: she goes offline within 60 s, and B's room is told.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let online = d.b.get(&d.u2, "/api/v1/chat/online/c1").await.data();
        if !ids(&online).contains(&"u1".to_string()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Ada still online 60 s after her node died"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let frames = watcher.drain(Duration::from_secs(2)).await;
    assert!(
        Ws::named(&frames, "user-left").any(|x| x["user"]["id"] == "u1"),
        "user-left for Ada reached node B's room: {frames:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_traffic_loses_nothing() {
    let mut d = Deployment::start().await;
    let mut bob = d.b.joined(&d.u2).await;
    let mut ada = d.a.ws(&d.u1).await;
    let mut acked = Vec::new();
    for i in 0..120 {
        if i == 40 {
            d.redis.stop();
        }
        if i == 80 {
            d.redis.spawn();
        }
        let ack = ada
            .call(
                "send-message",
                json!({"courseId": COURSE, "message": format!("m{i}")}),
            )
            .await;
        assert_eq!(ack["ok"], true, "sends do not need the bus: {ack}");
        acked.push(ack["data"]["seq"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got: Vec<u64> = changes(&mut bob, 120, Duration::from_secs(30))
        .await
        .into_iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(
        got, acked,
        "every change once, in order, across the restart"
    );
    let extra = bob.drain(Duration::from_millis(500)).await;
    assert!(
        Ws::named(&extra, "new-message").next().is_none(),
        "no duplicate: {extra:?}"
    );
}

/// A Socket.IO client on WebSocket from the start (`transports: ["websocket"]`): one TCP
/// connection carries the whole session, so it needs no sticky load balancer.
struct SioWs {
    ws: fastwebsockets::WebSocket<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>,
    next_id: u64,
}

impl SioWs {
    async fn connect(addr: SocketAddr, token: &str) -> SioWs {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let ws = handshake(addr, stream, "/socket.io/?EIO=4&transport=websocket", None)
            .await
            .expect("upgrade");
        let mut s = SioWs { ws, next_id: 0 };
        assert!(s.recv().await.starts_with('0'), "Engine.IO open");
        s.send(&format!("40{}", json!({ "token": token }))).await;
        let connected = s.recv().await;
        assert!(connected.starts_with("40{\"sid\""), "{connected}");
        s
    }

    async fn send(&mut self, text: &str) {
        let frame =
            fastwebsockets::Frame::text(fastwebsockets::Payload::Owned(text.as_bytes().to_vec()));
        self.ws.write_frame(frame).await.unwrap();
    }

    /// The next Engine.IO message (answering pings).
    async fn recv(&mut self) -> String {
        loop {
            let f = tokio::time::timeout(WAIT, self.ws.read_frame())
                .await
                .expect("a packet in time")
                .unwrap();
            if f.opcode == fastwebsockets::OpCode::Text {
                let t = String::from_utf8(f.payload.to_vec()).unwrap();
                if t == "2" {
                    self.send("3").await;
                    continue;
                }
                return t;
            }
        }
    }

    /// Emits `event` with an ack id and waits for the ack (events before it are skipped).
    async fn call(&mut self, event: &str, data: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&format!("42{id}{}", json!([event, data]))).await;
        let prefix = format!("43{id}");
        loop {
            let p = self.recv().await;
            if let Some(rest) = p.strip_prefix(&prefix) {
                let v: Value = serde_json::from_str(rest).unwrap();
                return v[0].clone();
            }
        }
    }

    /// The data of the next `event` event with this `id` (the sender gets its own too).
    async fn expect(&mut self, event: &str, id: &Value) -> Value {
        loop {
            let p = self.recv().await;
            if let Some(rest) = p.strip_prefix("42") {
                let v: Value = serde_json::from_str(rest).unwrap();
                if v[0] == event && v[1]["id"] == *id {
                    return v[1].clone();
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_clients_on_websocket_need_no_stickiness() {
    let d = Deployment::start().await;
    let mut ada = SioWs::connect(d.a.addr, &d.u1).await;
    let mut bob = SioWs::connect(d.b.addr, &d.u2).await;
    for s in [&mut ada, &mut bob] {
        let ack = s.call("join-course", json!({"courseId": COURSE})).await;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    let sent = ada
        .call(
            "send-message",
            json!({"courseId": COURSE, "message": "from node A"}),
        )
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let got = bob.expect("new-message", &sent["data"]["id"]).await;
    assert_eq!(got["message"], "from node A");
    let reply = bob
        .call(
            "send-message",
            json!({"courseId": COURSE, "message": "from node B", "replyTo": got["id"]}),
        )
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let back = ada.expect("new-message", &reply["data"]["id"]).await;
    assert_eq!(back["replyTo"]["id"], sent["data"]["id"]);
}
