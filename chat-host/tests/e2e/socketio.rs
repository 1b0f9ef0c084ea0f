//! Socket.IO on `/socket.io/` at the wire level: polling, WebSocket from the start, the upgrade,
//! and the heartbeat. (The npm socket.io-client itself runs in `tests/socketio/run.sh`.)

use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use crate::support::*;

const SEP: char = '\x1e';

/// A long-polling Engine.IO client.
struct Poller {
    addr: std::net::SocketAddr,
    sid: String,
    /// Packets received but not looked at yet.
    backlog: std::sync::Mutex<std::collections::VecDeque<String>>,
}

impl Poller {
    async fn open(addr: std::net::SocketAddr) -> (Poller, Value) {
        let open = sio_open(addr).await;
        let sid = open["sid"].as_str().unwrap().to_string();
        let backlog = Default::default();
        (Poller { addr, sid, backlog }, open)
    }

    fn path(&self) -> String {
        format!("/socket.io/?EIO=4&transport=polling&sid={}", self.sid)
    }

    async fn post(&self, body: &str) -> Resp {
        let body = Some((
            "text/plain;charset=UTF-8".to_string(),
            bytes::Bytes::from(body.to_string()),
        ));
        request(self.addr, "POST", &self.path(), None, body).await
    }

    async fn poll(&self) -> Resp {
        request(self.addr, "GET", &self.path(), None, None).await
    }

    /// The next packet starting with `prefix` (from earlier polls first, then polling, answering
    /// pings); packets before it are dropped, those after it kept for the next call.
    async fn until(&self, prefix: &str) -> String {
        for _ in 0..20 {
            loop {
                let next = self.backlog.lock().unwrap().pop_front();
                let Some(p) = next else { break };
                if p == "2" {
                    self.post("3").await;
                }
                if p.starts_with(prefix) {
                    return p;
                }
            }
            let r = tokio::time::timeout(WAIT, self.poll()).await.expect("poll");
            assert_eq!(r.status, 200, "{}", r.text());
            let mut backlog = self.backlog.lock().unwrap();
            backlog.extend(r.text().split(SEP).map(str::to_string));
        }
        panic!("no packet starting with {prefix}");
    }

    async fn connect(&self, token: &str) {
        let r = self.post(&format!("40{}", json!({ "token": token }))).await;
        assert_eq!(r.text(), "ok");
        let p = self.until("4").await;
        assert!(p.starts_with("40{\"sid\""), "{p}");
    }

    /// Joins the test course with ack id 1; returns the ack's payload.
    async fn join(&self) -> Value {
        self.post(&format!(
            "421{}",
            json!(["join-course", {"courseId": COURSE}])
        ))
        .await;
        ack_of(&self.until("43").await, 1)
    }
}

fn ack_of(packet: &str, id: u64) -> Value {
    let prefix = format!("43{id}[");
    assert!(packet.starts_with(&prefix), "{packet}");
    let v: Value = serde_json::from_str(&packet[prefix.len() - 1..]).unwrap();
    v[0].clone()
}

#[tokio::test]
async fn polling_connect_events_acks_and_refusal() {
    let w = World::start().await;
    let (p, open) = Poller::open(w.addr).await;
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(open["pingInterval"], json!(25000));
    assert_eq!(open["pingTimeout"], json!(20000));
    assert_eq!(open["maxPayload"], json!(1_000_000));
    p.connect(&w.u1).await;
    let ack = p.join().await;
    assert_eq!(ack["ok"], true);
    assert_eq!(ack["data"]["courseId"], COURSE);
    // Someone else's message arrives as an event.
    let sent = w.send(&w.u2, "over REST").await;
    let ev = p.until("42[\"new-message\"").await;
    let ev: Value = serde_json::from_str(&ev[2..]).unwrap();
    assert_eq!(ev[1]["id"], sent["id"]);
    // A failed event with an ack id, then without.
    p.post(&format!(
        "427{}",
        json!(["edit-message", {"messageId": sent["id"], "newMessage": "x"}])
    ))
    .await;
    let ack = ack_of(&p.until("43").await, 7);
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["error"]["code"], "FORBIDDEN");
    p.post(&format!("42{}", json!(["typing", {"courseId": 5}])))
        .await;
    let ev = p.until("42[\"error\"").await;
    assert!(ev.contains("VALIDATION"), "{ev}");
    // A binary event is refused, its attachment skipped.
    p.post(&format!(
        "451-9{}{SEP}bAQID",
        json!(["send-message", {"_placeholder": true, "num": 0}])
    ))
    .await;
    let ack = ack_of(&p.until("43").await, 9);
    assert_eq!(ack["error"]["code"], "VALIDATION");
    p.post("1").await;
    assert_eq!(p.poll().await.status, 400);

    // A refused token.
    let (q, _) = Poller::open(w.addr).await;
    q.post(&format!("40{}", json!({"token": "nope"}))).await;
    let refused = q.until("44").await;
    let v: Value = serde_json::from_str(&refused[2..]).unwrap();
    assert_eq!(v["message"], "UNAUTHORIZED");
    assert_eq!(v["data"]["code"], "UNAUTHORIZED");
    w.server.shutdown().await.unwrap();
}

async fn ws_open(w: &World, path: &str) -> WebSocket<TokioIo<Upgraded>> {
    let stream = TcpStream::connect(w.addr).await.unwrap();
    handshake(w.addr, stream, path, None)
        .await
        .expect("upgrade")
}

async fn ws_send(ws: &mut WebSocket<TokioIo<Upgraded>>, text: &str) {
    ws.write_frame(Frame::text(Payload::Owned(text.as_bytes().to_vec())))
        .await
        .unwrap();
}

/// The next text message (answering Engine.IO pings).
async fn ws_recv(ws: &mut WebSocket<TokioIo<Upgraded>>) -> String {
    loop {
        let f = tokio::time::timeout(WAIT, ws.read_frame())
            .await
            .expect("a message in time")
            .unwrap();
        match f.opcode {
            OpCode::Text => {
                let t = String::from_utf8(f.payload.to_vec()).unwrap();
                if t == "2" {
                    ws_send(ws, "3").await;
                    continue;
                }
                return t;
            }
            OpCode::Close => return "<close>".into(),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn websocket_from_the_start() {
    let w = World::start().await;
    let mut ws = ws_open(&w, "/socket.io/?EIO=4&transport=websocket").await;
    let open = ws_recv(&mut ws).await;
    let open: Value = serde_json::from_str(&open[1..]).unwrap();
    assert_eq!(open["upgrades"], json!([]));
    ws_send(&mut ws, &format!("40{}", json!({"token": w.u1}))).await;
    assert!(ws_recv(&mut ws).await.starts_with("40{\"sid\""));
    ws_send(
        &mut ws,
        &format!("423{}", json!(["join-course", {"courseId": COURSE}])),
    )
    .await;
    loop {
        let p = ws_recv(&mut ws).await;
        if p.starts_with("43") {
            assert_eq!(ack_of(&p, 3)["ok"], true);
            break;
        }
    }
    w.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn websocket_pings_are_answered_and_closes_echoed() {
    let w = World::start().await;
    let mut ws = ws_open(&w, "/socket.io/?EIO=4&transport=websocket").await;
    assert!(ws_recv(&mut ws).await.starts_with('0'));
    ws.write_frame(Frame::new(
        true,
        OpCode::Ping,
        None,
        Payload::Owned(b"hi".to_vec()),
    ))
    .await
    .unwrap();
    let pong = tokio::time::timeout(WAIT, ws.read_frame())
        .await
        .expect("a pong in time")
        .unwrap();
    assert_eq!(pong.opcode, OpCode::Pong);
    assert_eq!(&pong.payload[..], b"hi");
    ws.write_frame(Frame::close(1000, b"")).await.unwrap();
    assert_eq!(ws_recv(&mut ws).await, "<close>");
    w.server.shutdown().await.unwrap();
}

/// A WebSocket for polling session `sid`, its probe answered (the upgrade not yet done: `5`).
async fn probe(w: &World, sid: &str) -> WebSocket<TokioIo<Upgraded>> {
    let mut ws = ws_open(
        w,
        &format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
    )
    .await;
    ws_send(&mut ws, "2probe").await;
    assert_eq!(ws_recv(&mut ws).await, "3probe");
    ws
}

#[tokio::test]
async fn upgrade_from_polling_keeps_queued_packets() {
    let w = World::start().await;
    let (p, _) = Poller::open(w.addr).await;
    p.connect(&w.u1).await;
    p.join().await;
    // A long-poll is pending when the probe comes: it ends with a noop.
    let pending = tokio::spawn({
        let addr = w.addr;
        let path = p.path();
        async move { request(addr, "GET", &path, None, None).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ws = probe(&w, &p.sid).await;
    let noop = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(noop.text(), "6");
    // Polls during the switch get a noop too; what happens meanwhile is queued.
    assert_eq!(p.poll().await.text(), "6");
    let sent = w.send(&w.u2, "during the upgrade").await;
    ws_send(&mut ws, "5").await;
    let ev = ws_recv(&mut ws).await;
    assert!(ev.starts_with("42[\"new-message\""), "{ev}");
    assert!(ev.contains(sent["id"].as_str().unwrap()), "{ev}");
    // Polling is over for this session.
    assert_eq!(p.poll().await.status, 400);
    ws_send(
        &mut ws,
        &format!(
            "424{}",
            json!(["typing", {"courseId": COURSE, "isTyping": true}])
        ),
    )
    .await;
    assert_eq!(ack_of(&ws_recv(&mut ws).await, 4)["ok"], true);
    w.server.shutdown().await.unwrap();
}

/// The seqs of the `new-message` events read until `n` of them came.
async fn new_message_seqs(ws: &mut WebSocket<TokioIo<Upgraded>>, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let p = ws_recv(ws).await;
        assert_ne!(p, "<close>", "the session ended");
        if p.starts_with("42[\"new-message\"") {
            let v: Value = serde_json::from_str(&p[2..]).unwrap();
            seqs.push(v[1]["seq"].as_u64().unwrap());
        }
    }
    seqs
}

/// On a WebSocket a room's events go to the writer without the session's driver. Those the
/// driver forwarded before the switch and those the writer reads itself come in seq order, none
/// lost; leaving the namespace and connecting again does not end the session, and events go on.
#[tokio::test]
async fn events_stay_in_order_across_the_upgrade_and_a_namespace_reconnect() {
    let mut c = config();
    c.engine.rate_limit_burst = 1_000;
    let w = World::with(c).await;
    let (p, _) = Poller::open(w.addr).await;
    p.connect(&w.u1).await;
    p.join().await;
    let mut ws = probe(&w, &p.sid).await;
    let mut sent = vec![w.send(&w.u2, "before the switch").await];
    ws_send(&mut ws, "5").await;
    for i in 0..20 {
        sent.push(w.send(&w.u2, &format!("after {i}")).await);
    }
    let seqs: Vec<u64> = sent.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(new_message_seqs(&mut ws, sent.len()).await, seqs);

    ws_send(&mut ws, "41").await;
    ws_send(&mut ws, &format!("40{}", json!({"token": w.u1}))).await;
    loop {
        let p = ws_recv(&mut ws).await;
        assert_ne!(p, "<close>", "leaving the namespace ended the session");
        if p.starts_with("40{\"sid\"") {
            break;
        }
    }
    ws_send(
        &mut ws,
        &format!("427{}", json!(["join-course", {"courseId": COURSE}])),
    )
    .await;
    loop {
        let p = ws_recv(&mut ws).await;
        assert_ne!(p, "<close>", "the session ended");
        if p.starts_with("437") {
            assert_eq!(ack_of(&p, 7)["ok"], true);
            break;
        }
    }
    let again = w.send(&w.u2, "after the reconnect").await;
    assert_eq!(
        new_message_seqs(&mut ws, 1).await,
        vec![again["seq"].as_u64().unwrap()]
    );
    w.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_silent_session_is_closed_after_the_ping_timeout() {
    let mut config = config();
    config.ping_interval = Duration::from_millis(200);
    config.ping_timeout = Duration::from_millis(300);
    let w = World::with(config).await;
    let mut watcher = w.joined(&w.u2).await;
    let (p, open) = Poller::open(w.addr).await;
    assert_eq!(open["pingInterval"], json!(200));
    assert_eq!(open["pingTimeout"], json!(300));
    p.connect(&w.u1).await;
    p.join().await;
    // No more polls, no pong: closed within interval + timeout, and u1 leaves the room.
    let left = watcher
        .expect_where("user-left", |d| d["user"]["id"] == "u1")
        .await;
    assert_eq!(left["courseId"], COURSE);
    assert_eq!(p.poll().await.status, 400);
    w.server.shutdown().await.unwrap();
}
