//! Hostile clients against an in-process server, each with its documented outcome, while a
//! well-behaved member of the same course keeps receiving with bounded latency:
//! - slowloris (headers dribbled a byte at a time): the connection is closed by the header
//!   timeout;
//! - a client that never reads: its queue fills and it is disconnected (`user-left` for others);
//! - huge frames and bodies: `1009` close, `413 PAYLOAD_TOO_LARGE`;
//! - send floods beyond the rate limit: `RATE_LIMITED` acks with `retryAfter`, `429` with
//!   `Retry-After` on REST, the socket stays usable;
//! - floods of junk frames from a client that does not read its errors: disconnected;
//! - 10,000 WebSocket connects/disconnects: no leaked slot, presence settles;
//! - a user spamming typing on/off: the others are not disconnected and still get messages.

mod support;

use std::time::{Duration, Instant};

use fastwebsockets::{Frame, OpCode, Payload};
use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The latency a well-behaved member must keep while others misbehave (debug build, 2 cores).
const BOUND: Duration = Duration::from_secs(2);

/// Sends a message over REST as `sender` and returns how long until `reader` got it.
async fn probe(w: &World, sender: &str, reader: &mut Ws, tag: &str) -> Duration {
    let started = Instant::now();
    let text = format!("probe {tag} {}", started.elapsed().as_nanos());
    w.send(sender, &text).await;
    let t = text.clone();
    reader
        .expect_where("new-message", move |d| d["message"] == t.as_str())
        .await;
    started.elapsed()
}

fn assert_bounded(latencies: &[Duration], what: &str) {
    let worst = latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{what}: {} probes, worst latency {worst:?}",
        latencies.len()
    );
    assert!(!latencies.is_empty());
    assert!(worst < BOUND, "{what}: a bystander waited {worst:?}");
}

fn busy_config() -> chat_host::Config {
    let mut c = config();
    c.engine.rate_limit_burst = 1_000_000;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_cut_and_others_carry_on() {
    let w = World::with(busy_config()).await;
    let mut bob = w.joined(&w.u2).await;
    let n = 50;
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(TcpStream::connect(w.addr).await.unwrap());
    }
    let head = b"GET /api/v1/chat/course/c1 HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let started = Instant::now();
    let mut lat = Vec::new();
    let mut closed = vec![None; n];
    let mut i = 0usize;
    // Dribble one byte per connection every 250 ms, for at most 45 s.
    while closed.iter().any(Option::is_none) && started.elapsed() < Duration::from_secs(45) {
        for (k, c) in conns.iter_mut().enumerate() {
            if closed[k].is_some() {
                continue;
            }
            let b = if i < head.len() { head[i] } else { b'a' };
            let mut buf = [0u8; 512];
            let gone = c.write_all(&[b]).await.is_err()
                || matches!(
                    tokio::time::timeout(Duration::from_millis(1), c.read(&mut buf)).await,
                    Ok(Ok(0)) | Ok(Err(_)) | Ok(Ok(_))
                );
            if gone {
                closed[k] = Some(started.elapsed());
            }
        }
        i += 1;
        if i.is_multiple_of(8) {
            lat.push(probe(&w, &w.i1, &mut bob, "slowloris").await);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_bounded(&lat, "slowloris");
    let last = closed
        .iter()
        .map(|c| c.expect("every slowloris connection is closed by the server"))
        .max()
        .unwrap();
    eprintln!("slowloris: {n} connections dribbling headers, all closed by {last:?}");
    assert!(last < Duration::from_secs(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_and_others_carry_on() {
    let mut c = busy_config();
    c.send_queue = 8;
    c.write_timeout = Duration::from_millis(500);
    c.engine.max_message_chars = 60_000;
    c.max_body_bytes = 128 * 1024;
    let w = World::with(c).await;
    let mut bob = w.joined(&w.u2).await;
    let mut deaf = small_buffer_ws(w.addr, &w.u1).await;
    let join = json!({"event": "join-course", "data": {"courseId": COURSE}}).to_string();
    deaf.write_frame(Frame::text(Payload::Owned(join.into_bytes())))
        .await
        .unwrap();
    bob.expect_where("user-joined", |d| d["user"]["id"] == "u1")
        .await;
    // Big messages until the deaf client is gone; Bob must get each one promptly.
    let text = "z".repeat(40_000);
    let mut lat = Vec::new();
    let mut dropped = false;
    for i in 0..400 {
        let started = Instant::now();
        w.send(&w.i1, &text).await;
        loop {
            let v = bob.next(WAIT).await.expect("Bob keeps receiving");
            if v["event"] == "user-left" && v["data"]["user"]["id"] == "u1" {
                dropped = true;
            }
            if v["event"] == "new-message" {
                break;
            }
        }
        lat.push(started.elapsed());
        if dropped {
            eprintln!("never-reading client: dropped after {} messages", i + 1);
            break;
        }
    }
    assert!(dropped, "the never-reading client was not disconnected");
    assert_bounded(&lat, "never-reading client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_frames_and_bodies_are_refused_and_others_carry_on() {
    let w = World::start().await;
    let mut bob = w.joined(&w.u2).await;
    let max = chat_host::Config::default().max_frame_bytes;
    // One frame over the cap.
    let mut big = w.joined(&w.u1).await;
    big.send_frame(Frame::text(Payload::Owned(vec![b' '; max + 1])));
    assert_eq!(big.closed(WAIT).await, Some(1009), "one huge frame");
    // Fragments adding up over the cap.
    let mut frag = w.joined(&w.u1).await;
    frag.send_frame(Frame::new(
        false,
        OpCode::Text,
        None,
        Payload::Owned(vec![b' '; max / 3]),
    ));
    for _ in 0..4 {
        frag.send_frame(Frame::new(
            false,
            OpCode::Continuation,
            None,
            Payload::Owned(vec![b' '; max / 3]),
        ));
    }
    assert_eq!(
        frag.closed(WAIT).await,
        Some(1009),
        "fragments over the cap"
    );
    // A declared 1 GB body is refused before it is read.
    let mut s = TcpStream::connect(w.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/chat/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
        w.u1
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("PAYLOAD_TOO_LARGE"), "{answer}");
    // A chunked body that turns out too large.
    let body = json!({"courseId": COURSE, "message": "x".repeat(200_000)});
    let r = w.post(&w.u1, "/api/v1/chat/send", body).await;
    assert_eq!((r.status, r.code().as_str()), (413, "PAYLOAD_TOO_LARGE"));
    // A file over the limit in multipart.
    let mut c = config();
    c.engine.max_file_bytes = 64 * 1024;
    let w2 = World::with(c).await;
    let mut bytes = PNG.to_vec();
    bytes.resize(200 * 1024, 0);
    let body = multipart(
        &[("courseId", COURSE)],
        Some(("big.png", "image/png", &bytes)),
    );
    let r = request(
        w2.addr,
        "POST",
        "/api/v1/chat/send",
        Some(&w2.u1),
        Some(body),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (413, "PAYLOAD_TOO_LARGE"));
    let lat = vec![probe(&w, &w.i1, &mut bob, "huge").await];
    assert_bounded(&lat, "huge frames");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_floods_are_rate_limited_and_others_carry_on() {
    let w = World::start().await; // default: 10 sends per 10 s per user per course
    let mut bob = w.joined(&w.u2).await;
    let mut ada = w.joined(&w.u1).await;
    let n = 300;
    let ids: Vec<u64> = (0..n)
        .map(|i| {
            ada.emit(
                "send-message",
                json!({"courseId": COURSE, "message": format!("flood {i}")}),
            )
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for id in ids {
        let ack = ada.ack(id).await;
        if ack["ok"] == true {
            ok += 1;
        } else {
            assert_eq!(ack["error"]["code"], "RATE_LIMITED", "{ack}");
            assert!(ack["error"]["retryAfter"].as_u64().unwrap() >= 1, "{ack}");
            limited += 1;
        }
    }
    eprintln!("send flood: {n} frames, {ok} accepted, {limited} RATE_LIMITED");
    assert_eq!(ok, 10, "the burst is 10");
    assert_eq!(limited, n - 10);
    // The flooder's socket still works for other events.
    let ack = ada
        .call("typing", json!({"courseId": COURSE, "isTyping": false}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    // REST: 429 with Retry-After.
    let r = w
        .post(
            &w.u1,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": "more"}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (429, "RATE_LIMITED"));
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // Bob got exactly the 10 accepted, and still gets others' messages promptly.
    let frames = bob.drain(Duration::from_millis(500)).await;
    assert_eq!(Ws::named(&frames, "new-message").count(), 10);
    let lat = vec![
        probe(&w, &w.i1, &mut bob, "flood").await,
        probe(&w, &w.i1, &mut bob, "flood").await,
    ];
    assert_bounded(&lat, "send flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_floods_from_a_deaf_client_end_with_a_disconnect() {
    let mut c = busy_config();
    c.send_queue = 16;
    c.write_timeout = Duration::from_millis(500);
    let w = World::with(c).await;
    let mut bob = w.joined(&w.u2).await;
    // Raw socket, tiny receive buffer, never reads: thousands of junk frames, each answered with
    // an error event that it never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(w.addr).await.unwrap();
    let mut deaf = handshake(w.addr, stream, &format!("/ws?token={}", w.u1), None)
        .await
        .unwrap();
    let started = Instant::now();
    let mut sent = 0u64;
    let mut lat = Vec::new();
    while started.elapsed() < Duration::from_secs(20) {
        let junk = Frame::text(Payload::Owned(format!("{{not json {sent}").into_bytes()));
        match tokio::time::timeout(Duration::from_secs(2), deaf.write_frame(junk)).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
        if sent.is_multiple_of(2000) {
            lat.push(probe(&w, &w.i1, &mut bob, "junk").await);
        }
    }
    eprintln!(
        "junk flood: disconnected after {sent} frames in {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a deaf junk flooder is never cut"
    );
    lat.push(probe(&w, &w.i1, &mut bob, "junk").await);
    assert_bounded(&lat, "junk flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_disconnect_churn_leaks_nothing() {
    let w = World::with(busy_config()).await;
    let mut bob = w.joined(&w.u2).await;
    let total: usize = if std::env::var("CHAT_LONG_TESTS").is_ok_and(|v| v == "1") {
        50_000
    } else {
        10_000
    };
    let workers: usize = 16;
    let started = Instant::now();
    let addr = w.addr;
    let mut tasks = Vec::new();
    for k in 0..workers {
        let tok = if k.is_multiple_of(2) {
            w.u1.clone()
        } else {
            w.i1.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut refused = 0;
            for j in 0..total / workers {
                let stream = TcpStream::connect(addr).await.unwrap();
                match handshake(addr, stream, &format!("/ws?token={tok}"), None).await {
                    Ok(mut ws) => {
                        if j.is_multiple_of(4) {
                            let join =
                                json!({"event": "join-course", "data": {"courseId": COURSE}})
                                    .to_string();
                            let _ = ws
                                .write_frame(Frame::text(Payload::Owned(join.into_bytes())))
                                .await;
                        }
                        let _ = ws.write_frame(Frame::close(1000, b"")).await;
                    }
                    Err(429) => refused += 1,
                    Err(code) => panic!("handshake refused with {code}"),
                }
            }
            refused
        }));
    }
    let mut lat = Vec::new();
    while tasks.iter().any(|t| !t.is_finished()) {
        lat.push(probe(&w, &w.u2, &mut bob, "churn").await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await.unwrap();
    }
    eprintln!(
        "churn: {total} WebSocket connects/disconnects in {:?}, {refused} refused (per-user cap)",
        started.elapsed()
    );
    assert_bounded(&lat, "churn");
    // Every slot comes back: a user can open the full quota again, and presence settles.
    let deadline = Instant::now() + WAIT;
    loop {
        let r = w.get(&w.u2, "/api/v1/chat/online/c1").await;
        let online: Vec<String> = r
            .data()
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect();
        if online == ["u2"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "presence never settled: {online:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let quota = chat_host::Config::default().max_connections_per_user;
    let mut open = Vec::new();
    for _ in 0..quota {
        open.push(
            Ws::connect(w.addr, &w.u1, true)
                .await
                .expect("a slot leaked"),
        );
    }
    assert_eq!(Ws::connect(w.addr, &w.u1, true).await.err(), Some(429));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_spam_does_not_drown_the_room() {
    let w = World::start().await;
    let mut bob = w.joined(&w.u2).await;
    let mut ada = w.joined(&w.u1).await;
    let n: u32 = 5_000;
    let started = Instant::now();
    let mut lat = Vec::new();
    let mut relayed = 0;
    for i in 0..n {
        ada.emit_no_ack(
            "typing",
            json!({"courseId": COURSE, "isTyping": i.is_multiple_of(2)}),
        );
        if i % 1000 == 999 {
            let frames = bob.drain(Duration::from_millis(200)).await;
            let typing = Ws::named(&frames, "user-typing").count();
            relayed += typing;
            let close = frames.iter().find(|f| f.get("__close").is_some());
            eprintln!(
                "typing spam: after {} events Bob got {typing} user-typing, close {close:?}",
                i + 1
            );
            lat.push(probe(&w, &w.i1, &mut bob, "typing").await);
        }
    }
    let ack = ada
        .call("typing", json!({"courseId": COURSE, "isTyping": false}))
        .await;
    assert_eq!(ack["ok"], true, "the spammer's socket is still there");
    lat.push(probe(&w, &w.i1, &mut bob, "typing").await);
    let frames = bob.drain(Duration::from_millis(500)).await;
    assert!(
        !frames.iter().any(|f| f.get("__close").is_some()),
        "Bob was disconnected by Ada's typing spam"
    );
    relayed += Ws::named(&frames, "user-typing").count();
    eprintln!(
        "typing spam: {n} events in {:?}, {relayed} relayed",
        started.elapsed()
    );
    // chat-core limits new indicators (20 per 10 s by default); stops pair with them.
    assert!(
        relayed <= 50,
        "{relayed} user-typing events reached the room"
    );
    assert_bounded(&lat, "typing spam");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_resume_is_replayed_not_disconnected() {
    // Default socket queue (256): a client that missed far more than that resumes in one go.
    let w = World::with(busy_config()).await;
    let n = 1_500u64;
    let ines = chat_core::Actor::new("i1", "Ines", chat_core::Role::Instructor);
    for i in 0..n {
        let req = chat_core::SendMessage {
            course_id: COURSE.into(),
            message: format!("backlog {i}"),
            ..Default::default()
        };
        w.server.engine().send(&ines, req).await.unwrap();
    }
    let mut bob = w.ws(&w.u2).await;
    let ack = bob
        .call("join-course", json!({"courseId": COURSE, "sinceSeq": 0}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let mut last = 0;
    while last < n {
        let v = bob
            .next(WAIT)
            .await
            .unwrap_or_else(|| panic!("replay stopped at {last} of {n}"));
        assert!(v.get("__close").is_none(), "closed at {last} of {n}: {v}");
        if v["event"] == "new-message" {
            let seq = v["data"]["seq"].as_u64().unwrap();
            assert_eq!(seq, last + 1);
            last = seq;
        }
    }
    eprintln!("long resume: {n} changes replayed over one socket");
}
