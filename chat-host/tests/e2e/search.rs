//! Search over REST and `/ws`: ranked hits with highlights, edits and deletions followed, only
//! in courses the caller reads.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn search_over_rest_and_ws_ranks_highlights_and_follows_changes() {
    let w = World::start().await;
    let a = w.send(&w.u1, "the midterm covers recursion").await;
    let b = w.send(&w.u2, "recursion recursion recursion").await;
    w.send(&w.i1, "office hours moved").await;

    let r = w
        .get(
            &w.u1,
            &format!("/api/v1/chat/course/{COURSE}/search?q=recursion"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let hits = r.data();
    assert_eq!(hits.as_array().map(Vec::len), Some(2), "{hits}");
    assert_eq!(hits[0]["message"]["id"], b["id"]);
    assert!(hits[0]["score"].as_f64().unwrap() >= hits[1]["score"].as_f64().unwrap());
    assert_eq!(
        hits[1]["highlight"], "the midterm covers <b>recursion</b>",
        "{hits}"
    );

    let mut ws = w.joined(&w.u2).await;
    let ack = ws
        .call(
            "search-messages",
            json!({"courseId": COURSE, "q": "midterm recursion", "limit": 5}),
        )
        .await;
    assert_eq!(ack["data"][0]["message"]["id"], a["id"], "{ack}");

    // An edit and a deletion are followed.
    let aid = a["id"].as_str().unwrap();
    w.put(
        &w.u1,
        &format!("/api/v1/chat/edit/{aid}"),
        json!({"message": "the midterm covers graphs"}),
    )
    .await;
    w.delete(
        &w.u2,
        &format!("/api/v1/chat/delete/{}", b["id"].as_str().unwrap()),
    )
    .await;
    let r = w
        .get(
            &w.u1,
            &format!("/api/v1/chat/course/{COURSE}/search?q=recursion"),
        )
        .await;
    assert_eq!(r.data(), json!([]));
    let r = w
        .get(
            &w.u1,
            &format!("/api/v1/chat/course/{COURSE}/search?q=graphs&limit=1"),
        )
        .await;
    assert_eq!(r.data()[0]["message"]["id"], aid);

    let outsider = w
        .get(
            &w.x1,
            &format!("/api/v1/chat/course/{COURSE}/search?q=graphs"),
        )
        .await;
    assert_eq!(outsider.code(), "NOT_ENROLLED");
    for bad in [
        "",
        "?q=",
        "?q=x&limit=0",
        "?q=x&limit=many",
        "?q=x&before=-1",
    ] {
        let r = w
            .get(&w.u1, &format!("/api/v1/chat/course/{COURSE}/search{bad}"))
            .await;
        assert_eq!(r.code(), "VALIDATION", "{bad}");
    }
}
