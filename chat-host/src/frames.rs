//! The write side of a server WebSocket, in batches.
//!
//! Why: a socket's writer often finds several frames ready at once (a room's burst, a `sinceSeq`
//! replay, an ack behind an event). Writing them with one `write` instead of one per frame saves
//! a system call and a trip through the loopback/TCP stack per frame, which is most of what a
//! delivery costs. Frames are encoded by fastwebsockets ([`Frame::write`]) into one buffer;
//! [`FrameWriter::flush`] writes the buffer, bounded by a timeout so a client that stopped
//! reading cannot hold its writer forever.

use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket, WebSocketRead};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

/// A control frame (pong, close) the reader asks the writer to send. Boxed because a channel
/// preallocates its slots for every socket and these frames are rare.
pub(crate) type Control = Box<Frame<'static>>;

/// The longest frame head: 2 bytes, an 8-byte extended length and a 4-byte mask.
const MAX_HEAD: usize = 14;

/// A writer stops adding frames to a batch once it holds this many bytes.
pub(crate) const BATCH_BYTES: usize = 64 * 1024;

/// Splits an upgraded socket into fastwebsockets' reader and a batching [`FrameWriter`].
pub(crate) fn split<S>(ws: WebSocket<S>) -> (WebSocketRead<ReadHalf<S>>, FrameWriter<WriteHalf<S>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Nothing was read from the stream yet (the handshake is hyper's), so taking it back from
    // the `WebSocket` loses nothing; the reader's own write side is never used.
    let (read, write) = tokio::io::split(ws.into_inner());
    let (reader, _) = fastwebsockets::after_handshake_split(read, tokio::io::sink(), Role::Server);
    (reader, FrameWriter::new(write))
}

/// Why a flush failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The client read nothing for the whole timeout.
    Stalled,
    /// The socket failed.
    Io(std::io::Error),
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
}
