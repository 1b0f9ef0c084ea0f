//! HTTP/1.1 on a fresh connection per request: one answer type, the request helpers (panicking,
//! for in-process servers; fallible with a timeout, for processes that may be killed), JSON and
//! multipart bodies.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }
    /// `data` of a success envelope (checked to be one).
    pub fn data(&self) -> Value {
        let v = self.json();
        assert_eq!(v["success"], true, "{v}");
        v["data"].clone()
    }
    /// `code` of an error envelope (checked to be one, with a message).
    pub fn code(&self) -> String {
        let v = self.json();
        assert_eq!(v["success"], false, "{v}");
        assert!(v["message"].is_string(), "{v}");
        v["code"].as_str().unwrap_or_default().to_string()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    pub fn retry_after(&self) -> Option<String> {
        self.header("retry-after")
    }
}

/// One request with a bearer `token` (if any) on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(String, Bytes)>,
) -> Resp {
    request_with(
        addr,
        method,
        path,
        token.map(|t| format!("Bearer {t}")),
        body,
    )
    .await
}

/// One request with this `Authorization` header (if any), verbatim.
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<String>,
    body: Option<(String, Bytes)>,
) -> Resp {
    let mut headers = Vec::new();
    if let Some(a) = &authorization {
        headers.push(("authorization", a.as_str()));
    }
    send(addr, method, path, &headers, body).await
}

/// One bodiless request with the given headers.
pub async fn request_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Resp {
    send(addr, method, path, headers, None).await
}

/// [`request`] for a server that may be killed mid-request: `Err` when it is gone or does not
/// answer within `timeout`.
pub async fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(String, Bytes)>,
    timeout: Duration,
) -> Result<Resp, String> {
    let authorization = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(a) = &authorization {
        headers.push(("authorization", a.as_str()));
    }
    tokio::time::timeout(timeout, exchange(addr, method, path, &headers, body))
        .await
        .map_err(|_| "timed out".to_string())?
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(String, Bytes)>,
) -> Resp {
    exchange(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(String, Bytes)>,
) -> Result<Resp, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let bytes = match body {
        Some((ctype, bytes)) => {
            req = req.header("content-type", ctype);
            bytes
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
        headers: parts.headers,
        body,
    })
}

/// A JSON body.
pub fn json_body(v: &Value) -> (String, Bytes) {
    (
        "application/json".into(),
        Bytes::from(serde_json::to_vec(v).unwrap()),
    )
}

/// A multipart body: text fields, then an optional file part.
pub fn multipart(fields: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> (String, Bytes) {
    let boundary = "----chat-host-test-boundary-7d1f";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, ctype, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {ctype}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        Bytes::from(body),
    )
}

/// A 1x1 PNG.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82";

/// `GET /socket.io/?EIO=4&transport=polling`: a new Engine.IO session's open packet (checked to
/// be a `200` starting with `0`).
pub async fn sio_open(addr: SocketAddr) -> Value {
    let r = request(
        addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.starts_with('0'), "{text}");
    serde_json::from_str(&text[1..]).unwrap()
}
