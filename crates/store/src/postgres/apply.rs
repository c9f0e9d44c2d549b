//! A batch's writes decided in memory: the facts read (under the rooms' locks) at the start of
//! the batch, the domain rules asked for each command in order against those facts as the
//! earlier commands changed them, and the rows that then have to be written. No I/O here.

use std::collections::{HashMap, HashSet};

use confab_domain::RuleError;
use confab_domain::rules::{TargetFacts, advance_read, may_delete, may_edit, may_react, may_use};
use confab_protocol::{Event, EventKind, Room, UserRef};

use super::ops::{Op, Outcome};
use crate::{Append, Appended, Change, RoomInfo, StoreResult};

pub(super) const NO_ROOM: RuleError = RuleError::NotFound("no such room");
pub(super) const NO_USER: RuleError = RuleError::NotFound("no such user");

/// A room as the batch sees it.
pub(super) struct RoomState {
    pub(super) info: RoomInfo,
    /// (member_count, last_seq) as stored before the batch; `None` for a room it creates.
    pub(super) stored: Option<(u64, u64)>,
}

/// A membership as the batch sees it.
struct MemberState {
    stored: Option<u64>,
    current: Option<u64>,
    name: String,
}

/// Everything the batch writes, once every command has been decided.
#[derive(Debug, Default)]
pub(super) struct Writes {
    /// New rooms, with their final counts (never DMs: their rows exist before the batch
    /// decides).
    pub(super) new_rooms: Vec<RoomInfo>,
    /// Existing rooms whose counts changed: (id, member_count, last_seq).
    pub(super) room_counts: Vec<(String, u64, u64)>,
    /// (room, user, user_name, read_seq)
    pub(super) member_inserts: Vec<(String, String, String, u64)>,
    /// (room, user, read_seq)
    pub(super) member_updates: Vec<(String, String, u64)>,
    /// (room, user)
    pub(super) member_deletes: Vec<(String, String)>,
    pub(super) events: Vec<Event>,
    /// Stored messages deleted by this batch: (room, seq); their edits go too.
    pub(super) erased: Vec<(String, u64)>,
}

/// The batch's view of its rooms, changed as each command is applied.
pub(super) struct View {
    pub(super) now: i64,
    pub(super) rooms: HashMap<String, RoomState>,
    members: HashMap<(String, String), MemberState>,
    /// Senders known to be members without their markers read (`room_cache.rs`); no
    /// command of the batch changes their membership.
    senders: HashSet<(String, String)>,
    targets: HashMap<(String, u64), TargetFacts>,
    client_ids: HashMap<(String, String, String), Event>,
    events: Vec<Event>,
    erased: Vec<(String, u64)>,
}

impl View {
    /// The view from what was read: the locked rooms, existing memberships
    /// `(room, user, read_seq)`, senders known to be members `(room, user)`, target facts and
    /// events stored under a client id.
    pub(super) fn new(
        now: i64,
        rooms: Vec<RoomInfo>,
        members: Vec<(String, String, u64)>,
        senders: Vec<(String, String)>,
        targets: Vec<((String, u64), TargetFacts)>,
        client_ids: Vec<Event>,
    ) -> View {
        let rooms = rooms
            .into_iter()
            .map(|info| {
                let stored = Some((info.room.member_count, info.room.last_seq));
                let state = RoomState { info, stored };
                (state.info.room.id.clone(), state)
            })
            .collect();
        let members = members
            .into_iter()
            .map(|(room, user, seq)| {
                let state = MemberState {
                    stored: Some(seq),
                    current: Some(seq),
                    name: String::new(),
                };
                ((room, user), state)
            })
            .collect();
        let client_ids = client_ids
            .into_iter()
            .filter_map(|e| {
                let key = (e.room.clone(), e.from.id.clone(), e.client_id.clone()?);
                Some((key, e))
            })
            .collect();
        View {
            now,
            rooms,
            members,
            senders: senders.into_iter().collect(),
            targets: targets.into_iter().collect(),
            client_ids,
            events: Vec::new(),
            erased: Vec::new(),
        }
    }

    /// Decides one command: its answer, and its rows in the view if the rules allow it.
    /// A refused command changes nothing.
    pub(super) fn apply(&mut self, op: &Op) -> StoreResult<Outcome> {
        match op {
            Op::CreateRoom {
                room_id,
                owner,
                name,
                visibility,
            } => self
                .create_room(room_id, owner, name, *visibility)
                .map(Outcome::Change),
            Op::OpenDm { room_id, a, b, .. } => self.open_dm(room_id, a, b).map(Outcome::Change),
            Op::Join { room_id, user } => self.join(room_id, user).map(Outcome::Change),
            Op::Leave { room_id, user } => self.leave(room_id, user).map(Outcome::Change),
            Op::AddMember {
                room_id,
                actor,
                target,
                target_exists,
            } => self
                .add_member(room_id, actor, target, *target_exists)
                .map(Outcome::Change),
            Op::RemoveMember {
                room_id,
                actor,
                target,
            } => self
                .remove_member(room_id, actor, target)
                .map(Outcome::Change),
            Op::Append {
                room_id,
                user,
                append,
            } => self.append(room_id, user, append).map(Outcome::Appended),
            Op::SetRead {
                room_id,
                user_id,
                seq,
            } => self.set_read(room_id, user_id, *seq).map(Outcome::Read),
        }
    }

    fn append(&mut self, room_id: &str, user: &UserRef, append: &Append) -> StoreResult<Appended> {
        let info = self.room(room_id)?;
        let member = self.marker(room_id, &user.id).is_some()
            || self.senders.contains(&key(room_id, &user.id));
        may_use(&info.facts(), member)?;
        let (kind, body, target, client_id) = match append {
            Append::Text { client_id, body } => {
                let key = (room_id.to_owned(), user.id.clone(), client_id.clone());
                if let Some(event) = self.client_ids.get(&key) {
                    return Ok(Appended {
                        event: event.clone(),
                        duplicate: true,
                    });
                }
                (EventKind::Text, Some(body), None, Some(client_id))
            }
            Append::Edit { target, body } => {
                may_edit(self.target(room_id, *target), &user.id)?;
                (EventKind::Edit, Some(body), Some(*target), None)
            }
            Append::Delete { target } => {
                may_delete(&info.facts(), self.target(room_id, *target), &user.id)?;
                self.erase(room_id, *target);
                (EventKind::Delete, None, Some(*target), None)
            }
            Append::React { target, body } => {
                may_react(self.target(room_id, *target))?;
                (EventKind::React, Some(body), Some(*target), None)
            }
        };
        let event = self.write_event(room_id, kind, user, None, body, target, client_id)?;
        Ok(Appended {
            event,
            duplicate: false,
        })
    }

    fn set_read(&mut self, room_id: &str, user_id: &str, seq: u64) -> StoreResult<Option<u64>> {
        let info = self.room(room_id)?;
        let marker = self.marker(room_id, user_id);
        may_use(&info.facts(), marker.is_some())?;
        let current = marker.ok_or(NO_ROOM)?;
        let moved = advance_read(current, seq, info.room.last_seq);
        if let Some(new) = moved
            && let Some(member) = self.members.get_mut(&key(room_id, user_id))
        {
            member.current = Some(new);
        }
        Ok(moved)
    }

    /// The room as it is now in the batch.
    pub(super) fn room(&self, room_id: &str) -> StoreResult<RoomInfo> {
        self.rooms
            .get(room_id)
            .map(|r| r.info.clone())
            .ok_or(NO_ROOM.into())
    }

    /// A member's read marker now; `None` for a non-member.
    pub(super) fn marker(&self, room_id: &str, user_id: &str) -> Option<u64> {
        self.members
            .get(&key(room_id, user_id))
            .and_then(|m| m.current)
    }

    fn target(&self, room_id: &str, seq: u64) -> Option<&TargetFacts> {
        self.targets.get(&(room_id.to_owned(), seq))
    }

    /// Makes `user` a member whose marker starts at their join.
    pub(super) fn enter(&mut self, room_id: &str, user: &UserRef, join_seq: u64) {
        let member = self
            .members
            .entry(key(room_id, &user.id))
            .or_insert_with(|| MemberState {
                stored: None,
                current: None,
                name: String::new(),
            });
        member.current = Some(join_seq);
        member.name.clone_from(&user.name);
        if let Some(room) = self.rooms.get_mut(room_id) {
            room.info.room.member_count += 1;
        }
    }

    pub(super) fn exit(&mut self, room_id: &str, user_id: &str) {
        if let Some(member) = self.members.get_mut(&key(room_id, user_id))
            && member.current.take().is_some()
            && let Some(room) = self.rooms.get_mut(room_id)
        {
            room.info.room.member_count = room.info.room.member_count.saturating_sub(1);
        }
    }

    /// Marks a message and its edits deleted, with their bodies gone, wherever the batch
    /// holds them.
    fn erase(&mut self, room_id: &str, target: u64) {
        if let Some(facts) = self.targets.get_mut(&(room_id.to_owned(), target)) {
            facts.deleted = true;
        }
        let hit = |e: &Event| {
            e.room == room_id
                && (e.seq == target || (e.kind == EventKind::Edit && e.target == Some(target)))
        };
        for event in self.events.iter_mut().chain(self.client_ids.values_mut()) {
            if hit(event) {
                event.deleted = true;
                event.body = None;
            }
        }
        self.erased.push((room_id.to_owned(), target));
    }

    pub(super) fn membership_event(
        &mut self,
        room_id: &str,
        kind: EventKind,
        who: &UserRef,
        by: Option<&UserRef>,
    ) -> StoreResult<Event> {
        self.write_event(room_id, kind, who, by, None, None, None)
    }

    /// Takes the room's next seq for a new event.
    #[allow(clippy::too_many_arguments)]
    fn write_event(
        &mut self,
        room_id: &str,
        kind: EventKind,
        from: &UserRef,
        by: Option<&UserRef>,
        body: Option<&String>,
        target: Option<u64>,
        client_id: Option<&String>,
    ) -> StoreResult<Event> {
        let room = self.rooms.get_mut(room_id).ok_or(NO_ROOM)?;
        room.info.room.last_seq += 1;
        let event = Event {
            room: room_id.to_owned(),
            seq: room.info.room.last_seq,
            id: crate::new_event_id(),
            kind,
            from: from.clone(),
            by: by.cloned(),
            body: body.cloned(),
            target,
            deleted: false,
            ts: self.now,
            client_id: client_id.cloned(),
        };
        let facts = TargetFacts {
            is_text: kind == EventKind::Text,
            deleted: false,
            author: from.id.clone(),
        };
        self.targets.insert((room_id.to_owned(), event.seq), facts);
        if let Some(client_id) = client_id {
            let key = (room_id.to_owned(), from.id.clone(), client_id.clone());
            self.client_ids.insert(key, event.clone());
        }
        self.events.push(event.clone());
        Ok(event)
    }

    /// A change that wrote `events`: the room as it is now, with the affected member's marker.
    pub(super) fn changed(
        &self,
        room_id: &str,
        read_seq: Option<u64>,
        events: Vec<Event>,
    ) -> StoreResult<Change> {
        let info = self.room(room_id)?;
        Ok(Change {
            room: Room {
                read_seq,
                ..info.room
            },
            events,
        })
    }

    /// Each room read from the store: (id, `last_seq` as read, `last_seq` now).
    pub(super) fn seqs(&self) -> Vec<(String, u64, u64)> {
        self.rooms
            .values()
            .filter_map(|r| {
                let (_, stored) = r.stored?;
                Some((r.info.room.id.clone(), stored, r.info.room.last_seq))
            })
            .collect()
    }

    /// The rows to write for everything the batch decided.
    pub(super) fn into_writes(self) -> Writes {
        let mut writes = Writes {
            events: self.events,
            erased: self.erased,
            ..Writes::default()
        };
        for room in self.rooms.into_values() {
            let counts = (room.info.room.member_count, room.info.room.last_seq);
            match room.stored {
                None => writes.new_rooms.push(room.info),
                Some(stored) if stored != counts => {
                    writes
                        .room_counts
                        .push((room.info.room.id, counts.0, counts.1))
                }
                Some(_) => {}
            }
        }
        for ((room, user), m) in self.members {
            match (m.stored, m.current) {
                (None, Some(seq)) => writes.member_inserts.push((room, user, m.name, seq)),
                (Some(_), None) => writes.member_deletes.push((room, user)),
                (Some(old), Some(new)) if old != new => {
                    writes.member_updates.push((room, user, new))
                }
                _ => {}
            }
        }
        writes
    }
}

fn key(room_id: &str, user_id: &str) -> (String, String) {
    (room_id.to_owned(), user_id.to_owned())
}
