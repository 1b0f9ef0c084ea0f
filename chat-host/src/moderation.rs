//! The moderation routes: pins, mutes, bans, flags and the audit log over REST. Each is one
//! call into `chat_core::Engine` (which holds every rule: who moderates, what may be restricted,
//! the limits); this file only reads bodies and query strings and wraps answers.

use std::time::Duration;

use chat_core::{Actor, ErrorCode};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::http::{json_body, query_pairs, Fail};
use crate::response;
use crate::rest::Answer;
use crate::state::AppState;

fn bad(message: &str) -> Fail {
    Fail(response::fail(ErrorCode::Validation, message))
}

/// `PUT /pin/{messageId}`: pins the message; the message.
pub(crate) async fn pin(state: &AppState, actor: &Actor, message_id: &str) -> Answer {
    let message = state.engine().pin(actor, message_id).await?;
    Ok(response::ok(StatusCode::OK, "Message pinned", &message))
}

/// `DELETE /pin/{messageId}`: unpins the message; the message.
pub(crate) async fn unpin(state: &AppState, actor: &Actor, message_id: &str) -> Answer {
    let message = state.engine().unpin(actor, message_id).await?;
    Ok(response::ok(StatusCode::OK, "Message unpinned", &message))
}

/// `GET /course/{courseId}/pinned`: the pinned messages, oldest first.
pub(crate) async fn pinned(state: &AppState, actor: &Actor, course_id: &str) -> Answer {
    let messages = state.engine().pinned(actor, course_id).await?;
    Ok(response::ok(
        StatusCode::OK,
        "Pinned messages retrieved",
        &messages,
    ))
}

/// `PUT /course/{courseId}/mute/{userId}` with `{"durationSeconds"}`: the restriction.
pub(crate) async fn mute(
    state: &AppState,
    actor: &Actor,
    req: Request<Incoming>,
    course_id: &str,
    user_id: &str,
) -> Answer {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct MuteBody {
        duration_seconds: u64,
    }
    let body: MuteBody = json_body(req, state.config().max_body_bytes).await?;
    let duration = Duration::from_secs(body.duration_seconds);
    let r = state
        .engine()
        .mute(actor, course_id, user_id, duration)
        .await?;
    Ok(response::ok(StatusCode::OK, "User muted", &r))
}

/// `DELETE /course/{courseId}/mute/{userId}`.
pub(crate) async fn unmute(
    state: &AppState,
    actor: &Actor,
    course_id: &str,
    user_id: &str,
) -> Answer {
    state.engine().unmute(actor, course_id, user_id).await?;
    let data = json!({"courseId": course_id, "userId": user_id});
    Ok(response::ok(StatusCode::OK, "User unmuted", &data))
}

/// `PUT /course/{courseId}/ban/{userId}`: the restriction.
pub(crate) async fn ban(state: &AppState, actor: &Actor, course_id: &str, user_id: &str) -> Answer {
    let r = state.engine().ban(actor, course_id, user_id).await?;
    Ok(response::ok(StatusCode::OK, "User banned", &r))
}

/// `DELETE /course/{courseId}/ban/{userId}`.
pub(crate) async fn unban(
    state: &AppState,
    actor: &Actor,
    course_id: &str,
    user_id: &str,
) -> Answer {
    state.engine().unban(actor, course_id, user_id).await?;
    let data = json!({"courseId": course_id, "userId": user_id});
    Ok(response::ok(StatusCode::OK, "User unbanned", &data))
}

/// `GET /course/{courseId}/restrictions`: the mutes and bans in force.
pub(crate) async fn restrictions(state: &AppState, actor: &Actor, course_id: &str) -> Answer {
    let all = state.engine().restrictions(actor, course_id).await?;
    Ok(response::ok(StatusCode::OK, "Restrictions retrieved", &all))
}

/// `POST /flag/{messageId}` with `{"reason"}`: 201 with the flag (the caller's open flag of the
/// message when there is one already).
pub(crate) async fn flag(
    state: &AppState,
    actor: &Actor,
    req: Request<Incoming>,
    message_id: &str,
) -> Answer {
    #[derive(Deserialize)]
    struct FlagBody {
        reason: String,
    }
    let body: FlagBody = json_body(req, state.config().max_body_bytes).await?;
    let flag = state.engine().flag(actor, message_id, &body.reason).await?;
    Ok(response::ok(StatusCode::CREATED, "Message flagged", &flag))
}

/// `GET /course/{courseId}/flags?status=open|all`: the moderator queue, oldest first.
pub(crate) async fn flags(
    state: &AppState,
    actor: &Actor,
    req: &Request<Incoming>,
    course_id: &str,
) -> Answer {
    let mut open_only = true;
    for (k, v) in query_pairs(req.uri().query().unwrap_or("")) {
        if k == "status" {
            open_only = match v.as_str() {
                "open" => true,
                "all" => false,
                _ => return Err(bad("status must be open or all")),
            };
        }
    }
    let flags = state.engine().flags(actor, course_id, open_only).await?;
    Ok(response::ok(StatusCode::OK, "Flags retrieved", &flags))
}

/// `POST /flags/{flagId}/resolve` with `{"deleteMessage"}`: the resolved flag.
pub(crate) async fn resolve_flag(
    state: &AppState,
    actor: &Actor,
    req: Request<Incoming>,
    flag_id: &str,
) -> Answer {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ResolveBody {
        #[serde(default)]
        delete_message: bool,
    }
    let body: ResolveBody = json_body(req, state.config().max_body_bytes).await?;
    let flag = state
        .engine()
        .resolve_flag(actor, flag_id, body.delete_message)
        .await?;
    Ok(response::ok(StatusCode::OK, "Flag resolved", &flag))
}

/// `GET /audit?courseId&before&limit`: audit entries newest first (admins).
pub(crate) async fn audit(state: &AppState, actor: &Actor, req: &Request<Incoming>) -> Answer {
    let (mut course, mut before, mut limit) = (None, None, 50);
    for (k, v) in query_pairs(req.uri().query().unwrap_or("")) {
        match k.as_str() {
            "courseId" => course = Some(v),
            "before" => before = Some(v),
            "limit" => limit = v.parse().map_err(|_| bad("limit must be a number"))?,
            _ => {}
        }
    }
    let entries = state
        .engine()
        .audit_log(actor, course.as_deref(), before.as_deref(), limit)
        .await?;
    Ok(response::ok(
        StatusCode::OK,
        "Audit log retrieved",
        &entries,
    ))
}
