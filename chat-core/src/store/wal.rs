//! A write-ahead log with group commit, in front of sled.
//!
//! Why: sled 0.34's `flush` blocks every writer while it runs, so making each acknowledged write
//! durable with `flush` serializes all writers behind the disk. Instead, each atomic batch is
//! appended to this log and laid over sled in memory ([`Pending`]: reads see it at once); one
//! thread writes what accumulated, calls `fdatasync` for every writer that arrived meanwhile
//! (group commit), and only then applies those records to sled, as one atomic sled batch, off the
//! writers' path. Every second, a checkpoint rotates to a new segment, flushes sled once, `fsync`s
//! its files, and deletes the old segment. On open, the segments still present are replayed into sled (batches are whole-value
//! puts and removes, so replaying one twice is harmless), a torn record at the tail of the last
//! segment is dropped (it was never acknowledged), and anything else unreadable is refused.
//!
//! Record: `len: u32 LE | crc32(payload): u32 LE | payload`; payload: ops of
//! `tag: u8 (1 put, 0 remove) | key len: u32 LE | key | [value len: u32 LE | value]`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::kv::BatchOp;
use super::pending::{Lookup, Pending};
use crate::error::{Error, Result};

const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// sled key of the number of the last checkpoint it holds; the same number is kept in
/// [`CHECKPOINT_FILE`] once sled's flush returned. A sled that holds an older number than the file
/// lost data it had made durable (a truncated or rolled-back database): refused at open.
const CHECKPOINT_KEY: &[u8] = b"\xffcheckpoint";
const CHECKPOINT_FILE: &str = "checkpoint";
/// sled key of the number of the last log record applied, part of the record's own writes. Replay
/// skips the records sled already holds: replaying an older record over newer state would roll
/// some keys back (a course's last seq, a message's change list) and not others.
const RECORD_KEY: &[u8] = b"\xffwal-record";
/// sled key of a record being applied by an earlier version of this log, which applied records
/// with plain inserts made atomic by this intent (see [`redo_intent`]).
const INTENT_KEY: &[u8] = b"\xffwal-intent";
const MAX_RECORD: usize = 256 * 1024 * 1024;

/// The log. [`Wal::append`] logs a batch and makes it visible to [`Wal::get`] and [`Wal::scan`];
/// [`Wal::sync`] waits until everything appended before it is on disk.
pub(crate) struct Wal {
    shared: Arc<Shared>,
    durable: watch::Receiver<Durable>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    dir: PathBuf,
    /// sled's own folder, whose files a checkpoint `fsync`s (see [`sync_sled_files`]).
    sled_dir: PathBuf,
    /// Number of the last checkpoint (see [`CHECKPOINT_KEY`]).
    checkpoint_no: std::sync::atomic::AtomicU64,
    /// Records appended but not yet applied to sled.
    pending: Pending,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    /// Encoded records not yet written.
    buf: Vec<u8>,
    /// The same records' ops, to apply to sled once they are durable.
    unapplied: Vec<Vec<BatchOp>>,
    /// Records appended so far (log sequence number of the last one).
    lsn: u64,
    /// Number of the last record appended, over the store's life (see [`RECORD_KEY`]).
    record: u64,
    /// The segment being written and its number.
    segment: Arc<File>,
    segment_no: u64,
    /// Whether the current segment holds any record.
    segment_dirty: bool,
    stop: bool,
}

#[derive(Clone, Default)]
struct Durable {
    lsn: u64,
    error: Option<String>,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("wal-{n:020}.log"))
}

fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(n) = name
            .strip_prefix("wal-")
            .and_then(|n| n.strip_suffix(".log"))
        {
            if let Ok(n) = n.parse::<u64>() {
                out.push((n, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Makes a folder's entries (files created, renamed or removed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// `fsync`s sled's files in `dir` (its log `db`, `conf` and snapshots `snap.*`) and the folder.
///
/// sled 0.34's `flush` makes its writes stable with `sync_file_range`, which waits for the pages
/// to reach the disk but neither flushes the disk's volatile write cache nor the file's metadata
/// (its size, after it grew). A log segment may only be deleted once what it holds is durable in
/// sled's files, so a checkpoint does the `fsync` that sled leaves out.
fn sync_sled_files(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let sled_file = name == "db" || name == "conf" || name.starts_with("snap.");
        if sled_file && entry.file_type()?.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(dir)
}

fn encode(batch: &[BatchOp], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    for (k, v) in batch {
        out.push(u8::from(v.is_some()));
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        if let Some(v) = v {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
    }
    let payload = &out[start + 8..];
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(payload).to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc);
}

fn decode(mut payload: &[u8]) -> Option<Vec<BatchOp>> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if p.len() < n {
            return None;
        }
        let (head, tail) = p.split_at(n);
        *p = tail;
        Some(head)
    }
    fn len(p: &mut &[u8]) -> Option<usize> {
        Some(u32::from_le_bytes(take(p, 4)?.try_into().ok()?) as usize)
    }
    let mut ops = Vec::new();
    while !payload.is_empty() {
        let tag = take(&mut payload, 1)?[0];
        let klen = len(&mut payload)?;
        let key = take(&mut payload, klen)?.to_vec();
        let value = match tag {
            1 => {
                let vlen = len(&mut payload)?;
                Some(take(&mut payload, vlen)?.to_vec())
            }
            0 => None,
            _ => return None,
        };
        ops.push((key, value));
    }
    Some(ops)
}

/// The record number a record's ops carry (its [`RECORD_KEY`] put).
fn record_of(ops: &[BatchOp]) -> Option<u64> {
    ops.iter()
        .find(|(k, _)| k.as_slice() == RECORD_KEY)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| v.try_into().ok())
        .map(u64::from_be_bytes)
}

/// Applies durable records to sled, in order, with plain inserts and removes.
///
/// Why not one `sled::Batch`: sled 0.34 seals its I/O buffer and wakes its I/O threads for every
/// batch, which costs more than the inserts themselves. Plain inserts are safe here because only
/// records already durable in the log are applied, and a segment is deleted only after sled's
/// files hold all of it: sled recovers a prefix of what was applied, and a record it holds only
/// in part is still in the log, whose replay (everything after the last [`RECORD_KEY`] sled
/// holds, in order, whole-value puts and removes) completes it. So only the group's last number
/// is written. Readers never see a partial record: they read the pending writes, which keep the
/// group until it is all in sled.
fn apply_records(db: &sled::Db, records: &[Vec<BatchOp>]) -> Result<()> {
    let last = records.len().saturating_sub(1);
    for (i, ops) in records.iter().enumerate() {
        for (k, v) in ops {
            if i != last && k.as_slice() == RECORD_KEY {
                continue;
            }
            match v {
                Some(v) => db.insert(k.as_slice(), v.as_slice())?,
                None => db.remove(k.as_slice())?,
            };
        }
    }
    Ok(())
}

/// Completes a record that an earlier version of this log was applying when a crash came (see
/// [`INTENT_KEY`]), and removes its intent.
fn redo_intent(db: &sled::Db) -> Result<()> {
    let Some(intent) = db.get(INTENT_KEY)? else {
        return Ok(());
    };
    let ops = decode_record(&intent)
        .filter(|(_, len)| *len == intent.len())
        .map(|(ops, _)| ops)
        .ok_or_else(|| Error::corrupt("the store's pending write is damaged"))?;
    let no =
        record_of(&ops).ok_or_else(|| Error::corrupt("the store's pending write has no number"))?;
    if no > record_no(db)? {
        tracing::warn!(record = no, "completing a write a crash interrupted");
        apply_records(db, std::slice::from_ref(&ops))?;
    }
    db.remove(INTENT_KEY)?;
    db.flush()?;
    Ok(())
}

/// Decodes the record at the start of `bytes` (header and payload); returns its ops and its
/// encoded length. `None` for a short, oversized, corrupt or undecodable record.
fn decode_record(bytes: &[u8]) -> Option<(Vec<BatchOp>, usize)> {
    let len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    if len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(8..8 + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    Some((decode(payload)?, 8 + len))
}

/// Reads the records of a segment. `Err` with the offset of the first bad record.
fn read_segment(path: &Path) -> Result<(Vec<Vec<BatchOp>>, Option<u64>)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        match decode_record(&bytes[at..]) {
            Some((ops, len)) => {
                records.push(ops);
                at += len;
            }
            None => return Ok((records, Some(at as u64))),
        }
    }
    Ok((records, None))
}

impl Wal {
    /// Replays what the log holds into sled, then starts a fresh log in `dir`.
    /// Opens the log in `dir` in front of `db`, whose files are in `sled_dir`.
    pub(crate) fn open(dir: &Path, sled_dir: &Path, db: &sled::Db) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let found = segments(dir)?;
        let last = found.last().map(|(n, _)| *n);
        redo_intent(db)?;
        let mut record = record_no(db)?;
        let in_db = record;
        for (n, path) in &found {
            let (records, bad) = read_segment(path)?;
            if let Some(offset) = bad {
                if Some(*n) != last {
                    return Err(Error::Corrupt(format!(
                        "write-ahead log {} is damaged at byte {offset}",
                        path.display()
                    )));
                }
                tracing::warn!(segment = %path.display(), offset, "dropping a torn record at the log's tail");
            }
            for ops in records {
                if let Some(no) = record_of(&ops) {
                    if no <= in_db {
                        continue; // sled already holds it, and possibly newer values
                    }
                    record = record.max(no);
                }
                apply_records(db, std::slice::from_ref(&ops))?;
            }
        }
        if !found.is_empty() {
            db.flush()?;
            for (_, path) in &found {
                std::fs::remove_file(path)?;
            }
        }
        let checkpoint_no = check_checkpoint(dir, db)?;
        let segment_no = last.map_or(1, |n| n + 1);
        let segment = Arc::new(create_segment(dir, segment_no)?);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            sled_dir: sled_dir.to_path_buf(),
            checkpoint_no: std::sync::atomic::AtomicU64::new(checkpoint_no),
            pending: Pending::default(),
            state: Mutex::new(State {
                buf: Vec::new(),
                unapplied: Vec::new(),
                lsn: 0,
                record,
                segment,
                segment_no,
                segment_dirty: false,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let (tx, rx) = watch::channel(Durable::default());
        let worker = shared.clone();
        let db = db.clone();
        let thread = std::thread::Builder::new()
            .name("chat-wal".into())
            .spawn(move || writer_loop(&worker, &db, &tx))
            .map_err(|e| Error::storage(format!("cannot start the log writer: {e}")))?;
        Ok(Wal {
            shared,
            durable: rx,
            thread: Some(thread),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.shared
            .state
            .lock()
            .map_err(|_| Error::storage("log lock poisoned"))
    }

    /// Logs `batch`, atomically, after everything appended before it. Readers see it at once;
    /// it is durable once a later [`Wal::sync`] returns.
    pub(crate) fn append(&self, mut batch: Vec<BatchOp>) -> Result<()> {
        let mut st = self.lock()?;
        if st.stop {
            return Err(Error::Closed);
        }
        let no = st.record + 1;
        batch.push((RECORD_KEY.to_vec(), Some(no.to_be_bytes().to_vec())));
        encode(&batch, &mut st.buf);
        self.shared.pending.insert(no, &batch);
        st.unapplied.push(batch);
        st.record = no;
        st.lsn += 1;
        st.segment_dirty = true;
        Ok(())
    }

    /// The value at `key`: the newest logged write, whether or not sled has it yet.
    pub(crate) fn get(&self, db: &sled::Db, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.shared.pending.get(key) {
            Lookup::Value(v) => Ok(Some(v)),
            Lookup::Removed => Ok(None),
            Lookup::Absent => Ok(db.get(key)?.map(|v| v.to_vec())),
        }
    }

    /// Visits the keys of `[from, to)` in sled with the logged writes not yet applied laid over
    /// them.
    pub(crate) fn scan(
        &self,
        db: &sled::Db,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        let range = db.range(from..to);
        if reverse {
            self.shared.pending.scan(from, to, true, range.rev(), visit)
        } else {
            self.shared.pending.scan(from, to, false, range, visit)
        }
    }

    /// Returns once every record appended before the call is on disk.
    pub(crate) async fn sync(&self) -> Result<()> {
        let need = {
            let st = self.lock()?;
            if st.lsn == 0 {
                return Ok(());
            }
            self.shared.wake.notify_one();
            st.lsn
        };
        let mut rx = self.durable.clone();
        let durable = rx
            .wait_for(|d| d.lsn >= need || d.error.is_some())
            .await
            .map_err(|_| Error::storage("the log writer stopped"))?
            .clone();
        match durable.error {
            Some(e) => Err(Error::storage(format!("log write failed: {e}"))),
            None => Ok(()),
        }
    }

    /// Writes what is pending and stops the writer.
    pub(crate) fn stop(&mut self) {
        if let Ok(mut st) = self.shared.state.lock() {
            st.stop = true;
        }
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The number of the last log record sled holds.
fn record_no(db: &sled::Db) -> Result<u64> {
    match db.get(RECORD_KEY)? {
        None => Ok(0),
        Some(v) => {
            Ok(u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                Error::corrupt("bad log record number in the store")
            })?))
        }
    }
}

/// Compares the checkpoint number sled holds with the one the log folder recorded; returns the
/// current one.
fn check_checkpoint(dir: &Path, db: &sled::Db) -> Result<u64> {
    let in_db = match db.get(CHECKPOINT_KEY)? {
        None => 0,
        Some(v) => u64::from_le_bytes(
            v.as_ref()
                .try_into()
                .map_err(|_| Error::corrupt("bad checkpoint number in the store"))?,
        ),
    };
    let recorded = match std::fs::read(dir.join(CHECKPOINT_FILE)) {
        Ok(bytes) => u64::from_le_bytes(bytes.as_slice().try_into().map_err(|_| {
            Error::Corrupt(format!(
                "{} is damaged",
                dir.join(CHECKPOINT_FILE).display()
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e.into()),
    };
    if in_db < recorded {
        return Err(Error::Corrupt(format!(
            "the database next to {} lost data it had made durable (it holds checkpoint \
             {in_db}, the log recorded {recorded}: truncated or restored from an older copy?); \
             refusing to start with a partial chat",
            dir.display()
        )));
    }
    Ok(in_db)
}

/// Records checkpoint `no` in the log folder (write, sync, rename).
fn write_checkpoint_file(dir: &Path, no: u64) -> Result<()> {
    let tmp = dir.join("checkpoint.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&no.to_le_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(CHECKPOINT_FILE))?;
    Ok(())
}

fn create_segment(dir: &Path, n: u64) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, n))?;
    sync_dir(dir)?;
    Ok(file)
}

fn writer_loop(shared: &Shared, db: &sled::Db, durable: &watch::Sender<Durable>) {
    let mut last_checkpoint = Instant::now();
    let mut failed: Option<String> = None;
    loop {
        let (buf, unapplied, lsn, segment, stopping) = {
            let Ok(mut st) = shared.state.lock() else {
                return;
            };
            while st.buf.is_empty() && !st.stop {
                let wait = CHECKPOINT_EVERY.saturating_sub(last_checkpoint.elapsed());
                let (next, timeout) = match shared
                    .wake
                    .wait_timeout(st, wait.max(Duration::from_millis(1)))
                {
                    Ok(r) => r,
                    Err(_) => return,
                };
                st = next;
                if timeout.timed_out() {
                    break;
                }
            }
            (
                std::mem::take(&mut st.buf),
                std::mem::take(&mut st.unapplied),
                st.lsn,
                st.segment.clone(),
                st.stop,
            )
        };
        if !buf.is_empty() && failed.is_none() {
            let result = (&*segment)
                .write_all(&buf)
                .and_then(|()| segment.sync_data());
            if let Err(e) = result {
                tracing::error!(error = %e, "write-ahead log write failed");
                failed = Some(e.to_string());
            }
        }
        durable.send_replace(Durable {
            lsn,
            error: failed.clone(),
        });
        if failed.is_none() {
            if let Err(e) = apply_durable(shared, db, unapplied) {
                tracing::error!(error = %e, "applying the log to the store failed");
                failed = Some(e.to_string());
            }
        }
        if (stopping || last_checkpoint.elapsed() >= CHECKPOINT_EVERY) && failed.is_none() {
            match checkpoint(shared, db) {
                Ok(Some(lsn)) => {
                    durable.send_replace(Durable { lsn, error: None });
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "checkpoint failed"),
            }
            last_checkpoint = Instant::now();
        }
        if stopping {
            return;
        }
    }
}

/// Applies durable records to sled and drops them from the pending writes.
fn apply_durable(shared: &Shared, db: &sled::Db, records: Vec<Vec<BatchOp>>) -> Result<()> {
    let Some(last) = records.last().and_then(|ops| record_of(ops)) else {
        return Ok(());
    };
    apply_records(db, &records)?;
    for ops in &records {
        shared.pending.remove_applied(last, ops);
    }
    Ok(())
}

/// Rotates to a new segment, makes sled durable, and removes the old segment. Returns the lsn it
/// made durable on the way, if it wrote records that were still buffered.
fn checkpoint(shared: &Shared, db: &sled::Db) -> Result<Option<u64>> {
    let mut written = None;
    let mut unapplied = Vec::new();
    let old = {
        let mut st = shared
            .state
            .lock()
            .map_err(|_| Error::storage("log lock poisoned"))?;
        if !st.segment_dirty {
            return Ok(None);
        }
        // Whatever is still buffered belongs to the old segment.
        if !st.buf.is_empty() {
            let buf = std::mem::take(&mut st.buf);
            (&*st.segment).write_all(&buf)?;
            st.segment.sync_data()?;
            written = Some(st.lsn);
            unapplied = std::mem::take(&mut st.unapplied);
        }
        let next = st.segment_no + 1;
        st.segment = Arc::new(create_segment(&shared.dir, next)?);
        st.segment_dirty = false;
        std::mem::replace(&mut st.segment_no, next)
    };
    // Everything else logged in the old segment was applied to sled when it became durable.
    apply_durable(shared, db, unapplied)?;
    let no = shared
        .checkpoint_no
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    db.insert(CHECKPOINT_KEY, &no.to_le_bytes()[..])?;
    db.flush()?;
    sync_sled_files(&shared.sled_dir)?;
    write_checkpoint_file(&shared.dir, no)?;
    std::fs::remove_file(segment_path(&shared.dir, old))?;
    sync_dir(&shared.dir)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sled database in a fresh folder (kept while the folder lives).
    fn temp_db() -> (tempfile::TempDir, sled::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .unwrap();
        (dir, db)
    }

    #[test]
    fn replay_never_rolls_back_what_sled_already_holds() {
        // sled got records 1 and 2 (a checkpoint flush, or its own buffer writes), but the crash
        // tore record 2 in the log: replaying record 1 must not put the older value back.
        let (dir, db) = temp_db();
        let rec = |no: u64, v: &[u8]| -> Vec<BatchOp> {
            vec![
                (b"head".to_vec(), Some(v.to_vec())),
                (RECORD_KEY.to_vec(), Some(no.to_be_bytes().to_vec())),
            ]
        };
        for (k, v) in rec(2, b"2") {
            db.insert(k, v.unwrap()).unwrap();
        }
        db.insert(b"only-in-2", b"x").unwrap();
        let wal_dir = dir.path().join("wal");
        std::fs::create_dir_all(&wal_dir).unwrap();
        let mut buf = Vec::new();
        encode(&rec(1, b"1"), &mut buf);
        let mut torn = Vec::new();
        encode(&rec(2, b"2"), &mut torn);
        buf.extend_from_slice(&torn[..torn.len() - 2]);
        std::fs::write(segment_path(&wal_dir, 7), &buf).unwrap();
        let mut wal = Wal::open(&wal_dir, &dir.path().join("db"), &db).unwrap();
        assert_eq!(db.get(b"head").unwrap().unwrap().as_ref(), b"2");
        // Appends go on numbering after what sled holds, are read at once, and reach sled.
        wal.append(vec![(b"head".to_vec(), Some(b"3".to_vec()))])
            .unwrap();
        assert_eq!(wal.get(&db, b"head").unwrap().as_deref(), Some(&b"3"[..]));
        wal.stop();
        assert_eq!(record_no(&db).unwrap(), 3);
        assert_eq!(db.get(b"head").unwrap().unwrap().as_ref(), b"3");
    }

    #[test]
    fn a_record_interrupted_half_applied_is_completed_at_open() {
        // The crash came after the intent and one op of record 5 reached sled, before the rest
        // and its number: opening completes record 5, and only record 5.
        let (dir, db) = temp_db();
        db.insert(RECORD_KEY, &4u64.to_be_bytes()).unwrap();
        db.insert(b"a", b"old").unwrap();
        db.insert(b"gone", b"x").unwrap();
        let record: Vec<BatchOp> = vec![
            (b"a".to_vec(), Some(b"new".to_vec())),
            (b"b".to_vec(), Some(b"also new".to_vec())),
            (b"gone".to_vec(), None),
            (RECORD_KEY.to_vec(), Some(5u64.to_be_bytes().to_vec())),
        ];
        let mut intent = Vec::new();
        encode(&record, &mut intent);
        db.insert(INTENT_KEY, intent).unwrap();
        db.insert(b"a", b"new").unwrap();
        let mut wal = Wal::open(&dir.path().join("wal"), &dir.path().join("db"), &db).unwrap();
        assert_eq!(db.get(b"b").unwrap().unwrap().as_ref(), b"also new");
        assert_eq!(db.get(b"gone").unwrap(), None);
        assert_eq!(record_no(&db).unwrap(), 5);
        // A completed record is not applied again over newer values.
        db.insert(b"b", b"newer").unwrap();
        wal.stop();
        drop(wal);
        let mut wal = Wal::open(&dir.path().join("wal"), &dir.path().join("db"), &db).unwrap();
        assert_eq!(db.get(b"b").unwrap().unwrap().as_ref(), b"newer");
        // The intent is gone, and the next record is applied by the log, with its number.
        assert_eq!(db.get(INTENT_KEY).unwrap(), None);
        wal.append(vec![(b"c".to_vec(), Some(b"1".to_vec()))])
            .unwrap();
        wal.stop();
        assert_eq!(record_no(&db).unwrap(), 6);
        assert_eq!(db.get(b"c").unwrap().unwrap().as_ref(), b"1");
        // A damaged intent is refused, not ignored.
        drop(wal);
        db.insert(INTENT_KEY, b"garbage").unwrap();
        assert!(matches!(
            Wal::open(&dir.path().join("wal"), &dir.path().join("db"), &db),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn a_group_partly_in_sled_is_completed_from_the_log_at_open() {
        // The writer applies a durable group with plain inserts and numbers only its end: a
        // crash can leave sled with some of records 5 and 6 and the number of record 4. Both
        // records are in the log (applied only once durable), so opening completes them.
        let (dir, db) = temp_db();
        db.insert(RECORD_KEY, &4u64.to_be_bytes()).unwrap();
        db.insert(b"a", b"4").unwrap();
        let rec = |no: u64, ops: &[(&[u8], Option<&[u8]>)]| -> Vec<BatchOp> {
            let mut v: Vec<BatchOp> = ops
                .iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect();
            v.push((RECORD_KEY.to_vec(), Some(no.to_be_bytes().to_vec())));
            v
        };
        let r5 = rec(5, &[(b"a", Some(b"5")), (b"b", Some(b"5"))]);
        let r6 = rec(6, &[(b"a", Some(b"6")), (b"b", None), (b"c", Some(b"6"))]);
        let wal_dir = dir.path().join("wal");
        std::fs::create_dir_all(&wal_dir).unwrap();
        let mut buf = Vec::new();
        encode(&r5, &mut buf);
        encode(&r6, &mut buf);
        std::fs::write(segment_path(&wal_dir, 3), &buf).unwrap();
        // What reached sled: record 5's first op and record 6's first op, not the rest.
        db.insert(b"a", b"6").unwrap();
        let mut wal = Wal::open(&wal_dir, &dir.path().join("db"), &db).unwrap();
        assert_eq!(db.get(b"a").unwrap().unwrap().as_ref(), b"6");
        assert_eq!(db.get(b"b").unwrap(), None);
        assert_eq!(db.get(b"c").unwrap().unwrap().as_ref(), b"6");
        assert_eq!(record_no(&db).unwrap(), 6);
        wal.stop();
    }

    #[test]
    fn reads_see_appends_before_they_reach_sled_and_after() {
        let (dir, db) = temp_db();
        db.insert(b"k1", b"sled").unwrap();
        db.insert(b"k2", b"sled").unwrap();
        let mut wal = Wal::open(&dir.path().join("wal"), &dir.path().join("db"), &db).unwrap();
        wal.append(vec![
            (b"k1".to_vec(), None),
            (b"k3".to_vec(), Some(b"log".to_vec())),
        ])
        .unwrap();
        let scan = |wal: &Wal| {
            let mut seen = Vec::new();
            wal.scan(&db, b"k", b"l", false, &mut |k, v| {
                seen.push((k.to_vec(), v.to_vec()));
                true
            })
            .unwrap();
            seen
        };
        let want = vec![
            (b"k2".to_vec(), b"sled".to_vec()),
            (b"k3".to_vec(), b"log".to_vec()),
        ];
        assert_eq!(wal.get(&db, b"k1").unwrap(), None);
        assert_eq!(scan(&wal), want);
        wal.stop();
        // Applied to sled by the writer: the same answers, now from sled.
        assert_eq!(db.get(b"k1").unwrap(), None);
        assert_eq!(db.get(b"k3").unwrap().unwrap().as_ref(), b"log");
        assert_eq!(scan(&wal), want);
    }

    #[test]
    fn records_round_trip_and_torn_tails_are_detected() {
        let batch: Vec<BatchOp> = vec![(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)];
        let mut buf = Vec::new();
        encode(&batch, &mut buf);
        encode(&batch, &mut buf);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal-1.log");
        std::fs::write(&path, &buf[..buf.len() - 3]).unwrap();
        let (records, bad) = read_segment(&path).unwrap();
        assert_eq!(records, vec![batch.clone()]);
        assert_eq!(bad, Some((buf.len() / 2) as u64));
        let mut flipped = buf.clone();
        flipped[10] ^= 0xff;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(
            read_segment(&path).unwrap().1,
            Some(0),
            "a bad checksum stops the replay"
        );
    }
}
