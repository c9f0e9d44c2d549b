//! Text appends, the bulk of all writes, run without a savepoint of their own: every rule (and
//! the client id, through client_ids.rs) is checked by reading before anything is written, and
//! the one write, the event's `INSERT`, is atomic by itself, so a refused or failed text leaves
//! nothing behind. Each room's new `last_seq` is written once per batch, when its texts are
//! flushed (before any other command runs, and before the commit).
//!
//! The rooms and memberships the texts read are kept from batch to batch: only the writer
//! changes them, and it forgets them all before any other command runs (any of which may change
//! a room or a membership), after a batch that did not commit, and when they grow past a bound.

use std::collections::HashMap;

use confab_domain::rules::may_use;
use confab_protocol::{Event, EventKind, UserRef};
use rusqlite::{Connection, params};

use super::client_ids::{ClientIds, Lookup};
use super::ops::NO_ROOM;
use super::read;
use crate::{Appended, RoomInfo, StoreError, StoreResult};

/// Rooms, and memberships, kept at most before they are all forgotten.
const KEPT_MAX: usize = 16_384;

/// A room as the texts see it.
struct RoomState {
    info: RoomInfo,
    /// `last_seq` as stored; the room row is rewritten at the flush if `info` moved past it.
    stored_seq: u64,
}

/// What the texts have read, and what they have not yet written back.
#[derive(Default)]
pub(super) struct Texts {
    rooms: HashMap<String, RoomState>,
    /// Whether the user is a member: room → user → member.
    members: HashMap<String, HashMap<String, bool>>,
    /// Entries in `members`.
    member_count: usize,
    /// Rooms whose `last_seq` moved since the last flush.
    moved: Vec<String>,
    /// The writer's client ids; each batch adds the ids of its texts.
    ids: ClientIds,
}

impl Texts {
    /// Texts that check client ids against `ids`.
    pub(super) fn new(ids: ClientIds) -> Self {
        Texts {
            ids,
            ..Texts::default()
        }
    }

    /// The client ids, for merging them between batches.
    pub(super) fn ids(&mut self) -> &mut ClientIds {
        &mut self.ids
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
        if room.stored_seq + 1 == event.seq {
            self.moved.push(room_id.to_owned());
        }
        self.ids.add(key, event.seq);
        Ok(Appended {
            event,
            duplicate: false,
        })
    }

    /// Writes each room's new `last_seq`.
    pub(super) fn flush(&mut self, conn: &Connection) -> StoreResult<()> {
        for id in self.moved.drain(..) {
            if let Some(room) = self.rooms.get_mut(&id) {
                conn.prepare_cached("UPDATE rooms SET last_seq = ?2 WHERE id = ?1")?
                    .execute(params![id, room.info.room.last_seq])?;
                room.stored_seq = room.info.room.last_seq;
            }
        }
        Ok(())
    }

    /// Forgets what was read, so that what runs next reads afresh; rooms not yet flushed are
    /// forgotten too (the transaction they were written in is rolled back or was flushed).
    pub(super) fn forget(&mut self) {
        self.rooms.clear();
        self.members.clear();
        self.member_count = 0;
        self.moved.clear();
    }

    /// The batch's transaction committed (`true`) or rolled back.
    pub(super) fn end_batch(&mut self, committed: bool) {
        self.ids.end_batch(committed);
        if !committed || self.rooms.len() > KEPT_MAX || self.member_count > KEPT_MAX {
            self.forget();
        }
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
        if let Some(member) = self.members.get(room_id).and_then(|m| m.get(user_id)) {
            return Ok(*member);
        }
        let member = read::membership(conn, room_id, user_id)?.is_some();
        self.members
            .entry(room_id.to_owned())
            .or_default()
            .insert(user_id.to_owned(), member);
        self.member_count += 1;
        Ok(member)
    }
}
