//! Reactions over REST and `/ws`: toggled on and off, in the message JSON, announced to the room
//! as seq'd changes, replayed on resume, validated and capped.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn reactions_are_seqd_changes_over_rest_and_ws_and_replayed_on_resume() {
    let w = World::start().await;
    let mut bob = w.joined(&w.u2).await;
    let m = w.send(&w.u1, "react to me").await;
    let id = m["id"].as_str().unwrap().to_string();
    let seen = bob.expect("new-message").await;
    let after_send = seen["changeSeq"].as_u64().unwrap();
    assert!(
        m.get("reactions").is_none(),
        "no reactions: the contract's JSON as it was"
    );

    // REST: add, add again (nothing changes), another user's, then /ws.
    let r = w
        .put(
            &w.u1,
            &format!("/api/v1/chat/react/{id}"),
            json!({"emoji": "👍"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.data()["reactions"],
        json!([{"emoji": "👍", "count": 1, "userIds": ["u1"]}])
    );
    let again = w
        .put(
            &w.u1,
            &format!("/api/v1/chat/react/{id}"),
            json!({"emoji": "👍"}),
        )
        .await;
    assert_eq!(
        again.data()["changeSeq"],
        r.data()["changeSeq"],
        "no second change"
    );
    let ack = bob
        .call("add-reaction", json!({"messageId": id, "emoji": ":tada:"}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(
        ack["data"]["reactions"],
        json!([
            {"emoji": "👍", "count": 1, "userIds": ["u1"]},
            {"emoji": ":tada:", "count": 1, "userIds": ["u2"]}
        ])
    );
    let removed = w
        .delete(
            &w.u1,
            &format!("/api/v1/chat/react/{id}?emoji=%F0%9F%91%8D"),
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.text());
    assert_eq!(
        removed.data()["reactions"],
        json!([{"emoji": ":tada:", "count": 1, "userIds": ["u2"]}])
    );

    // The room saw three changes, each with the next seq.
    let mut live = Vec::new();
    while live.len() < 3 {
        let f = bob
            .next(Duration::from_secs(5))
            .await
            .expect("a reaction event");
        if f["event"]
            .as_str()
            .is_some_and(|e| e.starts_with("reaction-"))
        {
            live.push((f["event"].clone(), f["data"]["seq"].as_u64().unwrap()));
        }
    }
    assert_eq!(
        live,
        [
            (json!("reaction-added"), after_send + 1),
            (json!("reaction-added"), after_send + 2),
            (json!("reaction-removed"), after_send + 3)
        ]
    );

    // A socket resuming from just after the send gets the same three changes, in order.
    let mut late = w.ws(&w.u2).await;
    let ack = late
        .call(
            "join-course",
            json!({"courseId": COURSE, "sinceSeq": after_send}),
        )
        .await;
    assert_eq!(ack["data"]["recovered"], true, "{ack}");
    let replay = late.drain(Duration::from_millis(500)).await;
    let changes: Vec<(String, String, String, u64)> = replay
        .iter()
        .filter(|f| {
            f["event"]
                .as_str()
                .is_some_and(|e| e.starts_with("reaction-"))
        })
        .map(|f| {
            (
                f["event"].as_str().unwrap().to_string(),
                f["data"]["userId"].as_str().unwrap().to_string(),
                f["data"]["emoji"].as_str().unwrap().to_string(),
                f["data"]["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let base = after_send;
    assert_eq!(
        changes,
        [
            (
                "reaction-added".to_string(),
                "u1".to_string(),
                "👍".to_string(),
                base + 1
            ),
            (
                "reaction-added".into(),
                "u2".into(),
                ":tada:".into(),
                base + 2
            ),
            (
                "reaction-removed".into(),
                "u1".into(),
                "👍".into(),
                base + 3
            ),
        ]
    );
    assert!(replay.iter().all(|f| f["data"]["messageId"] == id.as_str()
        || !f["event"].as_str().unwrap_or("").starts_with("reaction-")));

    // History shows the reactions; a deletion clears them.
    let page = w.get(&w.u2, "/api/v1/chat/course/c1?limit=5").await.data();
    let shown = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        shown["reactions"],
        json!([{"emoji": ":tada:", "count": 1, "userIds": ["u2"]}])
    );
    let gone = w
        .delete(&w.u1, &format!("/api/v1/chat/delete/{id}"))
        .await
        .data();
    assert!(gone.get("reactions").is_none(), "{gone}");
    let late_react = w
        .put(
            &w.u2,
            &format!("/api/v1/chat/react/{id}"),
            json!({"emoji": "👍"}),
        )
        .await;
    assert_eq!(
        (late_react.status, late_react.code().as_str()),
        (404, "NOT_FOUND")
    );
}

#[tokio::test]
async fn emoji_are_checked_and_a_message_takes_at_most_twenty() {
    let w = World::start().await;
    let m = w.send(&w.u1, "many").await;
    let path = format!("/api/v1/chat/react/{}", m["id"].as_str().unwrap());
    for bad in ["", "ok", "👍👍", ":Nope:", "<script>"] {
        let r = w.put(&w.u1, &path, json!({"emoji": bad})).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "VALIDATION"),
            "{bad:?}"
        );
    }
    for i in 0..20 {
        let r = w
            .put(&w.u1, &path, json!({"emoji": format!(":e{i}:")}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = w
        .put(&w.u1, &path, json!({"emoji": ":one-too-many:"}))
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "VALIDATION"));
    let r = w.put(&w.u2, &path, json!({"emoji": ":e3:"})).await;
    assert_eq!(
        r.data()["reactions"][3]["count"],
        2,
        "an emoji already there still counts"
    );
    let r = w.delete(&w.u1, &path).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "VALIDATION"),
        "emoji is required"
    );
    let r = w.put(&w.x1, &path, json!({"emoji": "👍"})).await;
    assert_eq!((r.status, r.code().as_str()), (403, "NOT_ENROLLED"));
}
