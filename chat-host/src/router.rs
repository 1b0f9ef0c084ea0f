//! Which request goes where: the path table of the server, and which browser pages may call each
//! route.
//!
//! The table is written once: [`Target::of`] names the target of a path (`/healthz`, the
//! socket.io-client bundles, `/socket.io/`, `/ws`, `/api/v1/chat/*`), [`Endpoint::of`] the REST
//! route of a method and path under [`API`], and the same values say which CORS answer the route
//! gets ([`crate::cors`]): the REST routes and `/healthz` answer preflights for every method they
//! have, `/socket.io/` for `GET` and `POST`, the static client bundles carry CORS headers without
//! a preflight, and WebSockets have none. A REST route is known before its caller is
//! authenticated, so an unknown route is a `404`, never a `401`.
//!
//! A handler that panics anyway answers `INTERNAL` instead of dropping the connection.

use std::panic::AssertUnwindSafe;

use chat_core::ErrorCode;
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::http::{percent_decode, Fail};
use crate::response::{self, Body};
use crate::rest::{self, Answer};
use crate::socketio::client_bundle;
use crate::state::AppState;
use crate::{archive, moderation, push};

/// The prefix of the contract's REST routes.
pub const API: &str = "/api/v1/chat";

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `/healthz`.
    Health,
    /// One of the socket.io-client bundles (when they are served).
    ClientBundle(usize),
    /// `/socket.io/` (Engine.IO and Socket.IO on top of it).
    SocketIo,
    /// `/ws`, the native event protocol.
    WebSocket,
    /// `/api/v1/chat` and below: the REST routes.
    Api,
    /// Anything else.
    Unknown,
}

/// The CORS answer of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cors {
    /// No CORS headers.
    None,
    /// CORS headers; an `OPTIONS` request is a preflight allowing these methods.
    Preflight(&'static str),
    /// CORS headers on the answer, no preflight (a static file).
    Simple,
}

impl Target {
    /// The target of a path.
    fn of(path: &str, serve_client: bool) -> Target {
        if path == "/healthz" {
            return Target::Health;
        }
        if serve_client {
            if let Some(file) = client_bundle::lookup(path) {
                return Target::ClientBundle(file);
            }
        }
        if path == crate::socketio::PATH || path == "/socket.io" {
            return Target::SocketIo;
        }
        if path == "/ws" {
            return Target::WebSocket;
        }
        let api = path
            .strip_prefix(API)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if api {
            Target::Api
        } else {
            Target::Unknown
        }
    }

    /// Which browser pages may call it, and how.
    fn cors(self) -> Cors {
        match self {
            Target::Health | Target::Api => Cors::Preflight("GET, POST, PUT, DELETE, OPTIONS"),
            Target::SocketIo => Cors::Preflight("GET, POST, OPTIONS"),
            Target::ClientBundle(_) => Cors::Simple,
            Target::WebSocket | Target::Unknown => Cors::None,
        }
    }
}

/// A REST route of the contract, with its path parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint<'a> {
    Send,
    History {
        course_id: &'a str,
    },
    Edit {
        message_id: &'a str,
    },
    Delete {
        message_id: &'a str,
    },
    MarkRead {
        message_id: &'a str,
    },
    React {
        message_id: &'a str,
    },
    Unreact {
        message_id: &'a str,
    },
    Online {
        course_id: &'a str,
    },
    Thread {
        message_id: &'a str,
    },
    Search {
        course_id: &'a str,
    },
    Export {
        course_id: &'a str,
    },
    PushSubscribe,
    PushUnsubscribe,
    PushSubscriptions,
    VapidKey,
    DropCourse {
        course_id: &'a str,
    },
    Pin {
        message_id: &'a str,
    },
    Unpin {
        message_id: &'a str,
    },
    Pinned {
        course_id: &'a str,
    },
    Mute {
        course_id: &'a str,
        user_id: &'a str,
    },
    Unmute {
        course_id: &'a str,
        user_id: &'a str,
    },
    Ban {
        course_id: &'a str,
        user_id: &'a str,
    },
    Unban {
        course_id: &'a str,
        user_id: &'a str,
    },
    Restrictions {
        course_id: &'a str,
    },
    Flag {
        message_id: &'a str,
    },
    Flags {
        course_id: &'a str,
    },
    ResolveFlag {
        flag_id: &'a str,
    },
    Audit,
    Status,
    File {
        file_id: &'a str,
    },
    PutCourse {
        course_id: &'a str,
    },
    Enroll {
        course_id: &'a str,
        user_id: &'a str,
    },
    Unenroll {
        course_id: &'a str,
        user_id: &'a str,
    },
}

impl<'a> Endpoint<'a> {
    /// The REST route of a method and the (decoded) path segments after `/api/v1/chat/`.
    fn of(method: &Method, segments: &[&'a str]) -> Option<Endpoint<'a>> {
        Some(match (method, segments) {
            (&Method::POST, ["send"]) => Endpoint::Send,
            (&Method::GET, ["course", course_id]) => Endpoint::History { course_id },
            (&Method::PUT, ["edit", message_id]) => Endpoint::Edit { message_id },
            (&Method::DELETE, ["delete", message_id]) => Endpoint::Delete { message_id },
            (&Method::PUT, ["read", message_id]) => Endpoint::MarkRead { message_id },
            (&Method::PUT, ["react", message_id]) => Endpoint::React { message_id },
            (&Method::DELETE, ["react", message_id]) => Endpoint::Unreact { message_id },
            (&Method::GET, ["online", course_id]) => Endpoint::Online { course_id },
            (&Method::GET, ["thread", message_id]) => Endpoint::Thread { message_id },
            (&Method::GET, ["course", course_id, "search"]) => Endpoint::Search { course_id },
            (&Method::GET, ["course", course_id, "export"]) => Endpoint::Export { course_id },
            (&Method::PUT, ["push", "subscription"]) => Endpoint::PushSubscribe,
            (&Method::DELETE, ["push", "subscription"]) => Endpoint::PushUnsubscribe,
            (&Method::GET, ["push", "subscriptions"]) => Endpoint::PushSubscriptions,
            (&Method::GET, ["push", "vapid-public-key"]) => Endpoint::VapidKey,
            (&Method::DELETE, ["courses", course_id]) => Endpoint::DropCourse { course_id },
            (&Method::PUT, ["pin", message_id]) => Endpoint::Pin { message_id },
            (&Method::DELETE, ["pin", message_id]) => Endpoint::Unpin { message_id },
            (&Method::GET, ["course", course_id, "pinned"]) => Endpoint::Pinned { course_id },
            (&Method::PUT, ["course", course_id, "mute", user_id]) => {
                Endpoint::Mute { course_id, user_id }
            }
            (&Method::DELETE, ["course", course_id, "mute", user_id]) => {
                Endpoint::Unmute { course_id, user_id }
            }
            (&Method::PUT, ["course", course_id, "ban", user_id]) => {
                Endpoint::Ban { course_id, user_id }
            }
            (&Method::DELETE, ["course", course_id, "ban", user_id]) => {
                Endpoint::Unban { course_id, user_id }
            }
            (&Method::GET, ["course", course_id, "restrictions"]) => {
                Endpoint::Restrictions { course_id }
            }
            (&Method::POST, ["flag", message_id]) => Endpoint::Flag { message_id },
            (&Method::GET, ["course", course_id, "flags"]) => Endpoint::Flags { course_id },
            (&Method::POST, ["flags", flag_id, "resolve"]) => Endpoint::ResolveFlag { flag_id },
            (&Method::GET, ["audit"]) => Endpoint::Audit,
            (&Method::PUT, ["status"]) => Endpoint::Status,
            (&Method::GET, ["files", file_id]) => Endpoint::File { file_id },
            (&Method::PUT, ["courses", course_id]) => Endpoint::PutCourse { course_id },
            (&Method::PUT, ["courses", course_id, "participants", user_id]) => {
                Endpoint::Enroll { course_id, user_id }
            }
            (&Method::DELETE, ["courses", course_id, "participants", user_id]) => {
                Endpoint::Unenroll { course_id, user_id }
            }
            _ => return None,
        })
    }
}

/// Answers one request. Never fails and never panics outward.
pub async fn handle(state: AppState, req: Request<Incoming>) -> Response<Body> {
    let target = Target::of(req.uri().path(), state.config().serve_client);
    let cors = target.cors();
    let allowed = &state.config().cors_origins;
    if let Cors::Preflight(methods) = cors {
        if req.method() == Method::OPTIONS {
            return crate::cors::preflight(req.headers(), allowed, methods);
        }
    }
    let origin = (cors != Cors::None)
        .then(|| crate::cors::origin(req.headers(), allowed))
        .flatten();
    let mut resp = match AssertUnwindSafe(serve(state, target, req))
        .catch_unwind()
        .await
    {
        Ok(resp) => resp,
        Err(_) => {
            tracing::error!("a request handler panicked");
            response::fail(ErrorCode::Internal, "internal error")
        }
    };
    if cors != Cors::None {
        crate::cors::allow(&mut resp, origin);
    }
    resp
}

async fn serve(state: AppState, target: Target, req: Request<Incoming>) -> Response<Body> {
    let method = req.method();
    match target {
        Target::Health if method == Method::GET || method == Method::HEAD => {
            response::ok(StatusCode::OK, "ok", &json!({"status": "ok"}))
        }
        Target::ClientBundle(file) => client_bundle::serve(method, req.headers(), file).await,
        Target::SocketIo => crate::socketio::handle(state, req).await,
        Target::WebSocket if method == Method::GET => crate::ws::upgrade(state, req),
        Target::Api => api(state, req).await.unwrap_or_else(|Fail(resp)| resp),
        Target::Health | Target::WebSocket | Target::Unknown => not_found().0,
    }
}

/// A REST route: known before the caller is authenticated, then handled.
async fn api(state: AppState, req: Request<Incoming>) -> Answer {
    let Some(rest) = req
        .uri()
        .path()
        .strip_prefix(API)
        .and_then(|r| r.strip_prefix('/'))
    else {
        return Err(not_found());
    };
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let Some(endpoint) = Endpoint::of(req.method(), &segments) else {
        return Err(not_found());
    };
    let actor = state.auth().from_request(req.headers(), None, false)?;
    let (state, actor) = (&state, &actor);
    match endpoint {
        Endpoint::Send => rest::send(state, actor, req).await,
        Endpoint::History { course_id } => rest::history(state, actor, req, course_id).await,
        Endpoint::Edit { message_id } => rest::edit(state, actor, req, message_id).await,
        Endpoint::Delete { message_id } => rest::delete(state, actor, message_id).await,
        Endpoint::MarkRead { message_id } => rest::mark_read(state, actor, message_id).await,
        Endpoint::React { message_id } => rest::react(state, actor, req, message_id).await,
        Endpoint::Unreact { message_id } => rest::unreact(state, actor, req, message_id).await,
        Endpoint::Online { course_id } => rest::online(state, actor, course_id).await,
        Endpoint::Thread { message_id } => rest::thread(state, actor, &req, message_id).await,
        Endpoint::Search { course_id } => rest::search(state, actor, &req, course_id).await,
        Endpoint::Export { course_id } => archive::export(state, actor, course_id).await,
        Endpoint::PushSubscribe => push::routes::subscribe(state, actor, req).await,
        Endpoint::PushUnsubscribe => push::routes::unsubscribe(state, actor, &req).await,
        Endpoint::PushSubscriptions => push::routes::list(state, actor).await,
        Endpoint::VapidKey => push::routes::vapid_key(state).await,
        Endpoint::DropCourse { course_id } => archive::drop_course(state, actor, course_id).await,
        Endpoint::Pin { message_id } => moderation::pin(state, actor, message_id).await,
        Endpoint::Unpin { message_id } => moderation::unpin(state, actor, message_id).await,
        Endpoint::Pinned { course_id } => moderation::pinned(state, actor, course_id).await,
        Endpoint::Mute { course_id, user_id } => {
            moderation::mute(state, actor, req, course_id, user_id).await
        }
        Endpoint::Unmute { course_id, user_id } => {
            moderation::unmute(state, actor, course_id, user_id).await
        }
        Endpoint::Ban { course_id, user_id } => {
            moderation::ban(state, actor, course_id, user_id).await
        }
        Endpoint::Unban { course_id, user_id } => {
            moderation::unban(state, actor, course_id, user_id).await
        }
        Endpoint::Restrictions { course_id } => {
            moderation::restrictions(state, actor, course_id).await
        }
        Endpoint::Flag { message_id } => moderation::flag(state, actor, req, message_id).await,
        Endpoint::Flags { course_id } => moderation::flags(state, actor, &req, course_id).await,
        Endpoint::ResolveFlag { flag_id } => {
            moderation::resolve_flag(state, actor, req, flag_id).await
        }
        Endpoint::Audit => moderation::audit(state, actor, &req).await,
        Endpoint::Status => rest::status(state, actor, req).await,
        Endpoint::File { file_id } => rest::file(state, actor, file_id).await,
        Endpoint::PutCourse { course_id } => rest::put_course(state, actor, req, course_id).await,
        Endpoint::Enroll { course_id, user_id } => {
            rest::enroll(state, actor, req, course_id, user_id).await
        }
        Endpoint::Unenroll { course_id, user_id } => {
            rest::unenroll(state, actor, course_id, user_id).await
        }
    }
}

fn not_found() -> Fail {
    Fail(response::fail(ErrorCode::NotFound, "route not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_their_cors() {
        assert_eq!(Target::of("/healthz", true), Target::Health);
        assert_eq!(Target::of("/api/v1/chat", true), Target::Api);
        assert_eq!(Target::of("/api/v1/chat/send", true), Target::Api);
        assert_eq!(Target::of("/api/v1/chatty", true), Target::Unknown);
        assert_eq!(Target::of("/socket.io/", true), Target::SocketIo);
        assert_eq!(Target::of("/socket.io", true), Target::SocketIo);
        assert!(matches!(
            Target::of("/socket.io/socket.io.js", true),
            Target::ClientBundle(_)
        ));
        assert_eq!(
            Target::of("/socket.io/socket.io.js", false),
            Target::Unknown
        );
        assert_eq!(Target::of("/ws", true), Target::WebSocket);
        assert_eq!(Target::WebSocket.cors(), Cors::None);
        assert_eq!(Target::Unknown.cors(), Cors::None);
        assert_eq!(
            Target::SocketIo.cors(),
            Cors::Preflight("GET, POST, OPTIONS")
        );
    }

    #[test]
    fn endpoints_by_method_and_path() {
        assert_eq!(Endpoint::of(&Method::POST, &["send"]), Some(Endpoint::Send));
        assert_eq!(Endpoint::of(&Method::GET, &["send"]), None);
        assert_eq!(
            Endpoint::of(&Method::DELETE, &["courses", "c", "participants", "u"]),
            Some(Endpoint::Unenroll {
                course_id: "c",
                user_id: "u"
            })
        );
        assert_eq!(Endpoint::of(&Method::GET, &["course", "c", "x"]), None);
    }
}
