//! The native event protocol on `/ws`: events, acks, presence, typing, resume, heartbeats, limits.

use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload};
use serde_json::{json, Value};

use crate::support::*;

const QUIET: Duration = Duration::from_millis(300);

fn ids(users: &Value) -> Vec<String> {
    users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_event_flows_to_the_room() {
    let w = World::start().await;
    let mut bob = w.ws(&w.u2).await;
    let ack = bob.call("join-course", json!({"courseId": COURSE})).await;
    assert_eq!(ack["ok"], true);
    assert_eq!(ack["data"]["courseId"], COURSE);
    assert_eq!(ids(&ack["data"]["users"]), vec!["u2"]);
    let online = bob.expect("online-users").await;
    assert_eq!(ids(&online["users"]), vec!["u2"]);

    let mut ada = w.ws(&w.u1).await;
    let ack = ada.call("join-course", json!({"courseId": COURSE})).await;
    assert_eq!(ids(&ack["data"]["users"]), vec!["u1", "u2"]);
    let joined = bob.expect("user-joined").await;
    assert_eq!(
        (joined["courseId"].as_str(), joined["user"]["id"].as_str()),
        (Some(COURSE), Some("u1"))
    );
    assert_eq!(joined["user"]["isOnline"], true);
    bob.expect_where("online-users", |d| ids(&d["users"]) == ["u1", "u2"])
        .await;

    // send-message: the ack is the message; the room gets new-message.
    let ack = ada
        .call(
            "send-message",
            json!({"courseId": COURSE, "message": "hi Bob", "clientId": "c-1"}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let sent = ack["data"].clone();
    assert_eq!(
        (sent["message"].as_str(), sent["clientId"].as_str()),
        (Some("hi Bob"), Some("c-1"))
    );
    let got = bob.expect("new-message").await;
    assert_eq!(got, sent);
    let own = ada.expect("new-message").await;
    assert_eq!(own["id"], sent["id"]);
    let id = sent["id"].as_str().unwrap().to_string();

    // edit-message: only the sender.
    let ack = bob
        .call(
            "edit-message",
            json!({"messageId": id, "newMessage": "hijack"}),
        )
        .await;
    assert_eq!(
        (ack["ok"].as_bool(), ack["error"]["code"].as_str()),
        (Some(false), Some("FORBIDDEN"))
    );
    assert!(ack["error"]["message"].is_string());
    let ack = ada
        .call(
            "edit-message",
            json!({"messageId": id, "newMessage": "hi Bob!"}),
        )
        .await;
    assert_eq!(ack["data"]["isEdited"], true);
    let edited = bob.expect("message-edited").await;
    assert_eq!(
        (edited["id"].as_str(), edited["message"].as_str()),
        (Some(id.as_str()), Some("hi Bob!"))
    );

    // mark-read.
    let ack = bob.call("mark-read", json!({"messageId": id})).await;
    assert_eq!(ack["data"]["userId"], "u2");
    let read = ada.expect("message-read").await;

    // A REST (sending also reads everything before, so this comes after mark-read). send reaches sockets too.
    let rest = w.send(&w.u2, "from REST").await;
    assert_eq!(ada.expect("new-message").await["id"], rest["id"]);

    assert_eq!(
        (
            read["messageId"].as_str(),
            read["userId"].as_str(),
            read["courseId"].as_str()
        ),
        (Some(id.as_str()), Some("u2"), Some(COURSE))
    );
    assert!(read["readAt"].is_string());

    // delete-message: by the instructor.
    let mut ines = w.joined(&w.i1).await;
    let ack = ines.call("delete-message", json!({"messageId": id})).await;
    assert_eq!(ack["data"]["isDeleted"], true);
    let deleted = bob.expect("message-deleted").await;
    assert_eq!(deleted["messageId"], id.as_str());
    assert_eq!(deleted["courseId"], COURSE);
    assert!(deleted["seq"].as_u64().unwrap() > sent["seq"].as_u64().unwrap());

    // A failed event without an ack gets an `error` event.
    ada.emit_no_ack("send-message", json!({"courseId": COURSE, "message": ""}));
    let err = ada.expect("error").await;
    assert_eq!(err["code"], "VALIDATION");

    // leave-course: the room hears user-left and the leaver gets no more events.
    let ack = ada.call("leave-course", json!({"courseId": COURSE})).await;
    assert_eq!(ack["data"], json!({"courseId": COURSE}));
    let left = bob.expect("user-left").await;
    assert_eq!(left["user"]["id"], "u1");
    ada.drain(QUIET).await;
    w.send(&w.u2, "after leaving").await;
    assert!(Ws::named(&ada.drain(QUIET).await, "new-message")
        .next()
        .is_none());
}

#[tokio::test]
async fn outsiders_and_bad_frames_get_errors_without_losing_the_socket() {
    let w = World::start().await;
    let mut xavier = w.ws(&w.x1).await;
    let ack = xavier
        .call("join-course", json!({"courseId": COURSE}))
        .await;
    assert_eq!(ack["error"]["code"], "NOT_ENROLLED");
    let ack = xavier
        .call("join-course", json!({"courseId": "no-such"}))
        .await;
    assert_eq!(ack["error"]["code"], "NOT_FOUND");

    let mut ada = w.joined(&w.u1).await;
    ada.send_raw("this is not JSON");
    assert_eq!(ada.expect("error").await["code"], "VALIDATION");
    ada.send_raw("[1,2,3]");
    assert_eq!(ada.expect("error").await["code"], "VALIDATION");
    ada.send_raw(r#"{"data":{}}"#);
    assert_eq!(ada.expect("error").await["code"], "VALIDATION");
    let ack = ada.call("teleport", json!({})).await;
    assert_eq!(
        (ack["ok"].as_bool(), ack["error"]["code"].as_str()),
        (Some(false), Some("VALIDATION"))
    );
    let ack = ada
        .call("send-message", json!({"message": "no course"}))
        .await;
    assert_eq!(ack["error"]["code"], "VALIDATION");
    let ack = ada
        .call("typing", json!({"courseId": COURSE, "isTyping": "maybe"}))
        .await;
    assert_eq!(ack["error"]["code"], "VALIDATION");
    ada.send_raw(r#"{"event":"mark-read","data":null}"#);
    assert_eq!(ada.expect("error").await["code"], "VALIDATION");
    ada.send_frame(Frame::binary(Payload::Owned(vec![1, 2, 3])));
    assert_eq!(ada.expect("error").await["code"], "VALIDATION");
    // Still alive.
    let ack = ada
        .call(
            "send-message",
            json!({"courseId": COURSE, "message": "still here"}),
        )
        .await;
    assert_eq!(ack["ok"], true);
}

#[tokio::test]
async fn string_ack_ids_are_echoed() {
    let w = World::start().await;
    let mut ada = w.joined(&w.u1).await;
    ada.send_raw(r#"{"event":"leave-course","data":{"courseId":"c1"},"ack":"abc"}"#);
    let frames = ada.drain(QUIET).await;
    let ack = frames
        .iter()
        .find(|f| f["ack"] == "abc")
        .expect("ack with a string id");
    assert_eq!(ack["ok"], true);
}

#[tokio::test]
async fn presence_counts_tabs_once() {
    let w = World::start().await;
    let mut bob = w.joined(&w.u2).await;
    bob.drain(QUIET).await;
    let mut tab1 = w.joined(&w.u1).await;
    let mut tab2 = w.joined(&w.u1).await;
    let frames = bob.drain(QUIET).await;
    assert_eq!(Ws::named(&frames, "user-joined").count(), 1, "{frames:?}");
    let tab2_frames = tab2.drain(QUIET).await;
    let online = Ws::named(&tab2_frames, "online-users")
        .last()
        .expect("joiner gets online-users");
    assert_eq!(ids(&online["users"]), vec!["u1", "u2"]);

    tab1.close();
    assert!(tab1.closed(WAIT).await.is_some());
    let frames = bob.drain(QUIET).await;
    assert_eq!(
        Ws::named(&frames, "user-left").count(),
        0,
        "one tab is still open: {frames:?}"
    );
    let online = w.get(&w.u2, "/api/v1/chat/online/c1").await.data();
    assert_eq!(ids(&online), vec!["u1", "u2"]);

    tab2.close();
    let left = bob.expect("user-left").await;
    assert_eq!(left["user"]["id"], "u1");
    assert_eq!(left["user"]["isOnline"], false);
    bob.expect_where("online-users", |d| ids(&d["users"]) == ["u2"])
        .await;
    let online = w.get(&w.u2, "/api/v1/chat/online/c1").await.data();
    assert_eq!(ids(&online), vec!["u2"]);
    let _ = tab2.drain(QUIET).await;
}

#[tokio::test]
async fn typing_is_relayed_to_others_and_expires() {
    let mut c = config();
    c.engine.typing_ttl = Duration::from_millis(400);
    let w = World::with(c).await;
    let mut bob = w.joined(&w.u2).await;
    let mut ada = w.joined(&w.u1).await;
    bob.drain(QUIET).await;
    ada.drain(QUIET).await;
    let ack = ada
        .call("typing", json!({"courseId": COURSE, "isTyping": true}))
        .await;
    assert_eq!(ack["data"], json!({"courseId": COURSE, "isTyping": true}));
    let t = bob.expect("user-typing").await;
    assert_eq!(
        t,
        json!({"courseId": COURSE, "userId": "u1", "name": "Ada", "isTyping": true})
    );
    let started = tokio::time::Instant::now();
    let t = bob.expect("user-typing").await;
    assert_eq!(t["isTyping"], false, "expired");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "expired too early"
    );
    // Never to the typist.
    assert!(Ws::named(&ada.drain(QUIET).await, "user-typing")
        .next()
        .is_none());
    // An explicit stop is relayed at once.
    ada.call("typing", json!({"courseId": COURSE, "isTyping": true}))
        .await;
    bob.expect_where("user-typing", |d| d["isTyping"] == true)
        .await;
    ada.call("typing", json!({"courseId": COURSE, "isTyping": false}))
        .await;
    bob.expect_where("user-typing", |d| d["isTyping"] == false)
        .await;
}

#[tokio::test]
async fn resume_with_since_seq_replays_what_was_missed() {
    let w = World::start().await;
    let mut bob = w.joined(&w.u2).await;
    let m1 = w.send(&w.u1, "one").await;
    let seen = bob.expect("new-message").await;
    assert_eq!(seen["id"], m1["id"]);
    let last_seq = seen["changeSeq"].as_u64().unwrap();
    bob.close();
    bob.closed(WAIT).await;

    // While Bob is away, Ada keeps sending, edits one and deletes another.
    let m2 = w.send(&w.u1, "two").await;
    let m3 = w.send(&w.u1, "three").await;
    let edit = format!("/api/v1/chat/edit/{}", m2["id"].as_str().unwrap());
    let edited = w
        .put(&w.u1, &edit, json!({"message": "two (edited)"}))
        .await
        .data();
    let del = format!("/api/v1/chat/delete/{}", m1["id"].as_str().unwrap());
    w.delete(&w.u1, &del).await.data();

    let mut bob = w.ws(&w.u2).await;
    let ack = bob
        .call(
            "join-course",
            json!({"courseId": COURSE, "sinceSeq": last_seq}),
        )
        .await;
    assert_eq!(ack["ok"], true);
    let live = w.send(&w.u1, "live").await;
    let mut changes = Vec::new();
    while changes.len() < 5 {
        let v = bob.next(WAIT).await.expect("replayed events");
        match v["event"].as_str() {
            Some("new-message") => changes.push((
                "new",
                v["data"]["id"].clone(),
                v["data"]["changeSeq"].as_u64().unwrap(),
            )),
            Some("message-edited") => changes.push((
                "edit",
                v["data"]["id"].clone(),
                v["data"]["changeSeq"].as_u64().unwrap(),
            )),
            Some("message-deleted") => changes.push((
                "delete",
                v["data"]["messageId"].clone(),
                v["data"]["seq"].as_u64().unwrap(),
            )),
            _ => {}
        }
    }
    let kinds: Vec<_> = changes.iter().map(|(k, id, _)| (*k, id.clone())).collect();
    assert_eq!(
        kinds,
        vec![
            ("new", m2["id"].clone()),
            ("new", m3["id"].clone()),
            ("edit", m2["id"].clone()),
            ("delete", m1["id"].clone()),
            ("new", live["id"].clone()),
        ]
    );
    let seqs: Vec<u64> = changes.iter().map(|c| c.2).collect();
    assert!(
        seqs.windows(2).all(|p| p[1] == p[0] + 1),
        "gap-free and ordered: {seqs:?}"
    );
    assert_eq!(seqs[0], last_seq + 1);
    assert_eq!(seqs[2], edited["changeSeq"].as_u64().unwrap());
    // No duplicates afterwards.
    assert!(Ws::named(&bob.drain(QUIET).await, "new-message")
        .next()
        .is_none());
}

#[tokio::test]
async fn heartbeats_keep_live_sockets_and_close_silent_ones() {
    let mut c = config();
    c.ping_interval = Duration::from_millis(100);
    c.idle_timeout = Duration::from_millis(600);
    let w = World::with(c).await;
    let mut bob = w.joined(&w.u2).await; // answers pings
                                         // Ada's socket does not answer pings and sends nothing after joining.
    let mut ada = Ws::connect(w.addr, &w.u1, false).await.unwrap();
    let ack = ada.call("join-course", json!({"courseId": COURSE})).await;
    assert_eq!(ack["ok"], true);
    let started = tokio::time::Instant::now();
    let mut pings = 0;
    let code = loop {
        match ada.next(WAIT).await.expect("ping or close") {
            v if v["__ping"] == true => pings += 1,
            v if v.get("__close").is_some() => break v["__close"].as_u64().unwrap(),
            _ => {}
        }
    };
    assert!(pings >= 2, "pings are sent: {pings}");
    assert_eq!(code, 1001);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    let left = bob.expect("user-left").await;
    assert_eq!(left["user"]["id"], "u1");
    // Bob, who answered pings all along, is still connected well past the idle timeout.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let ack = bob
        .call(
            "send-message",
            json!({"courseId": COURSE, "message": "still here"}),
        )
        .await;
    assert_eq!(ack["ok"], true);
}

#[tokio::test]
async fn client_pings_are_answered_and_closes_echoed() {
    let w = World::start().await;
    let mut ada = w.joined(&w.u1).await;
    // Pongs and acks share the writer's queue: both come back, in order.
    ada.send_frame(Frame::new(
        true,
        OpCode::Ping,
        None,
        Payload::Owned(b"are you there".to_vec()),
    ));
    let id = ada.emit("typing", json!({"courseId": COURSE, "isTyping": true}));
    let pong = loop {
        let frame = ada.next(WAIT).await.expect("a pong in time");
        if frame.get("__pong").is_some() {
            break frame;
        }
    };
    assert_eq!(pong, json!({"__pong": "are you there"}));
    assert_eq!(ada.ack(id).await["ok"], true);
    ada.send_frame(Frame::close(1000, b"bye"));
    assert_eq!(ada.closed(WAIT).await, Some(1000));
}

#[tokio::test]
async fn oversized_frames_close_with_1009() {
    let mut c = config();
    c.max_frame_bytes = 4096;
    let w = World::with(c).await;
    let mut ada = w.joined(&w.u1).await;
    let big =
        json!({"event": "send-message", "data": {"courseId": COURSE, "message": "z".repeat(5000)}});
    ada.send_raw(&big.to_string());
    assert_eq!(ada.closed(WAIT).await, Some(1009));
    // Fragmented messages are capped too.
    let mut bob = w.joined(&w.u2).await;
    bob.send_frame(Frame::new(
        false,
        OpCode::Text,
        None,
        Payload::Owned(vec![b' '; 3000]),
    ));
    bob.send_frame(Frame::new(
        true,
        OpCode::Continuation,
        None,
        Payload::Owned(vec![b' '; 3000]),
    ));
    assert_eq!(bob.closed(WAIT).await, Some(1009));
    // A fragmented message within the cap works.
    let mut ines = w.joined(&w.i1).await;
    let text =
        json!({"event": "typing", "data": {"courseId": COURSE, "isTyping": true}, "ack": 99})
            .to_string();
    let (a, b) = text.split_at(10);
    ines.send_frame(Frame::new(
        false,
        OpCode::Text,
        None,
        Payload::Owned(a.as_bytes().to_vec()),
    ));
    ines.send_frame(Frame::new(
        true,
        OpCode::Continuation,
        None,
        Payload::Owned(b.as_bytes().to_vec()),
    ));
    assert_eq!(ines.ack(99).await["ok"], true);
}

#[tokio::test]
async fn connections_per_user_are_capped() {
    let mut c = config();
    c.max_connections_per_user = 2;
    let w = World::with(c).await;
    let a = w.ws(&w.u1).await;
    let _b = w.ws(&w.u1).await;
    assert_eq!(Ws::connect(w.addr, &w.u1, true).await.err(), Some(429));
    let _other = w.ws(&w.u2).await; // per user
    a.close();
    let mut a = a;
    a.closed(WAIT).await;
    // The slot frees once the socket is gone.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match Ws::connect(w.addr, &w.u1, true).await {
            Ok(_) => break,
            Err(429) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(code) => panic!("slot not freed: {code}"),
        }
    }
}

#[tokio::test]
async fn a_slow_client_is_disconnected_and_never_stalls_the_room() {
    let mut c = config();
    c.send_queue = 4;
    c.write_timeout = Duration::from_millis(300);
    c.engine.rate_limit_burst = 100_000;
    c.engine.max_message_chars = 60_000;
    c.max_body_bytes = 128 * 1024;
    let w = World::with(c).await;
    let mut bob = w.joined(&w.u2).await;

    // Ada joins from a socket with a tiny receive buffer, then never reads again.
    let mut slow = small_buffer_ws(w.addr, &w.u1).await;
    let join = json!({"event": "join-course", "data": {"courseId": COURSE}, "ack": 1}).to_string();
    slow.write_frame(Frame::text(Payload::Owned(join.into_bytes())))
        .await
        .unwrap();
    loop {
        let f = slow.read_frame().await.unwrap();
        if f.opcode == OpCode::Text
            && serde_json::from_slice::<Value>(&f.payload).unwrap()["ack"] == 1
        {
            break;
        }
    }
    bob.expect_where("user-joined", |d| d["user"]["id"] == "u1")
        .await;

    // Ines floods the room with big messages: more than the kernel's socket buffers hold.
    let n = 160;
    let text = "w".repeat(50_000);
    let started = tokio::time::Instant::now();
    for _ in 0..n {
        w.send(&w.i1, &text).await;
    }
    // Bob keeps up with every one of them.
    let mut got = 0;
    let mut ada_left = false;
    while got < n {
        let v = bob.next(WAIT).await.expect("Bob is never stalled");
        match v["event"].as_str() {
            Some("new-message") => got += 1,
            Some("user-left") if v["data"]["user"]["id"] == "u1" => ada_left = true,
            _ => {}
        }
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    if !ada_left {
        bob.expect_where("user-left", |d| d["user"]["id"] == "u1")
            .await;
    }
    // The slow socket was cut: reading what it buffered ends before all messages.
    let mut seen = 0;
    while let Ok(Ok(f)) = tokio::time::timeout(WAIT, slow.read_frame()).await {
        match f.opcode {
            OpCode::Text => seen += 1,
            OpCode::Close => break,
            _ => {}
        }
    }
    assert!(
        seen < n,
        "the slow client was disconnected before getting all {n} ({seen})"
    );
}

#[tokio::test]
async fn an_admin_watching_is_not_listed_online() {
    let w = World::start().await;
    let mut ada = w.joined(&w.u1).await;
    ada.expect("online-users").await;
    // The admin is not enrolled in c1: they may watch its room, but are not one of its members.
    let mut admin = w.ws(&w.admin).await;
    let ack = admin.call("join-course", json!({"courseId": COURSE})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ids(&ack["data"]["users"]), vec!["u1"]);
    let online = admin.expect("online-users").await;
    assert_eq!(ids(&online["users"]), vec!["u1"]);
    let rest = w.get(&w.u1, "/api/v1/chat/online/c1").await.data();
    assert_eq!(ids(&rest), vec!["u1"]);
    let frames = ada.drain(QUIET).await;
    assert!(
        Ws::named(&frames, "user-joined").next().is_none(),
        "{frames:?}"
    );
    assert!(
        Ws::named(&frames, "online-users").all(|d| ids(&d["users"]) == ["u1"]),
        "{frames:?}"
    );
    // The watcher still gets the room's events.
    let sent = w.send(&w.u1, "for everyone").await;
    assert_eq!(admin.expect("new-message").await["id"], sent["id"]);
    admin.close();
    let frames = ada.drain(QUIET).await;
    assert!(
        Ws::named(&frames, "user-left").next().is_none(),
        "{frames:?}"
    );
}

#[tokio::test]
async fn join_answers_the_head_and_the_epoch_and_resume_says_if_it_recovered() {
    let w = World::start().await;
    for i in 0..3 {
        w.send(&w.u1, &format!("m{i}")).await;
    }
    let mut bob = w.ws(&w.u2).await;
    let ack = bob.call("join-course", json!({"courseId": COURSE})).await;
    let data = &ack["data"];
    assert_eq!(data["headSeq"], 3, "{ack}");
    let epoch = data["epoch"].as_str().expect("an epoch").to_string();
    assert!(
        data.get("recovered").is_none(),
        "no sinceSeq, no recovered: {ack}"
    );

    // Resuming within the store's history replays what followed.
    let mut again = w.ws(&w.u2).await;
    let ack = again
        .call(
            "join-course",
            json!({"courseId": COURSE, "sinceSeq": 1, "epoch": epoch}),
        )
        .await;
    assert_eq!(ack["data"]["recovered"], true, "{ack}");
    assert_eq!(again.expect("new-message").await["seq"], 2);
    assert_eq!(again.expect("new-message").await["seq"], 3);

    // Another store's seq, or one beyond the head: told to reload, nothing replayed.
    for resume in [
        json!({"courseId": COURSE, "sinceSeq": 1, "epoch": "01SOMEOTHERSTORE0000000000"}),
        json!({"courseId": COURSE, "sinceSeq": 50}),
    ] {
        let mut s = w.ws(&w.u2).await;
        let ack = s.call("join-course", resume.clone()).await;
        assert_eq!(ack["ok"], true, "{ack}");
        assert_eq!(ack["data"]["recovered"], false, "{resume}: {ack}");
        assert_eq!(ack["data"]["headSeq"], 3);
        let frames = s.drain(QUIET).await;
        assert!(
            Ws::named(&frames, "new-message").next().is_none(),
            "{frames:?}"
        );
    }
}
