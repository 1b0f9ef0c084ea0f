//! Web Push: notifying users who have no open connection, through their browsers' push services.
//!
//! Who is notified is chat-core's rule (`Engine::push_targets`: the course's other participants
//! with no connection anywhere and a subscription, mentioned users first). This file is the
//! delivery: a plugin hands each new message of this node's writes to a task, which signs a VAPID
//! token (RFC 8292) and encrypts the payload for each device (RFC 8291, `aes128gcm`) with the
//! `web-push-native` crate, and POSTs it. A subscription its push service says is gone (404 or
//! 410) is forgotten. A send never waits for a push: the queue is bounded and a full queue drops
//! notifications with a warning.
//!
//! The VAPID key: `--vapid-private-key` (base64url of the 32-byte P-256 scalar), else the data
//! folder's `vapid.key` (made on first start), else one made for this run. Browsers subscribe
//! with its public half, served at `GET /api/v1/chat/push/vapid-public-key`.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use base64ct::{Base64UrlUnpadded, Encoding};
use chat_core::{Event, Message, Plugin, PluginError, PushSubscription, WeakEngine};
use tokio::sync::mpsc;
use web_push_native::jwt_simple::algorithms::ES256KeyPair;
use web_push_native::{p256, Auth, WebPushBuilder};

use crate::HostError;

/// Messages waiting to be pushed.
pub const QUEUE: usize = 10_000;
/// How long a push service may keep an undelivered notification.
const TTL: Duration = Duration::from_secs(24 * 3600);
const TIMEOUT: Duration = Duration::from_secs(10);

/// The server's VAPID identity.
pub struct Vapid {
    key: ES256KeyPair,
    /// Who runs the server (`mailto:` or `https:`), sent in every VAPID token.
    subject: String,
}

impl Vapid {
    /// The key given (base64url), or the one kept in `data_dir/vapid.key` (made if missing), or
    /// a new one for this run.
    pub fn load(
        given: Option<&str>,
        data_dir: Option<&Path>,
        subject: &str,
    ) -> Result<Vapid, HostError> {
        let decode = |text: &str| {
            Base64UrlUnpadded::decode_vec(text.trim().trim_end_matches('='))
                .ok()
                .and_then(|raw| ES256KeyPair::from_bytes(&raw).ok())
                .ok_or_else(|| {
                    HostError::Config("the VAPID private key must be base64url of 32 bytes".into())
                })
        };
        let key = match (given, data_dir) {
            (Some(text), _) => decode(text)?,
            (None, Some(dir)) => {
                let path = dir.join("vapid.key");
                match std::fs::read_to_string(&path) {
                    Ok(text) => decode(&text)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let key = ES256KeyPair::generate();
                        let text = Base64UrlUnpadded::encode_string(&key.to_bytes());
                        std::fs::write(&path, text)
                            .map_err(|source| HostError::DataDir { path, source })?;
                        key
                    }
                    Err(source) => return Err(HostError::DataDir { path, source }),
                }
            }
            (None, None) => ES256KeyPair::generate(),
        };
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            return Err(HostError::Config(
                "the VAPID subject must be a mailto: or https: URL".into(),
            ));
        }
        Ok(Vapid {
            key,
            subject: subject.to_string(),
        })
    }

    /// The public key browsers subscribe with (`applicationServerKey`), base64url.
    pub fn public_key(&self) -> String {
        use web_push_native::jwt_simple::algorithms::ECDSAP256PublicKeyLike;
        let public = self.key.public_key();
        Base64UrlUnpadded::encode_string(&public.public_key().to_bytes_uncompressed())
    }
}

/// What a notification says (the JSON the service worker receives).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    event: &'static str,
    course_id: &'a str,
    message_id: &'a str,
    sender_name: &'a str,
    /// The text's first 120 characters.
    preview: String,
    /// Whether the message mentions the receiver.
    mentioned: bool,
}

/// The plugin handing new messages to the delivery task.
pub struct WebPush {
    tx: mpsc::Sender<Message>,
}

impl WebPush {
    /// Starts the delivery task; it works once `engine` is set (after the engine opens), and
    /// ends with the engine (it holds it weakly: the engine holds this plugin).
    pub fn start(
        vapid: Arc<Vapid>,
        engine: Arc<OnceLock<WeakEngine>>,
    ) -> Result<WebPush, HostError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(TIMEOUT)
            .user_agent(concat!(
                "chat-host/",
                env!("CARGO_PKG_VERSION"),
                " (web push)"
            ))
            .build()
            .map_err(|e| HostError::Config(format!("web push client: {e}")))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(rx, http, vapid, engine));
        Ok(WebPush { tx })
    }
}

#[async_trait]
impl Plugin for WebPush {
    fn name(&self) -> String {
        "web-push".into()
    }

    async fn after_event(&self, event: &Event) -> Result<(), PluginError> {
        if let Event::NewMessage(m) = event {
            if self.tx.try_send(m.clone()).is_err() {
                tracing::warn!(message = %m.id, "web push queue full, notification dropped");
            }
        }
        Ok(())
    }
}

async fn deliver(
    mut rx: mpsc::Receiver<Message>,
    http: reqwest::Client,
    vapid: Arc<Vapid>,
    engine: Arc<OnceLock<WeakEngine>>,
) {
    while let Some(message) = rx.recv().await {
        let Some(engine) = engine.get().and_then(WeakEngine::upgrade) else {
            continue;
        };
        let targets = match engine.push_targets(&message).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(message = %message.id, error = %e, "cannot find whom to push to");
                continue;
            }
        };
        for target in targets {
            let payload = Payload {
                event: "new-message",
                course_id: &message.course_id,
                message_id: &message.id,
                sender_name: &message.sender.name,
                preview: message.message.chars().take(120).collect(),
                mentioned: target.mentioned,
            };
            let Ok(body) = serde_json::to_vec(&payload) else {
                continue;
            };
            for sub in &target.subscriptions {
                match push_one(&http, &vapid, sub, body.clone()).await {
                    Ok(status) if status == 404 || status == 410 => {
                        if let Err(e) = engine
                            .expire_push_subscription(&sub.user_id, &sub.endpoint)
                            .await
                        {
                            tracing::warn!(error = %e, "cannot forget a gone push subscription");
                        }
                    }
                    Ok(status) if !(200..300).contains(&status) => {
                        tracing::debug!(status, endpoint = %sub.endpoint, "push refused");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(endpoint = %sub.endpoint, error = %e, "push failed"),
                }
            }
        }
    }
}

/// Encrypts `body` for one device and POSTs it; the push service's status.
async fn push_one(
    http: &reqwest::Client,
    vapid: &Vapid,
    sub: &PushSubscription,
    body: Vec<u8>,
) -> Result<u16, String> {
    let decode = |v: &str| Base64UrlUnpadded::decode_vec(v.trim_end_matches('=')).ok();
    let public = decode(&sub.p256dh)
        .and_then(|raw| p256::PublicKey::from_sec1_bytes(&raw).ok())
        .ok_or("bad p256dh key")?;
    let auth = decode(&sub.auth)
        .filter(|raw| raw.len() == 16)
        .map(|raw| {
            let mut auth = Auth::default();
            auth.copy_from_slice(&raw);
            auth
        })
        .ok_or("bad auth secret")?;
    let endpoint = sub.endpoint.parse().map_err(|_| "bad endpoint")?;
    let request = WebPushBuilder::new(endpoint, public, auth)
        .with_valid_duration(TTL)
        .with_vapid(&vapid.key, &vapid.subject)
        .build(body)
        .map_err(|e| format!("cannot build the push: {e:?}"))?;
    let request = reqwest::Request::try_from(request).map_err(|e| e.to_string())?;
    let resp = http.execute(request).await.map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

/// The REST routes of Web Push.
pub(crate) mod routes {
    use base64ct::{Base64UrlUnpadded, Encoding};
    use chat_core::{Actor, ErrorCode};
    use hyper::body::Incoming;
    use hyper::{Request, StatusCode};
    use serde::Deserialize;
    use serde_json::json;
    use web_push_native::p256;

    use crate::http::{json_body, query_pairs, Fail};
    use crate::response;
    use crate::rest::Answer;
    use crate::state::AppState;

    fn bad(message: &str) -> Fail {
        Fail(response::fail(ErrorCode::Validation, message))
    }

    /// `PUT /push/subscription` with the browser's `PushSubscription` JSON
    /// (`{"endpoint", "keys": {"p256dh", "auth"}}`): registers it for the caller.
    pub(crate) async fn subscribe(
        state: &AppState,
        actor: &Actor,
        req: Request<Incoming>,
    ) -> Answer {
        #[derive(Deserialize)]
        struct Keys {
            p256dh: String,
            auth: String,
        }
        #[derive(Deserialize)]
        struct Subscription {
            endpoint: String,
            keys: Keys,
        }
        let body: Subscription = json_body(req, state.config().max_body_bytes).await?;
        // The keys must be usable for encryption, not only well-formed.
        let decode = |v: &str| Base64UrlUnpadded::decode_vec(v.trim_end_matches('=')).ok();
        if decode(&body.keys.p256dh)
            .and_then(|raw| p256::PublicKey::from_sec1_bytes(&raw).ok())
            .is_none()
        {
            return Err(bad("keys.p256dh must be a P-256 public key, base64url"));
        }
        if decode(&body.keys.auth).is_none_or(|raw| raw.len() != 16) {
            return Err(bad("keys.auth must be 16 bytes, base64url"));
        }
        let sub = state
            .engine()
            .put_push_subscription(actor, &body.endpoint, &body.keys.p256dh, &body.keys.auth)
            .await?;
        Ok(response::ok(
            StatusCode::OK,
            "Push subscription saved",
            &sub,
        ))
    }

    /// `DELETE /push/subscription?endpoint=`: forgets one of the caller's subscriptions.
    pub(crate) async fn unsubscribe(
        state: &AppState,
        actor: &Actor,
        req: &Request<Incoming>,
    ) -> Answer {
        let endpoint = query_pairs(req.uri().query().unwrap_or(""))
            .into_iter()
            .find(|(k, _)| k == "endpoint")
            .map(|(_, v)| v)
            .ok_or_else(|| bad("endpoint is required"))?;
        state
            .engine()
            .remove_push_subscription(actor, &endpoint)
            .await?;
        let data = json!({ "endpoint": endpoint });
        Ok(response::ok(
            StatusCode::OK,
            "Push subscription removed",
            &data,
        ))
    }

    /// `GET /push/subscriptions`: the caller's subscriptions.
    pub(crate) async fn list(state: &AppState, actor: &Actor) -> Answer {
        let subs = state.engine().push_subscriptions(actor).await?;
        Ok(response::ok(StatusCode::OK, "Push subscriptions", &subs))
    }

    /// `GET /push/vapid-public-key`: the key browsers subscribe with.
    pub(crate) async fn vapid_key(state: &AppState) -> Answer {
        let data = json!({ "publicKey": state.vapid().public_key() });
        Ok(response::ok(StatusCode::OK, "VAPID public key", &data))
    }
}
