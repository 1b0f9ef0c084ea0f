//! A server WebSocket's incoming frames (RFC 6455 §5), read into a buffer that is only as large
//! as what is waiting.
//!
//! Why not fastwebsockets' reader: it keeps an 8 KiB buffer for the life of every socket, and
//! most sockets of a chat server are idle — that buffer was more than half of an idle
//! connection's memory. Here an idle socket waits with [`IDLE_BYTES`] reserved; a frame larger
//! than that grows the buffer to its size, and once the buffer is drained a grown one is
//! released. The frame layout, masking and close codes are the RFC's; fastwebsockets still does
//! the upgrade, the frame heads of what the server writes, and the unmasking.
//!
//! Leniency kept from fastwebsockets: an unmasked client frame is accepted as is.

use fastwebsockets::{CloseCode, Frame, OpCode, Payload};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::MAX_HEAD;

/// What an idle socket keeps reserved: enough for the short frames clients send most (a pong,
/// a typing event) to arrive in one read.
const IDLE_BYTES: usize = 256;

/// Longest payload of a control frame (ping, pong, close).
const MAX_CONTROL: usize = 125;

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The frame's payload is at least the reader's maximum.
    TooLarge,
    /// The bytes break the protocol (what, for the log).
    Protocol(&'static str),
    /// The client closed the connection (possibly mid-frame).
    Eof,
    /// The socket failed.
    Io(std::io::Error),
    /// A pong or close the reader owed the client could not be queued.
    WriterGone,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge => f.write_str("frame too large"),
            FrameError::Protocol(what) => write!(f, "protocol error: {what}"),
            FrameError::Eof => f.write_str("connection closed"),
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::WriterGone => f.write_str("socket writer is gone"),
        }
    }
}

/// One frame from the client, unmasked.
#[derive(Debug, PartialEq, Eq)]
pub struct InFrame {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: Vec<u8>,
}

/// Reads a client's frames from `io`.
pub struct FrameReader<R> {
    io: R,
    /// Bytes read; `buf[pos..]` are not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    /// A frame whose payload is this long or longer is refused.
    max_frame: usize,
    /// Answer a close frame with a close (echoing its code), and refuse a bad one.
    auto_close: bool,
    /// Answer a ping with a pong.
    auto_pong: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R) -> Self {
        FrameReader {
            io,
            buf: Vec::new(),
            pos: 0,
            max_frame: 64 << 20,
            auto_close: true,
            auto_pong: true,
        }
    }

    pub fn set_max_message_size(&mut self, max: usize) {
        self.max_frame = max;
    }

    pub fn set_auto_close(&mut self, on: bool) {
        self.auto_close = on;
    }

    pub fn set_auto_pong(&mut self, on: bool) {
        self.auto_pong = on;
    }

    /// Bytes reserved by the buffer (for tests of its release).
    #[cfg(test)]
    pub(crate) fn reserved(&self) -> usize {
        self.buf.capacity()
    }

    /// Reads the next frame. A ping (with auto-pong) is answered through `send` and not
    /// returned; a close (with auto-close) is answered through `send` and returned.
    pub async fn read_frame<F, E>(
        &mut self,
        send: &mut impl FnMut(Frame<'static>) -> F,
    ) -> Result<InFrame, FrameError>
    where
        F: std::future::Future<Output = Result<(), E>>,
    {
        loop {
            let frame = self.next_frame().await?;
            // What the client is owed, and whether the frame goes on to the caller.
            let (owed, frame) = match frame.opcode {
                OpCode::Ping if self.auto_pong => {
                    (Frame::pong(Payload::Owned(frame.payload)), None)
                }
                OpCode::Close if self.auto_close => (close_answer(&frame.payload)?, Some(frame)),
                _ => return Ok(frame),
            };
            send(owed).await.map_err(|_| FrameError::WriterGone)?;
            if let Some(frame) = frame {
                return Ok(frame);
            }
        }
    }

    async fn next_frame(&mut self) -> Result<InFrame, FrameError> {
        self.fill(2).await?;
        let b0 = self.buf[self.pos];
        let b1 = self.buf[self.pos + 1];
        if b0 & 0x70 != 0 {
            return Err(FrameError::Protocol("reserved bits set"));
        }
        let opcode =
            OpCode::try_from(b0 & 0x0f).map_err(|_| FrameError::Protocol("unknown opcode"))?;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        let extra = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let head = 2 + extra + if masked { 4 } else { 0 };
        self.fill(head).await?;
        let at = self.pos + 2;
        let len = match extra {
            0 => u64::from(b1 & 0x7f),
            2 => u64::from(u16::from_be_bytes([self.buf[at], self.buf[at + 1]])),
            _ => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&self.buf[at..at + 8]);
                u64::from_be_bytes(n)
            }
        };
        let control = matches!(opcode, OpCode::Close | OpCode::Ping | OpCode::Pong);
        if control && !fin {
            return Err(FrameError::Protocol("fragmented control frame"));
        }
        if control && len > MAX_CONTROL as u64 {
            return Err(FrameError::Protocol("control frame too long"));
        }
        let len = match usize::try_from(len) {
            Ok(n) if n < self.max_frame => n,
            _ => return Err(FrameError::TooLarge),
        };
        let mask = masked.then(|| {
            let m = at + extra;
            [
                self.buf[m],
                self.buf[m + 1],
                self.buf[m + 2],
                self.buf[m + 3],
            ]
        });
        self.fill(head + len).await?;
        let start = self.pos + head;
        let mut payload = self.buf[start..start + len].to_vec();
        if let Some(mask) = mask {
            fastwebsockets::unmask(&mut payload, mask);
        }
        self.consume(head + len);
        Ok(InFrame {
            fin,
            opcode,
            payload,
        })
    }

    /// Reads until at least `need` unconsumed bytes are buffered.
    async fn fill(&mut self, need: usize) -> Result<(), FrameError> {
        loop {
            let have = self.buf.len() - self.pos;
            if have >= need {
                return Ok(());
            }
            if self.pos > 0 && self.buf.capacity() - self.buf.len() < need - have {
                // Move what is left of the buffer to its front before growing it.
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            // A frame's head comes with room for a short payload behind it; a payload is read
            // whole (and what follows it, as far as the buffer goes).
            let want = if need <= MAX_HEAD {
                IDLE_BYTES
            } else {
                need - have
            };
            self.buf.reserve(want);
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) => return Err(FrameError::Eof),
                Ok(_) => {}
                Err(e) => return Err(FrameError::Io(e)),
            }
        }
    }

    /// Drops `n` read bytes; a drained buffer larger than an idle one is released.
    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.pos = 0;
            if self.buf.capacity() > IDLE_BYTES {
                self.buf = Vec::new();
            } else {
                self.buf.clear();
            }
        }
    }
}

/// The close frame that answers the client's close `payload`: the same code (RFC 6455 §5.5.1),
/// or 1002 for a close that names a code no endpoint may send; an error for a malformed one.
fn close_answer(payload: &[u8]) -> Result<Frame<'static>, FrameError> {
    match payload {
        [] => Ok(Frame::close_raw(Payload::Owned(Vec::new()))),
        [_] => Err(FrameError::Protocol("one-byte close payload")),
        [hi, lo, reason @ ..] => {
            if std::str::from_utf8(reason).is_err() {
                return Err(FrameError::Protocol("close reason not UTF-8"));
            }
            let code = u16::from_be_bytes([*hi, *lo]);
            if CloseCode::from(code).is_allowed() {
                Ok(Frame::close_raw(Payload::Owned(payload.to_vec())))
            } else {
                Ok(Frame::close(1002, reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastwebsockets::{Role, WebSocket};
    use tokio::io::AsyncWriteExt;

    /// The frames `frames` as a client writes them (masked), read back by a server-side reader;
    /// also what the reader owed the client.
    async fn read_back(
        frames: Vec<Frame<'static>>,
        max: usize,
    ) -> (Vec<Result<InFrame, String>>, Vec<(OpCode, Vec<u8>)>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut client = WebSocket::after_handshake(client, Role::Client);
        client.set_auto_close(false);
        for frame in frames {
            client.write_frame(frame).await.unwrap();
        }
        drop(client);
        let mut rd = FrameReader::new(server);
        rd.set_max_message_size(max);
        let mut owed = Vec::new();
        let mut out = Vec::new();
        loop {
            let mut send = |f: Frame<'static>| {
                owed.push((f.opcode, f.payload.to_vec()));
                async { Ok::<(), ()>(()) }
            };
            match rd.read_frame(&mut send).await {
                Ok(f) => out.push(Ok(f)),
                Err(FrameError::Eof) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        (out, owed)
    }

    fn frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Frame<'static> {
        Frame::new(fin, opcode, None, Payload::Owned(payload.to_vec()))
    }

    fn got(fin: bool, opcode: OpCode, payload: &[u8]) -> Result<InFrame, String> {
        Ok(InFrame {
            fin,
            opcode,
            payload: payload.to_vec(),
        })
    }

    #[tokio::test]
    async fn reads_masked_frames_of_every_length_form() {
        let long = vec![b'a'; 300];
        let longer = vec![b'b'; 70_000];
        let (out, owed) = read_back(
            vec![
                frame(OpCode::Text, true, b"hello"),
                frame(OpCode::Text, false, &long),
                frame(OpCode::Continuation, true, &longer),
                frame(OpCode::Binary, true, b""),
            ],
            1 << 20,
        )
        .await;
        assert_eq!(
            out,
            vec![
                got(true, OpCode::Text, b"hello"),
                got(false, OpCode::Text, &long),
                got(true, OpCode::Continuation, &longer),
                got(true, OpCode::Binary, b""),
            ]
        );
        assert!(owed.is_empty());
    }

    #[tokio::test]
    async fn pings_are_answered_and_closes_echoed() {
        let (out, owed) = read_back(
            vec![
                frame(OpCode::Ping, true, b"p1"),
                frame(OpCode::Pong, true, b"x"),
                Frame::close(1000, b"bye"),
            ],
            1024,
        )
        .await;
        assert_eq!(
            out,
            vec![
                got(true, OpCode::Pong, b"x"),
                got(true, OpCode::Close, &[0x03, 0xe8, b'b', b'y', b'e']),
            ]
        );
        assert_eq!(
            owed,
            vec![
                (OpCode::Pong, b"p1".to_vec()),
                (OpCode::Close, vec![0x03, 0xe8, b'b', b'y', b'e']),
            ]
        );
        // A code no endpoint may send (1005) is answered with 1002.
        let (_, owed) = read_back(vec![Frame::close(1005, b"")], 1024).await;
        assert_eq!(owed, vec![(OpCode::Close, vec![0x03, 0xea])]);
    }

    #[tokio::test]
    async fn malformed_frames_are_refused() {
        let too_big = read_back(vec![frame(OpCode::Text, true, &[b'a'; 64])], 64).await;
        assert_eq!(too_big.0, vec![Err("frame too large".to_string())]);
        let fragmented_ping = read_back(vec![frame(OpCode::Ping, false, b"")], 64).await;
        assert_eq!(
            fragmented_ping.0,
            vec![Err("protocol error: fragmented control frame".to_string())]
        );
        let long_ping = read_back(vec![frame(OpCode::Ping, true, &[0; 126])], 1024).await;
        assert_eq!(
            long_ping.0,
            vec![Err("protocol error: control frame too long".to_string())]
        );
        let one_byte_close = read_back(vec![frame(OpCode::Close, true, &[3])], 64).await;
        assert_eq!(
            one_byte_close.0,
            vec![Err("protocol error: one-byte close payload".to_string())]
        );
    }

    /// Raw bytes (unmasked, as a test may write them) read by a server-side reader.
    async fn read_raw(bytes: &[u8]) -> Result<InFrame, String> {
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(bytes).await.unwrap();
        drop(client);
        let mut rd = FrameReader::new(server);
        let mut send = |_f: Frame<'static>| async { Ok::<(), ()>(()) };
        rd.read_frame(&mut send).await.map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn bad_heads_and_cut_frames_are_errors() {
        assert_eq!(
            read_raw(&[0xc1, 0]).await,
            Err("protocol error: reserved bits set".into())
        );
        assert_eq!(
            read_raw(&[0x83, 0]).await,
            Err("protocol error: unknown opcode".into())
        );
        assert_eq!(
            read_raw(&[0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]).await,
            Err("frame too large".into())
        );
        assert_eq!(
            read_raw(&[0x81, 5, b'h', b'i']).await,
            Err("connection closed".into())
        );
        assert_eq!(
            read_raw(&[0x81, 2, b'h', b'i']).await,
            got(true, OpCode::Text, b"hi")
        );
    }

    #[tokio::test]
    async fn an_idle_reader_keeps_a_small_buffer() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut rd = FrameReader::new(server);
        let mut send = |_f: Frame<'static>| async { Ok::<(), ()>(()) };
        let big = vec![b'z'; 100_000];
        let mut bytes = vec![0x81, 127];
        bytes.extend_from_slice(&(big.len() as u64).to_be_bytes());
        bytes.extend_from_slice(&big);
        bytes.extend_from_slice(&[0x81, 1, b'!']);
        client.write_all(&bytes).await.unwrap();
        let f = rd.read_frame(&mut send).await.unwrap();
        assert_eq!(f.payload.len(), big.len());
        let f = rd.read_frame(&mut send).await.unwrap();
        assert_eq!(f.payload, b"!");
        assert!(
            rd.reserved() <= IDLE_BYTES,
            "a drained large buffer is released: {}",
            rd.reserved()
        );
        client.write_all(&[0x81, 2, b'o', b'k']).await.unwrap();
        rd.read_frame(&mut send).await.unwrap();
        assert!(rd.reserved() <= IDLE_BYTES, "{}", rd.reserved());
    }
}
