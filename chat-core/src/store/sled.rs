//! The default backend: sled on disk, made durable with group commit.
//!
//! A write is applied to sled (in memory, atomic) and then waits on [`GroupCommit`]: one thread
//! runs `fsync` (`Db::flush`) for every writer that arrived before the flush started, so a hundred
//! concurrent sends cost one flush, not a hundred, and no send is acknowledged before it is on disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::watch;

use super::kv::{BatchOp, KvBackend, KvStore};
use crate::error::{Error, Result};

/// A [`Store`](super::Store) on disk.
pub type SledStore = KvStore<SledKv>;

const MARKER_KEY: &[u8] = b"\xffformat";
const MARKER: &[u8] = b"chat-core/1";

impl SledStore {
    /// Opens (or creates) a store in `path`.
    ///
    /// A folder that holds a sled database without this crate's marker, or one sled cannot read,
    /// is refused with [`Error::Corrupt`] rather than silently treated as an empty chat.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(KvStore::new(SledKv::open(path.as_ref())?))
    }
}

/// sled's default tree plus its group-commit flusher.
pub struct SledKv {
    db: sled::Db,
    commit: GroupCommit,
    path: PathBuf,
}

impl SledKv {
    fn open(path: &Path) -> Result<Self> {
        let existed = path.join("db").exists() || path.join("conf").exists();
        let db = open_db(path)?;
        match db.get(MARKER_KEY)? {
            Some(v) if v.as_ref() == MARKER => {}
            Some(v) => {
                return Err(Error::Corrupt(format!(
                    "{} holds an unknown store format {:?}",
                    path.display(),
                    String::from_utf8_lossy(&v)
                )))
            }
            None if existed => {
                return Err(Error::Corrupt(format!(
                    "{} holds a database that is not a chat store, or whose contents were lost \
                     (truncated?); refusing to start with an empty chat",
                    path.display()
                )))
            }
            None => {
                db.insert(MARKER_KEY, MARKER)?;
                db.flush()?;
            }
        }
        let commit = GroupCommit::start(db.clone());
        Ok(SledKv { db, commit, path: path.to_path_buf() })
    }

    /// The folder of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens sled, waiting a little for a lock that a just-dropped handle in this process (whose
/// background threads are still stopping) or a stopping process still holds.
fn open_db(path: &Path) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new().path(path).mode(sled::Mode::HighThroughput).open() {
            Ok(db) => return Ok(db),
            Err(e) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() > deadline {
                    return Err(Error::Storage(format!(
                        "the store in {} is in use by another process",
                        path.display()
                    )));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => {
                return Err(Error::Corrupt(format!(
                    "cannot open the store in {}: {e}",
                    path.display()
                )))
            }
        }
    }
}

#[async_trait]
impl KvBackend for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        let range = self.db.range(from..to);
        if reverse {
            for item in range.rev() {
                let (k, v) = item?;
                if !visit(&k, &v) {
                    break;
                }
            }
        } else {
            for item in range {
                let (k, v) = item?;
                if !visit(&k, &v) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn apply(&self, batch: Vec<BatchOp>) -> Result<()> {
        let mut b = sled::Batch::default();
        for (k, v) in batch {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.db.apply_batch(b)?;
        Ok(())
    }

    async fn sync(&self) -> Result<()> {
        self.commit.wait().await
    }
}

impl Drop for SledKv {
    fn drop(&mut self) {
        self.commit.stop();
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "final flush of the store failed");
        }
    }
}

/// Batches concurrent durability requests into one `fsync`.
struct GroupCommit {
    shared: Arc<Shared>,
    done: watch::Receiver<Flushed>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Flushes started so far.
    started: u64,
    /// The flush generation someone waits for.
    requested: u64,
    stop: bool,
}

#[derive(Clone, Default)]
struct Flushed {
    generation: u64,
    error: Option<String>,
}

impl GroupCommit {
    fn start(db: sled::Db) -> Self {
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), wake: Condvar::new() });
        let (tx, rx) = watch::channel(Flushed::default());
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("chat-store-flush".into())
            .spawn(move || flush_loop(&worker, &db, &tx))
            .ok();
        GroupCommit { shared, done: rx, thread }
    }

    /// Waits for a flush that starts after this call.
    async fn wait(&self) -> Result<()> {
        let need = {
            let mut st = self.shared.state.lock().map_err(|_| Error::Closed)?;
            if st.stop {
                return Err(Error::Closed);
            }
            let need = st.started + 1;
            if st.requested < need {
                st.requested = need;
                self.shared.wake.notify_one();
            }
            need
        };
        let mut rx = self.done.clone();
        let flushed = rx
            .wait_for(|f| f.generation >= need)
            .await
            .map_err(|_| Error::Storage("the flush thread stopped".into()))?
            .clone();
        match flushed.error {
            Some(e) => Err(Error::Storage(format!("flush failed: {e}"))),
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        if let Ok(mut st) = self.shared.state.lock() {
            st.stop = true;
        }
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn flush_loop(shared: &Shared, db: &sled::Db, done: &watch::Sender<Flushed>) {
    let mut completed = 0;
    loop {
        let generation = {
            let Ok(mut st) = shared.state.lock() else { return };
            while st.requested <= completed && !st.stop {
                st = match shared.wake.wait(st) {
                    Ok(st) => st,
                    Err(_) => return,
                };
            }
            if st.requested <= completed {
                return; // stopping, nobody waits
            }
            st.started += 1;
            st.started
        };
        let error = db.flush().err().map(|e| e.to_string());
        if let Some(e) = &error {
            tracing::error!(error = %e, "store flush failed");
        }
        completed = generation;
        done.send_replace(Flushed { generation, error });
    }
}
