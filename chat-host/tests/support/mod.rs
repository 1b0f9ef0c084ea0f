//! Helpers for the reliability tests that drive a real `chat-host` process: spawn it on a free
//! port with a data folder and a known secret, fallible HTTP requests with timeouts (the server
//! may be killed mid-request), tokens, and a small deterministic random generator.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::net::TcpStream;

pub const SECRET: &str = "reliability-secret-0123456789";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token for `sub` with `role`, valid for a day.
pub fn token(sub: &str, role: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "name": sub, "role": role, "exp": now() + 86_400}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Whether the long versions were asked for (`CHAT_LONG_TESTS=1`).
pub fn long_tests() -> bool {
    std::env::var("CHAT_LONG_TESTS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// xorshift64*: deterministic from a seed, good enough to pick operations and delays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

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

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Bytes,
    pub retry_after: Option<String>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn data(&self) -> Value {
        self.json()["data"].clone()
    }
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
}

/// One request on a fresh connection, bounded by `timeout`. `Err` when the server is gone or
/// does not answer in time.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    timeout: Duration,
) -> Result<Resp, String> {
    let fut = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string());
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let bytes = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(&v).unwrap())
            }
            None => Bytes::new(),
        };
        let resp = sender
            .send_request(req.body(Full::new(bytes)).unwrap())
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Resp {
            status: parts.status.as_u16(),
            retry_after: parts
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body,
        })
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Every message of `course`, oldest first, read with `?after=` pages.
pub async fn full_history(addr: SocketAddr, admin: &str, course: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut after = 0u64;
    loop {
        let r = http(
            addr,
            "GET",
            &format!("/api/v1/chat/course/{course}?after={after}&limit=100"),
            Some(admin),
            None,
            Duration::from_secs(20),
        )
        .await
        .expect("history answers");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let page = r.data()["messages"].as_array().cloned().unwrap_or_default();
        let Some(last) = page.last() else { break };
        let next = last["seq"].as_u64().unwrap();
        assert!(next > after, "history with ?after={after} went backwards");
        after = next;
        out.extend(page);
    }
    out
}
