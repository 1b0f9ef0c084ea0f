//! Two engines on one store, as two nodes of one deployment: changes made on one reach the
//! other's connections in seq order with no gap and no duplicate, even when the bus loses or
//! reorders notices; resume works across nodes and refuses a seq of another store; a reconnect
//! storm reads the store about once per course.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_core::cluster::local::{LocalBus, LocalPresence, LocalRateLimits};
use chat_core::cluster::{Bus, Cluster, Delivery};
use chat_core::engine::Resume;
use chat_core::model::{AuditEntry, Flag, PushSubscription, Restriction};
use chat_core::store::memory::MemoryStore;
use chat_core::store::{
    Change, CourseRecord, Inserted, ReadAdvance, ReadMark, StoredFile, StoredUser, ThreadSummary,
    Update,
};
use chat_core::{Engine, Event, Events, Message, Participant, Role, Store, Timestamp};
use common::*;
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// A bus that drops or holds back notices on the way, as a real one may.
struct Unreliable {
    inner: LocalBus,
    /// Drop every n-th message (0: none).
    drop_every: usize,
    /// Deliver each pair of messages in swapped order.
    swap_pairs: bool,
    sent: AtomicUsize,
    held: Mutex<Option<Vec<u8>>>,
}

impl Unreliable {
    fn new(drop_every: usize, swap_pairs: bool) -> Self {
        Unreliable {
            inner: LocalBus::default(),
            drop_every,
            swap_pairs,
            sent: AtomicUsize::new(0),
            held: Mutex::new(None),
        }
    }
}

#[async_trait]
impl Bus for Unreliable {
    async fn publish(&self, message: Vec<u8>) -> chat_core::Result<()> {
        let n = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        if self.drop_every > 0 && n % self.drop_every == 0 {
            return Ok(());
        }
        if self.swap_pairs {
            let earlier = {
                let mut held = self.held.lock();
                match held.take() {
                    None => {
                        *held = Some(message);
                        return Ok(());
                    }
                    Some(earlier) => earlier,
                }
            };
            self.inner.publish(message).await?;
            return self.inner.publish(earlier).await;
        }
        self.inner.publish(message).await
    }

    async fn subscribe(&self) -> chat_core::Result<mpsc::Receiver<Delivery>> {
        self.inner.subscribe().await
    }
}

/// A memory store that counts reads of the change log.
struct Counting {
    inner: MemoryStore,
    change_reads: AtomicUsize,
}

impl Counting {
    fn new() -> Self {
        Counting {
            inner: MemoryStore::open(),
            change_reads: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl Store for Counting {
    async fn put_user(&self, user: &StoredUser) -> chat_core::Result<()> {
        self.inner.put_user(user).await
    }
    async fn user(&self, id: &str) -> chat_core::Result<Option<StoredUser>> {
        self.inner.user(id).await
    }
    async fn put_course(&self, course: &CourseRecord) -> chat_core::Result<()> {
        self.inner.put_course(course).await
    }
    async fn course(&self, id: &str) -> chat_core::Result<Option<CourseRecord>> {
        self.inner.course(id).await
    }
    async fn course_ids(&self) -> chat_core::Result<Vec<String>> {
        self.inner.course_ids().await
    }
    async fn drop_course(&self, c: &str) -> chat_core::Result<Vec<String>> {
        self.inner.drop_course(c).await
    }
    async fn put_participant(&self, c: &str, u: &str, role: Role) -> chat_core::Result<()> {
        self.inner.put_participant(c, u, role).await
    }
    async fn remove_participant(&self, c: &str, u: &str) -> chat_core::Result<bool> {
        self.inner.remove_participant(c, u).await
    }
    async fn participant(&self, c: &str, u: &str) -> chat_core::Result<Option<Role>> {
        self.inner.participant(c, u).await
    }
    async fn participants(&self, c: &str) -> chat_core::Result<Vec<Participant>> {
        self.inner.participants(c).await
    }
    async fn courses_of(&self, u: &str) -> chat_core::Result<Vec<String>> {
        self.inner.courses_of(u).await
    }
    async fn insert_message(&self, m: Message) -> chat_core::Result<Inserted> {
        self.inner.insert_message(m).await
    }
    async fn update_message(&self, u: Update) -> chat_core::Result<Message> {
        self.inner.update_message(u).await
    }
    async fn message(&self, id: &str) -> chat_core::Result<Option<Message>> {
        self.inner.message(id).await
    }
    async fn last_seq(&self, c: &str) -> chat_core::Result<u64> {
        self.inner.last_seq(c).await
    }
    async fn epoch(&self) -> chat_core::Result<String> {
        self.inner.epoch().await
    }
    async fn changes(
        &self,
        c: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> chat_core::Result<Vec<Change>> {
        self.change_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.changes(c, after, upto, limit).await
    }
    async fn message_count(&self, c: &str) -> chat_core::Result<u64> {
        self.inner.message_count(c).await
    }
    async fn messages_at(
        &self,
        c: &str,
        from: u64,
        limit: usize,
    ) -> chat_core::Result<Vec<Message>> {
        self.inner.messages_at(c, from, limit).await
    }
    async fn position_of_seq(&self, c: &str, seq: u64) -> chat_core::Result<u64> {
        self.inner.position_of_seq(c, seq).await
    }
    async fn advance_read(
        &self,
        c: &str,
        u: &str,
        seq: u64,
        at: Timestamp,
    ) -> chat_core::Result<ReadAdvance> {
        self.inner.advance_read(c, u, seq, at).await
    }
    async fn read_watermark(&self, c: &str, u: &str) -> chat_core::Result<Option<ReadMark>> {
        self.inner.read_watermark(c, u).await
    }
    async fn read_marks(&self, c: &str, lo: u64, hi: u64) -> chat_core::Result<Vec<ReadMark>> {
        self.inner.read_marks(c, lo, hi).await
    }
    async fn put_file(&self, f: &StoredFile) -> chat_core::Result<()> {
        self.inner.put_file(f).await
    }
    async fn file(&self, id: &str) -> chat_core::Result<Option<StoredFile>> {
        self.inner.file(id).await
    }
    async fn thread_summaries(
        &self,
        c: &str,
        roots: &[String],
    ) -> chat_core::Result<Vec<ThreadSummary>> {
        self.inner.thread_summaries(c, roots).await
    }
    async fn thread_replies(
        &self,
        root: &str,
        after: u64,
        limit: usize,
    ) -> chat_core::Result<Vec<Message>> {
        self.inner.thread_replies(root, after, limit).await
    }
    async fn pinned(&self, c: &str) -> chat_core::Result<Vec<Message>> {
        self.inner.pinned(c).await
    }
    async fn put_restriction(&self, r: &Restriction) -> chat_core::Result<()> {
        self.inner.put_restriction(r).await
    }
    async fn remove_restriction(&self, c: &str, u: &str) -> chat_core::Result<bool> {
        self.inner.remove_restriction(c, u).await
    }
    async fn restriction(&self, c: &str, u: &str) -> chat_core::Result<Option<Restriction>> {
        self.inner.restriction(c, u).await
    }
    async fn restrictions(&self, c: &str) -> chat_core::Result<Vec<Restriction>> {
        self.inner.restrictions(c).await
    }
    async fn insert_flag(&self, f: &Flag) -> chat_core::Result<Flag> {
        self.inner.insert_flag(f).await
    }
    async fn update_flag(&self, f: &Flag) -> chat_core::Result<()> {
        self.inner.update_flag(f).await
    }
    async fn flag(&self, id: &str) -> chat_core::Result<Option<Flag>> {
        self.inner.flag(id).await
    }
    async fn flags(&self, c: &str, open_only: bool) -> chat_core::Result<Vec<Flag>> {
        self.inner.flags(c, open_only).await
    }
    async fn append_audit(&self, e: &AuditEntry) -> chat_core::Result<()> {
        self.inner.append_audit(e).await
    }
    async fn audit(
        &self,
        c: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> chat_core::Result<Vec<AuditEntry>> {
        self.inner.audit(c, before, limit).await
    }
    async fn put_push_subscription(&self, s: &PushSubscription) -> chat_core::Result<()> {
        self.inner.put_push_subscription(s).await
    }
    async fn remove_push_subscription(&self, u: &str, e: &str) -> chat_core::Result<bool> {
        self.inner.remove_push_subscription(u, e).await
    }
    async fn push_subscriptions(&self, u: &str) -> chat_core::Result<Vec<PushSubscription>> {
        self.inner.push_subscriptions(u).await
    }
    async fn push_subscribers(
        &self,
        c: &str,
    ) -> chat_core::Result<Vec<(String, Vec<PushSubscription>)>> {
        self.inner.push_subscribers(c).await
    }
    async fn flush(&self) -> chat_core::Result<()> {
        self.inner.flush().await
    }
}

/// Two nodes sharing a store, presence, rate limits and `bus`.
async fn two_nodes(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> (World, Engine) {
    let presence = Arc::new(LocalPresence::default());
    let rate = Arc::new(LocalRateLimits::default());
    let node = |id: &str| Cluster {
        node_id: id.to_string(),
        bus: Some(bus.clone()),
        presence: presence.clone(),
        rate_limits: rate.clone(),
    };
    let config = chat_core::Config {
        rate_limit_burst: 10_000,
        ..Default::default()
    };
    let a = Engine::builder()
        .config(config.clone())
        .store(store.clone())
        .cluster(node("a"))
        .open()
        .await
        .unwrap();
    let b = Engine::builder()
        .config(config)
        .store(store)
        .cluster(node("b"))
        .open()
        .await
        .unwrap();
    (world_with(a).await, b)
}

/// Message-change events until `n` are seen (within 5 s: the reconciler runs every 2 s).
async fn seqs(events: &mut Events, n: usize) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    while out.len() < n {
        let env = events
            .recv_timeout(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("only {} of {n} changes arrived: {out:?}", out.len()));
        if let Some(seq) = env.event().seq() {
            out.push((env.name().to_string(), seq));
        }
    }
    out
}

async fn changes_reach_the_other_node(bus: Arc<dyn Bus>) {
    let (w, b) = two_nodes(Arc::new(MemoryStore::open()), bus).await;
    let (bob_b, mut bob_ev) = b.connect(&w.bob).await.unwrap();
    bob_b.join("c1", None).await.unwrap();
    let mut sent = Vec::new();
    for i in 0..30 {
        sent.push(w.say(&w.ada, &format!("m{i}")).await);
    }
    w.engine.edit(&w.ada, &sent[3].id, "edited").await.unwrap();
    w.engine.delete(&w.ada, &sent[4].id).await.unwrap();
    let got = seqs(&mut bob_ev, 32).await;
    let expected: Vec<(String, u64)> = (1..=30)
        .map(|s| ("new-message".to_string(), s))
        .chain([
            ("message-edited".into(), 31),
            ("message-deleted".into(), 32),
        ])
        .collect();
    assert_eq!(got, expected, "every change once, in seq order");
    quiet(&mut bob_ev, "new-message", 300).await;
}

#[tokio::test]
async fn changes_made_on_one_node_reach_the_other_in_order() {
    changes_reach_the_other_node(Arc::new(LocalBus::default())).await;
}

#[tokio::test]
async fn lost_notices_are_caught_up_from_the_store() {
    // Every third notice is lost, including possibly the last: the reconciler finds the tail.
    changes_reach_the_other_node(Arc::new(Unreliable::new(3, false))).await;
}

#[tokio::test]
async fn reordered_notices_give_no_gap_and_no_duplicate() {
    changes_reach_the_other_node(Arc::new(Unreliable::new(0, true))).await;
}

#[tokio::test]
async fn a_silent_bus_still_delivers_through_the_reconciler() {
    changes_reach_the_other_node(Arc::new(Unreliable::new(1, false))).await;
}

#[tokio::test]
async fn rooms_span_nodes() {
    let (w, b) = two_nodes(Arc::new(MemoryStore::open()), Arc::new(LocalBus::default())).await;
    let (ada_a, mut ada_ev) = w.engine.connect(&w.ada).await.unwrap();
    ada_a.join("c1", None).await.unwrap();
    // Bob on node B: Ada (on A) hears he joined, and his typing.
    let (bob_b, bob_ev) = b.connect(&w.bob).await.unwrap();
    let online = bob_b.join("c1", None).await.unwrap();
    assert_eq!(
        online.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        ["ada", "bob"],
        "online on either node"
    );
    let Event::UserJoined(j) = next_named(&mut ada_ev, "user-joined").await else {
        unreachable!()
    };
    assert_eq!(j.user.id, "bob");
    bob_b.typing("c1", true).await.unwrap();
    let Event::UserTyping(t) = next_named(&mut ada_ev, "user-typing").await else {
        unreachable!()
    };
    assert_eq!((t.user_id.as_str(), t.is_typing), ("bob", true));
    // A second tab of Bob's, on node A: no second user-joined; closing one tab is no user-left.
    let (bob_a, _bob_a_ev) = w.engine.connect(&w.bob).await.unwrap();
    bob_a.join("c1", None).await.unwrap();
    quiet(&mut ada_ev, "user-joined", 300).await;
    bob_b.close().await;
    quiet(&mut ada_ev, "user-left", 300).await;
    assert!(w.engine.user("bob").await.unwrap().is_online);
    bob_a.close().await;
    let Event::UserLeft(l) = next_named(&mut ada_ev, "user-left").await else {
        unreachable!()
    };
    assert_eq!((l.user.id.as_str(), l.user.is_online), ("bob", false));
    // Receipts made on A reach B's room.
    let (bob_b2, mut bob_ev2) = b.connect(&w.bob).await.unwrap();
    bob_b2.join("c1", None).await.unwrap();
    let m = w.say(&w.ada, "read me").await;
    w.engine.mark_read(&w.prof, &m.id).await.unwrap();
    let Event::MessageRead(r) = next_named(&mut bob_ev2, "message-read").await else {
        unreachable!()
    };
    assert_eq!(r.user_id, "prof");
    drop(bob_ev);
}

#[tokio::test]
async fn unenrolment_on_one_node_removes_the_user_from_rooms_everywhere() {
    let (w, b) = two_nodes(Arc::new(MemoryStore::open()), Arc::new(LocalBus::default())).await;
    let (bob_b, mut bob_ev) = b.connect(&w.bob).await.unwrap();
    bob_b.join("c1", None).await.unwrap();
    w.engine.unenroll(&w.admin, "c1", "bob").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.say(&w.ada, "after bob left").await;
    quiet(&mut bob_ev, "new-message", 400).await;
}

#[tokio::test]
async fn a_retried_send_on_the_other_node_is_not_duplicated() {
    let (w, b) = two_nodes(Arc::new(MemoryStore::open()), Arc::new(LocalBus::default())).await;
    let mut req = text("c1", "once");
    req.client_id = Some("k-1".into());
    let first = w.engine.send(&w.ada, req.clone()).await.unwrap();
    let again = b.send(&w.ada, req).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(b.store_last_seq("c1").await, 1);
}

#[tokio::test]
async fn resume_on_the_other_node_replays_exactly_what_was_missed() {
    let (w, b) = two_nodes(Arc::new(MemoryStore::open()), Arc::new(LocalBus::default())).await;
    for i in 0..5 {
        w.say(&w.ada, &format!("before {i}")).await;
    }
    let seen = 3;
    // The client saw seq 3 on node A, which then died; it resumes on node B.
    let (bob_b, mut bob_ev) = b.connect(&w.bob).await.unwrap();
    let joined = bob_b
        .resume(
            "c1",
            Some(Resume {
                since_seq: seen,
                epoch: Some(w.engine.epoch().to_string()),
            }),
        )
        .await
        .unwrap();
    assert_eq!(joined.recovered, Some(true));
    assert_eq!(joined.epoch, w.engine.epoch());
    assert_eq!(joined.head_seq, 5);
    w.say(&w.ada, "live").await;
    let got: Vec<u64> = seqs(&mut bob_ev, 3)
        .await
        .into_iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(got, [4, 5, 6]);
}

#[tokio::test]
async fn resume_from_another_epoch_or_beyond_the_head_is_refused_not_partial() {
    let (w, b) = two_nodes(Arc::new(MemoryStore::open()), Arc::new(LocalBus::default())).await;
    for i in 0..3 {
        w.say(&w.ada, &format!("m{i}")).await;
    }
    for resume in [
        Resume {
            since_seq: 1,
            epoch: Some("01OTHERSTOREEPOCH000000000".into()),
        },
        Resume {
            since_seq: 99,
            epoch: None,
        },
    ] {
        let (conn, mut ev) = b.connect(&w.bob).await.unwrap();
        let head = b.store_last_seq("c1").await;
        let joined = conn.resume("c1", Some(resume.clone())).await.unwrap();
        assert_eq!(joined.recovered, Some(false), "{resume:?}");
        assert_eq!(joined.head_seq, head);
        // Nothing is replayed; live changes follow.
        let live = w.say(&w.ada, "live").await;
        let got = seqs(&mut ev, 1).await;
        assert_eq!(got, [("new-message".to_string(), live.seq)]);
        conn.close().await;
    }
    // Without sinceSeq, `recovered` is not part of the answer.
    let (conn, _ev) = b.connect(&w.bob).await.unwrap();
    assert_eq!(conn.resume("c1", None).await.unwrap().recovered, None);
}

#[tokio::test]
async fn a_reconnect_storm_reads_the_store_about_once_per_course() {
    let store = Arc::new(Counting::new());
    let (w, b) = two_nodes(store.clone(), Arc::new(LocalBus::default())).await;
    for i in 0..40 {
        w.say(&w.ada, &format!("m{i}")).await;
    }
    for i in 0..200 {
        w.engine
            .enroll(&w.admin, "c1", &format!("s{i}"), Role::Student)
            .await
            .unwrap();
    }
    let before = store.change_reads.load(Ordering::SeqCst);
    // 200 clients that saw seqs 20..=39 rejoin node B at once.
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            let actor = chat_core::Actor::new(format!("s{i}"), "S", Role::Student);
            let (conn, mut ev) = b.connect(&actor).await.unwrap();
            let since = 20 + i % 20;
            let joined = conn
                .resume(
                    "c1",
                    Some(Resume {
                        since_seq: since,
                        epoch: None,
                    }),
                )
                .await
                .unwrap();
            assert_eq!(joined.recovered, Some(true));
            let got: Vec<u64> = seqs(&mut ev, (40 - since) as usize)
                .await
                .into_iter()
                .map(|x| x.1)
                .collect();
            assert_eq!(got, ((since + 1)..=40).collect::<Vec<_>>());
            conn
        }));
    }
    let mut conns = Vec::new();
    for t in tasks {
        conns.push(t.await.unwrap());
    }
    let reads = store.change_reads.load(Ordering::SeqCst) - before;
    assert!(
        reads <= 3,
        "{reads} reads of the change log for 200 rejoining clients"
    );
}

trait LastSeq {
    async fn store_last_seq(&self, course: &str) -> u64;
}

impl LastSeq for Engine {
    async fn store_last_seq(&self, course: &str) -> u64 {
        self.history(
            &chat_core::Actor::system(),
            course,
            chat_core::HistoryQuery::default(),
        )
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| m.seq)
        .max()
        .unwrap_or(0)
    }
}

#[tokio::test]
async fn a_wrong_notice_never_makes_a_node_skip_real_changes() {
    let bus = Arc::new(LocalBus::default());
    let (w, b) = two_nodes(Arc::new(MemoryStore::open()), bus.clone()).await;
    let (bob_b, mut bob_ev) = b.connect(&w.bob).await.unwrap();
    bob_b.join("c1", None).await.unwrap();
    w.say(&w.ada, "one").await;
    // Another deployment sharing the bus (or a bug) announces seq 1000 of "c1".
    let forged = br#"{"node":"elsewhere","kind":"change","courseId":"c1","seq":1000}"#;
    bus.publish(forged.to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..3 {
        w.say(&w.ada, &format!("after {i}")).await;
    }
    let got: Vec<u64> = seqs(&mut bob_ev, 4)
        .await
        .into_iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(got, [1, 2, 3, 4]);
}
