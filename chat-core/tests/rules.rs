//! Every rule of the contract, through the engine's public API.

mod common;

use bytes::Bytes;
use chat_core::{
    Actor, Attachment, Config, CourseUpdate, Engine, Error, ErrorCode, HistoryQuery, MessageType,
    Role, SendMessage,
};
use common::*;

#[tokio::test]
async fn provisioning_is_for_admins() {
    let w = world().await;
    let err = w
        .engine
        .put_course(&w.ada, "c2", CourseUpdate::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert!(w
        .engine
        .enroll(&w.prof, "c1", "eve", Role::Student)
        .await
        .is_err());
    let c = w.engine.course(&w.ada, "c1").await.unwrap();
    assert_eq!((c.name.as_str(), c.chat_enabled), ("Rust 101", true));
    assert_eq!(c.participants, ["ada", "bob", "prof"]);
    // Partial update keeps the name.
    let c = w
        .engine
        .put_course(
            &w.admin,
            "c1",
            CourseUpdate {
                name: None,
                chat_enabled: Some(false),
                archived: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((c.name.as_str(), c.chat_enabled), ("Rust 101", false));
    assert_eq!(
        w.engine
            .enroll(&w.admin, "nope", "eve", Role::Student)
            .await
            .unwrap_err(),
        Error::NotFound("course")
    );
    assert!(w
        .engine
        .put_course(&w.admin, "bad\u{0}id", CourseUpdate::default())
        .await
        .is_err());
    w.engine.unenroll(&w.admin, "c1", "bob").await.unwrap();
    assert_eq!(
        w.engine.course(&w.bob, "c1").await.unwrap_err(),
        Error::NotEnrolled
    );
    assert_eq!(
        w.engine
            .unenroll(&w.admin, "c1", "bob")
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn only_participants_and_admins_reach_a_course() {
    let w = world().await;
    let m = w.say(&w.ada, "hello").await;
    assert_eq!(
        w.engine.send(&w.eve, text("c1", "hi")).await.unwrap_err(),
        Error::NotEnrolled
    );
    assert_eq!(
        w.engine
            .history(&w.eve, "c1", HistoryQuery::default())
            .await
            .unwrap_err(),
        Error::NotEnrolled
    );
    assert_eq!(
        w.engine.mark_read(&w.eve, &m.id).await.unwrap_err(),
        Error::NotEnrolled
    );
    assert_eq!(
        w.engine.delete(&w.eve, &m.id).await.unwrap_err(),
        Error::NotEnrolled
    );
    assert!(w
        .engine
        .connect(&w.eve)
        .await
        .unwrap()
        .0
        .join("c1", None)
        .await
        .is_err());
    assert_eq!(
        w.engine.send(&w.ada, text("nope", "hi")).await.unwrap_err(),
        Error::NotFound("course")
    );
    // Admins need no enrollment.
    let boss = Actor::new("boss", "Boss", Role::Admin);
    w.engine
        .send(&boss, text("c1", "announcement"))
        .await
        .unwrap();
    assert_eq!(
        w.engine
            .history(&boss, "c1", HistoryQuery::default())
            .await
            .unwrap()
            .messages
            .len(),
        2
    );
}

#[tokio::test]
async fn message_shape_and_text_rules() {
    let w = world().await;
    let m = w.say(&w.ada, "  Hello  ").await;
    assert_eq!(m.message, "Hello", "text is trimmed");
    assert_eq!(
        (m.seq, m.change_seq, m.message_type),
        (1, 1, MessageType::Text)
    );
    assert_eq!(m.sender.name, "Ada");
    assert!(m.read_by.is_empty() && !m.is_edited && !m.is_deleted);
    assert_eq!(m.id.len(), 26, "a ULID");
    let json = serde_json::to_value(&m).unwrap();
    for field in [
        "id",
        "courseId",
        "seq",
        "sender",
        "message",
        "messageType",
        "file",
        "replyTo",
        "readBy",
        "isEdited",
        "editedAt",
        "isDeleted",
        "deletedAt",
        "clientId",
        "createdAt",
        "updatedAt",
    ] {
        assert!(json.get(field).is_some(), "field {field} in {json}");
    }
    assert!(json["createdAt"].as_str().unwrap().ends_with('Z'));
    for bad in ["", "   \n\t "] {
        assert_eq!(
            w.engine
                .send(&w.ada, text("c1", bad))
                .await
                .unwrap_err()
                .code(),
            ErrorCode::Validation
        );
    }
    let long = "x".repeat(4001);
    assert_eq!(
        w.engine
            .send(&w.ada, text("c1", &long))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::Validation
    );
    w.engine
        .send(&w.ada, text("c1", &"é".repeat(4000)))
        .await
        .expect("4000 characters, not bytes");
    let img = SendMessage {
        message_type: Some(MessageType::Image),
        ..text("c1", "no file")
    };
    assert_eq!(
        w.engine.send(&w.ada, img).await.unwrap_err().code(),
        ErrorCode::Validation
    );
    let sys = SendMessage {
        message_type: Some(MessageType::System),
        ..text("c1", "sys")
    };
    assert_eq!(
        w.engine.send(&w.ada, sys.clone()).await.unwrap_err().code(),
        ErrorCode::Forbidden
    );
    assert_eq!(
        w.engine.send(&w.admin, sys).await.unwrap().message_type,
        MessageType::System
    );
}

#[tokio::test]
async fn configurable_text_limit() {
    let cfg = Config {
        max_message_chars: 5,
        ..Config::default()
    };
    let w = world_with(Engine::builder().config(cfg).open().await.unwrap()).await;
    w.say(&w.ada, "12345").await;
    assert!(w.engine.send(&w.ada, text("c1", "123456")).await.is_err());
}

#[tokio::test]
async fn replies_must_stay_in_the_course() {
    let w = world().await;
    w.engine
        .put_course(&w.admin, "c2", CourseUpdate::default())
        .await
        .unwrap();
    w.engine
        .enroll(&w.admin, "c2", "ada", Role::Student)
        .await
        .unwrap();
    let other = w
        .engine
        .send(&w.ada, text("c2", "elsewhere"))
        .await
        .unwrap();
    let q = w.say(&w.bob, &"q".repeat(300)).await;
    let reply = SendMessage {
        reply_to: Some(q.id.clone()),
        ..text("c1", "answer")
    };
    let r = w.engine.send(&w.ada, reply).await.unwrap();
    let preview = r.reply_to.clone().unwrap();
    assert_eq!(
        (
            preview.id.as_str(),
            preview.message.chars().count(),
            preview.is_deleted
        ),
        (q.id.as_str(), 200, false)
    );
    assert_eq!(preview.sender.id, "bob");
    let cross = SendMessage {
        reply_to: Some(other.id),
        ..text("c1", "answer")
    };
    assert_eq!(
        w.engine.send(&w.ada, cross).await.unwrap_err().code(),
        ErrorCode::Validation
    );
    let missing = SendMessage {
        reply_to: Some("01JD0000000000000000000000".into()),
        ..text("c1", "x")
    };
    assert_eq!(
        w.engine.send(&w.ada, missing).await.unwrap_err().code(),
        ErrorCode::Validation
    );
    // The preview follows the original: once deleted, the reply shows it as deleted.
    w.engine.delete(&w.bob, &q.id).await.unwrap();
    let again = w.engine.message(&w.ada, &r.id).await.unwrap();
    let p = again.reply_to.unwrap();
    assert!(p.is_deleted && p.message.is_empty());
}

#[tokio::test]
async fn only_the_sender_edits() {
    let w = world().await;
    let m = w.say(&w.ada, "tpyo").await;
    assert_eq!(
        w.engine.edit(&w.bob, &m.id, "x").await.unwrap_err().code(),
        ErrorCode::Forbidden
    );
    assert_eq!(
        w.engine.edit(&w.prof, &m.id, "x").await.unwrap_err().code(),
        ErrorCode::Forbidden
    );
    let e = w.engine.edit(&w.ada, &m.id, " typo ").await.unwrap();
    assert_eq!(
        (e.message.as_str(), e.is_edited, e.seq, e.change_seq),
        ("typo", true, 1, 2)
    );
    assert!(e.edited_at.is_some());
    assert_eq!(
        w.engine.edit(&w.ada, &m.id, "  ").await.unwrap_err().code(),
        ErrorCode::Validation
    );
    assert_eq!(
        w.engine
            .edit(&w.ada, "01JD0000000000000000000000", "x")
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn sender_instructors_and_admins_delete() {
    let w = world().await;
    let a = w.say(&w.ada, "one").await;
    let b = w.say(&w.ada, "two").await;
    let c = w.say(&w.ada, "three").await;
    assert_eq!(
        w.engine.delete(&w.bob, &a.id).await.unwrap_err().code(),
        ErrorCode::Forbidden
    );
    let t = w.engine.delete(&w.ada, &a.id).await.unwrap();
    assert!(t.is_deleted && t.message.is_empty() && t.file.is_none() && t.deleted_at.is_some());
    assert_eq!(t.seq, a.seq, "a tombstone keeps its place");
    w.engine
        .delete(&w.prof, &b.id)
        .await
        .expect("the course's instructor deletes");
    w.engine
        .delete(&w.admin, &c.id)
        .await
        .expect("an admin deletes");
    // Deleting again is idempotent and takes no seq.
    let again = w.engine.delete(&w.ada, &a.id).await.unwrap();
    assert_eq!(again.change_seq, t.change_seq);
    assert_eq!(
        w.engine
            .edit(&w.ada, &a.id, "back")
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
    let page = w
        .engine
        .history(&w.ada, "c1", HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 3, "tombstones stay in history");
    assert!(page
        .messages
        .iter()
        .all(|m| m.is_deleted && m.message.is_empty()));
    // An instructor of another course is not an instructor here.
    let m = w.say(&w.ada, "four").await;
    let other_prof = Actor::new("prof2", "P2", Role::Instructor);
    w.engine
        .enroll(&w.admin, "c1", "prof2", Role::Student)
        .await
        .unwrap();
    assert_eq!(
        w.engine
            .delete(&other_prof, &m.id)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::Forbidden
    );
}

#[tokio::test]
async fn chat_disabled_stops_sending_editing_typing() {
    let w = world().await;
    let m = w.say(&w.ada, "before").await;
    w.engine
        .put_course(
            &w.admin,
            "c1",
            CourseUpdate {
                name: None,
                chat_enabled: Some(false),
                archived: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        w.engine.send(&w.ada, text("c1", "x")).await.unwrap_err(),
        Error::ChatDisabled
    );
    assert_eq!(
        w.engine.edit(&w.ada, &m.id, "x").await.unwrap_err(),
        Error::ChatDisabled
    );
    assert_eq!(
        w.engine.typing(&w.ada, "c1", true).await.unwrap_err(),
        Error::ChatDisabled
    );
    // Reading and moderating still work.
    w.engine
        .history(&w.ada, "c1", HistoryQuery::default())
        .await
        .unwrap();
    w.engine.delete(&w.prof, &m.id).await.unwrap();
}

#[tokio::test]
async fn client_id_makes_sends_idempotent() {
    let w = world().await;
    let req = SendMessage {
        client_id: Some("k-1".into()),
        ..text("c1", "once")
    };
    let a = w.engine.send(&w.ada, req.clone()).await.unwrap();
    let b = w.engine.send(&w.ada, req.clone()).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(b.client_id.as_deref(), Some("k-1"));
    let c = w.engine.send(&w.bob, req).await.unwrap();
    assert_ne!(a.id, c.id, "keys are per sender");
    let page = w
        .engine
        .history(&w.ada, "c1", HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(page.pagination.total, 2);
}

#[tokio::test(start_paused = true)]
async fn sends_are_rate_limited_per_user_and_course() {
    let w = world().await;
    for i in 0..10 {
        w.say(&w.ada, &format!("m{i}")).await;
    }
    let err = w
        .engine
        .send(&w.ada, text("c1", "too many"))
        .await
        .unwrap_err();
    let Error::RateLimited { retry_after } = err else {
        panic!("{err:?}")
    };
    assert!(retry_after.as_millis() > 0);
    assert_eq!(ErrorCode::RateLimited.http_status(), 429);
    w.say(&w.bob, "bob is not limited").await;
    tokio::time::advance(std::time::Duration::from_secs(2)).await;
    w.say(&w.ada, "refilled").await;
}

#[tokio::test]
async fn history_pages_newest_first_oldest_within() {
    let w = world().await;
    let cfg_limit = |page, limit| HistoryQuery {
        page: Some(page),
        limit: Some(limit),
        ..Default::default()
    };
    for i in 1..=7 {
        w.engine
            .send(&w.admin, text("c1", &format!("m{i}")))
            .await
            .unwrap();
    }
    let p1 = w
        .engine
        .history(&w.ada, "c1", cfg_limit(1, 3))
        .await
        .unwrap();
    let texts: Vec<_> = p1.messages.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, ["m5", "m6", "m7"]);
    let pg = &p1.pagination;
    assert_eq!(
        (pg.page, pg.limit, pg.total, pg.total_pages, pg.has_more),
        (1, 3, 7, 3, true)
    );
    let p3 = w
        .engine
        .history(&w.ada, "c1", cfg_limit(3, 3))
        .await
        .unwrap();
    assert_eq!(
        p3.messages
            .iter()
            .map(|m| m.message.as_str())
            .collect::<Vec<_>>(),
        ["m1"]
    );
    assert!(!p3.pagination.has_more);
    let before = HistoryQuery {
        before: Some(5),
        limit: Some(2),
        ..Default::default()
    };
    let p = w.engine.history(&w.ada, "c1", before).await.unwrap();
    assert_eq!(p.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4]);
    let after = HistoryQuery {
        after: Some(5),
        limit: Some(10),
        ..Default::default()
    };
    let p = w.engine.history(&w.ada, "c1", after).await.unwrap();
    assert_eq!(p.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [6, 7]);
    assert!(!p.pagination.has_more);
    let zero = HistoryQuery {
        limit: Some(0),
        ..Default::default()
    };
    assert_eq!(
        w.engine
            .history(&w.ada, "c1", zero)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::Validation
    );
    let big = HistoryQuery {
        limit: Some(5000),
        ..Default::default()
    };
    assert_eq!(
        w.engine
            .history(&w.ada, "c1", big)
            .await
            .unwrap()
            .pagination
            .limit,
        100
    );
    // Default page size is 50.
    assert_eq!(
        w.engine
            .history(&w.ada, "c1", HistoryQuery::default())
            .await
            .unwrap()
            .pagination
            .limit,
        50
    );
}

#[tokio::test]
async fn read_watermark_receipts_and_unread_counts() {
    let w = world().await;
    let ms: Vec<_> = [(&w.ada, "1"), (&w.prof, "2"), (&w.ada, "3"), (&w.prof, "4")]
        .into_iter()
        .map(|(who, t)| (who.clone(), t))
        .collect();
    let mut sent = Vec::new();
    for (who, t) in ms {
        sent.push(w.engine.send(&who, text("c1", t)).await.unwrap());
    }
    assert_eq!(w.engine.unread_count(&w.bob, "c1").await.unwrap(), 4);
    assert_eq!(
        w.engine.unread_count(&w.ada, "c1").await.unwrap(),
        1,
        "own messages are read"
    );
    let r = w.engine.mark_read(&w.bob, &sent[2].id).await.unwrap();
    assert_eq!(
        (
            r.message_id.as_str(),
            r.user_id.as_str(),
            r.course_id.as_str()
        ),
        (sent[2].id.as_str(), "bob", "c1")
    );
    assert_eq!(w.engine.unread_count(&w.bob, "c1").await.unwrap(), 1);
    // Idempotent, and earlier messages report the same first readAt.
    let again = w.engine.mark_read(&w.bob, &sent[2].id).await.unwrap();
    assert_eq!(again.read_at, r.read_at);
    let earlier = w.engine.mark_read(&w.bob, &sent[0].id).await.unwrap();
    assert_eq!(earlier.read_at, r.read_at);
    let page = w
        .engine
        .history(&w.ada, "c1", HistoryQuery::default())
        .await
        .unwrap();
    let readers = |i: usize| {
        let mut ids: Vec<_> = page.messages[i]
            .read_by
            .iter()
            .map(|r| r.user_id.clone())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(readers(0), ["bob", "prof"], "the sender is never listed");
    assert_eq!(readers(2), ["bob", "prof"]);
    assert_eq!(
        readers(3),
        Vec::<String>::new(),
        "nobody but its sender read the last one"
    );
    let bob = page.messages[0]
        .read_by
        .iter()
        .find(|r| r.user_id == "bob")
        .unwrap();
    assert_eq!(bob.read_at, r.read_at);
}

#[tokio::test]
async fn files_are_sniffed_sized_and_guarded() {
    let dir = tempfile::tempdir().unwrap();
    let w = world_with(Engine::open(dir.path()).await.unwrap()).await;
    let png = Bytes::from_static(
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89",
    );
    let send = |name: &str, bytes: Bytes, ty: Option<MessageType>| SendMessage {
        message_type: ty,
        attachment: Some(Attachment {
            name: name.into(),
            bytes,
        }),
        ..text("c1", "")
    };
    let m = w
        .engine
        .send(&w.ada, send("../../pic.png", png.clone(), None))
        .await
        .unwrap();
    let f = m.file.clone().unwrap();
    assert_eq!(
        (
            m.message_type,
            f.mime_type.as_str(),
            f.name.as_str(),
            f.size
        ),
        (MessageType::Image, "image/png", "pic.png", png.len() as u64)
    );
    assert_eq!(f.url, format!("/api/v1/chat/files/{}", f.id));
    let (info, bytes) = w.engine.file(&w.bob, &f.id).await.unwrap();
    assert_eq!((info, bytes), (f.clone(), png.clone()));
    assert_eq!(
        w.engine.file(&w.eve, &f.id).await.unwrap_err(),
        Error::NotEnrolled
    );
    assert_eq!(
        w.engine
            .file(&w.bob, "../../etc/passwd")
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
    let html = Bytes::from_static(b"<!DOCTYPE html><script>alert(1)</script>");
    let err = w
        .engine
        .send(&w.ada, send("evil.png", html, Some(MessageType::Image)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnsupportedMediaType);
    let big = Bytes::from(vec![b'a'; 10 * 1024 * 1024 + 1]);
    assert_eq!(
        w.engine
            .send(&w.ada, send("big.txt", big, None))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::PayloadTooLarge
    );
    let txt = w
        .engine
        .send(
            &w.ada,
            send("notes.txt", Bytes::from_static(b"plain notes"), None),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            txt.message_type,
            txt.file.as_ref().unwrap().mime_type.as_str()
        ),
        (MessageType::File, "text/plain")
    );
    let wrong = w
        .engine
        .send(&w.ada, send("a.png", png.clone(), Some(MessageType::Audio)))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), ErrorCode::Validation);
    // Deleting the message removes the file.
    w.engine.delete(&w.ada, &m.id).await.unwrap();
    assert_eq!(
        w.engine.file(&w.bob, &f.id).await.unwrap_err().code(),
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn presence_counts_connections_once() {
    let w = world().await;
    let (tab1, _e1) = w.engine.connect(&w.ada).await.unwrap();
    let (tab2, _e2) = w.engine.connect(&w.ada).await.unwrap();
    let online = w.engine.online_users(&w.bob, "c1").await.unwrap();
    assert_eq!(
        online.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        ["ada"]
    );
    assert!(online[0].is_online);
    tab1.close().await;
    assert!(
        w.engine.user("ada").await.unwrap().is_online,
        "one tab left"
    );
    tab2.close().await;
    let ada = w.engine.user("ada").await.unwrap();
    assert!(!ada.is_online && ada.last_seen.is_some());
    assert!(w
        .engine
        .online_users(&w.bob, "c1")
        .await
        .unwrap()
        .is_empty());
    // The caller's override.
    let me = w.engine.set_status(&w.bob, true).await.unwrap();
    assert!(me.is_online);
    let me = w.engine.set_status(&w.bob, false).await.unwrap();
    assert!(!me.is_online && me.last_seen.is_some());
}

#[tokio::test]
async fn dropped_connections_go_offline_too() {
    let w = world().await;
    let pair = w.engine.connect(&w.ada).await.unwrap();
    assert!(w.engine.user("ada").await.unwrap().is_online);
    drop(pair);
    for _ in 0..100 {
        if !w.engine.user("ada").await.unwrap().is_online {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("a dropped connection must end presence");
}

#[tokio::test]
async fn closed_engine_refuses_writes() {
    let w = world().await;
    w.engine.close().await.unwrap();
    assert_eq!(
        w.engine.send(&w.ada, text("c1", "late")).await.unwrap_err(),
        Error::Closed
    );
    assert_eq!(Error::Closed.code(), ErrorCode::Internal);
    assert_eq!(
        Error::Storage("disk on fire at /x".into()).public_message(),
        "internal error"
    );
}

#[tokio::test]
async fn voice_messages_carry_their_length_in_history_and_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let voice = Bytes::from(
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/media/voice.webm"
        ))
        .unwrap(),
    );
    let id = {
        let w = world_with(Engine::open(dir.path()).await.unwrap()).await;
        let m = w
            .engine
            .send(
                &w.ada,
                SendMessage {
                    attachment: Some(Attachment {
                        name: "voice.webm".into(),
                        bytes: voice,
                    }),
                    ..text("c1", "")
                },
            )
            .await
            .unwrap();
        assert_eq!(m.message_type, MessageType::Audio);
        let ms = m.file.as_ref().and_then(|f| f.duration_ms).unwrap();
        // 0.5 s of tone recorded the way MediaRecorder writes it (no Duration element).
        assert!((480..=560).contains(&ms), "{ms} ms");
        let (info, _) = w.engine.file(&w.bob, &m.file.unwrap().id).await.unwrap();
        assert_eq!(info.duration_ms, Some(ms));
        w.engine.close().await.unwrap();
        m.id
    };
    let engine = Engine::open(dir.path()).await.unwrap();
    let m = engine.message(&Actor::system(), &id).await.unwrap();
    assert!(
        m.file.unwrap().duration_ms.is_some(),
        "kept across a reopen"
    );
}

#[tokio::test]
async fn the_word_filter_masks_or_refuses_listed_words_in_sends_and_edits() {
    let masking = Config {
        blocked_words: vec!["darn".into(), "Heck".into()],
        ..Config::default()
    };
    let w = world_with(Engine::builder().config(masking).open().await.unwrap()).await;
    let m = w
        .engine
        .send(&w.ada, text("c1", "darn, that DARN heckler said heck"))
        .await
        .unwrap();
    assert_eq!(m.message, "****, that **** heckler said ****");
    let e = w.engine.edit(&w.ada, &m.id, "oh heck").await.unwrap();
    assert_eq!(e.message, "oh ****");

    let refusing = Config {
        blocked_words: vec!["darn".into()],
        blocked_words_action: chat_core::word_filter::WordFilterAction::Reject,
        ..Config::default()
    };
    let w = world_with(Engine::builder().config(refusing).open().await.unwrap()).await;
    let err = w
        .engine
        .send(&w.ada, text("c1", "Darn!"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert!(w
        .engine
        .send(&w.ada, text("c1", "darning socks"))
        .await
        .is_ok());

    let phrase = Config {
        blocked_words: vec!["two words".into()],
        ..Config::default()
    };
    assert_eq!(phrase.validate().unwrap_err().code(), ErrorCode::Validation);
}
