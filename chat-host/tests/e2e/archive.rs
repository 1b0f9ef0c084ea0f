//! Archiving over REST: an archived course refuses writes with CHAT_DISABLED, its history
//! streams out as JSON Lines, and it drops with its files.

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn archive_export_and_drop_a_course() {
    let mut c = config();
    c.engine.rate_limit_burst = 100_000;
    let w = World::with(c).await;
    let mut sent = Vec::new();
    for i in 0..1_203 {
        // More than two export pages of 500.
        let who = [&w.u1, &w.u2, &w.i1][i % 3];
        let r = w
            .post(
                who,
                "/api/v1/chat/send",
                json!({"courseId": COURSE, "message": format!("m{i}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        sent.push(r.data()["id"].as_str().unwrap().to_string());
    }
    let r = w
        .put(
            &w.admin,
            "/api/v1/chat/courses/c1",
            json!({"archived": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.data()["archived"], true);
    let refused = w
        .post(
            &w.u1,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": "late"}),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (403, "CHAT_DISABLED")
    );
    let mut ws = w.joined(&w.u2).await;
    let ack = ws
        .call("add-reaction", json!({"messageId": sent[0], "emoji": "👍"}))
        .await;
    assert_eq!(ack["error"]["code"], "CHAT_DISABLED", "{ack}");

    // The export: instructors and admins, JSON Lines, every message once, in order.
    let denied = w
        .get(&w.u1, &format!("/api/v1/chat/course/{COURSE}/export"))
        .await;
    assert_eq!(denied.code(), "FORBIDDEN");
    let export = w
        .get(&w.i1, &format!("/api/v1/chat/course/{COURSE}/export"))
        .await;
    assert_eq!(export.status, 200);
    assert_eq!(
        export.header("content-type").as_deref(),
        Some("application/x-ndjson")
    );
    assert!(export
        .header("content-disposition")
        .is_some_and(|d| d.contains("c1.jsonl")));
    let lines: Vec<Value> = export
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let ids: Vec<&str> = lines.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, sent.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(lines[0]["message"], "m0");

    // Dropping: admins only, archived courses only; then the course is gone.
    let r = w.delete(&w.i1, "/api/v1/chat/courses/c1").await;
    assert_eq!(r.code(), "FORBIDDEN");
    let r = w.delete(&w.admin, "/api/v1/chat/courses/c1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.data()["messages"], sent.len());
    let gone = w.get(&w.i1, &format!("/api/v1/chat/course/{COURSE}")).await;
    assert_eq!(gone.code(), "NOT_FOUND");
    let r = w
        .put(&w.admin, "/api/v1/chat/courses/c2", json!({"name": "Two"}))
        .await;
    assert!(
        r.data().get("archived").is_none(),
        "the course JSON as it was"
    );
    let r = w.delete(&w.admin, "/api/v1/chat/courses/c2").await;
    assert_eq!(r.code(), "VALIDATION", "not archived");
}
