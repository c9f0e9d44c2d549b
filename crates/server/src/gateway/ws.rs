//! The server side of a WebSocket connection (RFC 6455), framed here rather than by
//! tungstenite so an idle connection holds no buffer at all: bytes are read into a buffer on
//! the stack, and only a frame that has not fully arrived, or output not yet written, is kept.
//! tungstenite's `FrameHeader` still parses frame headers.

use std::io::Cursor;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// The socket of an upgraded HTTP connection.
pub type Socket = TokioIo<Upgraded>;

/// Bytes read from the socket per system call.
const READ_CHUNK: usize = 4096;

/// A message or control frame from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    /// A binary message; its content is not kept (the protocol has no use for one).
    Binary,
    Ping(Vec<u8>),
    Pong,
    Close,
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the connection ended")]
    Ended,
    #[error("reading failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("a frame or message is over the size limit")]
    TooLarge,
    #[error("a text message is not valid UTF-8")]
    BadUtf8,
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}

/// One WebSocket connection, server side.
pub struct Conn<S = Socket> {
    io: S,
    /// Read but not yet a whole frame; unallocated when nothing is pending.
    input: Vec<u8>,
    /// The fragments so far of a message sent in several frames, and whether it is text.
    message: Vec<u8>,
    fragmented: Option<bool>,
    /// Frames queued for the socket, of which `written` bytes went out.
    output: Vec<u8>,
    written: usize,
    max_message: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// A connection whose handshake is done; messages over `max_message` bytes are refused.
    pub fn new(io: S, max_message: usize) -> Self {
        Conn {
            io,
            input: Vec::new(),
            message: Vec::new(),
            fragmented: None,
            output: Vec::new(),
            written: 0,
            max_message,
        }
    }

    /// The next message or control frame. Cancel-safe: what was read stays for the next call.
    pub async fn read(&mut self) -> Result<Incoming, ReadError> {
        std::future::poll_fn(|cx| self.poll_read(cx)).await
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, ReadError>> {
        loop {
            if let Some(message) = self.parse()? {
                return Poll::Ready(Ok(message));
            }
            // Uninitialized: this runs at every wake-up of the session, readable or not.
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
            if buf.filled().is_empty() {
                return Poll::Ready(Err(ReadError::Ended));
            }
            self.input.extend_from_slice(buf.filled());
        }
    }

    /// Takes whole frames off `input` until one completes a message or a control frame.
    fn parse(&mut self) -> Result<Option<Incoming>, ReadError> {
        loop {
            let mut cursor = Cursor::new(self.input.as_slice());
            let Some((header, len)) = FrameHeader::parse(&mut cursor)
                .map_err(|_| ReadError::Protocol("unknown opcode"))?
            else {
                return Ok(None);
            };
            let start = cursor.position() as usize;
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(ReadError::Protocol(
                    "reserved bits set without an extension",
                ));
            }
            let Some(mask) = header.mask else {
                return Err(ReadError::Protocol("client frames must be masked"));
            };
            let control = matches!(header.opcode, OpCode::Control(_));
            if control && (len > 125 || !header.is_final) {
                return Err(ReadError::Protocol(
                    "control frames are short and unfragmented",
                ));
            }
            if len > (self.max_message - self.message.len()) as u64 {
                return Err(ReadError::TooLarge);
            }
            let end = start + len as usize;
            if self.input.len() < end {
                return Ok(None);
            }
            let payload = &mut self.input[start..end];
            unmask(payload, mask);
            let message = self.frame(header.opcode, header.is_final, start, end)?;
            self.input.drain(..end);
            if self.input.is_empty() {
                self.input = Vec::new();
            }
            if message.is_some() {
                return Ok(message);
            }
        }
    }

    /// Handles the unmasked frame at `input[start..end]`.
    fn frame(
        &mut self,
        opcode: OpCode,
        is_final: bool,
        start: usize,
        end: usize,
    ) -> Result<Option<Incoming>, ReadError> {
        let payload = &self.input[start..end];
        Ok(Some(match opcode {
            OpCode::Control(Control::Ping) => Incoming::Ping(payload.to_vec()),
            OpCode::Control(Control::Pong) => Incoming::Pong,
            OpCode::Control(_) => Incoming::Close,
            OpCode::Data(Data::Continue) => {
                let Some(text) = self.fragmented else {
                    return Err(ReadError::Protocol("a continuation frame with no message"));
                };
                self.message.extend_from_slice(payload);
                if !is_final {
                    return Ok(None);
                }
                self.fragmented = None;
                let whole = std::mem::take(&mut self.message);
                if text {
                    Incoming::Text(String::from_utf8(whole).map_err(|_| ReadError::BadUtf8)?)
                } else {
                    Incoming::Binary
                }
            }
            OpCode::Data(data) => {
                if self.fragmented.is_some() {
                    return Err(ReadError::Protocol("a new message inside a fragmented one"));
                }
                let text = data == Data::Text;
                if !is_final {
                    self.fragmented = Some(text);
                    self.message.extend_from_slice(payload);
                    return Ok(None);
                }
                if text {
                    let s = std::str::from_utf8(payload).map_err(|_| ReadError::BadUtf8)?;
                    Incoming::Text(s.to_owned())
                } else {
                    Incoming::Binary
                }
            }
        }))
    }

    /// Queues a text frame.
    pub fn queue_text(&mut self, text: &str) {
        self.queue(0x1, text.as_bytes());
    }

    /// Queues a ping.
    pub fn queue_ping(&mut self) {
        self.queue(0x9, &[]);
    }

    /// Queues the answer to a ping.
    pub fn queue_pong(&mut self, payload: &[u8]) {
        self.queue(0xA, payload);
    }

    /// Queues a close frame; `reason` must fit a control frame (123 bytes).
    fn queue_close(&mut self, code: u16, reason: &str) {
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(reason.as_bytes());
        self.queue(0x8, &payload);
    }

    fn queue(&mut self, opcode: u8, payload: &[u8]) {
        let out = &mut self.output;
        // One allocation for an empty buffer, not one per push.
        out.reserve(10 + payload.len());
        out.push(0x80 | opcode);
        match payload.len() {
            n @ 0..=125 => out.push(n as u8),
            n @ 126..=0xFFFF => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.output.len() - self.written
    }

    /// Writes everything queued, with as few system calls as the socket allows. Cancel-safe.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.written < self.output.len() {
            let rest = &self.output[self.written..];
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        // Given back, not cleared: most connections are idle between bursts.
        self.output = Vec::new();
        self.written = 0;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Sends a close frame after what is queued and ends the sending side, then waits for the
    /// client's close (at most `wait` in all), so the client reads everything that was sent
    /// before the socket goes.
    pub async fn close(&mut self, code: u16, reason: &str, wait: Duration) {
        self.queue_close(code, reason);
        let handshake = async {
            self.flush().await?;
            self.io.shutdown().await?;
            while !matches!(self.read().await, Ok(Incoming::Close) | Err(_)) {}
            Ok::<(), std::io::Error>(())
        };
        let _ = tokio::time::timeout(wait, handshake).await;
    }
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        for (b, m) in chunk.iter_mut().zip(mask) {
            *b ^= m;
        }
    }
    for (b, m) in chunks.into_remainder().iter_mut().zip(mask) {
        *b ^= m;
    }
}

#[cfg(test)]
mod tests;
