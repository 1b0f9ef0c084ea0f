//! A server WebSocket's frames, in and out, for `/ws` and Engine.IO's WebSocket transport alike.
//!
//! In: [`FrameReader`] (`reader.rs`) reads frames with a buffer sized to what is waiting;
//! [`read_message`] joins them into whole messages under a size cap, and says why it stopped
//! ([`ReadError`]); each transport decides what that costs the client (a close code, an `error`
//! event).
//!
//! Out, in batches. Why: a socket's writer often finds several frames ready at once (a room's
//! burst, a `sinceSeq` replay, an ack behind an event). Writing them with one `write` instead of
//! one per frame saves a system call and a trip through the loopback/TCP stack per frame, which
//! is most of what a delivery costs. Frames are encoded by fastwebsockets ([`Frame::write`]) into
//! one buffer; [`FrameWriter::flush`] writes the buffer, bounded by a timeout so a client that
//! stopped reading cannot hold its writer forever. What a writer is given to send is one queue
//! of [`Outgoing`] items: text, and the control frames the reader owes the client.

use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;

mod reader;

pub use reader::{FrameError, FrameReader, InFrame};

/// A control frame (pong, close) the reader asks the writer to send. Boxed because a channel
/// preallocates its slots for every socket and these frames are rare.
pub(crate) type Control = Box<Frame<'static>>;

/// What a socket's writer is asked to send: a text frame (an event, an ack, an Engine.IO
/// packet), or a control frame the reader owes the client (pong, close). One queue for both
/// keeps an idle socket small.
pub(crate) enum Outgoing {
    Text(String),
    Control(Control),
    /// A source of messages the writer reads by itself from here on, in the queue's order
    /// (Engine.IO's WebSocket writer takes its session's room events this way: see
    /// [`crate::engineio`]'s `Feed`). A writer that has no use for it drops it.
    Handover(Box<dyn std::any::Any + Send>),
}

/// A whole message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (checked to be UTF-8 once, here).
    Text(String),
    /// A binary message (its content is never used).
    Binary,
    /// A close frame.
    Close,
}

/// Why [`read_message`] read no message.
#[derive(Debug)]
pub enum ReadError {
    /// One frame was larger than the reader's `max_message_size`.
    FrameTooLarge,
    /// The fragments of a message added up to more than the cap.
    MessageTooLarge,
    /// A continuation frame came with no message to continue.
    UnexpectedContinuation,
    /// The socket failed or sent a malformed frame.
    Socket(FrameError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::FrameTooLarge => f.write_str("frame too large"),
            ReadError::MessageTooLarge => f.write_str("message too large"),
            ReadError::UnexpectedContinuation => f.write_str("unexpected continuation"),
            ReadError::Socket(e) => write!(f, "{e}"),
        }
    }
}

/// Reads one message, joining fragments, at most `max` bytes. Pings and pongs are skipped (the
/// reader answers pings itself when auto-pong is on, through `send`); `on_frame` is called for
/// every frame read, control frames included (they count as the client's life).
pub async fn read_message<S, R, E>(
    rd: &mut FrameReader<S>,
    send: &mut impl FnMut(Frame<'static>) -> R,
    max: usize,
    mut on_frame: impl FnMut(),
) -> Result<Message, ReadError>
where
    S: AsyncRead + Unpin,
    R: std::future::Future<Output = Result<(), E>>,
{
    let mut partial: Option<(OpCode, Vec<u8>)> = None;
    loop {
        let frame = match rd.read_frame(send).await {
            Ok(frame) => frame,
            Err(FrameError::TooLarge) => return Err(ReadError::FrameTooLarge),
            Err(e) => return Err(ReadError::Socket(e)),
        };
        on_frame();
        let (opcode, payload) = match frame.opcode {
            OpCode::Close => return Ok(Message::Close),
            OpCode::Ping | OpCode::Pong => continue,
            OpCode::Text | OpCode::Binary if frame.fin => (frame.opcode, frame.payload),
            OpCode::Text | OpCode::Binary => {
                partial = Some((frame.opcode, frame.payload));
                continue;
            }
            OpCode::Continuation => {
                let Some((_, buf)) = partial.as_mut() else {
                    return Err(ReadError::UnexpectedContinuation);
                };
                if buf.len() + frame.payload.len() > max {
                    return Err(ReadError::MessageTooLarge);
                }
                buf.extend_from_slice(&frame.payload);
                if !frame.fin {
                    continue;
                }
                match partial.take() {
                    Some(done) => done,
                    None => continue,
                }
            }
        };
        if opcode == OpCode::Binary {
            return Ok(Message::Binary);
        }
        // RFC 6455 §8.1: a text message that is not UTF-8 fails the connection.
        return String::from_utf8(payload)
            .map(Message::Text)
            .map_err(|_| ReadError::Socket(FrameError::Protocol("text message not UTF-8")));
    }
}

/// Waits for a socket's writer task to finish what it has (at most `write_timeout`, and never
/// more than 2 s), then gives up on it.
pub(crate) async fn join_writer(mut writer: JoinHandle<()>, write_timeout: Duration) {
    let grace = write_timeout.min(Duration::from_secs(2));
    if tokio::time::timeout(grace, &mut writer).await.is_err() {
        writer.abort();
    }
}

/// The longest frame head: 2 bytes, an 8-byte extended length and a 4-byte mask (a client's
/// frames are masked; the server's are not).
const MAX_HEAD: usize = 14;

/// The longest head of a frame the server sends: 2 bytes and an 8-byte extended length.
const SERVER_HEAD: usize = 10;

/// A writer stops adding frames to a batch once it holds this many bytes.
pub(crate) const BATCH_BYTES: usize = 64 * 1024;

/// Splits an upgraded socket into a [`FrameReader`] and a batching [`FrameWriter`].
pub(crate) fn split<S>(ws: WebSocket<S>) -> (FrameReader<ReadHalf<S>>, FrameWriter<WriteHalf<S>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Nothing was read from the stream yet (the handshake is hyper's), so taking it back from
    // the `WebSocket` loses nothing.
    let (read, write) = tokio::io::split(ws.into_inner());
    (FrameReader::new(read), FrameWriter::new(write))
}

/// Why a flush failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The client read nothing for the whole timeout.
    Stalled,
    /// The socket failed.
    Io(std::io::Error),
}

impl WriteError {
    /// Logs the failure of `what` (`socket`, `Socket.IO WebSocket`): a stalled client is worth
    /// an `info`, a failed socket a `debug`.
    pub(crate) fn log(&self, what: &str) {
        match self {
            WriteError::Stalled => tracing::info!("{what} write stalled, disconnecting"),
            WriteError::Io(e) => tracing::debug!(error = %e, "{what} write failed"),
        }
    }
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Stalled => f.write_str("write stalled"),
            WriteError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Encodes frames into a batch and writes the batch at once.
pub(crate) struct FrameWriter<W> {
    io: W,
    batch: Vec<u8>,
    closed: bool,
}

/// A flushed batch buffer larger than this is released rather than kept: most sockets are idle
/// most of the time, and one burst (an `online-users` list, a replay) should not stay resident.
const KEEP_BYTES: usize = 512;

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub(crate) fn new(io: W) -> Self {
        FrameWriter {
            io,
            batch: Vec::new(),
            closed: false,
        }
    }

    /// Adds a text frame to the batch.
    pub(crate) fn text(&mut self, text: &[u8]) {
        self.push(Frame::text(Payload::Borrowed(text)));
    }

    /// Adds a text frame whose payload `write` appends to the given buffer, with no copy in
    /// between: how an event shared by a room's sockets is framed for each of them without a
    /// `String` per socket. The payload must be UTF-8.
    pub(crate) fn text_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.closed {
            return;
        }
        // Room for the longest head a server frame has (no mask), moved down once the
        // payload's length, and so the head's, is known.
        let start = self.batch.len();
        self.batch.extend_from_slice(&[0; SERVER_HEAD]);
        write(&mut self.batch);
        let len = self.batch.len() - start - SERVER_HEAD;
        // The head as `push` writes it, from a frame borrowing the payload in place.
        let mut head = [0u8; MAX_HEAD];
        let payload = Payload::Borrowed(&self.batch[start + SERVER_HEAD..]);
        let n = Frame::text(payload).fmt_head(&mut head);
        self.batch[start..start + n].copy_from_slice(&head[..n]);
        if n < SERVER_HEAD {
            self.batch.copy_within(start + SERVER_HEAD.., start + n);
            self.batch.truncate(start + n + len);
        }
    }

    /// Adds a frame to the batch. Nothing is added after a close frame.
    pub(crate) fn push(&mut self, mut frame: Frame<'_>) {
        if self.closed {
            return;
        }
        self.closed = frame.opcode == OpCode::Close;
        let mut head = [0u8; MAX_HEAD];
        let n = frame.fmt_head(&mut head);
        self.batch.extend_from_slice(&head[..n]);
        self.batch.extend_from_slice(&frame.payload);
    }

    /// Adds a queued item to the batch; true when it was a close frame (nothing more goes out).
    pub(crate) fn add(&mut self, out: Outgoing) -> bool {
        match out {
            Outgoing::Text(text) => {
                self.text(text.as_bytes());
                false
            }
            Outgoing::Control(frame) => {
                let close = frame.opcode == OpCode::Close;
                self.push(*frame);
                close
            }
            Outgoing::Handover(_) => false,
        }
    }

    /// Adds the control frames still queued (a close the reader queued just before the socket
    /// stopped goes out); queued text is dropped.
    pub(crate) fn add_queued_controls(&mut self, rx: &flume::Receiver<Outgoing>) {
        while let Ok(out) = rx.try_recv() {
            if let Outgoing::Control(frame) = out {
                self.push(*frame);
            }
        }
    }

    /// Bytes waiting in the batch.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.batch.len()
    }

    /// Whether the batch has room for more frames.
    pub(crate) fn has_room(&self) -> bool {
        self.batch.len() < BATCH_BYTES
    }

    /// Writes the batch; fails if the socket takes longer than `timeout` to accept it.
    pub(crate) async fn flush(&mut self, timeout: Duration) -> Result<(), WriteError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let written = tokio::time::timeout(timeout, self.io.write_all(&self.batch)).await;
        self.batch.clear();
        if self.batch.capacity() > KEEP_BYTES {
            self.batch = Vec::new();
        }
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WriteError::Io(e)),
            Err(_) => Err(WriteError::Stalled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastwebsockets::Role;

    /// A server-side reader fed by a client writing `frames`, and the messages it reads.
    async fn read_all(frames: Vec<Frame<'static>>, max: usize) -> Vec<Result<Message, String>> {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut client = WebSocket::after_handshake(client, Role::Client);
        client.set_auto_close(false);
        for frame in frames {
            client.write_frame(frame).await.unwrap();
        }
        drop(client);
        let (mut rd, _) = split(WebSocket::after_handshake(server, Role::Server));
        rd.set_max_message_size(max);
        let mut ignore = |_| async { Ok::<(), std::convert::Infallible>(()) };
        let mut out = Vec::new();
        loop {
            match read_message(&mut rd, &mut ignore, max, || {}).await {
                Ok(m) => out.push(Ok(m)),
                Err(ReadError::Socket(_)) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    }

    fn part(opcode: OpCode, fin: bool, text: &[u8]) -> Frame<'static> {
        Frame::new(fin, opcode, None, Payload::Owned(text.to_vec()))
    }

    #[tokio::test]
    async fn fragments_are_joined_under_the_cap() {
        let got = read_all(
            vec![
                part(OpCode::Text, false, b"hel"),
                part(OpCode::Ping, true, b""),
                part(OpCode::Continuation, true, b"lo"),
                part(OpCode::Binary, true, b"\x00"),
                Frame::close(1000, b""),
            ],
            16,
        )
        .await;
        assert_eq!(
            got,
            vec![
                Ok(Message::Text("hello".to_string())),
                Ok(Message::Binary),
                Ok(Message::Close)
            ]
        );
        let got = read_all(
            vec![
                part(OpCode::Text, false, b"0123456789"),
                part(OpCode::Continuation, true, b"0123456789"),
            ],
            16,
        )
        .await;
        assert_eq!(got, vec![Err("message too large".to_string())]);
        let got = read_all(vec![part(OpCode::Continuation, true, b"x")], 16).await;
        assert_eq!(got, vec![Err("unexpected continuation".to_string())]);
        let got = read_all(vec![part(OpCode::Text, true, &[b'a'; 32])], 16).await;
        assert_eq!(got, vec![Err("frame too large".to_string())]);
    }

    #[tokio::test]
    async fn batches_frames_into_one_write() {
        let mut w = FrameWriter::new(Vec::new());
        w.text(b"hello");
        w.text(b"");
        w.push(Frame::close(1000, b""));
        w.text(b"after close");
        assert!(w.pending() > 0);
        w.flush(Duration::from_secs(1)).await.unwrap();
        assert_eq!(w.pending(), 0);
        let out = w.io;
        // text "hello", empty text, close 1000: unmasked server frames.
        assert_eq!(
            out,
            [&[0x81, 5][..], b"hello", &[0x81, 0], &[0x88, 2, 0x03, 0xe8]].concat()
        );
    }

    #[tokio::test]
    async fn long_frames_use_extended_lengths() {
        let mut w = FrameWriter::new(Vec::new());
        let text = vec![b'a'; 300];
        w.text(&text);
        w.flush(Duration::from_secs(1)).await.unwrap();
        assert_eq!(&w.io[..4], &[0x81, 126, 1, 44]);
        assert_eq!(w.io.len(), 4 + 300);
    }

    /// `text_with` frames a payload written in place exactly as `text` frames the same bytes,
    /// at every head length, and behind frames already in the batch.
    #[tokio::test]
    async fn text_written_in_place_is_framed_like_text() {
        for len in [0, 1, 125, 126, 300, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mut by_copy = FrameWriter::new(Vec::new());
            by_copy.text(b"before");
            by_copy.text(&payload);
            by_copy.text(b"after");
            by_copy.flush(Duration::from_secs(1)).await.unwrap();
            let mut in_place = FrameWriter::new(Vec::new());
            in_place.text(b"before");
            in_place.text_with(|buf| buf.extend_from_slice(&payload));
            in_place.text(b"after");
            in_place.flush(Duration::from_secs(1)).await.unwrap();
            assert_eq!(in_place.io, by_copy.io, "payload of {len} bytes");
        }
        let mut closed = FrameWriter::new(Vec::new());
        closed.push(Frame::close(1000, b""));
        closed.text_with(|buf| buf.extend_from_slice(b"late"));
        closed.flush(Duration::from_secs(1)).await.unwrap();
        assert_eq!(closed.io, [0x88, 2, 0x03, 0xe8]);
    }
}
