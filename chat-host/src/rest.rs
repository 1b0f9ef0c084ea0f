//! The contract's REST handlers under `/api/v1/chat` (the routes themselves are
//! [`crate::router`]'s table).
//!
//! Each handler gets the authenticated caller, decodes what its route needs (body, query, path
//! parameters), calls one engine method and encodes the answer in the envelope
//! ([`crate::response`]); the rules are the engine's. Bodies are read through [`crate::http`],
//! under their size cap, before anything is parsed.

use chat_core::{Actor, CourseUpdate, ErrorCode, HistoryQuery, Role};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::dispatch::SendFields;
use crate::http::Fail;
use crate::http::{
    header_str, is_json, is_multipart, json_body, parse_json, query_pairs, read_body,
};
use crate::response::{self, Body};
use crate::state::AppState;

/// A handler's answer: the response, or the refusal to send instead.
pub(crate) type Answer = Result<Response<Body>, Fail>;

/// `POST /send`: a message, as JSON or `multipart/form-data` with one file.
pub(crate) async fn send(state: &AppState, actor: &Actor, req: Request<Incoming>) -> Answer {
    let engine = state.engine();
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
    let message = engine.send(actor, request).await?;
    Ok(response::ok(StatusCode::CREATED, "Message sent", &message))
}

/// `GET /course/{courseId}?page&limit&before&after`: a page of history.
pub(crate) async fn history(
    state: &AppState,
    actor: &Actor,
    req: Request<Incoming>,
    course_id: &str,
) -> Answer {
    let query = history_query(req.uri().query())?;
    let page = state.engine().history(actor, course_id, query).await?;
    Ok(response::ok(
        StatusCode::OK,
        "Messages retrieved",
        &json!({"messages": page.messages, "pagination": page.pagination}),
    ))
}

/// `PUT /edit/{messageId}` with `{"message"}` (or `newMessage`).
pub(crate) async fn edit(
    state: &AppState,
    actor: &Actor,
    req: Request<Incoming>,
    message_id: &str,
) -> Answer {
    #[derive(Deserialize)]
    struct EditBody {
        #[serde(alias = "newMessage")]
        message: String,
    }
    let body: EditBody = json_body(req, state.config().max_body_bytes).await?;
    let message = state
        .engine()
        .edit(actor, message_id, &body.message)
        .await?;
    Ok(response::ok(StatusCode::OK, "Message edited", &message))
}

/// `DELETE /delete/{messageId}`.
pub(crate) async fn delete(state: &AppState, actor: &Actor, message_id: &str) -> Answer {
    let message = state.engine().delete(actor, message_id).await?;
    Ok(response::ok(StatusCode::OK, "Message deleted", &message))
}

/// `PUT /react/{messageId}` with `{"emoji"}`: adds the caller's reaction; the message.
pub(crate) async fn react(
    state: &AppState,
    actor: &Actor,
    req: Request<Incoming>,
    message_id: &str,
) -> Answer {
    #[derive(Deserialize)]
    struct ReactBody {
        emoji: String,
    }
    let body: ReactBody = json_body(req, state.config().max_body_bytes).await?;
    let message = state.engine().react(actor, message_id, &body.emoji).await?;
    Ok(response::ok(StatusCode::OK, "Reaction added", &message))
}

/// `DELETE /react/{messageId}?emoji=`: removes the caller's reaction; the message.
pub(crate) async fn unreact(
    state: &AppState,
    actor: &Actor,
    req: Request<Incoming>,
    message_id: &str,
) -> Answer {
    let emoji = query_pairs(req.uri().query().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "emoji")
        .map(|(_, v)| v)
        .ok_or_else(|| Fail(response::fail(ErrorCode::Validation, "emoji is required")))?;
    let message = state.engine().unreact(actor, message_id, &emoji).await?;
    Ok(response::ok(StatusCode::OK, "Reaction removed", &message))
}

/// `GET /thread/{messageId}?after&limit`: the thread's root and a page of its replies.
pub(crate) async fn thread(
    state: &AppState,
    actor: &Actor,
    req: &Request<Incoming>,
    message_id: &str,
) -> Answer {
    let bad = |what: &str| Fail(response::fail(ErrorCode::Validation, what));
    let (mut after, mut limit) = (None, None);
    for (k, v) in query_pairs(req.uri().query().unwrap_or("")) {
        match k.as_str() {
            "after" => after = Some(v.parse().map_err(|_| bad("after must be a seq"))?),
            "limit" => limit = Some(v.parse().map_err(|_| bad("limit must be a number"))?),
            _ => {}
        }
    }
    let page = state
        .engine()
        .thread(actor, message_id, after, limit)
        .await?;
    Ok(response::ok(StatusCode::OK, "Thread retrieved", &page))
}

/// `GET /course/{courseId}/search?q&limit&before`: ranked hits with highlighted snippets.
pub(crate) async fn search(
    state: &AppState,
    actor: &Actor,
    req: &Request<Incoming>,
    course_id: &str,
) -> Answer {
    let bad = |what: &str| Fail(response::fail(ErrorCode::Validation, what));
    let (mut q, mut limit, mut before) = (String::new(), None, None);
    for (k, v) in query_pairs(req.uri().query().unwrap_or("")) {
        match k.as_str() {
            "q" => q = v,
            "limit" => limit = Some(v.parse().map_err(|_| bad("limit must be a number"))?),
            "before" => before = Some(v.parse().map_err(|_| bad("before must be a seq"))?),
            _ => {}
        }
    }
    let hits = state
        .engine()
        .search(actor, course_id, &q, limit, before)
        .await?;
    Ok(response::ok(StatusCode::OK, "Search results", &hits))
}

/// `PUT /read/{messageId}`.
pub(crate) async fn mark_read(state: &AppState, actor: &Actor, message_id: &str) -> Answer {
    let receipt = state.engine().mark_read(actor, message_id).await?;
    Ok(response::ok(
        StatusCode::OK,
        "Message marked as read",
        &receipt,
    ))
}

/// `GET /online/{courseId}`.
pub(crate) async fn online(state: &AppState, actor: &Actor, course_id: &str) -> Answer {
    let users = state.engine().online_users(actor, course_id).await?;
    Ok(response::ok(
        StatusCode::OK,
        "Online users retrieved",
        &users,
    ))
}

/// `PUT /status` with `{"isOnline"}`.
pub(crate) async fn status(state: &AppState, actor: &Actor, req: Request<Incoming>) -> Answer {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct StatusBody {
        is_online: bool,
    }
    let body: StatusBody = json_body(req, state.config().max_body_bytes).await?;
    let user = state.engine().set_status(actor, body.is_online).await?;
    Ok(response::ok(StatusCode::OK, "Status updated", &user))
}

/// `GET /files/{fileId}`: the bytes, with headers that keep a browser from running them.
pub(crate) async fn file(state: &AppState, actor: &Actor, file_id: &str) -> Answer {
    let (info, bytes) = state.engine().file(actor, file_id).await?;
    let inline = info.mime_type.starts_with("image/") || info.mime_type.starts_with("audio/");
    let disposition = content_disposition(if inline { "inline" } else { "attachment" }, &info.name);
    let mut resp = Response::new(crate::response::full(bytes));
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

/// `PUT /courses/{courseId}` with `{"name", "chatEnabled"}` (provisioning).
pub(crate) async fn put_course(
    state: &AppState,
    actor: &Actor,
    req: Request<Incoming>,
    course_id: &str,
) -> Answer {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct CourseBody {
        name: Option<String>,
        chat_enabled: Option<bool>,
        archived: Option<bool>,
    }
    let body: CourseBody = json_body(req, state.config().max_body_bytes).await?;
    let update = CourseUpdate {
        name: body.name,
        chat_enabled: body.chat_enabled,
        archived: body.archived,
    };
    let course = state.engine().put_course(actor, course_id, update).await?;
    Ok(response::ok(StatusCode::OK, "Course saved", &course))
}

/// `PUT /courses/{courseId}/participants/{userId}` with `{"role"}` (provisioning).
pub(crate) async fn enroll(
    state: &AppState,
    actor: &Actor,
    req: Request<Incoming>,
    course_id: &str,
    user_id: &str,
) -> Answer {
    #[derive(Deserialize, Default)]
    struct ParticipantBody {
        role: Option<String>,
    }
    let body: ParticipantBody = json_body(req, state.config().max_body_bytes).await?;
    let role = match body.role.as_deref() {
        // The core decides what an enrolment without a role is.
        None => Role::default(),
        Some(r) => r.parse::<Role>()?,
    };
    let p = state
        .engine()
        .enroll(actor, course_id, user_id, role)
        .await?;
    Ok(response::ok(
        StatusCode::OK,
        "Participant saved",
        &json!({"courseId": course_id, "userId": p.user_id, "role": p.role}),
    ))
}

/// `DELETE /courses/{courseId}/participants/{userId}` (provisioning).
pub(crate) async fn unenroll(
    state: &AppState,
    actor: &Actor,
    course_id: &str,
    user_id: &str,
) -> Answer {
    state.engine().unenroll(actor, course_id, user_id).await?;
    Ok(response::ok(
        StatusCode::OK,
        "Participant removed",
        &json!({"courseId": course_id, "userId": user_id}),
    ))
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

fn history_query(query: Option<&str>) -> Result<HistoryQuery, chat_core::Error> {
    let mut q = HistoryQuery::default();
    for (k, v) in query_pairs(query.unwrap_or("")) {
        let bad = || chat_core::Error::Validation(format!("{k} must be a positive whole number"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_are_safe() {
        let d = content_disposition("attachment", "a\"b\r\n.pdf");
        assert!(d.starts_with("attachment; filename=\"a_b__.pdf\""));
        assert!(HeaderValue::from_str(&d).is_ok());
    }
}
