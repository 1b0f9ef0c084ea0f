//! The rest of the client against a real chat-host: refused sends, history pages filled from the
//! server and served offline, typing debounce, read watermarks and unread counts, presence,
//! uploads with progress, and `wss://` over TLS.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chat_client::{Client, ClientError, ClientEvent, ClientOptions, OutboxState};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_refused_for_good_fails_and_can_be_retried_or_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(&dir.path().join("host")).await;
    host.api().course("c1", &["ada"]).await;
    host.api().course("c2", &["bob"]).await;
    let ada = client(
        &host.url(),
        &token("ada", "Ada", "student"),
        &dir.path().join("ada"),
    )
    .await;
    let mut events = ada.events();

    let too_long = ada.send("c1", &"x".repeat(4001)).await.unwrap();
    let not_mine = ada.send("c2", "hello?").await.unwrap();
    let fine = ada.send("c1", "this one goes").await.unwrap();
    let mut failed = Vec::new();
    let mut sent = Vec::new();
    while failed.len() < 2 || sent.is_empty() {
        match wait_for(&mut events, "an outbox outcome", |e| match e {
            ClientEvent::SendFailed(entry) => Some(Ok(entry.clone())),
            ClientEvent::SendSent { client_id, .. } => Some(Err(client_id.clone())),
            _ => None,
        })
        .await
        {
            Ok(entry) => failed.push(entry),
            Err(id) => sent.push(id),
        }
    }
    assert_eq!(
        sent,
        std::slice::from_ref(&fine.client_id),
        "a failure does not hold back what follows"
    );
    let codes: Vec<(String, String)> = failed
        .iter()
        .map(|e| match &e.state {
            OutboxState::Failed { code, .. } => (e.client_id.clone(), code.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        codes,
        [
            (too_long.client_id.clone(), "VALIDATION".to_string()),
            (not_mine.client_id.clone(), "NOT_ENROLLED".to_string())
        ]
    );
    assert_eq!(ada.outbox(None).unwrap().len(), 2);

    // Retried, it fails again (the rule did not change); discarded, it is gone.
    ada.retry(&too_long.client_id).await.unwrap();
    let again = wait_for(&mut events, "SendFailed", |e| match e {
        ClientEvent::SendFailed(entry) => Some(entry.client_id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(again, too_long.client_id);
    ada.discard(&too_long.client_id).await.unwrap();
    ada.discard(&not_mine.client_id).await.unwrap();
    assert!(ada.outbox(None).unwrap().is_empty());
    assert!(matches!(
        ada.discard(&too_long.client_id).await,
        Err(ClientError::InvalidArgument(_))
    ));
    assert_eq!(texts(&host.api().history("c1").await), ["this one goes"]);
    ada.close().await.unwrap();
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_are_filled_from_the_server_then_served_from_the_cache_offline() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(&dir.path().join("host")).await;
    host.api().course("c1", &["ada", "bob"]).await;
    let bob = token("bob", "Bob", "student");
    let mut hundredth = String::new();
    for i in 1..=130 {
        let m = host.api().send(&bob, "c1", &format!("n{i}")).await;
        if i == 100 {
            hundredth = m["id"].as_str().unwrap().to_string();
        }
    }
    // Ada read up to n100 on another device.
    let ada_token = token("ada", "Ada", "student");
    host.api().read(&ada_token, &hundredth).await;
    let ada = client(&host.url(), &ada_token, &dir.path().join("ada")).await;
    let mut events = ada.events();
    ada.join("c1").unwrap();
    wait_for(&mut events, "Joined", |e| {
        matches!(e, ClientEvent::Joined { .. }).then_some(())
    })
    .await;

    let names = |p: &chat_client::HistoryPage| -> Vec<String> {
        p.messages.iter().map(|m| m.message.clone()).collect()
    };
    let range = |a: usize, b: usize| -> Vec<String> { (a..=b).map(|i| format!("n{i}")).collect() };
    let newest = ada.history("c1", None, 50).await.unwrap();
    assert_eq!(names(&newest), range(81, 130));
    assert!(newest.complete && newest.has_more);
    let older = ada
        .history("c1", Some(newest.messages[0].seq), 50)
        .await
        .unwrap();
    assert_eq!(names(&older), range(31, 80));
    let oldest = ada
        .history("c1", Some(older.messages[0].seq), 50)
        .await
        .unwrap();
    assert_eq!(names(&oldest), range(1, 30));
    assert!(!oldest.has_more);
    // The server's readBy told this new device where Ada's watermark is.
    assert_eq!(ada.unread("c1").unwrap(), 30);

    host.stop().await;
    let offline = ada
        .history("c1", Some(newest.messages[10].seq), 40)
        .await
        .unwrap();
    assert_eq!(names(&offline), range(51, 90));
    assert!(offline.complete, "served from the cache");
    ada.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_debounced_and_presence_follows_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(&dir.path().join("host")).await;
    host.api().course("c1", &["ada", "bob"]).await;
    let ada = client(
        &host.url(),
        &token("ada", "Ada", "student"),
        &dir.path().join("ada"),
    )
    .await;
    let bob = client(
        &host.url(),
        &token("bob", "Bob", "student"),
        &dir.path().join("bob"),
    )
    .await;
    let mut bob_events = bob.events();
    let mut ada_events = ada.events();
    bob.join("c1").unwrap();
    wait_for(&mut bob_events, "Joined", |e| {
        matches!(e, ClientEvent::Joined { .. }).then_some(())
    })
    .await;
    ada.join("c1").unwrap();
    wait_for(&mut ada_events, "Joined", |e| {
        matches!(e, ClientEvent::Joined { .. }).then_some(())
    })
    .await;
    let joined = wait_for(&mut bob_events, "UserJoined", |e| match e {
        ClientEvent::UserJoined { user, .. } => Some(user.id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(joined, "ada");
    let mut online: Vec<String> = ada.online_users("c1").into_iter().map(|u| u.id).collect();
    online.sort();
    assert_eq!(online, ["ada", "bob"]);

    // Ten keystrokes in 100 ms: Bob hears one start, then one stop after the idle time.
    for _ in 0..10 {
        ada.typing("c1", true).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen: Vec<bool> = drain(&mut bob_events, Duration::from_millis(900))
        .await
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Typing {
                user_id, is_typing, ..
            } if user_id == "ada" => Some(is_typing),
            _ => None,
        })
        .collect();
    assert_eq!(seen, [true, false]);

    ada.close().await.unwrap();
    let left = wait_for(&mut bob_events, "UserLeft", |e| match e {
        ClientEvent::UserLeft { user, .. } => Some(user.id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(left, "ada");
    bob.close().await.unwrap();
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_read_moves_the_watermark_here_and_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(&dir.path().join("host")).await;
    host.api().course("c1", &["ada", "bob"]).await;
    let ada = client(
        &host.url(),
        &token("ada", "Ada", "student"),
        &dir.path().join("ada"),
    )
    .await;
    let bob = client(
        &host.url(),
        &token("bob", "Bob", "student"),
        &dir.path().join("bob"),
    )
    .await;
    let mut ada_events = ada.events();
    let mut bob_events = bob.events();
    for c in [&ada, &bob] {
        c.join("c1").unwrap();
    }
    for rx in [&mut ada_events, &mut bob_events] {
        wait_for(rx, "Joined", |e| {
            matches!(e, ClientEvent::Joined { .. }).then_some(())
        })
        .await;
    }
    for t in ["a", "b", "c"] {
        bob.send("c1", t).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(
            wait_for(&mut ada_events, "NewMessage", |e| match e {
                ClientEvent::NewMessage(m) => Some(m.clone()),
                _ => None,
            })
            .await,
        );
    }
    let count = wait_for(&mut ada_events, "Unread 3", |e| match e {
        ClientEvent::Unread { count: 3, .. } => Some(3),
        _ => None,
    })
    .await;
    assert_eq!(count, ada.unread("c1").unwrap());
    assert_eq!(bob.unread("c1").unwrap(), 0, "one's own messages are read");

    ada.mark_read(&got[1].id).unwrap();
    assert_eq!(
        ada.unread("c1").unwrap(),
        1,
        "at once, before the server answers"
    );
    let receipt = wait_for(&mut bob_events, "MessageRead", |e| match e {
        ClientEvent::MessageRead(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (receipt.user_id.as_str(), receipt.message_id.as_str()),
        ("ada", got[1].id.as_str())
    );
    assert!(matches!(
        ada.mark_read("no-such-message"),
        Err(ClientError::InvalidArgument(_))
    ));
    ada.close().await.unwrap();
    bob.close().await.unwrap();
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletions_need_the_server_and_reach_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(&dir.path().join("host")).await;
    host.api().course("c1", &["ada"]).await;
    let ada = client(
        &host.url(),
        &token("ada", "Ada", "student"),
        &dir.path().join("ada"),
    )
    .await;
    let mut events = ada.events();
    ada.join("c1").unwrap();
    ada.send("c1", "first draft").await.unwrap();
    let m = wait_for(&mut events, "SendSent", |e| match e {
        ClientEvent::SendSent { message, .. } => Some(message.clone()),
        _ => None,
    })
    .await;
    let edited = ada.edit(&m.id, "second draft").await.unwrap();
    assert!(edited.is_edited);
    assert_eq!(ada.message(&m.id).unwrap().unwrap().message, "second draft");
    ada.react(&m.id, "👍").await.unwrap();
    wait_for(&mut events, "ReactionAdded", |e| {
        matches!(e, ClientEvent::ReactionAdded { .. }).then_some(())
    })
    .await;
    assert_eq!(ada.message(&m.id).unwrap().unwrap().reactions.len(), 1);
    let gone = ada.delete(&m.id).await.unwrap();
    assert!(gone.is_deleted);
    let cached = ada.message(&m.id).unwrap().unwrap();
    assert!(
        cached.is_deleted && cached.reactions.is_empty(),
        "{cached:?}"
    );
    host.stop().await;
    wait_for(&mut events, "Disconnected", |e| {
        matches!(
            e,
            ClientEvent::Connection(chat_client::ConnectionState::Disconnected { .. })
        )
        .then_some(())
    })
    .await;
    assert!(matches!(
        ada.edit(&m.id, "offline").await,
        Err(ClientError::Offline(_))
    ));
    ada.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_reports_progress_and_arrives_as_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(&dir.path().join("host")).await;
    host.api().course("c1", &["ada", "bob"]).await;
    let ada = client(
        &host.url(),
        &token("ada", "Ada", "student"),
        &dir.path().join("ada"),
    )
    .await;
    let bob = client(
        &host.url(),
        &token("bob", "Bob", "student"),
        &dir.path().join("bob"),
    )
    .await;
    let mut ada_events = ada.events();
    let mut bob_events = bob.events();
    bob.join("c1").unwrap();
    wait_for(&mut bob_events, "Joined", |e| {
        matches!(e, ClientEvent::Joined { .. }).then_some(())
    })
    .await;
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    png.resize(300 * 1024, 0);
    let total = png.len() as u64;
    let m = ada
        .send_file("c1", "board.png", png, "the board", None)
        .await
        .unwrap();
    let file = m.file.clone().unwrap();
    assert_eq!((file.mime_type.as_str(), file.size), ("image/png", total));
    let progress: Vec<(u64, u64)> = drain(&mut ada_events, Duration::from_millis(200))
        .await
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::UploadProgress { sent, total, .. } => Some((sent, total)),
            _ => None,
        })
        .collect();
    assert!(progress.len() >= 4, "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(progress.last(), Some(&(total, total)));
    let seen = wait_for(&mut bob_events, "NewMessage", |e| match e {
        ClientEvent::NewMessage(m) => Some(m.clone()),
        _ => None,
    })
    .await;
    assert_eq!(seen.id, m.id);
    // A file the server refuses is an error, not a message.
    let refused = ada
        .send_file(
            "c1",
            "page.png",
            b"<html><body>hi</body></html>".to_vec(),
            "",
            None,
        )
        .await;
    assert_eq!(refused.unwrap_err().code(), Some("UNSUPPORTED_MEDIA_TYPE"));
    ada.close().await.unwrap();
    bob.close().await.unwrap();
    host.stop().await;
}

/// A TLS front (what a deployment puts before chat-host) with a self-signed certificate.
async fn tls_proxy(backend: std::net::SocketAddr) -> (std::net::SocketAddr, String) {
    use tokio_rustls::rustls;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    (addr, pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_urls_go_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(&dir.path().join("host")).await;
    host.api().course("c1", &["ada"]).await;
    let (front, pem) = tls_proxy(host.addr).await;
    let url = format!("wss://localhost:{}", front.port());
    let ada_token = token("ada", "Ada", "student");

    // Without the private CA the certificate is not trusted: no connection.
    let untrusting = client(&url, &ada_token, &dir.path().join("untrusting")).await;
    assert!(!untrusting.wait_connected(Duration::from_millis(700)).await);
    untrusting.close().await.unwrap();

    let options = ClientOptions {
        extra_root_certificates_pem: vec![pem],
        ..options()
    };
    let ada = Client::connect_with(&url, &ada_token, dir.path().join("ada"), options)
        .await
        .unwrap();
    let mut events = ada.events();
    assert!(ada.wait_connected(WAIT).await);
    ada.join("c1").unwrap();
    ada.send("c1", "over TLS").await.unwrap();
    wait_for(&mut events, "SendSent", |e| {
        matches!(e, ClientEvent::SendSent { .. }).then_some(())
    })
    .await;
    // REST (history) goes over https too.
    let page = ada.history("c1", None, 10).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    let upload = ada
        .send_file("c1", "notes.txt", b"plain notes".to_vec(), "", None)
        .await
        .unwrap();
    assert_eq!(upload.file.unwrap().mime_type, "text/plain");
    ada.close().await.unwrap();
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_the_client_and_frees_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(&dir.path().join("host")).await;
    host.api().course("c1", &["ada"]).await;
    let cache = dir.path().join("ada");
    let ada = client(&host.url(), &token("ada", "Ada", "student"), &cache).await;
    assert!(ada.wait_connected(WAIT).await);
    let twin = ada.clone();
    drop(ada);
    assert!(twin.wait_connected(WAIT).await, "a clone keeps it running");
    drop(twin);
    // The task stops and releases the cache: the folder opens again (within a moment).
    let deadline = tokio::time::Instant::now() + WAIT;
    let again = loop {
        match Client::connect_with(
            &host.url(),
            &token("ada", "Ada", "student"),
            &cache,
            options(),
        )
        .await
        {
            Ok(c) => break c,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the folder stayed locked: {e}"),
        }
    };
    assert!(again.wait_connected(WAIT).await);
    again.close().await.unwrap();
    host.stop().await;
}
