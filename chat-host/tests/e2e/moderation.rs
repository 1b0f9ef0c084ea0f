//! The built-in word filter through the server: `--blocked-words` masks a listed word in what is
//! sent over REST and `/ws` (and edits), or with `--blocked-words-action reject` refuses it.

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
