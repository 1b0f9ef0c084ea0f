//! Provisioning through the admin REST routes of the contract
//! (`PUT /api/v1/chat/courses/:id`, `PUT /api/v1/chat/courses/:id/participants/:userId`), over a
//! few keep-alive HTTP/1.1 connections.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One PUT: path and JSON body.
pub struct Put {
    pub path: String,
    pub body: String,
}

/// Runs every PUT with `concurrency` connections; fails on the first non-2xx answer.
pub async fn run(
    addr: SocketAddr,
    admin_token: &str,
    puts: Vec<Put>,
    concurrency: usize,
) -> Result<usize, String> {
    let total = puts.len();
    let queue = Arc::new(Mutex::new(VecDeque::from(puts)));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let queue = queue.clone();
        let auth = format!("Bearer {admin_token}");
        workers.push(tokio::spawn(async move { worker(addr, auth, queue).await }));
    }
    for w in workers {
        w.await.map_err(|e| e.to_string())??;
    }
    Ok(total)
}

async fn worker(
    addr: SocketAddr,
    auth: String,
    queue: Arc<Mutex<VecDeque<Put>>>,
) -> Result<(), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    loop {
        let Some(put) = queue.lock().map_err(|e| e.to_string())?.pop_front() else {
            return Ok(());
        };
        let req = Request::put(&put.path)
            .header("host", addr.to_string())
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(put.body)))
            .map_err(|e| e.to_string())?;
        sender.ready().await.map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("PUT {}: {e}", put.path))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "PUT {}: {status} {}",
                put.path,
                String::from_utf8_lossy(&body)
            ));
        }
    }
}
