//! Deciding the membership writes of a batch in memory: rooms, DMs, joins, leaves, adds and
//! removes, each writing one `join` or `leave` event per member who enters or goes.

use confab_domain::rules::{may_add, may_join, may_leave, may_remove};
use confab_protocol::{EventKind, Room, UserRef, Visibility};

use super::apply::{NO_USER, RoomState, View};
use crate::{Change, RoomInfo, StoreResult};

impl View {
    pub(super) fn create_room(
        &mut self,
        room_id: &str,
        owner: &UserRef,
        name: &str,
        visibility: Visibility,
    ) -> StoreResult<Change> {
        let info = RoomInfo {
            room: Room {
                id: room_id.to_owned(),
                name: name.to_owned(),
                visibility,
                owner: owner.id.clone(),
                created_ts: self.now,
                member_count: 0,
                last_seq: 0,
                read_seq: None,
            },
            dm: false,
        };
        let state = RoomState { info, stored: None };
        self.rooms.insert(room_id.to_owned(), state);
        let join = self.membership_event(room_id, EventKind::Join, owner, None)?;
        self.enter(room_id, owner, join.seq);
        self.changed(room_id, Some(join.seq), vec![join])
    }

    pub(super) fn open_dm(
        &mut self,
        room_id: &str,
        a: &UserRef,
        b: &UserRef,
    ) -> StoreResult<Change> {
        // The room row exists: the batch created it, if missing, before reading.
        self.room(room_id)?;
        let mut events = Vec::new();
        for user in [a, b] {
            if self.marker(room_id, &user.id).is_none() {
                let join = self.membership_event(room_id, EventKind::Join, user, None)?;
                self.enter(room_id, user, join.seq);
                events.push(join);
            }
        }
        let marker = self.marker(room_id, &a.id);
        self.changed(room_id, marker, events)
    }

    pub(super) fn join(&mut self, room_id: &str, user: &UserRef) -> StoreResult<Change> {
        let info = self.room(room_id)?;
        let marker = self.marker(room_id, &user.id);
        if !may_join(&info.facts(), marker.is_some())? {
            return Ok(unchanged(info, marker));
        }
        let join = self.membership_event(room_id, EventKind::Join, user, None)?;
        self.enter(room_id, user, join.seq);
        self.changed(room_id, Some(join.seq), vec![join])
    }

    pub(super) fn leave(&mut self, room_id: &str, user: &UserRef) -> StoreResult<Change> {
        let info = self.room(room_id)?;
        let marker = self.marker(room_id, &user.id);
        may_leave(&info.facts(), &user.id, marker.is_some())?;
        let leave = self.membership_event(room_id, EventKind::Leave, user, None)?;
        self.exit(room_id, &user.id);
        self.changed(room_id, marker, vec![leave])
    }

    pub(super) fn add_member(
        &mut self,
        room_id: &str,
        actor: &UserRef,
        target: &UserRef,
        target_exists: bool,
    ) -> StoreResult<Change> {
        let info = self.room(room_id)?;
        let actor_marker = self.marker(room_id, &actor.id);
        let marker = self.marker(room_id, &target.id);
        let facts = info.facts();
        if !may_add(&facts, &actor.id, actor_marker.is_some(), marker.is_some())? {
            return Ok(unchanged(info, marker));
        }
        if !target_exists {
            return Err(NO_USER.into());
        }
        let join = self.membership_event(room_id, EventKind::Join, target, Some(actor))?;
        self.enter(room_id, target, join.seq);
        self.changed(room_id, Some(join.seq), vec![join])
    }

    pub(super) fn remove_member(
        &mut self,
        room_id: &str,
        actor: &UserRef,
        target: &UserRef,
    ) -> StoreResult<Change> {
        let info = self.room(room_id)?;
        let actor_marker = self.marker(room_id, &actor.id);
        let marker = self.marker(room_id, &target.id);
        may_remove(
            &info.facts(),
            &actor.id,
            actor_marker.is_some(),
            &target.id,
            marker.is_some(),
        )?;
        // Removing oneself is leaving, which names no `by`.
        let by = (target.id != actor.id).then_some(actor);
        let leave = self.membership_event(room_id, EventKind::Leave, target, by)?;
        self.exit(room_id, &target.id);
        self.changed(room_id, marker, vec![leave])
    }
}

/// A change that wrote nothing: the room as it is, with the affected member's marker.
fn unchanged(info: RoomInfo, read_seq: Option<u64>) -> Change {
    Change {
        room: Room {
            read_seq,
            ..info.room
        },
        events: Vec::new(),
    }
}
