//! The HTTP routes: `/api/v1/chat/*` (the contract's REST and provisioning), `/healthz`, the
//! `/ws` upgrade, and `/socket.io/` (handed to [`crate::socketio`]).
//!
//! Each handler authenticates, decodes the request, calls one engine method and encodes the
//! answer in the envelope ([`crate::response`]); the rules are the engine's. Bodies are read with
//! a size cap before anything is parsed, and a handler that panics anyway answers `INTERNAL`
//! instead of dropping the connection.

use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use chat_core::{Actor, CourseUpdate, Error, ErrorCode, HistoryQuery, Role};
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use crate::dispatch::{decode, SendFields};
use crate::response::{self, Body};
use crate::state::AppState;

/// The prefix of the contract's REST routes.
pub const API: &str = "/api/v1/chat";

/// A refusal: the response to send instead.
pub(crate) struct Fail(pub(crate) Response<Body>);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail(response::error(&e))
    }
}

type Answer = Result<Response<Body>, Fail>;

/// Answers one request. Never fails and never panics outward.
pub async fn handle(state: AppState, req: Request<Incoming>) -> Response<Body> {
    // Browser pages on other origins may call the REST routes ([`crate::cors`]); `/socket.io/`
    // answers CORS itself and WebSockets have none.
    let path = req.uri().path();
    let cross_origin = path == "/healthz"
        || path
            .strip_prefix(API)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    let allowed = &state.config().cors_origins;
    if cross_origin && req.method() == Method::OPTIONS {
        return crate::cors::preflight(req.headers(), allowed, "GET, POST, PUT, DELETE, OPTIONS");
    }
    let origin = cross_origin
        .then(|| crate::cors::origin(req.headers(), allowed))
        .flatten();
    let mut resp = match AssertUnwindSafe(route(state, req)).catch_unwind().await {
        Ok(Ok(resp)) | Ok(Err(Fail(resp))) => resp,
        Err(_) => {
            tracing::error!("a request handler panicked");
            response::fail(ErrorCode::Internal, "internal error")
        }
    };
    if cross_origin {
        crate::cors::allow(&mut resp, origin);
    }
    resp
}

async fn route(state: AppState, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path == "/healthz" {
        return match method {
            Method::GET | Method::HEAD => {
                Ok(response::ok(StatusCode::OK, "ok", &json!({"status": "ok"})))
            }
            _ => Err(not_found()),
        };
    }
    if let Some(file) = crate::socketio::client_bundle::lookup(&path) {
        if state.config().serve_client {
            let origin = crate::cors::origin(req.headers(), &state.config().cors_origins);
            let mut resp =
                crate::socketio::client_bundle::serve(&method, req.headers(), file).await;
            crate::cors::allow(&mut resp, origin);
            return Ok(resp);
        }
    }
    if path == crate::socketio::PATH || path == "/socket.io" {
        return Ok(crate::socketio::transport::handle(state, req).await);
    }
    if path == "/ws" {
        return if method == Method::GET {
            Ok(crate::ws::upgrade(state, req))
        } else {
            Err(not_found())
        };
    }
    let Some(rest) = path.strip_prefix(API).and_then(|r| r.strip_prefix('/')) else {
        return Err(not_found());
    };
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let route_known = matches!(
        (&method, seg.as_slice()),
        (&Method::POST, ["send"])
            | (&Method::GET, ["course", _])
            | (&Method::PUT, ["edit", _])
            | (&Method::DELETE, ["delete", _])
            | (&Method::PUT, ["read", _])
            | (&Method::GET, ["online", _])
            | (&Method::PUT, ["status"])
            | (&Method::GET, ["files", _])
            | (&Method::PUT, ["courses", _])
            | (
                &Method::PUT | &Method::DELETE,
                ["courses", _, "participants", _]
            )
    );
    if !route_known {
        return Err(not_found());
    }
    let actor = state.auth().from_request(req.headers(), None, false)?;
    let engine = state.engine().clone();
    match (&method, seg.as_slice()) {
        (&Method::POST, ["send"]) => {
            let request = if is_multipart(&req) {
                let limit = engine.config().max_file_bytes as usize + state.config().max_body_bytes;
                let ctype = header_str(&req, CONTENT_TYPE).to_string();
                let body = read_body(req, limit).await?;
                crate::multipart::parse_send(&ctype, body, engine.config().max_file_bytes).await?
            } else if is_json(&req) {
                let body = read_body(req, state.config().max_body_bytes).await?;
                parse_json::<SendFields>(&body)?.into_request()?
            } else {
                return Err(Fail(response::fail(
                    ErrorCode::UnsupportedMediaType,
                    "send a JSON body or multipart/form-data",
                )));
            };
            let message = engine.send(&actor, request).await?;
            Ok(response::ok(StatusCode::CREATED, "Message sent", &message))
        }
        (&Method::GET, ["course", course_id]) => {
            let query = history_query(req.uri().query())?;
            let page = engine.history(&actor, course_id, query).await?;
            Ok(response::ok(
                StatusCode::OK,
                "Messages retrieved",
                &json!({"messages": page.messages, "pagination": page.pagination}),
            ))
        }
        (&Method::PUT, ["edit", message_id]) => {
            #[derive(Deserialize)]
            struct EditBody {
                #[serde(alias = "newMessage")]
                message: String,
            }
            let body: EditBody = json_body(req, &state).await?;
            let message = engine.edit(&actor, message_id, &body.message).await?;
            Ok(response::ok(StatusCode::OK, "Message edited", &message))
        }
        (&Method::DELETE, ["delete", message_id]) => {
            let message = engine.delete(&actor, message_id).await?;
            Ok(response::ok(StatusCode::OK, "Message deleted", &message))
        }
        (&Method::PUT, ["read", message_id]) => {
            let receipt = engine.mark_read(&actor, message_id).await?;
            Ok(response::ok(
                StatusCode::OK,
                "Message marked as read",
                &receipt,
            ))
        }
        (&Method::GET, ["online", course_id]) => {
            let users = engine.online_users(&actor, course_id).await?;
            Ok(response::ok(
                StatusCode::OK,
                "Online users retrieved",
                &users,
            ))
        }
        (&Method::PUT, ["status"]) => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct StatusBody {
                is_online: bool,
            }
            let body: StatusBody = json_body(req, &state).await?;
            let user = engine.set_status(&actor, body.is_online).await?;
            Ok(response::ok(StatusCode::OK, "Status updated", &user))
        }
        (&Method::GET, ["files", file_id]) => file(&engine, &actor, file_id).await,
        (&Method::PUT, ["courses", course_id]) => {
            #[derive(Deserialize, Default)]
            #[serde(rename_all = "camelCase")]
            struct CourseBody {
                name: Option<String>,
                chat_enabled: Option<bool>,
            }
            let body: CourseBody = json_body(req, &state).await?;
            let update = CourseUpdate {
                name: body.name,
                chat_enabled: body.chat_enabled,
            };
            let course = engine.put_course(&actor, course_id, update).await?;
            Ok(response::ok(StatusCode::OK, "Course saved", &course))
        }
        (&Method::PUT, ["courses", course_id, "participants", user_id]) => {
            #[derive(Deserialize, Default)]
            struct ParticipantBody {
                role: Option<String>,
            }
            let body: ParticipantBody = json_body(req, &state).await?;
            let role = match body.role.as_deref() {
                None => Role::Student,
                Some(r) => r.parse::<Role>()?,
            };
            let p = engine.enroll(&actor, course_id, user_id, role).await?;
            Ok(response::ok(
                StatusCode::OK,
                "Participant saved",
                &json!({"courseId": course_id, "userId": p.user_id, "role": p.role}),
            ))
        }
        (&Method::DELETE, ["courses", course_id, "participants", user_id]) => {
            engine.unenroll(&actor, course_id, user_id).await?;
            Ok(response::ok(
                StatusCode::OK,
                "Participant removed",
                &json!({"courseId": course_id, "userId": user_id}),
            ))
        }
        _ => Err(not_found()),
    }
}

fn not_found() -> Fail {
    Fail(response::fail(ErrorCode::NotFound, "route not found"))
}

async fn file(engine: &chat_core::Engine, actor: &Actor, file_id: &str) -> Answer {
    let (info, bytes) = engine.file(actor, file_id).await?;
    let inline = info.mime_type.starts_with("image/") || info.mime_type.starts_with("audio/");
    let disposition = content_disposition(if inline { "inline" } else { "attachment" }, &info.name);
    let mut resp = Response::new(Full::new(bytes));
    let h = resp.headers_mut();
    let ctype = HeaderValue::from_str(&info.mime_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    h.insert(CONTENT_TYPE, ctype);
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        "cache-control",
        HeaderValue::from_static("private, max-age=86400"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert("content-disposition", v);
    }
    Ok(resp)
}

/// `inline|attachment; filename="ascii"; filename*=UTF-8''percent-encoded`.
pub(crate) fn content_disposition(kind: &str, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

fn header_str<B>(req: &Request<B>, name: hyper::header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn is_multipart<B>(req: &Request<B>) -> bool {
    header_str(req, CONTENT_TYPE)
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
}

fn is_json<B>(req: &Request<B>) -> bool {
    let c = header_str(req, CONTENT_TYPE).to_ascii_lowercase();
    c.is_empty() || c.starts_with("application/json")
}

/// Reads a body of at most `limit` bytes (`PAYLOAD_TOO_LARGE` past it).
pub(crate) async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Fail> {
    let too_large = || {
        Fail(response::fail(
            ErrorCode::PayloadTooLarge,
            &format!("request body is larger than {limit} bytes"),
        ))
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => {
            tracing::debug!(error = %e, "request body failed");
            Err(Fail(response::fail(
                ErrorCode::Validation,
                "could not read the request body",
            )))
        }
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| Error::Validation(format!("invalid JSON: {e}")))?
    };
    decode(value)
}

async fn json_body<T: DeserializeOwned>(
    req: Request<Incoming>,
    state: &AppState,
) -> Result<T, Fail> {
    if !is_json(&req) {
        return Err(Fail(response::fail(
            ErrorCode::UnsupportedMediaType,
            "send a JSON body",
        )));
    }
    let body = read_body(req, state.config().max_body_bytes).await?;
    Ok(parse_json(&body)?)
}

fn history_query(query: Option<&str>) -> Result<HistoryQuery, Error> {
    let mut q = HistoryQuery::default();
    for (k, v) in query_pairs(query.unwrap_or("")) {
        let bad = || Error::Validation(format!("{k} must be a positive whole number"));
        match k.as_str() {
            "page" => q.page = Some(v.parse().map_err(|_| bad())?),
            "limit" => q.limit = Some(v.parse().map_err(|_| bad())?),
            "before" => q.before = Some(v.parse().map_err(|_| bad())?),
            "after" => q.after = Some(v.parse().map_err(|_| bad())?),
            _ => {}
        }
    }
    Ok(q)
}

/// The decoded `key=value` pairs of a query string.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// `%XX` decoding; malformed escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_is_total() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%2"), "%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn dispositions_are_safe() {
        let d = content_disposition("attachment", "a\"b\r\n.pdf");
        assert!(d.starts_with("attachment; filename=\"a_b__.pdf\""));
        assert!(HeaderValue::from_str(&d).is_ok());
    }
}
