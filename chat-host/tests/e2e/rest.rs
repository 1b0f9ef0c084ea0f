//! REST routes: envelope, status codes, rules as the engine applies them, uploads.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn messages_history_edit_delete_read() {
    let w = World::start().await;
    let m1 = w.send(&w.u1, "  Hello  ").await;
    assert_eq!(m1["message"], "Hello");
    assert_eq!(m1["courseId"], COURSE);
    assert_eq!(
        m1["sender"],
        json!({"id": "u1", "name": "Ada", "avatar": null, "role": "student"})
    );
    assert_eq!(m1["messageType"], "text");
    assert_eq!(m1["isDeleted"], false);
    let m2 = w.send(&w.u2, "Hi Ada").await;
    let m3 = w.send(&w.u1, "How are you?").await;
    assert!(m3["seq"].as_u64() > m2["seq"].as_u64() && m2["seq"].as_u64() > m1["seq"].as_u64());

    // Page 1 is the newest, oldest first.
    let page = w.get(&w.u2, "/api/v1/chat/course/c1?page=1&limit=2").await;
    assert_eq!(page.status, 200);
    let d = page.data();
    let ids: Vec<_> = d["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, vec![m2["id"].clone(), m3["id"].clone()]);
    assert_eq!(
        d["pagination"],
        json!({"page": 1, "limit": 2, "total": 3, "totalPages": 2, "hasMore": true})
    );
    let d = w
        .get(&w.u2, "/api/v1/chat/course/c1?page=2&limit=2")
        .await
        .data();
    assert_eq!(d["messages"][0]["id"], m1["id"]);
    assert_eq!(d["pagination"]["hasMore"], false);
    let before = format!("/api/v1/chat/course/c1?before={}", m3["seq"]);
    assert_eq!(
        w.get(&w.u1, &before).await.data()["messages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let after = format!("/api/v1/chat/course/c1?after={}", m1["seq"]);
    let d = w.get(&w.u1, &after).await.data();
    assert_eq!(d["messages"][0]["id"], m2["id"]);
    let capped = w
        .get(&w.u1, "/api/v1/chat/course/c1?limit=1000")
        .await
        .data();
    assert_eq!(capped["pagination"]["limit"], 100);
    assert_eq!(
        w.get(&w.u1, "/api/v1/chat/course/c1?limit=abc")
            .await
            .code(),
        "VALIDATION"
    );
    assert_eq!(
        w.get(&w.u1, "/api/v1/chat/course/c1?page=0").await.code(),
        "VALIDATION"
    );

    // Only the sender edits.
    let path = format!("/api/v1/chat/edit/{}", m1["id"].as_str().unwrap());
    let r = w.put(&w.u2, &path, json!({"message": "hijack"})).await;
    assert_eq!((r.status, r.code().as_str()), (403, "FORBIDDEN"));
    let r = w
        .put(&w.u1, &path, json!({"message": "Hello, edited"}))
        .await;
    assert_eq!(r.status, 200);
    let edited = r.data();
    assert_eq!(
        (edited["message"].as_str(), edited["isEdited"].as_bool()),
        (Some("Hello, edited"), Some(true))
    );
    assert!(edited["editedAt"].is_string());
    assert_eq!(w.put(&w.u1, &path, json!({})).await.code(), "VALIDATION");

    // Read receipts are a watermark and idempotent.
    let read = format!("/api/v1/chat/read/{}", m3["id"].as_str().unwrap());
    let r = w.put(&w.u2, &read, json!({})).await;
    assert_eq!(r.status, 200);
    let receipt = r.data();
    assert_eq!(receipt["messageId"], m3["id"]);
    assert_eq!(
        (receipt["courseId"].as_str(), receipt["userId"].as_str()),
        (Some(COURSE), Some("u2"))
    );
    let again = w.put(&w.u2, &read, json!({})).await.data();
    assert_eq!(again["readAt"], receipt["readAt"]);
    let d = w.get(&w.u1, "/api/v1/chat/course/c1").await.data();
    assert_eq!(
        d["messages"][0]["readBy"][0]["userId"], "u2",
        "reading m3 marked m1 read too"
    );

    // A student cannot delete another's message; the instructor can; the tombstone stays.
    let del = format!("/api/v1/chat/delete/{}", m2["id"].as_str().unwrap());
    assert_eq!(w.delete(&w.u1, &del).await.code(), "FORBIDDEN");
    let r = w.delete(&w.i1, &del).await;
    assert_eq!(r.status, 200);
    let t = r.data();
    assert_eq!(
        (t["isDeleted"].as_bool(), t["message"].as_str()),
        (Some(true), Some(""))
    );
    assert!(t["file"].is_null());
    let d = w.get(&w.u1, "/api/v1/chat/course/c1").await.data();
    assert_eq!(d["messages"][1]["isDeleted"], true);
    assert_eq!(d["pagination"]["total"], 3);

    // Replies and idempotent sends.
    let reply = w
        .post(
            &w.u2,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": "re", "replyTo": m3["id"], "clientId": "k-1"}),
        )
        .await;
    assert_eq!(reply.status, 201);
    let reply = reply.data();
    assert_eq!(reply["replyTo"]["id"], m3["id"]);
    assert_eq!(reply["clientId"], "k-1");
    let again = w
        .post(
            &w.u2,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": "re", "replyTo": m3["id"], "clientId": "k-1"}),
        )
        .await
        .data();
    assert_eq!(again["id"], reply["id"]);
    let bad = w
        .post(
            &w.u2,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": "x", "replyTo": "nope"}),
        )
        .await;
    assert_eq!(bad.code(), "VALIDATION");
}

#[tokio::test]
async fn rules_and_error_envelope() {
    let w = World::start().await;
    // Validation.
    let r = w
        .post(
            &w.u1,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": "   "}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "VALIDATION"));
    let long = "x".repeat(4001);
    assert_eq!(
        w.post(
            &w.u1,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": long})
        )
        .await
        .status,
        400
    );
    let r = w
        .post(&w.u1, "/api/v1/chat/send", json!({"message": "no course"}))
        .await;
    assert_eq!(r.code(), "VALIDATION");
    let r = w
        .post(
            &w.u1,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": "x", "messageType": "video"}),
        )
        .await;
    assert_eq!(r.code(), "VALIDATION");
    let raw = request(
        w.addr,
        "POST",
        "/api/v1/chat/send",
        Some(&w.u1),
        Some(("application/json".into(), "{not json".into())),
    )
    .await;
    assert_eq!((raw.status, raw.code().as_str()), (400, "VALIDATION"));
    let raw = request(
        w.addr,
        "POST",
        "/api/v1/chat/send",
        Some(&w.u1),
        Some(("text/xml".into(), "<a/>".into())),
    )
    .await;
    assert_eq!(raw.status, 415);
    // Not enrolled, not found.
    let r = w
        .post(
            &w.x1,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": "let me in"}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "NOT_ENROLLED"));
    assert_eq!(
        w.get(&w.x1, "/api/v1/chat/course/c1").await.code(),
        "NOT_ENROLLED"
    );
    let r = w.get(&w.u1, "/api/v1/chat/course/nope").await;
    assert_eq!((r.status, r.code().as_str()), (404, "NOT_FOUND"));
    let r = w
        .put(
            &w.u1,
            "/api/v1/chat/edit/01JD0000000000000000000000",
            json!({"message": "x"}),
        )
        .await;
    assert_eq!(r.code(), "NOT_FOUND");
    let r = w.get(&w.u1, "/api/v1/chat/nothing-here").await;
    assert_eq!((r.status, r.code().as_str()), (404, "NOT_FOUND"));
    // Body cap.
    let big = json!({"courseId": COURSE, "message": "y".repeat(70 * 1024)});
    let r = w.post(&w.u1, "/api/v1/chat/send", big).await;
    assert_eq!((r.status, r.code().as_str()), (413, "PAYLOAD_TOO_LARGE"));
    // Garbage ids never panic.
    for path in [
        "/api/v1/chat/files/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/chat/course/%00",
        "/api/v1/chat/online/%ZZ",
    ] {
        let r = w.get(&w.u1, path).await;
        assert!(r.status == 400 || r.status == 404, "{path}: {}", r.status);
        assert_eq!(r.json()["success"], false);
    }
}

#[tokio::test]
async fn provisioning_is_for_admins_and_chat_can_be_disabled() {
    let w = World::start().await;
    let r = w
        .put(&w.i1, "/api/v1/chat/courses/c2", json!({"name": "Nope"}))
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "FORBIDDEN"));
    let r = w
        .put(
            &w.admin,
            "/api/v1/chat/courses/c2",
            json!({"name": "Course 2", "chatEnabled": false}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.data(),
        json!({"id": "c2", "name": "Course 2", "chatEnabled": false, "participants": []})
    );
    let r = w
        .put(
            &w.admin,
            "/api/v1/chat/courses/c2/participants/u1",
            json!({"role": "Student"}),
        )
        .await;
    assert_eq!(
        r.data(),
        json!({"courseId": "c2", "userId": "u1", "role": "student"})
    );
    let r = w
        .put(
            &w.admin,
            "/api/v1/chat/courses/c2/participants/u1",
            json!({"role": "wizard"}),
        )
        .await;
    assert_eq!(r.code(), "VALIDATION");
    let r = w
        .put(
            &w.admin,
            "/api/v1/chat/courses/none/participants/u1",
            json!({}),
        )
        .await;
    assert_eq!(r.code(), "NOT_FOUND");
    let r = w
        .post(
            &w.u1,
            "/api/v1/chat/send",
            json!({"courseId": "c2", "message": "hi"}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "CHAT_DISABLED"));
    // History still readable while disabled.
    assert_eq!(w.get(&w.u1, "/api/v1/chat/course/c2").await.status, 200);
    w.put(
        &w.admin,
        "/api/v1/chat/courses/c2",
        json!({"chatEnabled": true}),
    )
    .await
    .data();
    assert_eq!(
        w.post(
            &w.u1,
            "/api/v1/chat/send",
            json!({"courseId": "c2", "message": "hi"})
        )
        .await
        .status,
        201
    );
    // Removing a participant.
    let r = w
        .delete(&w.u1, "/api/v1/chat/courses/c2/participants/u1")
        .await;
    assert_eq!(r.code(), "FORBIDDEN");
    let r = w
        .delete(&w.admin, "/api/v1/chat/courses/c2/participants/u1")
        .await;
    assert_eq!(r.data(), json!({"courseId": "c2", "userId": "u1"}));
    assert_eq!(
        w.get(&w.u1, "/api/v1/chat/course/c2").await.code(),
        "NOT_ENROLLED"
    );
    assert_eq!(
        w.delete(&w.admin, "/api/v1/chat/courses/c2/participants/u1")
            .await
            .code(),
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn status_and_online_users() {
    let w = World::start().await;
    let online = |r: &Resp| -> Vec<String> {
        r.data()
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(online(&w.get(&w.u1, "/api/v1/chat/online/c1").await).is_empty());
    let r = w
        .put(&w.u2, "/api/v1/chat/status", json!({"isOnline": true}))
        .await;
    assert_eq!(r.status, 200);
    let me = r.data();
    assert_eq!(
        (
            me["id"].as_str(),
            me["isOnline"].as_bool(),
            me["name"].as_str()
        ),
        (Some("u2"), Some(true), Some("Bob"))
    );
    let r = w.get(&w.u1, "/api/v1/chat/online/c1").await;
    assert_eq!(online(&r), vec!["u2"]);
    let u = &r.data()[0];
    for key in ["id", "name", "avatar", "role", "isOnline", "lastSeen"] {
        assert!(u.get(key).is_some(), "online user lacks {key}: {u}");
    }
    let me = w
        .put(&w.u2, "/api/v1/chat/status", json!({"isOnline": false}))
        .await
        .data();
    assert_eq!(me["isOnline"], false);
    assert!(me["lastSeen"].is_string());
    assert!(online(&w.get(&w.u1, "/api/v1/chat/online/c1").await).is_empty());
    assert_eq!(
        w.put(&w.u2, "/api/v1/chat/status", json!({"isOnline": "yes"}))
            .await
            .code(),
        "VALIDATION"
    );
    assert_eq!(
        w.get(&w.x1, "/api/v1/chat/online/c1").await.code(),
        "NOT_ENROLLED"
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let mut c = config();
    c.engine.rate_limit_burst = 3;
    c.engine.rate_limit_window = Duration::from_secs(30);
    let w = World::with(c).await;
    for i in 0..3 {
        w.send(&w.u1, &format!("m{i}")).await;
    }
    let r = w
        .post(
            &w.u1,
            "/api/v1/chat/send",
            json!({"courseId": COURSE, "message": "one too many"}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (429, "RATE_LIMITED"));
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    // Per user: u2 is not limited.
    w.send(&w.u2, "fine").await;
}

#[tokio::test]
async fn uploads_are_sniffed_and_served_safely() {
    let mut c = config();
    c.engine.max_file_bytes = 64 * 1024;
    let w = World::with(c).await;
    let body = multipart(
        &[("courseId", COURSE), ("message", "a pixel")],
        Some(("../../pixel.png", "image/png", PNG)),
    );
    let r = request(w.addr, "POST", "/api/v1/chat/send", Some(&w.u1), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let m = r.data();
    assert_eq!(m["messageType"], "image");
    assert_eq!(m["message"], "a pixel");
    let f = &m["file"];
    assert_eq!(
        (f["mimeType"].as_str(), f["name"].as_str()),
        (Some("image/png"), Some("pixel.png"))
    );
    assert_eq!(f["size"], PNG.len());
    // The contract's five fields exactly: `durationMs` is for audio only.
    let mut keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["id", "mimeType", "name", "size", "url"]);
    let url = f["url"].as_str().unwrap().to_string();
    assert_eq!(
        url,
        format!("/api/v1/chat/files/{}", f["id"].as_str().unwrap())
    );

    let got = w.get(&w.u2, &url).await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], PNG);
    assert_eq!(got.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(
        got.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let cd = got.header("content-disposition").unwrap();
    assert!(cd.starts_with("inline; filename=\"pixel.png\""), "{cd}");
    assert_eq!(w.get(&w.x1, &url).await.code(), "NOT_ENROLLED");
    assert_eq!(
        w.get(&w.u1, "/api/v1/chat/files/01JD0000000000000000000000")
            .await
            .code(),
        "NOT_FOUND"
    );

    // HTML that claims to be a PNG: refused by content.
    let html = b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>";
    let body = multipart(
        &[("courseId", COURSE)],
        Some(("cat.png", "image/png", html)),
    );
    let r = request(w.addr, "POST", "/api/v1/chat/send", Some(&w.u1), Some(body)).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (415, "UNSUPPORTED_MEDIA_TYPE")
    );

    // A file over the limit (the body itself is within the multipart cap).
    let mut big = PNG.to_vec();
    big.resize(64 * 1024 + 1, 0);
    let body = multipart(
        &[("courseId", COURSE)],
        Some(("big.png", "image/png", &big)),
    );
    let r = request(w.addr, "POST", "/api/v1/chat/send", Some(&w.u1), Some(body)).await;
    assert_eq!((r.status, r.code().as_str()), (413, "PAYLOAD_TOO_LARGE"));

    // A body declared far over the cap is refused before it is read.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(w.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/chat/send HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: multipart/form-data; boundary=x\r\ncontent-length: 999999999\r\n\r\n",
        w.u1
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("PAYLOAD_TOO_LARGE"), "{text}");

    // A file-only message of the text type, and a file for a wrong messageType.
    let body = multipart(
        &[("courseId", COURSE), ("messageType", "audio")],
        Some(("p.png", "image/png", PNG)),
    );
    let r = request(w.addr, "POST", "/api/v1/chat/send", Some(&w.u1), Some(body)).await;
    assert_eq!(r.code(), "VALIDATION");
    let body = multipart(
        &[("courseId", COURSE)],
        Some(("notes.txt", "application/octet-stream", b"plain notes\n")),
    );
    let r = request(w.addr, "POST", "/api/v1/chat/send", Some(&w.u1), Some(body)).await;
    assert_eq!(r.status, 201);
    let f = r.data()["file"].clone();
    let got = w.get(&w.u1, f["url"].as_str().unwrap()).await;
    assert_eq!(got.header("content-type").as_deref(), Some("text/plain"));
    assert!(got
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment;"));
    // Malformed multipart.
    let r = request(
        w.addr,
        "POST",
        "/api/v1/chat/send",
        Some(&w.u1),
        Some(("multipart/form-data".into(), "junk".into())),
    )
    .await;
    assert_eq!(r.code(), "VALIDATION");
    // Deleting the message removes the file.
    let del = format!("/api/v1/chat/delete/{}", m["id"].as_str().unwrap());
    assert_eq!(w.delete(&w.u1, &del).await.status, 200);
    assert_eq!(w.get(&w.u1, &url).await.status, 404);
}

#[tokio::test]
async fn browser_pages_on_other_origins_may_call_the_api() {
    let w = World::start().await;
    let page = "https://lms.example.edu";
    let history = format!("/api/v1/chat/course/{COURSE}");
    let pre = request_headers(
        w.addr,
        "OPTIONS",
        "/api/v1/chat/send",
        &[
            ("origin", page),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
    )
    .await;
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("access-control-allow-origin").as_deref(),
        Some(page)
    );
    assert_eq!(
        pre.header("access-control-allow-methods").as_deref(),
        Some("GET, POST, PUT, DELETE, OPTIONS")
    );
    assert_eq!(
        pre.header("access-control-allow-headers").as_deref(),
        Some("authorization, content-type")
    );
    let auth = format!("Bearer {}", w.u1);
    let ok = request_headers(
        w.addr,
        "GET",
        &history,
        &[("origin", page), ("authorization", &auth)],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("access-control-allow-origin").as_deref(),
        Some(page)
    );
    assert_eq!(ok.header("vary").as_deref(), Some("Origin"));
    // Refusals carry the headers too, so the page can read the error envelope.
    let refused = request_headers(w.addr, "GET", &history, &[("origin", page)]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("access-control-allow-origin").as_deref(),
        Some(page)
    );
    // Without an Origin (not a browser page), no CORS headers.
    let plain = request_headers(w.addr, "GET", &history, &[("authorization", &auth)]).await;
    assert!(plain.header("access-control-allow-origin").is_none());

    // An operator can restrict the pages: others get no CORS headers, REST and Socket.IO alike.
    let mut c = config();
    c.cors_origins = vec![page.to_string()];
    let w = World::with(c).await;
    let evil = "https://evil.example";
    for (method, path) in [
        ("GET", "/healthz"),
        ("OPTIONS", "/api/v1/chat/send"),
        ("GET", "/socket.io/?EIO=4&transport=polling"),
        ("OPTIONS", "/socket.io/?EIO=4&transport=polling"),
    ] {
        let r = request_headers(w.addr, method, path, &[("origin", evil)]).await;
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "{method} {path} allowed {evil}"
        );
        let r = request_headers(w.addr, method, path, &[("origin", page)]).await;
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some(page),
            "{method} {path}"
        );
    }
}
