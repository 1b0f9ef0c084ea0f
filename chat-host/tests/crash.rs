//! Crash safety: `chat-host` runs as a child process under concurrent senders (REST sends, edits,
//! deletions, read receipts, retries with the same `clientId`), is killed with SIGKILL at random
//! points, and is restarted on the same data folder. After every restart:
//! - every acknowledged message, edit, deletion and receipt is there;
//! - the change log replayed over `/ws` (`join-course` with `sinceSeq: 0`) has the seqs 1..=N with
//!   no gap, and every acknowledged change sits at the seq its acknowledgement gave;
//! - no `clientId` appears twice (a retried, unacknowledged send is stored at most once);
//! - what exists but was never acknowledged was at least attempted.
//!
//! Short by default (5 cycles); `CHAT_LONG_TESTS=1` runs 24. `CHAT_CRASH_SEED` replays a run.
//! Also here: a corrupt, foreign or truncated store makes the binary exit with a clear error.

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};
use support::*;

const COURSE: &str = "crash";
const SENDERS: usize = 4;
const REQ_TIMEOUT: Duration = Duration::from_secs(10);
/// Generous rate limit: this test is about durability, not throttling.
const ENV: &[(&str, &str)] = &[("CHAT_RATE_LIMIT", "1000000"), ("CHAT_RATE_WINDOW", "1")];

/// What one message went through, as its sender saw it.
#[derive(Debug, Default, Clone)]
struct Track {
    owner: String,
    client_id: String,
    original: String,
    /// Acknowledged: (id, seq).
    acked: Option<(String, u64)>,
    /// Edit texts in the order they were attempted.
    edits: Vec<String>,
    /// Index in `edits` of the last acknowledged edit, and its changeSeq.
    last_acked_edit: Option<(usize, u64)>,
    delete_attempted: bool,
    /// changeSeq of the acknowledged deletion.
    delete_acked: Option<u64>,
}

#[derive(Default, Clone)]
struct Ledger {
    /// By clientId.
    tracks: HashMap<String, Track>,
    /// Acknowledged receipts: (reader, message id).
    receipts: Vec<(String, String)>,
    ops_acked: u64,
    ops_failed: u64,
}

type Shared = Arc<Mutex<Ledger>>;

fn user(i: usize) -> String {
    format!("s{i}")
}

async fn sender(
    addr: SocketAddr,
    me: String,
    ledger: Shared,
    seed: u64,
    cycle: usize,
    counter: Arc<std::sync::atomic::AtomicU64>,
) {
    let tok = token(&me, &me, "student");
    let mut rng = Rng::new(seed);
    // First retry what was sent but never acknowledged (same clientId: it must not duplicate).
    let retries: Vec<Track> = {
        let l = ledger.lock();
        l.tracks
            .values()
            .filter(|t| t.owner == me && t.acked.is_none())
            .take(5)
            .cloned()
            .collect()
    };
    for t in retries {
        let r = try_request(
            addr,
            "POST",
            "/api/v1/chat/send",
            Some(&tok),
            Some(json_body(
                &json!({"courseId": COURSE, "message": t.original, "clientId": t.client_id}),
            )),
            REQ_TIMEOUT,
        )
        .await;
        match r {
            Ok(r) if r.status == 201 => {
                let m = r.data();
                let mut l = ledger.lock();
                l.ops_acked += 1;
                l.tracks.get_mut(&t.client_id).unwrap().acked = Some((
                    m["id"].as_str().unwrap().to_string(),
                    m["seq"].as_u64().unwrap(),
                ));
            }
            Ok(r) => panic!(
                "retry of {} answered {} {:?}",
                t.client_id, r.status, r.body
            ),
            Err(_) => return,
        }
    }
    loop {
        let roll = rng.below(100);
        if roll < 55 {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let cid = format!("{me}-c{cycle}-{n}");
            let text = format!("{cid} original");
            ledger.lock().tracks.insert(
                cid.clone(),
                Track {
                    owner: me.clone(),
                    client_id: cid.clone(),
                    original: text.clone(),
                    ..Default::default()
                },
            );
            let body = json!({"courseId": COURSE, "message": text, "clientId": cid});
            match try_request(
                addr,
                "POST",
                "/api/v1/chat/send",
                Some(&tok),
                Some(json_body(&body)),
                REQ_TIMEOUT,
            )
            .await
            {
                Ok(r) if r.status == 201 => {
                    let m = r.data();
                    assert_eq!(m["clientId"], cid.as_str());
                    let mut l = ledger.lock();
                    l.ops_acked += 1;
                    l.tracks.get_mut(&cid).unwrap().acked = Some((
                        m["id"].as_str().unwrap().to_string(),
                        m["seq"].as_u64().unwrap(),
                    ));
                }
                Ok(r) => panic!("send answered {} {:?}", r.status, r.body),
                Err(_) => break,
            }
            continue;
        }
        // Pick one of my acknowledged, not deleted messages (edit, delete) or anyone's (read).
        let pick = {
            let l = ledger.lock();
            let mine = roll < 85;
            let candidates: Vec<&Track> = l
                .tracks
                .values()
                .filter(|t| t.acked.is_some() && !t.delete_attempted)
                .filter(|t| if mine { t.owner == me } else { t.owner != me })
                .collect();
            if candidates.is_empty() {
                None
            } else {
                let t = candidates[rng.below(candidates.len() as u64) as usize];
                Some((
                    t.client_id.clone(),
                    t.acked.clone().unwrap().0,
                    t.edits.len(),
                ))
            }
        };
        let Some((cid, id, n_edits)) = pick else {
            continue;
        };
        if roll < 75 {
            let text = format!("{cid} edit {n_edits}");
            ledger
                .lock()
                .tracks
                .get_mut(&cid)
                .unwrap()
                .edits
                .push(text.clone());
            let path = format!("/api/v1/chat/edit/{id}");
            match try_request(
                addr,
                "PUT",
                &path,
                Some(&tok),
                Some(json_body(&json!({"message": text}))),
                REQ_TIMEOUT,
            )
            .await
            {
                Ok(r) if r.status == 200 => {
                    let m = r.data();
                    assert_eq!(m["message"], text.as_str());
                    let mut l = ledger.lock();
                    l.ops_acked += 1;
                    l.tracks.get_mut(&cid).unwrap().last_acked_edit =
                        Some((n_edits, m["changeSeq"].as_u64().unwrap()));
                }
                Ok(r) => panic!("edit answered {} {:?}", r.status, r.body),
                Err(_) => break,
            }
        } else if roll < 85 {
            ledger.lock().tracks.get_mut(&cid).unwrap().delete_attempted = true;
            let path = format!("/api/v1/chat/delete/{id}");
            match try_request(addr, "DELETE", &path, Some(&tok), None, REQ_TIMEOUT).await {
                Ok(r) if r.status == 200 => {
                    let m = r.data();
                    assert_eq!(m["isDeleted"], true);
                    let mut l = ledger.lock();
                    l.ops_acked += 1;
                    l.tracks.get_mut(&cid).unwrap().delete_acked =
                        Some(m["changeSeq"].as_u64().unwrap());
                }
                Ok(r) => panic!("delete answered {} {:?}", r.status, r.body),
                Err(_) => break,
            }
        } else {
            let path = format!("/api/v1/chat/read/{id}");
            match try_request(addr, "PUT", &path, Some(&tok), None, REQ_TIMEOUT).await {
                Ok(r) if r.status == 200 => {
                    let mut l = ledger.lock();
                    l.ops_acked += 1;
                    l.receipts.push((me.clone(), id));
                }
                // The message may have been deleted meanwhile by its owner: reading it is fine
                // either way; anything else is a failure.
                Ok(r) => panic!("read answered {} {:?}", r.status, r.body),
                Err(_) => break,
            }
        }
    }
    ledger.lock().ops_failed += 1;
}

async fn provision(addr: SocketAddr, admin: &str) {
    let r = try_request(
        addr,
        "PUT",
        &format!("/api/v1/chat/courses/{COURSE}"),
        Some(admin),
        Some(json_body(&json!({"name": "Crash course"}))),
        REQ_TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    for i in 0..SENDERS {
        let r = try_request(
            addr,
            "PUT",
            &format!("/api/v1/chat/courses/{COURSE}/participants/{}", user(i)),
            Some(admin),
            Some(json_body(&json!({"role": "student"}))),
            REQ_TIMEOUT,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
    }
}

/// The change log replayed over `/ws` from seq 0: `seq -> (event, message id)`. A client dropped
/// for reading too slowly resumes from the last seq it saw, as documented.
async fn replay(addr: SocketAddr, tok: &str, upto: u64) -> HashMap<u64, (String, String)> {
    let mut seen: HashMap<u64, (String, String)> = HashMap::new();
    let mut last = 0u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    while last < upto {
        if Instant::now() > deadline {
            eprintln!("replay stalled at {last} of {upto}");
            break;
        }
        let mut ws = Ws::connect(addr, tok, true).await.expect("socket opens");
        let id = ws.emit("join-course", json!({"courseId": COURSE, "sinceSeq": last}));
        loop {
            let Some(v) = ws.next(Duration::from_secs(5)).await else {
                break;
            };
            if v.get("__close").is_some() {
                break;
            }
            if v["ack"] == json!(id) {
                assert_eq!(v["ok"], true, "{v}");
                continue;
            }
            let (seq, mid) = match v["event"].as_str() {
                Some("new-message") | Some("message-edited") => (
                    v["data"]["changeSeq"].as_u64().unwrap(),
                    v["data"]["id"].as_str().unwrap().to_string(),
                ),
                Some("message-deleted") => (
                    v["data"]["seq"].as_u64().unwrap(),
                    v["data"]["messageId"].as_str().unwrap().to_string(),
                ),
                _ => continue,
            };
            assert_eq!(
                seq,
                last + 1,
                "gap or duplicate in the replay: {seq} after {last}"
            );
            last = seq;
            seen.insert(seq, (v["event"].as_str().unwrap().to_string(), mid));
            if last == upto {
                break;
            }
        }
        ws.close();
    }
    seen
}

/// Checks the restarted server against what was acknowledged. Returns the highest seq.
async fn verify(addr: SocketAddr, admin: &str, ledger: &Ledger, cycle: usize) -> u64 {
    let history = full_history(addr, admin, COURSE).await;
    let mut by_cid: HashMap<String, Value> = HashMap::new();
    let mut by_id: HashMap<String, Value> = HashMap::new();
    let mut upto = 0u64;
    for m in &history {
        upto = upto.max(m["changeSeq"].as_u64().unwrap());
        if let Some(cid) = m["clientId"].as_str() {
            assert!(
                by_cid.insert(cid.to_string(), m.clone()).is_none(),
                "cycle {cycle}: clientId {cid} stored twice"
            );
        }
        by_id.insert(m["id"].as_str().unwrap().to_string(), m.clone());
    }
    let log = replay(addr, admin, upto).await;
    if log.len() as u64 != upto {
        let missing: Vec<&Value> = history
            .iter()
            .filter(|m| !log.contains_key(&m["changeSeq"].as_u64().unwrap()))
            .collect();
        panic!(
            "cycle {cycle}: the change log replays {} of {upto} changes; not replayed: {missing:#?}",
            log.len()
        );
    }
    assert_eq!(
        log.len() as u64,
        upto,
        "cycle {cycle}: the change log has a gap"
    );
    for t in ledger.tracks.values() {
        let Some(m) = by_cid.get(&t.client_id) else {
            assert!(
                t.acked.is_none(),
                "cycle {cycle}: acknowledged send {} lost",
                t.client_id
            );
            continue;
        };
        let id = m["id"].as_str().unwrap();
        if let Some((aid, seq)) = &t.acked {
            assert_eq!(id, aid, "cycle {cycle}: {} changed id", t.client_id);
            assert_eq!(
                m["seq"].as_u64(),
                Some(*seq),
                "cycle {cycle}: {} changed seq",
                t.client_id
            );
            assert_eq!(
                log.get(seq),
                Some(&("new-message".to_string(), id.to_string()))
            );
        }
        let deleted = m["isDeleted"] == true;
        if let Some(seq) = t.delete_acked {
            assert!(
                deleted,
                "cycle {cycle}: acknowledged deletion of {} lost",
                t.client_id
            );
            assert_eq!(
                log.get(&seq),
                Some(&("message-deleted".to_string(), id.to_string()))
            );
        }
        if deleted {
            assert!(
                t.delete_attempted,
                "cycle {cycle}: {} deleted by nobody",
                t.client_id
            );
            assert_eq!(m["message"], "", "a tombstone keeps no text");
            continue;
        }
        let text = m["message"].as_str().unwrap();
        let allowed: Vec<&str> = match t.last_acked_edit {
            Some((i, seq)) => {
                assert_eq!(
                    log.get(&seq),
                    Some(&("message-edited".to_string(), id.to_string()))
                );
                t.edits[i..].iter().map(String::as_str).collect()
            }
            None => std::iter::once(t.original.as_str())
                .chain(t.edits.iter().map(String::as_str))
                .collect(),
        };
        assert!(
            allowed.contains(&text),
            "cycle {cycle}: {} reads {text:?}, acknowledged state allows {allowed:?}",
            t.client_id
        );
    }
    let known: HashSet<&str> = ledger.tracks.keys().map(String::as_str).collect();
    for cid in by_cid.keys() {
        assert!(
            known.contains(cid.as_str()),
            "cycle {cycle}: {cid} was never sent"
        );
    }
    for (reader, id) in &ledger.receipts {
        let m = by_id
            .get(id)
            .unwrap_or_else(|| panic!("cycle {cycle}: read message {id} lost"));
        let read_by = m["readBy"].as_array().unwrap();
        assert!(
            read_by.iter().any(|r| r["userId"] == reader.as_str()),
            "cycle {cycle}: acknowledged receipt of {reader} on {id} lost: {m}"
        );
    }
    upto
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_sigkill() {
    let cycles = if long_tests() { 24 } else { 5 };
    let seed = std::env::var("CHAT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now() ^ u64::from(std::process::id()));
    eprintln!("crash test: {cycles} cycles, CHAT_CRASH_SEED={seed}");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("chat-host.log");
    let admin = token("admin", "admin", "admin");
    let ledger: Shared = Arc::default();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut rng = Rng::new(seed);
    let mut last_seq = 0;
    let started = Instant::now();
    {
        let host = HostProcess::start(&data, &log, ENV).unwrap();
        provision(host.addr, &admin).await;
    }
    for cycle in 0..cycles {
        let t0 = Instant::now();
        let mut host = HostProcess::start(&data, &log, ENV).unwrap();
        let t1 = Instant::now();
        let snapshot = ledger.lock().clone();
        let seq = verify(host.addr, &admin, &snapshot, cycle).await;
        eprintln!(
            "cycle {cycle}: restart {:?}, verify {:?} (seq {seq})",
            t1 - t0,
            t1.elapsed()
        );
        assert!(
            seq >= last_seq,
            "cycle {cycle}: seqs went back from {last_seq} to {seq}"
        );
        last_seq = seq;
        let tasks: Vec<_> = (0..SENDERS)
            .map(|i| {
                tokio::spawn(sender(
                    host.addr,
                    user(i),
                    ledger.clone(),
                    rng.next(),
                    cycle,
                    counter.clone(),
                ))
            })
            .collect();
        // Kill at a random point of the load: early (mid-retry), or well into it.
        let wait = 100 + rng.below(1200);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        for t in &tasks {
            assert!(
                !t.is_finished(),
                "cycle {cycle}: a sender stopped before the kill"
            );
        }
        host.kill9();
        for t in tasks {
            t.await.expect("sender panicked");
        }
    }
    let host = HostProcess::start(&data, &log, ENV).unwrap();
    let snapshot = ledger.lock().clone();
    let seq = verify(host.addr, &admin, &snapshot, cycles).await;
    let l = ledger.lock();
    let sends = l.tracks.values().filter(|t| t.acked.is_some()).count();
    let edits = l
        .tracks
        .values()
        .filter(|t| t.last_acked_edit.is_some())
        .count();
    let deletes = l
        .tracks
        .values()
        .filter(|t| t.delete_acked.is_some())
        .count();
    eprintln!(
        "crash test: {cycles} SIGKILL cycles in {:.1}s, seed {seed}: {} acknowledged operations \
         ({sends} messages, {edits} edited, {deletes} deleted, {} receipts), {} attempted sends, \
         {} in-flight operations cut by the kill, final seq {seq}",
        started.elapsed().as_secs_f64(),
        l.ops_acked,
        l.receipts.len(),
        l.tracks.len(),
        l.ops_failed,
    );
    assert!(sends > 0 && l.ops_acked > 10, "the load did nothing");
}

// ---- store faults ----------------------------------------------------------------------------

/// Starts the host, sends `n` messages, stops it gracefully; returns the data folder.
async fn populated(tmp: &Path, n: usize) -> std::path::PathBuf {
    let data = tmp.join("data");
    let log = tmp.join("host.log");
    let admin = token("admin", "admin", "admin");
    let mut host = HostProcess::start(&data, &log, ENV).unwrap();
    provision(host.addr, &admin).await;
    for i in 0..n {
        let r = try_request(
            host.addr,
            "POST",
            "/api/v1/chat/send",
            Some(&admin),
            Some(json_body(
                &json!({"courseId": COURSE, "message": format!("m{i}")}),
            )),
            REQ_TIMEOUT,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 201);
    }
    assert_eq!(
        host.terminate(Duration::from_secs(20)),
        Some(0),
        "graceful stop exits 0"
    );
    data
}

fn assert_refused(data: &Path, what: &str) {
    let (code, out) = start_expecting_failure(data);
    assert!(
        code.is_some_and(|c| c != 0),
        "{what}: the host must refuse to start, got exit {code:?}: {out}"
    );
    assert!(
        out.to_lowercase().contains("corrupt") || out.contains("not a chat store"),
        "{what}: the error must say what is wrong: {out}"
    );
    eprintln!("{what}: refused with exit {code:?}: {}", out.trim());
}

/// Either a clear refusal, or the data that was there: never an empty chat.
async fn refused_or_intact(data: &Path, what: &str, expected: usize) {
    let (code, out) = {
        let log = data.parent().unwrap().join("after.log");
        match HostProcess::start(data, &log, ENV) {
            Err(e) => (None::<i32>, e),
            Ok(host) => {
                let admin = token("admin", "admin", "admin");
                let r = try_request(
                    host.addr,
                    "GET",
                    &format!("/api/v1/chat/course/{COURSE}?limit=1"),
                    Some(&admin),
                    None,
                    REQ_TIMEOUT,
                )
                .await
                .unwrap();
                assert_eq!(r.status, 200, "{what}: {:?}", r.body);
                let total = r.data()["pagination"]["total"].as_u64().unwrap();
                assert_eq!(total as usize, expected, "{what}: served a different chat");
                eprintln!("{what}: recovered all {total} messages");
                return;
            }
        }
    };
    assert!(
        out.to_lowercase().contains("corrupt") || out.contains("not a chat store"),
        "{what}: unclear refusal {code:?}: {out}"
    );
    eprintln!(
        "{what}: refused: {}",
        out.lines().last().unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_stores_are_refused_never_served_empty() {
    // Garbage where sled's files are.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("store")).unwrap();
    std::fs::write(data.join("store/conf"), b"garbage").unwrap();
    std::fs::write(data.join("store/db"), vec![0x5a; 8192]).unwrap();
    assert_refused(&data, "garbage sled files");

    // A sled database that is not ours.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    {
        let db = sled::open(data.join("store")).unwrap();
        db.insert(b"x", b"y").unwrap();
        db.flush().unwrap();
    }
    assert_refused(&data, "foreign sled database");

    // Our store, its main file truncated to nothing.
    let tmp = tempfile::tempdir().unwrap();
    let data = populated(tmp.path(), 30).await;
    std::fs::OpenOptions::new()
        .write(true)
        .open(data.join("store/db"))
        .unwrap()
        .set_len(0)
        .unwrap();
    refused_or_intact(&data, "store/db truncated to 0 bytes", 30).await;

    // Our store, its main file truncated to a third.
    let tmp = tempfile::tempdir().unwrap();
    let data = populated(tmp.path(), 30).await;
    let db = data.join("store/db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    refused_or_intact(&data, "store/db truncated to a third", 30).await;

    // Our store with sled's files gone but its log left: not a fresh, empty chat.
    let tmp = tempfile::tempdir().unwrap();
    let data = populated(tmp.path(), 30).await;
    for entry in std::fs::read_dir(data.join("store")).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap() != "wal" {
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }
    assert_refused(&data, "sled files deleted, log kept");

    // A damaged (not torn at the tail) write-ahead log segment.
    let tmp = tempfile::tempdir().unwrap();
    let data = populated(tmp.path(), 5).await;
    let wal = data.join("store/wal");
    std::fs::write(wal.join("wal-00000000000000000001.log"), vec![0xee; 64]).unwrap();
    std::fs::write(wal.join("wal-99999999999999999998.log"), b"").unwrap();
    assert_refused(&data, "damaged log segment");
}
