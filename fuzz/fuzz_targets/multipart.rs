//! Multipart sends: `chat_host::multipart::parse_send` on any content type and body, and what it
//! accepts goes to the engine (sniffing, size and type checks, storage).
//! Input: the first line is the `Content-Type` header value, the rest is the body.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let ctype = String::from_utf8_lossy(&data[..split]).into_owned();
    let body = bytes::Bytes::copy_from_slice(data.get(split + 1..).unwrap_or_default());
    common::runtime().block_on(async move {
        let Ok(req) = chat_host::multipart::parse_send(&ctype, body, 64 * 1024).await else {
            return;
        };
        let engine = common::engine().await;
        if let Ok(m) = engine.send(&common::ada(), req).await {
            if let Some(f) = &m.file {
                let (info, bytes) = engine.file(&common::ada(), &f.id).await.unwrap();
                assert_eq!(info.size as usize, bytes.len());
            }
        }
        let _ = engine.close().await;
    });
});
