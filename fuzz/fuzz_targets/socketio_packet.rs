//! Engine.IO / Socket.IO packet parsing (`chat_host::engineio::packet`, `chat_host::socketio::packet`):
//! any text, any bytes.
#![no_main]

use chat_host::engineio::packet::{decode_eio, decode_payload, message, EioPacket};
use chat_host::socketio::packet::decode_sio;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = decode_eio(&text);
    if let Ok(packets) = decode_payload(&text) {
        for p in packets {
            if let EioPacket::Message(m) = p {
                let _ = decode_sio(m);
            }
        }
    }
    if let Ok(p) = decode_sio(&text) {
        // What decodes re-encodes to text the decoder accepts again (the server echoes nsp).
        let _ = chat_host::socketio::packet::connect_ok(&p.nsp, "sid");
        if let Some(id) = p.id {
            // `ack` makes a Socket.IO packet; the engine sends it as a message, `4` in front.
            let again = message(chat_host::socketio::packet::ack(
                &p.nsp,
                id,
                &serde_json::json!([]),
            ));
            let Ok(EioPacket::Message(sio)) = decode_eio(&again) else {
                panic!("an Engine.IO message: {again}");
            };
            let back = decode_sio(sio).expect("an ack the server makes must decode");
            assert_eq!(
                (back.nsp.as_str(), back.id),
                (p.nsp.as_str(), Some(id)),
                "{again}"
            );
        }
    }
});
