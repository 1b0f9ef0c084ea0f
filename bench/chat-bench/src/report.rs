//! `chat-bench report`: the comparison table of two servers' results, with the machine.
//!
//! Reads `<results>/chat-host/<label>.json` and `<results>/peer/<label>.json` (one `chat-bench run`
//! result each), writes a Markdown file with one row per scenario and figure, the ratio
//! chat-host/peer, and the targets of the benchmark issue checked against the figures.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Folder with `chat-host/` and `peer/` result files.
    #[arg(long)]
    results: PathBuf,
    /// Markdown file to write.
    #[arg(long)]
    out: PathBuf,
    /// Markdown inserted after the machine description (how the servers were run...).
    #[arg(long)]
    notes: Option<PathBuf>,
    /// Scenario whose deliveries/s and p99 are compared for the throughput target.
    #[arg(long, default_value = "100x20-max")]
    throughput_label: String,
    /// Scenario whose p99 must be under 10 ms.
    #[arg(long, default_value = "1x1000-100")]
    latency_label: String,
    /// Scenario whose RSS per connection must be at most 16 KiB.
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

pub fn write(a: &ReportArgs) -> Result<(), String> {
    let host = load(&a.results.join("chat-host"));
    let peer = load(&a.results.join("peer"));
    if host.is_empty() && peer.is_empty() {
        return Err(format!("no results in {}", a.results.display()));
    }
    let labels: BTreeSet<String> = host
        .iter()
        .chain(peer.iter())
        .map(|(l, _)| l.clone())
        .collect();
    let get =
        |set: &[(String, Value)], l: &str| set.iter().find(|(x, _)| x == l).map(|(_, v)| v.clone());
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", a.title);
    let _ = writeln!(
        md,
        "Written by `bench/run` (`chat-bench report`). Machine: {}. The load generator runs on the \
         same machine and shares its cores with the server under test, so every figure includes \
         the generator's own cost.\n",
        machine()
    );
    if let Some(n) = &a.notes {
        if let Ok(t) = std::fs::read_to_string(n) {
            let _ = writeln!(md, "{}\n", t.trim_end());
        }
    }
    let _ = writeln!(
        md,
        "| scenario | figure | chat-host | peer (Node.js socket.io) | chat-host / peer |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|");
    for l in &labels {
        let h = get(&host, l);
        let p = get(&peer, l);
        let any = h.as_ref().or(p.as_ref()).cloned().unwrap_or(Value::Null);
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
        let f = |v: &Option<Value>, path: &[&str]| v.as_ref().and_then(|v| num(v, path));
        let mut rows: Vec<(&str, String, String, String)> = Vec::new();
        if !idle {
            let (hd, pd) = (f(&h, &["deliveries_per_s"]), f(&p, &["deliveries_per_s"]));
            let show = |x: Option<f64>| x.map(|v| format!("{v:.0}")).unwrap_or("–".into());
            rows.push(("deliveries/s", show(hd), show(pd), ratio(hd, pd)));
            for (name, key) in [
                ("p50 latency", "p50"),
                ("p99 latency", "p99"),
                ("p999 latency", "p999"),
            ] {
                let (hv, pv) = (f(&h, &["latency_us", key]), f(&p, &["latency_us", key]));
                rows.push((name, ms(hv), ms(pv), ratio(hv, pv)));
            }
            let (hv, pv) = (
                f(&h, &["ack_latency_us", "p99"]),
                f(&p, &["ack_latency_us", "p99"]),
            );
            rows.push(("p99 send→ack", ms(hv), ms(pv), ratio(hv, pv)));
        }
        if !idle {
            let dur = |v: &Option<Value>| f(v, &["duration_s"]).filter(|d| *d > 0.0);
            let (hc, pc) = (
                f(&h, &["server_cpu_s"]).zip(dur(&h)).map(|(c, d)| c / d),
                f(&p, &["server_cpu_s"]).zip(dur(&p)).map(|(c, d)| c / d),
            );
            let cores = |x: Option<f64>| x.map(|v| format!("{v:.2} cores")).unwrap_or("–".into());
            rows.push((
                "server CPU while measured",
                cores(hc),
                cores(pc),
                ratio(hc, pc),
            ));
        }
        let (hj, pj) = (f(&h, &["join_s"]), f(&p, &["join_s"]));
        let secs = |x: Option<f64>| x.map(|v| format!("{v:.1} s")).unwrap_or("–".into());
        rows.push((
            "time to join all clients",
            secs(hj),
            secs(pj),
            ratio(hj, pj),
        ));
        let (hr, pr) = (
            f(&h, &["rss_per_conn_bytes"]),
            f(&p, &["rss_per_conn_bytes"]),
        );
        let kib = |x: Option<f64>| {
            x.map(|v| format!("{:.1} KiB", v / 1024.0))
                .unwrap_or("–".into())
        };
        rows.push(("server RSS / connection", kib(hr), kib(pr), ratio(hr, pr)));
        let (hp, pp) = (f(&h, &["rss_kib", "peak"]), f(&p, &["rss_kib", "peak"]));
        let mib = |x: Option<f64>| {
            x.map(|v| format!("{:.0} MiB", v / 1024.0))
                .unwrap_or("–".into())
        };
        rows.push(("server peak RSS", mib(hp), mib(pp), ratio(hp, pp)));
        let (he, pe) = (f(&h, &["errors"]), f(&p, &["errors"]));
        let cnt = |x: Option<f64>| x.map(|v| format!("{v:.0}")).unwrap_or("–".into());
        rows.push(("errors", cnt(he), cnt(pe), ratio(he, pe)));
        for (i, (name, hv, pv, r)) in rows.into_iter().enumerate() {
            let first = if i == 0 { desc.as_str() } else { "" };
            let _ = writeln!(md, "| {first} | {name} | {hv} | {pv} | {r} |");
        }
    }
    // Targets.
    let _ = writeln!(md, "\n## Targets\n");
    let tgt = |label: &str, set: &[(String, Value)], path: &[&str]| {
        get(set, label).and_then(|v| num(&v, path))
    };
    let (hd, pd) = (
        tgt(&a.throughput_label, &host, &["deliveries_per_s"]),
        tgt(&a.throughput_label, &peer, &["deliveries_per_s"]),
    );
    let (h99, p99) = (
        tgt(&a.throughput_label, &host, &["latency_us", "p99"]),
        tgt(&a.throughput_label, &peer, &["latency_us", "p99"]),
    );
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    };
    let r = match (hd, pd) {
        (Some(h), Some(p)) if p > 0.0 => Some(h / p),
        _ => None,
    };
    let _ = writeln!(
        md,
        "- ≥ 10× the peer's deliveries/s at equal or better p99 (`{}`): {:.2}× ({} vs {} /s), p99 {} vs {} — {}",
        a.throughput_label,
        r.unwrap_or(f64::NAN),
        hd.map(|v| format!("{v:.0}")).unwrap_or("–".into()),
        pd.map(|v| format!("{v:.0}")).unwrap_or("–".into()),
        ms(h99),
        ms(p99),
        verdict(r.map(|r| r >= 10.0 && h99.zip(p99).map(|(h, p)| h <= p).unwrap_or(false)))
    );
    let l99 = tgt(&a.latency_label, &host, &["latency_us", "p99"]);
    let _ = writeln!(
        md,
        "- p99 < 10 ms at `{}`: {} — {}",
        a.latency_label,
        ms(l99),
        verdict(l99.map(|v| v < 10_000.0))
    );
    let rss = tgt(&a.idle_label, &host, &["rss_per_conn_bytes"]);
    let _ = writeln!(
        md,
        "- ≤ 16 KiB server RSS per idle connection (`{}`): {} — {}",
        a.idle_label,
        rss.map(|v| format!("{:.1} KiB", v / 1024.0))
            .unwrap_or("–".into()),
        verdict(rss.map(|v| v <= 16.0 * 1024.0))
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
