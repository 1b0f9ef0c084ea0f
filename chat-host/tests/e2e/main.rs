//! End-to-end tests: the server runs in-process on a free port and is driven over real sockets.

#[path = "../support/mod.rs"]
mod support;

mod archive;
mod auth;
mod dropin;
mod lifecycle;
mod moderation;
mod openapi;
mod push;
mod reactions;
mod rest;
mod search;
mod socketio;
mod threads;
mod webhook;
mod ws;
