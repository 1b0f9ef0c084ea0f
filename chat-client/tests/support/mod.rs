//! Test helpers: tokens, a chat-host in this process (stopped and restarted on the same port and
//! data folder) or as a child process (killed with SIGKILL), provisioning and reading over REST,
//! and waiting for a client's events.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_client::{Client, ClientEvent, ClientOptions};
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

pub const SECRET: &str = "chat-client-test-secret";
pub const WAIT: Duration = Duration::from_secs(15);

pub fn token(sub: &str, name: &str, role: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": sub, "name": name, "role": role, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

pub fn admin() -> String {
    token("lms", "LMS", "admin")
}

/// Fast reconnects for tests.
pub fn options() -> ClientOptions {
    ClientOptions {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        typing_idle: Duration::from_millis(400),
        ..ClientOptions::default()
    }
}

pub async fn client(url: &str, token: &str, dir: &Path) -> Client {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Client::connect_with(url, token, dir, options())
        .await
        .unwrap()
}

/// A chat-host in this process, on a sled store in `dir`.
pub struct Host {
    server: Option<chat_host::Server>,
    pub addr: SocketAddr,
    dir: PathBuf,
}

fn config(dir: &Path, addr: SocketAddr) -> chat_host::Config {
    let mut c = chat_host::Config::for_tests(SECRET);
    c.addr = addr;
    c.data_dir = Some(dir.to_path_buf());
    c.shutdown_grace = Duration::from_secs(1);
    c.engine.rate_limit_burst = 10_000;
    c
}

impl Host {
    pub async fn start(dir: &Path) -> Host {
        Host::start_on(dir, "127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(dir: &Path, addr: SocketAddr) -> Host {
        let server = chat_host::Server::start(config(dir, addr)).await.unwrap();
        Host {
            addr: server.local_addr(),
            server: Some(server),
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn api(&self) -> Api {
        Api::new(self.addr)
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.unwrap();
        }
    }

    /// Starts again on the same port and data folder.
    pub async fn restart(&mut self) {
        self.stop().await;
        let again = Host::start_on(&self.dir, self.addr).await;
        self.server = again.server;
    }
}

/// The chat-host binary next to this test's (built by `cargo test --workspace`; built here when
/// this crate's tests run alone).
fn host_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("chat-host");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "chat-host"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p chat-host failed");
    }
    bin
}

/// A chat-host child process on a sled store in `dir`.
pub struct HostProcess {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl HostProcess {
    pub fn start(dir: &Path, addr: &str) -> HostProcess {
        let mut child = Command::new(host_binary())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CHAT_ADDR", addr)
            .env("CHAT_DATA_DIR", dir)
            .env("JWT_SECRET", SECRET)
            .env("CHAT_RATE_LIMIT", "10000")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .ok()
            .flatten()
            .expect("chat-host printed its banner");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .expect("the banner names the address");
        HostProcess {
            child,
            addr,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn api(&self) -> Api {
        Api::new(self.addr)
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        self.kill9();
        *self = HostProcess::start(&self.dir.clone(), &self.addr.to_string());
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// REST calls of the LMS and of other users.
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: format!("http://{addr}/api/v1/chat"),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v["data"].clone()
    }

    /// A course with these participants.
    pub async fn course(&self, course: &str, users: &[&str]) {
        self.call(
            reqwest::Method::PUT,
            &format!("/courses/{course}"),
            &admin(),
            Some(json!({"name": course})),
        )
        .await;
        for u in users {
            self.call(
                reqwest::Method::PUT,
                &format!("/courses/{course}/participants/{u}"),
                &admin(),
                Some(json!({"role": "student"})),
            )
            .await;
        }
    }

    pub async fn send(&self, token: &str, course: &str, text: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/send",
            token,
            Some(json!({"courseId": course, "message": text})),
        )
        .await
    }

    pub async fn edit(&self, token: &str, id: &str, text: &str) -> Value {
        self.call(
            reqwest::Method::PUT,
            &format!("/edit/{id}"),
            token,
            Some(json!({"message": text})),
        )
        .await
    }

    pub async fn react(&self, token: &str, id: &str, emoji: &str) -> Value {
        self.call(
            reqwest::Method::PUT,
            &format!("/react/{id}"),
            token,
            Some(json!({"emoji": emoji})),
        )
        .await
    }

    /// Pins a message as the admin.
    pub async fn pin(&self, id: &str) -> Value {
        self.call(reqwest::Method::PUT, &format!("/pin/{id}"), &admin(), None)
            .await
    }

    pub async fn read(&self, token: &str, id: &str) -> Value {
        self.call(reqwest::Method::PUT, &format!("/read/{id}"), token, None)
            .await
    }

    pub async fn delete(&self, token: &str, id: &str) -> Value {
        self.call(
            reqwest::Method::DELETE,
            &format!("/delete/{id}"),
            token,
            None,
        )
        .await
    }

    /// Every message of a course, oldest first.
    pub async fn history(&self, course: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0u64;
        loop {
            let page = self
                .call(
                    reqwest::Method::GET,
                    &format!("/course/{course}?after={after}&limit=100"),
                    &admin(),
                    None,
                )
                .await;
            let msgs = page["messages"].as_array().unwrap().clone();
            if msgs.is_empty() {
                return out;
            }
            after = msgs.last().unwrap()["seq"].as_u64().unwrap();
            out.extend(msgs);
        }
    }
}

/// Waits (up to `WAIT`) for the first event `f` maps to `Some`, skipping others.
pub async fn wait_for<T>(
    rx: &mut UnboundedReceiver<ClientEvent>,
    what: &str,
    mut f: impl FnMut(&ClientEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => {
                if let Some(t) = f(&e) {
                    return t;
                }
            }
            Ok(None) => panic!("event stream ended waiting for {what}"),
            Err(_) => panic!("no {what} within {WAIT:?}"),
        }
    }
}

/// Every event that arrives within `quiet` of the previous one (or of the call).
pub async fn drain(rx: &mut UnboundedReceiver<ClientEvent>, quiet: Duration) -> Vec<ClientEvent> {
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(quiet, rx.recv()).await {
        out.push(e);
    }
    out
}

/// The texts of a REST history.
pub fn texts(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .map(|m| m["message"].as_str().unwrap().to_string())
        .collect()
}
