//! The floor: the least a server must do to pass confab's bench — the ceiling confab's own
//! numbers are compared with. In memory, no persistence, no password hashing, no rate limits,
//! no bus; it speaks the protocol subset the bench uses (users, sessions, rooms, join, the
//! WebSocket with `auth`/`ready`, `send` → `ack` + `msg`, `sync`, `ping`) with confab's own
//! frame types, and like confab it serializes each event once and shares the bytes with every
//! receiving session, whose writer task writes what is queued with one flush.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use confab_protocol::frames::SyncedRoom;
use confab_protocol::objects::FloodClose;
use confab_protocol::{
    ClientFrame, ClientRequest, ErrorCode, Event, EventKind, Limits, Room, ServerFrame, UserRef,
    Visibility,
};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

/// Frames a session may have queued before it is dropped.
const OUTBOX: usize = 4096;
/// Recent events kept per room for `sync`.
const RING: usize = 2048;

type Tx = mpsc::Sender<Utf8Bytes>;

/// The whole server's state.
#[derive(Default)]
pub struct Floor {
    users: Mutex<HashMap<String, (UserRef, String)>>,
    tokens: RwLock<HashMap<String, UserRef>>,
    rooms: RwLock<HashMap<String, Arc<Mutex<RoomState>>>>,
    memberships: Mutex<HashMap<String, Vec<String>>>,
    ids: AtomicU64,
}

struct RoomState {
    room: Room,
    sessions: HashMap<u64, Tx>,
    ring: VecDeque<(u64, Utf8Bytes)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The router: the HTTP calls and `/v1/ws`.
pub fn router() -> Router {
    let floor = Arc::new(Floor::default());
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/v1/users", post(register))
        .route("/v1/sessions", post(login))
        .route("/v1/rooms", post(create_room))
        .route("/v1/rooms/{id}/join", post(join))
        .route("/v1/ws", get(ws))
        .with_state(floor)
}

fn error(status: StatusCode, code: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": code}})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct Credentials {
    name: String,
    password: String,
}

async fn register(State(f): State<Arc<Floor>>, body: axum::Json<Credentials>) -> Response {
    let name = body.name.to_lowercase();
    let mut users = lock(&f.users);
    if users.contains_key(&name) {
        return error(StatusCode::CONFLICT, "conflict");
    }
    let user = UserRef {
        id: format!("u{}", f.ids.fetch_add(1, Relaxed)),
        name: name.clone(),
    };
    users.insert(name, (user.clone(), body.password.clone()));
    (StatusCode::CREATED, axum::Json(user)).into_response()
}

async fn login(State(f): State<Arc<Floor>>, body: axum::Json<Credentials>) -> Response {
    let found = lock(&f.users).get(&body.name.to_lowercase()).cloned();
    match found {
        Some((user, password)) if password == body.password => {
            let token = format!(
                "t{}x{:x}",
                f.ids.fetch_add(1, Relaxed),
                rand::random::<u64>()
            );
            let mut tokens = f.tokens.write().unwrap_or_else(PoisonError::into_inner);
            tokens.insert(token.clone(), user.clone());
            axum::Json(json!({"token": token, "user": user, "expires_at": "2099-01-01T00:00:00Z"}))
                .into_response()
        }
        _ => error(StatusCode::UNAUTHORIZED, "unauthorized"),
    }
}

fn bearer(f: &Floor, headers: &HeaderMap) -> Option<UserRef> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?;
    f.tokens
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(token)
        .cloned()
}

#[derive(Deserialize)]
struct NewRoom {
    name: String,
    #[serde(default)]
    visibility: Option<Visibility>,
}

async fn create_room(
    State(f): State<Arc<Floor>>,
    headers: HeaderMap,
    body: axum::Json<NewRoom>,
) -> Response {
    let Some(user) = bearer(&f, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    };
    let room = Room {
        id: format!("r{}", f.ids.fetch_add(1, Relaxed)),
        name: body.name.clone(),
        visibility: body.visibility.unwrap_or(Visibility::Public),
        owner: user.id.clone(),
        created_ts: now_ms(),
        member_count: 0,
        last_seq: 0,
        read_seq: None,
    };
    let state = Arc::new(Mutex::new(RoomState {
        room: room.clone(),
        sessions: HashMap::new(),
        ring: VecDeque::new(),
    }));
    f.rooms
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(room.id.clone(), state.clone());
    let room = add_member(&f, &state, &user);
    (StatusCode::CREATED, axum::Json(room)).into_response()
}

async fn join(State(f): State<Arc<Floor>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let Some(user) = bearer(&f, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    };
    let Some(state) = room(&f, &id) else {
        return error(StatusCode::NOT_FOUND, "not_found");
    };
    let already = lock(&f.memberships)
        .get(&user.id)
        .is_some_and(|rooms| rooms.contains(&id));
    let room = if already {
        lock(&state).room.clone()
    } else {
        add_member(&f, &state, &user)
    };
    axum::Json(room).into_response()
}

fn room(f: &Floor, id: &str) -> Option<Arc<Mutex<RoomState>>> {
    f.rooms
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(id)
        .cloned()
}

/// Adds a member and writes (and fans out) its `join` event.
fn add_member(f: &Floor, state: &Mutex<RoomState>, user: &UserRef) -> Room {
    let mut r = lock(state);
    r.room.member_count += 1;
    lock(&f.memberships)
        .entry(user.id.clone())
        .or_default()
        .push(r.room.id.clone());
    let event = new_event(f, &mut r, EventKind::Join, user, None, None);
    publish(&mut r, event);
    let mut room = r.room.clone();
    room.read_seq = Some(room.last_seq);
    room
}

fn new_event(
    f: &Floor,
    r: &mut RoomState,
    kind: EventKind,
    from: &UserRef,
    body: Option<String>,
    client_id: Option<String>,
) -> Event {
    r.room.last_seq += 1;
    Event {
        room: r.room.id.clone(),
        seq: r.room.last_seq,
        id: format!("e{}", f.ids.fetch_add(1, Relaxed)),
        kind,
        from: from.clone(),
        by: None,
        body,
        target: None,
        deleted: false,
        ts: now_ms(),
        client_id,
    }
}

/// Serializes the event once and hands the same bytes to every session of the room.
fn publish(r: &mut RoomState, event: Event) {
    let seq = event.seq;
    let bytes = Utf8Bytes::from(ServerFrame::Msg(event).to_json());
    r.sessions
        .retain(|_, tx| tx.try_send(bytes.clone()).is_ok());
    if r.ring.len() == RING {
        r.ring.pop_front();
    }
    r.ring.push_back((seq, bytes));
}

async fn ws(State(f): State<Arc<Floor>>, headers: HeaderMap, up: WebSocketUpgrade) -> Response {
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
