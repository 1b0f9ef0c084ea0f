//! Writes that are in the write-ahead log but not yet in sled, and reads that see them.
//!
//! Why: applying a send's keys to sled one record at a time, on the path that acknowledges it,
//! made sled's insert cost (and its per-batch cost) the ceiling of durable sends. Instead the log
//! keeps what it appended here, in memory, until its writer thread has made the records durable
//! and applied them to sled in one batch per group commit; every read looks here first. This is
//! the memtable of a log-structured store, with sled as the table underneath.
//!
//! An entry remembers the number of the log record that wrote it, so removing the entries of the
//! records sled now holds never removes a newer write of the same key.

use std::collections::BTreeMap;
use std::ops::Bound;

use parking_lot::RwLock;

use super::kv::BatchOp;
use crate::error::Result;

/// The pending writes: the newest value (or removal) of each key not yet applied to sled.
#[derive(Default)]
pub(crate) struct Pending {
    map: RwLock<BTreeMap<Vec<u8>, Entry>>,
}

struct Entry {
    record: u64,
    value: Option<Vec<u8>>,
}

/// What a read found among the pending writes.
pub(crate) enum Lookup {
    /// A pending put.
    Value(Vec<u8>),
    /// A pending removal: the key is gone, whatever sled says.
    Removed,
    /// Nothing pending: sled has the answer.
    Absent,
}

impl Pending {
    /// Records the ops of log record `record`, all at once for readers.
    pub(crate) fn insert(&self, record: u64, ops: &[BatchOp]) {
        let mut map = self.map.write();
        for (k, v) in ops {
            map.insert(
                k.clone(),
                Entry {
                    record,
                    value: v.clone(),
                },
            );
        }
    }

    /// Forgets the entries of `ops` written by record `upto` or before: sled holds them now.
    pub(crate) fn remove_applied(&self, upto: u64, ops: &[BatchOp]) {
        let mut map = self.map.write();
        for (k, _) in ops {
            if map.get(k).is_some_and(|e| e.record <= upto) {
                map.remove(k);
            }
        }
    }

    /// The pending write of `key`, if any.
    pub(crate) fn get(&self, key: &[u8]) -> Lookup {
        let map = self.map.read();
        if map.is_empty() {
            return Lookup::Absent;
        }
        match map.get(key) {
            Some(Entry { value: Some(v), .. }) => Lookup::Value(v.clone()),
            Some(Entry { value: None, .. }) => Lookup::Removed,
            None => Lookup::Absent,
        }
    }

    /// The pending writes in `[from, to)`, in key order.
    fn range(&self, from: &[u8], to: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let map = self.map.read();
        if map.is_empty() || from >= to {
            return Vec::new();
        }
        map.range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect()
    }

    /// Visits the keys of `[from, to)` as sled's `base` range shows them with the pending writes
    /// laid over it: a pending put replaces or adds a key, a pending removal hides one. `base`
    /// yields the same range in the same direction as `reverse`.
    ///
    /// The pending range is read first: an entry that leaves it while sled is being read has been
    /// applied to sled before it left, so the scan sees it one way or the other.
    pub(crate) fn scan<K, V, E>(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        base: impl Iterator<Item = std::result::Result<(K, V), E>>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
        crate::error::Error: From<E>,
    {
        let mut over = self.range(from, to);
        if reverse {
            over.reverse();
        }
        let mut over = over.into_iter().peekable();
        // Whether key `a` comes before key `b` in the scan's direction.
        let before = |a: &[u8], b: &[u8]| if reverse { a > b } else { a < b };
        // Visits a pending entry (a removal shows nothing); false once the visitor has had enough.
        fn emit(
            v: &Option<Vec<u8>>,
            k: &[u8],
            visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> bool {
            v.as_ref().is_none_or(|v| visit(k, v))
        }
        for item in base {
            let (k, v) = item?;
            let k = k.as_ref();
            while let Some((ok, ov)) = over.next_if(|(ok, _)| before(ok, k)) {
                if !emit(&ov, &ok, visit) {
                    return Ok(());
                }
            }
            if let Some((ok, ov)) = over.next_if(|(ok, _)| ok.as_slice() == k) {
                if !emit(&ov, &ok, visit) {
                    return Ok(());
                }
                continue;
            }
            if !visit(k, v.as_ref()) {
                return Ok(());
            }
        }
        for (ok, ov) in over {
            if !emit(&ov, &ok, visit) {
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Model = BTreeMap<Vec<u8>, Vec<u8>>;

    fn scan_all(
        pending: &Pending,
        base: &Model,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let range: Vec<_> = if from < to {
            base.range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
                .map(|(k, v)| Ok::<_, crate::error::Error>((k.clone(), v.clone())))
                .collect()
        } else {
            Vec::new()
        };
        let iter: Box<dyn Iterator<Item = _>> = if reverse {
            Box::new(range.into_iter().rev())
        } else {
            Box::new(range.into_iter())
        };
        let mut out = Vec::new();
        pending
            .scan(from, to, reverse, iter, &mut |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                out.len() < limit
            })
            .unwrap();
        out
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(0u8..4, 0..3)
    }

    proptest! {
        /// Base + pending reads exactly like the map the same writes would have made, for every
        /// range, direction and early stop, and stays so as records are applied and forgotten.
        #[test]
        fn reads_see_the_base_with_the_pending_writes_over_it(
            base_ops in proptest::collection::vec((key(), proptest::option::of(key())), 0..20),
            records in proptest::collection::vec(
                proptest::collection::vec((key(), proptest::option::of(key())), 1..5), 0..6),
            applied in 0usize..7,
            from in key(), to in key(), reverse: bool, limit in 1usize..20,
        ) {
            let mut base = Model::new();
            for (k, v) in base_ops {
                match v { Some(v) => base.insert(k, v), None => base.remove(&k) };
            }
            let mut model = base.clone();
            let pending = Pending::default();
            for (i, ops) in records.iter().enumerate() {
                pending.insert(i as u64 + 1, ops);
                for (k, v) in ops {
                    match v { Some(v) => model.insert(k.clone(), v.clone()), None => model.remove(k) };
                }
            }
            // The first `applied` records reach the base and leave the pending set.
            for (i, ops) in records.iter().enumerate().take(applied) {
                for (k, v) in ops {
                    match v { Some(v) => base.insert(k.clone(), v.clone()), None => base.remove(k) };
                }
                pending.remove_applied(i as u64 + 1, ops);
            }
            for k in model.keys().chain(base.keys()) {
                let got = match pending.get(k) {
                    Lookup::Value(v) => Some(v),
                    Lookup::Removed => None,
                    Lookup::Absent => base.get(k).cloned(),
                };
                prop_assert_eq!(got.as_ref(), model.get(k));
            }
            let got = scan_all(&pending, &base, &from, &to, reverse, limit);
            let want: Vec<_> = if from < to {
                let r = model.range::<[u8], _>((Bound::Included(&from[..]), Bound::Excluded(&to[..])));
                let r: Vec<_> = r.map(|(k, v)| (k.clone(), v.clone())).collect();
                let r: Vec<_> = if reverse { r.into_iter().rev().collect() } else { r };
                r.into_iter().take(limit).collect()
            } else {
                Vec::new()
            };
            prop_assert_eq!(got, want);
        }
    }
}
