//! The test suite every [`Store`] backend must pass. A backend's tests call [`run`] with an async
//! function that makes a fresh, empty store.

use std::future::Future;

use super::{
    ChangeKind, CourseRecord, Inserted, ReactionChange, ReadAdvance, Store, StoredFile, StoredUser,
    Update,
};
use crate::model::{
    AuditEntry, Flag, FlagResolution, Message, MessageType, Restriction, Role, Sender, Timestamp,
};

/// A new text message of `course` by `sender` (a student), to insert; backends' own tests use it
/// too.
pub fn message(course: &str, sender: &str, text: &str, client_id: Option<&str>) -> Message {
    let now = Timestamp::now();
    Message {
        id: ulid::Ulid::new().to_string(),
        course_id: course.into(),
        seq: 0,
        change_seq: 0,
        sender: Sender {
            id: sender.into(),
            name: sender.into(),
            avatar: None,
            role: Role::Student,
        },
        message: text.into(),
        message_type: MessageType::Text,
        file: None,
        reply_to: None,
        read_by: vec![],
        is_edited: false,
        edited_at: None,
        is_deleted: false,
        deleted_at: None,
        client_id: client_id.map(Into::into),
        created_at: now,
        updated_at: now,
        reactions: Vec::new(),
        pinned: false,
        pinned_at: None,
        pinned_by: None,
        thread_id: None,
        reply_count: 0,
        last_reply_at: None,
        mentions: Vec::new(),
    }
}

async fn insert(store: &dyn Store, m: Message) -> Message {
    match store.insert_message(m).await.expect("insert") {
        Inserted::New(m) => m,
        Inserted::Duplicate(_) => panic!("unexpected duplicate"),
    }
}

/// Runs every check against fresh stores from `make`, an async factory (a database backend
/// connects; an embedded one can answer with `std::future::ready`).
///
/// The concurrency check sends from plain threads through the current runtime's handle while the
/// test's task waits for them: a backend that does I/O on the runtime (a network database) must be
/// run from a multi-threaded runtime, e.g. `#[tokio::test(flavor = "multi_thread")]`.
pub async fn run<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    concurrent_inserts(std::sync::Arc::new(make().await)).await;
    profiles_and_courses(&make().await).await;
    seqs_and_log(&make().await).await;
    client_ids(&make().await).await;
    updates(&make().await).await;
    reactions(&make().await).await;
    pins(&make().await).await;
    threads(&make().await).await;
    restrictions(&make().await).await;
    flags(&make().await).await;
    audit(&make().await).await;
    drops(&make().await).await;
    push_subscriptions(&make().await).await;
    timeline(&make().await).await;
    receipts(&make().await).await;
    epochs(&make().await, &make().await).await;
}

/// Replies are indexed under their root in the write that stores them: counted, last reply
/// time, and paged oldest first in their current state.
async fn threads(store: &dyn Store) {
    let root = insert(store, message("c1", "u1", "question", None)).await;
    let other = insert(store, message("c1", "u1", "another", None)).await;
    let reply = |text: &str, to: &Message| {
        let mut m = message("c1", "u2", text, None);
        m.thread_id = Some(to.id.clone());
        m
    };
    let mut replies = Vec::new();
    for text in ["a1", "a2", "a3"] {
        replies.push(insert(store, reply(text, &root)).await);
    }
    insert(store, reply("b1", &other)).await;
    let roots = [root.id.clone(), other.id.clone(), replies[0].id.clone()];
    let mut summaries = store.thread_summaries("c1", &roots).await.unwrap();
    summaries.sort_by_key(|s| s.reply_count);
    assert_eq!(
        summaries.len(),
        2,
        "a message without replies has no summary"
    );
    assert_eq!(
        (summaries[0].root_id.as_str(), summaries[0].reply_count),
        (other.id.as_str(), 1)
    );
    assert_eq!(
        (summaries[1].root_id.as_str(), summaries[1].reply_count),
        (root.id.as_str(), 3)
    );
    assert_eq!(summaries[1].last_reply_at, replies[2].created_at);
    assert!(store.thread_summaries("c1", &[]).await.unwrap().is_empty());

    let page = store.thread_replies(&root.id, 0, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|m| m.message.as_str()).collect::<Vec<_>>(),
        ["a1", "a2"]
    );
    let rest = store
        .thread_replies(&root.id, page[1].seq, 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, replies[2].id);
    // Replies are read in their current state; a deleted one stays, counted, as a tombstone.
    let tomb = replies[0].clone().into_tombstone(Timestamp::now());
    store
        .update_message(Update {
            kind: ChangeKind::Deleted,
            message: tomb,
            expected_change_seq: replies[0].change_seq,
            reaction: None,
        })
        .await
        .unwrap();
    let all = store.thread_replies(&root.id, 0, 10).await.unwrap();
    assert!(all[0].is_deleted && all[0].message.is_empty());
    assert_eq!(all[0].thread_id.as_deref(), Some(root.id.as_str()));
    let again = store
        .thread_summaries("c1", std::slice::from_ref(&root.id))
        .await
        .unwrap();
    assert_eq!(again[0].reply_count, 3);
    assert!(store
        .thread_replies(&root.id, 0, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .thread_replies("nope", 0, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn set_pin(store: &dyn Store, m: &Message, pin: bool) -> Message {
    let mut next = m.clone();
    next.set_pin(pin.then(|| ("mod".to_string(), Timestamp::now())));
    store
        .update_message(Update {
            kind: ChangeKind::Pinned,
            message: next,
            expected_change_seq: m.change_seq,
            reaction: None,
        })
        .await
        .expect("pin")
}

/// Pins are seq'd changes; `pinned` lists a course's pinned messages in creation order and
/// follows unpins and deletions.
async fn pins(store: &dyn Store) {
    let a = insert(store, message("c1", "u1", "first", None)).await;
    let b = insert(store, message("c1", "u1", "second", None)).await;
    let other = insert(store, message("c2", "u1", "elsewhere", None)).await;
    assert!(store.pinned("c1").await.unwrap().is_empty());
    let b = set_pin(store, &b, true).await;
    let a = set_pin(store, &a, true).await;
    set_pin(store, &other, true).await;
    assert_eq!((b.change_seq, a.change_seq), (3, 4));
    assert!(a.pinned && a.pinned_by.as_deref() == Some("mod") && a.pinned_at.is_some());
    let ids: Vec<String> = store
        .pinned("c1")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, [a.id.clone(), b.id.clone()], "creation order");
    let log = store.changes("c1", 2, 4, 10).await.unwrap();
    assert!(log.iter().all(|c| c.kind == ChangeKind::Pinned));
    // Unpinning and deleting both take a message off the list.
    let a = set_pin(store, &a, false).await;
    assert!(!a.pinned && a.pinned_by.is_none() && a.pinned_at.is_none());
    let tomb = b.clone().into_tombstone(Timestamp::now());
    assert!(!tomb.pinned, "a tombstone is not pinned");
    store
        .update_message(Update {
            kind: ChangeKind::Deleted,
            message: tomb,
            expected_change_seq: b.change_seq,
            reaction: None,
        })
        .await
        .unwrap();
    assert!(store.pinned("c1").await.unwrap().is_empty());
    assert_eq!(store.pinned("c2").await.unwrap().len(), 1);
}

fn restriction(course: &str, user: &str, banned: bool) -> Restriction {
    Restriction {
        course_id: course.into(),
        user_id: user.into(),
        muted_until: Timestamp::from_millis(Timestamp::now().as_millis() + 60_000),
        banned,
        updated_by: "mod".into(),
        updated_at: Timestamp::now(),
    }
}

/// Restrictions are per course and user, replaced whole, listed by user id.
async fn restrictions(store: &dyn Store) {
    assert_eq!(store.restriction("c1", "u1").await.unwrap(), None);
    let mut r = restriction("c1", "u2", false);
    store.put_restriction(&r).await.unwrap();
    store
        .put_restriction(&restriction("c1", "u1", true))
        .await
        .unwrap();
    store
        .put_restriction(&restriction("c2", "u1", false))
        .await
        .unwrap();
    assert_eq!(
        store.restriction("c1", "u2").await.unwrap(),
        Some(r.clone())
    );
    r.banned = true;
    store.put_restriction(&r).await.unwrap();
    let all = store.restrictions("c1").await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.user_id.as_str()).collect::<Vec<_>>(),
        ["u1", "u2"]
    );
    assert!(all[1].banned, "replaced");
    assert!(store.remove_restriction("c1", "u2").await.unwrap());
    assert!(!store.remove_restriction("c1", "u2").await.unwrap());
    assert_eq!(store.restriction("c1", "u2").await.unwrap(), None);
    assert_eq!(store.restrictions("c2").await.unwrap().len(), 1);
}

fn new_flag(course: &str, message: &str, reporter: &str) -> Flag {
    Flag {
        id: crate::model::ordered_id(),
        course_id: course.into(),
        message_id: message.into(),
        reporter_id: reporter.into(),
        reason: "spam".into(),
        created_at: Timestamp::now(),
        resolution: None,
    }
}

/// A reporter has one open flag per message; resolved flags leave the open queue.
async fn flags(store: &dyn Store) {
    let first = new_flag("c1", "m1", "u1");
    assert_eq!(store.insert_flag(&first).await.unwrap(), first);
    let again = new_flag("c1", "m1", "u1");
    assert_eq!(
        store.insert_flag(&again).await.unwrap(),
        first,
        "one open flag"
    );
    let other = new_flag("c1", "m1", "u2");
    store.insert_flag(&other).await.unwrap();
    store
        .insert_flag(&new_flag("c2", "m9", "u1"))
        .await
        .unwrap();
    let open = store.flags("c1", true).await.unwrap();
    assert_eq!(open, [first.clone(), other.clone()], "oldest first");
    let mut done = first.clone();
    done.resolution = Some(FlagResolution {
        by: "mod".into(),
        at: Timestamp::now(),
        message_deleted: false,
    });
    store.update_flag(&done).await.unwrap();
    assert_eq!(store.flag(&first.id).await.unwrap(), Some(done.clone()));
    assert_eq!(store.flags("c1", true).await.unwrap(), [other]);
    assert_eq!(store.flags("c1", false).await.unwrap().len(), 2);
    // Once resolved, the same reporter may flag the message again.
    let later = new_flag("c1", "m1", "u1");
    assert_eq!(store.insert_flag(&later).await.unwrap(), later);
    let missing = new_flag("c1", "m1", "u3");
    assert!(matches!(
        store.update_flag(&missing).await,
        Err(crate::Error::NotFound(_))
    ));
    assert_eq!(store.flag("nope").await.unwrap(), None);
}

/// Dropping a course removes everything of it and nothing of another; it can start over.
async fn drops(store: &dyn Store) {
    for id in ["c1", "c2"] {
        store
            .put_course(&CourseRecord {
                id: id.into(),
                name: id.into(),
                chat_enabled: true,
                archived: true,
            })
            .await
            .unwrap();
        store
            .put_participant(id, "u1", Role::Student)
            .await
            .unwrap();
    }
    assert_eq!(store.course_ids().await.unwrap(), ["c1", "c2"]);
    let root = insert(store, message("c1", "u1", "root", Some("k1"))).await;
    let mut reply = message("c1", "u2", "reply", None);
    reply.thread_id = Some(root.id.clone());
    insert(store, reply).await;
    set_pin(store, &root, true).await;
    store
        .put_restriction(&restriction("c1", "u2", true))
        .await
        .unwrap();
    store
        .insert_flag(&new_flag("c1", &root.id, "u2"))
        .await
        .unwrap();
    store
        .advance_read("c1", "u2", 2, Timestamp::now())
        .await
        .unwrap();
    let file = StoredFile {
        id: "f1".into(),
        course_id: "c1".into(),
        uploader_id: "u1".into(),
        name: "a.png".into(),
        size: 1,
        mime_type: "image/png".into(),
        duration_ms: None,
        created_at: Timestamp::now(),
    };
    store.put_file(&file).await.unwrap();
    store
        .put_file(&StoredFile {
            id: "f2".into(),
            course_id: "c2".into(),
            ..file.clone()
        })
        .await
        .unwrap();
    let kept = insert(store, message("c2", "u1", "kept", None)).await;

    assert_eq!(store.drop_course("c1").await.unwrap(), ["f1"]);
    assert_eq!(store.course("c1").await.unwrap(), None);
    assert_eq!(store.course_ids().await.unwrap(), ["c2"]);
    assert_eq!(store.message(&root.id).await.unwrap(), None);
    assert_eq!(store.last_seq("c1").await.unwrap(), 0);
    assert_eq!(store.message_count("c1").await.unwrap(), 0);
    assert!(store.changes("c1", 0, 100, 100).await.unwrap().is_empty());
    assert!(store.participants("c1").await.unwrap().is_empty());
    assert_eq!(store.courses_of("u1").await.unwrap(), ["c2"]);
    assert!(store.pinned("c1").await.unwrap().is_empty());
    assert!(store.restrictions("c1").await.unwrap().is_empty());
    assert!(store.flags("c1", false).await.unwrap().is_empty());
    assert!(store
        .thread_replies(&root.id, 0, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.read_watermark("c1", "u2").await.unwrap(), None);
    assert_eq!(store.file("f1").await.unwrap(), None);
    // The other course is whole.
    assert_eq!(
        store.file("f2").await.unwrap().map(|f| f.id),
        Some("f2".into())
    );
    assert_eq!(
        store.message(&kept.id).await.unwrap().map(|m| m.id),
        Some(kept.id)
    );
    // Made again, the course starts over (and the same client id is free again).
    store
        .put_course(&CourseRecord {
            id: "c1".into(),
            name: "again".into(),
            chat_enabled: true,
            archived: false,
        })
        .await
        .unwrap();
    let fresh = insert(store, message("c1", "u1", "fresh", Some("k1"))).await;
    assert_eq!(fresh.seq, 1);
    assert_eq!(
        store.drop_course("nope").await.unwrap(),
        Vec::<String>::new()
    );
}

/// Push subscriptions are per user and endpoint, replaced by endpoint.
async fn push_subscriptions(store: &dyn Store) {
    let sub = |user: &str, endpoint: &str, key: &str| crate::model::PushSubscription {
        user_id: user.into(),
        endpoint: endpoint.into(),
        p256dh: key.into(),
        auth: "auth".into(),
        created_at: Timestamp::now(),
    };
    assert!(store.push_subscriptions("u1").await.unwrap().is_empty());
    store
        .put_push_subscription(&sub("u1", "https://b/", "k1"))
        .await
        .unwrap();
    store
        .put_push_subscription(&sub("u1", "https://a/", "k2"))
        .await
        .unwrap();
    store
        .put_push_subscription(&sub("u2", "https://a/", "k3"))
        .await
        .unwrap();
    let replaced = sub("u1", "https://b/", "k4");
    store.put_push_subscription(&replaced).await.unwrap();
    let mine = store.push_subscriptions("u1").await.unwrap();
    assert_eq!(
        mine.iter()
            .map(|s| (s.endpoint.as_str(), s.p256dh.as_str()))
            .collect::<Vec<_>>(),
        [("https://a/", "k2"), ("https://b/", "k4")]
    );
    assert!(store
        .remove_push_subscription("u1", "https://a/")
        .await
        .unwrap());
    assert!(!store
        .remove_push_subscription("u1", "https://a/")
        .await
        .unwrap());
    assert_eq!(store.push_subscriptions("u1").await.unwrap(), [replaced]);
    assert_eq!(store.push_subscriptions("u2").await.unwrap().len(), 1);
    // A course's subscribers: its participants with subscriptions, by user, each with theirs.
    assert!(store.push_subscribers("pc").await.unwrap().is_empty());
    for (user, role) in [("u1", Role::Student), ("u3", Role::Instructor)] {
        store.put_participant("pc", user, role).await.unwrap();
    }
    store
        .put_push_subscription(&sub("u1", "https://c/", "k5"))
        .await
        .unwrap();
    let subscribers = store.push_subscribers("pc").await.unwrap();
    assert_eq!(
        subscribers
            .iter()
            .map(|(u, subs)| (
                u.as_str(),
                subs.iter().map(|s| s.endpoint.as_str()).collect::<Vec<_>>()
            ))
            .collect::<Vec<_>>(),
        [("u1", vec!["https://b/", "https://c/"])],
        "u2 subscribed but is not enrolled; u3 is enrolled but did not subscribe"
    );
}

/// The audit log reads newest first, per course or whole, in pages by id.
async fn audit(store: &dyn Store) {
    let mut ids = ulid::Generator::new();
    let mut entries = Vec::new();
    for (i, course) in ["c1", "c2", "c1", "c1"].into_iter().enumerate() {
        let entry = AuditEntry {
            id: ids.generate().unwrap().to_string(),
            course_id: course.into(),
            actor_id: "mod".into(),
            action: "mute".into(),
            target_user_id: Some(format!("u{i}")),
            message_id: None,
            detail: None,
            at: Timestamp::now(),
        };
        store.append_audit(&entry).await.unwrap();
        entries.push(entry);
    }
    let all = store.audit(None, None, 10).await.unwrap();
    let newest_first: Vec<_> = entries.iter().rev().cloned().collect();
    assert_eq!(all, newest_first);
    let c1 = store.audit(Some("c1"), None, 2).await.unwrap();
    assert_eq!(c1, [entries[3].clone(), entries[2].clone()]);
    let next = store
        .audit(Some("c1"), Some(&entries[2].id), 10)
        .await
        .unwrap();
    assert_eq!(next, [entries[0].clone()]);
    let page = store.audit(None, Some(&entries[1].id), 10).await.unwrap();
    assert_eq!(page, [entries[0].clone()]);
    assert!(store.audit(Some("c3"), None, 10).await.unwrap().is_empty());
}

/// A store has one epoch for its whole life; two stores have different ones.
async fn epochs<S: Store>(a: &S, b: &S) {
    let first = a.epoch().await.expect("epoch");
    assert!(!first.is_empty());
    insert(a, message("c1", "u1", "hello", None)).await;
    assert_eq!(a.epoch().await.expect("epoch"), first, "stable");
    assert_ne!(b.epoch().await.expect("epoch"), first, "unique per store");
    assert_eq!(
        a.last_seqs(&["c1".into(), "none".into()])
            .await
            .expect("last seqs"),
        vec![1, 0]
    );
}

/// Sends from many threads at once: every new message takes its own seq with no gap, and a client
/// id used concurrently stores one message.
async fn concurrent_inserts<S: Store>(store: std::sync::Arc<S>) {
    const THREADS: usize = 8;
    const EACH: usize = 60;
    let rt = tokio::runtime::Handle::current();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, rt) = (store.clone(), rt.clone());
            std::thread::spawn(move || {
                (0..EACH)
                    .map(|i| {
                        // Every other send reuses one of five client ids of one sender.
                        let m = if i % 2 == 0 {
                            let cid = format!("k{}", i % 5);
                            message("c9", "u1", &format!("{t}/{i}"), Some(&cid))
                        } else {
                            message("c9", &format!("u{t}"), &format!("{t}/{i}"), None)
                        };
                        rt.block_on(store.insert_message(m)).expect("insert")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut new = Vec::new();
    let mut duplicates = Vec::new();
    for t in threads {
        for outcome in t.join().expect("sender thread") {
            match outcome {
                Inserted::New(m) => new.push(m),
                Inserted::Duplicate(m) => duplicates.push(m),
            }
        }
    }
    assert_eq!(new.len() + duplicates.len(), THREADS * EACH);
    let mut seqs: Vec<u64> = new.iter().map(|m| m.seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=new.len() as u64).collect::<Vec<_>>(),
        "seqs without gap or repeat"
    );
    assert_eq!(store.last_seq("c9").await.unwrap(), new.len() as u64);
    assert_eq!(store.message_count("c9").await.unwrap(), new.len() as u64);
    let with_cid: Vec<_> = new.iter().filter(|m| m.client_id.is_some()).collect();
    assert_eq!(with_cid.len(), 5, "one message per client id");
    for d in &duplicates {
        let original = with_cid
            .iter()
            .find(|m| m.client_id == d.client_id)
            .expect("a duplicate of a stored message");
        assert_eq!(&d, original);
    }
    let log = store.changes("c9", 0, u64::MAX, 10_000).await.unwrap();
    assert_eq!(log.len(), new.len());
    for change in &log {
        assert_eq!(
            store.message(&change.message.id).await.unwrap().as_ref(),
            Some(&change.message)
        );
    }
    let timeline = store.messages_at("c9", 0, 10_000).await.unwrap();
    assert_eq!(
        timeline.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=new.len() as u64).collect::<Vec<_>>(),
        "the timeline is in seq order"
    );
}

async fn profiles_and_courses(store: &dyn Store) {
    assert_eq!(store.user("u1").await.unwrap(), None);
    let user = StoredUser {
        id: "u1".into(),
        name: "Ada".into(),
        avatar: None,
        role: Role::Student,
        last_seen: None,
    };
    store.put_user(&user).await.unwrap();
    assert_eq!(store.user("u1").await.unwrap(), Some(user));
    let course = CourseRecord {
        id: "c1".into(),
        name: "Rust".into(),
        chat_enabled: true,
        archived: false,
    };
    store.put_course(&course).await.unwrap();
    assert_eq!(store.course("c1").await.unwrap(), Some(course.clone()));
    assert_eq!(store.course("c").await.unwrap(), None, "no prefix matches");
    store
        .put_participant("c1", "u2", Role::Instructor)
        .await
        .unwrap();
    store
        .put_participant("c1", "u1", Role::Student)
        .await
        .unwrap();
    store
        .put_participant("c10", "u1", Role::Student)
        .await
        .unwrap();
    let ps = store.participants("c1").await.unwrap();
    let ids: Vec<_> = ps.iter().map(|p| (p.user_id.as_str(), p.role)).collect();
    assert_eq!(ids, [("u1", Role::Student), ("u2", Role::Instructor)]);
    assert_eq!(store.courses_of("u1").await.unwrap(), ["c1", "c10"]);
    assert_eq!(
        store.participant("c1", "u2").await.unwrap(),
        Some(Role::Instructor)
    );
    assert!(store.remove_participant("c1", "u2").await.unwrap());
    assert!(!store.remove_participant("c1", "u2").await.unwrap());
    assert_eq!(store.participant("c1", "u2").await.unwrap(), None);
    assert!(store.courses_of("u2").await.unwrap().is_empty());
    // What was read before is never answered after a change (a backend may cache these reads).
    store
        .put_participant("c1", "u2", Role::Student)
        .await
        .unwrap();
    assert_eq!(
        store.participant("c1", "u2").await.unwrap(),
        Some(Role::Student)
    );
    store
        .put_participant("c1", "u2", Role::Admin)
        .await
        .unwrap();
    assert_eq!(
        store.participant("c1", "u2").await.unwrap(),
        Some(Role::Admin)
    );
    let renamed = CourseRecord {
        name: "Rust 2".into(),
        chat_enabled: false,
        archived: true,
        ..course
    };
    store.put_course(&renamed).await.unwrap();
    assert_eq!(store.course("c1").await.unwrap(), Some(renamed));
}

async fn seqs_and_log(store: &dyn Store) {
    assert_eq!(store.last_seq("c1").await.unwrap(), 0);
    let a = insert(store, message("c1", "u1", "a", None)).await;
    let b = insert(store, message("c1", "u1", "b", None)).await;
    let other = insert(store, message("c2", "u1", "x", None)).await;
    assert_eq!((a.seq, a.change_seq, b.seq), (1, 1, 2));
    assert_eq!(other.seq, 1, "seqs are per course");
    assert_eq!(store.last_seq("c1").await.unwrap(), 2);
    assert_eq!(store.message(&a.id).await.unwrap(), Some(a.clone()));
    let log = store.changes("c1", 0, 2, 10).await.unwrap();
    assert_eq!(log.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(log.iter().all(|c| c.kind == ChangeKind::New));
    assert_eq!(store.changes("c1", 1, 2, 10).await.unwrap().len(), 1);
    assert_eq!(
        store.changes("c1", 0, 1, 10).await.unwrap().len(),
        1,
        "upto is inclusive"
    );
    assert_eq!(
        store.changes("c1", 0, 2, 1).await.unwrap().len(),
        1,
        "limit holds"
    );
    assert!(store.changes("c1", 2, 2, 10).await.unwrap().is_empty());
}

async fn client_ids(store: &dyn Store) {
    let first = insert(store, message("c1", "u1", "hi", Some("k1"))).await;
    let again = store
        .insert_message(message("c1", "u1", "hi again", Some("k1")))
        .await
        .unwrap();
    assert_eq!(again, Inserted::Duplicate(first.clone()));
    assert_eq!(
        store.last_seq("c1").await.unwrap(),
        1,
        "a duplicate takes no seq"
    );
    // Same key from another sender, or in another course, is a new message.
    assert!(matches!(
        store
            .insert_message(message("c1", "u2", "hi", Some("k1")))
            .await
            .unwrap(),
        Inserted::New(_)
    ));
    assert!(matches!(
        store
            .insert_message(message("c2", "u1", "hi", Some("k1")))
            .await
            .unwrap(),
        Inserted::New(_)
    ));
}

async fn reactions(store: &dyn Store) {
    let m = insert(store, message("c1", "u1", "react to me", None)).await;
    let mut liked = m.clone();
    liked.apply_reaction("u2", "👍", true);
    // A reaction change names its reaction, and only a reaction change does.
    for (kind, reaction) in [
        (ChangeKind::Reacted, None),
        (
            ChangeKind::Edited,
            Some(ReactionChange {
                user_id: "u2".into(),
                emoji: "👍".into(),
                added: true,
            }),
        ),
    ] {
        let refused = store
            .update_message(Update {
                kind,
                message: liked.clone(),
                expected_change_seq: 1,
                reaction,
            })
            .await;
        assert!(
            matches!(refused, Err(crate::Error::Validation(_))),
            "{refused:?}"
        );
    }
    let r = store
        .update_message(Update {
            kind: ChangeKind::Reacted,
            message: liked,
            expected_change_seq: 1,
            reaction: Some(ReactionChange {
                user_id: "u2".into(),
                emoji: "👍".into(),
                added: true,
            }),
        })
        .await
        .unwrap();
    assert_eq!((r.seq, r.change_seq), (1, 2));
    assert_eq!(r.reactions[0].user_ids, ["u2"]);
    // The change log keeps who reacted with what, for a resume to replay.
    let changes = store.changes("c1", 1, 2, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind, ChangeKind::Reacted);
    assert_eq!(
        changes[0].reaction,
        Some(ReactionChange {
            user_id: "u2".into(),
            emoji: "👍".into(),
            added: true
        })
    );
    let stored = store.message(&m.id).await.unwrap().unwrap();
    assert_eq!(stored.reactions, r.reactions);
    // A later edit keeps the reactions; the new-message change has none.
    assert_eq!(
        store.changes("c1", 0, 1, 10).await.unwrap()[0].reaction,
        None
    );
}

async fn updates(store: &dyn Store) {
    let m = insert(store, message("c1", "u1", "secret", None)).await;
    let mut edited = m.clone();
    edited.message = "edited".into();
    edited.is_edited = true;
    let e = store
        .update_message(Update {
            kind: ChangeKind::Edited,
            message: edited.clone(),
            expected_change_seq: 1,
            reaction: None,
        })
        .await
        .unwrap();
    assert_eq!((e.seq, e.change_seq, e.message.as_str()), (1, 2, "edited"));
    // A stale writer is refused and writes nothing.
    let stale = store
        .update_message(Update {
            kind: ChangeKind::Edited,
            message: edited,
            expected_change_seq: 1,
            reaction: None,
        })
        .await;
    assert_eq!(stale, Err(crate::Error::Conflict));
    assert_eq!(store.last_seq("c1").await.unwrap(), 2);
    // An update that is a new message, or that moves the message to another course, is refused
    // and writes nothing; so is one of a message that does not exist.
    let mut moved = e.clone();
    moved.course_id = "c2".into();
    for (kind, message) in [(ChangeKind::New, e.clone()), (ChangeKind::Edited, moved)] {
        let refused = store
            .update_message(Update {
                kind,
                message,
                expected_change_seq: 2,
                reaction: None,
            })
            .await;
        assert!(
            matches!(refused, Err(crate::Error::Validation(_))),
            "{kind:?}: {refused:?}"
        );
    }
    let mut ghost = e.clone();
    ghost.id = ulid::Ulid::new().to_string();
    let missing = store
        .update_message(Update {
            kind: ChangeKind::Edited,
            message: ghost,
            expected_change_seq: 2,
            reaction: None,
        })
        .await;
    assert_eq!(missing, Err(crate::Error::NotFound("message")));
    assert_eq!(store.last_seq("c1").await.unwrap(), 2);
    assert_eq!(store.last_seq("c2").await.unwrap(), 0);
    let tomb = e.clone().into_tombstone(Timestamp::now());
    let d = store
        .update_message(Update {
            kind: ChangeKind::Deleted,
            message: tomb,
            expected_change_seq: 2,
            reaction: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (d.change_seq, d.is_deleted, d.message.as_str()),
        (3, true, "")
    );
    assert_eq!(store.message(&m.id).await.unwrap(), Some(d));
    let log = store.changes("c1", 0, 3, 10).await.unwrap();
    let kinds: Vec<_> = log.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [ChangeKind::New, ChangeKind::Edited, ChangeKind::Deleted]
    );
    assert!(
        log.iter().all(|c| c.message.message.is_empty()),
        "deletion scrubs old snapshots"
    );
    assert_eq!(
        log.iter().map(|c| c.message.change_seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        store.message_count("c1").await.unwrap(),
        1,
        "edits are not messages"
    );
}

async fn timeline(store: &dyn Store) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let m = insert(store, message("c1", "u1", &format!("m{i}"), None)).await;
        ids.push(m.id.clone());
        if i == 1 {
            let mut e = m.clone();
            e.message = "e".into();
            store
                .update_message(Update {
                    kind: ChangeKind::Edited,
                    message: e,
                    expected_change_seq: m.seq,
                    reaction: None,
                })
                .await
                .unwrap();
        }
    }
    // seqs: m0=1, m1=2, edit=3, m2=4, m3=5, m4=6
    assert_eq!(store.message_count("c1").await.unwrap(), 5);
    let page = store.messages_at("c1", 1, 3).await.unwrap();
    assert_eq!(
        page.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        ids[1..4]
    );
    assert_eq!(page[0].message, "e", "timeline shows current state");
    assert_eq!(store.position_of_seq("c1", 1).await.unwrap(), 0);
    assert_eq!(store.position_of_seq("c1", 3).await.unwrap(), 2);
    assert_eq!(store.position_of_seq("c1", 4).await.unwrap(), 2);
    assert_eq!(store.position_of_seq("c1", 99).await.unwrap(), 5);
    assert!(store.messages_at("c1", 5, 10).await.unwrap().is_empty());
}

async fn receipts(store: &dyn Store) {
    for i in 0..4 {
        insert(store, message("c1", "u1", &format!("m{i}"), None)).await;
    }
    let w = store.read_watermark("c1", "u1").await.unwrap().unwrap();
    assert_eq!(w.seq, 4, "the sender has read their own messages");
    let t1 = Timestamp::from_millis(1_000).unwrap();
    let t2 = Timestamp::from_millis(2_000).unwrap();
    let ReadAdvance::Advanced(m) = store.advance_read("c1", "u2", 2, t1).await.unwrap() else {
        panic!("first read advances")
    };
    assert_eq!((m.seq, m.at), (2, t1));
    let ReadAdvance::Already(m) = store.advance_read("c1", "u2", 1, t2).await.unwrap() else {
        panic!("older read is already covered")
    };
    assert_eq!((m.seq, m.at), (2, t1), "the first mark that covers seq 1");
    assert!(matches!(
        store.advance_read("c1", "u2", 4, t2).await.unwrap(),
        ReadAdvance::Advanced(_)
    ));
    assert_eq!(
        store.read_watermark("c1", "u2").await.unwrap().unwrap().seq,
        4
    );
    let marks = store.read_marks("c1", 1, 3).await.unwrap();
    let u2: Vec<_> = marks
        .iter()
        .filter(|m| m.user_id == "u2")
        .map(|m| m.seq)
        .collect();
    assert_eq!(u2, [2, 4], "marks in range plus the first beyond");
    let marks = store.read_marks("c1", 3, 3).await.unwrap();
    let u2: Vec<_> = marks
        .iter()
        .filter(|m| m.user_id == "u2")
        .map(|m| m.seq)
        .collect();
    assert_eq!(u2, [4]);
    assert!(store.read_marks("c1", 5, 9).await.unwrap().is_empty());
}
