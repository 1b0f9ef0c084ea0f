//! Shared by the targets: a runtime, and a fresh in-memory engine with a course `c1` where `u1`
//! (student) and `u2` (student) are enrolled.

#![allow(dead_code)]

use std::sync::OnceLock;

use chat_core::{Actor, Engine, Role};

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

pub fn ada() -> Actor {
    Actor::new("u1", "Ada", Role::Student)
}

pub async fn engine() -> Engine {
    let cfg = chat_core::Config {
        rate_limit_burst: 1_000_000,
        ..Default::default()
    };
    let engine = Engine::builder().config(cfg).open().await.unwrap();
    let lms = Actor::system();
    engine
        .put_course(&lms, "c1", Default::default())
        .await
        .unwrap();
    for u in ["u1", "u2"] {
        engine.enroll(&lms, "c1", u, Role::Student).await.unwrap();
    }
    engine
}
