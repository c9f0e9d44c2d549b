//! The floor: the least a server must do to pass confab's bench — the ceiling confab's own
//! numbers are compared with. In memory, no persistence, no password hashing, no rate limits,
//! no bus; it speaks the protocol subset the bench uses (users, sessions, rooms, join, the
//! WebSocket with `auth`/`ready`, `send` → `ack` + `msg`, `sync`, `ping`) with confab's own
//! frame types, and like confab it serializes each event once and shares the bytes with every
//! receiving session, whose writer task writes what is queued with one flush.

mod ws;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::ws::Utf8Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use confab_protocol::{Event, EventKind, Room, ServerFrame, UserRef, Visibility};
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
        .route("/v1/ws", get(ws::ws))
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
