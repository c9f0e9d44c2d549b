//! Text appends, the bulk of all writes, run without a savepoint of their own: every rule (and
//! the client id, through client_ids.rs) is checked by reading before anything is written, and
//! the one write, the event's `INSERT`, is atomic by itself, so a refused or failed text leaves
//! nothing behind. The rooms and memberships read are kept for the rest of the batch, and each
//! room's new `last_seq` is written once, when the batch's texts are flushed (before any other
//! command runs, and before the commit).

use std::collections::HashMap;

use confab_domain::rules::may_use;
use confab_protocol::{Event, EventKind, UserRef};
use rusqlite::{Connection, params};

use super::client_ids::{ClientIds, Lookup};
use super::ops::NO_ROOM;
use super::read;
use crate::{Appended, RoomInfo, StoreError, StoreResult};

/// A room as the batch's texts see it.
struct RoomState {
    info: RoomInfo,
    /// `last_seq` as stored; the room row is rewritten at the flush if `info` moved past it.
    stored_seq: u64,
}

/// What the texts of one batch have read and not yet written back.
pub(super) struct Texts<'a> {
    rooms: HashMap<String, RoomState>,
    /// Whether the user is a member: `(room, user)`.
    members: HashMap<(String, String), bool>,
    /// The writer's client ids; the batch adds the ids of its texts.
    ids: &'a mut ClientIds,
}

impl<'a> Texts<'a> {
    pub(super) fn new(ids: &'a mut ClientIds) -> Self {
        Texts {
            rooms: HashMap::new(),
            members: HashMap::new(),
            ids,
        }
    }

    /// Appends one text (or finds it already stored under its client id).
    pub(super) fn append(
        &mut self,
        conn: &Connection,
        now: i64,
        room_id: &str,
        user: &UserRef,
        client_id: String,
        body: String,
    ) -> StoreResult<Appended> {
        let room = self.room(conn, room_id)?;
        let facts = room.info.facts();
        may_use(&facts, self.is_member(conn, room_id, &user.id)?)?;
        let key = match self.ids.find(conn, room_id, &user.id, &client_id)? {
            Lookup::Seen(seq) => {
                // Texts of this batch are in the table already: the read finds them too.
                let event = read::event(conn, room_id, seq)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("client id of {room_id}/{seq} has no event"))
                })?;
                return Ok(Appended {
                    event,
                    duplicate: true,
                });
            }
            Lookup::New(key) => key,
        };
        let room = self.room(conn, room_id)?;
        let event = Event {
            room: room_id.to_owned(),
            seq: room.info.room.last_seq + 1,
            id: crate::new_event_id(),
            kind: EventKind::Text,
            from: user.clone(),
            by: None,
            body: Some(body),
            target: None,
            deleted: false,
            ts: now,
            client_id: Some(client_id),
        };
        conn.prepare_cached(
            "INSERT INTO events (room_id, seq, id, kind, from_id, from_name, body, deleted, ts, \
             client_id) VALUES (?1, ?2, ?3, 'text', ?4, ?5, ?6, 0, ?7, ?8)",
        )?
        .execute(params![
            event.room,
            event.seq,
            event.id,
            event.from.id,
            event.from.name,
            event.body,
            event.ts,
            event.client_id,
        ])?;
        // Only once the row is in: a failed insert takes no seq and keeps no id.
        room.info.room.last_seq = event.seq;
        self.ids.add(key, event.seq);
        Ok(Appended {
            event,
            duplicate: false,
        })
    }

    /// Writes each room's new `last_seq` and forgets what was read, so that the commands
    /// after it (which may change rooms and memberships) read afresh.
    pub(super) fn flush(&mut self, conn: &Connection) -> StoreResult<()> {
        let rooms = std::mem::take(&mut self.rooms);
        self.members.clear();
        for (id, room) in rooms {
            if room.info.room.last_seq != room.stored_seq {
                conn.prepare_cached("UPDATE rooms SET last_seq = ?2 WHERE id = ?1")?
                    .execute(params![id, room.info.room.last_seq])?;
            }
        }
        Ok(())
    }

    fn room(&mut self, conn: &Connection, room_id: &str) -> StoreResult<&mut RoomState> {
        if !self.rooms.contains_key(room_id) {
            let info = read::room(conn, room_id)?.ok_or(NO_ROOM)?;
            let stored_seq = info.room.last_seq;
            let state = RoomState { info, stored_seq };
            self.rooms.insert(room_id.to_owned(), state);
        }
        self.rooms.get_mut(room_id).ok_or(NO_ROOM.into())
    }

    fn is_member(&mut self, conn: &Connection, room_id: &str, user_id: &str) -> StoreResult<bool> {
        let key = (room_id.to_owned(), user_id.to_owned());
        if let Some(member) = self.members.get(&key) {
            return Ok(*member);
        }
        let member = read::membership(conn, room_id, user_id)?.is_some();
        self.members.insert(key, member);
        Ok(member)
    }
}
