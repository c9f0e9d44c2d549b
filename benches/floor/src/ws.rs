//! The WebSocket side of the floor: `auth` / `ready` (with `sync` replayed from the rings),
//! `send` → `ack` + one serialized `msg` shared by every session of the room, and `ping`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use confab_protocol::frames::SyncedRoom;
use confab_protocol::objects::FloodClose;
use confab_protocol::{
    ClientFrame, ClientRequest, ErrorCode, EventKind, Limits, ServerFrame, UserRef,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::{Floor, OUTBOX, RoomState, Tx, bearer, error, lock, new_event, publish, room};

pub(crate) async fn ws(
    State(f): State<Arc<Floor>>,
    headers: HeaderMap,
    up: WebSocketUpgrade,
) -> Response {
    let user = bearer(&f, &headers);
    if headers.contains_key("authorization") && user.is_none() {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    up.read_buffer_size(4096)
        .write_buffer_size(8192)
        .max_write_buffer_size(1 << 20)
        .max_message_size(65_536)
        .max_frame_size(65_536)
        .on_upgrade(move |socket| session(f, socket, user))
}

fn frame(f: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(f.to_json())
}

/// One WebSocket session: a reader (this task) and a writer task fed by a bounded outbox.
async fn session(f: Arc<Floor>, socket: WebSocket, mut user: Option<UserRef>) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(OUTBOX);
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(Message::Text(first)).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(Message::Text(more)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let id = f.ids.fetch_add(1, Relaxed);
    let mut subscribed: Vec<Arc<Mutex<RoomState>>> = Vec::new();
    if let Some(u) = user.clone() {
        subscribed = ready(&f, &u, id, &tx, None);
    }
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else {
            continue;
        };
        let req = match ClientRequest::parse(text.as_str()) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx
                    .send(frame(&ServerFrame::error(
                        e.reference,
                        ErrorCode::BadRequest,
                        e.message,
                    )))
                    .await;
                continue;
            }
        };
        let reference = req.reference;
        match (req.frame, &user) {
            (ClientFrame::Auth(a), None) => {
                let found = f
                    .tokens
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&a.token)
                    .cloned();
                let Some(u) = found else {
                    let _ = tx
                        .send(frame(&ServerFrame::error(
                            None,
                            ErrorCode::Unauthorized,
                            "bad token",
                        )))
                        .await;
                    break;
                };
                subscribed = ready(&f, &u, id, &tx, a.sync);
                user = Some(u);
            }
            (_, None) => break,
            (ClientFrame::Send(s), Some(u)) => {
                let Some(state) = subscribed.iter().find(|r| lock(r).room.id == s.room) else {
                    let err = ServerFrame::error(reference, ErrorCode::NotFound, "no such room");
                    let _ = tx.send(frame(&err)).await;
                    continue;
                };
                let mut r = lock(state);
                let event = new_event(
                    &f,
                    &mut r,
                    EventKind::Text,
                    u,
                    Some(s.body),
                    Some(s.client_id),
                );
                let ack = ServerFrame::Ack {
                    reference,
                    room: event.room.clone(),
                    seq: event.seq,
                    id: event.id.clone(),
                    ts: event.ts,
                    client_id: event.client_id.clone(),
                };
                publish(&mut r, event);
                drop(r);
                let _ = tx.try_send(frame(&ack));
            }
            (ClientFrame::Ping(_), Some(_)) => {
                let _ = tx.send(frame(&ServerFrame::Pong { reference })).await;
            }
            (_, Some(_)) => {
                let err = ServerFrame::error(
                    reference,
                    ErrorCode::BadRequest,
                    "not supported by the floor",
                );
                let _ = tx.send(frame(&err)).await;
            }
        }
    }
    for state in subscribed {
        lock(&state).sessions.remove(&id);
    }
    drop(tx);
    let _ = writer.await;
}

/// Sends `ready`, replays what `sync` asks for from the rings, and subscribes the session,
/// all under the rooms' locks (taken in id order): no live event can slip in before `ready`
/// or between the replay and the subscription.
fn ready(
    f: &Floor,
    user: &UserRef,
    id: u64,
    tx: &Tx,
    sync: Option<std::collections::BTreeMap<String, u64>>,
) -> Vec<Arc<Mutex<RoomState>>> {
    let mut ids = lock(&f.memberships)
        .get(&user.id)
        .cloned()
        .unwrap_or_default();
    ids.sort();
    ids.dedup();
    let states: Vec<_> = ids.iter().filter_map(|i| room(f, i)).collect();
    let mut guards: Vec<_> = states.iter().map(|s| lock(s)).collect();
    let mut rooms = Vec::new();
    let mut replay = Vec::new();
    let mut synced = std::collections::BTreeMap::new();
    for r in &guards {
        let mut room = r.room.clone();
        room.read_seq = Some(room.last_seq);
        if let Some(last) = sync.as_ref().and_then(|s| s.get(&room.id)) {
            replay.extend(
                r.ring
                    .iter()
                    .filter(|(seq, _)| seq > last)
                    .map(|(_, b)| b.clone()),
            );
            let complete = r.ring.front().is_none_or(|(first, _)| *first <= last + 1);
            synced.insert(
                room.id.clone(),
                SyncedRoom::Done {
                    last_seq: room.last_seq,
                    complete,
                },
            );
        }
        rooms.push(room);
    }
    let ready = ServerFrame::Ready {
        session_id: format!("s{id}"),
        user: user.clone(),
        rooms,
        heartbeat_ms: 25_000,
        limits: Limits {
            max_body: 4000,
            max_frame: 65_536,
            rate_per_s: 1_000_000,
            burst: 1_000_000,
            flood_close: FloodClose {
                count: 50,
                window_ms: 10_000,
            },
        },
    };
    let _ = tx.try_send(frame(&ready));
    for b in replay {
        let _ = tx.try_send(b);
    }
    if sync.is_some() {
        let _ = tx.try_send(frame(&ServerFrame::Synced {
            reference: None,
            rooms: synced,
        }));
    }
    for r in &mut guards {
        r.sessions.insert(id, tx.clone());
    }
    drop(guards);
    states
}
