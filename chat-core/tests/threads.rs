//! Threads through the engine: replies under a root, counts on the root, thread pages, the
//! `thread-updated` event, and that a reply is still an ordinary message of the course.

mod common;

use chat_core::{ErrorCode, Event, SendMessage};
use common::*;

fn reply(root: &str, body: &str) -> SendMessage {
    SendMessage {
        thread_id: Some(root.to_string()),
        ..text("c1", body)
    }
}

#[tokio::test]
async fn replies_gather_under_their_root_with_counts_and_pages() {
    let w = world().await;
    let (conn, mut events) = w.engine.connect(&w.prof).await.unwrap();
    conn.join("c1", None).await.unwrap();
    let root = w.say(&w.ada, "how do lifetimes work?").await;
    let json = serde_json::to_value(&root).unwrap();
    for absent in ["threadId", "replyCount", "lastReplyAt"] {
        assert!(
            json.get(absent).is_none(),
            "{absent}: the contract's JSON as it was"
        );
    }

    let first = w
        .engine
        .send(&w.bob, reply(&root.id, "like scopes"))
        .await
        .unwrap();
    assert_eq!(first.thread_id.as_deref(), Some(root.id.as_str()));
    assert_eq!(
        serde_json::to_value(&first).unwrap()["threadId"],
        root.id.as_str()
    );
    // The reply is a message of the course like any other: new-message, then thread-updated.
    match next_named(&mut events, "new-message").await {
        Event::NewMessage(m) => assert_eq!(m.id, root.id),
        other => panic!("{other:?}"),
    }
    match next_named(&mut events, "new-message").await {
        Event::NewMessage(m) => assert_eq!(m.id, first.id),
        other => panic!("{other:?}"),
    }
    match next_named(&mut events, "thread-updated").await {
        Event::ThreadUpdated(t) => {
            assert_eq!((t.thread_id.as_str(), t.reply_count), (root.id.as_str(), 1));
            assert_eq!(t.last_reply_id, first.id);
            assert_eq!(t.last_reply_at, first.created_at);
        }
        other => panic!("{other:?}"),
    }
    // Naming a reply puts the message in the same thread (threads do not nest).
    let second = w
        .engine
        .send(&w.prof, reply(&first.id, "exactly"))
        .await
        .unwrap();
    assert_eq!(second.thread_id.as_deref(), Some(root.id.as_str()));
    let third = w
        .engine
        .send(&w.ada, reply(&root.id, "thanks"))
        .await
        .unwrap();

    let page = w
        .engine
        .thread(&w.bob, &root.id, None, Some(2))
        .await
        .unwrap();
    assert_eq!(page.root.id, root.id);
    assert_eq!(page.root.reply_count, 3);
    assert_eq!(page.root.last_reply_at, Some(third.created_at));
    assert_eq!(
        page.replies
            .iter()
            .map(|m| m.id.clone())
            .collect::<Vec<_>>(),
        [first.id.clone(), second.id.clone()]
    );
    assert!(page.has_more);
    let rest = w
        .engine
        .thread(&w.bob, &second.id, Some(second.seq), None)
        .await
        .unwrap();
    assert_eq!(rest.root.id, root.id, "a reply answers its thread");
    assert_eq!(rest.replies.len(), 1);
    assert!(!rest.has_more);

    // History shows the root with its count, and the replies as messages.
    let history = w
        .engine
        .history(&w.bob, "c1", Default::default())
        .await
        .unwrap();
    assert_eq!(history.messages.len(), 4);
    assert_eq!(history.messages[0].reply_count, 3);
    assert_eq!(history.messages[1].reply_count, 0);
    let json = serde_json::to_value(&history.messages[0]).unwrap();
    assert_eq!(json["replyCount"], 3);
    assert!(json["lastReplyAt"].is_string());

    // A deleted reply stays in the thread as a tombstone and in the count.
    w.engine.delete(&w.ada, &third.id).await.unwrap();
    let after = w.engine.thread(&w.ada, &root.id, None, None).await.unwrap();
    assert!(after.replies[2].is_deleted);
    assert_eq!(after.root.reply_count, 3);
}

#[tokio::test]
async fn a_thread_root_must_be_a_live_message_of_the_course() {
    let w = world().await;
    let root = w.say(&w.ada, "root").await;
    for bad in ["no-such-message", &"x".repeat(200)] {
        let e = w.engine.send(&w.bob, reply(bad, "hm")).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Validation, "{bad}");
    }
    w.engine
        .put_course(&w.admin, "c2", Default::default())
        .await
        .unwrap();
    w.engine
        .enroll(&w.admin, "c2", "bob", chat_core::Role::Student)
        .await
        .unwrap();
    let elsewhere = SendMessage {
        thread_id: Some(root.id.clone()),
        ..text("c2", "cross-course")
    };
    let e = w.engine.send(&w.bob, elsewhere).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Validation);
    w.engine.delete(&w.ada, &root.id).await.unwrap();
    let e = w
        .engine
        .send(&w.bob, reply(&root.id, "late"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Validation);
    let e = w
        .engine
        .thread(&w.eve, &root.id, None, None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotEnrolled);
    for limit in [0, 101] {
        let e = w
            .engine
            .thread(&w.ada, &root.id, None, Some(limit))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Validation);
    }
    let e = w
        .engine
        .thread(&w.ada, "missing", None, None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn a_resume_replays_replies_with_their_thread() {
    let w = world().await;
    let root = w.say(&w.ada, "root").await;
    w.engine.send(&w.bob, reply(&root.id, "r1")).await.unwrap();
    let (conn, mut events) = w.engine.connect(&w.prof).await.unwrap();
    conn.join("c1", Some(root.seq)).await.unwrap();
    match &changes(&mut events, 1).await[0] {
        Event::NewMessage(m) => assert_eq!(m.thread_id.as_deref(), Some(root.id.as_str())),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn mentions_name_participants_by_id_or_display_name() {
    let w = world().await;
    let m = w
        .say(
            &w.ada,
            "@bob and @Prof, look (cc @eve, @ada, ada@example.org)",
        )
        .await;
    // Eve is not a participant; Ada does not mention herself; the address is not a mention.
    assert_eq!(m.mentions, ["bob", "prof"]);
    assert_eq!(
        serde_json::to_value(&m).unwrap()["mentions"],
        serde_json::json!(["bob", "prof"])
    );
    let plain = w.say(&w.ada, "no one").await;
    assert!(serde_json::to_value(&plain)
        .unwrap()
        .get("mentions")
        .is_none());
    // Edits work them out again; a deletion clears them.
    let edited = w.engine.edit(&w.ada, &m.id, "only @BOB now").await.unwrap();
    assert_eq!(edited.mentions, ["bob"]);
    let gone = w.engine.delete(&w.ada, &m.id).await.unwrap();
    assert!(gone.mentions.is_empty());
}

#[tokio::test]
async fn mentions_match_display_names_without_spaces() {
    let w = world().await;
    let lovelace = chat_core::Actor::new("u-77", "Ada Lovelace", chat_core::Role::Student);
    w.engine
        .enroll(&w.admin, "c1", "u-77", chat_core::Role::Student)
        .await
        .unwrap();
    w.engine.send(&lovelace, text("c1", "hi")).await.unwrap();
    let m = w.say(&w.bob, "thanks @adalovelace").await;
    assert_eq!(m.mentions, ["u-77"]);
}
