//! Delivery and resume against a real chat-host: offline sends, a server killed mid-send, a
//! restarted client, and a client that was away while others wrote.

mod support;

use std::time::Duration;

use chat_client::{ClientEvent, ConnectionState, OutboxState};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_send_is_delivered_once_when_the_server_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(&dir.path().join("host")).await;
    host.api().course("c1", &["ada", "bob"]).await;
    host.stop().await;

    let ada = client(
        &host.url(),
        &token("ada", "Ada", "student"),
        &dir.path().join("ada"),
    )
    .await;
    let mut events = ada.events();
    wait_for(&mut events, "a failed connection", |e| match e {
        ClientEvent::Connection(ConnectionState::Disconnected { .. }) => Some(()),
        _ => None,
    })
    .await;
    ada.join("c1").unwrap();
    let first = ada.send("c1", "written offline 1").await.unwrap();
    let second = ada.send("c1", "written offline 2").await.unwrap();
    assert_eq!(first.state, OutboxState::Pending);
    assert_ne!(first.client_id, second.client_id);
    assert_eq!(ada.outbox(Some("c1")).unwrap().len(), 2);

    host.restart().await;
    let mut sent = Vec::new();
    while sent.len() < 2 {
        sent.push(
            wait_for(&mut events, "SendSent", |e| match e {
                ClientEvent::SendSent { client_id, message } => {
                    Some((client_id.clone(), message.message.clone()))
                }
                _ => None,
            })
            .await,
        );
    }
    assert_eq!(
        sent,
        vec![
            (first.client_id.clone(), "written offline 1".to_string()),
            (second.client_id.clone(), "written offline 2".to_string())
        ]
    );
    assert!(ada.outbox(None).unwrap().is_empty());
    let history = host.api().history("c1").await;
    assert_eq!(texts(&history), ["written offline 1", "written offline 2"]);
    assert_eq!(history[0]["clientId"], first.client_id.as_str());
    // Nothing more arrives for them (no second copy from a retry).
    let later = drain(&mut events, Duration::from_millis(500)).await;
    assert!(
        !later
            .iter()
            .any(|e| matches!(e, ClientEvent::SendSent { .. } | ClientEvent::NewMessage(_))),
        "{later:?}"
    );
    ada.close().await.unwrap();
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_send_and_restarted_leaves_the_outbox_done_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = HostProcess::start(&dir.path().join("host"), "127.0.0.1:0");
    host.api().course("c1", &["ada"]).await;
    let ada = client(
        &host.url(),
        &token("ada", "Ada", "student"),
        &dir.path().join("ada"),
    )
    .await;
    let mut events = ada.events();
    ada.join("c1").unwrap();
    assert!(ada.wait_connected(WAIT).await);

    const N: usize = 40;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(ada.send("c1", &format!("m{i:02}")).await.unwrap().client_id);
    }
    // Some are through, the rest are queued or on the wire: kill -9 now.
    let mut through = 0;
    while through < 5 {
        wait_for(&mut events, "SendSent", |e| {
            matches!(e, ClientEvent::SendSent { .. }).then_some(())
        })
        .await;
        through += 1;
    }
    host.kill9();
    host.restart();
    let mut seen = through;
    while seen < N {
        wait_for(&mut events, "SendSent", |e| {
            matches!(e, ClientEvent::SendSent { .. }).then_some(())
        })
        .await;
        seen += 1;
    }
    assert!(ada.outbox(None).unwrap().is_empty());
    let extra = drain(&mut events, Duration::from_millis(500)).await;
    assert!(
        !extra
            .iter()
            .any(|e| matches!(e, ClientEvent::SendSent { .. })),
        "each message is reported sent once: {extra:?}"
    );
    let history = host.api().history("c1").await;
    let expected: Vec<String> = (0..N).map(|i| format!("m{i:02}")).collect();
    assert_eq!(
        texts(&history),
        expected,
        "each message once, in the order written"
    );
    let client_ids: Vec<&str> = history
        .iter()
        .map(|m| m["clientId"].as_str().unwrap())
        .collect();
    assert_eq!(
        client_ids,
        ids.iter().map(String::as_str).collect::<Vec<_>>()
    );
    ada.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_client_keeps_its_cache_and_its_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(&dir.path().join("host")).await;
    host.api().course("c1", &["ada", "bob"]).await;
    let bob = token("bob", "Bob", "student");
    let ada_token = token("ada", "Ada", "student");
    let cache = dir.path().join("ada");

    let ada = client(&host.url(), &ada_token, &cache).await;
    let mut events = ada.events();
    ada.join("c1").unwrap();
    wait_for(&mut events, "Joined", |e| {
        matches!(e, ClientEvent::Joined { .. }).then_some(())
    })
    .await;
    for t in ["one", "two", "three"] {
        host.api().send(&bob, "c1", t).await;
    }
    for _ in 0..3 {
        wait_for(&mut events, "NewMessage", |e| {
            matches!(e, ClientEvent::NewMessage(_)).then_some(())
        })
        .await;
    }
    host.stop().await;
    let queued = ada.send("c1", "queued before the restart").await.unwrap();
    ada.close().await.unwrap();
    drop(ada);

    // The app starts again with the server still down: cache and outbox are there.
    let ada = client(&host.url(), &ada_token, &cache).await;
    let mut events = ada.events();
    assert_eq!(ada.joined_courses().unwrap(), ["c1"]);
    let page = ada.history("c1", None, 50).await.unwrap();
    let cached: Vec<&str> = page.messages.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(cached, ["one", "two", "three"]);
    assert!(page.complete && !page.has_more, "{page:?}");
    assert_eq!(ada.unread("c1").unwrap(), 3);
    let outbox = ada.outbox(None).unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].client_id, queued.client_id);

    host.restart().await;
    let sent = wait_for(&mut events, "SendSent", |e| match e {
        ClientEvent::SendSent { client_id, .. } => Some(client_id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(sent, queued.client_id);
    assert_eq!(
        texts(&host.api().history("c1").await),
        ["one", "two", "three", "queued before the restart"]
    );
    ada.close().await.unwrap();
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_being_away_shows_exactly_the_missed_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(&dir.path().join("host")).await;
    host.api().course("c1", &["ada", "bob"]).await;
    let bob = token("bob", "Bob", "student");
    let ada_token = token("ada", "Ada", "student");
    let cache = dir.path().join("ada");

    let ada = client(&host.url(), &ada_token, &cache).await;
    let mut events = ada.events();
    ada.join("c1").unwrap();
    wait_for(&mut events, "Joined", |e| {
        matches!(e, ClientEvent::Joined { .. }).then_some(())
    })
    .await;
    let mut ids = Vec::new();
    for t in ["m1", "m2", "m3"] {
        ids.push(
            host.api().send(&bob, "c1", t).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for _ in 0..3 {
        wait_for(&mut events, "NewMessage", |e| {
            matches!(e, ClientEvent::NewMessage(_)).then_some(())
        })
        .await;
    }
    ada.close().await.unwrap();
    drop(ada);

    // While Ada is away: a new message, an edit, a deletion, a reaction, a pin.
    let m4 = host.api().send(&bob, "c1", "m4").await;
    host.api().edit(&bob, &ids[1], "m2 edited").await;
    host.api().delete(&bob, &ids[2]).await;
    host.api().react(&bob, &ids[0], "👍").await;
    host.api().pin(&ids[1]).await;

    let ada = client(&host.url(), &ada_token, &cache).await;
    let mut events = ada.events();
    let recovered = wait_for(&mut events, "Joined", |e| match e {
        ClientEvent::Joined { recovered, .. } => Some(*recovered),
        _ => None,
    })
    .await;
    assert!(recovered, "the resume was whole");
    let changes: Vec<String> = drain(&mut events, Duration::from_millis(700))
        .await
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::NewMessage(m) => Some(format!("new {}", m.message)),
            ClientEvent::MessageEdited(m) => Some(format!("edited {}", m.message)),
            ClientEvent::MessageDeleted { message_id, .. } => Some(format!("deleted {message_id}")),
            ClientEvent::ReactionAdded {
                message_id,
                user_id,
                emoji,
                ..
            } => Some(format!("{user_id} reacted {emoji} to {message_id}")),
            ClientEvent::MessagePinned(p) => Some(format!("pinned {}", p.message_id)),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        [
            "new m4".to_string(),
            "edited m2 edited".to_string(),
            format!("deleted {}", ids[2]),
            format!("bob reacted 👍 to {}", ids[0]),
            format!("pinned {}", ids[1]),
        ]
    );
    let page = ada.history("c1", None, 50).await.unwrap();
    let shown: Vec<(String, bool)> = page
        .messages
        .iter()
        .map(|m| (m.message.clone(), m.is_deleted))
        .collect();
    assert_eq!(
        shown,
        [
            ("m1".to_string(), false),
            ("m2 edited".to_string(), false),
            (String::new(), true),
            ("m4".to_string(), false)
        ]
    );
    assert_eq!(page.messages[3].id, m4["id"].as_str().unwrap());
    assert!(page.messages[1].pinned, "the cache holds the pin");
    assert_eq!(page.messages[1].pinned_by.as_deref(), Some("lms"));
    let liked = &page.messages[0].reactions;
    assert_eq!(
        (
            liked.len(),
            liked[0].emoji.as_str(),
            liked[0].user_ids.clone()
        ),
        (1, "👍", vec!["bob".to_string()])
    );

    // Live, and through the client's own call: one event each, the cache follows.
    let mine = ada.react(&ids[1], ":tada:").await.unwrap();
    assert_eq!(mine.reactions[0].emoji, ":tada:");
    let heard = wait_for(&mut events, "ReactionAdded", |e| match e {
        ClientEvent::ReactionAdded { user_id, emoji, .. } => Some((user_id.clone(), emoji.clone())),
        ClientEvent::MessageEdited(m) => panic!("a reaction is not an edit: {m:?}"),
        _ => None,
    })
    .await;
    assert_eq!(heard, ("ada".to_string(), ":tada:".to_string()));
    ada.unreact(&ids[1], ":tada:").await.unwrap();
    wait_for(&mut events, "ReactionRemoved", |e| {
        matches!(e, ClientEvent::ReactionRemoved { .. }).then_some(())
    })
    .await;
    assert!(ada.message(&ids[1]).unwrap().unwrap().reactions.is_empty());
    ada.close().await.unwrap();
    host.stop().await;
}
