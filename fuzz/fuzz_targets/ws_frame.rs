//! `/ws`: raw bytes from a client, after the upgrade, through chat-host's own frame reader and
//! message joiner (`chat_host::frames`, with `chat_host::ws`'s settings: message cap, auto close
//! and pong, fragments joined under the cap), and each complete text message decoded as
//! `{"event","data","ack"}` and run by `chat_host::dispatch::dispatch` on a connection of an
//! enrolled user, whose answers are encoded as the server does.
//!
//! `chat_host::ws`'s own per-frame function is private; this mirrors its 20 lines of decoding and
//! calls the shared dispatcher, where the events' data are decoded.
#![no_main]

mod common;

use chat_host::frames::{read_message, FrameReader, Message};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let data = data.to_vec();
    common::runtime().block_on(async move {
        let engine = common::engine().await;
        let (conn, _events) = engine.connect(&common::ada()).await.unwrap();
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(&data).await.unwrap();
        drop(client);
        let mut rd = FrameReader::new(server);
        rd.set_max_message_size(MAX);
        rd.set_auto_close(true);
        rd.set_auto_pong(true);
        // What the reader owes the client (pongs, the close answer) is dropped: nobody reads.
        let mut owed = |_frame| async { Ok::<(), std::convert::Infallible>(()) };
        for _ in 0..64 {
            let payload = match read_message(&mut rd, &mut owed, MAX, || {}).await {
                Ok(Message::Text(payload)) => payload,
                Ok(Message::Binary) => continue,
                Ok(Message::Close) | Err(_) => break,
            };
            let Ok(Value::Object(mut f)) = serde_json::from_str::<Value>(&payload) else {
                continue;
            };
            let ack = f.remove("ack").filter(|a| !a.is_null());
            let data = f.remove("data").unwrap_or(Value::Null);
            let Some(event) = f.get("event").and_then(Value::as_str) else {
                continue;
            };
            let answer = match chat_host::dispatch::dispatch(&conn, event, data).await {
                Ok(d) => json!({"ack": ack, "ok": true, "data": d}),
                Err(e) => json!({"ack": ack, "ok": false, "error": chat_host::dispatch::error_json(&e)}),
            };
            let _ = answer.to_string();
        }
        conn.close().await;
        let _ = engine.close().await;
    });
});
