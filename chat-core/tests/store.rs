//! Backends: the shared conformance suites, and the sled store on disk (reopen, corruption).

mod common;

use chat_core::blob::{fs::FsBlobs, memory::MemoryBlobs};
use chat_core::store::{memory::MemoryStore, sled::SledStore};
use chat_core::{Engine, Error, ErrorCode, HistoryQuery};
use common::*;

#[tokio::test]
async fn memory_store_conforms() {
    chat_core::store::conformance::run(|| std::future::ready(MemoryStore::open())).await;
}

#[tokio::test]
async fn sled_store_conforms() {
    let dirs: std::sync::Mutex<Vec<tempfile::TempDir>> = Default::default();
    chat_core::store::conformance::run(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        dirs.lock().unwrap().push(dir);
        std::future::ready(store)
    })
    .await;
}

#[tokio::test]
async fn blob_stores_conform() {
    chat_core::blob::conformance::run(&MemoryBlobs::default()).await;
    let dir = tempfile::tempdir().unwrap();
    chat_core::blob::conformance::run(&FsBlobs::open(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn sled_engine_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, edited, deleted, receipt) = {
        let w = world_with(Engine::open(dir.path()).await.unwrap()).await;
        let kept = w.say(&w.ada, "kept").await;
        let edited = w.say(&w.bob, "draft").await;
        let edited = w.engine.edit(&w.bob, &edited.id, "final").await.unwrap();
        let deleted = w.say(&w.ada, "oops").await;
        w.engine.delete(&w.ada, &deleted.id).await.unwrap();
        let receipt = w.engine.mark_read(&w.prof, &edited.id).await.unwrap();
        (kept, edited, deleted, receipt)
        // The engine is dropped here without close(): every call above was already durable.
    };
    let engine = Engine::open(dir.path()).await.unwrap();
    let ada = chat_core::Actor::new("ada", "Ada", chat_core::Role::Student);
    let page = engine
        .history(&ada, "c1", HistoryQuery::default())
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
            (edited.id.clone(), "final".to_string(), false),
            (deleted.id.clone(), String::new(), true),
        ]
    );
    let prof = page.messages[1]
        .read_by
        .iter()
        .find(|r| r.user_id == "prof")
        .unwrap();
    assert_eq!(prof.read_at, receipt.read_at);
    let next = engine
        .send(&ada, text("c1", "after restart"))
        .await
        .unwrap();
    assert_eq!(
        next.seq, 6,
        "seqs continue where they stopped: 3 sends, 1 edit, 1 delete before"
    );
    assert_eq!(engine.user("ada").await.unwrap().name, "Ada");
}

#[tokio::test]
async fn a_corrupt_or_foreign_store_is_refused() {
    // Garbage where sled's files should be.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("store")).unwrap();
    std::fs::write(dir.path().join("store/conf"), b"not a sled config at all").unwrap();
    std::fs::write(dir.path().join("store/db"), vec![0xAB; 4096]).unwrap();
    let err = Engine::open(dir.path()).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::Internal);

    // A real sled database that is not ours (or lost our data) is not an empty chat.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path().join("store")).unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
    }
    let err = Engine::open(dir.path()).await.unwrap_err();
    assert!(
        matches!(err, Error::Corrupt(ref m) if m.contains("not a chat store")),
        "{err:?}"
    );

    // A truncated store of ours.
    let dir = populated_store().await;
    let db = dir.path().join("store/db");
    let len = std::fs::metadata(&db).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.set_len(len / 3).unwrap();
    drop(f);
    match Engine::open(dir.path()).await {
        Err(e) => assert_eq!(e.code(), ErrorCode::Internal),
        Ok(engine) => {
            // sled may recover a prefix; then what it serves must be our data, never nothing
            // presented as a fresh chat.
            let admin = chat_core::Actor::system();
            let page = engine.history(&admin, "c1", HistoryQuery::default()).await;
            assert!(
                page.is_ok_and(|p| p.pagination.total > 0),
                "an empty chat from a truncated store"
            );
        }
    }
}

/// A store of ours with 50 messages, closed cleanly.
async fn populated_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cfg = chat_core::Config {
        rate_limit_burst: 100,
        ..Default::default()
    };
    let engine = Engine::builder()
        .config(cfg)
        .data_dir(dir.path())
        .open()
        .await
        .unwrap();
    let w = world_with(engine).await;
    for i in 0..50 {
        w.engine
            .send(&w.admin, text("c1", &format!("m{i}")))
            .await
            .unwrap();
    }
    w.engine.close().await.unwrap();
    dir
}

#[tokio::test]
async fn a_truncated_store_is_refused_not_served_partially() {
    for fraction in [2, 3, 10] {
        let dir = populated_store().await;
        let db = dir.path().join("store/db");
        let len = std::fs::metadata(&db).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        f.set_len(len / fraction).unwrap();
        drop(f);
        let err = Engine::open(dir.path()).await.map(|_| ()).unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "1/{fraction}: {err:?}");
    }
    // Untouched, the same store opens with everything.
    let dir = populated_store().await;
    let engine = Engine::open(dir.path()).await.unwrap();
    let page = engine
        .history(&chat_core::Actor::system(), "c1", HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(page.pagination.total, 50);
}

#[tokio::test]
async fn a_store_whose_database_files_are_gone_is_refused() {
    let dir = populated_store().await;
    for entry in std::fs::read_dir(dir.path().join("store")).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap() == "wal" {
            continue;
        }
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    let err = Engine::open(dir.path()).await.map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    // An empty store folder is a new store.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("store")).unwrap();
    Engine::open(dir.path())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
}

/// A first start that dies while creating the store (sled's files there, our marker not yet on
/// disk) leaves a folder that the next start creates again, rather than one refused forever.
#[tokio::test]
async fn an_interrupted_first_start_is_started_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    drop(SledStore::open(&store).unwrap());
    assert!(
        !store.join("creating").exists(),
        "a created store has no creation flag"
    );
    // Re-enact the interrupted creation: the flag, and sled's files without our marker.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    {
        let db = sled::open(&store).unwrap();
        db.insert(b"half", b"made").unwrap();
        db.flush().unwrap();
    }
    std::fs::write(
        store.join("creating"),
        b"chat-core: this store is being created\n",
    )
    .unwrap();
    std::fs::create_dir_all(store.join("wal")).unwrap();
    let w = world_with(Engine::open(dir.path()).await.unwrap()).await;
    let m = w.say(&w.ada, "first").await;
    assert_eq!(m.seq, 1);
    drop(w);
    assert!(!store.join("creating").exists());
    // Reopened, it is an ordinary store.
    let engine = Engine::open(dir.path()).await.unwrap();
    assert_eq!(engine.user("ada").await.unwrap().name, "Ada");

    // A flag file that is not ours does not make a foreign folder disposable.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    {
        let db = sled::open(&store).unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
    }
    std::fs::write(store.join("creating"), b"someone else's file").unwrap();
    let err = Engine::open(dir.path()).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
}

#[tokio::test]
async fn a_sled_store_keeps_its_epoch_across_reopen() {
    use chat_core::Store;
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = SledStore::open(dir.path()).unwrap();
        store.epoch().await.unwrap()
    };
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.epoch().await.unwrap(), first);
    let other = tempfile::tempdir().unwrap();
    assert_ne!(
        SledStore::open(other.path())
            .unwrap()
            .epoch()
            .await
            .unwrap(),
        first
    );
}
