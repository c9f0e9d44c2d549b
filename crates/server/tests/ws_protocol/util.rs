//! Small conveniences shared by the WebSocket protocol tests. Every wait has a timeout.

use std::time::Duration;

use confab_client::protocol::{ErrorCode, Room, ServerFrame, UserRef, Visibility};
use confab_client::{Ack, ClientError, HttpClient, WsClient, build};
use serde_json::Value;
use tokio::time::Instant;

use crate::helpers::*;

/// How long a session must stay silent for "nothing arrives" checks.
pub const QUIET: Duration = Duration::from_millis(300);

/// A node whose rate limit never gets in the way of a test.
pub async fn spawn_roomy() -> TestApp {
    spawn_with(|c| {
        c.rate_per_s = 10_000;
        c.burst = 10_000;
    })
    .await
}

/// Two users, `ada` owning a public room `general` that `bob` has joined.
pub struct Pair {
    pub ada: HttpClient,
    pub ada_user: UserRef,
    pub bob: HttpClient,
    pub bob_user: UserRef,
    pub room: Room,
}

/// Registers `ada` and `bob`; `ada` creates `general` (seq 1), `bob` joins (seq 2).
pub async fn pair(app: &TestApp) -> Pair {
    let (ada, ada_user) = app.user("ada").await;
    let (bob, bob_user) = app.user("bob").await;
    let room = room(&ada, "general", Visibility::Public).await;
    bob.join(&room.id).await.expect("bob joins");
    Pair {
        ada,
        ada_user,
        bob,
        bob_user,
        room,
    }
}

/// Sends `frame` with a fresh ref and expects an `error` reply: its code and message.
pub async fn refused(ws: &mut WsClient, frame: Value) -> (ErrorCode, String) {
    match ws.request(frame.clone(), WAIT).await {
        Err(ClientError::Api { code, message, .. }) => (code, message),
        other => panic!("expected an error reply to {frame}, got {other:?}"),
    }
}

/// Sends `frame` with a fresh ref and expects an `ack`.
pub async fn acked(ws: &mut WsClient, frame: Value) -> Ack {
    let reply = ws
        .request(frame.clone(), WAIT)
        .await
        .unwrap_or_else(|e| panic!("{frame} refused: {e}"));
    Ack::from_frame(reply).expect("an ack")
}

/// The next `error` frame, skipping others: `(ref, code, message)`.
pub async fn next_error(ws: &mut WsClient) -> (Option<Value>, ErrorCode, String) {
    match wait_for(ws, "an error frame", |f| {
        matches!(f, ServerFrame::Error { .. })
    })
    .await
    {
        ServerFrame::Error {
            reference,
            code,
            message,
            ..
        } => (reference, code, message),
        _ => unreachable!(),
    }
}

/// The connection is open and answering: a `ping` gets its `pong`.
pub async fn assert_open(ws: &mut WsClient) {
    let reply = ws.request(build::ping(), WAIT).await;
    assert!(
        matches!(reply, Ok(ServerFrame::Pong { .. })),
        "the connection should still be open and answering, got {reply:?}"
    );
}

/// Reads until the server closes: the frames that came first and the close code.
pub async fn until_close(ws: &mut WsClient) -> (Vec<ServerFrame>, u16) {
    let deadline = Instant::now() + WAIT;
    let mut frames = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ws.next_frame(left).await {
            Ok(f) => frames.push(f),
            Err(ClientError::Closed { code, .. }) => return (frames, code),
            Err(ClientError::Timeout(_)) => {
                panic!("the server did not close within {WAIT:?}; frames: {frames:?}")
            }
            // Undecodable frames are skipped; a transport error marks the socket closed.
            Err(_) => {}
        }
    }
}

/// The `msg` frames of `room` among `frames`.
pub fn msgs_in<'a>(
    frames: &'a [ServerFrame],
    room: &str,
) -> Vec<&'a confab_client::protocol::Event> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Msg(e) if e.room == room => Some(e),
            _ => None,
        })
        .collect()
}

/// No `msg` (of any room) arrives within [`QUIET`].
pub async fn no_msg(ws: &mut WsClient) {
    let got = quiet(ws, QUIET).await;
    assert!(
        got.iter().all(|f| !matches!(f, ServerFrame::Msg(_))),
        "expected no msg, got {got:?}"
    );
}

/// The caller's room `id` as `GET /v1/rooms` lists it.
pub async fn my_room(http: &HttpClient, id: &str) -> Room {
    http.rooms()
        .await
        .expect("rooms")
        .into_iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("room {id} not among the caller's rooms"))
}

/// The ids of `room`'s members with a live session, by a `presence` request.
pub async fn online(ws: &mut WsClient, room: &str) -> Vec<String> {
    match ws.request(build::presence(room), WAIT).await {
        Ok(ServerFrame::Presence(p)) => p.online.expect("the reply lists who is online"),
        other => panic!("expected the presence reply, got {other:?}"),
    }
}

/// Asks `presence` every 20 ms until `user` is no longer online in `room` (polling: the
/// answer changes without an event the asker is sent). Panics after `WAIT`.
pub async fn until_offline(ws: &mut WsClient, room: &str, user: &str) {
    let deadline = Instant::now() + WAIT;
    while online(ws, room).await.iter().any(|u| u == user) {
        assert!(
            Instant::now() < deadline,
            "{user} still online after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A WebSocket session over a bare TCP socket that, once upgraded, never writes again: unlike
/// `WsClient` it does not even answer pings while reading.
pub struct SilentSession {
    tcp: tokio::net::TcpStream,
    /// Bytes read after the upgrade response.
    pub bytes: Vec<u8>,
}

impl SilentSession {
    /// Upgrades with a bearer token and reads the 101 response.
    pub async fn open(base: &str, token: &str) -> SilentSession {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = base.trim_start_matches("http://");
        let mut tcp = tokio::net::TcpStream::connect(host).await.expect("connect");
        let request = format!(
            "GET /v1/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        );
        tcp.write_all(request.as_bytes())
            .await
            .expect("write upgrade");
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(i) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
                .await
                .expect("upgrade answered in time")
                .expect("read upgrade");
            assert!(n > 0, "connection closed during the upgrade");
            bytes.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        SilentSession {
            tcp,
            bytes: bytes[end..].to_vec(),
        }
    }

    /// Reads everything until the server ends the connection; panics after `WAIT`.
    pub async fn read_to_end(&mut self) {
        use tokio::io::AsyncReadExt;
        tokio::time::timeout(WAIT, self.tcp.read_to_end(&mut self.bytes))
            .await
            .expect("the server ends the connection in time")
            .expect("read");
    }

    /// The frames read so far: `(opcode, payload)` (server frames are not masked).
    pub fn frames(&self) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        let b = &self.bytes;
        let mut i = 0;
        while i + 2 <= b.len() {
            let opcode = b[i] & 0x0f;
            let (len, header) = match b[i + 1] & 0x7f {
                126 if i + 4 <= b.len() => (u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize, 4),
                127 if i + 10 <= b.len() => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&b[i + 2..i + 10]);
                    (u64::from_be_bytes(n) as usize, 10)
                }
                n @ 0..=125 => (n as usize, 2),
                _ => break,
            };
            if i + header + len > b.len() {
                break;
            }
            frames.push((opcode, b[i + header..i + header + len].to_vec()));
            i += header + len;
        }
        frames
    }

    /// The code of the close frame read, if any.
    pub fn close_code(&self) -> Option<u16> {
        self.frames()
            .into_iter()
            .find(|(op, p)| *op == 0x8 && p.len() >= 2)
            .map(|(_, p)| u16::from_be_bytes([p[0], p[1]]))
    }
}
