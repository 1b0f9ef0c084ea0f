//! The Socket.IO side: the token check of the handshake, and the events chat-bench uses
//! (`join-course`, `leave-course`, `send-message`, with `{ok, data}` / `{ok: false, error}`
//! acknowledgements) with the broadcasts `server.js` makes for them (`new-message`,
//! `online-users`, `user-joined`, `user-left`).

use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use socketioxide::SocketIo;

use crate::chat::{now_iso, App, Caller, ChatError, Message, User};

/// Connect middleware: the token from the handshake's `auth.token` (or `?token=`) must verify;
/// a refusal is the namespace's `connect_error` with the reason as its message.
pub async fn authenticate(
    s: SocketRef,
    State(app): State<Arc<App>>,
    TryData(auth): TryData<Value>,
) -> Result<(), ChatError> {
    let from_auth = auth
        .ok()
        .and_then(|a| a.get("token").and_then(Value::as_str).map(String::from));
    let from_query = s.req_parts().uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token=").map(String::from))
    });
    let caller = app.authenticate(from_auth.or(from_query).as_deref())?;
    s.extensions.insert(caller);
    Ok(())
}

/// A connected socket: counts the user online and registers the event handlers.
pub async fn on_connect(
    s: SocketRef,
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) {
    {
        let mut chat = app.chat();
        let n = chat.connections.entry(caller.id.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            if let Some(u) = chat.users.get_mut(&caller.id) {
                u.is_online = true;
            }
        }
    }
    s.on("join-course", join);
    s.on("leave-course", leave);
    s.on("send-message", send);
    s.on_disconnect(disconnect);
}

/// The acknowledgement of `server.js`'s `handle`: `{ok: true, data}` or `{ok: false, error}`.
#[derive(Serialize)]
struct Reply<T> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
}

fn reply<T: Serialize>(ack: AckSender, result: Result<T, ChatError>) {
    let r = match result {
        Ok(data) => Reply {
            ok: true,
            data: Some(data),
            error: None,
        },
        Err(e) => Reply {
            ok: false,
            data: None,
            error: Some(e.to_json()),
        },
    };
    let _ = ack.send(&r);
}

fn course_id(d: &Value) -> Option<&str> {
    d.get("courseId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// What a join changed: the course, whether this is the user's first socket in its room, the
/// online participants, the user, and the messages after `sinceSeq`.
type Joined = (String, bool, Vec<User>, Option<User>, Vec<Arc<Message>>);

fn join_room(s: &SocketRef, app: &App, caller: &Caller, d: &Value) -> Result<Joined, ChatError> {
    let mut chat = app.chat();
    let cid = chat.access(caller, course_id(d))?.id.clone();
    let here = s.rooms().iter().any(|r| *r == cid);
    let course = chat.course_mut(&cid)?;
    let count = course.joined.entry(caller.id.clone()).or_insert(0);
    let first = *count - usize::from(here) == 0;
    if !here {
        *count += 1;
        s.join(cid.clone());
    }
    let missed = match d.get("sinceSeq").and_then(Value::as_f64) {
        Some(since) => course
            .messages
            .iter()
            .filter(|m| m.seq as f64 > since)
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let online = chat.online(&cid);
    Ok((cid, first, online, chat.user_view(&caller.id), missed))
}

async fn join(
    s: SocketRef,
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    TryData(d): TryData<Value>,
    ack: AckSender,
) {
    let d = d.unwrap_or(Value::Null);
    let (cid, first, online, me, missed) = match join_room(&s, &app, &caller, &d) {
        Ok(j) => j,
        Err(e) => return reply::<()>(ack, Err(e)),
    };
    let presence = json!({ "courseId": cid, "users": online });
    let _ = s.emit("online-users", &presence);
    if first {
        let _ = s
            .to(cid.clone())
            .emit("user-joined", &json!({ "courseId": cid, "user": me }))
            .await;
        let _ = s.to(cid.clone()).emit("online-users", &presence).await;
    }
    for m in missed {
        let _ = s.emit("new-message", &*m);
    }
    reply(ack, Ok(presence));
}

/// Leaves the course's room; the user when it was their last socket there.
fn leave_room(
    s: &SocketRef,
    app: &App,
    caller: &Caller,
    d: &Value,
) -> Result<(String, Option<User>), ChatError> {
    let mut chat = app.chat();
    let cid = chat.course(course_id(d))?.id.clone();
    let mut gone = false;
    if s.rooms().iter().any(|r| *r == cid) {
        s.leave(cid.clone());
        gone = forget_join(&mut chat.course_mut(&cid)?.joined, caller);
    }
    Ok((cid, gone.then(|| chat.user_view(&caller.id)).flatten()))
}

async fn leave(
    s: SocketRef,
    io: SocketIo,
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    TryData(d): TryData<Value>,
    ack: AckSender,
) {
    let d = d.unwrap_or(Value::Null);
    match leave_room(&s, &app, &caller, &d) {
        Ok((cid, gone)) => {
            if let Some(me) = gone {
                let _ = io
                    .to(cid.clone())
                    .emit("user-left", &json!({ "courseId": cid, "user": me }))
                    .await;
            }
            reply(ack, Ok(json!({ "courseId": cid })));
        }
        Err(e) => reply::<()>(ack, Err(e)),
    }
}

/// One socket of the user leaves a course's room; true when it was the user's last there.
fn forget_join(joined: &mut std::collections::HashMap<Arc<str>, usize>, caller: &Caller) -> bool {
    match joined.get_mut(&caller.id) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        _ => {
            joined.remove(&caller.id);
            true
        }
    }
}

async fn send(
    io: SocketIo,
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    TryData(d): TryData<Value>,
    ack: AckSender,
) {
    let d = d.unwrap_or(Value::Null);
    let sent = app.chat().send(&caller, &d);
    match sent {
        Ok((m, created)) => {
            if created {
                let _ = io.to(m.course_id.clone()).emit("new-message", &*m).await;
            }
            reply(ack, Ok(&*m));
        }
        Err(e) => reply::<()>(ack, Err(e)),
    }
}

/// The user's last socket makes the user offline; each course room the socket was in hears that
/// the user left, when no other socket of theirs is there.
async fn disconnect(
    s: SocketRef,
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) {
    let mut notices = Vec::new();
    {
        let mut chat = app.chat();
        let left = chat.connections.get(&caller.id).copied().unwrap_or(1) - 1;
        if left == 0 {
            chat.connections.remove(&caller.id);
            if let Some(u) = chat.users.get_mut(&caller.id) {
                u.is_online = false;
                u.last_seen = Some(now_iso());
            }
        } else {
            chat.connections.insert(caller.id.clone(), left);
        }
        for room in s.rooms() {
            let Some(course) = chat.courses.get_mut(&*room) else {
                continue;
            };
            if forget_join(&mut course.joined, &caller) {
                notices.push((
                    room.to_string(),
                    chat.user_view(&caller.id),
                    chat.online(&room),
                ));
            }
        }
    }
    for (cid, me, online) in notices {
        let _ = s
            .to(cid.clone())
            .emit("user-left", &json!({ "courseId": cid, "user": me }))
            .await;
        let _ = s
            .to(cid.clone())
            .emit("online-users", &json!({ "courseId": cid, "users": online }))
            .await;
    }
}
