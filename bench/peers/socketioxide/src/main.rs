//! A second reference peer for chat-bench: the course chat on axum + socketioxide (the Socket.IO
//! server a Rust user would pick instead of socket.io), in memory, beside the Node.js one in
//! `../node-socketio/server.js`. `bench/run` runs the same load against chat-host, that peer and
//! this one.
//!
//! It has what the benchmark uses, with `server.js`'s semantics and JSON shapes: the admin
//! provisioning routes (`PUT /api/v1/chat/courses/:id`, `PUT` and `DELETE
//! /api/v1/chat/courses/:id/participants/:userId`, `GET /healthz`), HS256 tokens from
//! `JWT_SECRET` (bearer header on REST, `auth.token` on the Socket.IO handshake), and the events
//! `join-course`, `leave-course` and `send-message` with their acknowledgements, `new-message`
//! broadcast to the course's room, and the presence events of a join and a disconnect. The rest
//! of the contract (edits, deletes, typing, read receipts, history over REST) is left out. Like
//! `server.js` it has no rate limit and no durability. Two differences socketioxide brings: a
//! refused handshake's `connect_error` carries the message only (no `data.code`), and each event
//! is handled in a task of its own, so two sends of one socket in flight together may be
//! broadcast in either order (each still gets its own `seq`).
//!
//!   JWT_SECRET=... PORT=3000 HOST=127.0.0.1 chat-bench-peer-socketioxide
//!
//! It prints `peer listening on http://HOST:PORT (pid N)` once it listens (`PORT=0`: any free
//! port), which is how `bench/run` finds it, and exits on SIGTERM or SIGINT.

mod chat;
mod socket;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::{json, Value};
use socketioxide::handler::ConnectHandler;
use socketioxide::SocketIo;

use chat::{App, Caller, ChatError};

fn ok(status: StatusCode, data: Value) -> Response {
    (
        status,
        Json(json!({ "success": true, "message": "ok", "data": data })),
    )
        .into_response()
}

fn fail(e: ChatError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(json!({ "success": false, "message": e.message, "code": e.code })),
    )
        .into_response()
}

/// The bearer token's caller, who must be an admin.
fn admin(app: &App, headers: &HeaderMap) -> Result<Caller, ChatError> {
    let token = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    let caller = app.authenticate(token)?;
    if &*caller.role != "admin" {
        return Err(ChatError::new("FORBIDDEN", "admin only"));
    }
    Ok(caller)
}

/// A JSON body, `{}` when empty or not JSON.
fn body_json(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| json!({}))
}

async fn put_course(
    State(app): State<Arc<App>>,
    Path(course): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match admin(&app, &headers) {
        Ok(_) => ok(
            StatusCode::OK,
            app.chat().put_course(&course, &body_json(&body)),
        ),
        Err(e) => fail(e),
    }
}

async fn put_participant(
    State(app): State<Arc<App>>,
    Path((course, user)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    let role = body
        .get("role")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .unwrap_or("student");
    match admin(&app, &headers).and_then(|_| app.chat().put_participant(&course, &user, role)) {
        Ok(()) => ok(
            StatusCode::OK,
            json!({ "courseId": course, "userId": user, "role": role }),
        ),
        Err(e) => fail(e),
    }
}

async fn delete_participant(
    State(app): State<Arc<App>>,
    Path((course, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match admin(&app, &headers).and_then(|_| app.chat().delete_participant(&course, &user)) {
        Ok(()) => ok(
            StatusCode::OK,
            json!({ "courseId": course, "userId": user }),
        ),
        Err(e) => fail(e),
    }
}

#[tokio::main]
async fn main() {
    let Some(secret) = std::env::var("JWT_SECRET").ok().filter(|s| !s.is_empty()) else {
        eprintln!("JWT_SECRET is required");
        std::process::exit(2);
    };
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().unwrap_or_else(|_| {
            eprintln!("PORT must be a port number");
            std::process::exit(2)
        }),
        Err(_) => 3000,
    };
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let app = Arc::new(App::new(&secret));

    // socket.io buffers a slow client's packets without bound; socketioxide drops what exceeds
    // its per-socket buffer (128 packets by default), so the buffer is made large enough that a
    // burst of broadcasts is queued, as it is in the Node peer, rather than lost.
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(1 << 16)
        .with_state(app.clone())
        .build_layer();
    io.ns("/", socket::on_connect.with(socket::authenticate));

    let router = Router::new()
        .route(
            "/healthz",
            get(|| async { ok(StatusCode::OK, json!({ "status": "ok" })) }),
        )
        .route("/api/v1/chat/courses/{course}", put(put_course))
        .route(
            "/api/v1/chat/courses/{course}/participants/{user}",
            put(put_participant).delete(delete_participant),
        )
        .fallback(|| async { fail(ChatError::new("NOT_FOUND", "route not found")) })
        .layer(layer)
        .with_state(app);

    let listener = match tokio::net::TcpListener::bind((host.as_str(), port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("listen on {host}:{port}: {e}");
            std::process::exit(1);
        }
    };
    let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    println!(
        "peer listening on http://{host}:{bound} (pid {})",
        std::process::id()
    );

    tokio::spawn(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        // In memory: nothing to save, and open sockets need not be waited for.
        std::process::exit(0);
    });
    // Small frames go out at once (Nagle off), as the `ws` package under socket.io sets it.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if let Err(e) = axum::serve(listener, router).await {
        eprintln!("serve: {e}");
        std::process::exit(1);
    }
}
