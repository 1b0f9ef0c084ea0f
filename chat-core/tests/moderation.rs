//! Moderation through the engine: pins, mutes, bans, flags and the audit log, with who may do
//! what and which events reach whom.

mod common;

use std::time::Duration;

use chat_core::{Error, ErrorCode, Event};
use common::*;

#[tokio::test]
async fn pins_are_seqd_changes_moderators_make_and_everyone_reads() {
    let w = world().await;
    let (conn, mut events) = w.engine.connect(&w.ada).await.unwrap();
    conn.join("c1", None).await.unwrap();
    let m = w.say(&w.bob, "read the syllabus").await;
    changes(&mut events, 1).await;

    let refused = w.engine.pin(&w.ada, &m.id).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Forbidden, "students do not pin");

    let pinned = w.engine.pin(&w.prof, &m.id).await.unwrap();
    assert!(pinned.pinned);
    assert_eq!(pinned.pinned_by.as_deref(), Some("prof"));
    let json = serde_json::to_value(&pinned).unwrap();
    assert_eq!(json["pinned"], true);
    assert_eq!(json["pinnedBy"], "prof");
    match next_named(&mut events, "message-pinned").await {
        Event::MessagePinned(p) => {
            assert!(p.pinned);
            assert_eq!(
                (p.message_id.as_str(), p.seq),
                (m.id.as_str(), pinned.change_seq)
            );
        }
        other => panic!("{other:?}"),
    }
    // Pinning again changes nothing.
    let again = w.engine.pin(&w.prof, &m.id).await.unwrap();
    assert_eq!(again.change_seq, pinned.change_seq);
    let list = w.engine.pinned(&w.ada, "c1").await.unwrap();
    assert_eq!(list.iter().map(|m| &m.id).collect::<Vec<_>>(), [&m.id]);

    // A resume replays the pin, then the unpin.
    let unpinned = w.engine.unpin(&w.admin, &m.id).await.unwrap();
    assert!(!unpinned.pinned && unpinned.pinned_by.is_none());
    let plain = serde_json::to_value(&unpinned).unwrap();
    assert!(plain.get("pinned").is_none(), "absent when not pinned");
    let (late, mut replay) = w.engine.connect(&w.bob).await.unwrap();
    late.join("c1", Some(m.seq)).await.unwrap();
    let replayed = changes(&mut replay, 2).await;
    assert!(matches!(&replayed[0], Event::MessagePinned(p) if p.pinned));
    assert!(matches!(&replayed[1], Event::MessagePinned(p) if !p.pinned && p.pinned_by.is_none()));
    assert!(w.engine.pinned(&w.ada, "c1").await.unwrap().is_empty());

    // Deleting a pinned message unpins it.
    w.engine.pin(&w.prof, &m.id).await.unwrap();
    w.engine.delete(&w.bob, &m.id).await.unwrap();
    assert!(w.engine.pinned(&w.ada, "c1").await.unwrap().is_empty());
    let gone = w.engine.pin(&w.prof, &m.id).await.unwrap_err();
    assert_eq!(gone.code(), ErrorCode::NotFound);
    let outsider = w.engine.pinned(&w.eve, "c1").await.unwrap_err();
    assert_eq!(outsider.code(), ErrorCode::NotEnrolled);
}

#[tokio::test]
async fn a_muted_user_cannot_send_edit_react_or_type_until_the_mute_ends() {
    let w = world().await;
    let (conn, mut events) = w.engine.connect(&w.bob).await.unwrap();
    conn.join("c1", None).await.unwrap();
    let mine = w.say(&w.ada, "before").await;

    let refused = w
        .engine
        .mute(&w.bob, "c1", "ada", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Forbidden);
    for bad in [Duration::ZERO, Duration::from_secs(400 * 86_400)] {
        let e = w.engine.mute(&w.prof, "c1", "ada", bad).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Validation);
    }
    let e = w
        .engine
        .mute(&w.prof, "c1", "prof", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Validation, "not oneself");
    let e = w
        .engine
        .mute(&w.admin, "c1", "prof", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden, "not a moderator");

    let r = w
        .engine
        .mute(&w.prof, "c1", "ada", Duration::from_millis(1500))
        .await
        .unwrap();
    assert!(r.muted_until.is_some() && !r.banned);
    match next_named(&mut events, "user-muted").await {
        Event::UserMuted(m) => {
            assert_eq!((m.user_id.as_str(), m.by.as_str()), ("ada", "prof"));
            assert_eq!(m.muted_until, r.muted_until);
        }
        other => panic!("{other:?}"),
    }
    let send = w
        .engine
        .send(&w.ada, text("c1", "hello?"))
        .await
        .unwrap_err();
    assert_eq!(send.code(), ErrorCode::Muted);
    assert_eq!(send.code().as_str(), "MUTED");
    assert_eq!(send.code().http_status(), 403);
    assert!(matches!(send, Error::Muted { .. }));
    let edit = w
        .engine
        .edit(&w.ada, &mine.id, "changed")
        .await
        .unwrap_err();
    assert_eq!(edit.code(), ErrorCode::Muted);
    let react = w.engine.react(&w.ada, &mine.id, "👍").await.unwrap_err();
    assert_eq!(react.code(), ErrorCode::Muted);
    let typing = w.engine.typing(&w.ada, "c1", true).await.unwrap_err();
    assert_eq!(typing.code(), ErrorCode::Muted);
    // Reading, receipts and deleting one's own message still work.
    w.engine
        .history(&w.ada, "c1", Default::default())
        .await
        .unwrap();
    w.engine.mark_read(&w.ada, &mine.id).await.unwrap();
    let listed = w.engine.restrictions(&w.prof, "c1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].user_id, "ada");
    let e = w.engine.restrictions(&w.bob, "c1").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden);

    // The mute ends by itself.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    w.say(&w.ada, "back").await;
    assert!(w
        .engine
        .restrictions(&w.prof, "c1")
        .await
        .unwrap()
        .is_empty());

    // And can be lifted early.
    w.engine
        .mute(&w.prof, "c1", "ada", Duration::from_secs(600))
        .await
        .unwrap();
    w.engine.unmute(&w.prof, "c1", "ada").await.unwrap();
    match next_named(&mut events, "user-muted").await {
        Event::UserMuted(m) if m.muted_until.is_some() => {}
        other => panic!("{other:?}"),
    }
    match next_named(&mut events, "user-muted").await {
        Event::UserMuted(m) => assert_eq!(m.muted_until, None),
        other => panic!("{other:?}"),
    }
    w.say(&w.ada, "unmuted").await;
}

#[tokio::test]
async fn a_banned_user_leaves_the_room_and_can_neither_read_nor_write_until_unbanned() {
    let w = world().await;
    let (ada_conn, mut ada_events) = w.engine.connect(&w.ada).await.unwrap();
    ada_conn.join("c1", None).await.unwrap();
    let (bob_conn, mut bob_events) = w.engine.connect(&w.bob).await.unwrap();
    bob_conn.join("c1", None).await.unwrap();

    let r = w.engine.ban(&w.prof, "c1", "ada").await.unwrap();
    assert!(r.banned);
    match next_named(&mut bob_events, "user-banned").await {
        Event::UserBanned(b) => assert!(b.banned && b.user_id == "ada"),
        other => panic!("{other:?}"),
    }
    w.say(&w.bob, "after the ban").await;
    quiet(&mut ada_events, "new-message", 300).await;
    for e in [
        w.engine
            .send(&w.ada, text("c1", "let me in"))
            .await
            .unwrap_err(),
        w.engine
            .history(&w.ada, "c1", Default::default())
            .await
            .unwrap_err(),
        ada_conn.join("c1", None).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), ErrorCode::Banned, "{e:?}");
        assert_eq!(e.code().as_str(), "BANNED");
    }
    // The ban outlives the enrolment.
    w.engine.unenroll(&w.admin, "c1", "ada").await.unwrap();
    w.engine
        .enroll(&w.admin, "c1", "ada", chat_core::Role::Student)
        .await
        .unwrap();
    let e = w
        .engine
        .send(&w.ada, text("c1", "again"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Banned);

    w.engine.unban(&w.admin, "c1", "ada").await.unwrap();
    ada_conn.join("c1", None).await.unwrap();
    w.say(&w.ada, "thanks").await;
    let e = w.engine.ban(&w.prof, "c1", "admin-x").await;
    assert!(e.is_ok(), "someone not enrolled can be banned ahead");
}

#[tokio::test]
async fn flags_reach_moderators_only_and_resolving_can_delete_the_message() {
    let w = world().await;
    let (prof_conn, mut prof_events) = w.engine.connect(&w.prof).await.unwrap();
    prof_conn.join("c1", None).await.unwrap();
    let (bob_conn, mut bob_events) = w.engine.connect(&w.bob).await.unwrap();
    bob_conn.join("c1", None).await.unwrap();
    let rude = w.say(&w.bob, "something rude").await;

    for bad in ["", "   ", &"x".repeat(501)] {
        let e = w.engine.flag(&w.ada, &rude.id, bad).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Validation);
    }
    let own = w.engine.flag(&w.bob, &rude.id, "mine").await.unwrap_err();
    assert_eq!(own.code(), ErrorCode::Validation);
    let outsider = w.engine.flag(&w.eve, &rude.id, "rude").await.unwrap_err();
    assert_eq!(outsider.code(), ErrorCode::NotEnrolled);

    let flag = w.engine.flag(&w.ada, &rude.id, " rude ").await.unwrap();
    assert_eq!(
        (flag.reason.as_str(), flag.reporter_id.as_str()),
        ("rude", "ada")
    );
    match next_named(&mut prof_events, "message-flagged").await {
        Event::MessageFlagged(f) => assert_eq!(f, flag),
        other => panic!("{other:?}"),
    }
    quiet(&mut bob_events, "message-flagged", 300).await;
    let same = w.engine.flag(&w.ada, &rude.id, "again").await.unwrap();
    assert_eq!(same, flag, "one open flag per reporter and message");
    quiet(&mut prof_events, "message-flagged", 200).await;

    let e = w.engine.flags(&w.ada, "c1", true).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden);
    assert_eq!(
        w.engine.flags(&w.prof, "c1", true).await.unwrap(),
        std::slice::from_ref(&flag)
    );

    let resolved = w
        .engine
        .resolve_flag(&w.prof, &flag.id, true)
        .await
        .unwrap();
    let resolution = resolved.resolution.clone().unwrap();
    assert!(resolution.message_deleted);
    assert_eq!(resolution.by, "prof");
    assert!(w
        .engine
        .flags(&w.prof, "c1", true)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        w.engine.flags(&w.prof, "c1", false).await.unwrap(),
        std::slice::from_ref(&resolved)
    );
    match next_named(&mut bob_events, "message-deleted").await {
        Event::MessageDeleted(d) => assert_eq!(d.message_id, rude.id),
        other => panic!("{other:?}"),
    }
    match next_named(&mut prof_events, "flag-resolved").await {
        Event::FlagResolved(f) => assert_eq!(f, resolved),
        other => panic!("{other:?}"),
    }
    // Resolving twice returns the resolution; a deleted message cannot be flagged.
    assert_eq!(
        w.engine
            .resolve_flag(&w.prof, &flag.id, false)
            .await
            .unwrap(),
        resolved
    );
    let e = w.engine.flag(&w.ada, &rude.id, "rude").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    let e = w
        .engine
        .resolve_flag(&w.prof, "no-such", false)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn every_moderation_action_is_in_the_audit_log_admins_read() {
    let w = world().await;
    let m = w.say(&w.ada, "hello").await;
    let other = w.say(&w.bob, "bye").await;
    w.engine.pin(&w.prof, &m.id).await.unwrap();
    w.engine.unpin(&w.prof, &m.id).await.unwrap();
    w.engine
        .mute(&w.prof, "c1", "ada", Duration::from_secs(60))
        .await
        .unwrap();
    w.engine.unmute(&w.prof, "c1", "ada").await.unwrap();
    w.engine.ban(&w.prof, "c1", "bob").await.unwrap();
    w.engine.unban(&w.admin, "c1", "bob").await.unwrap();
    let flag = w.engine.flag(&w.ada, &other.id, "spam").await.unwrap();
    w.engine
        .resolve_flag(&w.prof, &flag.id, false)
        .await
        .unwrap();
    w.engine.delete(&w.prof, &other.id).await.unwrap();
    // A sender deleting their own message is not moderation.
    w.engine.delete(&w.ada, &m.id).await.unwrap();

    let e = w
        .engine
        .audit_log(&w.prof, None, None, 50)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden);
    let log = w
        .engine
        .audit_log(&w.admin, Some("c1"), None, 50)
        .await
        .unwrap();
    let actions: Vec<&str> = log.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "pin",
            "unpin",
            "mute",
            "unmute",
            "ban",
            "unban",
            "resolve-flag",
            "delete-message"
        ]
    );
    assert_eq!(log[1].actor_id, "prof");
    assert_eq!(log[1].target_user_id.as_deref(), Some("ada"));
    assert!(log[1].detail.as_deref().unwrap().contains("dismissed"));
    assert_eq!(log[2].actor_id, "system");
    // Pages newest first.
    let page = w
        .engine
        .audit_log(&w.admin, None, Some(&log[5].id), 2)
        .await
        .unwrap();
    assert_eq!(page, log[6..8].to_vec());
    for limit in [0, 201] {
        let e = w
            .engine
            .audit_log(&w.admin, None, None, limit)
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Validation);
    }
}
