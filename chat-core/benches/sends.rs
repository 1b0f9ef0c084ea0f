//! Engine benchmarks (criterion): durable sends per second on sled and in memory with 1, 8 and 64
//! concurrent senders, the raw sled ceiling for the same bytes (insert + flush, no engine) and
//! sled's cost of the nine keys one send writes, a history page deep in a large course, and a
//! resume of 1,000 events.
//!
//! `cargo bench -p chat-core` runs them all; `CHAT_BENCH_MESSAGES` sets how many messages the
//! history course holds (default 100,000; the issue's figure is for 1,000,000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_core::{Actor, Config, CourseUpdate, Engine, HistoryQuery, Role, SendMessage};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const CONCURRENCY: [usize; 3] = [1, 8, 64];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn config() -> Config {
    Config {
        rate_limit_burst: u32::MAX / 2,
        ..Config::default()
    }
}

async fn course_with_senders(engine: &Engine, senders: usize) -> Vec<Actor> {
    let admin = Actor::system();
    engine
        .put_course(&admin, "bench", CourseUpdate::default())
        .await
        .unwrap();
    let mut users = Vec::new();
    for i in 0..senders {
        let id = format!("u{i}");
        engine
            .enroll(&admin, "bench", &id, Role::Student)
            .await
            .unwrap();
        users.push(Actor::new(id.clone(), id, Role::Student));
    }
    users
}

/// Sends `total` messages from `senders` concurrent tasks; returns the elapsed time.
async fn send_burst(engine: &Engine, users: &[Actor], total: u64) -> Duration {
    let per = total.div_ceil(users.len() as u64);
    let start = Instant::now();
    let tasks: Vec<_> = users
        .iter()
        .cloned()
        .map(|u| {
            let engine = engine.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    let req = SendMessage {
                        course_id: "bench".into(),
                        message: format!("message {i} from {} with some typical length text", u.id),
                        ..Default::default()
                    };
                    engine.send(&u, req).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn durable_sends(c: &mut Criterion) {
    let rt = runtime();
    for (store, on_disk) in [("sled", true), ("memory", false)] {
        let mut group = c.benchmark_group(format!("send/{store}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(5));
        for senders in CONCURRENCY {
            group.throughput(Throughput::Elements(senders as u64));
            let dir = tempfile::tempdir().unwrap();
            let (engine, users) = rt.block_on(async {
                let b = Engine::builder().config(config());
                let b = if on_disk { b.data_dir(dir.path()) } else { b };
                let engine = b.open().await.unwrap();
                let users = course_with_senders(&engine, senders).await;
                (engine, users)
            });
            group.bench_with_input(BenchmarkId::from_parameter(senders), &senders, |b, &n| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (engine, users) = (engine.clone(), users.clone());
                    async move { send_burst(&engine, &users, iters * n as u64).await }
                })
            });
        }
        group.finish();
    }
}

fn raw_sled_ceiling(c: &mut Criterion) {
    let mut group = c.benchmark_group("raw-sled");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let value = vec![b'x'; 420]; // about a stored message's size
    let mut n = 0u64;
    for batch in CONCURRENCY {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(
            BenchmarkId::new("insert+flush", batch),
            &batch,
            |b, &batch| {
                b.iter(|| {
                    for _ in 0..batch {
                        n += 1;
                        db.insert(n.to_be_bytes(), value.as_slice()).unwrap();
                    }
                    db.flush().unwrap();
                })
            },
        );
    }
    // The keys one durable send writes on sled (sizes as stored: change log entry, message meta,
    // timeline both ways, read mark and its history, the course's head, the log's intent and
    // record number), as plain inserts without the engine or a flush: the floor of a send's cost.
    let entry = vec![b'x'; 480];
    let intent = vec![b'y'; 1_200];
    let mut seq = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("inserts-of-one-send", |b| {
        b.iter(|| {
            seq += 1;
            let s = seq.to_be_bytes();
            let id = format!("01JB{:022}", seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let k = |tag: &[u8], rest: &[u8]| [tag, b"\0bench\0", rest].concat();
            db.insert(b"\xffwal-intent", intent.as_slice()).unwrap();
            db.insert(k(b"l", &s), entry.as_slice()).unwrap();
            db.insert(
                k(b"m", id.as_bytes()),
                &b"{\"course\":\"bench\",\"history\":[1]}"[..],
            )
            .unwrap();
            db.insert(k(b"s", &s), &s[..]).unwrap();
            db.insert(k(b"t", &s), id.as_bytes()).unwrap();
            db.insert(
                k(b"w", b"u1"),
                &b"{\"userId\":\"u1\",\"seq\":1,\"at\":\"2026-11-24T00:00:00.000Z\"}"[..],
            )
            .unwrap();
            db.insert(
                k(b"r", &[b"u1\0".as_slice(), &s].concat()),
                &b"\"2026-11-24T00:00:00.000Z\""[..],
            )
            .unwrap();
            db.insert(k(b"h", b""), &b"{\"last_seq\":1,\"count\":1}"[..])
                .unwrap();
            db.insert(b"\xffwal-record", &s[..]).unwrap();
        })
    });
    group.finish();
}

fn history_and_resume(c: &mut Criterion) {
    let rt = runtime();
    let messages: u64 = std::env::var("CHAT_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let (engine, reader) = rt.block_on(async {
        let engine = Engine::builder()
            .config(config())
            .data_dir(dir.path())
            .open()
            .await
            .unwrap();
        let users = course_with_senders(&engine, 64).await;
        send_burst(&engine, &users, messages).await;
        (engine, users[0].clone())
    });
    let engine = Arc::new(engine);
    let mut group = c.benchmark_group("read");
    group.sample_size(20);
    group.bench_function(format!("history-page-50-of-{messages}"), |b| {
        b.to_async(&rt).iter(|| async {
            let q = HistoryQuery {
                page: Some(7),
                limit: Some(50),
                ..Default::default()
            };
            engine.history(&reader, "bench", q).await.unwrap()
        })
    });
    group.bench_function("history-before-deep", |b| {
        b.to_async(&rt).iter(|| async {
            let q = HistoryQuery {
                before: Some(messages / 2),
                limit: Some(50),
                ..Default::default()
            };
            engine.history(&reader, "bench", q).await.unwrap()
        })
    });
    group.throughput(Throughput::Elements(1000));
    group.bench_function("resume-1000-events", |b| {
        b.to_async(&rt).iter(|| async {
            let since = messages.saturating_sub(1000);
            let events = engine
                .changes_since(&reader, "bench", since, 1000)
                .await
                .unwrap();
            assert_eq!(events.len(), 1000.min(messages as usize));
        })
    });
    group.finish();
}

criterion_group!(benches, durable_sends, raw_sled_ceiling, history_and_resume);
criterion_main!(benches);
