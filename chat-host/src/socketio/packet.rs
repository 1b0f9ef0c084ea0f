//! Engine.IO v4 and Socket.IO v5 (the protocol of `socket.io` 3 and 4) packets, text only.
//!
//! Pure functions, no I/O. An Engine.IO packet is one type digit and its data:
//! `0` open, `1` close, `2` ping, `3` pong, `4` message, `5` upgrade, `6` noop; over long-polling
//! several packets travel in one body separated by the record separator `\x1e`, and a binary
//! packet is `b` followed by base64. A Socket.IO packet rides in an Engine.IO message (`4…`):
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`, with types `0` CONNECT,
//! `1` DISCONNECT, `2` EVENT, `3` ACK, `4` CONNECT_ERROR, `5` BINARY_EVENT, `6` BINARY_ACK. The
//! main namespace `/` is written by omission.

use serde_json::Value;

/// The separator of packets in a long-polling body.
pub const SEPARATOR: char = '\x1e';

/// An Engine.IO packet, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioPacket<'a> {
    /// `0`: only the server sends it.
    Open(&'a str),
    /// `1`: the transport is closing.
    Close,
    /// `2`: a ping (with `probe` during an upgrade).
    Ping(&'a str),
    /// `3`: a pong (with `probe` during an upgrade).
    Pong(&'a str),
    /// `4`: a message (a Socket.IO packet).
    Message(&'a str),
    /// `5`: the client switches to the probed transport.
    Upgrade,
    /// `6`: nothing.
    Noop,
    /// Binary data (`b…` in a polling body, or a binary WebSocket message).
    Binary,
}

/// Why a packet was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ParseError {}

/// Decodes one Engine.IO text packet.
pub fn decode_eio(text: &str) -> Result<EioPacket<'_>, ParseError> {
    let mut chars = text.chars();
    let Some(kind) = chars.next() else {
        return Err(ParseError("empty packet"));
    };
    let rest = chars.as_str();
    Ok(match kind {
        '0' => EioPacket::Open(rest),
        '1' => EioPacket::Close,
        '2' => EioPacket::Ping(rest),
        '3' => EioPacket::Pong(rest),
        '4' => EioPacket::Message(rest),
        '5' => EioPacket::Upgrade,
        '6' => EioPacket::Noop,
        'b' => EioPacket::Binary,
        _ => return Err(ParseError("unknown packet type")),
    })
}

/// Splits a long-polling body into its packets and decodes each.
pub fn decode_payload(body: &str) -> Result<Vec<EioPacket<'_>>, ParseError> {
    body.split(SEPARATOR).map(decode_eio).collect()
}

/// Joins encoded packets into a long-polling body.
pub fn encode_payload<S: AsRef<str>>(packets: &[S]) -> String {
    let mut out = String::with_capacity(packets.iter().map(|p| p.as_ref().len() + 1).sum());
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        out.push_str(p.as_ref());
    }
    out
}

/// What the open packet announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake<'a> {
    /// The session id.
    pub sid: &'a str,
    /// Transports the client may upgrade to (`["websocket"]` over polling, `[]` over WebSocket).
    pub upgrades: &'a [&'a str],
    /// Milliseconds between the server's pings.
    pub ping_interval_ms: u64,
    /// Milliseconds the server waits for a pong (and the client adds to the interval).
    pub ping_timeout_ms: u64,
    /// Largest body or message the server accepts, in bytes.
    pub max_payload: usize,
}

/// `0{"sid","upgrades","pingInterval","pingTimeout","maxPayload"}`.
pub fn encode_open(h: &Handshake<'_>) -> String {
    let body = serde_json::json!({
        "sid": h.sid,
        "upgrades": h.upgrades,
        "pingInterval": h.ping_interval_ms,
        "pingTimeout": h.ping_timeout_ms,
        "maxPayload": h.max_payload,
    });
    format!("0{body}")
}

/// Engine.IO packets the server sends as they are.
pub mod eio {
    /// `1`: close.
    pub const CLOSE: &str = "1";
    /// `2`: ping.
    pub const PING: &str = "2";
    /// `3probe`: the answer to an upgrade probe.
    pub const PONG_PROBE: &str = "3probe";
    /// `6`: noop (ends a pending long-poll during an upgrade).
    pub const NOOP: &str = "6";
}

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

/// `40{"sid":…}`: the namespace connection is accepted (as an Engine.IO message).
pub fn connect_ok(nsp: &str, sid: &str) -> String {
    format!("40{}{}", nsp_prefix(nsp), serde_json::json!({ "sid": sid }))
}

/// `44{"message":…,"data":…}`: the namespace connection is refused (the client's
/// `connect_error` gets an `Error` with this `message` and `data`).
pub fn connect_error(nsp: &str, message: &str, data: &Value) -> String {
    format!(
        "44{}{}",
        nsp_prefix(nsp),
        serde_json::json!({"message": message, "data": data})
    )
}

/// `41`: the server disconnects the namespace.
pub fn disconnect(nsp: &str) -> String {
    let p = nsp_prefix(nsp);
    format!("41{}", p.trim_end_matches(','))
}

/// `42["name",data]` with `data` already JSON text (events share one serialization).
pub fn event_raw(name: &str, data_json: &str) -> String {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plain {
        let name = Value::String(name.to_string());
        return format!("42[{name},{data_json}]");
    }
    let mut out = String::with_capacity(name.len() + data_json.len() + 6);
    out.push_str("42[\"");
    out.push_str(name);
    out.push_str("\",");
    out.push_str(data_json);
    out.push(']');
    out
}

/// `42["name",data]`.
pub fn event(name: &str, data: &Value) -> String {
    event_raw(name, &data.to_string())
}

/// `43<id>[data]`: the acknowledgement of event `id`.
pub fn ack(nsp: &str, id: u64, data: &Value) -> String {
    format!("43{}{id}[{data}]", nsp_prefix(nsp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn engine_packets() {
        assert_eq!(decode_eio("2"), Ok(EioPacket::Ping("")));
        assert_eq!(decode_eio("2probe"), Ok(EioPacket::Ping("probe")));
        assert_eq!(decode_eio("3probe"), Ok(EioPacket::Pong("probe")));
        assert_eq!(decode_eio("3"), Ok(EioPacket::Pong("")));
        assert_eq!(decode_eio("1"), Ok(EioPacket::Close));
        assert_eq!(decode_eio("5"), Ok(EioPacket::Upgrade));
        assert_eq!(decode_eio("6"), Ok(EioPacket::Noop));
        assert_eq!(decode_eio("bAQID"), Ok(EioPacket::Binary));
        assert_eq!(decode_eio("4héllo"), Ok(EioPacket::Message("héllo")));
        assert!(decode_eio("").is_err());
        assert!(decode_eio("9").is_err());
        assert!(decode_eio("x").is_err());
    }

    #[test]
    fn polling_payloads() {
        let body = "40{\"token\":\"t\"}\x1e42[\"typing\",{}]\x1e3";
        assert_eq!(
            decode_payload(body).unwrap(),
            vec![
                EioPacket::Message("0{\"token\":\"t\"}"),
                EioPacket::Message("2[\"typing\",{}]"),
                EioPacket::Pong(""),
            ]
        );
        assert_eq!(encode_payload(&["2", "42[\"a\",1]"]), "2\x1e42[\"a\",1]");
        assert_eq!(encode_payload(&["6"]), "6");
        assert_eq!(encode_payload::<&str>(&[]), "");
        assert!(decode_payload("4a\x1e\x1e2").is_err());
    }

    #[test]
    fn open_packet() {
        let text = encode_open(&Handshake {
            sid: "abc",
            upgrades: &["websocket"],
            ping_interval_ms: 25000,
            ping_timeout_ms: 20000,
            max_payload: 1_000_000,
        });
        assert!(text.starts_with('0'));
        let v: Value = serde_json::from_str(&text[1..]).unwrap();
        assert_eq!(
            v,
            json!({"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000})
        );
    }

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
        assert_eq!(connect_ok("/", "s1"), "40{\"sid\":\"s1\"}");
        assert_eq!(connect_ok("/a", "s1"), "40/a,{\"sid\":\"s1\"}");
        let data = json!({"code": "UNAUTHORIZED", "message": "invalid token"});
        let e = connect_error("/", "UNAUTHORIZED", &data);
        assert!(e.starts_with("44{"));
        let v: Value = serde_json::from_str(&e[2..]).unwrap();
        assert_eq!(v, json!({"message": "UNAUTHORIZED", "data": data}));
        let e = connect_error("/x", "m", &json!({"code": "C"}));
        assert!(e.starts_with("44/x,{"));
        let v: Value = serde_json::from_str(&e[5..]).unwrap();
        assert_eq!(v, json!({"message": "m", "data": {"code": "C"}}));
        assert_eq!(disconnect("/"), "41");
        assert_eq!(disconnect("/x"), "41/x");
        assert_eq!(
            event_raw("new-message", "{\"a\":1}"),
            "42[\"new-message\",{\"a\":1}]"
        );
        assert_eq!(
            event("error", &json!({"code": "X"})),
            "42[\"error\",{\"code\":\"X\"}]"
        );
        assert_eq!(ack("/", 5, &json!({"ok": true})), "435[{\"ok\":true}]");
        assert_eq!(ack("/x", 5, &json!(null)), "43/x,5[null]");
        // What the server sends decodes back.
        let p = decode_sio(&ack("/", 9, &json!({"ok": false}))[1..]).unwrap();
        assert_eq!((p.kind, p.id), (SioKind::Ack, Some(9)));
        let p = decode_sio(&event("typing", &json!({}))[1..]).unwrap();
        assert_eq!(p.data, Some(json!(["typing", {}])));
    }
}
