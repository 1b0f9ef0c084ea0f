//! Webhooks: every event of this node, POSTed as JSON to each URL given with `--webhook`.
//!
//! A chat-core [`Plugin`]: the engine hands it each event once it is durable, on the plugin's own
//! task, so a slow or dead endpoint never slows a send. Each URL has its own delivery task and a
//! bounded queue ([`QUEUE`] events; beyond it events are dropped for that URL, with a warning):
//! events go out one at a time, in order. A delivery that fails (no answer, or a status other
//! than 2xx) is retried with exponential backoff and jitter, [`ATTEMPTS`] times in all, with the
//! same `X-Chat-Delivery` id, so a receiver can de-duplicate.
//!
//! The request: `POST <url>` with the event's JSON (`{"event": name, "data": {…}}`, the `/ws`
//! frame) and the headers `X-Chat-Event` (its name), `X-Chat-Delivery` (a ULID),
//! `X-Chat-Signature-256: sha256=<hex>` (HMAC-SHA256 of the body with `--webhook-secret`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chat_core::{Event, Plugin, PluginError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;

/// Events queued per URL before new ones are dropped for it.
pub const QUEUE: usize = 10_000;
/// Deliveries of one event to one URL (the first and the retries).
pub const ATTEMPTS: u32 = 6;
/// The first retry's delay; it doubles per attempt (with jitter), up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The header with the body's signature.
pub const SIGNATURE_HEADER: &str = "x-chat-signature-256";

/// One event on its way to one URL.
struct Delivery {
    id: String,
    event: &'static str,
    body: Bytes,
}

/// The webhook plugin: one delivery task per URL.
pub struct Webhooks {
    sinks: Vec<(String, mpsc::Sender<Arc<Delivery>>)>,
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` with `secret`, as `X-Chat-Signature-256` carries it.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Webhooks {
    /// Starts a delivery task per URL (inside a tokio runtime).
    pub fn start(urls: &[String], secret: &str) -> Result<Webhooks, crate::HostError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(TIMEOUT)
            .user_agent(concat!(
                "chat-host/",
                env!("CARGO_PKG_VERSION"),
                " (webhook)"
            ))
            .build()
            .map_err(|e| crate::HostError::Config(format!("webhook client: {e}")))?;
        let secret: Arc<[u8]> = secret.as_bytes().into();
        let sinks = urls
            .iter()
            .map(|url| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(deliver(url.clone(), http.clone(), secret.clone(), rx));
                (url.clone(), tx)
            })
            .collect();
        Ok(Webhooks { sinks })
    }
}

#[async_trait]
impl Plugin for Webhooks {
    fn name(&self) -> String {
        "webhooks".to_string()
    }

    async fn after_event(&self, event: &Event) -> Result<(), PluginError> {
        let body = serde_json::to_vec(event).map_err(|e| PluginError(e.to_string()))?;
        let delivery = Arc::new(Delivery {
            id: ulid::Ulid::new().to_string(),
            event: event.name(),
            body: Bytes::from(body),
        });
        for (url, sink) in &self.sinks {
            if sink.try_send(delivery.clone()).is_err() {
                tracing::warn!(%url, event = delivery.event, "webhook queue full: event dropped");
            }
        }
        Ok(())
    }
}

/// Sends `url` its events, in order, each until it is taken or [`ATTEMPTS`] are spent.
async fn deliver(
    url: String,
    http: reqwest::Client,
    secret: Arc<[u8]>,
    mut queue: mpsc::Receiver<Arc<Delivery>>,
) {
    while let Some(d) = queue.recv().await {
        let signed = signature(&secret, &d.body);
        let mut delay = FIRST_DELAY;
        for attempt in 1..=ATTEMPTS {
            let sent = http
                .post(&url)
                .header("content-type", "application/json")
                .header("x-chat-event", d.event)
                .header("x-chat-delivery", &d.id)
                .header(SIGNATURE_HEADER, &signed)
                .body(d.body.clone())
                .send()
                .await;
            let failure = match sent {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => format!("answered {}", r.status()),
                Err(e) => e.to_string(),
            };
            if attempt == ATTEMPTS {
                tracing::warn!(%url, event = d.event, delivery = %d.id, error = %failure, "webhook gave up");
                break;
            }
            tracing::debug!(%url, attempt, error = %failure, "webhook retried");
            // Jitter: a random point in the upper half of the delay.
            let ms = delay.as_millis() as u64;
            tokio::time::sleep(Duration::from_millis(ms / 2 + fastrand::u64(0..=ms / 2))).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
