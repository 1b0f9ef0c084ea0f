//! The test helpers of chat-host, one concept per file:
//! - here: the JWT secret, tokens, the clock, waiting limits, `CHAT_LONG_TESTS` and a
//!   deterministic random generator;
//! - [`world`]: an in-process server on a free port with a provisioned course (`World`, `config`);
//! - [`http`]: one HTTP answer type (`Resp`), requests on fresh connections (`request*`, and the
//!   fallible `try_request` for servers that may be killed mid-request), JSON and multipart bodies,
//!   the Socket.IO polling handshake;
//! - [`ws`]: the WebSocket client (`Ws`, `handshake`);
//! - [`process`]: a real `chat-host` child process (`HostProcess`, `start_expecting_failure`) and
//!   reading a whole course's history from it.
//!
//! Each test binary includes this module (`mod support;`; `e2e/main.rs` by path) and uses a
//! subset of it, hence `dead_code` is allowed.

#![allow(dead_code)]

mod http;
mod process;
mod world;
mod ws;

// Each binary uses a subset: a part none of its helpers are used from is an unused import there.
#[allow(unused_imports)]
pub use {http::*, process::*, world::*, ws::*};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The HS256 secret of every test server: in-process ones (`config()`) and spawned binaries
/// (`JWT_SECRET`, `--jwt-secret`).
pub const SECRET: &str = "test-secret-please-change";
/// How long a test waits for something that must happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token with the test secret for these claims (plus `exp` in an hour unless given).
pub fn token_with(claims: Value) -> String {
    let mut claims = claims.as_object().unwrap().clone();
    claims.entry("exp").or_insert(json!(now() + 3600));
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A token for user `sub` named `name` with `role`, valid for an hour.
pub fn token(sub: &str, name: &str, role: &str) -> String {
    token_with(json!({"sub": sub, "name": name, "role": role}))
}

/// Unpadded base64url, to hand-make JWT parts that no library would sign.
pub fn b64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Whether the long versions were asked for (`CHAT_LONG_TESTS=1`).
pub fn long_tests() -> bool {
    std::env::var("CHAT_LONG_TESTS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// xorshift64*: deterministic from a seed, good enough to pick operations and delays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
