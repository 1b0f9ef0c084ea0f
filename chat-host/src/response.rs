//! The JSON envelope every REST answer wears.
//!
//! Success: `{"success": true, "message", "data"}`; failure: `{"success": false, "message",
//! "code"}` with the status the contract pairs with the code ([`chat_core::ErrorCode::http_status`]),
//! `Retry-After` for `RATE_LIMITED`, and a generic text for `INTERNAL` (the detail goes to the log,
//! never to the client). One body type ([`Body`]) for every response keeps the router simple.

use bytes::Bytes;
use chat_core::{Error, ErrorCode};
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::json;

/// The body of every response: whole (almost every answer, made with [`full`]) or streamed
/// (the export).
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt;
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// `{"success": true, "message", "data"}` with `status`.
pub fn ok<T: Serialize>(status: StatusCode, message: &str, data: &T) -> Response<Body> {
    match serde_json::to_value(data) {
        Ok(data) => json_response(
            status,
            &json!({"success": true, "message": message, "data": data}),
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a response");
            error(&Error::encoding(e))
        }
    }
}

/// The error envelope for a core error.
pub fn error(err: &Error) -> Response<Body> {
    let code = err.code();
    if code == ErrorCode::Internal {
        tracing::error!(error = %err, "internal error");
    }
    let mut resp = match err {
        // A mute says when it ends.
        Error::Muted { until } => json_response(
            StatusCode::FORBIDDEN,
            &json!({"success": false, "message": err.public_message(), "code": code.as_str(),
                    "mutedUntil": until}),
        ),
        _ => fail(code, &err.public_message()),
    };
    if let Error::RateLimited { retry_after } = err {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// The error envelope for a code and message the host makes itself.
pub fn fail(code: ErrorCode, message: &str) -> Response<Body> {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(
        status,
        &json!({"success": false, "message": message, "code": code.as_str()}),
    )
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}
