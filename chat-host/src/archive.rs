//! The archiving routes: the streamed export of a course's history as JSON Lines, and dropping an
//! archived course. The rules (who may, what must hold) are `chat_core::Engine`'s; this file
//! streams pages into the response.

use bytes::Bytes;
use chat_core::{Actor, Engine, Message};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use crate::response;
use crate::rest::Answer;
use crate::state::AppState;

/// Messages read per page of the export.
const PAGE: usize = 500;

/// One page as JSON Lines.
fn lines(page: &[Message]) -> Result<Bytes, std::io::Error> {
    let mut out = Vec::new();
    for m in page {
        serde_json::to_writer(&mut out, m).map_err(std::io::Error::other)?;
        out.push(b'\n');
    }
    Ok(Bytes::from(out))
}

/// `GET /course/{courseId}/export`: every message of the course, oldest first, one JSON object
/// per line (as history shows it), streamed page by page. Permission is checked with the first
/// page, before anything is sent; a failure later cuts the stream short.
pub(crate) async fn export(state: &AppState, actor: &Actor, course_id: &str) -> Answer {
    let engine = state.engine().clone();
    let first = engine.export_page(actor, course_id, 0, PAGE).await?;
    let body = lines(&first).map_err(chat_core::Error::encoding)?;
    struct Cursor {
        engine: Engine,
        actor: Actor,
        course: String,
        from: u64,
        done: bool,
        /// The first page, already read.
        first: Option<Bytes>,
    }
    let cursor = Cursor {
        engine,
        actor: actor.clone(),
        course: course_id.to_string(),
        from: first.len() as u64,
        done: first.len() < PAGE,
        first: Some(body),
    };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        if let Some(first) = c.first.take() {
            return Some((Ok(Frame::data(first)), c));
        }
        if c.done {
            return None;
        }
        let page = c
            .engine
            .export_page(&c.actor, &c.course, c.from, PAGE)
            .await;
        let chunk = match page {
            Ok(page) => {
                c.from += page.len() as u64;
                c.done = page.len() < PAGE;
                lines(&page)
            }
            Err(e) => {
                tracing::warn!(course = c.course, error = %e, "export cut short");
                c.done = true;
                Err(std::io::Error::other(e.to_string()))
            }
        };
        Some((chunk.map(Frame::data), c))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let name = crate::rest::content_disposition("attachment", &format!("{course_id}.jsonl"));
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `DELETE /courses/{courseId}` (admins): drops an archived course and its files.
pub(crate) async fn drop_course(state: &AppState, actor: &Actor, course_id: &str) -> Answer {
    let dropped = state.engine().drop_course(actor, course_id).await?;
    Ok(response::ok(StatusCode::OK, "Course dropped", &dropped))
}
