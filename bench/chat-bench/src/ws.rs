//! A small WebSocket client over fastwebsockets: the HTTP upgrade is written by hand on a
//! `TcpStream` (no per-connection HTTP client state), then the socket is split into a read half
//! owned by the client's reader task and a write half shared behind a mutex (the reader answers
//! pings on it, a sender task writes its events on it).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use fastwebsockets::{after_handshake_split, Frame, Payload, Role, WebSocketRead, WebSocketWrite};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;

/// The read half of a client socket.
pub type WsRead = WebSocketRead<OwnedReadHalf>;
/// The shared write half of a client socket.
pub type Writer = Arc<Mutex<WebSocketWrite<OwnedWriteHalf>>>;

/// Opens a TCP connection to `addr` (from `bind` when given: loopback addresses only, checked by
/// the caller) and performs the WebSocket upgrade for `path` with the extra `headers` (each line
/// ending in `\r\n`).
pub async fn connect(
    addr: SocketAddr,
    bind: Option<IpAddr>,
    path: &str,
    headers: &str,
) -> io::Result<(WsRead, Writer)> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = bind {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let mut stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
    );
    use tokio::io::AsyncWriteExt;
    stream.write_all(request.as_bytes()).await?;
    read_upgrade_response(&mut stream).await?;
    let (r, w) = stream.into_split();
    let (mut read, mut write) = after_handshake_split(r, w, Role::Client);
    read.set_auto_close(true);
    read.set_auto_pong(true);
    write.set_writev(false);
    Ok((read, Arc::new(Mutex::new(write))))
}

/// Reads exactly the response head (peeking first, so a frame the server sends right after the
/// `101` stays in the socket for the WebSocket reader) and checks it is a `101`.
async fn read_upgrade_response(stream: &mut TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 8192];
    for _ in 0..10_000 {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed during the WebSocket upgrade",
            ));
        }
        if let Some(pos) = memchr::memmem::find(&buf[..n], b"\r\n\r\n") {
            let mut head = vec![0u8; pos + 4];
            stream.read_exact(&mut head).await?;
            let text = String::from_utf8_lossy(&head);
            let status = text.lines().next().unwrap_or_default().to_string();
            if status.split_whitespace().nth(1) != Some("101") {
                // Keep a little of the body for the error message.
                let mut body = vec![0u8; 512];
                let m = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut body))
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .unwrap_or(0);
                return Err(io::Error::other(format!(
                    "upgrade refused: {status} {}",
                    String::from_utf8_lossy(&body[..m]).trim()
                )));
            }
            return Ok(());
        }
        if n == buf.len() {
            return Err(io::Error::other("upgrade response head too large"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "no upgrade response",
    ))
}

/// Sends one text frame.
pub async fn send_text(
    writer: &Writer,
    text: Vec<u8>,
) -> Result<(), fastwebsockets::WebSocketError> {
    writer
        .lock()
        .await
        .write_frame(Frame::text(Payload::Owned(text)))
        .await
}
