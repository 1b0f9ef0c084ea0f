//! Archiving through the engine: an archived course is read-only, its history exports in
//! pages, it drops with its files, and retention deletes old messages as seq'd tombstones.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use chat_core::store::conformance::message;
use chat_core::store::memory::MemoryStore;
use chat_core::store::Store;
use chat_core::{
    Attachment, Config, CourseUpdate, Engine, ErrorCode, Event, SendMessage, Timestamp,
};
use common::*;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82";

fn archive(on: bool) -> CourseUpdate {
    CourseUpdate {
        archived: Some(on),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_archived_course_is_read_only_exports_and_drops_with_its_files() {
    let w = world().await;
    let m = w.say(&w.ada, "keep me").await;
    let pic = w
        .engine
        .send(
            &w.bob,
            SendMessage {
                attachment: Some(Attachment {
                    name: "p.png".into(),
                    bytes: Bytes::from_static(PNG),
                }),
                ..text("c1", "")
            },
        )
        .await
        .unwrap();
    let file_id = pic.file.clone().unwrap().id;
    let e = w.engine.drop_course(&w.admin, "c1").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Validation, "archive first");

    let course = w
        .engine
        .put_course(&w.admin, "c1", archive(true))
        .await
        .unwrap();
    assert!(course.archived);
    assert_eq!(serde_json::to_value(&course).unwrap()["archived"], true);
    for e in [
        w.engine
            .send(&w.ada, text("c1", "hello?"))
            .await
            .unwrap_err(),
        w.engine.edit(&w.ada, &m.id, "changed").await.unwrap_err(),
        w.engine.delete(&w.prof, &m.id).await.unwrap_err(),
        w.engine.react(&w.bob, &m.id, "👍").await.unwrap_err(),
        w.engine.typing(&w.bob, "c1", true).await.unwrap_err(),
        w.engine.pin(&w.prof, &m.id).await.unwrap_err(),
        w.engine.flag(&w.bob, &m.id, "spam").await.unwrap_err(),
    ] {
        assert_eq!(e.code(), ErrorCode::ChatDisabled, "{e:?}");
    }
    // Still readable, and exportable by its instructors and admins.
    assert_eq!(
        w.engine
            .history(&w.ada, "c1", Default::default())
            .await
            .unwrap()
            .messages
            .len(),
        2
    );
    let e = w.engine.export_page(&w.ada, "c1", 0, 10).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden);
    let first = w.engine.export_page(&w.prof, "c1", 0, 1).await.unwrap();
    assert_eq!(first[0].id, m.id);
    let second = w.engine.export_page(&w.admin, "c1", 1, 10).await.unwrap();
    assert_eq!(second[0].id, pic.id);
    assert!(w
        .engine
        .export_page(&w.admin, "c1", 2, 10)
        .await
        .unwrap()
        .is_empty());
    let e = w
        .engine
        .export_page(&w.admin, "c1", 0, 0)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Validation);
    // Un-archiving brings writes back.
    w.engine
        .put_course(&w.admin, "c1", archive(false))
        .await
        .unwrap();
    w.say(&w.ada, "back").await;
    w.engine
        .put_course(&w.admin, "c1", archive(true))
        .await
        .unwrap();

    // Dropping: admins only; the room empties; the course, its messages and its files go.
    let (conn, mut events) = w.engine.connect(&w.bob).await.unwrap();
    conn.join("c1", None).await.unwrap();
    let e = w.engine.drop_course(&w.prof, "c1").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden);
    let dropped = w.engine.drop_course(&w.admin, "c1").await.unwrap();
    assert_eq!((dropped.messages, dropped.files), (3, 1));
    assert_eq!(
        w.engine
            .history(&w.ada, "c1", Default::default())
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
    let e = w.engine.file(&w.admin, &file_id).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    let log = w
        .engine
        .audit_log(&w.admin, Some("c1"), None, 5)
        .await
        .unwrap();
    assert_eq!(log[0].action, "drop-course");
    // Made again, it starts over: seq 1, nothing found by search of the old words.
    w.engine
        .put_course(&w.admin, "c1", Default::default())
        .await
        .unwrap();
    w.engine
        .enroll(&w.admin, "c1", "ada", chat_core::Role::Student)
        .await
        .unwrap();
    let fresh = w.say(&w.ada, "fresh start").await;
    assert_eq!(fresh.seq, 1);
    assert!(w
        .engine
        .search(&w.ada, "c1", "keep", None, None)
        .await
        .unwrap()
        .is_empty());
    drop(
        events
            .recv_timeout(std::time::Duration::from_millis(100))
            .await,
    );
}

#[tokio::test]
async fn retention_deletes_old_messages_as_seqd_tombstones() {
    let store = Arc::new(MemoryStore::open());
    let config = Config {
        retention_days: Some(30),
        ..Config::default()
    };
    let engine = Engine::builder()
        .config(config)
        .store(store.clone())
        .open()
        .await
        .unwrap();
    let w = world_with(engine).await;
    // Two messages from 40 days ago, written straight to the store; one from now.
    let old_at = Timestamp::from_millis(Timestamp::now().as_millis() - 40 * 86_400_000).unwrap();
    let mut old = Vec::new();
    for text in ["ancient", "also ancient"] {
        let mut m = message("c1", "ada", text, None);
        m.created_at = old_at;
        m.updated_at = old_at;
        old.push(store.insert_message(m).await.unwrap());
    }
    let recent = w.say(&w.bob, "recent").await;

    // The pass the engine runs at open may take some of them first: between the two, both go.
    let now = w.engine.run_retention().await.unwrap();
    assert!(now <= 2, "{now}");
    let page = w
        .engine
        .history(&w.ada, "c1", Default::default())
        .await
        .unwrap();
    assert!(page.messages[0].is_deleted && page.messages[1].is_deleted);
    assert_eq!(page.messages[2].id, recent.id);
    assert!(!page.messages[2].is_deleted);
    // Each is a seq'd deletion: a client resuming from the start sees three sends, two deletions.
    let (conn, mut events) = w.engine.connect(&w.prof).await.unwrap();
    conn.join("c1", Some(0)).await.unwrap();
    let replayed: Vec<Event> = changes(&mut events, 5).await;
    let deletions = replayed
        .iter()
        .filter(|e| matches!(e, Event::MessageDeleted(_)))
        .count();
    assert_eq!(deletions, 2, "{replayed:?}");
    assert_eq!(w.engine.run_retention().await.unwrap(), 0, "nothing twice");
    let bad = Config {
        retention_days: Some(0),
        ..Config::default()
    };
    assert!(bad.validate().is_err());
}
