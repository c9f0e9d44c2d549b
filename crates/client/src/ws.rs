//! `WsClient`: one WebSocket session. Reads happen only when asked (so a test can stop reading
//! to provoke back-pressure); frames read while waiting for something else are stashed in
//! order and handed out first by `next_frame`.

use std::collections::VecDeque;
use std::time::Duration;

use confab_protocol::ServerFrame;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::error::{ClientError, Result};
use crate::frames::frame_ref;

/// The socket type under a session.
pub type WsStream = WebSocketStream<TcpStream>;

/// Close code recorded when the connection ended without a close frame (never on the wire).
pub const ABNORMAL_CLOSE: u16 = 1006;
/// Close code recorded when a close frame carried no code (never on the wire).
pub const NO_STATUS_CLOSE: u16 = 1005;

/// Time allowed for writing one frame when the server does not read.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// One WebSocket session: a [`WsSender`] and a [`WsReceiver`] together.
#[derive(Debug)]
pub struct WsClient {
    tx: WsSender,
    rx: WsReceiver,
    next_ref: u64,
}

/// The writing half of a session.
#[derive(Debug)]
pub struct WsSender {
    sink: SplitSink<WsStream, Message>,
    timeout: Duration,
}

/// The reading half of a session, with its stash of frames set aside while waiting.
#[derive(Debug)]
pub struct WsReceiver {
    stream: SplitStream<WsStream>,
    stash: VecDeque<ServerFrame>,
    closed: Option<(u16, String)>,
}

impl WsClient {
    /// Wraps an upgraded socket.
    pub fn from_stream(stream: WsStream) -> Self {
        let (sink, stream) = stream.split();
        WsClient {
            tx: WsSender {
                sink,
                timeout: DEFAULT_SEND_TIMEOUT,
            },
            rx: WsReceiver {
                stream,
                stash: VecDeque::new(),
                closed: None,
            },
            next_ref: 0,
        }
    }

    /// Splits the session so that one task can send while another reads.
    pub fn split(self) -> (WsSender, WsReceiver) {
        (self.tx, self.rx)
    }

    /// The writing half.
    pub fn sender(&mut self) -> &mut WsSender {
        &mut self.tx
    }

    /// The reading half.
    pub fn receiver(&mut self) -> &mut WsReceiver {
        &mut self.rx
    }

    /// Sends one JSON frame as a text message.
    pub async fn send_frame(&mut self, frame: Value) -> Result<()> {
        self.tx.send_frame(frame).await
    }

    /// Sends any text, valid JSON or not.
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<()> {
        self.tx.send_text(text).await
    }

    /// Sends a binary message (which the server must refuse with `bad_request`).
    pub async fn send_binary(&mut self, data: Vec<u8>) -> Result<()> {
        self.tx.send_binary(data).await
    }

    /// Starts a clean close with `code` and `reason`.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<()> {
        self.tx.close(code, reason).await
    }

    /// The next server frame: stashed ones first, then from the socket.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<ServerFrame> {
        self.rx.next_frame(timeout).await
    }

    /// Reads until the server closes and returns its close code and reason (1006 if the
    /// connection ended without a close frame); `None` if still open after `timeout`.
    pub async fn next_close(&mut self, timeout: Duration) -> Option<(u16, String)> {
        self.rx.next_close(timeout).await
    }

    /// The first frame (stashed or new) for which `pred` holds; the others are stashed.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl FnMut(&ServerFrame) -> bool,
    ) -> Result<ServerFrame> {
        self.rx.wait_for(timeout, pred).await
    }

    /// The close code and reason, once the connection is known to be closed.
    pub fn closed(&self) -> Option<(u16, &str)> {
        self.rx.closed()
    }

    /// Sends `frame` with a fresh `ref` and waits for the reply carrying it; an `error` reply
    /// is an `Api` error. Other frames read meanwhile are stashed for `next_frame`.
    pub async fn request(&mut self, mut frame: Value, timeout: Duration) -> Result<ServerFrame> {
        let deadline = Instant::now() + timeout;
        self.next_ref += 1;
        let reference = Value::String(format!("q{}", self.next_ref));
        match frame.as_object_mut() {
            Some(map) => map.insert("ref".into(), reference.clone()),
            None => {
                return Err(ClientError::Unexpected(
                    "a request must be an object".into(),
                ));
            }
        };
        tokio::time::timeout_at(deadline, self.tx.send_frame(frame))
            .await
            .map_err(|_| ClientError::Timeout("sending a request"))??;
        let left = deadline.saturating_duration_since(Instant::now());
        let reply = self
            .rx
            .wait_for(left, |f| frame_ref(f) == Some(&reference))
            .await?;
        match reply {
            ServerFrame::Error {
                code,
                message,
                retry_after_ms,
                ..
            } => Err(ClientError::Api {
                status: code.http_status(),
                code,
                message,
                retry_after_ms,
            }),
            other => Ok(other),
        }
    }
}

impl WsSender {
    /// Sets the time allowed for writing one frame.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends one JSON frame as a text message.
    pub async fn send_frame(&mut self, frame: Value) -> Result<()> {
        self.send_message(Message::text(frame.to_string())).await
    }

    /// Sends any text, valid JSON or not.
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<()> {
        self.send_message(Message::text(text.into())).await
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, data: Vec<u8>) -> Result<()> {
        self.send_message(Message::binary(data)).await
    }

    /// Starts a clean close with `code` and `reason`.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<()> {
        let frame = CloseFrame {
            code: WsCloseCode::from(code),
            reason: reason.into(),
        };
        self.send_message(Message::Close(Some(frame))).await
    }

    /// Sends any WebSocket message (e.g. a ping), with the send timeout.
    pub async fn send_message(&mut self, message: Message) -> Result<()> {
        tokio::time::timeout(self.timeout, self.sink.send(message))
            .await
            .map_err(|_| ClientError::Timeout("writing a frame"))?
            .map_err(ClientError::transport)
    }
}

impl WsReceiver {
    /// The next server frame: stashed ones first, then from the socket. Cancel-safe. With a
    /// zero timeout it returns what has already arrived.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<ServerFrame> {
        if let Some(frame) = self.stash.pop_front() {
            return Ok(frame);
        }
        tokio::time::timeout(timeout, self.read_one())
            .await
            .map_err(|_| ClientError::Timeout("a frame"))?
    }

    /// The next server frame, waiting as long as it takes (no timer is set, which matters at
    /// hundreds of thousands of frames a second). Cancel-safe.
    pub async fn recv(&mut self) -> Result<ServerFrame> {
        match self.stash.pop_front() {
            Some(frame) => Ok(frame),
            None => self.read_one().await,
        }
    }

    /// Reads until the server closes and returns its close code and reason (1006 if the
    /// connection ended without a close frame); `None` if still open after `timeout`. Frames
    /// read meanwhile are stashed.
    pub async fn next_close(&mut self, timeout: Duration) -> Option<(u16, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((code, reason)) = &self.closed {
                return Some((*code, reason.clone()));
            }
            match tokio::time::timeout_at(deadline, self.read_one()).await {
                Err(_) => return None,
                Ok(Ok(frame)) => self.stash.push_back(frame),
                // Undecodable frames are skipped; transport errors mark the connection closed.
                Ok(Err(_)) => {}
            }
        }
    }

    /// The first frame (stashed or new) for which `pred` holds; the others are stashed.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&ServerFrame) -> bool,
    ) -> Result<ServerFrame> {
        if let Some(i) = self.stash.iter().position(&mut pred)
            && let Some(frame) = self.stash.remove(i)
        {
            return Ok(frame);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.read_one())
                .await
                .map_err(|_| ClientError::Timeout("the awaited frame"))??;
            if pred(&frame) {
                return Ok(frame);
            }
            self.stash.push_back(frame);
        }
    }

    /// The close code and reason, once the connection is known to be closed.
    pub fn closed(&self) -> Option<(u16, &str)> {
        self.closed.as_ref().map(|(c, r)| (*c, r.as_str()))
    }

    /// How many frames are stashed.
    pub fn stashed(&self) -> usize {
        self.stash.len()
    }

    /// Reads one frame from the socket (answering pings on the way). Cancel-safe: the only
    /// await is the stream's `next`.
    async fn read_one(&mut self) -> Result<ServerFrame> {
        loop {
            if let Some((code, reason)) = &self.closed {
                return Err(ClientError::Closed {
                    code: *code,
                    reason: reason.clone(),
                });
            }
            match self.stream.next().await {
                Some(Ok(Message::Text(text))) => {
                    return crate::frames::decode(text.as_str())
                        .map_err(|e| ClientError::decode(e, text.as_bytes()));
                }
                Some(Ok(Message::Binary(data))) => {
                    return Err(ClientError::decode("unexpected binary frame", &data));
                }
                Some(Ok(Message::Close(frame))) => {
                    self.closed = Some(match frame {
                        Some(f) => (u16::from(f.code), f.reason.to_string()),
                        None => (NO_STATUS_CLOSE, String::new()),
                    });
                    // tungstenite queued the close reply; one more poll writes it out.
                    let _ = self.stream.next().now_or_never();
                }
                Some(Ok(_)) => {} // ping, pong: tungstenite answers pings itself
                Some(Err(e)) => {
                    self.closed
                        .get_or_insert_with(|| (ABNORMAL_CLOSE, e.to_string()));
                    if !matches!(e, WsError::ConnectionClosed | WsError::AlreadyClosed) {
                        return Err(ClientError::transport(e));
                    }
                }
                None => {
                    self.closed
                        .get_or_insert_with(|| (ABNORMAL_CLOSE, "connection ended".into()));
                }
            }
        }
    }
}
