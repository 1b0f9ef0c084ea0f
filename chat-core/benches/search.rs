//! Full-text search latency over a large course: `cargo bench -p chat-core --bench search`.
//!
//! Stores `CHAT_SEARCH_BENCH_MESSAGES` messages (default 1,000,000) of 12 words each, drawn with
//! a Zipf-like law from a 20,000-word vocabulary, in one course of an in-memory store; opens an
//! engine on it with its index in a temporary folder; times the first search (which builds the
//! index from the change log), then 2,000 searches of one and two words of every frequency
//! through `Engine::search` (access check, index catch-up, ranking, reading the hits from the
//! store, readBy, snippets), and prints p50 / p95 / p99 / max. The target is p99 < 20 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_core::store::conformance::message;
use chat_core::store::memory::MemoryStore;
use chat_core::store::{CourseRecord, Store};
use chat_core::{Actor, Engine};

const VOCABULARY: u64 = 20_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A word rank, frequent ones far more often (log-uniform, close to Zipf).
    fn rank(&mut self) -> u64 {
        ((VOCABULARY as f64).powf(self.unit()) as u64).clamp(1, VOCABULARY)
    }
}

/// A pronounceable word for a rank.
fn word(rank: u64) -> String {
    const SYL: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ba", "de", "fi", "go", "hu", "ja", "pe",
        "zo",
    ];
    let mut n = rank;
    let mut w = String::new();
    loop {
        w.push_str(SYL[(n % 16) as usize]);
        n /= 16;
        if n == 0 {
            break;
        }
    }
    w
}

fn main() {
    let n: u64 = std::env::var("CHAT_SEARCH_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let store = Arc::new(MemoryStore::open());
        store
            .put_course(&CourseRecord {
                id: "big".into(),
                name: "Big".into(),
                chat_enabled: true,
                archived: false,
            })
            .await
            .expect("course");
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let start = Instant::now();
        for i in 0..n {
            let text: Vec<String> = (0..12).map(|_| word(rng.rank())).collect();
            let sender = format!("u{}", i % 500);
            store
                .insert_message(message("big", &sender, &text.join(" "), None))
                .await
                .expect("insert");
        }
        println!("stored {n} messages in {:.1?}", start.elapsed());

        // The index alone, for comparison: the ranking without the engine around it.
        let index = Arc::new(chat_core::search::SearchIndex::open(None, "bench").expect("index"));
        index.catch_up(store.as_ref(), "big").await.expect("index");
        let mut raw: Vec<Duration> = Vec::new();
        let mut qrng = Rng(7);
        for i in 0..2_000 {
            let q = if i % 2 == 0 {
                word(qrng.rank())
            } else {
                format!("{} {}", word(qrng.rank()), word(qrng.rank()))
            };
            let t = Instant::now();
            let found = index.query("big", &q, 20, None).expect("query");
            std::hint::black_box(found.hits);
            raw.push(t.elapsed());
        }
        raw.sort();
        println!(
            "index only: p50 {:.2?}  p99 {:.2?}",
            raw[raw.len() / 2],
            raw[raw.len() * 99 / 100]
        );
        drop(index);

        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Engine::builder()
            .store(store)
            .search_dir(dir.path().join("search"))
            .open()
            .await
            .expect("engine");
        let admin = Actor::system();
        let start = Instant::now();
        engine
            .search(&admin, "big", &word(1), Some(20), None)
            .await
            .expect("first search");
        println!(
            "indexed {n} messages (first search) in {:.1?}",
            start.elapsed()
        );

        let mut times: Vec<Duration> = Vec::new();
        let mut hits = 0usize;
        for i in 0..2_000 {
            let q = if i % 2 == 0 {
                word(rng.rank())
            } else {
                format!("{} {}", word(rng.rank()), word(rng.rank()))
            };
            let t = Instant::now();
            let found = engine
                .search(&admin, "big", &q, Some(20), None)
                .await
                .expect("search");
            times.push(t.elapsed());
            hits += found.len();
        }
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        println!(
            "search over {n} messages, 2000 queries (1 and 2 words, limit 20, {:.1} hits avg): \
             p50 {:.2?}  p95 {:.2?}  p99 {:.2?}  max {:.2?}",
            hits as f64 / 2000.0,
            pct(0.50),
            pct(0.95),
            pct(0.99),
            times[times.len() - 1]
        );
        engine.close().await.expect("close");
    });
}
