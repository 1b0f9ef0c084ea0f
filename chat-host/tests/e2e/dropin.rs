//! What a front end written for the Node.js backend expects beyond the routes themselves: voice
//! messages recorded by browsers, the client bundle at `/socket.io/socket.io.js`, and the answer
//! to marking one's own message read.

use std::io::Read;

use serde_json::json;

use crate::support::*;

fn media(name: &str) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../chat-core/tests/fixtures/media/"
    );
    std::fs::read(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn upload(w: &World, file: &str, claimed: &str) -> Resp {
    let bytes = media(file);
    let body = multipart(&[("courseId", COURSE)], Some((file, claimed, &bytes)));
    request(w.addr, "POST", "/api/v1/chat/send", Some(&w.u1), Some(body)).await
}

#[tokio::test]
async fn browser_voice_messages_are_audio_and_video_stays_refused() {
    let w = World::start().await;
    let mut bob = w.joined(&w.u2).await;
    // What MediaRecorder makes in Chrome and Firefox (Opus in WebM), and Opus/Vorbis in Ogg.
    for (file, mime) in [
        ("voice.webm", "audio/webm"),
        ("voice-seekable.webm", "audio/webm"),
        ("voice.ogg", "audio/ogg"),
        ("vorbis.ogg", "audio/ogg"),
        ("voice.mp3", "audio/mpeg"),
        ("voice.wav", "audio/x-wav"),
    ] {
        // The client's claimed type plays no part.
        let r = upload(&w, file, "video/webm").await;
        assert_eq!(r.status, 201, "{file}: {}", r.text());
        let m = r.data();
        assert_eq!(m["messageType"], "audio", "{file}");
        assert_eq!(m["file"]["mimeType"], mime, "{file}");
        // 0.5 s of tone each (the fixtures' make.sh), read from the file's own headers.
        let ms = m["file"]["durationMs"].as_u64().unwrap_or_default();
        assert!((480..=560).contains(&ms), "{file}: durationMs {ms}");
        // The room sees the same over /ws.
        let got = bob
            .expect_where("new-message", |d| d["id"] == m["id"])
            .await;
        assert_eq!(got["file"]["mimeType"], mime);
        assert_eq!(got["file"]["durationMs"], ms);
        let served = w.get(&w.u2, m["file"]["url"].as_str().unwrap()).await;
        assert_eq!(served.header("content-type").as_deref(), Some(mime));
        assert_eq!(&served.body[..], &media(file)[..]);
    }
    // Files with a video track are video, which the default list does not allow.
    for (file, mime) in [
        ("av.webm", "video/webm"),
        ("video.webm", "video/webm"),
        ("theora.ogv", "video/ogg"),
        ("video.mp4", "video/mp4"),
    ] {
        let r = upload(&w, file, "audio/webm").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (415, "UNSUPPORTED_MEDIA_TYPE"),
            "{file}"
        );
        let message = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(mime), "{file}: {message}");
    }
    // AAC in MP4 (Safari's recorder) is named for what it is; the contract's list leaves it out.
    let r = upload(&w, "voice.m4a", "audio/mp4").await;
    assert_eq!(r.status, 415);
    assert!(r.json()["message"].as_str().unwrap().contains("audio/mp4"));
}

#[tokio::test]
async fn mp4_audio_is_accepted_when_allowed() {
    let mut c = config();
    c.engine.allowed_mime_types.push("audio/mp4".into());
    let w = World::with(c).await;
    let r = upload(&w, "voice.m4a", "video/mp4").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.data()["file"]["mimeType"], "audio/mp4");
    assert_eq!(r.data()["messageType"], "audio");
    assert_eq!(upload(&w, "video.mp4", "audio/mp4").await.status, 415);
}

fn bundle(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/socket.io-client/");
    std::fs::read(format!("{path}{name}")).unwrap()
}

#[tokio::test]
async fn the_socketio_client_bundle_is_served_like_the_node_server_does() {
    let w = World::start().await;
    let version = String::from_utf8(bundle("VERSION")).unwrap();
    let etag = format!("\"{}\"", version.trim());
    for (name, ctype) in [
        ("socket.io.js", "application/javascript; charset=utf-8"),
        ("socket.io.min.js", "application/javascript; charset=utf-8"),
        (
            "socket.io.esm.min.js",
            "application/javascript; charset=utf-8",
        ),
        ("socket.io.js.map", "application/json; charset=utf-8"),
        ("socket.io.min.js.map", "application/json; charset=utf-8"),
        (
            "socket.io.esm.min.js.map",
            "application/json; charset=utf-8",
        ),
    ] {
        let path = format!("/socket.io/{name}");
        let r = request(w.addr, "GET", &path, None, None).await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.body, bundle(name), "{name}");
        assert_eq!(r.header("content-type").as_deref(), Some(ctype));
        assert_eq!(r.header("etag").as_deref(), Some(etag.as_str()));
        assert_eq!(
            r.header("cache-control").as_deref(),
            Some("public, max-age=0")
        );
        // A query string (cache busting) names the same file.
        let r = request(w.addr, "GET", &format!("{path}?v=1"), None, None).await;
        assert_eq!(r.status, 200);
    }
    // Revalidation: strong or weak, the version's ETag answers 304 with no body.
    for tag in [etag.clone(), format!("W/{etag}")] {
        let r = request_headers(
            w.addr,
            "GET",
            "/socket.io/socket.io.js",
            &[("if-none-match", &tag)],
        )
        .await;
        assert_eq!((r.status, r.body.len()), (304, 0), "{tag}");
    }
    let r = request_headers(
        w.addr,
        "GET",
        "/socket.io/socket.io.js",
        &[("if-none-match", "\"0.0.1\"")],
    )
    .await;
    assert_eq!(r.status, 200);
    // Compressed when the browser says it can decode it.
    let r = request_headers(
        w.addr,
        "GET",
        "/socket.io/socket.io.min.js",
        &[("accept-encoding", "gzip, deflate")],
    )
    .await;
    assert_eq!(r.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(r.header("vary").as_deref(), Some("Accept-Encoding"));
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, bundle("socket.io.min.js"));
    let r = request_headers(
        w.addr,
        "GET",
        "/socket.io/socket.io.js",
        &[("accept-encoding", "gzip, deflate, br")],
    )
    .await;
    assert_eq!(r.header("content-encoding").as_deref(), Some("br"));
    // Other names under /socket.io/ are not files.
    for path in [
        "/socket.io/socket.io.msgpack.min.js",
        "/socket.io/../Cargo.toml",
        "/socket.io/client.js",
    ] {
        let r = request(w.addr, "GET", path, None, None).await;
        assert_ne!(r.status, 200, "{path}");
    }
    // And the Engine.IO endpoint beside it is untouched.
    sio_open(w.addr).await;
}

#[tokio::test]
async fn the_client_bundle_can_be_turned_off() {
    let mut c = config();
    c.serve_client = false;
    let w = World::with(c).await;
    let r = request(w.addr, "GET", "/socket.io/socket.io.js", None, None).await;
    assert_eq!(r.status, 404);
    sio_open(w.addr).await;
}

#[tokio::test]
async fn marking_ones_own_message_read_answers_the_send_time_watermark() {
    let w = World::start().await;
    let mut bob = w.joined(&w.u2).await;
    let m = w.send(&w.u1, "mine").await;
    let id = m["id"].as_str().unwrap();
    bob.expect("new-message").await;
    // The send moved the sender's watermark to their message: reading it changes nothing, and
    // the receipt says when it was read, which is when it was sent.
    for _ in 0..2 {
        let r = w
            .put(&w.u1, &format!("/api/v1/chat/read/{id}"), json!({}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let receipt = r.data();
        assert_eq!(
            receipt,
            json!({"messageId": id, "courseId": COURSE, "userId": "u1", "readAt": m["createdAt"]})
        );
    }
    let mut ada = w.joined(&w.u1).await;
    let ack = ada.call("mark-read", json!({"messageId": id})).await;
    assert_eq!(ack["data"]["readAt"], m["createdAt"], "{ack}");
    let frames = bob.drain(std::time::Duration::from_millis(300)).await;
    assert!(
        Ws::named(&frames, "message-read").next().is_none(),
        "{frames:?}"
    );
    // The sender's watermark is at their message: Bob's earlier message is read by Ada.
    let r = w.get(&w.u2, "/api/v1/chat/course/c1").await.data();
    let mine = &r["messages"][0];
    assert_eq!(mine["readBy"], json!([]), "readBy never lists the sender");
    let before = w.send(&w.u2, "Bob's").await;
    w.send(&w.u1, "Ada again").await;
    let page = w.get(&w.u2, "/api/v1/chat/course/c1").await.data();
    let bobs = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == before["id"])
        .unwrap()
        .clone();
    assert_eq!(bobs["readBy"][0]["userId"], "u1", "{bobs}");
}
