//! `docs/openapi.yaml` is kept true: every documented route answers every documented status, and
//! every route the server has is documented.

use std::collections::BTreeSet;

use serde_json::json;

use crate::support::*;

const SPEC: &str = include_str!("../../../docs/openapi.yaml");

/// `(method, path, status)` triples of the spec (its `paths:` section, in the file's layout).
fn documented() -> Vec<(String, String, u16)> {
    let mut out = Vec::new();
    let (mut in_paths, mut path, mut method, mut in_responses) =
        (false, String::new(), String::new(), false);
    for line in SPEC.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if indent == 0 && !t.is_empty() {
            in_paths = t == "paths:";
            continue;
        }
        if !in_paths || t.is_empty() {
            continue;
        }
        match indent {
            2 if t.starts_with('/') => path = t.trim_end_matches(':').to_string(),
            4 => {
                method = t.trim_end_matches(':').to_uppercase();
                in_responses = false;
            }
            6 => in_responses = t == "responses:",
            8 if in_responses => {
                let code = t.trim_end_matches(':').trim_matches('\'');
                out.push((
                    method.clone(),
                    path.clone(),
                    code.parse().expect("a status code"),
                ));
            }
            _ => {}
        }
    }
    out
}

/// The routes the server serves (kept in step with `rest.rs`).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/socket.io/{file}"),
    ("GET", "/ws"),
    ("POST", "/api/v1/chat/send"),
    ("GET", "/api/v1/chat/course/{courseId}"),
    ("PUT", "/api/v1/chat/edit/{messageId}"),
    ("DELETE", "/api/v1/chat/delete/{messageId}"),
    ("PUT", "/api/v1/chat/read/{messageId}"),
    ("PUT", "/api/v1/chat/react/{messageId}"),
    ("DELETE", "/api/v1/chat/react/{messageId}"),
    ("GET", "/api/v1/chat/online/{courseId}"),
    ("GET", "/api/v1/chat/course/{courseId}/search"),
    ("GET", "/api/v1/chat/course/{courseId}/export"),
    ("DELETE", "/api/v1/chat/courses/{courseId}"),
    ("PUT", "/api/v1/chat/push/subscription"),
    ("DELETE", "/api/v1/chat/push/subscription"),
    ("GET", "/api/v1/chat/push/subscriptions"),
    ("GET", "/api/v1/chat/push/vapid-public-key"),
    ("GET", "/api/v1/chat/thread/{messageId}"),
    ("PUT", "/api/v1/chat/pin/{messageId}"),
    ("DELETE", "/api/v1/chat/pin/{messageId}"),
    ("GET", "/api/v1/chat/course/{courseId}/pinned"),
    ("PUT", "/api/v1/chat/course/{courseId}/mute/{userId}"),
    ("DELETE", "/api/v1/chat/course/{courseId}/mute/{userId}"),
    ("PUT", "/api/v1/chat/course/{courseId}/ban/{userId}"),
    ("DELETE", "/api/v1/chat/course/{courseId}/ban/{userId}"),
    ("GET", "/api/v1/chat/course/{courseId}/restrictions"),
    ("POST", "/api/v1/chat/flag/{messageId}"),
    ("GET", "/api/v1/chat/course/{courseId}/flags"),
    ("POST", "/api/v1/chat/flags/{flagId}/resolve"),
    ("GET", "/api/v1/chat/audit"),
    ("PUT", "/api/v1/chat/status"),
    ("GET", "/api/v1/chat/files/{fileId}"),
    ("PUT", "/api/v1/chat/courses/{courseId}"),
    (
        "PUT",
        "/api/v1/chat/courses/{courseId}/participants/{userId}",
    ),
    (
        "DELETE",
        "/api/v1/chat/courses/{courseId}/participants/{userId}",
    ),
];

#[tokio::test]
async fn every_documented_route_answers_as_documented() {
    let spec = documented();
    let routes: BTreeSet<(String, String)> = spec
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(routes, served, "documented routes = served routes");

    let mut c = config();
    c.engine.rate_limit_burst = 5;
    c.max_connections_per_user = 2;
    let w = World::with(c).await;
    let msg = w.send(&w.u1, "documented").await;
    let mid = msg["id"].as_str().unwrap().to_string();
    let png = request(
        w.addr,
        "POST",
        "/api/v1/chat/send",
        Some(&w.u1),
        Some(multipart(
            &[("courseId", COURSE)],
            Some(("p.png", "image/png", PNG)),
        )),
    )
    .await;
    let fid = png.data()["file"]["id"].as_str().unwrap().to_string();
    w.put(
        &w.admin,
        "/api/v1/chat/courses/c1/participants/spam",
        json!({}),
    )
    .await
    .data();
    let missing = "01JD0000000000000000000000";

    for (method, template, status) in &spec {
        let t = template.as_str();
        let (tok, path, body): (Option<&str>, String, Option<(String, bytes::Bytes)>) = match (
            method.as_str(),
            t,
            *status,
        ) {
            ("GET", "/healthz", 200) => (None, t.into(), None),
            ("GET", "/socket.io/{file}", s) => {
                let path = "/socket.io/socket.io.min.js";
                let etag = request(w.addr, "GET", path, None, None)
                    .await
                    .header("etag")
                    .unwrap_or_default();
                let headers: &[(&str, &str)] = match s {
                    200 => &[],
                    304 => &[("if-none-match", &etag)],
                    _ => panic!("no probe for {method} {t} {s}"),
                };
                let got = request_headers(w.addr, "GET", path, headers).await.status;
                assert_eq!(got, s, "{method} {t}");
                continue;
            }
            ("GET", "/ws", s) => {
                let got = match s {
                    101 => Ws::connect(w.addr, &w.u2, true)
                        .await
                        .map(|_| 101)
                        .unwrap_or_else(|c| c),
                    400 => {
                        request(w.addr, "GET", "/ws", Some(&w.u2), None)
                            .await
                            .status
                    }
                    401 => Ws::connect(w.addr, "bad", true).await.err().unwrap_or(101),
                    429 => {
                        let t = token("cap", "Cap", "student");
                        let _a = Ws::connect(w.addr, &t, true).await.unwrap();
                        let _b = Ws::connect(w.addr, &t, true).await.unwrap();
                        Ws::connect(w.addr, &t, true).await.err().unwrap_or(101)
                    }
                    _ => panic!("no probe for {method} {t} {s}"),
                };
                assert_eq!(got, s, "{method} {t}");
                continue;
            }
            (_, _, 401) => (
                None,
                t.replace("{courseId}", COURSE)
                    .replace("{messageId}", &mid)
                    .replace("{fileId}", &fid)
                    .replace("{flagId}", missing)
                    .replace("{userId}", "u2"),
                Some(json_body(&json!({}))),
            ),
            ("GET", "/api/v1/chat/course/{courseId}/search", s) => {
                let p = |c: &str, q: &str| format!("/api/v1/chat/course/{c}/search{q}");
                match s {
                    200 => (Some(&w.u2), p(COURSE, "?q=documented"), None),
                    400 => (Some(&w.u2), p(COURSE, "?q="), None),
                    403 => (Some(&w.x1), p(COURSE, "?q=documented"), None),
                    404 => (Some(&w.u2), p("nope", "?q=documented"), None),
                    _ => panic!("no probe for {method} {t} {s}"),
                }
            }
            ("GET", "/api/v1/chat/course/{courseId}/export", s) => {
                let p = |c: &str| format!("/api/v1/chat/course/{c}/export");
                match s {
                    200 => (Some(&w.i1), p(COURSE), None),
                    403 => (Some(&w.u2), p(COURSE), None),
                    404 => (Some(&w.i1), p("nope"), None),
                    _ => panic!("no probe for {method} {t} {s}"),
                }
            }
            ("DELETE", "/api/v1/chat/courses/{courseId}", s) => {
                let p = |c: &str| format!("/api/v1/chat/courses/{c}");
                let archived = json!({"name": "Gone", "archived": true});
                w.put(&w.admin, &p("gone"), archived).await;
                w.put(&w.admin, &p("kept"), json!({"name": "Kept"})).await;
                match s {
                    200 => (Some(&w.admin), p("gone"), None),
                    400 => (Some(&w.admin), p("kept"), None),
                    403 => (Some(&w.i1), p("kept"), None),
                    404 => (Some(&w.admin), p("nope"), None),
                    _ => panic!("no probe for {method} {t} {s}"),
                }
            }
            ("PUT", "/api/v1/chat/push/subscription", s) => {
                // A real P-256 point (the generator) and 16 bytes.
                let key = "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";
                let good = json!({"endpoint": "https://push.example/x",
                        "keys": {"p256dh": key, "auth": "AAAAAAAAAAAAAAAAAAAAAA"}});
                let bad = json!({"endpoint": "ftp://x", "keys": {"p256dh": key, "auth": "x"}});
                match s {
                    200 => (Some(&w.u2), t.into(), Some(json_body(&good))),
                    400 => (Some(&w.u2), t.into(), Some(json_body(&bad))),
                    _ => panic!("no probe for {method} {t} {s}"),
                }
            }
            ("DELETE", "/api/v1/chat/push/subscription", s) => match s {
                200 => (
                    Some(&w.u2),
                    format!("{t}?endpoint=https%3A%2F%2Fpush.example%2Fx"),
                    None,
                ),
                400 => (Some(&w.u2), t.into(), None),
                _ => panic!("no probe for {method} {t} {s}"),
            },
            ("GET", "/api/v1/chat/push/subscriptions", 200)
            | ("GET", "/api/v1/chat/push/vapid-public-key", 200) => (Some(&w.u2), t.into(), None),
            ("GET", "/api/v1/chat/thread/{messageId}", s) => {
                let p = |id: &str, q: &str| format!("/api/v1/chat/thread/{id}{q}");
                match s {
                    200 => (Some(&w.u2), p(&mid, "?limit=5"), None),
                    400 => (Some(&w.u2), p(&mid, "?limit=0"), None),
                    403 => (Some(&w.x1), p(&mid, ""), None),
                    404 => (Some(&w.u2), p(missing, ""), None),
                    _ => panic!("no probe for {method} {t} {s}"),
                }
            }
            ("PUT", "/api/v1/chat/pin/{messageId}", s)
            | ("DELETE", "/api/v1/chat/pin/{messageId}", s) => {
                let p = |id: &str| format!("/api/v1/chat/pin/{id}");
                let long = "m".repeat(200);
                match s {
                    200 => (Some(&w.i1), p(&mid), Some(json_body(&json!({})))),
                    400 => (Some(&w.i1), p(&long), Some(json_body(&json!({})))),
                    403 => (Some(&w.u2), p(&mid), Some(json_body(&json!({})))),
                    404 => (Some(&w.i1), p(missing), Some(json_body(&json!({})))),
                    _ => panic!("no probe for {method} {t} {s}"),
                }
            }
            ("GET", "/api/v1/chat/course/{courseId}/pinned", s)
            | ("GET", "/api/v1/chat/course/{courseId}/restrictions", s)
            | ("GET", "/api/v1/chat/course/{courseId}/flags", s) => {
                let p = |c: &str| t.replace("{courseId}", c);
                // Reading pins takes a reader; restrictions and flags take a moderator.
                let reader = if t.ends_with("pinned") { &w.u2 } else { &w.i1 };
                let outsider = if t.ends_with("pinned") { &w.x1 } else { &w.u2 };
                match s {
                    200 => (Some(reader), p(COURSE), None),
                    400 => (Some(reader), format!("{}?status=maybe", p(COURSE)), None),
                    403 => (Some(outsider), p(COURSE), None),
                    404 => (Some(reader), p("nope"), None),
                    _ => panic!("no probe for {method} {t} {s}"),
                }
            }
            ("PUT", "/api/v1/chat/course/{courseId}/mute/{userId}", s)
            | ("DELETE", "/api/v1/chat/course/{courseId}/mute/{userId}", s)
            | ("PUT", "/api/v1/chat/course/{courseId}/ban/{userId}", s)
            | ("DELETE", "/api/v1/chat/course/{courseId}/ban/{userId}", s) => {
                let p = |c: &str, u: &str| t.replace("{courseId}", c).replace("{userId}", u);
                let minute = Some(json_body(&json!({"durationSeconds": 60})));
                match s {
                    200 => (Some(&w.i1), p(COURSE, "x9"), minute),
                    // Zero seconds, or restricting oneself.
                    400 => (
                        Some(&w.i1),
                        p(COURSE, "i1"),
                        Some(json_body(&json!({"durationSeconds": 0}))),
                    ),
                    403 => (Some(&w.u2), p(COURSE, "x9"), minute),
                    404 => (Some(&w.i1), p("nope", "x9"), minute),
                    _ => panic!("no probe for {method} {t} {s}"),
                }
            }
            ("POST", "/api/v1/chat/flag/{messageId}", s) => {
                let p = |id: &str| format!("/api/v1/chat/flag/{id}");
                let spam = || Some(json_body(&json!({"reason": "spam"})));
                match s {
                    201 => (Some(&w.u2), p(&mid), spam()),
                    400 => (
                        Some(&w.u2),
                        p(&mid),
                        Some(json_body(&json!({"reason": ""}))),
                    ),
                    403 => (Some(&w.x1), p(&mid), spam()),
                    404 => (Some(&w.u2), p(missing), spam()),
                    _ => panic!("no probe for {method} {t} {s}"),
                }
            }
            ("POST", "/api/v1/chat/flags/{flagId}/resolve", s) => {
                let flag = w
                    .post(
                        &w.admin,
                        &format!("/api/v1/chat/flag/{mid}"),
                        json!({"reason": "probe"}),
                    )
                    .await
                    .data();
                let fid = flag["id"].as_str().unwrap_or(missing).to_string();
                let p = |id: &str| format!("/api/v1/chat/flags/{id}/resolve");
                let keep = || Some(json_body(&json!({"deleteMessage": false})));
                match s {
                    200 => (Some(&w.i1), p(&fid), keep()),
                    400 => (
                        Some(&w.i1),
                        p(&fid),
                        Some(json_body(&json!({"deleteMessage": 5}))),
                    ),
                    403 => (Some(&w.u2), p(&fid), keep()),
                    404 => (Some(&w.i1), p(missing), keep()),
                    _ => panic!("no probe for {method} {t} {s}"),
                }
            }
            ("GET", "/api/v1/chat/audit", s) => match s {
                200 => (Some(&w.admin), "/api/v1/chat/audit?limit=5".into(), None),
                400 => (Some(&w.admin), "/api/v1/chat/audit?limit=0".into(), None),
                403 => (Some(&w.i1), t.into(), None),
                _ => panic!("no probe for {method} {t} {s}"),
            },
            ("POST", _, 201) => (
                Some(&w.u1),
                t.into(),
                Some(json_body(&json!({"courseId": COURSE, "message": "x"}))),
            ),
            ("POST", _, 400) => (
                Some(&w.u1),
                t.into(),
                Some(json_body(&json!({"courseId": COURSE, "message": ""}))),
            ),
            ("POST", _, 403) => (
                Some(&w.x1),
                t.into(),
                Some(json_body(&json!({"courseId": COURSE, "message": "x"}))),
            ),
            ("POST", _, 404) => (
                Some(&w.u1),
                t.into(),
                Some(json_body(&json!({"courseId": "nope", "message": "x"}))),
            ),
            ("POST", _, 413) => (
                Some(&w.u1),
                t.into(),
                Some(json_body(
                    &json!({"courseId": COURSE, "message": "x".repeat(100_000)}),
                )),
            ),
            ("POST", _, 415) => (
                Some(&w.u1),
                t.into(),
                Some(multipart(
                    &[("courseId", COURSE)],
                    Some(("x.png", "image/png", b"<html><script>1</script>")),
                )),
            ),
            ("POST", _, 429) => {
                let spam = token("spam", "Spam", "student");
                for _ in 0..5 {
                    request(
                        w.addr,
                        "POST",
                        t,
                        Some(&spam),
                        Some(json_body(&json!({"courseId": COURSE, "message": "s"}))),
                    )
                    .await;
                }
                (
                    Some(leak(spam)),
                    t.into(),
                    Some(json_body(&json!({"courseId": COURSE, "message": "s"}))),
                )
            }
            ("GET", "/api/v1/chat/course/{courseId}", s) => match s {
                200 => (Some(&w.u2), "/api/v1/chat/course/c1?limit=5".into(), None),
                400 => (Some(&w.u2), "/api/v1/chat/course/c1?limit=-1".into(), None),
                403 => (Some(&w.x1), "/api/v1/chat/course/c1".into(), None),
                404 => (Some(&w.u2), "/api/v1/chat/course/nope".into(), None),
                _ => panic!("no probe for {method} {t} {s}"),
            },
            ("GET", "/api/v1/chat/online/{courseId}", s) => match s {
                200 => (Some(&w.u2), "/api/v1/chat/online/c1".into(), None),
                403 => (Some(&w.x1), "/api/v1/chat/online/c1".into(), None),
                404 => (Some(&w.u2), "/api/v1/chat/online/nope".into(), None),
                _ => panic!("no probe for {method} {t} {s}"),
            },
            ("GET", "/api/v1/chat/files/{fileId}", s) => match s {
                200 => (Some(&w.u2), format!("/api/v1/chat/files/{fid}"), None),
                403 => (Some(&w.x1), format!("/api/v1/chat/files/{fid}"), None),
                404 => (Some(&w.u2), format!("/api/v1/chat/files/{missing}"), None),
                _ => panic!("no probe for {method} {t} {s}"),
            },
            ("PUT", "/api/v1/chat/edit/{messageId}", s) => {
                let p = |id: &str| format!("/api/v1/chat/edit/{id}");
                match s {
                    200 => (
                        Some(&w.u1),
                        p(&mid),
                        Some(json_body(&json!({"message": "edited"}))),
                    ),
                    400 => (
                        Some(&w.u1),
                        p(&mid),
                        Some(json_body(&json!({"message": 5}))),
                    ),
                    403 => (
                        Some(&w.u2),
                        p(&mid),
                        Some(json_body(&json!({"message": "no"}))),
                    ),
                    404 => (
                        Some(&w.u1),
                        p(missing),
                        Some(json_body(&json!({"message": "no"}))),
                    ),
                    _ => panic!("no probe for {method} {t} {s}"),
                }
            }
            ("PUT", "/api/v1/chat/read/{messageId}", s) => match s {
                200 => (Some(&w.u2), format!("/api/v1/chat/read/{mid}"), None),
                403 => (Some(&w.x1), format!("/api/v1/chat/read/{mid}"), None),
                404 => (Some(&w.u2), format!("/api/v1/chat/read/{missing}"), None),
                _ => panic!("no probe for {method} {t} {s}"),
            },
            ("PUT", "/api/v1/chat/react/{messageId}", s) => {
                let p = |id: &str| format!("/api/v1/chat/react/{id}");
                let like = || Some(json_body(&json!({"emoji": "👍"})));
                match s {
                    200 => (Some(&w.u2), p(&mid), like()),
                    400 => (
                        Some(&w.u2),
                        p(&mid),
                        Some(json_body(&json!({"emoji": "ok"}))),
                    ),
                    403 => (Some(&w.x1), p(&mid), like()),
                    404 => (Some(&w.u2), p(missing), like()),
                    _ => panic!("no probe for {method} {t} {s}"),
                }
            }
            ("DELETE", "/api/v1/chat/react/{messageId}", s) => {
                let p = |id: &str, q: &str| format!("/api/v1/chat/react/{id}{q}");
                match s {
                    200 => (Some(&w.u2), p(&mid, "?emoji=%F0%9F%91%8D"), None),
                    400 => (Some(&w.u2), p(&mid, ""), None),
                    403 => (Some(&w.x1), p(&mid, "?emoji=%F0%9F%91%8D"), None),
                    404 => (Some(&w.u2), p(missing, "?emoji=%F0%9F%91%8D"), None),
                    _ => panic!("no probe for {method} {t} {s}"),
                }
            }
            ("PUT", "/api/v1/chat/status", s) => match s {
                200 => (
                    Some(&w.u2),
                    t.into(),
                    Some(json_body(&json!({"isOnline": true}))),
                ),
                400 => (
                    Some(&w.u2),
                    t.into(),
                    Some(json_body(&json!({"isOnline": 1}))),
                ),
                _ => panic!("no probe for {method} {t} {s}"),
            },
            ("PUT", "/api/v1/chat/courses/{courseId}", s) => match s {
                200 => (
                    Some(&w.admin),
                    "/api/v1/chat/courses/c7".into(),
                    Some(json_body(&json!({"name": "Seven"}))),
                ),
                400 => (
                    Some(&w.admin),
                    "/api/v1/chat/courses/c7".into(),
                    Some(json_body(&json!({"name": ""}))),
                ),
                403 => (
                    Some(&w.i1),
                    "/api/v1/chat/courses/c7".into(),
                    Some(json_body(&json!({}))),
                ),
                _ => panic!("no probe for {method} {t} {s}"),
            },
            ("PUT", "/api/v1/chat/courses/{courseId}/participants/{userId}", s) => match s {
                200 => (
                    Some(&w.admin),
                    "/api/v1/chat/courses/c1/participants/u9".into(),
                    Some(json_body(&json!({"role": "student"}))),
                ),
                400 => (
                    Some(&w.admin),
                    "/api/v1/chat/courses/c1/participants/u9".into(),
                    Some(json_body(&json!({"role": "pirate"}))),
                ),
                403 => (
                    Some(&w.u1),
                    "/api/v1/chat/courses/c1/participants/u9".into(),
                    Some(json_body(&json!({}))),
                ),
                404 => (
                    Some(&w.admin),
                    "/api/v1/chat/courses/nope/participants/u9".into(),
                    Some(json_body(&json!({}))),
                ),
                _ => panic!("no probe for {method} {t} {s}"),
            },
            ("DELETE", "/api/v1/chat/courses/{courseId}/participants/{userId}", s) => match s {
                200 => (
                    Some(&w.admin),
                    "/api/v1/chat/courses/c1/participants/u9".into(),
                    None,
                ),
                403 => (
                    Some(&w.u1),
                    "/api/v1/chat/courses/c1/participants/u2".into(),
                    None,
                ),
                404 => (
                    Some(&w.admin),
                    "/api/v1/chat/courses/c1/participants/nobody".into(),
                    None,
                ),
                _ => panic!("no probe for {method} {t} {s}"),
            },
            ("DELETE", "/api/v1/chat/delete/{messageId}", s) => match s {
                // Run last for this message: spec order puts 200 first, so delete a fresh one.
                200 => {
                    let m = w.send(&w.u1, "to delete").await;
                    (
                        Some(&w.u1),
                        format!("/api/v1/chat/delete/{}", m["id"].as_str().unwrap()),
                        None,
                    )
                }
                403 => (Some(&w.u2), format!("/api/v1/chat/delete/{mid}"), None),
                404 => (Some(&w.u1), format!("/api/v1/chat/delete/{missing}"), None),
                _ => panic!("no probe for {method} {t} {s}"),
            },
            (m, p, s) => panic!("no probe for documented {m} {p} {s}"),
        };
        let r = request(w.addr, method, &path, tok, body).await;
        assert_eq!(r.status, *status, "{method} {path}: {}", r.text());
        let raw = [
            "/api/v1/chat/files/{fileId}",
            "/api/v1/chat/course/{courseId}/export",
        ];
        if *status == 200 && t.ends_with("/export") {
            // JSON Lines, not the envelope.
            assert!(r
                .text()
                .lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
        }
        if !raw.contains(&t) || *status != 200 {
            let v = r.json();
            assert_eq!(v["success"], *status < 400, "{method} {path}: envelope {v}");
            assert!(v["message"].is_string());
            if *status >= 400 {
                assert!(v["code"].is_string());
            } else {
                assert!(v.get("data").is_some());
            }
        }
        if *status == 429 {
            assert!(r.header("retry-after").is_some());
        }
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
