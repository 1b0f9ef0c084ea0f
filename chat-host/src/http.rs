//! Reading an HTTP request: the body under a size cap, the query string, percent escapes, and a
//! JSON body decoded into a type.
//!
//! Why here and not in each handler: every body is read with a cap *before* anything parses it
//! (a declared `Content-Length` over the cap is refused without reading a byte), and every route
//! decodes its query and path the same way, so a client meets one set of rules whatever it calls.
//! The REST handlers ([`crate::rest`]), the router ([`crate::router`]), the token lookup
//! ([`crate::auth`]) and Engine.IO ([`crate::engineio`]) all read requests through these.

use bytes::Bytes;
use chat_core::{Error, ErrorCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::dispatch::decode;
use crate::response::{self, Body};

/// A refusal: the response to send instead.
pub(crate) struct Fail(pub(crate) Response<Body>);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail(response::error(&e))
    }
}

/// Why a capped body could not be read.
pub(crate) enum BodyError {
    /// Larger than the cap (declared or read).
    TooLarge,
    /// The connection failed while the body was read.
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

/// Reads a body of at most `limit` bytes. A declared `Content-Length` over the cap is refused
/// before anything is read.
pub(crate) async fn read_capped(req: Request<Incoming>, limit: usize) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Failed(e)),
    }
}

/// Reads a body of at most `limit` bytes, refusing it in the REST envelope
/// (`PAYLOAD_TOO_LARGE` past the cap).
pub(crate) async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Fail> {
    read_capped(req, limit).await.map_err(|e| match e {
        BodyError::TooLarge => Fail(response::fail(
            ErrorCode::PayloadTooLarge,
            &format!("request body is larger than {limit} bytes"),
        )),
        BodyError::Failed(e) => {
            tracing::debug!(error = %e, "request body failed");
            Fail(response::fail(
                ErrorCode::Validation,
                "could not read the request body",
            ))
        }
    })
}

/// A header's value as text (empty when absent or not text).
pub(crate) fn header_str<B>(req: &Request<B>, name: HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Whether the body is `multipart/form-data`.
pub(crate) fn is_multipart<B>(req: &Request<B>) -> bool {
    header_str(req, CONTENT_TYPE)
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
}

/// Whether the body is JSON (or says nothing of its type).
pub(crate) fn is_json<B>(req: &Request<B>) -> bool {
    let c = header_str(req, CONTENT_TYPE).to_ascii_lowercase();
    c.is_empty() || c.starts_with("application/json")
}

/// Decodes a JSON body into `T`; an empty body is `{}`. Bad JSON or a mismatch is `VALIDATION`.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| Error::Validation(format!("invalid JSON: {e}")))?
    };
    decode(value)
}

/// Reads a JSON body of at most `limit` bytes and decodes it into `T` (`UNSUPPORTED_MEDIA_TYPE`
/// for another content type).
pub(crate) async fn json_body<T: DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
) -> Result<T, Fail> {
    if !is_json(&req) {
        return Err(Fail(response::fail(
            ErrorCode::UnsupportedMediaType,
            "send a JSON body",
        )));
    }
    let body = read_body(req, limit).await?;
    Ok(parse_json(&body)?)
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
    fn query_pairs_decode_plus_and_escapes() {
        assert_eq!(
            query_pairs("a=1&&b=x+y%21&c"),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x y!".to_string()),
                ("c".to_string(), String::new()),
            ]
        );
    }
}
