//! Threads over REST and `/ws`: a reply sent with `threadId` (JSON and multipart), the root's
//! `replyCount` / `lastReplyAt`, `GET /thread/:messageId` pages, `get-thread`, and
//! `thread-updated` to the room.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn replies_over_rest_and_ws_gather_under_the_root() {
    let w = World::start().await;
    let mut bob = w.joined(&w.u2).await;
    let root = w.send(&w.u1, "where is the syllabus?").await;
    let rid = root["id"].as_str().unwrap().to_string();
    assert!(root.get("threadId").is_none() && root.get("replyCount").is_none());

    let r = w
        .post(
            &w.u1,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": "anyone?", "threadId": rid}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.data()["threadId"], rid.as_str());
    let updated = bob.expect("thread-updated").await;
    assert_eq!(updated["threadId"], rid.as_str());
    assert_eq!(updated["replyCount"], 1);
    assert_eq!(updated["lastReplyId"], r.data()["id"]);
    assert_eq!(updated["courseId"], COURSE);

    // Over /ws, naming the first reply: same thread.
    let ack = bob
        .call(
            "send-message",
            json!({"courseId": COURSE, "message": "on the site", "threadId": r.data()["id"]}),
        )
        .await;
    assert_eq!(ack["data"]["threadId"], rid.as_str(), "{ack}");
    // Multipart too.
    let m = request(
        w.addr,
        "POST",
        "/api/v1/chat/send",
        Some(&w.i1),
        Some(multipart(
            &[
                ("courseId", COURSE),
                ("message", "see attached"),
                ("threadId", &rid),
            ],
            Some(("s.png", "image/png", PNG)),
        )),
    )
    .await;
    assert_eq!(m.status, 201, "{}", m.text());
    assert_eq!(m.data()["threadId"], rid.as_str());

    let page = w
        .get(&w.u2, &format!("/api/v1/chat/thread/{rid}?limit=2"))
        .await;
    assert_eq!(page.status, 200, "{}", page.text());
    let data = page.data();
    assert_eq!(data["root"]["id"], rid.as_str());
    assert_eq!(data["root"]["replyCount"], 3);
    assert_eq!(data["root"]["lastReplyAt"], m.data()["createdAt"]);
    assert_eq!(data["replies"].as_array().map(Vec::len), Some(2));
    assert_eq!(data["hasMore"], true);
    let last_seq = data["replies"][1]["seq"].as_u64().unwrap();
    let ack = bob
        .call("get-thread", json!({"messageId": rid, "after": last_seq}))
        .await;
    assert_eq!(
        ack["data"]["replies"][0]["message"], "see attached",
        "{ack}"
    );
    assert_eq!(ack["data"]["hasMore"], false);

    // History: the root carries its count; replies are messages of the course.
    let h = w.get(&w.u2, &format!("/api/v1/chat/course/{COURSE}")).await;
    let messages = h.data()["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[0]["replyCount"], 3);

    let bad = w
        .post(
            &w.u1,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": "x", "threadId": "nope"}),
        )
        .await;
    assert_eq!(bad.code(), "VALIDATION");
    assert_eq!(
        w.get(&w.x1, &format!("/api/v1/chat/thread/{rid}"))
            .await
            .code(),
        "NOT_ENROLLED"
    );
    assert_eq!(
        w.get(&w.u1, &format!("/api/v1/chat/thread/{rid}?limit=abc"))
            .await
            .code(),
        "VALIDATION"
    );
}

#[tokio::test]
async fn mentions_are_recorded_on_messages_over_rest_and_ws() {
    let w = World::start().await;
    // A display name is known once its user has used the chat.
    w.send(&w.i1, "office hours at 3").await;
    let m = w
        .send(
            &w.u1,
            "@u2 and @Ines: is this right? (mail ada@example.org)",
        )
        .await;
    assert_eq!(m["mentions"], json!(["i1", "u2"]));
    let plain = w.send(&w.u1, "no mentions").await;
    assert!(
        plain.get("mentions").is_none(),
        "the contract's JSON as it was"
    );
    let mut bob = w.joined(&w.u2).await;
    let ack = bob
        .call(
            "send-message",
            json!({"courseId": COURSE, "message": "thanks @u1"}),
        )
        .await;
    assert_eq!(ack["data"]["mentions"], json!(["u1"]), "{ack}");
    let id = m["id"].as_str().unwrap();
    let edited = w
        .put(
            &w.u1,
            &format!("/api/v1/chat/edit/{id}"),
            json!({"message": "only @u2"}),
        )
        .await;
    assert_eq!(edited.data()["mentions"], json!(["u2"]));
}
