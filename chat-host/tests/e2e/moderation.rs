//! The built-in word filter through the server: `--blocked-words` masks a listed word in what is
//! sent over REST and `/ws` (and edits), or with `--blocked-words-action reject` refuses it.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn blocked_words_are_masked_over_rest_and_ws() {
    let mut c = config();
    c.engine.blocked_words = vec!["darn".into()];
    let w = World::with(c).await;
    let m = w.send(&w.u1, "Darn it").await;
    assert_eq!(m["message"], "**** it");
    let mut bob = w.joined(&w.u2).await;
    let ack = bob
        .call(
            "send-message",
            json!({"courseId": COURSE, "message": "darn again"}),
        )
        .await;
    assert_eq!(ack["data"]["message"], "**** again", "{ack}");
    let edited = w
        .put(
            &w.u1,
            &format!("/api/v1/chat/edit/{}", m["id"].as_str().unwrap()),
            json!({"message": "still darn"}),
        )
        .await;
    assert_eq!(edited.data()["message"], "still ****");
}

#[tokio::test]
async fn blocked_words_can_refuse_the_message() {
    let mut c = config();
    c.engine.blocked_words = vec!["darn".into()];
    c.engine.blocked_words_action = chat_core::word_filter::WordFilterAction::Reject;
    let w = World::with(c).await;
    let r = w
        .post(
            &w.u1,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": "darn"}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "FORBIDDEN"));
    let mut bob = w.joined(&w.u2).await;
    let ack = bob
        .call(
            "send-message",
            json!({"courseId": COURSE, "message": "DARN"}),
        )
        .await;
    assert_eq!(
        (ack["ok"].clone(), ack["error"]["code"].clone()),
        (json!(false), json!("FORBIDDEN"))
    );
    let history = w.get(&w.u2, "/api/v1/chat/course/c1").await.data();
    assert_eq!(history["messages"], json!([]), "nothing refused was stored");
}

#[tokio::test]
async fn pins_over_rest_and_ws_reach_the_room_and_list() {
    let w = World::start().await;
    let mut bob = w.joined(&w.u2).await;
    let m = w.send(&w.u1, "the exam is on Friday").await;
    let id = m["id"].as_str().unwrap().to_string();
    assert!(m.get("pinned").is_none(), "not in the JSON unless pinned");

    let refused = w
        .put(&w.u2, &format!("/api/v1/chat/pin/{id}"), json!({}))
        .await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (403, "FORBIDDEN")
    );
    let r = w
        .put(&w.i1, &format!("/api/v1/chat/pin/{id}"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.data()["pinned"], true);
    assert_eq!(r.data()["pinnedBy"], "i1");
    let ev = bob.expect("message-pinned").await;
    assert_eq!(ev["messageId"], id.as_str());
    assert_eq!(ev["pinned"], true);
    assert_eq!(ev["seq"], r.data()["changeSeq"]);

    let list = w
        .get(&w.u2, &format!("/api/v1/chat/course/{COURSE}/pinned"))
        .await;
    assert_eq!(list.status, 200, "{}", list.text());
    assert_eq!(list.data()[0]["id"], id.as_str());
    let outsider = w
        .get(&w.x1, &format!("/api/v1/chat/course/{COURSE}/pinned"))
        .await;
    assert_eq!(outsider.code(), "NOT_ENROLLED");

    // Unpin over /ws as an admin.
    let mut admin = w.joined(&w.admin).await;
    let ack = admin.call("unpin-message", json!({"messageId": id})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert!(ack["data"].get("pinned").is_none());
    let ev = bob.expect("message-pinned").await;
    assert_eq!(ev["pinned"], false);
    assert_eq!(ev["pinnedBy"], serde_json::Value::Null);
    let ack = bob.call("pin-message", json!({"messageId": id})).await;
    assert_eq!(ack["error"]["code"], "FORBIDDEN", "{ack}");
    let empty = w
        .get(&w.u2, &format!("/api/v1/chat/course/{COURSE}/pinned"))
        .await;
    assert_eq!(empty.data(), json!([]));
}

#[tokio::test]
async fn a_mute_refuses_sends_and_typing_with_muted_403_until_lifted() {
    let w = World::start().await;
    let mut ada = w.joined(&w.u1).await;
    let mut bob = w.joined(&w.u2).await;
    let path = format!("/api/v1/chat/course/{COURSE}/mute/u1");
    let bad = w.put(&w.i1, &path, json!({"durationSeconds": 0})).await;
    assert_eq!(bad.code(), "VALIDATION");
    let bad = w.put(&w.i1, &path, json!({})).await;
    assert_eq!(bad.code(), "VALIDATION");
    let student = w.put(&w.u2, &path, json!({"durationSeconds": 60})).await;
    assert_eq!(student.code(), "FORBIDDEN");
    let r = w.put(&w.i1, &path, json!({"durationSeconds": 600})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.data()["userId"], "u1");
    let until = r.data()["mutedUntil"].clone();
    assert!(until.is_string());
    let ev = bob.expect("user-muted").await;
    assert_eq!(ev["userId"], "u1");
    assert_eq!(ev["mutedUntil"], until);
    assert_eq!(ev["by"], "i1");

    let send = w
        .post(
            &w.u1,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": "hi"}),
        )
        .await;
    assert_eq!((send.status, send.code().as_str()), (403, "MUTED"));
    assert_eq!(send.json()["mutedUntil"], until);
    let ack = ada
        .call("send-message", json!({"courseId": COURSE, "message": "hi"}))
        .await;
    assert_eq!(ack["error"]["code"], "MUTED", "{ack}");
    assert_eq!(ack["error"]["mutedUntil"], until);
    let ack = ada
        .call("typing", json!({"courseId": COURSE, "isTyping": true}))
        .await;
    assert_eq!(ack["error"]["code"], "MUTED", "{ack}");

    let list = w
        .get(&w.i1, &format!("/api/v1/chat/course/{COURSE}/restrictions"))
        .await;
    assert_eq!(list.data()[0]["userId"], "u1");
    assert_eq!(
        w.get(&w.u2, &format!("/api/v1/chat/course/{COURSE}/restrictions"))
            .await
            .code(),
        "FORBIDDEN"
    );

    // Unmute over /ws.
    let mut ines = w.joined(&w.i1).await;
    let ack = ines
        .call("unmute-user", json!({"courseId": COURSE, "userId": "u1"}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let ev = bob
        .expect_where("user-muted", |d| d["mutedUntil"].is_null())
        .await;
    assert_eq!(ev["userId"], "u1");
    w.send(&w.u1, "I'm back").await;
    // And mute over /ws too.
    let ack = ines
        .call(
            "mute-user",
            json!({"courseId": COURSE, "userId": "u1", "durationSeconds": 60}),
        )
        .await;
    assert_eq!(ack["data"]["userId"], "u1", "{ack}");
    let r = w.delete(&w.i1, &path).await;
    assert_eq!(r.status, 200, "{}", r.text());
    w.send(&w.u1, "unmuted over REST").await;
}

#[tokio::test]
async fn a_ban_takes_the_user_out_of_the_room_and_refuses_everything_with_banned() {
    let w = World::start().await;
    let mut ada = w.joined(&w.u1).await;
    let mut bob = w.joined(&w.u2).await;
    let path = format!("/api/v1/chat/course/{COURSE}/ban/u1");
    let on_instructor = w
        .put(
            &w.admin,
            &format!("/api/v1/chat/course/{COURSE}/ban/i1"),
            json!({}),
        )
        .await;
    assert_eq!(on_instructor.code(), "FORBIDDEN");
    let r = w.put(&w.i1, &path, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.data()["banned"], true);
    let ev = bob.expect("user-banned").await;
    assert_eq!(
        (ev["userId"].as_str(), ev["banned"].as_bool()),
        (Some("u1"), Some(true))
    );

    w.send(&w.u2, "after the ban").await;
    let frames = ada.drain(Duration::from_millis(400)).await;
    assert_eq!(Ws::named(&frames, "new-message").count(), 0, "{frames:?}");
    let history = w.get(&w.u1, &format!("/api/v1/chat/course/{COURSE}")).await;
    assert_eq!((history.status, history.code().as_str()), (403, "BANNED"));
    let ack = ada.call("join-course", json!({"courseId": COURSE})).await;
    assert_eq!(ack["error"]["code"], "BANNED", "{ack}");

    let mut ines = w.joined(&w.i1).await;
    let ack = ines
        .call("unban-user", json!({"courseId": COURSE, "userId": "u1"}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let ack = ada.call("join-course", json!({"courseId": COURSE})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let ack = ines
        .call("ban-user", json!({"courseId": COURSE, "userId": "u2"}))
        .await;
    assert_eq!(ack["data"]["banned"], true, "{ack}");
    let r = w
        .delete(&w.admin, &format!("/api/v1/chat/course/{COURSE}/ban/u2"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    w.send(&w.u2, "back").await;
}

#[tokio::test]
async fn flags_go_to_moderators_only_and_the_queue_resolves_them_into_the_audit_log() {
    let w = World::start().await;
    let mut ines = w.joined(&w.i1).await;
    let mut bob = w.joined(&w.u2).await;
    let mut ada = w.joined(&w.u1).await;
    let m = w.send(&w.u2, "buy cheap watches").await;
    let id = m["id"].as_str().unwrap().to_string();

    let bad = w
        .post(
            &w.u1,
            &format!("/api/v1/chat/flag/{id}"),
            json!({"reason": ""}),
        )
        .await;
    assert_eq!(bad.code(), "VALIDATION");
    let r = w
        .post(
            &w.u1,
            &format!("/api/v1/chat/flag/{id}"),
            json!({"reason": "spam"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let flag = r.data();
    assert_eq!(flag["reporterId"], "u1");
    assert_eq!(flag["resolution"], serde_json::Value::Null);
    let seen = ines.expect("message-flagged").await;
    assert_eq!(seen, flag);
    let frames = bob.drain(Duration::from_millis(400)).await;
    assert_eq!(
        Ws::named(&frames, "message-flagged").count(),
        0,
        "{frames:?}"
    );

    // Over /ws too; the same reporter again gets the same open flag.
    let ack = ada
        .call(
            "flag-message",
            json!({"messageId": id, "reason": "still spam"}),
        )
        .await;
    assert_eq!(ack["data"]["id"], flag["id"], "{ack}");

    let queue = w
        .get(&w.i1, &format!("/api/v1/chat/course/{COURSE}/flags"))
        .await;
    assert_eq!(queue.status, 200, "{}", queue.text());
    assert_eq!(queue.data(), json!([flag.clone()]));
    assert_eq!(
        w.get(&w.u1, &format!("/api/v1/chat/course/{COURSE}/flags"))
            .await
            .code(),
        "FORBIDDEN"
    );
    let bad = w
        .get(
            &w.i1,
            &format!("/api/v1/chat/course/{COURSE}/flags?status=maybe"),
        )
        .await;
    assert_eq!(bad.code(), "VALIDATION");

    let fid = flag["id"].as_str().unwrap();
    let done = w
        .post(
            &w.i1,
            &format!("/api/v1/chat/flags/{fid}/resolve"),
            json!({"deleteMessage": true}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.data()["resolution"]["messageDeleted"], true);
    assert_eq!(done.data()["resolution"]["by"], "i1");
    let gone = bob.expect("message-deleted").await;
    assert_eq!(gone["messageId"], id.as_str());
    ines.expect("flag-resolved").await;
    let open = w
        .get(
            &w.i1,
            &format!("/api/v1/chat/course/{COURSE}/flags?status=open"),
        )
        .await;
    assert_eq!(open.data(), json!([]));
    let all = w
        .get(
            &w.i1,
            &format!("/api/v1/chat/course/{COURSE}/flags?status=all"),
        )
        .await;
    assert_eq!(all.data().as_array().map(Vec::len), Some(1));

    // The audit log: admins only, newest first, by course, in pages.
    let refused = w.get(&w.i1, "/api/v1/chat/audit").await;
    assert_eq!(refused.code(), "FORBIDDEN");
    let log = w
        .get(
            &w.admin,
            &format!("/api/v1/chat/audit?courseId={COURSE}&limit=10"),
        )
        .await;
    assert_eq!(log.status, 200, "{}", log.text());
    let actions: Vec<String> = log
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["resolve-flag", "delete-message"]);
    let first = log.data()[0]["id"].as_str().unwrap().to_string();
    let older = w
        .get(&w.admin, &format!("/api/v1/chat/audit?before={first}"))
        .await;
    assert_eq!(older.data()[0]["action"], "delete-message");
    let bad = w.get(&w.admin, "/api/v1/chat/audit?limit=0").await;
    assert_eq!(bad.code(), "VALIDATION");
}
