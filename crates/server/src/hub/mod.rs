//! The node's local fan-out: which sessions of this node are in which room, the per-room
//! reorder buffer, and the bus subscriptions that follow them (subscribe the node, not the client).
//!
//! Events arrive from the bus already serialized; the hub hands the same bytes to every local
//! session of the room with `try_send` and never waits on a session: a full outbox closes it
//! (4009). Rooms are delivered strictly in seq order: an early event is held back until the gap
//! closes, or for `reorder_wait` after which the missing events are read (cache, else store).

mod outbox;
mod repair;
mod session_tx;
mod subscriptions;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use confab_bus::{Bus, Delivery};
use confab_domain::limits::typing_forwarded;
use confab_domain::reorder::Reorder;
use confab_protocol::{Presence, ServerFrame};
use confab_store::Store;
use tokio::sync::mpsc;

use crate::bus_msg::{self, BusMsg, Control};
use crate::events::RoomEvents;
pub use outbox::Outbox;
pub use session_tx::{EventOut, Out, Ready, Session, SessionId, SessionTx, Subscribe, SyncAsk};
use subscriptions::Subscriptions;

/// Most early events a room holds back while waiting for a gap to close.
const REORDER_CAP: usize = 4096;

/// The local fan-out registry. Cheap to clone.
#[derive(Clone)]
pub struct Hub(Arc<Shared>);

struct Shared {
    inner: Mutex<Inner>,
    store: Arc<dyn Store>,
    events: Arc<RoomEvents>,
    subs: Subscriptions,
    reorder_wait: Duration,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<Arc<str>, RoomEntry>,
    users: HashMap<String, HashMap<SessionId, SessionTx>>,
    session_rooms: HashMap<SessionId, HashSet<Arc<str>>>,
    typing: HashMap<(String, String), u64>,
}

struct RoomEntry {
    sessions: HashMap<SessionId, SessionTx>,
    reorder: Reorder<Utf8Bytes>,
    live: bool,
    gap_pending: bool,
    /// The store's newest seq at the last repair tick, if the hub had not delivered it.
    suspect: Option<u64>,
}

impl Hub {
    /// A hub over this bus and store; gaps are read through `events`.
    pub fn new(
        bus: Arc<dyn Bus>,
        store: Arc<dyn Store>,
        events: Arc<RoomEvents>,
        reorder_wait_ms: u64,
    ) -> Self {
        let subs = Subscriptions::start(bus);
        // Presence changes concern every node that might have a session sharing a room.
        subs.subscribe(bus_msg::PRESENCE_TOPIC.to_owned());
        Hub(Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            store,
            events,
            subs,
            reorder_wait: Duration::from_millis(reorder_wait_ms),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Consumes the bus inbox until it closes.
    pub fn run(&self, mut inbox: mpsc::Receiver<Delivery>) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            while let Some(d) = inbox.recv().await {
                match BusMsg::decode(&d.payload) {
                    Some(msg) => hub.on_message(msg),
                    None => tracing::warn!(topic = %d.topic, "malformed bus message dropped"),
                }
            }
        })
    }

    /// Registers a session for its user's messages; returns once the bus delivers them.
    pub async fn add_session(&self, s: &SessionTx) {
        let first = {
            let mut inner = self.lock();
            inner.session_rooms.entry(s.id).or_default();
            let sessions = inner.users.entry(s.user.id.clone()).or_default();
            sessions.insert(s.id, s.clone());
            sessions.len() == 1
        };
        if first {
            self.0.subs.subscribe(bus_msg::user_topic(&s.user.id));
        }
        self.0.subs.barrier().await;
    }

    /// Delivers these rooms to the session from now on; each gets a catch-up (cache, else store)
    /// once the room's bus subscription is live.
    pub fn attach_rooms(&self, s: &SessionTx, rooms: &[Arc<str>]) {
        let mut inner = self.lock();
        for room in rooms {
            self.attach(&mut inner, s, room.clone());
        }
    }

    fn attach(&self, inner: &mut Inner, s: &SessionTx, room: Arc<str>) {
        inner
            .session_rooms
            .entry(s.id)
            .or_default()
            .insert(room.clone());
        let entry = inner.rooms.entry(room.clone()).or_insert_with(|| {
            self.go_live(room.clone());
            RoomEntry {
                sessions: HashMap::new(),
                reorder: Reorder::new(REORDER_CAP),
                live: false,
                gap_pending: false,
                suspect: None,
            }
        });
        entry.sessions.insert(s.id, s.clone());
        if entry.live {
            let known = entry.reorder.next().map_or(0, |n| n.saturating_sub(1));
            s.push(Out::CatchUp { room, known });
        }
    }

    /// Subscribes the room on the bus; once live, starts its reorder buffer after the store's
    /// newest seq and sends every waiting session its catch-up.
    fn go_live(&self, room: Arc<str>) {
        self.0.subs.subscribe(bus_msg::room_topic(&room));
        let hub = self.clone();
        tokio::spawn(async move {
            hub.0.subs.barrier().await;
            let last = match hub.0.store.room(&room).await {
                Ok(info) => info.map(|i| i.room.last_seq),
                Err(e) => {
                    tracing::warn!(error = %e, "room's newest seq unknown; sessions catch up by themselves");
                    None
                }
            };
            let mut inner = hub.lock();
            let Some(entry) = inner.rooms.get_mut(&room) else {
                return;
            };
            if let (None, Some(last)) = (entry.reorder.next(), last) {
                entry.reorder = Reorder::starting_at(last + 1, REORDER_CAP);
            }
            entry.live = true;
            let known = entry.reorder.next().map_or(0, |n| n.saturating_sub(1));
            for s in entry.sessions.values() {
                s.push(Out::CatchUp {
                    room: room.clone(),
                    known,
                });
            }
        });
    }

    /// Stops delivering a room the user is no longer in; the session says `removed`.
    pub fn detach_room(&self, s: &SessionTx, room: &Arc<str>) {
        let mut inner = self.lock();
        if inner
            .session_rooms
            .get_mut(&s.id)
            .is_some_and(|r| r.remove(room))
        {
            s.push(Out::Unsubscribe {
                room: room.clone(),
                through: 0,
            });
            self.detach(&mut inner, s.id, room);
        }
    }

    /// Forgets a session entirely (it has ended).
    pub fn remove_session(&self, s: &SessionTx) {
        let mut inner = self.lock();
        for room in inner.session_rooms.remove(&s.id).unwrap_or_default() {
            self.detach(&mut inner, s.id, &room);
        }
        if let Some(sessions) = inner.users.get_mut(&s.user.id) {
            sessions.remove(&s.id);
            if sessions.is_empty() {
                inner.users.remove(&s.user.id);
                self.0.subs.unsubscribe(bus_msg::user_topic(&s.user.id));
            }
        }
    }

    fn detach(&self, inner: &mut Inner, id: SessionId, room: &Arc<str>) {
        if let Some(entry) = inner.rooms.get_mut(room) {
            entry.sessions.remove(&id);
            if entry.sessions.is_empty() {
                inner.rooms.remove(room);
                self.0.subs.unsubscribe(bus_msg::room_topic(room));
            }
        }
    }

    /// Whether this session is being delivered the room (so its user is a member).
    pub fn delivers(&self, session: SessionId, room: &str) -> bool {
        self.lock()
            .session_rooms
            .get(&session)
            .is_some_and(|r| r.contains(room))
    }

    /// Whether a typing notice from `user` in `room` is forwarded now (one a second).
    pub fn typing_allowed(&self, user: &str, room: &str, now_ms: u64) -> bool {
        let mut inner = self.lock();
        if inner.typing.len() > 10_000 {
            inner.typing.retain(|_, t| now_ms < *t + 1000);
        }
        let key = (user.to_owned(), room.to_owned());
        let ok = typing_forwarded(inner.typing.get(&key).copied(), now_ms);
        if ok {
            inner.typing.insert(key, now_ms);
        }
        ok
    }

    /// Every live session of this node.
    pub fn sessions(&self) -> Vec<SessionTx> {
        self.lock()
            .users
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    fn on_message(&self, msg: BusMsg) {
        match msg {
            BusMsg::Event { room, seq, frame } => self.on_event(&room, seq, Utf8Bytes::from(frame)),
            BusMsg::Control(c) => self.on_control(c),
        }
    }

    fn on_event(&self, room: &str, seq: u64, frame: Utf8Bytes) {
        let mut inner = self.lock();
        let Some(room) = inner.rooms.get_key_value(room).map(|(k, _)| k.clone()) else {
            return;
        };
        let Some(entry) = inner.rooms.get_mut(&room) else {
            return;
        };
        let ready = entry.reorder.offer(seq, frame);
        deliver(entry, &room, ready);
        if entry.reorder.gap().is_some() && !entry.gap_pending {
            entry.gap_pending = true;
            self.fill_gap_later(room);
        }
    }

    fn on_control(&self, c: Control) {
        let mut inner = self.lock();
        match c {
            Control::Subscribed { user, room, seq } => {
                let frame = Utf8Bytes::from(ServerFrame::Room { room: room.clone() }.to_json());
                let room_id: Arc<str> = Arc::from(room.id.as_str());
                for s in user_sessions(&inner, &user) {
                    let already = inner
                        .session_rooms
                        .get(&s.id)
                        .is_some_and(|r| r.contains(&room_id));
                    if !already
                        && s.push(Out::Subscribe(Box::new(Subscribe {
                            room: room_id.clone(),
                            cursor: seq.saturating_sub(1),
                            announce: Some(frame.clone()),
                        })))
                    {
                        self.attach(&mut inner, &s, room_id.clone());
                    }
                }
            }
            Control::Removed { user, room, seq } => {
                let room_id: Arc<str> = Arc::from(room.as_str());
                for s in user_sessions(&inner, &user) {
                    let member = inner
                        .session_rooms
                        .get_mut(&s.id)
                        .is_some_and(|r| r.remove(&room_id));
                    if member {
                        s.push(Out::Unsubscribe {
                            room: room_id.clone(),
                            through: seq,
                        });
                        self.detach(&mut inner, s.id, &room_id);
                    }
                }
            }
            Control::Read {
                user,
                room,
                seq,
                session,
            } => {
                let frame = Utf8Bytes::from(ServerFrame::Read { room, seq }.to_json());
                for s in user_sessions(&inner, &user)
                    .iter()
                    .filter(|s| *s.sid != *session)
                {
                    s.push(Out::Frame(frame.clone()));
                }
            }
            Control::Revoked { user, token_hash } => {
                for s in user_sessions(&inner, &user)
                    .iter()
                    .filter(|s| *s.token_hash == *token_hash)
                {
                    s.close(confab_protocol::CloseCode::UNAUTHORIZED);
                }
            }
            Control::Typing { room, user } => {
                let Some(entry) = inner.rooms.get(room.as_str()) else {
                    return;
                };
                let frame = Utf8Bytes::from(
                    ServerFrame::Typing {
                        room: room.clone(),
                        user: user.clone(),
                    }
                    .to_json(),
                );
                for s in entry.sessions.values().filter(|s| s.user.id != user.id) {
                    s.push(Out::Frame(frame.clone()));
                }
            }
            Control::Presence {
                user,
                online,
                rooms,
            } => {
                let status = if online { "online" } else { "offline" };
                let p = Presence {
                    reference: None,
                    room: None,
                    online: None,
                    user: Some(user.clone()),
                    status: Some(status.into()),
                };
                let frame = Utf8Bytes::from(ServerFrame::Presence(p).to_json());
                let mut told = HashSet::new();
                for room in &rooms {
                    let Some(entry) = inner.rooms.get(room.as_str()) else {
                        continue;
                    };
                    for s in entry.sessions.values().filter(|s| s.user.id != user.id) {
                        if told.insert(s.id) {
                            s.push(Out::Frame(frame.clone()));
                        }
                    }
                }
            }
        }
    }
}

fn user_sessions(inner: &Inner, user: &str) -> Vec<SessionTx> {
    inner
        .users
        .get(user)
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default()
}

/// Hands events, in order, to every session of the room; a session that cannot take one is
/// closed by `push` and dropped from the room here.
fn deliver(entry: &mut RoomEntry, room: &Arc<str>, ready: Vec<(u64, Utf8Bytes)>) {
    for (seq, frame) in ready {
        let event = Arc::new(EventOut {
            room: room.clone(),
            seq,
            frame,
        });
        entry
            .sessions
            .retain(|_, s| s.push(Out::Event(event.clone())));
    }
}

#[cfg(test)]
mod tests;
