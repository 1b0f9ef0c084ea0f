//! Full-text search through the engine: ranked hits with highlighted snippets, only in courses
//! the caller may read, following edits and deletions, and rebuilt from the store when the index
//! is gone.

mod common;

use chat_core::{Engine, ErrorCode};
use common::*;

#[tokio::test]
async fn search_finds_ranked_messages_with_highlights_and_follows_edits_and_deletions() {
    let w = world().await;
    let a = w.say(&w.ada, "The borrow checker rejects my code").await;
    let b = w
        .say(&w.bob, "borrow checker, borrow checker, borrow checker!")
        .await;
    let c = w
        .say(&w.prof, "Lifetimes are about the borrow checker too")
        .await;
    w.say(&w.ada, "unrelated chatter about lunch").await;

    let hits = w
        .engine
        .search(&w.ada, "c1", "borrow checker", None, None)
        .await
        .unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.message.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[0], b.id, "the densest match ranks first");
    assert!(hits[0].score >= hits[1].score && hits[1].score >= hits[2].score);
    assert!(
        hits.iter().all(|h| h.highlight.contains("<b>borrow</b>")),
        "{hits:?}"
    );
    // All words must match.
    let both = w
        .engine
        .search(&w.ada, "c1", "lifetimes checker", None, None)
        .await
        .unwrap();
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].message.id, c.id);
    // `before` keeps to older messages.
    let older = w
        .engine
        .search(&w.ada, "c1", "borrow", None, Some(c.seq))
        .await
        .unwrap();
    assert_eq!(older.len(), 2);
    assert!(older.iter().all(|h| h.message.seq < c.seq));
    let one = w
        .engine
        .search(&w.ada, "c1", "borrow", Some(1), None)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);

    // Edits are followed: the old words are gone, the new ones found.
    w.engine
        .edit(&w.ada, &a.id, "The compiler rejects my code")
        .await
        .unwrap();
    let again = w
        .engine
        .search(&w.bob, "c1", "borrow", None, None)
        .await
        .unwrap();
    assert!(again.iter().all(|h| h.message.id != a.id));
    let edited = w
        .engine
        .search(&w.bob, "c1", "compiler", None, None)
        .await
        .unwrap();
    assert_eq!(edited[0].message.id, a.id);
    assert_eq!(edited[0].highlight, "The <b>compiler</b> rejects my code");
    // A deleted message is never found.
    w.engine.delete(&w.bob, &b.id).await.unwrap();
    let after = w
        .engine
        .search(&w.ada, "c1", "borrow", None, None)
        .await
        .unwrap();
    assert!(after.iter().all(|h| h.message.id != b.id));
    // Snippets are escaped.
    w.say(&w.bob, "<script>alert(1)</script> xss").await;
    let xss = w
        .engine
        .search(&w.ada, "c1", "xss", None, None)
        .await
        .unwrap();
    assert!(
        !xss[0].highlight.contains("<script>"),
        "{}",
        xss[0].highlight
    );
}

#[tokio::test]
async fn search_is_only_over_courses_the_caller_reads_and_checks_its_input() {
    let w = world().await;
    w.say(&w.ada, "secret exam answers").await;
    let e = w
        .engine
        .search(&w.eve, "c1", "exam", None, None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotEnrolled);
    w.engine
        .put_course(&w.admin, "c2", Default::default())
        .await
        .unwrap();
    w.engine
        .enroll(&w.admin, "c2", "eve", chat_core::Role::Student)
        .await
        .unwrap();
    let other = w
        .engine
        .search(&w.eve, "c2", "exam", None, None)
        .await
        .unwrap();
    assert!(other.is_empty(), "another course's messages are not found");
    for (q, limit) in [
        ("", None),
        ("   ", None),
        ("exam", Some(0)),
        ("exam", Some(51)),
    ] {
        let e = w
            .engine
            .search(&w.ada, "c1", q, limit, None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Validation, "{q:?} {limit:?}");
    }
    let long = "x".repeat(201);
    let e = w
        .engine
        .search(&w.ada, "c1", &long, None, None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Validation);
    // Query syntax never errors: it is read leniently.
    w.engine
        .search(&w.ada, "c1", "exam AND (\"", None, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_index_is_kept_in_the_data_folder_and_rebuilt_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let w = world_with(Engine::open(dir.path()).await.unwrap()).await;
        w.say(&w.ada, "persistent needle").await;
        let hits = w
            .engine
            .search(&w.ada, "c1", "needle", None, None)
            .await
            .unwrap();
        assert_eq!(hits.len(), 1);
        w.engine.close().await.unwrap();
    }
    assert!(dir.path().join("search").is_dir());
    {
        // Reopened: the index is caught up from where its last commit left off.
        let engine = Engine::open(dir.path()).await.unwrap();
        let w = World {
            engine,
            ..world().await
        };
        w.say(&w.bob, "another needle").await;
        let hits = w
            .engine
            .search(&w.ada, "c1", "needle", None, None)
            .await
            .unwrap();
        assert_eq!(hits.len(), 2, "no document twice, none lost");
        w.engine.close().await.unwrap();
    }
    // Gone, or garbage: rebuilt from the store.
    std::fs::remove_dir_all(dir.path().join("search")).unwrap();
    std::fs::create_dir_all(dir.path().join("search")).unwrap();
    std::fs::write(dir.path().join("search/meta.json"), b"not json").unwrap();
    let engine = Engine::open(dir.path()).await.unwrap();
    let hits = engine
        .search(&chat_core::Actor::system(), "c1", "needle", None, None)
        .await
        .unwrap();
    assert_eq!(hits.len(), 2);
}
