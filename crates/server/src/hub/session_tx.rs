//! The sending side of a session as the hub sees it: a bounded outbox and a way to close it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use confab_protocol::{CloseCode, UserRef};
use serde_json::Value;

use super::outbox::{Outbox, Pushed};

/// A session's number on this node.
pub type SessionId = u64;

/// What a session is asked to send or do, in order. Kept small (the outbox holds many):
/// rare, large requests are boxed, and an event is one allocation shared by all its sessions.
#[derive(Debug)]
pub enum Out {
    /// Send `ready` and start its rooms; everything queued before it waits.
    Ready(Box<Ready>),
    /// Send a frame as it is.
    Frame(Utf8Bytes),
    /// A room's event; sent only if it is the next seq the session needs.
    Event(Arc<EventOut>),
    /// Start delivering a room.
    Subscribe(Box<Subscribe>),
    /// Read what the room has beyond the session's cursor and send it; the room is known to
    /// have reached seq `known`.
    CatchUp { room: Arc<str>, known: u64 },
    /// Deliver the room through `through`, then stop and send `removed`.
    Unsubscribe { room: Arc<str>, through: u64 },
    /// Answer a `sync` request (or the `sync` of `auth`).
    Sync(Box<SyncAsk>),
    /// Close the connection with this code after sending what is queued.
    Close(u16),
}

/// The `ready` frame and the seq each of its rooms starts after.
#[derive(Debug)]
pub struct Ready {
    pub frame: Utf8Bytes,
    pub cursors: Vec<(Arc<str>, u64)>,
}

/// A committed event's frame, serialized once for every session it goes to.
#[derive(Debug)]
pub struct EventOut {
    pub room: Arc<str>,
    pub seq: u64,
    pub frame: Utf8Bytes,
}

/// Start delivering `room` after `cursor`, first sending `announce` (a `room` frame).
#[derive(Debug)]
pub struct Subscribe {
    pub room: Arc<str>,
    pub cursor: u64,
    pub announce: Option<Utf8Bytes>,
}

/// A `sync` to answer: the client's last seen seq per room.
#[derive(Debug)]
pub struct SyncAsk {
    pub reference: Option<Value>,
    pub rooms: BTreeMap<String, u64>,
}

/// The hub's handle on one session: one allocation shared by the user's entry and each of
/// the session's rooms, so a session in many rooms costs a pointer per room.
pub type SessionTx = Arc<Session>;

/// What the hub knows of one session.
#[derive(Debug)]
pub struct Session {
    pub id: SessionId,
    pub sid: Arc<str>,
    pub user: UserRef,
    pub token_hash: Arc<str>,
    pub outbox: Arc<Outbox>,
}

impl Session {
    /// Queues `out` without waiting; a full outbox closes the session (4009). False if it
    /// was not queued.
    pub fn push(&self, out: Out) -> bool {
        self.outbox.push(out, CloseCode::SLOW_CONSUMER) == Pushed::Queued
    }

    /// Closes the session now with `code`, dropping what is queued (the first code wins).
    pub fn close(&self, code: u16) {
        self.outbox.close(code);
    }
}
