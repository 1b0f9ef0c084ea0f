//! The PostgreSQL backend (`--features postgres`) against a real server: the conformance suite,
//! several stores sharing one schema (the multi-node case), concurrent first starts, and the
//! engine on top.
//!
//! The server is `CHAT_TEST_POSTGRES` if set, else the first of
//! `postgres://postgres@127.0.0.1:5432/test` and `postgres://root@127.0.0.1:5432/test` that
//! answers. An unreachable server fails these tests (CI has one) unless `CHAT_SKIP_POSTGRES=1`.
//! Every store lives in a fresh schema with a random name, dropped at the end of its test (and
//! leftovers of killed runs after an hour), so runs can overlap and repeat.
#![cfg(feature = "postgres")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_core::store::conformance::message;
use chat_core::store::postgres::PgStore;
use chat_core::store::{ChangeKind, Inserted, Update};
use chat_core::{Engine, Error, Event, HistoryQuery, Store, Timestamp};
use common::*;
use sqlx::{Connection, PgConnection};

const CANDIDATES: [&str; 2] = [
    "postgres://postgres@127.0.0.1:5432/test",
    "postgres://root@127.0.0.1:5432/test",
];
const SCHEMA_PREFIX: &str = "chat_test_";

static SERVER: tokio::sync::OnceCell<Option<String>> = tokio::sync::OnceCell::const_new();

/// The server's URL, or `None` when it is unreachable and `CHAT_SKIP_POSTGRES=1`.
async fn server() -> Option<String> {
    SERVER.get_or_init(find_server).await.clone()
}

async fn find_server() -> Option<String> {
    let candidates: Vec<String> = match std::env::var("CHAT_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => vec![url],
        _ => CANDIDATES.iter().map(|s| s.to_string()).collect(),
    };
    let mut errors = Vec::new();
    for url in &candidates {
        match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url)).await {
            Ok(Ok(mut conn)) => {
                sweep_stale_schemas(&mut conn).await;
                let _ = conn.close().await;
                return Some(url.clone());
            }
            Ok(Err(e)) => errors.push(format!("{url}: {e}")),
            Err(_) => errors.push(format!("{url}: no answer in 10 s")),
        }
    }
    if std::env::var("CHAT_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("CHAT_SKIP_POSTGRES=1: skipping the PostgreSQL tests ({errors:?})");
        return None;
    }
    panic!(
        "PostgreSQL is unreachable, so the PostgreSQL store cannot be tested:\n  {}\n\
         Start a server there, point CHAT_TEST_POSTGRES at one \
         (postgres://user@host:port/database), or set CHAT_SKIP_POSTGRES=1 to skip these tests.",
        errors.join("\n  ")
    );
}

/// Drops test schemas older than an hour: what runs that were killed left behind.
async fn sweep_stale_schemas(conn: &mut PgConnection) {
    let names: Vec<(String,)> =
        match sqlx::query_as("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
            .bind(format!("{SCHEMA_PREFIX}%"))
            .fetch_all(&mut *conn)
            .await
        {
            Ok(names) => names,
            Err(_) => return,
        };
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for (name,) in names {
        let made = ulid::Ulid::from_string(&name[SCHEMA_PREFIX.len()..].to_uppercase());
        if made.is_ok_and(|u| u.datetime() < hour_ago) {
            let _ = drop_schema(conn, &name).await;
        }
    }
}

async fn drop_schema(conn: &mut PgConnection, name: &str) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE"
    )))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Fresh schemas for one test, dropped (best effort) when it ends, passed or not. Declare it
/// before the stores that use it, so that it drops after them.
struct Schemas {
    url: String,
    names: Mutex<Vec<String>>,
}

impl Schemas {
    fn new(url: &str) -> Self {
        Schemas {
            url: url.to_string(),
            names: Mutex::default(),
        }
    }

    /// A new schema name, never used before.
    fn fresh(&self) -> String {
        let name = format!(
            "{SCHEMA_PREFIX}{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        self.names.lock().unwrap().push(name.clone());
        name
    }

    /// A store in a new, empty schema.
    async fn store(&self) -> PgStore {
        let schema = self.fresh();
        PgStore::builder(&self.url)
            .schema(&schema)
            .max_connections(8)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connecting a store in {schema}: {e}"))
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.names.lock().unwrap_or_else(|e| e.into_inner()));
        if names.is_empty() {
            return;
        }
        let url = self.url.clone();
        // Drop may run inside a runtime: clean up from a thread with one of its own.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok(mut conn) = PgConnection::connect(&url).await else {
                    return;
                };
                for name in names {
                    if let Err(e) = drop_schema(&mut conn, &name).await {
                        eprintln!("could not drop test schema {name}: {e}");
                    }
                }
                let _ = conn.close().await;
            });
        });
        let _ = cleanup.join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    let Some(url) = server().await else { return };
    let schemas = Schemas::new(&url);
    let started = Instant::now();
    chat_core::store::conformance::run(|| schemas.store()).await;
    eprintln!("conformance suite on PostgreSQL: {:?}", started.elapsed());
}

/// Two nodes on one schema: each sees the other's writes, and concurrent sends to one course
/// from both take every seq once, without gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_schema_are_two_nodes_of_one_chat() {
    let Some(url) = server().await else { return };
    let schemas = Schemas::new(&url);
    let schema = schemas.fresh();
    let a = Arc::new(PgStore::connect_with_schema(&url, &schema).await.unwrap());
    let b = Arc::new(PgStore::connect_with_schema(&url, &schema).await.unwrap());
    let epoch = a.epoch().await.unwrap();
    assert_eq!(b.epoch().await.unwrap(), epoch, "one store, one epoch");

    // Each node sees what the other wrote, at once.
    let first = match a.insert_message(message("c1", "u1", "from a", None)).await {
        Ok(Inserted::New(m)) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(b.message(&first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(b.last_seq("c1").await.unwrap(), 1);
    let mut edited = first.clone();
    edited.message = "edited on b".into();
    let edited = b
        .update_message(Update {
            kind: ChangeKind::Edited,
            message: edited,
            expected_change_seq: 1,
            reaction: None,
        })
        .await
        .unwrap();
    assert_eq!(a.message(&first.id).await.unwrap(), Some(edited.clone()));
    // A's view of the message is stale now: its update is refused, not applied over b's.
    let mut stale = first.clone();
    stale.message = "stale".into();
    let refused = a
        .update_message(Update {
            kind: ChangeKind::Edited,
            message: stale,
            expected_change_seq: 1,
            reaction: None,
        })
        .await;
    assert_eq!(refused, Err(Error::Conflict));

    // Concurrent sends through both nodes, some retried with the same client id on the other.
    const TASKS: usize = 4;
    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        for (node, store) in [("a", a.clone()), ("b", b.clone())] {
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..EACH {
                    let m = if i % 4 == 0 {
                        // The same key from both nodes and every task: one message per key.
                        let cid = format!("k{}", i % 8);
                        message("c1", "retrier", &format!("{node}{t}/{i}"), Some(&cid))
                    } else {
                        message("c1", &format!("u{t}"), &format!("{node}{t}/{i}"), None)
                    };
                    out.push(store.insert_message(m).await.expect("insert"));
                }
                out
            }));
        }
    }
    let mut new = vec![first.seq];
    let mut duplicates = 0;
    for task in tasks {
        for outcome in task.await.unwrap() {
            match outcome {
                Inserted::New(m) => new.push(m.seq),
                Inserted::Duplicate(_) => duplicates += 1,
            }
        }
    }
    // Keys k0 and k4 (i % 8 over i in 0, 4, 8, ...): 2 messages for 2 * TASKS * EACH / 4 sends.
    let keyed = 2 * TASKS * EACH / 4;
    assert_eq!(duplicates, keyed - 2, "one message per client id");
    new.sort_unstable();
    // seq 2 is b's edit.
    let expected: Vec<u64> = std::iter::once(1)
        .chain(3..=(new.len() as u64 + 1))
        .collect();
    assert_eq!(new, expected, "every seq once, no gap");
    let last = new.len() as u64 + 1;
    for store in [&a, &b] {
        assert_eq!(store.last_seq("c1").await.unwrap(), last);
        assert_eq!(store.message_count("c1").await.unwrap(), new.len() as u64);
        let log = store.changes("c1", 0, u64::MAX, 10_000).await.unwrap();
        assert_eq!(
            log.iter().map(|c| c.seq).collect::<Vec<_>>(),
            (1..=last).collect::<Vec<_>>()
        );
        let timeline = store.messages_at("c1", 0, 10_000).await.unwrap();
        assert_eq!(timeline.iter().map(|m| m.seq).collect::<Vec<_>>(), new);
    }
    assert_eq!(
        a.last_seqs(&["none".into(), "c1".into()]).await.unwrap(),
        [0, last]
    );

    // A later connect to the existing schema keeps everything, the epoch included.
    drop((a, b));
    let c = PgStore::connect_with_schema(&url, &schema).await.unwrap();
    assert_eq!(c.epoch().await.unwrap(), epoch);
    assert_eq!(c.last_seq("c1").await.unwrap(), last);
    c.close().await;
}

/// Several processes starting at once against a database without the schema all come up, on
/// one schema with one epoch (the migrator's advisory lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_connects_all_succeed() {
    let Some(url) = server().await else { return };
    let schemas = Schemas::new(&url);
    let schema = schemas.fresh();
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move { PgStore::connect_with_schema(&url, &schema).await })
        })
        .collect();
    let mut epochs = Vec::new();
    for c in connects {
        let store = c.await.unwrap().expect("a concurrent first connect");
        epochs.push(store.epoch().await.unwrap());
    }
    epochs.dedup();
    assert_eq!(epochs.len(), 1, "one epoch: {epochs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_bad_data_are_errors_not_panics() {
    let Some(url) = server().await else { return };
    let schemas = Schemas::new(&url);
    // Schema names are never quoted, so only plain ones are taken.
    for bad in ["", "Chat", "1chat", "chat;drop", "pg_chat", "a\"b"] {
        let err = PgStore::connect_with_schema(&url, bad).await.unwrap_err();
        assert!(matches!(err, Error::Validation(_)), "{bad:?}: {err:?}");
    }
    // Nothing listening: a storage error saying so.
    let err = PgStore::builder("postgres://postgres@127.0.0.1:1/test")
        .acquire_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    let err = PgStore::connect("not a url").await.unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err:?}");

    // Data that does not decode is corruption.
    let store = schemas.store().await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let schema = store.schema().to_string();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.chat_users (id, profile) VALUES ('u1', 'not json')"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let err = store.user("u1").await.unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    // A seq beyond what the database holds is refused, not wrapped.
    let err = store
        .advance_read("c1", "u1", u64::MAX, Timestamp::now())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err:?}");
    let _ = conn.close().await;
    store.close().await;
}

/// The engine on PostgreSQL: sends, an edit, a deletion, a receipt, a history page and the pull
/// API, then a second engine (another node) on the same schema sees it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_runs_on_postgres() {
    let Some(url) = server().await else { return };
    let schemas = Schemas::new(&url);
    let schema = schemas.fresh();
    let store = PgStore::connect_with_schema(&url, &schema).await.unwrap();
    let engine = Engine::builder()
        .store(Arc::new(store))
        .open()
        .await
        .unwrap();
    let w = world_with(engine).await;
    let kept = w.say(&w.ada, "kept").await;
    let draft = w.say(&w.bob, "draft").await;
    let edited = w.engine.edit(&w.bob, &draft.id, "final").await.unwrap();
    assert_eq!((edited.seq, edited.change_seq), (2, 3));
    let oops = w.say(&w.ada, "oops").await;
    let deleted = w.engine.delete(&w.ada, &oops.id).await.unwrap();
    assert!(deleted.is_deleted);
    let receipt = w.engine.mark_read(&w.prof, &edited.id).await.unwrap();

    let page = w
        .engine
        .history(&w.ada, "c1", HistoryQuery::default())
        .await
        .unwrap();
    let got: Vec<_> = page
        .messages
        .iter()
        .map(|m| (m.id.clone(), m.message.clone(), m.is_deleted))
        .collect();
    assert_eq!(
        got,
        [
            (kept.id.clone(), "kept".to_string(), false),
            (draft.id.clone(), "final".to_string(), false),
            (oops.id.clone(), String::new(), true),
        ]
    );
    assert_eq!(page.pagination.total, 3);
    let prof = page.messages[1]
        .read_by
        .iter()
        .find(|r| r.user_id == "prof")
        .expect("prof's receipt");
    assert_eq!(prof.read_at, receipt.read_at);
    // A page in the middle, by seq.
    let older = w
        .engine
        .history(
            &w.ada,
            "c1",
            HistoryQuery {
                before: Some(oops.seq),
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(older.messages.len(), 1);
    assert_eq!(older.messages[0].id, draft.id);
    assert!(older.pagination.has_more);

    let pulled = w.engine.changes_since(&w.bob, "c1", 1, 100).await.unwrap();
    assert_eq!(
        pulled.iter().map(|e| e.seq().unwrap()).collect::<Vec<_>>(),
        [2, 3, 4, 5]
    );
    assert!(
        matches!(&pulled[2], Event::NewMessage(m) if m.id == oops.id && m.message.is_empty()),
        "the deleted message's creation is scrubbed: {:?}",
        pulled[2]
    );
    assert!(matches!(&pulled[3], Event::MessageDeleted(d) if d.seq == 5));

    // Another node on the same database.
    let other = Engine::builder()
        .store(Arc::new(
            PgStore::connect_with_schema(&url, &schema).await.unwrap(),
        ))
        .open()
        .await
        .unwrap();
    let page = other
        .history(&w.bob, "c1", HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 3);
    let next = other.send(&w.bob, text("c1", "from node 2")).await.unwrap();
    assert_eq!(next.seq, 6, "seqs continue across nodes");
    assert_eq!(
        w.engine.store().last_seq("c1").await.unwrap(),
        6,
        "and node 1's store sees it"
    );
    other.close().await.unwrap();
    w.engine.close().await.unwrap();
}
