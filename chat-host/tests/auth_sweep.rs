//! The auth sweep: every REST route, `/ws` and `/socket.io/` refuse every bad token (missing,
//! expired, wrongly signed, `alg: none`, algorithm-switched HS512/RS256, no `exp`, tampered);
//! every course route and event refuses a user not enrolled; nobody edits or deletes someone
//! else's message; upload names cannot traverse paths or break headers.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use support::*;

const PRIVATE: &str = include_str!("e2e/keys/private.pem");

/// (what, Authorization header value or None): every way a token must be refused. The claims
/// are an admin's, so a token that got through would be allowed everything.
fn bad_tokens() -> Vec<(&'static str, Option<String>)> {
    let claims = json!({"sub": "admin", "role": "admin", "exp": now() + 3600});
    let enc = |alg: Algorithm, key: &EncodingKey, c: &Value| {
        jsonwebtoken::encode(&Header::new(alg), c, key).unwrap()
    };
    let secret = EncodingKey::from_secret(SECRET.as_bytes());
    let good_student = token("u1", "Ada", "student");
    let parts: Vec<&str> = good_student.split('.').collect();
    let none = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(claims.to_string().as_bytes());
    let bearer = |t: String| Some(format!("Bearer {t}"));
    vec![
        ("missing", None),
        ("empty bearer", Some("Bearer ".into())),
        ("basic scheme", Some(format!("Basic {good_student}"))),
        ("garbage", bearer("a.b.c".into())),
        (
            "expired",
            bearer(enc(
                Algorithm::HS256,
                &secret,
                &json!({"sub": "admin", "role": "admin", "exp": now() - 3600}),
            )),
        ),
        (
            "no exp",
            bearer(enc(
                Algorithm::HS256,
                &secret,
                &json!({"sub": "admin", "role": "admin"}),
            )),
        ),
        (
            "wrong secret",
            bearer(enc(
                Algorithm::HS256,
                &EncodingKey::from_secret(b"not-the-secret"),
                &claims,
            )),
        ),
        ("alg none", bearer(format!("{none}.{payload}."))),
        (
            "alg none with a signature",
            bearer(format!("{none}.{payload}.{}", parts[2])),
        ),
        (
            "tampered payload",
            bearer(format!("{}.{payload}.{}", parts[0], parts[2])),
        ),
        ("HS512", bearer(enc(Algorithm::HS512, &secret, &claims))),
        ("HS384", bearer(enc(Algorithm::HS384, &secret, &claims))),
        (
            "RS256 on an HS256 server",
            bearer(enc(
                Algorithm::RS256,
                &EncodingKey::from_rsa_pem(PRIVATE.as_bytes()).unwrap(),
                &claims,
            )),
        ),
    ]
}

/// Every REST route of the contract, with a body where it takes one.
fn routes(message_id: &str, file_id: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        (
            "POST",
            "/api/v1/chat/send".into(),
            Some(json!({"courseId": COURSE, "message": "x"})),
        ),
        ("GET", format!("/api/v1/chat/course/{COURSE}"), None),
        (
            "PUT",
            format!("/api/v1/chat/edit/{message_id}"),
            Some(json!({"message": "y"})),
        ),
        ("DELETE", format!("/api/v1/chat/delete/{message_id}"), None),
        ("PUT", format!("/api/v1/chat/read/{message_id}"), None),
        ("GET", format!("/api/v1/chat/online/{COURSE}"), None),
        (
            "PUT",
            "/api/v1/chat/status".into(),
            Some(json!({"isOnline": true})),
        ),
        ("GET", format!("/api/v1/chat/files/{file_id}"), None),
        (
            "PUT",
            format!("/api/v1/chat/courses/{COURSE}"),
            Some(json!({"name": "x"})),
        ),
        (
            "PUT",
            format!("/api/v1/chat/courses/{COURSE}/participants/u9"),
            Some(json!({"role": "student"})),
        ),
        (
            "DELETE",
            format!("/api/v1/chat/courses/{COURSE}/participants/u2"),
            None,
        ),
    ]
}

async fn call(
    w: &World,
    method: &str,
    path: &str,
    auth: Option<String>,
    body: Option<Value>,
) -> Resp {
    request_with(w.addr, method, path, auth, body.as_ref().map(json_body)).await
}

async fn a_file(w: &World) -> (Value, String) {
    let body = multipart(
        &[("courseId", COURSE), ("message", "pic")],
        Some(("p.png", "image/png", PNG)),
    );
    let r = request(w.addr, "POST", "/api/v1/chat/send", Some(&w.u2), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let m = r.data();
    let fid = m["file"]["id"].as_str().unwrap().to_string();
    (m, fid)
}

#[tokio::test]
async fn every_route_refuses_every_bad_token() {
    let w = World::start().await;
    let (m, fid) = a_file(&w).await;
    let mid = m["id"].as_str().unwrap();
    let mut cases = 0;
    for (what, auth) in bad_tokens() {
        for (method, path, body) in routes(mid, &fid) {
            let r = call(&w, method, &path, auth.clone(), body).await;
            assert_eq!(
                (r.status, r.code().as_str()),
                (401, "UNAUTHORIZED"),
                "{what}: {method} {path}"
            );
            cases += 1;
        }
        // /ws: header and query.
        let stream = tokio::net::TcpStream::connect(w.addr).await.unwrap();
        let refused = handshake(w.addr, stream, "/ws", auth.as_deref())
            .await
            .err();
        assert_eq!(refused, Some(401), "{what}: /ws");
        if let Some(t) = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
            let refused = Ws::connect(w.addr, t, true).await.err();
            assert_eq!(refused, Some(401), "{what}: /ws?token=");
        }
        cases += 2;
        // Socket.IO: the CONNECT packet carries the token (no scheme: the "Basic" case's token
        // is a good one there); refusal is a connect_error.
        if what == "basic scheme" {
            continue;
        }
        let open = sio_open(w.addr).await;
        let sid = open["sid"].as_str().unwrap();
        let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        let t = auth
            .as_deref()
            .and_then(|a| a.split_once(' ').map(|(_, t)| t.to_string()));
        let connect = match t {
            Some(t) => format!("40{}", json!({"token": t})),
            None => "40".to_string(),
        };
        let r = request(
            w.addr,
            "POST",
            &path,
            None,
            Some(("text/plain;charset=UTF-8".into(), connect.into())),
        )
        .await;
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        let r = request(w.addr, "GET", &path, None, None).await;
        let text = r.text();
        assert!(
            text.starts_with("44") && text.contains("UNAUTHORIZED"),
            "{what}: socket.io answered {text}"
        );
        cases += 1;
    }
    // Sanity: the same routes with a good admin token are not 401.
    for (method, path, body) in routes(mid, &fid) {
        let r = call(&w, method, &path, Some(format!("Bearer {}", w.admin)), body).await;
        assert_ne!(r.status, 401, "{method} {path}: {}", r.text());
    }
    eprintln!(
        "auth sweep: {cases} refusals checked ({} token kinds)",
        bad_tokens().len()
    );
}

#[tokio::test]
async fn outsiders_are_refused_on_every_course_route_and_event() {
    let w = World::start().await;
    let (m, fid) = a_file(&w).await;
    let mid = m["id"].as_str().unwrap();
    let x = Some(format!("Bearer {}", w.x1));
    let mut cases = 0;
    for (method, path, body) in routes(mid, &fid) {
        let r = call(&w, method, &path, x.clone(), body).await;
        let expected: &[&str] = if path.contains("/courses/") {
            &["FORBIDDEN"] // provisioning is for admins
        } else if path.ends_with("/status") {
            continue; // a user's own status needs no course
        } else {
            &["NOT_ENROLLED"]
        };
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        assert!(
            expected.contains(&r.code().as_str()),
            "{method} {path}: {}",
            r.text()
        );
        cases += 1;
    }
    let mut ws = w.ws(&w.x1).await;
    let events = [
        ("join-course", json!({"courseId": COURSE})),
        ("join-course", json!({"courseId": COURSE, "sinceSeq": 0})),
        ("leave-course", json!({"courseId": COURSE})),
        ("send-message", json!({"courseId": COURSE, "message": "x"})),
        ("edit-message", json!({"messageId": mid, "newMessage": "x"})),
        ("delete-message", json!({"messageId": mid})),
        ("typing", json!({"courseId": COURSE, "isTyping": true})),
        ("mark-read", json!({"messageId": mid})),
    ];
    for (event, data) in events {
        let ack = ws.call(event, data).await;
        assert_eq!(ack["ok"], false, "{event}: {ack}");
        assert_eq!(ack["error"]["code"], "NOT_ENROLLED", "{event}: {ack}");
        cases += 1;
    }
    // A former participant is an outsider too.
    let r = w
        .delete(&w.admin, "/api/v1/chat/courses/c1/participants/u1")
        .await;
    assert_eq!(r.status, 200);
    let r = w.get(&w.u1, "/api/v1/chat/course/c1").await;
    assert_eq!((r.status, r.code().as_str()), (403, "NOT_ENROLLED"));
    eprintln!("outsider sweep: {} refusals checked", cases + 1);
}

#[tokio::test]
async fn nobody_edits_or_deletes_someone_elses_message() {
    let w = World::start().await;
    let m = w.send(&w.u1, "Ada's").await;
    let id = m["id"].as_str().unwrap();
    for tok in [&w.u2, &w.i1, &w.admin] {
        let r = w
            .put(
                tok,
                &format!("/api/v1/chat/edit/{id}"),
                json!({"message": "mine now"}),
            )
            .await;
        assert_eq!((r.status, r.code().as_str()), (403, "FORBIDDEN"), "edit");
    }
    let r = w.delete(&w.u2, &format!("/api/v1/chat/delete/{id}")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "FORBIDDEN"),
        "delete by a peer"
    );
    let mut bob = w.joined(&w.u2).await;
    let ack = bob
        .call(
            "edit-message",
            json!({"messageId": id, "newMessage": "mine"}),
        )
        .await;
    assert_eq!(ack["error"]["code"], "FORBIDDEN", "{ack}");
    let ack = bob.call("delete-message", json!({"messageId": id})).await;
    assert_eq!(ack["error"]["code"], "FORBIDDEN", "{ack}");
    // Untouched.
    let page = w.get(&w.u1, "/api/v1/chat/course/c1").await.data();
    assert_eq!(page["messages"][0]["message"], "Ada's");
    assert_eq!(page["messages"][0]["isEdited"], false);
    // The instructor may delete it (moderation), as documented.
    let r = w.delete(&w.i1, &format!("/api/v1/chat/delete/{id}")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn upload_names_cannot_traverse_or_break_headers() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config();
    c.data_dir = Some(dir.path().join("data"));
    let w = World::with(c).await;
    let long = "n".repeat(100_000);
    let names = [
        "../../../../etc/passwd",
        "..\\..\\windows\\win.ini",
        "/etc/shadow",
        "a/../../b.png",
        "evil\r\nSet-Cookie: x=1.png",
        "nul\0byte.png",
        long.as_str(),
    ];
    for name in names {
        let body = multipart(
            &[("courseId", COURSE), ("message", "f")],
            Some((name, "image/png", PNG)),
        );
        let r = request(w.addr, "POST", "/api/v1/chat/send", Some(&w.u1), Some(body)).await;
        if r.status != 201 {
            // Refusing a hostile name is fine; a 500 is not.
            assert_eq!(
                r.status,
                400,
                "{:?}: {}",
                &name[..name.len().min(40)],
                r.text()
            );
            continue;
        }
        let file = r.data()["file"].clone();
        let fid = file["id"].as_str().unwrap();
        assert!(
            fid.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "server-made id {fid}"
        );
        let r = w.get(&w.u1, &format!("/api/v1/chat/files/{fid}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.as_ref(), PNG);
        let cd = r.header("content-disposition").unwrap();
        assert!(
            !cd.contains('\r') && !cd.contains('\n') && !cd.contains('/'),
            "{cd}"
        );
        assert!(r.header("set-cookie").is_none());
    }
    // Nothing was written outside the data folder.
    for p in ["/etc/passwd.png", "/tmp/b.png"] {
        assert!(
            !std::path::Path::new(p).exists()
                || std::fs::metadata(p).unwrap().modified().unwrap()
                    < std::time::SystemTime::now() - std::time::Duration::from_secs(60)
        );
    }
    // File ids that try to leave the files folder are unknown files.
    for id in [
        "..%2F..%2Fjwt-secret",
        "..%2Fstore%2Fconf",
        "%2Fetc%2Fpasswd",
        "....%2F%2F",
        "%00",
    ] {
        let r = w.get(&w.u1, &format!("/api/v1/chat/files/{id}")).await;
        assert!(
            matches!(r.status, 400 | 404),
            "{id}: {} {}",
            r.status,
            r.text()
        );
    }
}
