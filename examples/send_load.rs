//! Durable sends in-process, as fast as the engine takes them: the load `bench/profile sends-*`
//! records with perf, and a quick way to see sends/s without criterion's sampling.
//!
//! ```sh
//! cargo run --release -p chat-core --example send_load -- sled 64 10
//! cargo run --release -p chat-core --features postgres --example send_load -- postgres 64 10 64
//! ```
//!
//! Arguments (all optional, in order): the store (`sled`, on disk in a temporary folder, every
//! send fsync'd before it returns; `memory`; or `postgres`, a fresh schema in the database of
//! `CHAT_BENCH_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`, every send a
//! committed transaction — needs the `postgres` feature), concurrent senders (64), seconds (10),
//! and courses the senders are spread over (1). Prints sends/s and the process's CPU time per
//! send (the database server's CPU is not included).

use std::time::{Duration, Instant};

use chat_core::{Actor, Config, CourseUpdate, Engine, Role, SendMessage};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let store = args.first().map_or("sled", String::as_str).to_string();
    let senders: usize = args.get(1).map_or(Ok(64), |s| s.parse())?;
    let seconds: u64 = args.get(2).map_or(Ok(10), |s| s.parse())?;
    let courses: usize = args.get(3).map_or(Ok(1), |s| s.parse())?;
    if !matches!(store.as_str(), "sled" | "memory" | "postgres") || senders == 0 || courses == 0 {
        return Err(
            "usage: send_load [sled|memory|postgres] [senders > 0] [seconds] [courses > 0]".into(),
        );
    }
    let dir = tempfile::tempdir()?;
    let builder = Engine::builder().config(Config {
        rate_limit_burst: u32::MAX / 2,
        ..Config::default()
    });
    let engine = match store.as_str() {
        "sled" => builder.data_dir(dir.path()).open().await?,
        "postgres" => builder.store(postgres_store().await?).open().await?,
        _ => builder.open().await?,
    };
    let admin = Actor::system();
    for c in 0..courses {
        engine
            .put_course(&admin, &format!("load{c}"), CourseUpdate::default())
            .await?;
    }
    let mut users = Vec::new();
    for i in 0..senders {
        let id = format!("u{i}");
        let course = format!("load{}", i % courses);
        engine.enroll(&admin, &course, &id, Role::Student).await?;
        users.push((Actor::new(id.clone(), id, Role::Student), course));
    }
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = users
        .into_iter()
        .map(|(user, course)| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut sent = 0u64;
                while Instant::now() < deadline {
                    let req = SendMessage {
                        course_id: course.clone(),
                        message: format!("message {sent} from {} with some typical text", user.id),
                        ..Default::default()
                    };
                    engine.send(&user, req).await?;
                    sent += 1;
                }
                Ok::<u64, chat_core::Error>(sent)
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    println!(
        "{store}, {senders} senders in {courses} course(s): {total} sends in {elapsed:.1} s = {:.0} sends/s{}",
        total as f64 / elapsed,
        cpu.map(|c| format!(
            ", {:.1} µs of CPU per send ({c:.1} s)",
            c * 1e6 / total.max(1) as f64
        ))
        .unwrap_or_default()
    );
    engine.close().await?;
    Ok(())
}

#[cfg(feature = "postgres")]
async fn postgres_store() -> Result<std::sync::Arc<dyn chat_core::Store>, Box<dyn std::error::Error>>
{
    let url = std::env::var("CHAT_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let schema = format!("send_load_{}", std::process::id());
    let store = chat_core::store::postgres::PgStore::builder(&url)
        .schema(&schema)
        .max_connections(32)
        .connect()
        .await?;
    eprintln!("send_load: PostgreSQL schema {schema} in {url} (drop it when done)");
    Ok(std::sync::Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
async fn postgres_store() -> Result<std::sync::Arc<dyn chat_core::Store>, Box<dyn std::error::Error>>
{
    Err("postgres needs the feature: cargo run --features postgres --example send_load".into())
}

/// User + system CPU seconds of this process so far (Linux), from /proc/self/stat.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th,
    // in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
