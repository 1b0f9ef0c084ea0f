//! Fixtures shared by the engine tests: a course with two students, an instructor and an
//! outsider.
#![allow(dead_code)]

use std::time::Duration;

use chat_core::{Actor, CourseUpdate, Engine, Envelope, Event, Events, Message, Role, SendMessage};

pub struct World {
    pub engine: Engine,
    pub admin: Actor,
    pub ada: Actor,
    pub bob: Actor,
    pub prof: Actor,
    pub eve: Actor,
}

pub async fn world_with(engine: Engine) -> World {
    let admin = Actor::system();
    let w = World {
        engine,
        admin: admin.clone(),
        ada: Actor::new("ada", "Ada", Role::Student),
        bob: Actor::new("bob", "Bob", Role::Student),
        prof: Actor::new("prof", "Prof", Role::Instructor),
        eve: Actor::new("eve", "Eve", Role::Student),
    };
    w.engine
        .put_course(
            &admin,
            "c1",
            CourseUpdate {
                name: Some("Rust 101".into()),
                chat_enabled: None,
                archived: None,
            },
        )
        .await
        .unwrap();
    for (u, r) in [
        ("ada", Role::Student),
        ("bob", Role::Student),
        ("prof", Role::Instructor),
    ] {
        w.engine.enroll(&admin, "c1", u, r).await.unwrap();
    }
    w
}

pub async fn world() -> World {
    world_with(Engine::in_memory().await.unwrap()).await
}

pub fn text(course: &str, body: &str) -> SendMessage {
    SendMessage {
        course_id: course.into(),
        message: body.into(),
        ..Default::default()
    }
}

impl World {
    pub async fn say(&self, who: &Actor, body: &str) -> Message {
        self.engine.send(who, text("c1", body)).await.unwrap()
    }
}

/// The next event, failing the test after 2 s.
pub async fn next(events: &mut Events) -> std::sync::Arc<Envelope> {
    events
        .recv_timeout(Duration::from_secs(2))
        .await
        .expect("an event within 2 s")
}

/// The next event with this name, skipping others.
pub async fn next_named(events: &mut Events, name: &str) -> Event {
    loop {
        let env = next(events).await;
        if env.name() == name {
            return env.event().clone();
        }
    }
}

/// Collects message-change events until `n` are seen.
pub async fn changes(events: &mut Events, n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    while out.len() < n {
        let env = next(events).await;
        if env.event().seq().is_some() {
            out.push(env.event().clone());
        }
    }
    out
}

/// Asserts nothing with this name arrives within `ms`.
pub async fn quiet(events: &mut Events, name: &str, ms: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        if let Some(env) = events.recv_timeout(left).await {
            assert_ne!(env.name(), name, "unexpected {name}: {:?}", env.event());
        }
    }
}
