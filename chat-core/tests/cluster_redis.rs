//! The Redis cluster backends against the Redis of this machine (`CHAT_TEST_REDIS`, default
//! `redis://127.0.0.1:6379`; each test uses its own key prefix). Without Redis these tests fail
//! with a clear message, unless `CHAT_SKIP_REDIS=1`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chat_core::cluster::conformance;
use chat_core::cluster::local::{LocalPresence, LocalRateLimits};
use chat_core::cluster::redis::{self, Options};
use chat_core::cluster::{Cluster, Delivery};
use chat_core::store::memory::MemoryStore;
use chat_core::{Engine, Event};
use common::*;

fn url() -> String {
    std::env::var("CHAT_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

fn skip() -> bool {
    std::env::var("CHAT_SKIP_REDIS").is_ok_and(|v| v == "1")
}

fn prefix() -> String {
    format!("chat-test:{}", ulid::Ulid::new())
}

async fn node(id: &str, options: Options) -> Cluster {
    redis::connect(&url(), id, options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Redis is unreachable at {} ({e}): start it (scripts/services.sh) or set \
             CHAT_SKIP_REDIS=1",
                url()
            )
        })
}

fn opts(prefix: &str) -> Options {
    Options {
        prefix: prefix.to_string(),
        ..Options::default()
    }
}

#[tokio::test]
async fn local_backends_conform() {
    let single = Cluster::single();
    conformance::one_node(&single).await;
    let presence = Arc::new(LocalPresence::default());
    let rate = Arc::new(LocalRateLimits::default());
    let shared = |id: &str| Cluster {
        node_id: id.into(),
        bus: None,
        presence: presence.clone(),
        rate_limits: rate.clone(),
    };
    conformance::two_nodes(&shared("a"), &shared("b")).await;
}

#[tokio::test]
async fn redis_backends_conform() {
    if skip() {
        return;
    }
    let p = prefix();
    conformance::one_node(&node("solo", opts(&p)).await).await;
    let p = prefix();
    let (a, b) = (node("a", opts(&p)).await, node("b", opts(&p)).await);
    conformance::two_nodes(&a, &b).await;
}

#[tokio::test]
async fn a_node_that_stops_heartbeating_is_swept_by_exactly_one_other() {
    if skip() {
        return;
    }
    let p = prefix();
    let fast = Options {
        prefix: p.clone(),
        heartbeat: Duration::from_millis(200),
        node_ttl: Duration::from_millis(800),
    };
    let dead = node("dead", fast.clone()).await;
    let (y, z) = (node("y", fast.clone()).await, node("z", fast).await);
    dead.presence.connect("u").await.unwrap();
    dead.presence.enter("c1", "u").await.unwrap();
    dead.presence.enter("c2", "u").await.unwrap();
    y.presence.connect("w").await.unwrap();
    dead.presence.enter("c1", "w").await.unwrap();
    y.presence.enter("c1", "w").await.unwrap();
    assert_eq!(y.presence.online(&["u".into()]).await.unwrap(), [true]);
    // "dead" heartbeats no more; y and z go on.
    let mut found = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        found.extend(y.presence.heartbeat().await.unwrap());
        found.extend(z.presence.heartbeat().await.unwrap());
    }
    assert_eq!(found.len(), 1, "one departure, reported once: {found:?}");
    let d = &found[0];
    assert_eq!(d.user_id, "u");
    assert!(d.offline);
    let mut rooms = d.rooms.clone();
    rooms.sort();
    assert_eq!(rooms, ["c1", "c2"], "w is still in c1 through y");
    assert_eq!(
        y.presence.online(&["u".into(), "w".into()]).await.unwrap(),
        [false, true]
    );
}

#[tokio::test]
async fn the_bus_delivers_to_every_node_and_says_when_it_resubscribed() {
    if skip() {
        return;
    }
    let p = prefix();
    let (a, b) = (node("a", opts(&p)).await, node("b", opts(&p)).await);
    let (bus_a, bus_b) = (a.bus.clone().unwrap(), b.bus.clone().unwrap());
    let mut on_b = bus_b.subscribe().await.unwrap();
    bus_a.publish(b"hello".to_vec()).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), on_b.recv())
        .await
        .expect("within 5 s");
    assert_eq!(got, Some(Delivery::Message(b"hello".to_vec())));
    // Cut b's subscriber connection: it comes back and says so, then delivers again.
    let killed = std::process::Command::new("redis-cli")
        .args(["-u", &url(), "CLIENT", "KILL", "TYPE", "pubsub"])
        .output()
        .expect("redis-cli");
    assert!(killed.status.success(), "{killed:?}");
    let mut resubscribed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !resubscribed {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, on_b.recv()).await {
            Ok(Some(Delivery::Resubscribed)) => resubscribed = true,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("no Resubscribed after the connection was killed"),
        }
    }
    bus_a.publish(b"again".to_vec()).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), on_b.recv())
        .await
        .expect("within 5 s");
    assert_eq!(got, Some(Delivery::Message(b"again".to_vec())));
}

#[tokio::test]
async fn two_engines_over_redis_are_one_deployment() {
    if skip() {
        return;
    }
    let p = prefix();
    let store = Arc::new(MemoryStore::open());
    let config = chat_core::Config {
        rate_limit_burst: 1000,
        ..Default::default()
    };
    let a = Engine::builder()
        .config(config.clone())
        .store(store.clone())
        .cluster(node("a", opts(&p)).await)
        .open()
        .await
        .unwrap();
    let b = Engine::builder()
        .config(config)
        .store(store)
        .cluster(node("b", opts(&p)).await)
        .open()
        .await
        .unwrap();
    let w = world_with(a).await;
    let (ada, mut ada_ev) = w.engine.connect(&w.ada).await.unwrap();
    ada.join("c1", None).await.unwrap();
    let (bob, mut bob_ev) = b.connect(&w.bob).await.unwrap();
    bob.join("c1", None).await.unwrap();
    let Event::UserJoined(j) = next_named(&mut ada_ev, "user-joined").await else {
        unreachable!()
    };
    assert_eq!(j.user.id, "bob");
    let m = w.say(&w.ada, "over redis").await;
    let Event::NewMessage(got) = next_named(&mut bob_ev, "new-message").await else {
        unreachable!()
    };
    assert_eq!(got.id, m.id);
    bob.typing("c1", true).await.unwrap();
    let Event::UserTyping(t) = next_named(&mut ada_ev, "user-typing").await else {
        unreachable!()
    };
    assert_eq!(t.user_id, "bob");
    // A second connection of Bob's on A: closing the one on B is not leaving.
    let (bob_a, _ev) = w.engine.connect(&w.bob).await.unwrap();
    bob_a.join("c1", None).await.unwrap();
    bob.close().await;
    quiet(&mut ada_ev, "user-left", 400).await;
    bob_a.close().await;
    let Event::UserLeft(l) = next_named(&mut ada_ev, "user-left").await else {
        unreachable!()
    };
    assert_eq!(l.user.id, "bob");
}
