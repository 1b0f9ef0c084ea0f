//! Start, first run, health, graceful shutdown, durability across restarts, the binary itself.

use std::io::BufRead;
use std::time::Duration;

use chat_host::{JwtKey, Server};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn health_answers_without_a_token() {
    let w = World::start().await;
    let r = request(w.addr, "GET", "/healthz", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["status"], "ok");
}

#[tokio::test]
async fn graceful_shutdown_closes_sockets_flushes_and_data_survives() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config();
    c.data_dir = Some(dir.path().to_path_buf());
    let w = World::with(c.clone()).await;
    let sent = w.send(&w.u1, "durable").await;
    let mut bob = w.joined(&w.u2).await;
    let World { server, .. } = w;
    let shutdown = tokio::spawn(server.shutdown());
    assert_eq!(
        bob.closed(WAIT).await,
        Some(1001),
        "sockets are told the server is going away"
    );
    tokio::time::timeout(WAIT, shutdown)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let server = Server::start(c).await.unwrap();
    let r = request(
        server.local_addr(),
        "GET",
        "/api/v1/chat/course/c1",
        Some(&token("u2", "Bob", "student")),
        None,
    )
    .await;
    let messages = r.data()["messages"].clone();
    assert_eq!(messages[0]["id"], sent["id"]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn in_flight_requests_finish_during_shutdown() {
    let mut c = config();
    c.engine.max_file_bytes = 4 * 1024 * 1024;
    let w = World::with(c).await;
    // A request whose body is still arriving when shutdown starts.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = json!({"courseId": COURSE, "message": "in flight"}).to_string();
    let mut s = tokio::net::TcpStream::connect(w.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/chat/send HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        w.u1,
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body.as_bytes()[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let World { server, addr, .. } = w;
    let shutdown = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // New connections are refused (or reset) once the listener is gone.
    let refused = tokio::net::TcpStream::connect(addr).await;
    if let Ok(mut late) = refused {
        let _ = late
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await;
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(WAIT, late.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "a new connection is not served during shutdown");
    }
    s.write_all(&body.as_bytes()[5..]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    tokio::time::timeout(WAIT, shutdown)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn first_run_makes_a_secret_and_an_admin_token_that_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config();
    c.jwt = JwtKey::Generate;
    c.data_dir = Some(dir.path().join("data"));
    let server = Server::start(c.clone()).await.unwrap();
    let admin = server
        .admin_token()
        .expect("an admin token is printed")
        .to_string();
    let r = request(
        server.local_addr(),
        "PUT",
        "/api/v1/chat/courses/first",
        Some(&admin),
        Some(json_body(&json!({"name": "First"}))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Someone else's secret is not accepted.
    let r = request(
        server.local_addr(),
        "PUT",
        "/api/v1/chat/courses/first",
        Some(&token("admin", "A", "admin")),
        Some(json_body(&json!({}))),
    )
    .await;
    assert_eq!(r.status, 401);
    server.shutdown().await.unwrap();
    let secret =
        std::fs::read_to_string(dir.path().join("data").join(chat_host::auth::SECRET_FILE))
            .unwrap();
    assert_eq!(secret.trim().len(), 64);

    let server = Server::start(c).await.unwrap();
    let r = request(
        server.local_addr(),
        "GET",
        "/api/v1/chat/course/first",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        r.status, 200,
        "the old token still works: the secret was kept"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_binary_starts_prints_a_token_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chat-host"))
        .current_dir(dir.path())
        .env_remove("JWT_SECRET")
        .env_remove("CHAT_ADDR")
        .env_remove("CHAT_DATA_DIR")
        .env("RUST_LOG", "warn")
        .args(["--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take(5)
            .collect::<Vec<_>>()
    });
    let lines = tokio::time::timeout(Duration::from_secs(30), lines)
        .await
        .unwrap()
        .unwrap();
    let addr: std::net::SocketAddr = lines[0]
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let token = lines
        .iter()
        .find(|l| l.starts_with("eyJ"))
        .expect("admin token printed")
        .clone();
    let r = request(
        addr,
        "PUT",
        "/api/v1/chat/courses/bin",
        Some(&token),
        Some(json_body(&json!({}))),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        dir.path().join("data").join("jwt-secret").exists(),
        "secret kept in ./data"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
