//! The native `/ws` protocol of chat-host: `{"event","data","ack"}` frames from the client,
//! `{"event","data"}` events and `{"ack","ok","data"|"error"}` acknowledgements from the server.

use serde::Deserialize;

/// `{"event":..,"data":..,"ack":..}` with `data` already JSON.
pub fn emit(event: &str, data_json: &str, ack: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(data_json.len() + event.len() + 48);
    out.extend_from_slice(b"{\"event\":\"");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\",\"data\":");
    out.extend_from_slice(data_json.as_bytes());
    if let Some(id) = ack {
        out.extend_from_slice(b",\"ack\":");
        out.extend_from_slice(id.to_string().as_bytes());
    }
    out.push(b'}');
    out
}

/// What a server frame is.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// An acknowledgement: its id (when numeric) and whether it succeeded.
    Ack(Option<u64>, bool),
    /// An event, by name.
    Event(String),
    /// Not JSON, or neither.
    Other,
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    ack: Option<serde_json::Value>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    event: Option<String>,
}

/// Classifies a frame (a full parse: only used for frames that are not deliveries).
pub fn parse(frame: &[u8]) -> Frame {
    match serde_json::from_slice::<Head>(frame) {
        Ok(Head {
            ack: Some(a), ok, ..
        }) => Frame::Ack(a.as_u64(), ok.unwrap_or(false)),
        Ok(Head { event: Some(e), .. }) => Frame::Event(e),
        _ => Frame::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        assert_eq!(
            emit("join-course", r#"{"courseId":"c"}"#, Some(1)),
            br#"{"event":"join-course","data":{"courseId":"c"},"ack":1}"#.to_vec()
        );
        assert_eq!(
            parse(br#"{"ack":3,"data":{},"ok":true}"#),
            Frame::Ack(Some(3), true)
        );
        assert_eq!(
            parse(br#"{"ack":3,"error":{"code":"X"},"ok":false}"#),
            Frame::Ack(Some(3), false)
        );
        assert_eq!(
            parse(br#"{"event":"error","data":{}}"#),
            Frame::Event("error".into())
        );
        assert_eq!(parse(b"x"), Frame::Other);
    }
}
