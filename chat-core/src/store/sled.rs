//! The default backend: sled on disk, made durable by a write-ahead log with group commit.
//!
//! Each atomic batch is appended to the [`wal`](super::wal), which reads see at once; a write is
//! acknowledged once the log's `fdatasync` covering it returns, so a hundred concurrent sends cost
//! one sync, and no send is acknowledged before it is on disk. The log's writer applies durable
//! records to sled in one batch per group commit, and sled itself is flushed by the log's
//! checkpoints, not on every write (its flush blocks all writers).

use async_trait::async_trait;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::kv::{BatchOp, KvBackend, KvStore};
use super::wal::{sync_dir, Wal};
use crate::error::{Error, Result};

/// A [`Store`](super::Store) on disk.
pub type SledStore = KvStore<SledKv>;

const MARKER_KEY: &[u8] = b"\xffformat";
const MARKER: &[u8] = b"chat-core/1";
/// A file that exists while a new store is being created, until its marker is on disk. A folder
/// holding it holds nothing anyone was told is stored (no write is accepted before the marker),
/// so a creation that a crash interrupted is started over instead of refused as foreign.
const CREATING_FILE: &str = "creating";
const CREATING_TEXT: &[u8] = b"chat-core: this store is being created\n";

impl SledStore {
    /// Opens (or creates) a store in `path`.
    ///
    /// A folder that holds a sled database without this crate's marker, or one sled cannot read,
    /// is refused with [`Error::Corrupt`] rather than silently treated as an empty chat.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(KvStore::new(SledKv::open(path.as_ref())?))
    }
}

/// sled's default tree plus its write-ahead log.
pub struct SledKv {
    db: sled::Db,
    wal: Wal,
    path: PathBuf,
}

impl SledKv {
    fn open(path: &Path) -> Result<Self> {
        let creating = path.join(CREATING_FILE);
        if std::fs::read(&creating).is_ok_and(|text| text == CREATING_TEXT) {
            tracing::warn!(path = %path.display(), "the store's creation was interrupted; starting it over");
            for entry in std::fs::read_dir(path)? {
                let entry = entry?;
                if entry.file_name() == CREATING_FILE {
                    continue;
                }
                if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(entry.path())?;
                } else {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        // A fresh store is a folder that does not exist or is empty. Anything else without our
        // marker (sled's files, or only the log left of them) is not a new, empty chat.
        let existed = std::fs::read_dir(path)
            .is_ok_and(|d| d.flatten().any(|e| e.file_name() != CREATING_FILE));
        if !existed {
            std::fs::create_dir_all(path)?;
            std::fs::write(&creating, CREATING_TEXT)?;
            File::open(&creating)?.sync_all()?;
            sync_dir(path)?;
        }
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
                std::fs::remove_file(&creating)?;
                sync_dir(path)?;
            }
        }
        let wal = Wal::open(&path.join("wal"), path, &db)?;
        Ok(SledKv {
            db,
            wal,
            path: path.to_path_buf(),
        })
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
        let config = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None);
        match config.open() {
            Ok(db) => return Ok(db),
            Err(e) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() > deadline {
                    return Err(Error::storage(format!(
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
        self.wal.get(&self.db, key)
    }

    fn scan(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.wal.scan(&self.db, from, to, reverse, visit)
    }

    fn apply(&self, batch: Vec<BatchOp>) -> Result<()> {
        self.wal.append(batch)
    }

    async fn sync(&self) -> Result<()> {
        self.wal.sync().await
    }
}

impl Drop for SledKv {
    fn drop(&mut self) {
        self.wal.stop();
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "final flush of the store failed");
        }
    }
}
