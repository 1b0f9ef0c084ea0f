//! REST: requests with any path parameter, query and body, on every route, through the real
//! server (`chat_host::Server`, in memory, on 127.0.0.1) over one keep-alive connection.
//! Input: byte 0 picks the route and the token, byte 1 the content type; then a line that is
//! the path parameter (or the query of the history route); the rest is the body.
//! A panic anywhere in the server (even one the handler would catch) aborts the run; a 500 or
//! a non-JSON error is a failure too.
#![no_main]

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const SECRET: &str = "fuzz-secret";

struct World {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    tokens: Vec<String>,
    conn: tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
}

fn token(sub: &str, role: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "name": sub, "role": role, "exp": 4_000_000_000u64}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let addr = rt.block_on(async {
            let mut c = chat_host::Config::for_tests(SECRET);
            c.engine.rate_limit_burst = 1_000_000;
            c.engine.max_file_bytes = 64 * 1024;
            let server = chat_host::Server::start(c).await.unwrap();
            let addr = server.local_addr();
            let lms = chat_core::Actor::system();
            let e = server.engine();
            e.put_course(&lms, "c1", Default::default()).await.unwrap();
            e.enroll(&lms, "c1", "u1", chat_core::Role::Student).await.unwrap();
            e.enroll(&lms, "c1", "i1", chat_core::Role::Instructor).await.unwrap();
            std::mem::forget(server); // lives as long as the process
            addr
        });
        World {
            rt,
            addr,
            tokens: vec![
                token("u1", "student"),
                token("i1", "instructor"),
                token("admin", "admin"),
                token("x1", "student"),
            ],
            conn: tokio::sync::Mutex::new(None),
        }
    })
}

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/chat/send"),
    ("GET", "/api/v1/chat/course/c1?{}"),
    ("GET", "/api/v1/chat/course/{}"),
    ("PUT", "/api/v1/chat/edit/{}"),
    ("DELETE", "/api/v1/chat/delete/{}"),
    ("PUT", "/api/v1/chat/read/{}"),
    ("GET", "/api/v1/chat/online/{}"),
    ("PUT", "/api/v1/chat/status"),
    ("GET", "/api/v1/chat/files/{}"),
    ("PUT", "/api/v1/chat/courses/{}"),
    ("PUT", "/api/v1/chat/courses/c1/participants/{}"),
    ("DELETE", "/api/v1/chat/courses/c1/participants/{}"),
    ("POST", "/api/v1/chat/{}"),
];

const CTYPES: &[&str] = &[
    "application/json",
    "",
    "multipart/form-data; boundary=XyZ",
    "text/plain",
    "application/json; charset=utf-8",
];

/// Keeps what a URI can carry: bytes outside visible ASCII are percent-encoded.
fn uri_safe(s: &[u8], query: bool) -> String {
    let mut out = String::new();
    for &b in s {
        let ok = b.is_ascii_graphic() && b != b'#' && (query || (b != b'?' && b != b'/'));
        if ok {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let w = world();
    let (method, template) = ROUTES[data[0] as usize % ROUTES.len()];
    let tok = &w.tokens[(data[0] as usize / ROUTES.len()) % w.tokens.len()];
    let ctype = CTYPES[data[1] as usize % CTYPES.len()];
    let rest = &data[2..];
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let param = uri_safe(&rest[..split], template.contains('?'));
    let body = Bytes::copy_from_slice(rest.get(split + 1..).unwrap_or_default());
    let path = template.replace("{}", &param);
    w.rt.block_on(async {
        let mut guard = w.conn.lock().await;
        if guard.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(w.addr).await.unwrap();
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            *guard = Some(sender);
        }
        let sender = guard.as_mut().unwrap();
        if sender.ready().await.is_err() {
            *guard = None;
            return;
        }
        let mut req = Request::builder()
            .method(method)
            .uri(&path)
            .header("host", "fuzz")
            .header("authorization", format!("Bearer {tok}"));
        if !ctype.is_empty() {
            req = req.header("content-type", ctype);
        }
        let Ok(req) = req.body(Full::new(body)) else {
            return; // not a request a client could send
        };
        let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
            .await
            .expect("the server answers within 10 s");
        let Ok(resp) = resp else {
            *guard = None;
            return;
        };
        let status = resp.status().as_u16();
        let is_file = path.starts_with("/api/v1/chat/files/") && status == 200;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_ne!(status, 500, "{method} {path}: {}", String::from_utf8_lossy(&body));
        if !is_file {
            let v: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("{method} {path}: not JSON"));
            assert_eq!(v["success"], status < 400, "{method} {path}: {v}");
        }
    });
});
