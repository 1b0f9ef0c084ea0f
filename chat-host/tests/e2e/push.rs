//! Web Push end to end: a fake push service on a local port receives what chat-host POSTs,
//! checks the VAPID header, and decrypts the payload with the device's private key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
use web_push_native::{p256, Auth};

use crate::support::*;

/// What the fake push service received: path, headers, body.
type Pushed = (String, hyper::HeaderMap, Vec<u8>);

/// A push service on a free port: answers 410 on paths ending in `/gone`, else 201.
async fn push_service() -> (SocketAddr, mpsc::UnboundedReceiver<Pushed>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let tx = Arc::new(tx);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let headers = req.headers().clone();
                        let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
                        let gone = path.ends_with("/gone");
                        let _ = tx.send((path, headers, body));
                        let status = if gone { 410 } else { 201 };
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .body(http_body_util::Full::new(bytes::Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

/// A device: its private key and auth secret, and the subscription JSON a browser would send.
struct Device {
    secret: p256::SecretKey,
    auth: Auth,
    subscription: Value,
}

fn device(seed: u8, endpoint: String) -> Device {
    let secret = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
    let public = secret.public_key().to_encoded_point(false);
    let mut auth = Auth::default();
    auth.copy_from_slice(&[seed.wrapping_add(1); 16]);
    let subscription = json!({
        "endpoint": endpoint,
        "keys": {
            "p256dh": Base64UrlUnpadded::encode_string(public.as_bytes()),
            "auth": Base64UrlUnpadded::encode_string(&auth),
        }
    });
    Device {
        secret,
        auth,
        subscription,
    }
}

async fn next_push(rx: &mut mpsc::UnboundedReceiver<Pushed>) -> Pushed {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a push within 5 s")
        .expect("the service runs")
}

#[tokio::test]
async fn offline_users_get_encrypted_vapid_signed_pushes_mentions_first() {
    let (service, mut pushed) = push_service().await;
    let w = World::start().await;
    let key = w.get(&w.u2, "/api/v1/chat/push/vapid-public-key").await;
    let vapid_key = key.data()["publicKey"].as_str().unwrap().to_string();
    assert_eq!(Base64UrlUnpadded::decode_vec(&vapid_key).unwrap().len(), 65);

    let bob = device(7, format!("http://{service}/bob"));
    let ines = device(9, format!("http://{service}/ines"));
    let bad = json!({"endpoint": "http://x/", "keys": {"p256dh": "AAAA", "auth": "AAAA"}});
    let r = w.put(&w.u2, "/api/v1/chat/push/subscription", bad).await;
    assert_eq!(r.code(), "VALIDATION");
    let r = w
        .put(
            &w.u2,
            "/api/v1/chat/push/subscription",
            bob.subscription.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = w
        .put(
            &w.i1,
            "/api/v1/chat/push/subscription",
            ines.subscription.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Both offline: the mentioned one is pushed first.
    let m = w.send(&w.u1, "question for @u2").await;
    let (path, headers, body) = next_push(&mut pushed).await;
    assert_eq!(path, "/bob", "mentioned first");
    assert_eq!(headers["content-encoding"], "aes128gcm");
    assert!(headers.contains_key("ttl"));
    let authz = headers["authorization"].to_str().unwrap().to_string();
    assert!(authz.starts_with("vapid t="), "{authz}");
    assert!(authz.contains(&format!("k={vapid_key}")), "{authz}");
    let clear = web_push_native::decrypt(body, &bob.secret, &bob.auth).expect("decrypts");
    let payload: Value = serde_json::from_slice(&clear).unwrap();
    assert_eq!(payload["messageId"], m["id"]);
    assert_eq!(payload["courseId"], COURSE);
    assert_eq!(payload["senderName"], "Ada");
    assert_eq!(payload["preview"], "question for @u2");
    assert_eq!(payload["mentioned"], true);
    let (path, _, body) = next_push(&mut pushed).await;
    assert_eq!(path, "/ines");
    let clear = web_push_native::decrypt(body, &ines.secret, &ines.auth).expect("decrypts");
    assert_eq!(
        serde_json::from_slice::<Value>(&clear).unwrap()["mentioned"],
        false
    );

    // Online users are not pushed; the sender never is.
    let _bob_socket = w.joined(&w.u2).await;
    w.send(&w.u1, "while Bob is here").await;
    let (path, _, _) = next_push(&mut pushed).await;
    assert_eq!(path, "/ines");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), pushed.recv())
            .await
            .is_err(),
        "no push to an online user"
    );

    // A subscription its service says is gone is forgotten.
    let gone = device(11, format!("http://{service}/ines/gone"));
    w.put(
        &w.i1,
        "/api/v1/chat/push/subscription",
        gone.subscription.clone(),
    )
    .await;
    assert_eq!(
        w.get(&w.i1, "/api/v1/chat/push/subscriptions")
            .await
            .data()
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    w.send(&w.u1, "again").await;
    let mut paths = vec![
        next_push(&mut pushed).await.0,
        next_push(&mut pushed).await.0,
    ];
    paths.sort();
    assert_eq!(paths, ["/ines", "/ines/gone"]);
    let mut left = 2;
    for _ in 0..50 {
        let subs = w.get(&w.i1, "/api/v1/chat/push/subscriptions").await.data();
        left = subs.as_array().map_or(0, Vec::len);
        if left == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 1, "the gone subscription was forgotten");

    // Unsubscribing stops the pushes.
    let endpoint = ines.subscription["endpoint"].as_str().unwrap();
    let r = w
        .delete(
            &w.i1,
            &format!("/api/v1/chat/push/subscription?endpoint={endpoint}"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    w.send(&w.u1, "nobody to push").await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), pushed.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_vapid_key_is_made_once_and_kept_in_a_new_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config();
    c.data_dir = Some(dir.path().join("not-yet-made"));
    let mut keys = Vec::new();
    for _ in 0..2 {
        let w = World::with(c.clone()).await;
        let r = w.get(&w.u1, "/api/v1/chat/push/vapid-public-key").await;
        keys.push(r.data()["publicKey"].as_str().unwrap().to_string());
        w.server.shutdown().await.expect("clean shutdown");
    }
    assert_eq!(keys[0], keys[1], "the same key after a restart");
    assert!(dir.path().join("not-yet-made/vapid.key").is_file());
    c.vapid_private_key = Some("not a key".into());
    assert!(chat_host::Server::start(c).await.is_err());
}
