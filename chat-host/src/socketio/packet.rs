//! Socket.IO v5 packets (the protocol of `socket.io` 3 and 4), text only: the codec of what
//! rides in an Engine.IO message.
//!
//! Pure functions, no I/O. Why its own module: the namespace adapter (`adapter`) and the
//! fuzz target (`fuzz/fuzz_targets/socketio_packet.rs`) use it, and it is the part of Socket.IO
//! that is only syntax. A packet is
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`, with types `0` CONNECT,
//! `1` DISCONNECT, `2` EVENT, `3` ACK, `4` CONNECT_ERROR, `5` BINARY_EVENT, `6` BINARY_ACK. The
//! main namespace `/` is written by omission. What the encoders make is the text of an Engine.IO
//! message (the engine writes the `4` in front: [`crate::engineio::packet::message`]; the event
//! encoder, on the hot path, leaves a byte of room for it).

use serde_json::Value;

pub use crate::engineio::packet::ParseError;

/// The kind of a Socket.IO packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SioKind {
    /// `0`.
    Connect,
    /// `1`.
    Disconnect,
    /// `2`.
    Event,
    /// `3`.
    Ack,
    /// `4`.
    ConnectError,
    /// `5`.
    BinaryEvent,
    /// `6`.
    BinaryAck,
}

/// A decoded Socket.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub struct SioPacket {
    /// Its kind.
    pub kind: SioKind,
    /// Its namespace (`/` when omitted).
    pub nsp: String,
    /// Its acknowledgement id.
    pub id: Option<u64>,
    /// Its JSON data.
    pub data: Option<Value>,
    /// The binary attachments that follow it (binary kinds only).
    pub attachments: usize,
}

/// Decodes a Socket.IO packet (the data of an Engine.IO message).
pub fn decode_sio(text: &str) -> Result<SioPacket, ParseError> {
    let bytes = text.as_bytes();
    let kind = match bytes.first() {
        Some(b'0') => SioKind::Connect,
        Some(b'1') => SioKind::Disconnect,
        Some(b'2') => SioKind::Event,
        Some(b'3') => SioKind::Ack,
        Some(b'4') => SioKind::ConnectError,
        Some(b'5') => SioKind::BinaryEvent,
        Some(b'6') => SioKind::BinaryAck,
        Some(_) => return Err(ParseError("unknown Socket.IO packet type")),
        None => return Err(ParseError("empty Socket.IO packet")),
    };
    let mut i = 1;
    let mut attachments = 0;
    if matches!(kind, SioKind::BinaryEvent | SioKind::BinaryAck) {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || bytes.get(i) != Some(&b'-') {
            return Err(ParseError("binary packet without its attachment count"));
        }
        attachments = text[start..i]
            .parse()
            .map_err(|_| ParseError("bad attachment count"))?;
        i += 1;
    }
    let mut nsp = "/".to_string();
    if bytes.get(i) == Some(&b'/') {
        let end = text[i..].find(',').map(|p| i + p).unwrap_or(bytes.len());
        nsp = text[i..end].to_string();
        i = (end + 1).min(bytes.len());
    }
    let start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let id = if i > start {
        Some(
            text[start..i]
                .parse::<u64>()
                .map_err(|_| ParseError("bad ack id"))?,
        )
    } else {
        None
    };
    let rest = &text[i..];
    let data = if rest.is_empty() {
        None
    } else {
        Some(serde_json::from_str(rest).map_err(|_| ParseError("Socket.IO data is not JSON"))?)
    };
    let valid = match kind {
        SioKind::Connect => matches!(data, None | Some(Value::Object(_))),
        SioKind::Disconnect => data.is_none(),
        SioKind::Event | SioKind::BinaryEvent => {
            matches!(&data, Some(Value::Array(a)) if matches!(a.first(), Some(Value::String(_))))
        }
        SioKind::Ack | SioKind::BinaryAck => id.is_some() && matches!(data, Some(Value::Array(_))),
        SioKind::ConnectError => true,
    };
    if !valid {
        return Err(ParseError("malformed Socket.IO packet"));
    }
    Ok(SioPacket {
        kind,
        nsp,
        id,
        data,
        attachments,
    })
}

fn nsp_prefix(nsp: &str) -> String {
    if nsp == "/" || nsp.is_empty() {
        String::new()
    } else {
        format!("{nsp},")
    }
}

/// `0{"sid":…}`: the namespace connection is accepted.
pub fn connect_ok(nsp: &str, sid: &str) -> String {
    format!("0{}{}", nsp_prefix(nsp), serde_json::json!({ "sid": sid }))
}

/// `4{"message":…,"data":…}`: the namespace connection is refused (the client's
/// `connect_error` gets an `Error` with this `message` and `data`).
pub fn connect_error(nsp: &str, message: &str, data: &Value) -> String {
    format!(
        "4{}{}",
        nsp_prefix(nsp),
        serde_json::json!({"message": message, "data": data})
    )
}

/// `1`: the server disconnects the namespace.
pub fn disconnect(nsp: &str) -> String {
    let p = nsp_prefix(nsp);
    format!("1{}", p.trim_end_matches(','))
}

/// `2["name",data]` with `data` already JSON text (events share one serialization).
pub fn event_raw(name: &str, data_json: &str) -> String {
    // A byte for the Engine.IO message type the engine writes in front.
    let mut out = Vec::with_capacity(name.len() + data_json.len() + 7);
    write_event(name, data_json, &mut out);
    // Only `str`s went in.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends `2["name",data]` (`data` already JSON text) to `out`: an event framed straight into
/// a socket's write batch.
pub fn write_event(name: &str, data_json: &str, out: &mut Vec<u8>) {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    out.extend_from_slice(b"2[");
    if plain {
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(Value::String(name.to_string()).to_string().as_bytes());
    }
    out.push(b',');
    out.extend_from_slice(data_json.as_bytes());
    out.push(b']');
}

/// `2["name",data]`.
pub fn event(name: &str, data: &Value) -> String {
    event_raw(name, &data.to_string())
}

/// `3<id>[data]`: the acknowledgement of event `id`.
pub fn ack(nsp: &str, id: u64, data: &Value) -> String {
    format!("3{}{id}[{data}]", nsp_prefix(nsp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn socketio_connect() {
        let p = decode_sio("0").unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.id, p.data),
            (SioKind::Connect, "/", None, None)
        );
        let p = decode_sio("0{\"token\":\"abc\"}").unwrap();
        assert_eq!(p.data, Some(json!({"token": "abc"})));
        let p = decode_sio("0/admin,{\"token\":\"abc\"}").unwrap();
        assert_eq!(p.nsp, "/admin");
        assert_eq!(p.data, Some(json!({"token": "abc"})));
        let p = decode_sio("0/admin,").unwrap();
        assert_eq!((p.nsp.as_str(), p.data), ("/admin", None));
        assert!(decode_sio("0[1]").is_err());
        assert!(decode_sio("0\"x\"").is_err());
    }

    #[test]
    fn socketio_events_and_acks() {
        let p = decode_sio("2[\"send-message\",{\"courseId\":\"c1\"}]").unwrap();
        assert_eq!(p.kind, SioKind::Event);
        assert_eq!(p.id, None);
        assert_eq!(p.data, Some(json!(["send-message", {"courseId": "c1"}])));
        let p = decode_sio("212[\"typing\",{\"isTyping\":true}]").unwrap();
        assert_eq!(p.id, Some(12));
        let p = decode_sio("2/chat,7[\"x\"]").unwrap();
        assert_eq!((p.nsp.as_str(), p.id), ("/chat", Some(7)));
        let p = decode_sio("34[1,2]").unwrap();
        assert_eq!((p.kind, p.id), (SioKind::Ack, Some(4)));
        let p = decode_sio("1").unwrap();
        assert_eq!(p.kind, SioKind::Disconnect);
        let p = decode_sio("1/chat,").unwrap();
        assert_eq!((p.kind, p.nsp.as_str()), (SioKind::Disconnect, "/chat"));
        let p = decode_sio("51-3[\"upload\",{\"_placeholder\":true,\"num\":0}]").unwrap();
        assert_eq!(
            (p.kind, p.attachments, p.id),
            (SioKind::BinaryEvent, 1, Some(3))
        );
        // Malformed.
        assert!(decode_sio("2").is_err());
        assert!(decode_sio("2{}").is_err());
        assert!(decode_sio("2[1]").is_err());
        assert!(decode_sio("2[\"x\"").is_err());
        assert!(decode_sio("3[1]").is_err());
        assert!(decode_sio("5[\"x\"]").is_err());
        assert!(decode_sio("9").is_err());
        assert!(decode_sio("").is_err());
        assert!(decode_sio("299999999999999999999999[\"x\"]").is_err());
    }

    #[test]
    fn server_packets() {
        assert_eq!(connect_ok("/", "s1"), "0{\"sid\":\"s1\"}");
        assert_eq!(connect_ok("/a", "s1"), "0/a,{\"sid\":\"s1\"}");
        let data = json!({"code": "UNAUTHORIZED", "message": "invalid token"});
        let e = connect_error("/", "UNAUTHORIZED", &data);
        assert!(e.starts_with("4{"));
        let v: Value = serde_json::from_str(&e[1..]).unwrap();
        assert_eq!(v, json!({"message": "UNAUTHORIZED", "data": data}));
        let e = connect_error("/x", "m", &json!({"code": "C"}));
        assert!(e.starts_with("4/x,{"));
        let v: Value = serde_json::from_str(&e[4..]).unwrap();
        assert_eq!(v, json!({"message": "m", "data": {"code": "C"}}));
        assert_eq!(disconnect("/"), "1");
        assert_eq!(disconnect("/x"), "1/x");
        assert_eq!(
            event_raw("new-message", "{\"a\":1}"),
            "2[\"new-message\",{\"a\":1}]"
        );
        assert_eq!(
            event("error", &json!({"code": "X"})),
            "2[\"error\",{\"code\":\"X\"}]"
        );
        assert_eq!(ack("/", 5, &json!({"ok": true})), "35[{\"ok\":true}]");
        assert_eq!(ack("/x", 5, &json!(null)), "3/x,5[null]");
        // What the server sends decodes back.
        let p = decode_sio(&ack("/", 9, &json!({"ok": false}))).unwrap();
        assert_eq!((p.kind, p.id), (SioKind::Ack, Some(9)));
        let p = decode_sio(&event("typing", &json!({}))).unwrap();
        assert_eq!(p.data, Some(json!(["typing", {}])));
        // On the wire, in an Engine.IO message.
        let wire = crate::engineio::packet::message;
        assert_eq!(wire(connect_ok("/", "s1")), "40{\"sid\":\"s1\"}");
        assert_eq!(wire(event_raw("a", "1")), "42[\"a\",1]");
        assert_eq!(wire(ack("/", 5, &json!(1))), "435[1]");
    }
}
