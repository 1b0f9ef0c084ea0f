//! One WebSocket to a chat-host's `/ws`: the endpoint a URL names, TCP or TLS (rustls, the
//! webpki roots plus any the app adds), the handshake with the bearer token, and two tasks — a
//! reader that hands over each text frame as JSON (answering pings) and a writer fed by a channel
//! — so the session's loop only ever selects on channels and never cuts a frame in half.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError};
use http_body_util::Empty;
use hyper::header::{AUTHORIZATION, CONNECTION, HOST, UPGRADE};
use hyper::Request;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::error::{ClientError, Result};

/// Where the server is: from `http(s)://` or `ws(s)://host:port` (a path is ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub secure: bool,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub(crate) fn parse(url: &str) -> Result<Endpoint> {
        let parsed = url::Url::parse(url)
            .map_err(|e| ClientError::InvalidArgument(format!("server URL {url:?}: {e}")))?;
        let secure = match parsed.scheme() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            other => {
                return Err(ClientError::InvalidArgument(format!(
                    "server URL scheme {other:?}: use ws, wss, http or https"
                )))
            }
        };
        let host = parsed
            .host_str()
            .ok_or_else(|| ClientError::InvalidArgument(format!("server URL {url:?} has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = parsed
            .port_or_known_default()
            .unwrap_or(if secure { 443 } else { 80 });
        Ok(Endpoint { secure, host, port })
    }

    /// `host:port` as the `Host` header and URLs write it.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The REST base: `http(s)://host:port`.
    pub(crate) fn http_base(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}", self.authority())
    }
}

/// The TLS settings of `wss://`: the webpki roots plus the PEM certificates the app adds.
pub(crate) fn tls_config(extra_roots_pem: &[String]) -> Result<Arc<ClientConfig>> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in extra_roots_pem {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert
                .map_err(|e| ClientError::InvalidArgument(format!("root certificate PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| ClientError::InvalidArgument(format!("root certificate: {e}")))?;
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::InvalidArgument(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Why a socket could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The server refused the token (401): retrying with it is pointless.
    Unauthorized,
    /// Anything else (no route, refused, TLS, another status): worth retrying.
    Failed(String),
}

/// What the reader hands over.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A text frame, parsed.
    Json(Value),
    /// The socket ended (close frame, error or EOF), with why.
    Closed(String),
}

/// An open WebSocket.
pub(crate) struct Socket {
    out: mpsc::UnboundedSender<Frame<'static>>,
    pub(crate) inbound: mpsc::UnboundedReceiver<Inbound>,
    reader: JoinHandle<()>,
}

struct SpawnExecutor;

impl<Fut> hyper::rt::Executor<Fut> for SpawnExecutor
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        tokio::spawn(fut);
    }
}

/// Opens `/ws` on `endpoint` with `token` (within `within`).
pub(crate) async fn open(
    endpoint: &Endpoint,
    token: &str,
    tls: &Arc<ClientConfig>,
    within: Duration,
) -> std::result::Result<Socket, OpenError> {
    match tokio::time::timeout(within, handshake(endpoint, token, tls)).await {
        Ok(r) => r,
        Err(_) => Err(OpenError::Failed(format!(
            "no answer from {} within {} s",
            endpoint.authority(),
            within.as_secs()
        ))),
    }
}

async fn handshake(
    endpoint: &Endpoint,
    token: &str,
    tls: &Arc<ClientConfig>,
) -> std::result::Result<Socket, OpenError> {
    let failed = |e: &dyn std::fmt::Display| OpenError::Failed(e.to_string());
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| failed(&format!("connect {}: {e}", endpoint.authority())))?;
    let _ = tcp.set_nodelay(true);
    let req = Request::builder()
        .method("GET")
        .uri("/ws")
        .header(HOST, endpoint.authority())
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header(
            "Sec-WebSocket-Key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("Sec-WebSocket-Version", "13")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(&e))?;
    let result = if endpoint.secure {
        let name = ServerName::try_from(endpoint.host.clone()).map_err(|e| failed(&e))?;
        let stream = TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| failed(&format!("TLS: {e}")))?;
        fastwebsockets::handshake::client(&SpawnExecutor, req, stream).await
    } else {
        fastwebsockets::handshake::client(&SpawnExecutor, req, tcp).await
    };
    let ws = match result {
        Ok((ws, _)) => ws,
        Err(WebSocketError::InvalidStatusCode(401)) => return Err(OpenError::Unauthorized),
        Err(WebSocketError::InvalidStatusCode(code)) => {
            return Err(OpenError::Failed(format!("the server answered {code}")))
        }
        Err(e) => return Err(failed(&e)),
    };
    let (rd, mut wr) = ws.split(tokio::io::split);
    let mut rd = FragmentCollectorRead::new(rd);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Frame<'static>>();
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            let close = frame.opcode == OpCode::Close;
            if wr.write_frame(frame).await.is_err() || close {
                break;
            }
        }
    });
    let obligated = out_tx.clone();
    let reader = tokio::spawn(async move {
        let mut send = |f: Frame<'_>| {
            let owned = Frame::new(true, f.opcode, None, Payload::Owned(f.payload.to_vec()));
            let sent = obligated.send(owned).map_err(|_| "socket writer gone");
            async move { sent }
        };
        let why = loop {
            match rd.read_frame(&mut send).await {
                Ok(frame) => match frame.opcode {
                    OpCode::Text => match serde_json::from_slice::<Value>(&frame.payload) {
                        Ok(v) => {
                            if in_tx.send(Inbound::Json(v)).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "chat-client: a frame that is not JSON");
                        }
                    },
                    OpCode::Close => {
                        let code = match frame.payload.get(..2) {
                            Some(b) => u16::from_be_bytes([b[0], b[1]]),
                            None => 1005,
                        };
                        break format!("the server closed the socket ({code})");
                    }
                    _ => {}
                },
                Err(e) => break format!("socket: {e}"),
            }
        };
        let _ = in_tx.send(Inbound::Closed(why));
    });
    Ok(Socket {
        out: out_tx,
        inbound: in_rx,
        reader,
    })
}

impl Socket {
    /// Queues a JSON frame; false when the socket is gone.
    pub(crate) fn send(&self, value: &Value) -> bool {
        let text = value.to_string().into_bytes();
        self.out.send(Frame::text(Payload::Owned(text))).is_ok()
    }

    /// Sends a close frame (1000) and stops reading.
    pub(crate) fn close(self) {
        let _ = self.out.send(Frame::close(1000, b""));
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
