//! Engine.IO / Socket.IO packet parsing (`chat_host::socketio::packet`): any text, any bytes.
#![no_main]

use chat_host::socketio::packet::{decode_eio, decode_payload, decode_sio, EioPacket};
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
            // `ack` makes an Engine.IO message: `4` then the Socket.IO packet.
            let again = chat_host::socketio::packet::ack(&p.nsp, id, &serde_json::json!([]));
            let sio = again.strip_prefix('4').expect("an Engine.IO message");
            let back = decode_sio(sio).expect("an ack the server makes must decode");
            assert_eq!((back.nsp.as_str(), back.id), (p.nsp.as_str(), Some(id)), "{again}");
        }
    }
});
