//! The event stream: who gets what, in which order, and how resume and lag behave.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_core::{Config, Draft, Engine, Error, Event, HistoryQuery, Plugin, PluginError, Verdict};
use common::*;
use parking_lot::Mutex;

#[tokio::test]
async fn room_events_reach_the_joined() {
    let w = world().await;
    let (ada, mut ada_ev) = w.engine.connect(&w.ada).await.unwrap();
    let (bob, mut bob_ev) = w.engine.connect(&w.bob).await.unwrap();
    let online = ada.join("c1", None).await.unwrap();
    assert_eq!(
        online.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        ["ada", "bob"]
    );
    let Event::OnlineUsers(o) = next_named(&mut ada_ev, "online-users").await else {
        unreachable!()
    };
    assert_eq!(o.users.len(), 2);
    bob.join("c1", None).await.unwrap();
    let Event::UserJoined(j) = next_named(&mut ada_ev, "user-joined").await else {
        unreachable!()
    };
    assert_eq!(j.user.id, "bob");
    next_named(&mut bob_ev, "online-users").await;

    let m = w.say(&w.ada, "hi").await;
    let Event::NewMessage(got) = next_named(&mut bob_ev, "new-message").await else {
        unreachable!()
    };
    assert_eq!(got, m);
    let Event::NewMessage(own) = next_named(&mut ada_ev, "new-message").await else {
        unreachable!()
    };
    assert_eq!(own.id, m.id, "the sender's other tabs see it too");

    let e = w.engine.edit(&w.ada, &m.id, "hi!").await.unwrap();
    let Event::MessageEdited(got) = next_named(&mut bob_ev, "message-edited").await else {
        unreachable!()
    };
    assert_eq!(
        (got.message.as_str(), got.change_seq),
        ("hi!", e.change_seq)
    );

    let r = w.engine.mark_read(&w.bob, &m.id).await.unwrap();
    let Event::MessageRead(got) = next_named(&mut ada_ev, "message-read").await else {
        unreachable!()
    };
    assert_eq!(got, r);

    let d = w.engine.delete(&w.ada, &m.id).await.unwrap();
    let Event::MessageDeleted(got) = next_named(&mut bob_ev, "message-deleted").await else {
        unreachable!()
    };
    assert_eq!(
        (got.message_id.as_str(), got.course_id.as_str(), got.seq),
        (m.id.as_str(), "c1", d.change_seq)
    );
    let json = serde_json::to_value(Event::MessageDeleted(got)).unwrap();
    assert_eq!(json["event"], "message-deleted");
    assert_eq!(json["data"]["messageId"], m.id.as_str());

    bob.leave("c1").await.unwrap();
    let Event::UserLeft(l) = next_named(&mut ada_ev, "user-left").await else {
        unreachable!()
    };
    assert_eq!(l.user.id, "bob");
    w.say(&w.ada, "bob is gone").await;
    quiet(&mut bob_ev, "new-message", 100).await;
}

#[tokio::test]
async fn two_tabs_join_once_and_leave_once() {
    let w = world().await;
    let (ada, mut ada_ev) = w.engine.connect(&w.ada).await.unwrap();
    ada.join("c1", None).await.unwrap();
    let (tab1, _e1) = w.engine.connect(&w.bob).await.unwrap();
    let (tab2, _e2) = w.engine.connect(&w.bob).await.unwrap();
    tab1.join("c1", None).await.unwrap();
    tab2.join("c1", None).await.unwrap();
    next_named(&mut ada_ev, "user-joined").await;
    tab1.close().await;
    quiet(&mut ada_ev, "user-left", 100).await;
    quiet(&mut ada_ev, "user-joined", 0).await;
    tab2.close().await;
    next_named(&mut ada_ev, "user-left").await;
}

#[tokio::test(start_paused = true)]
async fn typing_goes_to_others_and_expires() {
    let w = world().await;
    let (ada, mut ada_ev) = w.engine.connect(&w.ada).await.unwrap();
    let (bob, mut bob_ev) = w.engine.connect(&w.bob).await.unwrap();
    ada.join("c1", None).await.unwrap();
    bob.join("c1", None).await.unwrap();
    ada.typing("c1", true).await.unwrap();
    let Event::UserTyping(t) = next_named(&mut bob_ev, "user-typing").await else {
        unreachable!()
    };
    assert!(t.is_typing && t.user_id == "ada" && t.name == "Ada");
    // A refresh within 5 s sends nothing and pushes the expiry back.
    tokio::time::advance(Duration::from_secs(3)).await;
    ada.typing("c1", true).await.unwrap();
    tokio::time::advance(Duration::from_secs(3)).await;
    quiet(&mut bob_ev, "user-typing", 10).await;
    tokio::time::advance(Duration::from_secs(3)).await;
    let Event::UserTyping(t) = next_named(&mut bob_ev, "user-typing").await else {
        unreachable!()
    };
    assert!(!t.is_typing, "expired after 5 s without refresh");
    // Never to the typist.
    quiet(&mut ada_ev, "user-typing", 10).await;
    // An explicit stop and a send both end it at once.
    ada.typing("c1", true).await.unwrap();
    next_named(&mut bob_ev, "user-typing").await;
    ada.typing("c1", false).await.unwrap();
    let Event::UserTyping(t) = next_named(&mut bob_ev, "user-typing").await else {
        unreachable!()
    };
    assert!(!t.is_typing);
    ada.typing("c1", true).await.unwrap();
    next_named(&mut bob_ev, "user-typing").await;
    w.say(&w.ada, "done typing").await;
    let Event::UserTyping(t) = next_named(&mut bob_ev, "user-typing").await else {
        unreachable!()
    };
    assert!(!t.is_typing);
    assert!(w.engine.typing(&w.eve, "c1", true).await.is_err());
}

#[tokio::test]
async fn join_with_since_seq_replays_then_goes_live() {
    let w = world().await;
    let first = w.say(&w.ada, "1").await;
    let second = w.say(&w.ada, "2").await;
    w.engine.edit(&w.ada, &first.id, "1'").await.unwrap();
    w.engine.delete(&w.ada, &second.id).await.unwrap();
    let (bob, mut ev) = w.engine.connect(&w.bob).await.unwrap();
    bob.join("c1", Some(1)).await.unwrap();
    w.say(&w.ada, "live").await;
    let got = changes(&mut ev, 4).await;
    let seqs: Vec<u64> = got.iter().map(|e| e.seq().unwrap()).collect();
    assert_eq!(seqs, [2, 3, 4, 5]);
    assert!(
        matches!(&got[0], Event::NewMessage(m) if m.message.is_empty() && m.is_deleted),
        "scrubbed"
    );
    assert!(matches!(&got[1], Event::MessageEdited(m) if m.message == "1'"));
    assert!(matches!(&got[2], Event::MessageDeleted(d) if d.seq == 4));
    assert!(matches!(&got[3], Event::NewMessage(m) if m.message == "live"));
    // The same through the pull API.
    let pulled = w.engine.changes_since(&w.bob, "c1", 1, 100).await.unwrap();
    assert_eq!(
        pulled.iter().map(|e| e.seq().unwrap()).collect::<Vec<_>>(),
        [2, 3, 4, 5]
    );
    assert_eq!(
        w.engine
            .changes_since(&w.bob, "c1", 4, 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_lagging_subscriber_catches_up_without_gaps_and_never_blocks_senders() {
    let cfg = Config {
        subscriber_queue: 4,
        rate_limit_burst: 1000,
        ..Config::default()
    };
    let w = world_with(Engine::builder().config(cfg).open().await.unwrap()).await;
    let (bob, mut slow) = w.engine.connect(&w.bob).await.unwrap();
    bob.join("c1", None).await.unwrap();
    // Nobody reads `slow` while 200 messages go out: sends must not wait for it.
    for i in 0..200 {
        w.say(&w.ada, &format!("m{i}")).await;
    }
    let got = changes(&mut slow, 200).await;
    let seqs: Vec<u64> = got.iter().map(|e| e.seq().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=200).collect::<Vec<_>>(),
        "every change once, in order"
    );
}

#[tokio::test]
async fn plain_subscriptions_follow_a_course() {
    let w = world().await;
    w.say(&w.ada, "before").await;
    let mut sub = w.engine.subscribe(&w.admin, "c1", Some(0)).await.unwrap();
    w.say(&w.bob, "after").await;
    let got = changes(&mut sub, 2).await;
    assert_eq!(
        got.iter().map(|e| e.seq().unwrap()).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(w.engine.subscribe(&w.eve, "c1", None).await.is_err());
    // A subscription is not presence.
    assert!(w
        .engine
        .online_users(&w.admin, "c1")
        .await
        .unwrap()
        .is_empty());
}

struct Moderator {
    seen: Mutex<Vec<String>>,
}

#[async_trait]
impl Plugin for Moderator {
    fn name(&self) -> String {
        "moderator".into()
    }
    async fn before_send(&self, draft: &Draft) -> Result<Verdict, PluginError> {
        if draft.text.contains("spam") {
            Ok(Verdict::Reject("no spam".into()))
        } else if draft.text.contains("darn") {
            Ok(Verdict::Rewrite(draft.text.replace("darn", "****")))
        } else if draft.text.contains("crash") {
            Err(PluginError("moderation service down".into()))
        } else {
            Ok(Verdict::Accept)
        }
    }
    async fn after_event(&self, event: &Event) -> Result<(), PluginError> {
        self.seen.lock().push(event.name().to_string());
        Ok(())
    }
}

#[tokio::test]
async fn plugins_moderate_and_observe() {
    let plugin = Arc::new(Moderator {
        seen: Mutex::new(Vec::new()),
    });
    let engine = Engine::builder()
        .plugin(plugin.clone())
        .open()
        .await
        .unwrap();
    let w = world_with(engine).await;
    let err = w
        .engine
        .send(&w.ada, text("c1", "buy spam now"))
        .await
        .unwrap_err();
    assert_eq!(err, Error::Rejected("no spam".into()));
    assert_eq!(err.code(), chat_core::ErrorCode::Forbidden);
    let m = w.say(&w.ada, "oh darn").await;
    assert_eq!(m.message, "oh ****");
    let e = w.engine.edit(&w.ada, &m.id, "darn again").await.unwrap();
    assert_eq!(e.message, "**** again", "edits are moderated too");
    assert_eq!(
        w.engine
            .send(&w.ada, text("c1", "crash"))
            .await
            .unwrap_err()
            .code(),
        chat_core::ErrorCode::Internal
    );
    let page = w
        .engine
        .history(&w.ada, "c1", HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 1, "rejected messages are not stored");
    for _ in 0..100 {
        if plugin.seen.lock().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(*plugin.seen.lock(), ["new-message", "message-edited"]);
}

#[tokio::test]
async fn unenrolled_users_stop_receiving() {
    let w = world().await;
    let (bob, mut ev) = w.engine.connect(&w.bob).await.unwrap();
    bob.join("c1", None).await.unwrap();
    w.engine.unenroll(&w.admin, "c1", "bob").await.unwrap();
    w.say(&w.ada, "secret").await;
    quiet(&mut ev, "new-message", 100).await;
}

#[tokio::test]
async fn close_ends_streams_and_plugins() {
    let plugin = Arc::new(Moderator {
        seen: Mutex::new(Vec::new()),
    });
    let engine = Engine::builder()
        .plugin(plugin.clone())
        .open()
        .await
        .unwrap();
    let w = world_with(engine).await;
    let (ada, mut ev) = w.engine.connect(&w.ada).await.unwrap();
    ada.join("c1", None).await.unwrap();
    let mut sub = w.engine.subscribe(&w.admin, "c1", None).await.unwrap();
    w.engine.close().await.unwrap();
    assert!(w.engine.is_closed());
    let drained = async {
        while ev.recv().await.is_some() {}
        while sub.recv().await.is_some() {}
    };
    tokio::time::timeout(Duration::from_secs(2), drained)
        .await
        .expect("streams end on close");
    assert_eq!(w.engine.connect(&w.bob).await.unwrap_err(), Error::Closed);
    assert!(plugin.seen.lock().is_empty(), "no plugin call after close");
}

#[tokio::test]
async fn a_class_joining_at_once_costs_one_online_list_per_burst() {
    let w = world().await;
    let (watcher, mut ev) = w.engine.connect(&w.prof).await.unwrap();
    watcher.join("c1", None).await.unwrap();
    next_named(&mut ev, "online-users").await;
    let mut conns = Vec::new();
    for i in 0..40 {
        let id = format!("s{i}");
        w.engine
            .enroll(&w.admin, "c1", &id, chat_core::Role::Student)
            .await
            .unwrap();
        let actor = chat_core::Actor::new(id.clone(), id, chat_core::Role::Student);
        let (c, e) = w.engine.connect(&actor).await.unwrap();
        c.join("c1", None).await.unwrap();
        conns.push((c, e));
    }
    let (mut joined, mut lists, mut last) = (0, 0, 0);
    while let Some(env) = ev.recv_timeout(Duration::from_millis(600)).await {
        match env.event() {
            Event::UserJoined(_) => joined += 1,
            Event::OnlineUsers(o) => {
                lists += 1;
                last = o.users.len();
            }
            _ => {}
        }
    }
    assert_eq!(joined, 40, "every arrival is announced");
    assert!(
        (1..=3).contains(&lists),
        "{lists} online lists for one burst"
    );
    assert_eq!(last, 41, "the settled list has everyone");
}

#[tokio::test]
async fn typing_spam_is_limited_and_never_reaches_the_room_beyond_the_limit() {
    let w = world().await;
    let (bob, mut bob_ev) = w.engine.connect(&w.bob).await.unwrap();
    bob.join("c1", None).await.unwrap();
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..100 {
        match w.engine.typing(&w.ada, "c1", true).await {
            Ok(()) => ok += 1,
            Err(Error::RateLimited { .. }) => limited += 1,
            Err(e) => panic!("{e:?}"),
        }
        w.engine.typing(&w.ada, "c1", false).await.unwrap();
    }
    assert_eq!((ok, limited), (20, 80));
    let mut seen = 0;
    while let Some(env) = bob_ev.recv_timeout(Duration::from_millis(200)).await {
        seen += usize::from(env.name() == "user-typing");
    }
    assert_eq!(seen, 40, "20 starts and their 20 stops");
    // A refresh of an indicator that is up is never limited.
    for _ in 0..50 {
        w.engine.typing(&w.prof, "c1", true).await.unwrap();
    }
}

/// A caller that stops waiting for its send (a REST client that disconnects mid-request drops
/// the request's future) must not leave a seq taken and never published: every later change of
/// the course would wait behind it. On disk, a send waits for the log's fsync, so its future is
/// still pending after the write took its seq.
#[tokio::test]
async fn an_abandoned_send_or_edit_still_reaches_the_room_and_later_ones_follow() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder().data_dir(dir.path()).open().await.unwrap();
    let w = world_with(engine).await;
    let first = w.say(&w.ada, "warm up").await; // profiles written, hub loaded
    let (_conn, mut events) = w.engine.connect(&w.bob).await.unwrap();
    _conn.join("c1", None).await.unwrap();

    let mut abandoned = 0;
    for i in 0..20 {
        // Poll each once, up to its first wait, then drop it.
        let send = w.engine.send(&w.ada, text("c1", &format!("abandoned {i}")));
        if futures_poll_once(send).await {
            abandoned += 1;
        }
        let body = format!("edit {i}");
        if futures_poll_once(w.engine.edit(&w.ada, &first.id, &body)).await {
            abandoned += 1;
        }
    }
    assert!(abandoned > 0, "no write was ever pending on its fsync");
    let last = w.say(&w.bob, "after").await;
    // Everything up to the last seq arrives, in order, with no gap.
    let mut seqs = Vec::new();
    while seqs.last() != Some(&last.seq) {
        let env = next(&mut events).await;
        if let Some(seq) = env.event().seq() {
            seqs.push(seq);
        }
    }
    let expected: Vec<u64> = (first.seq + 1..=last.seq).collect();
    assert_eq!(seqs, expected);
}

/// Polls a future once; true when it was still pending (and is then dropped).
async fn futures_poll_once<F: std::future::Future>(fut: F) -> bool {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_pending())).await
}

/// An unenrollment whose caller stops waiting still takes the user out of the room.
#[tokio::test]
async fn an_abandoned_unenrollment_still_stops_the_users_events() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder().data_dir(dir.path()).open().await.unwrap();
    let w = world_with(engine).await;
    w.say(&w.ada, "warm up").await;
    let (conn, mut events) = w.engine.connect(&w.bob).await.unwrap();
    conn.join("c1", None).await.unwrap();
    let pending = futures_poll_once(w.engine.unenroll(&w.admin, "c1", "bob")).await;
    assert!(pending, "the unenrollment did not wait for its fsync");
    w.say(&w.ada, "after bob left").await;
    quiet(&mut events, "new-message", 300).await;
    let err = w
        .engine
        .send(&w.bob, text("c1", "still here?"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotEnrolled), "{err:?}");
}

#[tokio::test]
async fn an_admin_watching_a_room_is_not_one_of_its_online_participants() {
    let w = world().await;
    let root = chat_core::Actor::new("root", "Root", chat_core::Role::Admin);
    let (ada, mut ada_ev) = w.engine.connect(&w.ada).await.unwrap();
    ada.join("c1", None).await.unwrap();
    next_named(&mut ada_ev, "online-users").await;

    let (watcher, mut root_ev) = w.engine.connect(&root).await.unwrap();
    let online = watcher.join("c1", None).await.unwrap();
    let ids = |users: &[chat_core::User]| users.iter().map(|u| u.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&online), ["ada"], "the join's answer");
    let Event::OnlineUsers(o) = next_named(&mut root_ev, "online-users").await else {
        unreachable!()
    };
    assert_eq!(ids(&o.users), ["ada"], "the joiner's online-users");
    assert_eq!(
        ids(&w.engine.online_users(&w.ada, "c1").await.unwrap()),
        ["ada"]
    );
    // The watcher still sees the room, but the room is not told about the watcher.
    quiet(&mut ada_ev, "user-joined", 400).await;
    w.say(&w.ada, "hello").await;
    next_named(&mut root_ev, "new-message").await;
    watcher.close().await;
    quiet(&mut ada_ev, "user-left", 400).await;

    // Once enrolled, the same admin is a participant like any other.
    w.engine
        .enroll(&w.admin, "c1", "root", chat_core::Role::Admin)
        .await
        .unwrap();
    let (member, _root_ev) = w.engine.connect(&root).await.unwrap();
    let online = member.join("c1", None).await.unwrap();
    assert_eq!(ids(&online), ["ada", "root"]);
    let Event::UserJoined(j) = next_named(&mut ada_ev, "user-joined").await else {
        unreachable!()
    };
    assert_eq!(j.user.id, "root");
}

/// Every acknowledged send reaches a course's subscriber live, once, in seq order, while
/// several senders per course write at once on the durable store (group commits, the log
/// writer applying groups to sled, the hub ordering publishes that finish out of order).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_on_sled_reach_the_room_live_once_and_in_order() {
    concurrent_sends_reach_a_subscriber(100_000).await;
}

/// The same with a subscriber that falls behind at once (a queue of 8 it does not read while
/// the sends go out): what it missed comes from the store, still once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_on_sled_reach_a_lagging_subscriber_once_and_in_order() {
    concurrent_sends_reach_a_subscriber(8).await;
}

async fn concurrent_sends_reach_a_subscriber(subscriber_queue: usize) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        rate_limit_burst: 100_000,
        subscriber_queue,
        ..Config::default()
    };
    let engine = Engine::builder()
        .data_dir(dir.path())
        .config(cfg)
        .open()
        .await
        .unwrap();
    let w = world_with(engine).await;
    // Courses of their own, each with the same three senders and the watcher.
    const COURSES: [&str; 3] = ["c2", "c3", "c4"];
    const PER_SENDER: usize = 150;
    let watcher = chat_core::Actor::new("wat", "Watcher", chat_core::Role::Student);
    let senders = [&w.ada, &w.bob, &w.prof];
    for c in COURSES {
        w.engine
            .put_course(
                &w.admin,
                c,
                chat_core::CourseUpdate {
                    name: Some(c.into()),
                    chat_enabled: None,
                    archived: None,
                },
            )
            .await
            .unwrap();
        for u in senders.iter().map(|a| a.id.as_str()).chain(["wat"]) {
            w.engine
                .enroll(&w.admin, c, u, chat_core::Role::Student)
                .await
                .unwrap();
        }
    }
    let (session, mut events) = w.engine.connect(&watcher).await.unwrap();
    for c in COURSES {
        session.join(c, None).await.unwrap();
    }
    let mut tasks = Vec::new();
    for c in COURSES {
        for who in senders {
            let (engine, who) = (w.engine.clone(), who.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..PER_SENDER {
                    engine
                        .send(&who, text(c, &format!("{} {i}", who.id)))
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let per_course = senders.len() * PER_SENDER;
    let want = COURSES.len() * per_course;
    let got = changes(&mut events, want).await;
    for c in COURSES {
        let seqs: Vec<u64> = got
            .iter()
            .filter(|e| e.course_id() == c)
            .map(|e| e.seq().unwrap())
            .collect();
        assert_eq!(
            seqs,
            (1..=per_course as u64).collect::<Vec<_>>(),
            "course {c}: every send once, in seq order"
        );
    }
}
