//! A real `chat-host` process: spawned on a free port with a data folder and the test secret,
//! killed (SIGKILL) or stopped (SIGTERM), or expected to refuse to start; and what a test reads
//! back from it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{try_request, SECRET};

/// A `chat-host` child process.
pub struct HostProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl HostProcess {
    /// Starts the built binary on `127.0.0.1:0` with `data_dir`, the test secret and `extra`
    /// environment variables, and waits for its banner (which names the bound port).
    pub fn start(
        data_dir: &Path,
        log: &Path,
        extra: &[(&str, &str)],
    ) -> Result<HostProcess, String> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| e.to_string())?;
        let mut cmd = host_command(data_dir);
        cmd.stdout(Stdio::piped()).stderr(Stdio::from(stderr));
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(line)) => line,
            _ => {
                let _ = child.kill();
                let status = child.wait().ok();
                return Err(format!(
                    "chat-host printed no banner (exit {status:?}); log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                ));
            }
        };
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("unexpected banner {line:?}"))?;
        Ok(HostProcess {
            child,
            addr,
            log: log.to_path_buf(),
        })
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait for the exit (up to `within`); the exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        None
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// The built binary on `127.0.0.1:0` with `data_dir`, the test secret and nothing else from the
/// environment.
fn host_command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-host"));
    cmd.current_dir(data_dir.parent().unwrap_or(data_dir))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CHAT_ADDR", "127.0.0.1:0")
        .env("CHAT_DATA_DIR", data_dir)
        .env("JWT_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// Runs the binary on `data_dir` expecting it to refuse to start; returns (exit code, stderr).
pub fn start_expecting_failure(data_dir: &Path) -> (Option<i32>, String) {
    let out = host_command(data_dir).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// Every message of `course`, oldest first, read with `?after=` pages.
pub async fn full_history(addr: SocketAddr, admin: &str, course: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut after = 0u64;
    loop {
        let r = try_request(
            addr,
            "GET",
            &format!("/api/v1/chat/course/{course}?after={after}&limit=100"),
            Some(admin),
            None,
            Duration::from_secs(20),
        )
        .await
        .expect("history answers");
        assert_eq!(r.status, 200, "{}", r.text());
        let page = r.data()["messages"].as_array().cloned().unwrap_or_default();
        let Some(last) = page.last() else { break };
        let next = last["seq"].as_u64().unwrap();
        assert!(next > after, "history with ?after={after} went backwards");
        after = next;
        out.extend(page);
    }
    out
}
