//! `chat-bench report`: the comparison table of the servers' results, with the machine.
//!
//! Reads `<results>/chat-host/<label>.json` (durable, on sled), and where there are any
//! `<results>/chat-host-mem/<label>.json` (chat-host `--in-memory`, like for like with the peers),
//! the peers' `<results>/peer/<label>.json` (Node.js socket.io) and `<results>/sio-peer/<label>.json`
//! (Rust socketioxide) (one `chat-bench run` result each); writes a Markdown file with one row per
//! scenario and figure, a column per server, chat-host's ratio to each other server, and the
//! targets of the performance issue checked against the figures.
//!
//! The per-CPU figures are what the targets compare: the server's CPU time per delivery and its
//! deliveries per CPU-second, counted from the server process's own CPU time while measured.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Folder with `chat-host/`, `chat-host-mem/`, `peer/` and `sio-peer/` result files.
    #[arg(long)]
    results: PathBuf,
    /// Markdown file to write.
    #[arg(long)]
    out: PathBuf,
    /// Markdown inserted after the machine description (how the servers were run...).
    #[arg(long)]
    notes: Option<PathBuf>,
    /// Closed-loop scenario whose deliveries per server-CPU-second are compared with the peers'.
    #[arg(long, default_value = "100x20-max")]
    throughput_label: String,
    /// Scenario whose p99 must be under 10 ms, and whose deliveries per server-CPU-second are
    /// compared too (a large room).
    #[arg(long, default_value = "1x1000-100")]
    latency_label: String,
    /// Scenario whose RSS per connection must be at most 8 KiB.
    #[arg(long, default_value = "idle-10000")]
    idle_label: String,
    /// Title line.
    #[arg(long, default_value = "Benchmark results")]
    title: String,
}

fn load(dir: &Path) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let Some(label) = p.file_stem().and_then(|s| s.to_str()).map(String::from) else {
                continue;
            };
            if let Ok(v) = std::fs::read_to_string(&p)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
            {
                out.push((label, v));
            }
        }
    }
    out
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({model}), {:.1} GiB memory, Linux {}",
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_f64()
}

fn ms(x: Option<f64>) -> String {
    x.map(|v| format!("{:.2} ms", v / 1000.0))
        .unwrap_or("–".into())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}×", a / b),
        (Some(a), Some(b)) if a == 0.0 && b == 0.0 => "=".into(),
        _ => "–".into(),
    }
}

/// The servers a results folder can hold, by folder, with their column heading.
const SERVERS: [(&str, &str); 4] = [
    ("chat-host", "chat-host"),
    ("chat-host-mem", "chat-host --in-memory"),
    ("peer", "peer (Node.js socket.io)"),
    ("sio-peer", "sio-peer (Rust socketioxide)"),
];

/// One server's results: (scenario label, `chat-bench run` JSON).
type Results = Vec<(String, Value)>;

/// One figure's row: its name, the value of each server, and how a value is shown.
struct Row {
    name: &'static str,
    values: Vec<Option<f64>>,
    show: fn(f64) -> String,
}

fn show_count(v: f64) -> String {
    format!("{v:.0}")
}
fn show_ms(v: f64) -> String {
    format!("{:.2} ms", v / 1000.0)
}
fn show_us(v: f64) -> String {
    format!("{v:.1} µs")
}
fn show_cores(v: f64) -> String {
    format!("{v:.2} cores")
}
fn show_secs(v: f64) -> String {
    format!("{v:.1} s")
}
fn show_kib(v: f64) -> String {
    format!("{:.1} KiB", v / 1024.0)
}
fn show_mib(v: f64) -> String {
    format!("{:.0} MiB", v / 1024.0)
}

/// The server's CPU seconds per delivery while measured.
fn cpu_per_delivery_s(v: &Value) -> Option<f64> {
    let deliveries = num(v, &["deliveries_per_s"])? * num(v, &["duration_s"])?;
    let cpu = num(v, &["server_cpu_s"])?;
    (deliveries > 0.0 && cpu > 0.0).then(|| cpu / deliveries)
}

/// The rows of one scenario; `results` has one entry per server shown.
fn rows(results: &[Option<Value>], idle: bool) -> Vec<Row> {
    let each = |f: &dyn Fn(&Value) -> Option<f64>| -> Vec<Option<f64>> {
        results.iter().map(|v| v.as_ref().and_then(f)).collect()
    };
    let at = |path: &'static [&'static str]| each(&|v: &Value| num(v, path));
    let mut out = Vec::new();
    if !idle {
        out.push(Row {
            name: "deliveries/s",
            values: at(&["deliveries_per_s"]),
            show: show_count,
        });
        out.push(Row {
            name: "p50 latency",
            values: at(&["latency_us", "p50"]),
            show: show_ms,
        });
        out.push(Row {
            name: "p99 latency",
            values: at(&["latency_us", "p99"]),
            show: show_ms,
        });
        out.push(Row {
            name: "p999 latency",
            values: at(&["latency_us", "p999"]),
            show: show_ms,
        });
        out.push(Row {
            name: "p99 send→ack",
            values: at(&["ack_latency_us", "p99"]),
            show: show_ms,
        });
        out.push(Row {
            name: "server CPU while measured",
            values: each(&|v: &Value| {
                let d = num(v, &["duration_s"]).filter(|d| *d > 0.0)?;
                Some(num(v, &["server_cpu_s"])? / d)
            }),
            show: show_cores,
        });
        out.push(Row {
            name: "server CPU / delivery",
            values: each(&|v: &Value| Some(cpu_per_delivery_s(v)? * 1e6)),
            show: show_us,
        });
        out.push(Row {
            name: "deliveries / server CPU-second",
            values: each(&|v: &Value| Some(1.0 / cpu_per_delivery_s(v)?)),
            show: show_count,
        });
    }
    out.push(Row {
        name: "time to join all clients",
        values: at(&["join_s"]),
        show: show_secs,
    });
    out.push(Row {
        name: "server RSS / connection",
        values: at(&["rss_per_conn_bytes"]),
        show: show_kib,
    });
    out.push(Row {
        name: "server peak RSS",
        values: at(&["rss_kib", "peak"]),
        show: show_mib,
    });
    out.push(Row {
        name: "errors",
        values: at(&["errors"]),
        show: show_count,
    });
    out
}

pub fn write(a: &ReportArgs) -> Result<(), String> {
    // chat-host always has a column; a peer only when the folder has its results.
    let servers: Vec<(&str, &str, Results)> = SERVERS
        .iter()
        .map(|(dir, heading)| (*dir, *heading, load(&a.results.join(dir))))
        .filter(|(dir, _, set)| *dir == "chat-host" || !set.is_empty())
        .collect();
    if servers.iter().all(|(_, _, set)| set.is_empty()) {
        return Err(format!("no results in {}", a.results.display()));
    }
    let host = &servers[0].2;
    let empty = Vec::new();
    let peer = servers
        .iter()
        .find(|(d, _, _)| *d == "peer")
        .map(|s| &s.2)
        .unwrap_or(&empty);
    let labels: BTreeSet<String> = servers
        .iter()
        .flat_map(|(_, _, set)| set.iter().map(|(l, _)| l.clone()))
        .collect();
    let get =
        |set: &[(String, Value)], l: &str| set.iter().find(|(x, _)| x == l).map(|(_, v)| v.clone());
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", a.title);
    let _ = writeln!(
        md,
        "Written by `bench/run` (`chat-bench report`). Machine: {}.\n",
        machine()
    );
    if let Some(n) = &a.notes {
        if let Ok(t) = std::fs::read_to_string(n) {
            let _ = writeln!(md, "{}\n", t.trim_end());
        }
    }
    // Columns: each server's figure, then chat-host's ratio to each peer.
    let peers = &servers[1..];
    let mut head = String::from("| scenario | figure |");
    let mut rule = String::from("|---|---|");
    for (_, heading, _) in &servers {
        let _ = write!(head, " {heading} |");
        rule.push_str("---:|");
    }
    for (dir, _, _) in peers {
        let _ = write!(head, " chat-host / {dir} |");
        rule.push_str("---:|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    for l in &labels {
        let results: Vec<Option<Value>> = servers.iter().map(|(_, _, set)| get(set, l)).collect();
        let any = results
            .iter()
            .flatten()
            .next()
            .cloned()
            .unwrap_or(Value::Null);
        let idle = any.get("mode").and_then(Value::as_str) == Some("idle");
        let desc = format!(
            "{} ({}×{}{})",
            l,
            any.get("courses").and_then(Value::as_u64).unwrap_or(0),
            any.get("clients_per_course")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            if idle {
                ", idle".to_string()
            } else {
                match num(&any, &["rate_target"]) {
                    Some(r) if r > 0.0 => format!(", {r} msg/s"),
                    _ => format!(
                        ", closed loop ×{}",
                        any.get("senders").and_then(Value::as_u64).unwrap_or(0)
                    ),
                }
            }
        );
        for (i, row) in rows(&results, idle).into_iter().enumerate() {
            let first = if i == 0 { desc.as_str() } else { "" };
            let mut line = format!("| {first} | {} |", row.name);
            for v in &row.values {
                let _ = write!(line, " {} |", v.map(row.show).unwrap_or("–".into()));
            }
            for p in &row.values[1..] {
                let _ = write!(line, " {} |", ratio(row.values[0], *p));
            }
            let _ = writeln!(md, "{line}");
        }
    }
    // Targets.
    let _ = writeln!(md, "\n## Targets\n");
    let tgt = |label: &str, set: &[(String, Value)], path: &[&str]| {
        get(set, label).and_then(|v| num(&v, path))
    };
    let per_cpu = |label: &str, set: &[(String, Value)]| {
        get(set, label)
            .and_then(|v| cpu_per_delivery_s(&v))
            .map(|c| 1.0 / c)
    };
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    };
    let sio = servers
        .iter()
        .find(|(d, _, _)| *d == "sio-peer")
        .map(|s| &s.2)
        .unwrap_or(&empty);
    for label in [&a.throughput_label, &a.latency_label] {
        let (h, p, r) = (
            per_cpu(label, host),
            per_cpu(label, peer),
            per_cpu(label, sio),
        );
        let ok = match (h, p) {
            (Some(h), Some(p)) => Some(h >= 3.0 * p && r.is_none_or(|r| h > r)),
            _ => None,
        };
        let count = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or("–".into());
        let beside_sio = if sio.is_empty() {
            String::new()
        } else {
            format!(", {} the socketioxide peer ({})", ratio(h, r), count(r))
        };
        let _ = writeln!(
            md,
            "- fan-out at `{label}`: ≥ 3× the Node peer's deliveries per server CPU-second{}: \
             chat-host {} /CPU-s, {} the Node peer ({}){beside_sio} — {}",
            if sio.is_empty() {
                ""
            } else {
                ", and ahead of the socketioxide peer"
            },
            count(h),
            ratio(h, p),
            count(p),
            verdict(ok)
        );
    }
    let l99 = tgt(&a.latency_label, host, &["latency_us", "p99"]);
    let _ = writeln!(
        md,
        "- p99 send→deliver < 10 ms at `{}`: {} — {}",
        a.latency_label,
        ms(l99),
        verdict(l99.map(|v| v < 10_000.0))
    );
    let rss = tgt(&a.idle_label, host, &["rss_per_conn_bytes"]);
    let _ = writeln!(
        md,
        "- ≤ 8 KiB server RSS per idle connection (`{}`): {} — {}",
        a.idle_label,
        rss.map(|v| format!("{:.1} KiB", v / 1024.0))
            .unwrap_or("–".into()),
        verdict(rss.map(|v| v <= 8.0 * 1024.0))
    );
    let _ = writeln!(
        md,
        "\nRaw results (one JSON object per scenario and server) are printed by `bench/run` and kept \
         in its results folder; figures: deliveries/s counted by receive time over the measured \
         window, latency from the send time embedded in each message to its arrival at each \
         receiving client (HdrHistogram), RSS from `/proc/<pid>/status` before and after the \
         clients connected (idle: after they joined and were held)."
    );
    std::fs::write(&a.out, md).map_err(|e| format!("{}: {e}", a.out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(results: PathBuf, out: PathBuf) -> ReportArgs {
        ReportArgs {
            results,
            out,
            notes: None,
            throughput_label: "x".into(),
            latency_label: "x".into(),
            idle_label: "idle".into(),
            title: "t".into(),
        }
    }

    #[test]
    fn a_column_per_server_that_ran_and_a_ratio_to_each_peer() {
        let dir = std::env::temp_dir().join(format!("chat-bench-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let result = |d: f64| {
            format!(
                r#"{{"mode":"rate","courses":1,"clients_per_course":2,"rate_target":10,"deliveries_per_s":{d},"duration_s":10,"server_cpu_s":2,"errors":0}}"#
            )
        };
        for (server, d) in [("chat-host", 200.0), ("peer", 100.0), ("sio-peer", 400.0)] {
            std::fs::create_dir_all(dir.join(server)).unwrap();
            std::fs::write(dir.join(server).join("x.json"), result(d)).unwrap();
        }
        let out = dir.join("out.md");
        write(&args(dir.clone(), out.clone())).unwrap();
        let md = std::fs::read_to_string(&out).unwrap();
        assert!(md.contains(
            "| scenario | figure | chat-host | peer (Node.js socket.io) | sio-peer (Rust socketioxide) | chat-host / peer | chat-host / sio-peer |"
        ));
        assert!(md.contains("| deliveries/s | 200 | 100 | 400 | 2.00× | 0.50× |"));
        // 2 CPU-seconds over 10 s: 2000 deliveries → 1000 µs each, 1000 per CPU-second.
        assert!(md.contains("| server CPU / delivery | 1000.0 µs | 2000.0 µs | 500.0 µs |"));
        assert!(
            md.contains("| deliveries / server CPU-second | 1000 | 500 | 2000 | 2.00× | 0.50× |")
        );
        assert!(md.contains(
            "chat-host 1000 /CPU-s, 2.00× the Node peer (500), 0.50× the socketioxide peer (2000) — **not met**"
        ));

        // Without the socketioxide peer's results, the table is chat-host and the Node peer.
        std::fs::remove_dir_all(dir.join("sio-peer")).unwrap();
        write(&args(dir.clone(), out.clone())).unwrap();
        let md = std::fs::read_to_string(&out).unwrap();
        assert!(md.contains("| chat-host | peer (Node.js socket.io) | chat-host / peer |\n"));
        assert!(!md.contains("socketioxide"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
