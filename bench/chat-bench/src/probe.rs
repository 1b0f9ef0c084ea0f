//! What the generator reads of the servers under test from `/proc`: CPU time and memory.

/// User + system CPU seconds of a process (`None`: this one), from `/proc/<pid>/stat`
/// (clock ticks taken as 100 per second, Linux's `USER_HZ`).
pub(crate) fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU seconds of the server processes together (`None` if there are none or one is gone).
pub(crate) fn servers_cpu_secs(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| cpu_secs(Some(*p))).sum()
}

/// VmRSS of the server processes together, in KiB.
pub(crate) fn rss_kib(pids: &[u32]) -> Option<u64> {
    servers_kib(pids, "VmRSS:")
}

/// A `/proc/<pid>/status` figure summed over the server processes.
pub(crate) fn servers_kib(pids: &[u32], key: &str) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| status_kib(Some(*p), key)).sum()
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS:`, `VmHWM:`...).
pub(crate) fn status_kib(pid: Option<u32>, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
