//! The REST calls the client makes beside its socket: history pages (to fill the cache backwards)
//! and file uploads (multipart, with progress), through reqwest over rustls.

use std::sync::Arc;

use bytes::Bytes;
use chat_core::Message;
use futures_util::stream;
use serde_json::Value;

use crate::error::{ClientError, Result};
use crate::socket::Endpoint;

/// A REST client of one server.
pub(crate) struct Rest {
    http: reqwest::Client,
    base: String,
}

/// A history page as the server gives it.
pub(crate) struct Page {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

/// An upload.
pub(crate) struct Upload<'a> {
    pub course_id: &'a str,
    pub client_id: &'a str,
    pub file_name: &'a str,
    pub bytes: Bytes,
    pub caption: &'a str,
    pub message_type: Option<&'a str>,
}

/// Bytes per chunk of an upload body: progress is reported once per chunk.
const CHUNK: usize = 64 * 1024;

impl Rest {
    pub(crate) fn new(endpoint: &Endpoint, extra_roots_pem: &[String]) -> Result<Rest> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(120));
        for pem in extra_roots_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| ClientError::InvalidArgument(format!("root certificate: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::InvalidArgument(format!("HTTP client: {e}")))?;
        Ok(Rest {
            http,
            base: format!("{}/api/v1/chat", endpoint.http_base()),
        })
    }

    /// `GET /course/:id?before=&limit=` (the newest page when `before` is `None`).
    pub(crate) async fn history(
        &self,
        token: &str,
        course: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page> {
        let mut req = self
            .http
            .get(format!("{}/course/{}", self.base, encode_path(course)))
            .bearer_auth(token)
            .query(&[("limit", limit.to_string())]);
        req = match before {
            Some(b) => req.query(&[("before", b.to_string())]),
            None => req.query(&[("page", "1")]),
        };
        let data = envelope(req.send().await).await?;
        let messages = serde_json::from_value(data.get("messages").cloned().unwrap_or_default())
            .map_err(|e| ClientError::Protocol(format!("history page: {e}")))?;
        let has_more = data
            .pointer("/pagination/hasMore")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Page { messages, has_more })
    }

    /// `POST /send` as multipart with a `file` part, reporting `(sent, total)` as the body is
    /// streamed.
    pub(crate) async fn upload(
        &self,
        token: &str,
        upload: Upload<'_>,
        progress: Arc<dyn Fn(u64, u64) + Send + Sync>,
    ) -> Result<Message> {
        let total = upload.bytes.len() as u64;
        let chunks: Vec<Bytes> = (0..upload.bytes.len())
            .step_by(CHUNK)
            .map(|at| upload.bytes.slice(at..(at + CHUNK).min(upload.bytes.len())))
            .collect();
        let mut sent = 0u64;
        let body = stream::iter(chunks.into_iter().map(move |chunk| {
            sent += chunk.len() as u64;
            progress(sent, total);
            Ok::<Bytes, std::io::Error>(chunk)
        }));
        let part =
            reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(body), total)
                .file_name(upload.file_name.to_string());
        let mut form = reqwest::multipart::Form::new()
            .text("courseId", upload.course_id.to_string())
            .text("clientId", upload.client_id.to_string())
            .text("message", upload.caption.to_string());
        if let Some(t) = upload.message_type {
            form = form.text("messageType", t.to_string());
        }
        let form = form.part("file", part);
        let req = self
            .http
            .post(format!("{}/send", self.base))
            .bearer_auth(token)
            .multipart(form);
        let data = envelope(req.send().await).await?;
        serde_json::from_value(data).map_err(|e| ClientError::Protocol(format!("message: {e}")))
    }
}

/// Percent-encodes a path segment (ids may hold any printable character).
fn encode_path(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The `data` of a success envelope, or the envelope's error.
async fn envelope(sent: reqwest::Result<reqwest::Response>) -> Result<Value> {
    let resp = sent.map_err(|e| ClientError::Network(e.to_string()))?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body: Value = resp
        .json()
        .await
        .map_err(|e| ClientError::Protocol(format!("answer {status} is not JSON: {e}")))?;
    if status.is_success() && body.get("success") == Some(&Value::Bool(true)) {
        return Ok(body.get("data").cloned().unwrap_or(Value::Null));
    }
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let code = match text("code") {
        c if c.is_empty() => "INTERNAL".to_string(),
        c => c,
    };
    Err(ClientError::server(&code, &text("message"), retry_after))
}
