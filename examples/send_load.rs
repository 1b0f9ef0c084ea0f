//! Durable sends in-process, as fast as the engine takes them: the load `bench/profile sends-*`
//! records with perf, and a quick way to see sends/s without criterion's sampling.
//!
//! ```sh
//! cargo run --release -p chat-core --example send_load -- sled 64 10
//! ```
//!
//! Arguments (all optional, in order): the store (`sled`, on disk in a temporary folder, every
//! send fsync'd before it returns; or `memory`), concurrent senders (64) in one course, and
//! seconds (10). Prints sends/s and the process's CPU time per send.

use std::time::{Duration, Instant};

use chat_core::{Actor, Config, CourseUpdate, Engine, Role, SendMessage};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let store = args.first().map_or("sled", String::as_str).to_string();
    let senders: usize = args.get(1).map_or(Ok(64), |s| s.parse())?;
    let seconds: u64 = args.get(2).map_or(Ok(10), |s| s.parse())?;
    if !matches!(store.as_str(), "sled" | "memory") || senders == 0 {
        return Err("usage: send_load [sled|memory] [senders > 0] [seconds]".into());
    }
    let dir = tempfile::tempdir()?;
    let builder = Engine::builder().config(Config {
        rate_limit_burst: u32::MAX / 2,
        ..Config::default()
    });
    let engine = match store.as_str() {
        "sled" => builder.data_dir(dir.path()).open().await?,
        _ => builder.open().await?,
    };
    let admin = Actor::system();
    engine
        .put_course(&admin, "load", CourseUpdate::default())
        .await?;
    let mut users = Vec::new();
    for i in 0..senders {
        let id = format!("u{i}");
        engine.enroll(&admin, "load", &id, Role::Student).await?;
        users.push(Actor::new(id.clone(), id, Role::Student));
    }
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = users
        .into_iter()
        .map(|user| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut sent = 0u64;
                while Instant::now() < deadline {
                    let req = SendMessage {
                        course_id: "load".into(),
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
        "{store}, {senders} senders: {total} sends in {elapsed:.1} s = {:.0} sends/s{}",
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
