//! The in-memory backend: a `BTreeMap` behind a lock. For tests and ephemeral embedding; nothing
//! survives the process.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use parking_lot::RwLock;

use super::kv::{BatchOp, KvBackend, KvStore};
use crate::error::Result;

/// A [`Store`](super::Store) that keeps everything in memory.
pub type MemoryStore = KvStore<MemoryKv>;

impl MemoryStore {
    /// An empty in-memory store.
    pub fn open() -> Self {
        KvStore::new(MemoryKv::default())
    }
}

/// An ordered map in memory.
#[derive(Default)]
pub struct MemoryKv {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

#[async_trait]
impl KvBackend for MemoryKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.map.read().get(key).cloned())
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
        let map = self.map.read();
        let range = map.range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)));
        if reverse {
            for (k, v) in range.rev() {
                if !visit(k, v) {
                    break;
                }
            }
        } else {
            for (k, v) in range {
                if !visit(k, v) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn apply(&self, batch: Vec<BatchOp>) -> Result<()> {
        let mut map = self.map.write();
        for (k, v) in batch {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        Ok(())
    }

    async fn sync(&self) -> Result<()> {
        Ok(())
    }
}
