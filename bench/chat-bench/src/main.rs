//! `chat-bench`: a load generator for chat-host and for the Socket.IO reference peers (Node.js
//! socket.io, Rust socketioxide).
//!
//! `chat-bench run` provisions M courses of N participants through the admin REST routes, opens one
//! WebSocket per participant (native `/ws` frames or Socket.IO v4), joins every client to its
//! course, then has a few senders per course send at an aggregate rate (or as fast as their acks
//! allow, `--rate 0`). Each message carries its send time (`BENCH<ns>.` at the start of the text),
//! so every receiving client measures send→deliver latency into an HdrHistogram. After a warm-up,
//! one measured window; the result is one JSON object on stdout (and a human line on stderr), with
//! the server's RSS (from `/proc/<pid>/status`) before and after the clients connected.
//! `--idle` connects and joins, sends nothing, waits, and reports RSS per connection.
//! `chat-bench report` turns the JSON files of the servers (chat-host and the peers) into
//! `bench/RESULTS.md`.
//!
//! Loopback only: the target and every `--bind` address must be loopback addresses.

#![recursion_limit = "256"]

mod clients;
mod native;
mod probe;
mod provision;
mod report;
mod socketio;
mod ws;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use fastwebsockets::{Frame, OpCode};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Semaphore};

use clients::*;
use probe::*;

#[derive(Parser)]
#[command(
    name = "chat-bench",
    version,
    about = "Load generator for chat-host and its Socket.IO peer"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one load (or idle) scenario against a running server and print a JSON result.
    Run(RunArgs),
    /// Write the comparison table from result folders.
    Report(report::ReportArgs),
}

/// Which wire protocol the clients speak.
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Proto {
    /// chat-host's `/ws` JSON frames.
    Native,
    /// Engine.IO v4 / Socket.IO v4 over WebSocket at `/socket.io/`.
    Socketio,
}

#[derive(Parser, Clone)]
struct RunArgs {
    /// Server address (loopback only); several, comma-separated, spread the clients over the
    /// nodes of one deployment round robin (provisioning goes to the first).
    #[arg(long, default_value = "127.0.0.1:8080", value_delimiter = ',')]
    addr: Vec<String>,
    /// Wire protocol.
    #[arg(long, value_enum, default_value = "native")]
    proto: Proto,
    /// HS256 secret the server checks tokens with.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    secret: String,
    /// Name of the scenario in the result.
    #[arg(long, default_value = "bench")]
    label: String,
    /// Prefix of course and user ids (make it unique per run against one server).
    #[arg(long, default_value = "b")]
    prefix: String,
    /// Number of courses.
    #[arg(long, default_value_t = 1)]
    courses: usize,
    /// Clients (distinct users) per course.
    #[arg(long, default_value_t = 10)]
    clients_per_course: usize,
    /// Senders per course (the first clients of each course); they receive too.
    #[arg(long, default_value_t = 1)]
    senders_per_course: usize,
    /// Aggregate sends per second over all senders; 0 = closed loop (`--window` sends in flight
    /// per sender, the next one on each ack).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Sends in flight per sender in closed loop.
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// Length of message texts, in bytes.
    #[arg(long, default_value_t = 64)]
    message_bytes: usize,
    /// Seconds of sending before the measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured (idle: seconds held before the RSS reading).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Connect and join only; send nothing; report RSS per connection.
    #[arg(long)]
    idle: bool,
    /// Server process ids (comma-separated, one per node), for their CPU and RSS (summed).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Skip provisioning (the server creates courses on join, or they exist).
    #[arg(long)]
    no_provision: bool,
    /// Concurrent REST connections for provisioning.
    #[arg(long, default_value_t = 16)]
    provision_concurrency: usize,
    /// Concurrent connection attempts.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Joins in flight at once (each waits for its ack).
    #[arg(long, default_value_t = 16)]
    join_concurrency: usize,
    /// Local addresses to connect from, round robin (loopback only, e.g. 127.0.0.2), when one
    /// address' ephemeral ports are not enough.
    #[arg(long, value_delimiter = ',')]
    bind: Vec<IpAddr>,
    /// Write the JSON result to this file too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Exit with status 3 when errors exceed this count, or when a load run delivers nothing.
    #[arg(long)]
    max_errors: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Report(a) => match report::write(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chat-bench report: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Run(a) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let code = rt.block_on(run(a));
            rt.shutdown_timeout(Duration::from_millis(100));
            code
        }
    }
}

async fn run(a: RunArgs) -> ExitCode {
    match run_inner(a).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chat-bench: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run_inner(a: RunArgs) -> Result<ExitCode, String> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for given in &a.addr {
        let addr = given
            .to_socket_addrs()
            .map_err(|e| format!("bad --addr {given}: {e}"))?
            .next()
            .ok_or("no address")?;
        addrs.push(addr);
    }
    let addr = *addrs.first().ok_or("no --addr")?;
    if addrs.iter().any(|a| !a.ip().is_loopback()) || a.bind.iter().any(|ip| !ip.is_loopback()) {
        return Err("only loopback addresses may be targeted or bound".into());
    }
    let total = a.courses * a.clients_per_course;
    if total == 0 {
        return Err("no clients".into());
    }
    let shared = Arc::new(Shared::new(a.proto, a.courses, a.clients_per_course));
    let course_of = |i: usize| format!("{}-c{}", a.prefix, i / a.clients_per_course);
    let user_of = |i: usize| format!("{}-u{i}", a.prefix);
    let t0 = Instant::now();

    // Provisioning.
    if !a.no_provision {
        let admin = token(&a.secret, &format!("{}-admin", a.prefix), "admin");
        let mut puts: Vec<provision::Put> = (0..a.courses)
            .map(|c| provision::Put {
                path: format!("/api/v1/chat/courses/{}-c{c}", a.prefix),
                body: format!(r#"{{"name":"Bench course {c}","chatEnabled":true}}"#),
            })
            .collect();
        provision::run(
            addr,
            &admin,
            std::mem::take(&mut puts),
            a.provision_concurrency,
        )
        .await?;
        let parts = (0..total)
            .map(|i| provision::Put {
                path: format!(
                    "/api/v1/chat/courses/{}/participants/{}",
                    course_of(i),
                    user_of(i)
                ),
                body: r#"{"role":"student"}"#.into(),
            })
            .collect();
        provision::run(addr, &admin, parts, a.provision_concurrency).await?;
    }
    let provision_s = t0.elapsed().as_secs_f64();
    let tokens: Vec<String> = (0..total)
        .map(|i| token(&a.secret, &user_of(i), "student"))
        .collect();

    // Connections.
    let rss_before = rss_kib(&a.server_pid);
    let t1 = Instant::now();
    let gate = Arc::new(Semaphore::new(a.connect_concurrency.max(1)));
    let mut opening = Vec::with_capacity(total);
    for (i, tok) in tokens.into_iter().enumerate() {
        let gate = gate.clone();
        let bind = (!a.bind.is_empty()).then(|| a.bind[i % a.bind.len()]);
        let proto = a.proto;
        let node = addrs[i % addrs.len()];
        opening.push(tokio::spawn(async move {
            let _p = gate.acquire_owned().await;
            open_client(proto, node, bind, &tok).await
        }));
    }
    let mut joins = Vec::with_capacity(total);
    let mut senders = Vec::new();
    let mut connect_errors = 0u64;
    let mut first_error = None;
    let closed_loop = a.rate <= 0.0;
    for (i, h) in opening.into_iter().enumerate() {
        match h.await.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok((rd, wr)) => {
                let (tx, rx) = oneshot::channel();
                let is_sender = !a.idle && i % a.clients_per_course < a.senders_per_course;
                let permits =
                    (is_sender && closed_loop).then(|| Arc::new(Semaphore::new(a.window.max(1))));
                if is_sender {
                    senders.push(Sender {
                        idx: i,
                        user: user_of(i),
                        course: course_of(i),
                        writer: wr.clone(),
                        permits: permits.clone(),
                    });
                }
                let ctx = ClientCtx {
                    idx: i,
                    shared: shared.clone(),
                    writer: wr.clone(),
                    join: Some(tx),
                    permits,
                };
                tokio::spawn(reader(rd, ctx));
                joins.push((i, wr, rx));
            }
            Err(e) => {
                connect_errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let connect_s = t1.elapsed().as_secs_f64();
    if let Some(e) = &first_error {
        eprintln!("chat-bench: {connect_errors} connections failed; first: {e}");
    }
    let rss_connected = rss_kib(&a.server_pid);

    // Joins, `join_concurrency` in flight.
    let t2 = Instant::now();
    let gate = Arc::new(Semaphore::new(a.join_concurrency.max(1)));
    let mut joining = Vec::with_capacity(joins.len());
    for (i, wr, rx) in joins {
        let gate = gate.clone();
        let data = format!(r#"{{"courseId":"{}"}}"#, course_of(i));
        let frame = emit(a.proto, "join-course", &data, Some(JOIN_ACK));
        joining.push(tokio::spawn(async move {
            let _p = gate.acquire_owned().await;
            ws::send_text(&wr, frame).await.map_err(|e| e.to_string())?;
            tokio::time::timeout(Duration::from_secs(60), rx)
                .await
                .map_err(|_| "join timed out".to_string())?
                .map_err(|_| "join dropped".to_string())?
        }));
    }
    let mut join_errors = 0u64;
    for h in joining {
        if let Err(e) = h.await.map_err(|e| e.to_string()).and_then(|r| r) {
            join_errors += 1;
            if join_errors <= 3 {
                eprintln!("chat-bench: join failed: {e}");
            }
        }
    }
    let join_s = t2.elapsed().as_secs_f64();
    let connected = total as u64 - connect_errors;
    // A progress line (bench/profile starts recording after it and the warm-up).
    eprintln!(
        "chat-bench: {} of {total} clients joined in {join_s:.1} s; load starts",
        connected.saturating_sub(join_errors)
    );

    // Load (or idle hold).
    let mut expected = 0u64;
    let mut sender_count = 0usize;
    let mut cpu_window: (Option<f64>, Option<f64>) = (None, None);
    if a.idle {
        tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    } else {
        sender_count = senders.len();
        let now = tokio::time::Instant::now();
        let start = now + Duration::from_millis(200);
        let wstart = start + Duration::from_secs_f64(a.warmup);
        let stop = wstart + Duration::from_secs_f64(a.duration);
        let to_ns = |t: tokio::time::Instant| shared.now_ns() + (t - now).as_nanos() as u64;
        shared.window_start.store(to_ns(wstart), Relaxed);
        shared.window_end.store(to_ns(stop), Relaxed);
        let period = (!closed_loop && sender_count > 0)
            .then(|| Duration::from_secs_f64(sender_count as f64 / a.rate));
        let pad = Arc::new("x".repeat(a.message_bytes.saturating_sub(30)));
        let mut tasks = Vec::new();
        for (k, s) in senders.into_iter().enumerate() {
            // Spread the senders over one period.
            let offset = period
                .map(|p| p.mul_f64(k as f64 / sender_count as f64))
                .unwrap_or_default();
            tasks.push(tokio::spawn(send_loop(
                shared.clone(),
                s,
                period,
                start + offset,
                stop,
                pad.clone(),
            )));
        }
        // CPU seconds of the server and of this generator over the measured window.
        let pids = a.server_pid.clone();
        let cpu = tokio::spawn(async move {
            tokio::time::sleep_until(wstart).await;
            let (s0, g0) = (servers_cpu_secs(&pids), cpu_secs(None));
            tokio::time::sleep_until(stop).await;
            let (s1, g1) = (servers_cpu_secs(&pids), cpu_secs(None));
            (
                s0.zip(s1).map(|(a, b)| b - a),
                g0.zip(g1).map(|(a, b)| b - a),
            )
        });
        for t in tasks {
            let _ = t.await;
        }
        if let Ok(c) = cpu.await {
            cpu_window = c;
        }
        // Drain: wait for the deliveries of the window's sends (at most 5 s).
        let drain_until = Instant::now() + Duration::from_secs(5);
        loop {
            expected = shared.acked_window.load(Relaxed) * a.clients_per_course as u64;
            let got = shared.deliveries_of_window_sends.load(Relaxed);
            if got >= expected
                && shared.acked_window.load(Relaxed) + shared.ack_err.load(Relaxed)
                    >= shared.sent_window.load(Relaxed)
            {
                break;
            }
            if Instant::now() >= drain_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let rss_end = rss_kib(&a.server_pid);
    shared.closing.store(true, Relaxed);
    report_missing(&shared);

    let lat = Shared::merged(&shared.latency);
    let ack = Shared::merged(&shared.ack_latency);
    let s = &shared;
    let deliveries_window = s.deliveries_window.load(Relaxed);
    let delivered = s.deliveries_of_window_sends.load(Relaxed);
    let errors = connect_errors
        + join_errors
        + s.ack_err.load(Relaxed)
        + s.error_events.load(Relaxed)
        + s.disconnects.load(Relaxed)
        + s.send_failures.load(Relaxed)
        + expected.saturating_sub(delivered);
    let per_conn = match (rss_before, if a.idle { rss_end } else { rss_connected }) {
        (Some(b), Some(c)) if connected > 0 => Some((c.saturating_sub(b) * 1024) / connected),
        _ => None,
    };
    let per_conn_joined = match (rss_before, rss_end) {
        (Some(b), Some(c)) if connected > 0 => Some((c.saturating_sub(b) * 1024) / connected),
        _ => None,
    };
    let result = json!({
        "label": a.label,
        "proto": format!("{:?}", a.proto).to_lowercase(),
        "addr": addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        "nodes": addrs.len(),
        "mode": if a.idle { "idle" } else if closed_loop { "closed-loop" } else { "rate" },
        "courses": a.courses,
        "clients_per_course": a.clients_per_course,
        "clients": total,
        "connected": connected,
        "senders": sender_count,
        "rate_target": a.rate,
        "window": a.window,
        "message_bytes": a.message_bytes,
        "warmup_s": a.warmup,
        "duration_s": a.duration,
        "provision_s": provision_s,
        "connect_s": connect_s,
        "join_s": join_s,
        "sent": s.sent.load(Relaxed),
        "sent_window": s.sent_window.load(Relaxed),
        "acked_window": s.acked_window.load(Relaxed),
        "sends_per_s": s.acked_window.load(Relaxed) as f64 / a.duration,
        "ack_errors": s.ack_err.load(Relaxed),
        "deliveries": s.deliveries.load(Relaxed),
        "deliveries_window": deliveries_window,
        "deliveries_per_s": if a.idle { 0.0 } else { deliveries_window as f64 / a.duration },
        "expected_deliveries": expected,
        "delivered_of_window_sends": delivered,
        "missing_deliveries": expected.saturating_sub(delivered),
        "latency_us": {
            "p50": percentile(&lat, 0.5), "p99": percentile(&lat, 0.99),
            "p999": percentile(&lat, 0.999), "max": if lat.is_empty() { Value::Null } else { json!(lat.max()) },
            "mean": if lat.is_empty() { Value::Null } else { json!(lat.mean()) }, "count": lat.len(),
        },
        "ack_latency_us": {
            "p50": percentile(&ack, 0.5), "p99": percentile(&ack, 0.99), "p999": percentile(&ack, 0.999),
        },
        "connect_errors": connect_errors,
        "join_errors": join_errors,
        "error_events": s.error_events.load(Relaxed),
        "disconnects": s.disconnects.load(Relaxed),
        "send_failures": s.send_failures.load(Relaxed),
        "errors": errors,
        "server_pid": a.server_pid,
        "server_cpu_s": cpu_window.0,
        "generator_cpu_s": cpu_window.1,
        "rss_kib": {"before": rss_before, "connected": rss_connected, "end": rss_end, "peak": servers_kib(&a.server_pid, "VmHWM:")},
        "rss_per_conn_bytes": per_conn,
        "rss_per_conn_joined_bytes": per_conn_joined,
    });
    let text = serde_json::to_string(&result).unwrap_or_default();
    println!("{text}");
    if let Some(path) = &a.json {
        std::fs::write(path, format!("{text}\n"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let us = |v: &Value| {
        v.as_u64()
            .map(|x| format!("{:.2}ms", x as f64 / 1000.0))
            .unwrap_or("-".into())
    };
    if a.idle {
        eprintln!(
            "[{}] {} idle {:?} connections ({} failed) in {:.1}s + joins {:.1}s; server RSS {:?} -> {:?} KiB = {} B/conn; errors {}",
            a.label, connected, a.proto, connect_errors, connect_s, join_s, rss_before, rss_end,
            per_conn.map(|x| x.to_string()).unwrap_or("-".into()), errors
        );
    } else {
        eprintln!(
            "[{}] {:?} {}x{} senders={} rate={}: {:.0} deliveries/s, {:.0} sends/s; latency p50 {} p99 {} p999 {}; ack p99 {}; missing {}; errors {}; joins {:.1}s; CPU in window: server {:?} s, generator {:?} s",
            a.label, a.proto, a.courses, a.clients_per_course, sender_count, a.rate,
            deliveries_window as f64 / a.duration, s.acked_window.load(Relaxed) as f64 / a.duration,
            us(&result["latency_us"]["p50"]), us(&result["latency_us"]["p99"]), us(&result["latency_us"]["p999"]),
            us(&result["ack_latency_us"]["p99"]), expected.saturating_sub(delivered), errors,
            join_s, cpu_window.0, cpu_window.1
        );
    }
    if let Some(max) = a.max_errors {
        if errors > max {
            eprintln!("chat-bench: {errors} errors > --max-errors {max}");
            return Ok(ExitCode::from(3));
        }
        if !a.idle && deliveries_window == 0 {
            eprintln!("chat-bench: no deliveries");
            return Ok(ExitCode::from(3));
        }
        if connected == 0 {
            eprintln!("chat-bench: no connection");
            return Ok(ExitCode::from(3));
        }
    }
    Ok(ExitCode::SUCCESS)
}
