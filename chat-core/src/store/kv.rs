//! The [`Store`] logic over an ordered key-value map.
//!
//! Both embedded backends (memory and sled) are only a [`KvBackend`]: get, ordered scan, atomic
//! batch, and a durability barrier. Everything that makes a chat store — seq allocation, the change
//! log, the timeline, client-id de-duplication, read watermarks — is written once, here.
//!
//! Layout (ids never contain `\0`: [`check_id`](crate::model) refuses control characters):
//!
//! | key | value |
//! |---|---|
//! | `u\0{user}` | [`StoredUser`] |
//! | `c\0{course}` | [`CourseRecord`] |
//! | `h\0{course}` | written by earlier versions, no longer read (see [`Head`]) |
//! | `p\0{course}\0{user}` / `q\0{user}\0{course}` | participant role / reverse index |
//! | `m\0{message}` | [`MessageMeta`]: course and the seqs of its changes |
//! | `l\0{course}\0{seq}` | [`Change`]: the change log, message snapshots |
//! | `s\0{course}\0{seq}` | timeline position of the message created at `seq` |
//! | `t\0{course}\0{position}` | message id at a timeline position |
//! | `k\0{course}\0{sender}\0{clientId}` | message id (idempotent sends) |
//! | `w\0{course}\0{user}` / `r\0{course}\0{user}\0{seq}` | read watermark / its history |
//! | `f\0{file}` | [`StoredFile`] |
//! | `P\0{course}\0{seq}` | id of the pinned message created at `seq` |
//! | `T\0{root}\0{seq}` | id of the thread reply created at `seq` |
//! | `b\0{course}\0{user}` | [`Restriction`] |
//! | `g\0{flag}` / `G\0{course}\0{flag}` | [`Flag`] / the course's flags |
//! | `i\0{message}\0{reporter}` | id of the reporter's latest flag of the message |
//! | `a\0{entry}` / `A\0{course}\0{entry}` | [`AuditEntry`] / the course's entries |
//! | `W\0{user}\0{endpoint}` | [`PushSubscription`] |
//! | `e` | the store's epoch (a ULID made on first use) |
//!
//! Numbers are big-endian so byte order is numeric order.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{
    Change, ChangeKind, CourseRecord, Inserted, ReadAdvance, ReadMark, Store, StoredFile,
    StoredUser, ThreadSummary, Update,
};
use crate::error::{Error, Result};
use crate::model::{
    AuditEntry, Flag, Message, Participant, PushSubscription, Restriction, Role, Timestamp,
};

/// One write of an atomic batch: a value to put, or `None` to remove the key.
pub type BatchOp = (Vec<u8>, Option<Vec<u8>>);

/// An ordered byte map with atomic batches and a durability barrier.
#[async_trait]
pub trait KvBackend: Send + Sync + 'static {
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Visits keys in `[from, to)` in order (or reverse order) until `visit` returns false.
    fn scan(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()>;
    /// Applies every op or none.
    fn apply(&self, batch: Vec<BatchOp>) -> Result<()>;
    /// Returns once everything applied before the call is durable.
    async fn sync(&self) -> Result<()>;
}

/// A course's counters, kept in memory and found at first use from the last keys of the course's
/// change log and timeline: storing them would cost every send one more write of the same key.
#[derive(Debug, Clone, Copy, Default)]
struct Head {
    last_seq: u64,
    count: u64,
}

/// Where a message lives and which log entries are its snapshots.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MessageMeta {
    course: String,
    history: Vec<u64>,
}

/// A [`Store`] over any [`KvBackend`].
pub struct KvStore<B> {
    kv: B,
    /// Per-course counters, loaded on first use; the lock makes "allocate seq + write" atomic for
    /// a course within this process (the backend's folder is single-process).
    heads: Mutex<HashMap<String, Arc<Mutex<Head>>>>,
    /// Course records and enrolments (`c` and `p` keys) read so far. Every send reads both, and
    /// reading them from the backend's map took its lock against the sends' writes (a quarter of
    /// the engine's CPU in futex waits in memory); they change rarely, and only through this
    /// store, which updates the cache under the same lock as the write.
    cache: RwLock<HashMap<Vec<u8>, Vec<u8>>>,
    /// The epoch, once read or made.
    epoch: tokio::sync::OnceCell<String>,
}

fn key(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len() + 1).sum::<usize>();
    let mut k = Vec::with_capacity(len);
    k.push(tag);
    for p in parts {
        k.push(0);
        k.extend_from_slice(p);
    }
    k
}

/// The key range of everything under a prefix: `[prefix\0, prefix\x01)`.
fn under(tag: u8, parts: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let mut from = key(tag, parts);
    from.push(0);
    let mut to = from.clone();
    if let Some(last) = to.last_mut() {
        *last = 1;
    }
    (from, to)
}

fn num(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn read_num(bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::corrupt("bad number in key or value"))?;
    Ok(u64::from_be_bytes(arr))
}

fn tail_num(key: &[u8]) -> Result<u64> {
    if key.len() < 8 {
        return Err(Error::corrupt("short key"));
    }
    read_num(&key[key.len() - 8..])
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(Error::encoding)
}

fn dec<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(Error::corrupt)
}

impl<B: KvBackend> KvStore<B> {
    /// A store over `kv`.
    pub fn new(kv: B) -> Self {
        KvStore {
            kv,
            heads: Mutex::new(HashMap::new()),
            cache: RwLock::new(HashMap::new()),
            epoch: tokio::sync::OnceCell::new(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.kv
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        self.kv.get(key)?.map(|v| dec(&v)).transpose()
    }

    fn head(&self, course: &str) -> Result<Arc<Mutex<Head>>> {
        if let Some(h) = self.heads.lock().get(course) {
            return Ok(h.clone());
        }
        let c = course.as_bytes();
        let stored = Head {
            last_seq: self.last_key_num(b'l', c)?.unwrap_or(0),
            count: self.last_key_num(b't', c)?.map_or(0, |p| p + 1),
        };
        let mut heads = self.heads.lock();
        Ok(heads
            .entry(course.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(stored)))
            .clone())
    }

    /// The number ending the last key under `tag\0course\0`, if any.
    fn last_key_num(&self, tag: u8, course: &[u8]) -> Result<Option<u64>> {
        let (from, to) = under(tag, &[course]);
        let mut last = None;
        self.kv.scan(&from, &to, true, &mut |k, _| {
            last = Some(tail_num(k));
            false
        })?;
        last.transpose()
    }

    fn current(&self, course: &str, meta: &MessageMeta) -> Result<Message> {
        let last = *meta
            .history
            .last()
            .ok_or_else(|| Error::corrupt("message without history"))?;
        let change: Change = self
            .get(&key(b'l', &[course.as_bytes(), &num(last)]))?
            .ok_or_else(|| Error::corrupt("message meta points to a missing log entry"))?;
        Ok(change.message)
    }

    fn load_message(&self, id: &str) -> Result<Option<Message>> {
        let Some(meta) = self.get::<MessageMeta>(&key(b'm', &[id.as_bytes()]))? else {
            return Ok(None);
        };
        self.current(&meta.course.clone(), &meta).map(Some)
    }

    /// A `c` or `p` value, through the cache (only values present are kept).
    fn get_cached<T: DeserializeOwned>(&self, key: Vec<u8>) -> Result<Option<T>> {
        if let Some(v) = self.cache.read().get(&key) {
            return dec(v).map(Some);
        }
        // Read and remember under the write lock, so that a write of the key cannot come between.
        let mut cache = self.cache.write();
        let Some(v) = self.kv.get(&key)? else {
            return Ok(None);
        };
        let value = dec(&v)?;
        cache.insert(key, v);
        Ok(Some(value))
    }

    /// Writes `c` or `p` keys, keeping the cache in step.
    fn apply_cached(&self, batch: Vec<BatchOp>) -> Result<()> {
        let mut cache = self.cache.write();
        for (k, v) in &batch {
            match v {
                Some(v) if matches!(k.first(), Some(b'c' | b'p')) => {
                    cache.insert(k.clone(), v.clone());
                }
                _ => {
                    cache.remove(k);
                }
            }
        }
        self.kv.apply(batch)
    }

    /// The values of the keys in `[from, to)` (or reversed), at most `limit`.
    fn values_in<T: DeserializeOwned>(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut err = None;
        if limit == 0 {
            return Ok(out);
        }
        self.kv.scan(from, to, reverse, &mut |_, v| {
            match dec(v) {
                Ok(value) => out.push(value),
                Err(e) => err = Some(e),
            }
            err.is_none() && out.len() < limit
        })?;
        err.map_or(Ok(out), Err)
    }

    /// Writes one value and waits until it is durable.
    async fn put_durably<T: Serialize>(&self, key: Vec<u8>, value: &T) -> Result<()> {
        self.put(key, value)?;
        self.kv.sync().await
    }

    /// Removes one key, durably; whether it was there.
    async fn remove_durably(&self, key: Vec<u8>) -> Result<bool> {
        let existed = self.kv.get(&key)?.is_some();
        if existed {
            self.kv.apply(vec![(key, None)])?;
            self.kv.sync().await?;
        }
        Ok(existed)
    }

    /// The current state of each message id (as stored in an index's values).
    fn messages_by_id(&self, ids: Vec<Vec<u8>>, index: &str) -> Result<Vec<Message>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let id = String::from_utf8(id).map_err(Error::corrupt)?;
            let message = self
                .load_message(&id)?
                .ok_or_else(|| Error::corrupt(format!("{index} points to a missing message")))?;
            out.push(message);
        }
        Ok(out)
    }

    fn put<T: Serialize>(&self, key: Vec<u8>, value: &T) -> Result<()> {
        self.kv.apply(vec![(key, Some(enc(value)?))])
    }
}

#[async_trait]
impl<B: KvBackend> Store for KvStore<B> {
    async fn put_user(&self, user: &StoredUser) -> Result<()> {
        self.put(key(b'u', &[user.id.as_bytes()]), user)?;
        self.kv.sync().await
    }

    async fn user(&self, id: &str) -> Result<Option<StoredUser>> {
        self.get(&key(b'u', &[id.as_bytes()]))
    }

    async fn put_course(&self, course: &CourseRecord) -> Result<()> {
        self.apply_cached(vec![(
            key(b'c', &[course.id.as_bytes()]),
            Some(enc(course)?),
        )])?;
        self.kv.sync().await
    }

    async fn course(&self, id: &str) -> Result<Option<CourseRecord>> {
        self.get_cached(key(b'c', &[id.as_bytes()]))
    }

    async fn course_ids(&self) -> Result<Vec<String>> {
        let (from, to) = under(b'c', &[]);
        let mut out = Vec::new();
        self.kv.scan(&from, &to, false, &mut |k, _| {
            out.push(String::from_utf8_lossy(&k[from.len()..]).into_owned());
            true
        })?;
        Ok(out)
    }

    async fn drop_course(&self, course_id: &str) -> Result<Vec<String>> {
        let c = course_id.as_bytes();
        let head = self.head(course_id)?;
        let guard = head.lock();
        let mut doomed: Vec<Vec<u8>> = Vec::new();
        let keys_under = |tag: u8, parts: &[&[u8]], out: &mut Vec<Vec<u8>>| -> Result<()> {
            let (from, to) = under(tag, parts);
            self.kv.scan(&from, &to, false, &mut |k, _| {
                out.push(k.to_vec());
                true
            })
        };
        // Messages: their id keys, thread indexes and flag dedupe keys.
        let (from, to) = under(b't', &[c]);
        let mut ids = Vec::new();
        self.kv.scan(&from, &to, false, &mut |_, v| {
            ids.push(v.to_vec());
            true
        })?;
        for id in &ids {
            doomed.push(key(b'm', &[id]));
            keys_under(b'T', &[id], &mut doomed)?;
            keys_under(b'i', &[id], &mut doomed)?;
        }
        // Participants, and their reverse index.
        let (from, to) = under(b'p', &[c]);
        let mut users = Vec::new();
        self.kv.scan(&from, &to, false, &mut |k, _| {
            users.push(k[from.len()..].to_vec());
            true
        })?;
        for u in &users {
            doomed.push(key(b'q', &[u, c]));
        }
        // Flags.
        let (from, to) = under(b'G', &[c]);
        self.kv.scan(&from, &to, false, &mut |k, _| {
            doomed.push(key(b'g', &[&k[from.len()..]]));
            true
        })?;
        for tag in [
            b'p', b'l', b's', b't', b'k', b'w', b'r', b'P', b'b', b'G', b'h',
        ] {
            keys_under(tag, &[c], &mut doomed)?;
        }
        doomed.push(key(b'h', &[c]));
        // File metadata of the course.
        let (from, to) = under(b'f', &[]);
        let mut files = Vec::new();
        let mut err = None;
        self.kv.scan(&from, &to, false, &mut |k, v| {
            match dec::<StoredFile>(v) {
                Ok(f) if f.course_id == course_id => {
                    files.push(f.id);
                    doomed.push(k.to_vec());
                }
                Ok(_) => {}
                Err(e) => err = Some(e),
            }
            err.is_none()
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        for chunk in doomed.chunks(10_000) {
            self.apply_cached(chunk.iter().map(|k| (k.clone(), None)).collect())?;
        }
        self.apply_cached(vec![(key(b'c', &[c]), None)])?;
        self.heads.lock().remove(course_id);
        drop(guard);
        self.kv.sync().await?;
        Ok(files)
    }

    async fn put_participant(&self, course_id: &str, user_id: &str, role: Role) -> Result<()> {
        let (c, u) = (course_id.as_bytes(), user_id.as_bytes());
        self.apply_cached(vec![
            (key(b'p', &[c, u]), Some(enc(&role)?)),
            (key(b'q', &[u, c]), Some(Vec::new())),
        ])?;
        self.kv.sync().await
    }

    async fn remove_participant(&self, course_id: &str, user_id: &str) -> Result<bool> {
        let (c, u) = (course_id.as_bytes(), user_id.as_bytes());
        let existed = self.kv.get(&key(b'p', &[c, u]))?.is_some();
        if existed {
            self.apply_cached(vec![(key(b'p', &[c, u]), None), (key(b'q', &[u, c]), None)])?;
            self.kv.sync().await?;
        }
        Ok(existed)
    }

    async fn participant(&self, course_id: &str, user_id: &str) -> Result<Option<Role>> {
        self.get_cached(key(b'p', &[course_id.as_bytes(), user_id.as_bytes()]))
    }

    async fn participants(&self, course_id: &str) -> Result<Vec<Participant>> {
        let (from, to) = under(b'p', &[course_id.as_bytes()]);
        let mut out = Vec::new();
        let mut err = None;
        self.kv.scan(&from, &to, false, &mut |k, v| {
            let user = String::from_utf8_lossy(&k[from.len()..]).into_owned();
            match dec::<Role>(v) {
                Ok(role) => out.push(Participant {
                    user_id: user,
                    role,
                }),
                Err(e) => err = Some(e),
            }
            err.is_none()
        })?;
        err.map_or(Ok(out), Err)
    }

    async fn courses_of(&self, user_id: &str) -> Result<Vec<String>> {
        let (from, to) = under(b'q', &[user_id.as_bytes()]);
        let mut out = Vec::new();
        self.kv.scan(&from, &to, false, &mut |k, _| {
            out.push(String::from_utf8_lossy(&k[from.len()..]).into_owned());
            true
        })?;
        Ok(out)
    }

    async fn insert_message(&self, mut message: Message) -> Result<Inserted> {
        let course = message.course_id.clone();
        let c = course.as_bytes();
        let head = self.head(&course)?;
        let outcome = {
            let mut head = head.lock();
            let dedup_key = message
                .client_id
                .as_ref()
                .map(|cid| key(b'k', &[c, message.sender.id.as_bytes(), cid.as_bytes()]));
            let existing = match &dedup_key {
                Some(k) => self.kv.get(k)?,
                None => None,
            };
            if let Some(id) = existing {
                let id = String::from_utf8(id).map_err(Error::corrupt)?;
                let original = self
                    .load_message(&id)?
                    .ok_or_else(|| Error::corrupt("client id points to a missing message"))?;
                Inserted::Duplicate(original)
            } else {
                let seq = head.last_seq + 1;
                let position = head.count;
                message.seq = seq;
                message.change_seq = seq;
                let id_owned = message.id.clone();
                let id = id_owned.as_bytes();
                let next = Head {
                    last_seq: seq,
                    count: position + 1,
                };
                let meta = MessageMeta {
                    course: course.clone(),
                    history: vec![seq],
                };
                let change = Change {
                    seq,
                    kind: ChangeKind::New,
                    message,
                    reaction: None,
                };
                // What points to a value is written after it, so that a backend that showed a
                // batch's ops one by one would still never lead a reader from the timeline or
                // the id to an entry not there yet.
                let mut batch = vec![
                    (key(b'l', &[c, &num(seq)]), Some(enc(&change)?)),
                    (key(b'm', &[id]), Some(enc(&meta)?)),
                    (key(b's', &[c, &num(seq)]), Some(num(position).to_vec())),
                    (key(b't', &[c, &num(position)]), Some(id.to_vec())),
                ];
                if let Some(k) = dedup_key {
                    batch.push((k, Some(id.to_vec())));
                }
                if let Some(root) = &change.message.thread_id {
                    batch.push((key(b'T', &[root.as_bytes(), &num(seq)]), Some(id.to_vec())));
                }
                // The sender has read their own message (and everything before it).
                let sender = change.message.sender.id.as_bytes();
                let at = change.message.created_at;
                let mark = ReadMark {
                    user_id: change.message.sender.id.clone(),
                    seq,
                    at,
                };
                batch.push((key(b'w', &[c, sender]), Some(enc(&mark)?)));
                batch.push((key(b'r', &[c, sender, &num(seq)]), Some(enc(&at)?)));
                self.kv.apply(batch)?;
                *head = next;
                Inserted::New(change.message)
            }
        };
        self.kv.sync().await?;
        Ok(outcome)
    }

    async fn update_message(&self, update: Update) -> Result<Message> {
        let course = update.message.course_id.clone();
        let c = course.as_bytes();
        let head = self.head(&course)?;
        let message = {
            let mut head = head.lock();
            let mkey = key(b'm', &[update.message.id.as_bytes()]);
            let mut meta: MessageMeta = self.get(&mkey)?.ok_or(Error::NotFound("message"))?;
            update.check(&meta.course)?;
            let Update {
                kind,
                mut message,
                expected_change_seq,
                reaction,
            } = update;
            let current = self.current(&course, &meta)?;
            if current.change_seq != expected_change_seq || current.is_deleted {
                return Err(Error::Conflict);
            }
            let seq = head.last_seq + 1;
            message.change_seq = seq;
            let mut batch = Vec::new();
            if current.pinned != message.pinned {
                let pin_key = key(b'P', &[c, &num(message.seq)]);
                let value = message.pinned.then(|| message.id.as_bytes().to_vec());
                batch.push((pin_key, value));
            }
            if kind == ChangeKind::Deleted {
                // Scrub what the message said from every earlier snapshot.
                for &old in &meta.history {
                    let lkey = key(b'l', &[c, &num(old)]);
                    if let Some(mut change) = self.get::<Change>(&lkey)? {
                        let at = message.deleted_at.unwrap_or(message.updated_at);
                        let change_seq = change.message.change_seq;
                        change.message = change.message.into_tombstone(at);
                        change.message.change_seq = change_seq;
                        batch.push((lkey, Some(enc(&change)?)));
                    }
                }
            }
            meta.history.push(seq);
            let next = Head {
                last_seq: seq,
                count: head.count,
            };
            let change = Change {
                seq,
                kind,
                message,
                reaction,
            };
            batch.push((key(b'l', &[c, &num(seq)]), Some(enc(&change)?)));
            batch.push((mkey, Some(enc(&meta)?)));
            self.kv.apply(batch)?;
            *head = next;
            change.message
        };
        self.kv.sync().await?;
        Ok(message)
    }

    async fn message(&self, id: &str) -> Result<Option<Message>> {
        self.load_message(id)
    }

    async fn last_seq(&self, course_id: &str) -> Result<u64> {
        Ok(self.head(course_id)?.lock().last_seq)
    }

    async fn changes(
        &self,
        course_id: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Change>> {
        if upto <= after || limit == 0 {
            return Ok(Vec::new());
        }
        let c = course_id.as_bytes();
        let from = key(b'l', &[c, &num(after.saturating_add(1))]);
        let to = key(b'l', &[c, &num(upto.saturating_add(1))]);
        let mut out = Vec::new();
        let mut err = None;
        self.kv.scan(&from, &to, false, &mut |_, v| {
            match dec::<Change>(v) {
                Ok(ch) => out.push(ch),
                Err(e) => err = Some(e),
            }
            err.is_none() && out.len() < limit
        })?;
        err.map_or(Ok(out), Err)
    }

    async fn epoch(&self) -> Result<String> {
        self.epoch
            .get_or_try_init(|| async {
                if let Some(v) = self.kv.get(b"e")? {
                    return String::from_utf8(v).map_err(Error::corrupt);
                }
                let made = ulid::Ulid::new().to_string();
                self.kv
                    .apply(vec![(b"e".to_vec(), Some(made.clone().into_bytes()))])?;
                self.kv.sync().await?;
                Ok(made)
            })
            .await
            .cloned()
    }

    async fn message_count(&self, course_id: &str) -> Result<u64> {
        Ok(self.head(course_id)?.lock().count)
    }

    async fn messages_at(&self, course_id: &str, from: u64, limit: usize) -> Result<Vec<Message>> {
        let c = course_id.as_bytes();
        let (_, end) = under(b't', &[c]);
        let start = key(b't', &[c, &num(from)]);
        let mut ids = Vec::new();
        self.kv.scan(&start, &end, false, &mut |_, v| {
            ids.push(v.to_vec());
            ids.len() < limit
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let id = String::from_utf8(id).map_err(Error::corrupt)?;
            out.push(
                self.load_message(&id)?
                    .ok_or_else(|| Error::corrupt("timeline points to a missing message"))?,
            );
        }
        Ok(out)
    }

    async fn position_of_seq(&self, course_id: &str, seq: u64) -> Result<u64> {
        let c = course_id.as_bytes();
        let (from, _) = under(b's', &[c]);
        let to = key(b's', &[c, &num(seq)]);
        let mut found = None;
        self.kv.scan(&from, &to, true, &mut |_, v| {
            found = Some(v.to_vec());
            false
        })?;
        match found {
            Some(v) => Ok(read_num(&v)? + 1),
            None => Ok(0),
        }
    }

    async fn advance_read(
        &self,
        course_id: &str,
        user_id: &str,
        seq: u64,
        at: Timestamp,
    ) -> Result<ReadAdvance> {
        let (c, u) = (course_id.as_bytes(), user_id.as_bytes());
        let head = self.head(course_id)?;
        let outcome = {
            let _guard = head.lock();
            let wkey = key(b'w', &[c, u]);
            let current: Option<ReadMark> = self.get(&wkey)?;
            match current {
                Some(mark) if mark.seq >= seq => {
                    // The earliest mark that covers `seq` says when it was first read.
                    let from = key(b'r', &[c, u, &num(seq)]);
                    let (_, to) = under(b'r', &[c, u]);
                    let mut first = None;
                    self.kv.scan(&from, &to, false, &mut |k, v| {
                        first = Some((k.to_vec(), v.to_vec()));
                        false
                    })?;
                    let first = match first {
                        Some((k, v)) => ReadMark {
                            user_id: user_id.to_string(),
                            seq: tail_num(&k)?,
                            at: dec(&v)?,
                        },
                        None => mark,
                    };
                    return Ok(ReadAdvance::Already(first));
                }
                _ => {
                    let mark = ReadMark {
                        user_id: user_id.to_string(),
                        seq,
                        at,
                    };
                    self.kv.apply(vec![
                        (wkey, Some(enc(&mark)?)),
                        (key(b'r', &[c, u, &num(seq)]), Some(enc(&at)?)),
                    ])?;
                    ReadAdvance::Advanced(mark)
                }
            }
        };
        self.kv.sync().await?;
        Ok(outcome)
    }

    async fn read_watermark(&self, course_id: &str, user_id: &str) -> Result<Option<ReadMark>> {
        self.get(&key(b'w', &[course_id.as_bytes(), user_id.as_bytes()]))
    }

    async fn read_marks(&self, course_id: &str, lo: u64, hi: u64) -> Result<Vec<ReadMark>> {
        let c = course_id.as_bytes();
        let (from, to) = under(b'w', &[c]);
        let mut readers = Vec::new();
        let mut err = None;
        self.kv.scan(&from, &to, false, &mut |_, v| {
            match dec::<ReadMark>(v) {
                Ok(m) if m.seq >= lo => readers.push(m.user_id),
                Ok(_) => {}
                Err(e) => err = Some(e),
            }
            err.is_none()
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        let mut out = Vec::new();
        for user in readers {
            let u = user.as_bytes();
            let start = key(b'r', &[c, u, &num(lo)]);
            let (_, end) = under(b'r', &[c, u]);
            let mut marks = Vec::new();
            self.kv.scan(&start, &end, false, &mut |k, v| {
                marks.push((k.to_vec(), v.to_vec()));
                tail_num(k).map(|s| s <= hi).unwrap_or(false)
            })?;
            for (k, v) in marks {
                out.push(ReadMark {
                    user_id: user.clone(),
                    seq: tail_num(&k)?,
                    at: dec(&v)?,
                });
            }
        }
        Ok(out)
    }

    async fn put_file(&self, file: &StoredFile) -> Result<()> {
        self.put(key(b'f', &[file.id.as_bytes()]), file)?;
        self.kv.sync().await
    }

    async fn file(&self, id: &str) -> Result<Option<StoredFile>> {
        self.get(&key(b'f', &[id.as_bytes()]))
    }

    async fn thread_summaries(
        &self,
        _course_id: &str,
        root_ids: &[String],
    ) -> Result<Vec<ThreadSummary>> {
        let mut out = Vec::new();
        for root in root_ids {
            let (from, to) = under(b'T', &[root.as_bytes()]);
            let (mut count, mut last) = (0u64, None);
            self.kv.scan(&from, &to, false, &mut |_, v| {
                count += 1;
                last = Some(v.to_vec());
                true
            })?;
            let Some(last) = last else { continue };
            let id = String::from_utf8(last).map_err(Error::corrupt)?;
            let reply = self
                .load_message(&id)?
                .ok_or_else(|| Error::corrupt("thread index points to a missing message"))?;
            out.push(ThreadSummary {
                root_id: root.clone(),
                reply_count: count,
                last_reply_at: reply.created_at,
            });
        }
        Ok(out)
    }

    async fn thread_replies(
        &self,
        root_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let (_, to) = under(b'T', &[root_id.as_bytes()]);
        let from = key(b'T', &[root_id.as_bytes(), &num(after.saturating_add(1))]);
        let mut ids = Vec::new();
        if limit > 0 {
            self.kv.scan(&from, &to, false, &mut |_, v| {
                ids.push(v.to_vec());
                ids.len() < limit
            })?;
        }
        self.messages_by_id(ids, "the thread index")
    }

    async fn pinned(&self, course_id: &str) -> Result<Vec<Message>> {
        let (from, to) = under(b'P', &[course_id.as_bytes()]);
        let mut ids = Vec::new();
        self.kv.scan(&from, &to, false, &mut |_, v| {
            ids.push(v.to_vec());
            true
        })?;
        self.messages_by_id(ids, "the pin index")
    }

    async fn put_restriction(&self, restriction: &Restriction) -> Result<()> {
        let (c, u) = (&restriction.course_id, &restriction.user_id);
        self.put_durably(key(b'b', &[c.as_bytes(), u.as_bytes()]), restriction)
            .await
    }

    async fn remove_restriction(&self, course_id: &str, user_id: &str) -> Result<bool> {
        self.remove_durably(key(b'b', &[course_id.as_bytes(), user_id.as_bytes()]))
            .await
    }

    async fn restriction(&self, course_id: &str, user_id: &str) -> Result<Option<Restriction>> {
        self.get(&key(b'b', &[course_id.as_bytes(), user_id.as_bytes()]))
    }

    async fn restrictions(&self, course_id: &str) -> Result<Vec<Restriction>> {
        let (from, to) = under(b'b', &[course_id.as_bytes()]);
        self.values_in(&from, &to, false, usize::MAX)
    }

    async fn insert_flag(&self, flag: &Flag) -> Result<Flag> {
        let by_reporter = key(
            b'i',
            &[flag.message_id.as_bytes(), flag.reporter_id.as_bytes()],
        );
        // One lock orders flags as the course head orders messages.
        let head = self.head(&flag.course_id)?;
        let guard = head.lock();
        if let Some(id) = self.kv.get(&by_reporter)? {
            if let Some(existing) = self.get::<Flag>(&key(b'g', &[&id]))? {
                if existing.resolution.is_none() {
                    return Ok(existing);
                }
            }
        }
        let id = flag.id.as_bytes();
        self.kv.apply(vec![
            (key(b'g', &[id]), Some(enc(flag)?)),
            (
                key(b'G', &[flag.course_id.as_bytes(), id]),
                Some(Vec::new()),
            ),
            (by_reporter, Some(id.to_vec())),
        ])?;
        drop(guard);
        self.kv.sync().await?;
        Ok(flag.clone())
    }

    async fn update_flag(&self, flag: &Flag) -> Result<()> {
        let k = key(b'g', &[flag.id.as_bytes()]);
        if self.kv.get(&k)?.is_none() {
            return Err(Error::NotFound("flag"));
        }
        self.put(k, flag)?;
        self.kv.sync().await
    }

    async fn flag(&self, id: &str) -> Result<Option<Flag>> {
        self.get(&key(b'g', &[id.as_bytes()]))
    }

    async fn flags(&self, course_id: &str, open_only: bool) -> Result<Vec<Flag>> {
        let (from, to) = under(b'G', &[course_id.as_bytes()]);
        let mut ids = Vec::new();
        self.kv.scan(&from, &to, false, &mut |k, _| {
            ids.push(k[from.len()..].to_vec());
            true
        })?;
        let mut out = Vec::new();
        for id in ids {
            let flag: Flag = self
                .get(&key(b'g', &[&id]))?
                .ok_or_else(|| Error::corrupt("flag index points to a missing flag"))?;
            if !open_only || flag.resolution.is_none() {
                out.push(flag);
            }
        }
        Ok(out)
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        let id = entry.id.as_bytes();
        self.kv.apply(vec![
            (key(b'a', &[id]), Some(enc(entry)?)),
            (
                key(b'A', &[entry.course_id.as_bytes(), id]),
                Some(Vec::new()),
            ),
        ])?;
        self.kv.sync().await
    }

    async fn audit(
        &self,
        course_id: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        let Some(course) = course_id else {
            let (from, mut to) = under(b'a', &[]);
            if let Some(b) = before {
                to = key(b'a', &[b.as_bytes()]);
            }
            return self.values_in(&from, &to, true, limit);
        };
        let (from, mut to) = under(b'A', &[course.as_bytes()]);
        if let Some(b) = before {
            to = key(b'A', &[course.as_bytes(), b.as_bytes()]);
        }
        let mut ids = Vec::new();
        self.kv.scan(&from, &to, true, &mut |k, _| {
            ids.push(k[from.len()..].to_vec());
            ids.len() < limit
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(
                self.get(&key(b'a', &[&id]))?
                    .ok_or_else(|| Error::corrupt("audit index points to a missing entry"))?,
            );
        }
        Ok(out)
    }

    async fn put_push_subscription(&self, subscription: &PushSubscription) -> Result<()> {
        let (u, e) = (&subscription.user_id, &subscription.endpoint);
        self.put_durably(key(b'W', &[u.as_bytes(), e.as_bytes()]), subscription)
            .await
    }

    async fn remove_push_subscription(&self, user_id: &str, endpoint: &str) -> Result<bool> {
        self.remove_durably(key(b'W', &[user_id.as_bytes(), endpoint.as_bytes()]))
            .await
    }

    async fn push_subscriptions(&self, user_id: &str) -> Result<Vec<PushSubscription>> {
        let (from, to) = under(b'W', &[user_id.as_bytes()]);
        self.values_in(&from, &to, false, usize::MAX)
    }

    async fn push_subscribers(
        &self,
        course_id: &str,
    ) -> Result<Vec<(String, Vec<PushSubscription>)>> {
        // Every subscription of the store (usually none, or few beside the participants of a
        // course), then the enrolled among their users, through the enrolment cache.
        let (from, to) = under(b'W', &[]);
        let all: Vec<PushSubscription> = self.values_in(&from, &to, false, usize::MAX)?;
        let mut enrolled = Vec::new();
        for (user, subs) in super::by_user(all) {
            if self.participant(course_id, &user).await?.is_some() {
                enrolled.push((user, subs));
            }
        }
        Ok(enrolled)
    }

    async fn flush(&self) -> Result<()> {
        self.kv.sync().await
    }
}
