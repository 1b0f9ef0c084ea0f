//! Just enough of Engine.IO v4 / Socket.IO v4 over a WebSocket for a load generator.
//!
//! The socket is opened at `/socket.io/?EIO=4&transport=websocket` (no long-polling). Engine.IO
//! packets are text frames whose first character is the type: `0` open (`0{"sid",...}`), `2` ping
//! (answered with `3`), `4` message. A Socket.IO packet rides in a `4`: `40{auth}` connects the
//! default namespace (answered `40{"sid"}` or `44{"message"}`), `42[name,data]` is an event and
//! `42<id>[name,data]` one that wants an acknowledgement, answered by `43<id>[args...]`.

use serde_json::Value;

/// The path to open.
pub const PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// What a text frame from the server is.
#[derive(Debug, PartialEq)]
pub enum Packet<'a> {
    /// Engine.IO open (`0{...}`).
    Open,
    /// Engine.IO ping: answer with [`PONG`].
    Ping,
    /// Socket.IO connect accepted (`40{...}`).
    Connected,
    /// Socket.IO connect refused (`44{"message"}`), with the payload.
    ConnectError(&'a [u8]),
    /// Socket.IO event (`42[...]`), the JSON array.
    Event(&'a [u8]),
    /// Socket.IO acknowledgement (`43<id>[...]`), the id and the JSON array.
    Ack(u64, &'a [u8]),
    /// Engine.IO close or Socket.IO disconnect.
    Closed,
    /// Anything else (noop, upgrade probes, binary placeholders...).
    Other,
}

/// The Engine.IO pong.
pub const PONG: &[u8] = b"3";

/// Classifies a text frame.
pub fn parse(frame: &[u8]) -> Packet<'_> {
    match frame {
        [b'0', ..] => Packet::Open,
        [b'2', ..] => Packet::Ping,
        [b'1', ..] => Packet::Closed,
        [b'4', b'0', ..] => Packet::Connected,
        [b'4', b'1', ..] => Packet::Closed,
        [b'4', b'4', rest @ ..] => Packet::ConnectError(rest),
        [b'4', b'2', rest @ ..] => Packet::Event(skip_id(rest).1),
        [b'4', b'3', rest @ ..] => {
            let (id, args) = skip_id(rest);
            match id {
                Some(id) => Packet::Ack(id, args),
                None => Packet::Other,
            }
        }
        _ => Packet::Other,
    }
}

/// Splits the optional decimal ack id off the start of a Socket.IO payload.
fn skip_id(rest: &[u8]) -> (Option<u64>, &[u8]) {
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return (None, rest);
    }
    let id = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|s| s.parse().ok());
    (id, &rest[digits..])
}

/// `40{"token": ...}`: connect the default namespace with the token as `auth`, as
/// `io(url, {auth: {token}})` does.
pub fn connect(token: &str) -> Vec<u8> {
    let mut out = b"40".to_vec();
    out.extend_from_slice(
        serde_json::to_string(&serde_json::json!({ "token": token }))
            .unwrap_or_default()
            .as_bytes(),
    );
    out
}

/// `42<ack>["event", data]` with `data` already JSON.
pub fn emit(event: &str, data_json: &str, ack: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(data_json.len() + event.len() + 32);
    out.extend_from_slice(b"42");
    if let Some(id) = ack {
        out.extend_from_slice(id.to_string().as_bytes());
    }
    out.extend_from_slice(b"[\"");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\",");
    out.extend_from_slice(data_json.as_bytes());
    out.push(b']');
    out
}

/// Whether an acknowledgement's arguments report success. Accepted shapes: `[{"ok":true,...}]`
/// (the native protocol's envelope), `[{"success":true,...}]`, `[null, data]` (error first),
/// or the bare result (`[data]`). A failure is `ok:false`, `success:false`, an object with an
/// `error` (and no message `id`), or a non-null first argument followed by nothing but an error.
pub fn ack_ok(args: &[u8]) -> bool {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(args) else {
        return false;
    };
    match items.first() {
        None | Some(Value::Null) => true,
        Some(Value::Object(o)) => {
            if let Some(Value::Bool(ok)) = o.get("ok") {
                return *ok;
            }
            if let Some(Value::Bool(ok)) = o.get("success") {
                return *ok;
            }
            !o.contains_key("error") || o.contains_key("id")
        }
        Some(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_packets() {
        assert_eq!(parse(br#"0{"sid":"x"}"#), Packet::Open);
        assert_eq!(parse(b"2"), Packet::Ping);
        assert_eq!(parse(br#"40{"sid":"y"}"#), Packet::Connected);
        assert_eq!(
            parse(br#"44{"message":"no"}"#),
            Packet::ConnectError(br#"{"message":"no"}"#)
        );
        assert_eq!(parse(br#"42["a",1]"#), Packet::Event(br#"["a",1]"#));
        assert_eq!(
            parse(br#"4312[{"ok":true}]"#),
            Packet::Ack(12, br#"[{"ok":true}]"#)
        );
        assert_eq!(parse(b"3"), Packet::Other);
    }

    #[test]
    fn encodes_packets() {
        assert_eq!(emit("typing", "{}", None), br#"42["typing",{}]"#.to_vec());
        assert_eq!(emit("x", "1", Some(7)), br#"427["x",1]"#.to_vec());
        assert_eq!(connect("t"), br#"40{"token":"t"}"#.to_vec());
    }

    #[test]
    fn judges_acks() {
        assert!(ack_ok(br#"[{"ok":true,"data":{}}]"#));
        assert!(!ack_ok(br#"[{"ok":false,"error":{"code":"X"}}]"#));
        assert!(!ack_ok(br#"[{"success":false}]"#));
        assert!(ack_ok(br#"[{"id":"m","message":"hi"}]"#));
        assert!(!ack_ok(br#"[{"error":{"code":"X"}}]"#));
        assert!(ack_ok(br#"[null,{"id":"m"}]"#));
        assert!(!ack_ok(b"not json"));
    }
}
