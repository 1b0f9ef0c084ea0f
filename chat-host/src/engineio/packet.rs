//! Engine.IO v4 packets, text only: what the transports read and write, and nothing of what a
//! message means (that is the layer above's, through the engine's `Handler`).
//!
//! Pure functions, no I/O. A packet is one type digit and its data: `0` open, `1` close,
//! `2` ping, `3` pong, `4` message, `5` upgrade, `6` noop; over long-polling several packets
//! travel in one body separated by the record separator `\x1e`, and a binary packet is `b`
//! followed by base64. Why its own module: both transports and the driver speak it, and the fuzz
//! target (`fuzz/fuzz_targets/socketio_packet.rs`) feeds it arbitrary text.

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
    /// `4`: a message (the layer above's text).
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

/// A message packet (`4` and `text`), the type written in front of the text in place (the upper
/// layer's encoders leave a byte of room for it, so this rarely reallocates).
pub fn message(mut text: String) -> String {
    text.insert(0, '4');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
    fn message_packet() {
        assert_eq!(message("2[\"a\",1]".to_string()), "42[\"a\",1]");
        assert_eq!(message(String::new()), "4");
        assert_eq!(
            decode_eio(&message("0{}".into())),
            Ok(EioPacket::Message("0{}"))
        );
    }
}
