//! Webhooks: every event reaches each `--webhook` URL as a signed JSON POST, in order, retried
//! after a failure with the same delivery id; a dead endpoint never holds up a send.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::support::*;

const HOOK_SECRET: &str = "webhook-test-secret";

/// What the receiver got: (delivery id, event header, signature header, body).
type Got = Arc<Mutex<Vec<(String, String, String, Bytes)>>>;

/// A webhook receiver that answers 500 to the first `fail_first` requests, then 204.
async fn receiver(fail_first: usize) -> (SocketAddr, Got) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Got = Arc::default();
    let seen = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let h = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string()
                        };
                        let (id, event, sig) = (
                            h("x-chat-delivery"),
                            h("x-chat-event"),
                            h("x-chat-signature-256"),
                        );
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let n = {
                            let mut all = seen.lock();
                            all.push((id, event, sig, body));
                            all.len()
                        };
                        let status = if n <= fail_first { 500 } else { 204 };
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, got)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_event_is_posted_signed_in_order_and_retried_after_a_failure() {
    let (hook, got) = receiver(1).await;
    let mut c = config();
    c.webhooks = vec![format!("http://{hook}/hooks/chat")];
    c.webhook_secret = Some(HOOK_SECRET.into());
    let w = World::with(c).await;

    let sent = w.send(&w.u1, "hello hooks").await;
    let id = sent["id"].as_str().unwrap().to_string();
    let edit = request(
        w.addr,
        "PUT",
        &format!("/api/v1/chat/edit/{id}"),
        Some(&w.u1),
        Some(json_body(&json!({"message": "hello, hooks"}))),
    )
    .await;
    assert_eq!(edit.status, 200, "{}", edit.text());
    let del = request(
        w.addr,
        "DELETE",
        &format!("/api/v1/chat/delete/{id}"),
        Some(&w.u1),
        None,
    )
    .await;
    assert_eq!(del.status, 200);

    // The first POST failed (500) and was retried: 3 events, 4 requests.
    wait_until("three events delivered", || {
        got.lock()
            .iter()
            .filter(|(_, e, _, _)| e.contains("message"))
            .count()
            >= 4
    })
    .await;
    let all: Vec<_> = got
        .lock()
        .iter()
        .filter(|(_, e, _, _)| e.contains("message"))
        .cloned()
        .collect();
    assert_eq!(all[0].0, all[1].0, "the retry carries the same delivery id");
    let delivered: Vec<&(String, String, String, Bytes)> = all[1..].iter().collect();
    let names: Vec<&str> = delivered.iter().map(|d| d.1.as_str()).collect();
    assert_eq!(names, ["new-message", "message-edited", "message-deleted"]);
    for (_, event, sig, body) in &delivered {
        assert_eq!(
            sig,
            &chat_host::webhook::signature(HOOK_SECRET.as_bytes(), body)
        );
        assert_ne!(sig, &chat_host::webhook::signature(b"another secret", body));
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["event"], event.as_str());
        let message_id = v["data"]["id"].as_str().or(v["data"]["messageId"].as_str());
        assert_eq!(message_id, Some(id.as_str()), "{v}");
    }
    let first: Value = serde_json::from_slice(&delivered[0].3).unwrap();
    assert_eq!(first["data"]["message"], "hello hooks");
    let ids: std::collections::HashSet<&str> = delivered.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(ids.len(), 3, "one delivery id per event");
}

#[tokio::test]
async fn a_dead_webhook_never_holds_up_a_send() {
    // A port nothing listens on: every delivery fails and is retried in the background.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut c = config();
    c.webhooks = vec![format!("http://{dead}/")];
    c.webhook_secret = Some(HOOK_SECRET.into());
    let w = World::with(c).await;
    for i in 0..8 {
        let r = tokio::time::timeout(Duration::from_secs(5), w.send(&w.u1, &format!("m{i}")))
            .await
            .expect("a send is not held up by a dead webhook");
        assert_eq!(r["message"], format!("m{i}"));
    }
}

#[tokio::test]
async fn webhooks_need_a_secret_and_an_http_url() {
    let mut c = config();
    c.webhooks = vec!["http://127.0.0.1:9/".into()];
    let err = chat_host::Server::start(c.clone())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("webhook-secret"), "{err}");
    c.webhook_secret = Some("s".into());
    c.webhooks = vec!["ftp://example.org/".into()];
    let err = chat_host::Server::start(c).await.expect_err("refused");
    assert!(err.to_string().contains("http"), "{err}");
}
