//! The local cache on sled: joined courses' messages (with their edits and deletions), where each
//! course stands (last seq, epoch, how far back history is complete, the read watermark), and the
//! outbox.
//!
//! One tree holds a course's state and its messages, so a change and the seq it moves the course
//! to are written in one atomic batch: after a crash the cache never claims a seq whose change it
//! lacks (at worst it holds less, and the next resume replays it again; changes are applied by
//! `changeSeq`, so a replay is never applied twice). The outbox is its own tree, flushed to disk
//! before `send` returns.
//!
//! Keys: `c\0<course>` course state; `m\0<course>\0<seq u64 BE>` message; `i\0<message id>` →
//! `<course>\0<seq>`; `u` the user the cache belongs to. Outbox: `<u64 BE order>` → entry.

use chat_core::Message;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use sled::{Batch, Db, Tree};

use crate::error::{ClientError, Result};
use crate::model::{CourseState, OutboxEntry};

/// The on-disk cache of one user's client.
pub(crate) struct Cache {
    db: Db,
    data: Tree,
    outbox: Tree,
    /// Serializes read-modify-write sequences (the connection task and API calls both write).
    write: Mutex<()>,
}

/// Where a change of a cached message landed.
enum Cached {
    /// Applied: the message after it.
    Changed(Box<Message>),
    /// The cache holds this change or a later one.
    Stale,
    /// The cache does not hold the message.
    Missing,
}

/// What applying a message change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The change was new and is stored.
    Stored,
    /// The cache already held this change or a later one.
    Stale,
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::Cache(format!("corrupt record: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // The values written here are plain structs and strings: serializing them cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn course_key(course: &str) -> Vec<u8> {
    [b"c\0", course.as_bytes()].concat()
}

fn message_prefix(course: &str) -> Vec<u8> {
    [b"m\0", course.as_bytes(), b"\0"].concat()
}

fn message_key(course: &str, seq: u64) -> Vec<u8> {
    [message_prefix(course).as_slice(), &seq.to_be_bytes()].concat()
}

fn id_key(id: &str) -> Vec<u8> {
    [b"i\0", id.as_bytes()].concat()
}

impl Cache {
    /// Opens (or creates) the cache in `dir`.
    pub(crate) fn open(dir: &std::path::Path) -> Result<Cache> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(200))
            .open()?;
        let data = db.open_tree("data")?;
        let outbox = db.open_tree("outbox")?;
        Ok(Cache {
            db,
            data,
            outbox,
            write: Mutex::new(()),
        })
    }

    /// Makes the cache belong to `user`: a cache left by another user is emptied (their messages
    /// and outbox are not this user's to see or send).
    pub(crate) fn claim(&self, user: &str) -> Result<()> {
        let _w = self.write.lock();
        match self.data.get(b"u")? {
            Some(owner) if owner.as_ref() == user.as_bytes() => return Ok(()),
            Some(_) => {
                self.data.clear()?;
                self.outbox.clear()?;
            }
            None => {}
        }
        self.data.insert(b"u", user.as_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Writes everything to disk.
    pub(crate) async fn flush(&self) -> Result<()> {
        self.db.flush_async().await?;
        Ok(())
    }

    // ---- courses ------------------------------------------------------------------------------

    pub(crate) fn course(&self, course: &str) -> Result<Option<CourseState>> {
        self.data
            .get(course_key(course))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Changes a course's state with `f` (a default state when none is stored).
    pub(crate) fn update_course<R>(
        &self,
        course: &str,
        f: impl FnOnce(&mut CourseState) -> R,
    ) -> Result<R> {
        let _w = self.write.lock();
        let mut state = self.course(course)?.unwrap_or_default();
        let out = f(&mut state);
        self.data.insert(course_key(course), encode(&state))?;
        Ok(out)
    }

    /// The courses whose rooms are joined on connect, with their state.
    pub(crate) fn joined_courses(&self) -> Result<Vec<(String, CourseState)>> {
        let mut out = Vec::new();
        for kv in self.data.scan_prefix(b"c\0") {
            let (k, v) = kv?;
            let state: CourseState = decode(&v)?;
            if state.joined {
                out.push((String::from_utf8_lossy(&k[2..]).into_owned(), state));
            }
        }
        Ok(out)
    }

    // ---- messages -----------------------------------------------------------------------------

    pub(crate) fn message(&self, id: &str) -> Result<Option<Message>> {
        let Some(loc) = self.data.get(id_key(id))? else {
            return Ok(None);
        };
        let key = [b"m\0".as_slice(), &loc].concat();
        self.data.get(key)?.map(|v| decode(&v)).transpose()
    }

    /// Stores a new or changed message (a `new-message`, `message-edited`, an acknowledged send or
    /// a history page) unless the cache holds this change or a later one, and moves the course's
    /// `last_seq` to the change when `live` (a change from the event stream, not a history page).
    pub(crate) fn put_message(&self, m: &Message, live: bool) -> Result<Applied> {
        let _w = self.write.lock();
        let mut state = self.course(&m.course_id)?.unwrap_or_default();
        let key = message_key(&m.course_id, m.seq);
        let stale = match self.data.get(&key)? {
            Some(old) => decode::<Message>(&old)?.change_seq >= m.change_seq,
            None => false,
        };
        let mut batch = Batch::default();
        if !stale {
            batch.insert(key.clone(), encode(m));
            batch.insert(id_key(&m.id), key[2..].to_vec());
        }
        if live {
            state.last_seq = Some(state.last_seq.unwrap_or(0).max(m.change_seq));
            batch.insert(course_key(&m.course_id), encode(&state));
        }
        self.data.apply_batch(batch)?;
        Ok(if stale {
            Applied::Stale
        } else {
            Applied::Stored
        })
    }

    /// Applies change `seq` to the cached message `id` with `f`, unless the cache holds this
    /// change or a later one; when `live`, moves the course's `last_seq` to it, in the same batch.
    /// Also answers the `last_seq` from before.
    fn change_cached(
        &self,
        course: &str,
        id: &str,
        seq: u64,
        live: bool,
        f: impl FnOnce(&mut Message),
    ) -> Result<(Cached, Option<u64>)> {
        let _w = self.write.lock();
        let mut state = self.course(course)?.unwrap_or_default();
        let before = state.last_seq;
        let mut batch = Batch::default();
        let mut outcome = Cached::Missing;
        if let Some(loc) = self.data.get(id_key(id))? {
            let key = [b"m\0".as_slice(), &loc].concat();
            if let Some(old) = self.data.get(&key)? {
                let mut m: Message = decode(&old)?;
                outcome = if m.change_seq < seq {
                    f(&mut m);
                    m.change_seq = seq;
                    batch.insert(key, encode(&m));
                    Cached::Changed(Box::new(m))
                } else {
                    Cached::Stale
                };
            }
        }
        if live {
            state.last_seq = Some(state.last_seq.unwrap_or(0).max(seq));
            batch.insert(course_key(course), encode(&state));
        }
        self.data.apply_batch(batch)?;
        Ok((outcome, before))
    }

    /// Turns a cached message into a tombstone (deletion `seq`, as the server makes it); when
    /// `live`, moves `last_seq` to it. A live deletion of a message the cache never held, past
    /// the course's seq, is news too (only the seq moves).
    pub(crate) fn delete_message(
        &self,
        course: &str,
        id: &str,
        seq: u64,
        live: bool,
    ) -> Result<Applied> {
        let (outcome, before) = self.change_cached(course, id, seq, live, |m| {
            *m = m.clone().into_tombstone(chat_core::Timestamp::now());
        })?;
        Ok(match outcome {
            Cached::Changed(_) => Applied::Stored,
            Cached::Missing if live && before.is_none_or(|last| seq > last) => Applied::Stored,
            _ => Applied::Stale,
        })
    }

    /// Applies a reaction change (`seq`) to a cached message; when `live`, moves `last_seq` to it.
    /// The message after the change when it was applied.
    pub(crate) fn react(
        &self,
        course: &str,
        r: &chat_core::event::ReactionEvent,
        added: bool,
        live: bool,
    ) -> Result<Option<Message>> {
        let (outcome, _) = self.change_cached(course, &r.message_id, r.seq, live, |m| {
            m.apply_reaction(&r.user_id, &r.emoji, added);
        })?;
        Ok(match outcome {
            Cached::Changed(m) => Some(*m),
            _ => None,
        })
    }

    /// Applies a pin or unpin (`seq`) to a cached message; when `live`, moves `last_seq` to it.
    /// Whether it was news.
    pub(crate) fn pin(&self, p: &chat_core::event::PinEvent, live: bool) -> Result<Applied> {
        let pin = p.pinned_by.clone().zip(p.pinned_at).filter(|_| p.pinned);
        let (outcome, before) =
            self.change_cached(&p.course_id, &p.message_id, p.seq, live, |m| m.set_pin(pin))?;
        Ok(match outcome {
            Cached::Changed(_) => Applied::Stored,
            Cached::Missing if live && before.is_none_or(|last| p.seq > last) => Applied::Stored,
            _ => Applied::Stale,
        })
    }

    /// Up to `limit` messages created before `before` (all when `None`), newest ones, returned
    /// oldest first.
    pub(crate) fn page(
        &self,
        course: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let prefix = message_prefix(course);
        let end = match before {
            Some(b) => message_key(course, b),
            None => [prefix.as_slice(), &[0xff; 9]].concat(),
        };
        let mut out = Vec::new();
        for kv in self.data.range(prefix.clone()..end).rev() {
            let (_, v) = kv?;
            out.push(decode::<Message>(&v)?);
            if out.len() >= limit {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Stores a page of history fetched over REST (not a change: `last_seq` stays) and lowers the
    /// course's complete-from mark to `floor`.
    pub(crate) fn put_history(&self, course: &str, page: &[Message], floor: u64) -> Result<()> {
        for m in page {
            self.put_message(m, false)?;
        }
        self.update_course(course, |s| {
            s.floor = Some(s.floor.map_or(floor, |f| f.min(floor)));
        })
    }

    /// Forgets a course's messages (its history is reloaded): after a resume the server could not
    /// make whole (another epoch), or a first join.
    pub(crate) fn reset_course(&self, course: &str, head: u64, epoch: &str) -> Result<()> {
        let _w = self.write.lock();
        let mut batch = Batch::default();
        for kv in self.data.scan_prefix(message_prefix(course)) {
            let (k, v) = kv?;
            if let Ok(m) = decode::<Message>(&v) {
                batch.remove(id_key(&m.id));
            }
            batch.remove(k);
        }
        let mut state = self.course(course)?.unwrap_or_default();
        state.last_seq = Some(head);
        state.epoch = Some(epoch.to_string());
        state.floor = Some(if head == 0 { 0 } else { head + 1 });
        state.read_seq = state.read_seq.min(head);
        batch.insert(course_key(course), encode(&state));
        self.data.apply_batch(batch)?;
        Ok(())
    }

    /// Messages of others after the user's read watermark that are not deleted.
    pub(crate) fn unread(&self, course: &str, me: &str) -> Result<u64> {
        let read = self.course(course)?.map_or(0, |s| s.read_seq);
        let start = message_key(course, read.saturating_add(1));
        let end = [message_prefix(course).as_slice(), &[0xff; 9]].concat();
        let mut n = 0;
        for kv in self.data.range(start..end) {
            let (_, v) = kv?;
            let m: Message = decode(&v)?;
            if m.sender.id != me && !m.is_deleted {
                n += 1;
            }
        }
        Ok(n)
    }

    // ---- outbox -------------------------------------------------------------------------------

    /// Appends to the outbox and writes it to disk.
    pub(crate) async fn outbox_push(&self, entry: &OutboxEntry) -> Result<()> {
        let order = self.db.generate_id()?;
        self.outbox.insert(order.to_be_bytes(), encode(entry))?;
        self.outbox.flush_async().await?;
        Ok(())
    }

    /// The outbox, oldest first.
    pub(crate) fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        self.outbox.iter().values().map(|v| decode(&v?)).collect()
    }

    fn outbox_key(&self, client_id: &str) -> Result<Option<sled::IVec>> {
        for kv in self.outbox.iter() {
            let (k, v) = kv?;
            if decode::<OutboxEntry>(&v)?.client_id == client_id {
                return Ok(Some(k));
            }
        }
        Ok(None)
    }

    /// Replaces an entry (same `client_id`) in place; false when it is gone.
    pub(crate) fn outbox_update(&self, entry: &OutboxEntry) -> Result<bool> {
        let _w = self.write.lock();
        match self.outbox_key(&entry.client_id)? {
            Some(k) => {
                self.outbox.insert(k, encode(entry))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Removes an entry; the entry when it was there.
    pub(crate) fn outbox_remove(&self, client_id: &str) -> Result<Option<OutboxEntry>> {
        let _w = self.write.lock();
        match self.outbox_key(client_id)? {
            Some(k) => Ok(self.outbox.remove(k)?.map(|v| decode(&v)).transpose()?),
            None => Ok(None),
        }
    }
}
