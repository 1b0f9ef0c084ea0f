//! An in-process server on a free port with a provisioned course, driven over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use chat_host::{Config, Server};
use serde_json::{json, Value};

use super::{json_body, request, token, Resp, Ws, SECRET};

/// The course a [`World`] provisions.
pub const COURSE: &str = "c1";

/// A test config: in memory, free port, long heartbeats (tests that need short ones say so).
pub fn config() -> Config {
    let mut c = Config::for_tests(SECRET);
    c.shutdown_grace = Duration::from_secs(3);
    c
}

/// A running server with a provisioned course `c1`: students u1 (Ada) and u2 (Bob), instructor
/// i1 (Ines); x1 (Xavier) is an outsider; `admin` is the admin.
pub struct World {
    pub server: Server,
    pub addr: SocketAddr,
    pub admin: String,
    pub u1: String,
    pub u2: String,
    pub i1: String,
    pub x1: String,
}

impl World {
    pub async fn start() -> World {
        World::with(config()).await
    }

    pub async fn with(config: Config) -> World {
        let server = Server::start(config).await.expect("server starts");
        let addr = server.local_addr();
        let w = World {
            addr,
            server,
            admin: token("admin", "Admin", "admin"),
            u1: token("u1", "Ada", "student"),
            u2: token("u2", "Bob", "student"),
            i1: token("i1", "Ines", "instructor"),
            x1: token("x1", "Xavier", "student"),
        };
        let r = w
            .put(
                &w.admin,
                "/api/v1/chat/courses/c1",
                json!({"name": "Course 1"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        for (user, role) in [("u1", "student"), ("u2", "student"), ("i1", "instructor")] {
            let path = format!("/api/v1/chat/courses/c1/participants/{user}");
            let r = w.put(&w.admin, &path, json!({"role": role})).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
        w
    }

    pub async fn get(&self, token: &str, path: &str) -> Resp {
        request(self.addr, "GET", path, Some(token), None).await
    }
    pub async fn post(&self, token: &str, path: &str, body: Value) -> Resp {
        request(self.addr, "POST", path, Some(token), Some(json_body(&body))).await
    }
    pub async fn put(&self, token: &str, path: &str, body: Value) -> Resp {
        request(self.addr, "PUT", path, Some(token), Some(json_body(&body))).await
    }
    pub async fn delete(&self, token: &str, path: &str) -> Resp {
        request(self.addr, "DELETE", path, Some(token), None).await
    }
    /// Sends a text message over REST and returns it.
    pub async fn send(&self, token: &str, text: &str) -> Value {
        let r = self
            .post(
                token,
                "/api/v1/chat/send",
                json!({"courseId": COURSE, "message": text}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.data()
    }
    pub async fn ws(&self, token: &str) -> Ws {
        Ws::connect(self.addr, token, true)
            .await
            .expect("socket opens")
    }
    /// A socket that has joined `c1` and read its join ack.
    pub async fn joined(&self, token: &str) -> Ws {
        let mut ws = self.ws(token).await;
        let ack = ws.call("join-course", json!({"courseId": COURSE})).await;
        assert_eq!(ack["ok"], true, "{ack}");
        ws
    }
}
