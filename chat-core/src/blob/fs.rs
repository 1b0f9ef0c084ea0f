//! Blobs as files in a folder: written to a temporary name, fsync'd, renamed into place, and the
//! folder fsync'd, so a blob is either whole or absent after a crash.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{check_blob_id, BlobStore};
use crate::error::{Error, Result};

/// A [`BlobStore`] in a folder.
pub struct FsBlobs {
    dir: PathBuf,
}

impl FsBlobs {
    /// Blobs in `dir` (created if missing).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        std::fs::create_dir_all(dir.as_ref())?;
        Ok(FsBlobs {
            dir: dir.as_ref().to_path_buf(),
        })
    }

    fn path(&self, id: &str) -> Result<PathBuf> {
        check_blob_id(id)?;
        Ok(self.dir.join(id))
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Error::storage)?
}

#[async_trait]
impl BlobStore for FsBlobs {
    async fn put(&self, id: &str, bytes: Bytes) -> Result<()> {
        let path = self.path(id)?;
        let dir = self.dir.clone();
        let tmp = dir.join(format!(".{id}.tmp"));
        blocking(move || {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&dir)?.sync_all()?;
            Ok(())
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Bytes>> {
        let path = self.path(id)?;
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let path = self.path(id)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
