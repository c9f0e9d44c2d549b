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
    match wait_for(ws, "an error frame", |f| matches!(f, ServerFrame::Error { .. })).await {
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
pub fn msgs_in<'a>(frames: &'a [ServerFrame], room: &str) -> Vec<&'a confab_client::protocol::Event> {
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
