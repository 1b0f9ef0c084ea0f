//! Blobs in memory, for tests and ephemeral engines.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::{check_blob_id, BlobStore};
use crate::error::Result;

/// A [`BlobStore`] in a `HashMap`.
#[derive(Default)]
pub struct MemoryBlobs {
    blobs: Mutex<HashMap<String, Bytes>>,
}

#[async_trait]
impl BlobStore for MemoryBlobs {
    async fn put(&self, id: &str, bytes: Bytes) -> Result<()> {
        check_blob_id(id)?;
        self.blobs.lock().insert(id.to_string(), bytes);
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Bytes>> {
        check_blob_id(id)?;
        Ok(self.blobs.lock().get(id).cloned())
    }

    async fn delete(&self, id: &str) -> Result<()> {
        check_blob_id(id)?;
        self.blobs.lock().remove(id);
        Ok(())
    }
}
