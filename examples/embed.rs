//! Embedding the chat engine in a Rust program.
//!
//! Run with `cargo run -p chat-core --example embed` (add a folder argument to keep the data:
//! `cargo run -p chat-core --example embed -- ./chat-data`; run it twice and the history grows).
//!
//! It provisions a course, connects two users, sends, replies, edits, reads and deletes, and
//! prints the events each connection receives, then a page of history.

use std::time::Duration;

use chat_core::{Actor, CourseUpdate, Engine, HistoryQuery, Role, SendMessage};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = match std::env::args().nth(1) {
        Some(dir) => Engine::open(dir).await?,
        None => Engine::in_memory().await?,
    };

    // The LMS side: an admin provisions the course and its participants.
    let lms = Actor::system();
    engine
        .put_course(
            &lms,
            "rust-101",
            CourseUpdate {
                name: Some("Rust 101".into()),
                chat_enabled: Some(true),
                archived: None,
            },
        )
        .await?;
    engine
        .enroll(&lms, "rust-101", "ada", Role::Student)
        .await?;
    engine
        .enroll(&lms, "rust-101", "grace", Role::Instructor)
        .await?;

    // Two users, as a socket server would see them after authenticating.
    let ada = Actor::new("ada", "Ada Lovelace", Role::Student);
    let grace = Actor::new("grace", "Grace Hopper", Role::Instructor);
    let (ada_conn, mut ada_events) = engine.connect(&ada).await?;
    let (grace_conn, mut grace_events) = engine.connect(&grace).await?;
    ada_conn.join("rust-101", None).await?;
    grace_conn.join("rust-101", None).await?;

    let send = |text: &str| SendMessage {
        course_id: "rust-101".into(),
        message: text.into(),
        client_id: Some(format!("embed-{}", ulid_like(text))),
        ..Default::default()
    };
    let question = engine.send(&ada, send("How do lifetimes work?")).await?;
    let answer = engine
        .send(
            &grace,
            SendMessage {
                reply_to: Some(question.id.clone()),
                ..send("Think of them as scopes.")
            },
        )
        .await?;
    engine
        .edit(&grace, &answer.id, "Think of them as named scopes.")
        .await?;
    engine.mark_read(&ada, &answer.id).await?;
    grace_conn.typing("rust-101", true).await?;
    let oops = engine.send(&ada, send("oops, wrong room")).await?;
    engine.delete(&grace, &oops.id).await?;

    for (who, events) in [("ada", &mut ada_events), ("grace", &mut grace_events)] {
        while let Some(env) = events.recv_timeout(Duration::from_millis(100)).await {
            println!("{who:>5} <- {} {}", env.name(), env.data_json());
        }
    }

    let page = engine
        .history(&ada, "rust-101", HistoryQuery::default())
        .await?;
    println!("\nhistory ({} messages):", page.pagination.total);
    for m in &page.messages {
        let text = if m.is_deleted {
            "(deleted)"
        } else {
            m.message.as_str()
        };
        println!("  #{:<3} {:<14} {}", m.seq, m.sender.name, text);
    }
    println!(
        "unread for ada: {}",
        engine.unread_count(&ada, "rust-101").await?
    );
    engine.close().await?;
    Ok(())
}

/// A stable idempotency key per text, so a second run in the same folder does not duplicate.
fn ulid_like(text: &str) -> String {
    text.bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        .to_string()
}
