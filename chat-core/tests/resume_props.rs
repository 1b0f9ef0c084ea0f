//! Property tests of the spine: under concurrent senders, editors and deleters, every observer
//! sees each course's changes exactly once, in seq order, with no gap — whether it follows live,
//! joins late with `since_seq`, or disconnects and resumes from the last seq it saw.

mod common;

use std::time::Duration;

use chat_core::{Actor, Config, Engine, Event, Role, SendMessage};
use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Plan {
    senders: usize,
    per_sender: usize,
    /// After how many received changes the resuming observer disconnects.
    cut_at: usize,
    /// The seq a late observer starts from.
    late_since: u64,
    edit_every: usize,
}

fn plans() -> impl Strategy<Value = Plan> {
    (1usize..6, 1usize..25, 0usize..60, 0u64..40, 2usize..6).prop_map(
        |(senders, per_sender, cut_at, late_since, edit_every)| Plan {
            senders,
            per_sender,
            cut_at,
            late_since,
            edit_every,
        },
    )
}

fn seq_of(e: &Event) -> u64 {
    e.seq().expect("a message change")
}

async fn run(engine: Engine, plan: Plan) {
    let w = world_with(engine).await;
    let users: Vec<Actor> = (0..plan.senders)
        .map(|i| Actor::new(format!("s{i}"), format!("S{i}"), Role::Student))
        .collect();
    for u in &users {
        w.engine
            .enroll(&w.admin, "c1", &u.id, Role::Student)
            .await
            .unwrap();
    }
    let (live, mut live_ev) = w.engine.connect(&w.bob).await.unwrap();
    live.join("c1", Some(0)).await.unwrap();
    let (resumer, mut resumer_ev) = w.engine.connect(&w.prof).await.unwrap();
    resumer.join("c1", Some(0)).await.unwrap();

    let mut tasks = Vec::new();
    for (n, user) in users.iter().cloned().enumerate() {
        let engine = w.engine.clone();
        let plan = plan.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..plan.per_sender {
                let req = SendMessage {
                    course_id: "c1".into(),
                    message: format!("{n}-{i}"),
                    client_id: Some(format!("{n}-{i}")),
                    ..Default::default()
                };
                let m = engine.send(&user, req.clone()).await.unwrap();
                // A retried send never duplicates.
                if i % 3 == 0 {
                    assert_eq!(engine.send(&user, req).await.unwrap().id, m.id);
                }
                if i % plan.edit_every == 0 {
                    engine
                        .edit(&user, &m.id, &format!("{n}-{i} edited"))
                        .await
                        .unwrap();
                }
                if i % (plan.edit_every + 1) == 1 {
                    engine.delete(&user, &m.id).await.unwrap();
                }
                tokio::task::yield_now().await;
            }
        }));
    }

    // The resumer reads a while, drops its connection, and comes back from its last seq.
    let mut resumed = Vec::new();
    while resumed.len() < plan.cut_at {
        match resumer_ev.recv_timeout(Duration::from_millis(300)).await {
            Some(env) if env.event().seq().is_some() => resumed.push(env.event().clone()),
            Some(_) => {}
            None => break,
        }
    }
    resumer.close().await;
    drop(resumer_ev);
    // Both come (back) while the senders are still at it: replay and live traffic interleave.
    let since = resumed.last().map(seq_of).unwrap_or(0);
    let (back, mut back_ev) = w.engine.connect(&w.prof).await.unwrap();
    back.join("c1", Some(since)).await.unwrap();
    let late_since = plan
        .late_since
        .min(w.engine.store().last_seq("c1").await.unwrap());
    let (late, mut late_ev) = w.engine.connect(&w.ada).await.unwrap();
    late.join("c1", Some(late_since)).await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let last = w.engine.store().last_seq("c1").await.unwrap();
    resumed.extend(changes(&mut back_ev, (last - since) as usize).await);
    let late_got = changes(&mut late_ev, (last - late_since) as usize).await;

    let live_got = changes(&mut live_ev, last as usize).await;
    let all: Vec<u64> = (1..=last).collect();
    assert_eq!(
        live_got.iter().map(seq_of).collect::<Vec<_>>(),
        all,
        "live observer"
    );
    assert_eq!(
        resumed.iter().map(seq_of).collect::<Vec<_>>(),
        all,
        "resuming observer"
    );
    assert_eq!(
        late_got.iter().map(seq_of).collect::<Vec<_>>(),
        ((late_since + 1)..=last).collect::<Vec<_>>()
    );
    // Every observer agrees with the store's log on what each seq was.
    let log = w
        .engine
        .store()
        .changes("c1", 0, last, usize::MAX)
        .await
        .unwrap();
    for (event, change) in live_got.iter().zip(&log) {
        let id = match event {
            Event::NewMessage(m) | Event::MessageEdited(m) => m.id.clone(),
            Event::MessageDeleted(d) => d.message_id.clone(),
            other => panic!("not a change: {other:?}"),
        };
        assert_eq!((seq_of(event), id), (change.seq, change.message.id.clone()));
    }
    for (a, b) in resumed.iter().zip(&live_got) {
        assert_eq!(seq_of(a), seq_of(b));
    }
    // Nothing is left over: no duplicates trail behind.
    quiet(&mut live_ev, "new-message", 20).await;
    quiet(&mut back_ev, "new-message", 20).await;
}

fn engine_config() -> Config {
    Config {
        rate_limit_burst: 10_000,
        subscriber_queue: 16,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn resume_is_gap_free_in_memory(plan in plans()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let engine = Engine::builder().config(engine_config()).open().await.unwrap();
            run(engine, plan).await;
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn resume_is_gap_free_on_sled(plan in plans()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let engine = Engine::builder().config(engine_config()).data_dir(dir.path()).open().await.unwrap();
            run(engine, plan).await;
        });
    }
}
