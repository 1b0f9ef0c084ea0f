//! Socket.IO v4 on `/socket.io/`: the contract's events for the npm `socket.io-client`.
//!
//! The Socket.IO v5 packet protocol of `socket.io` 3/4 (main namespace, CONNECT with an `auth`
//! payload, events, acknowledgements by id, CONNECT_ERROR), JSON only, on top of the Engine.IO
//! layer ([`crate::engineio`]: sessions, long-polling, WebSocket, heartbeat), which knows nothing
//! of it. Events go through the same [`crate::dispatch`] as `/ws`.
//!
//! - [`packet`]: Socket.IO packets, encode and decode (pure);
//! - `adapter`: the namespace adapter, the engine's `Handler` for a session
//!   (CONNECT and its auth, dispatch, acks, the connection's events out);
//! - [`client_bundle`]: the npm client's browser bundles at `/socket.io/socket.io.js`.
//!
//! The wire format and its choices are documented in `docs/protocol.md`.

mod adapter;
pub mod client_bundle;
pub mod packet;

use hyper::body::Incoming as HttpBody;
use hyper::{Request, Response};

use crate::response::Body;
use crate::state::AppState;

/// The path Socket.IO clients use by default.
pub const PATH: &str = "/socket.io/";

/// Answers a request to `/socket.io/` (its CORS is the router's: [`crate::router`]): the engine
/// handles it, and a session it opens gets a namespace adapter that knows the request's token.
pub(crate) async fn handle(state: AppState, req: Request<HttpBody>) -> Response<Body> {
    let new_adapter = |req: &Request<HttpBody>| {
        let token = crate::auth::request_token(req.headers(), req.uri().query(), true);
        adapter::Adapter::new(state.clone(), token)
    };
    state.engineio().handle(req, new_adapter).await
}
