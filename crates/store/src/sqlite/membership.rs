//! The writes of rooms and memberships, each writing one `join` or `leave` event per member
//! who enters or goes.

use confab_domain::RuleError;
use confab_domain::rules::{may_add, may_join, may_leave, may_remove};
use confab_protocol::{Event, EventKind, Room, UserRef, Visibility};
use rusqlite::{Connection, params};

use super::ops::{NO_USER, NewEvent, existing_room, random_id, write_event};
use super::read;
use crate::{Change, RoomInfo, StoreResult};

pub(super) fn create_room(
    conn: &Connection,
    now: i64,
    owner: &UserRef,
    name: &str,
    visibility: Visibility,
) -> StoreResult<Change> {
    let room_id = random_id("r_");
    insert_room(conn, now, &room_id, name, visibility, None, &owner.id)?;
    let join = membership_event(conn, now, &room_id, EventKind::Join, owner, None)?;
    enter(conn, &room_id, &owner.id, join.seq)?;
    changed(conn, &room_id, Some(join.seq), vec![join])
}

pub(super) fn open_dm(
    conn: &Connection,
    now: i64,
    a: &UserRef,
    b: &UserRef,
) -> StoreResult<Change> {
    if a.id == b.id {
        return Err(
            RuleError::BadRequest("a direct conversation needs two different users").into(),
        );
    }
    for user in [a, b] {
        if read::user_by_id(conn, &user.id)?.is_none() {
            return Err(NO_USER.into());
        }
    }
    let dm_key = if a.id < b.id {
        format!("{}:{}", a.id, b.id)
    } else {
        format!("{}:{}", b.id, a.id)
    };
    let room_id = match read::dm_room(conn, &dm_key)? {
        Some(info) => info.room.id,
        None => {
            let room_id = random_id("r_");
            let name = format!("{}, {}", a.name, b.name);
            let private = Visibility::Private;
            insert_room(conn, now, &room_id, &name, private, Some(&dm_key), &a.id)?;
            room_id
        }
    };
    // A new DM gets both joins; an old one re-joins whoever left.
    let mut events = Vec::new();
    for user in [a, b] {
        if read::membership(conn, &room_id, &user.id)?.is_none() {
            let join = membership_event(conn, now, &room_id, EventKind::Join, user, None)?;
            enter(conn, &room_id, &user.id, join.seq)?;
            events.push(join);
        }
    }
    let marker = read::membership(conn, &room_id, &a.id)?;
    changed(conn, &room_id, marker, events)
}

pub(super) fn join(
    conn: &Connection,
    now: i64,
    room_id: &str,
    user: &UserRef,
) -> StoreResult<Change> {
    let info = existing_room(conn, room_id)?;
    let marker = read::membership(conn, room_id, &user.id)?;
    if !may_join(&info.facts(), marker.is_some())? {
        return Ok(unchanged(info, marker));
    }
    let join = membership_event(conn, now, room_id, EventKind::Join, user, None)?;
    enter(conn, room_id, &user.id, join.seq)?;
    changed(conn, room_id, Some(join.seq), vec![join])
}

pub(super) fn leave(
    conn: &Connection,
    now: i64,
    room_id: &str,
    user: &UserRef,
) -> StoreResult<Change> {
    let info = existing_room(conn, room_id)?;
    let marker = read::membership(conn, room_id, &user.id)?;
    may_leave(&info.facts(), &user.id, marker.is_some())?;
    let leave = membership_event(conn, now, room_id, EventKind::Leave, user, None)?;
    exit(conn, room_id, &user.id)?;
    changed(conn, room_id, marker, vec![leave])
}

pub(super) fn add_member(
    conn: &Connection,
    now: i64,
    room_id: &str,
    actor: &UserRef,
    target: &UserRef,
) -> StoreResult<Change> {
    let info = existing_room(conn, room_id)?;
    let actor_marker = read::membership(conn, room_id, &actor.id)?;
    let marker = read::membership(conn, room_id, &target.id)?;
    if !may_add(
        &info.facts(),
        &actor.id,
        actor_marker.is_some(),
        marker.is_some(),
    )? {
        return Ok(unchanged(info, marker));
    }
    if read::user_by_id(conn, &target.id)?.is_none() {
        return Err(NO_USER.into());
    }
    let join = membership_event(conn, now, room_id, EventKind::Join, target, Some(actor))?;
    enter(conn, room_id, &target.id, join.seq)?;
    changed(conn, room_id, Some(join.seq), vec![join])
}

pub(super) fn remove_member(
    conn: &Connection,
    now: i64,
    room_id: &str,
    actor: &UserRef,
    target: &UserRef,
) -> StoreResult<Change> {
    let info = existing_room(conn, room_id)?;
    let actor_marker = read::membership(conn, room_id, &actor.id)?;
    let marker = read::membership(conn, room_id, &target.id)?;
    let facts = info.facts();
    may_remove(
        &facts,
        &actor.id,
        actor_marker.is_some(),
        &target.id,
        marker.is_some(),
    )?;
    // Removing oneself is leaving, which names no `by`.
    let by = (target.id != actor.id).then_some(actor);
    let leave = membership_event(conn, now, room_id, EventKind::Leave, target, by)?;
    exit(conn, room_id, &target.id)?;
    changed(conn, room_id, marker, vec![leave])
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

/// A change that wrote `events`: the room as it is now, with the affected member's marker.
fn changed(
    conn: &Connection,
    room_id: &str,
    read_seq: Option<u64>,
    events: Vec<Event>,
) -> StoreResult<Change> {
    let info = existing_room(conn, room_id)?;
    Ok(Change {
        room: Room {
            read_seq,
            ..info.room
        },
        events,
    })
}

fn insert_room(
    conn: &Connection,
    now: i64,
    room_id: &str,
    name: &str,
    visibility: Visibility,
    dm_key: Option<&str>,
    owner: &str,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO rooms (id, name, name_lower, visibility, dm_key, owner, created_ts, \
         member_count, last_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, 0)",
    )?
    .execute(params![
        room_id,
        name,
        name.to_lowercase(),
        visibility.as_str(),
        dm_key,
        owner,
        now
    ])?;
    Ok(())
}

/// Makes `user_id` a member whose marker starts at their join.
fn enter(conn: &Connection, room_id: &str, user_id: &str, join_seq: u64) -> StoreResult<()> {
    conn.prepare_cached("INSERT INTO members (room_id, user_id, read_seq) VALUES (?1, ?2, ?3)")?
        .execute(params![room_id, user_id, join_seq])?;
    conn.prepare_cached("UPDATE rooms SET member_count = member_count + 1 WHERE id = ?1")?
        .execute([room_id])?;
    Ok(())
}

fn exit(conn: &Connection, room_id: &str, user_id: &str) -> StoreResult<()> {
    let n = conn
        .prepare_cached("DELETE FROM members WHERE room_id = ?1 AND user_id = ?2")?
        .execute([room_id, user_id])?;
    if n > 0 {
        conn.prepare_cached("UPDATE rooms SET member_count = member_count - 1 WHERE id = ?1")?
            .execute([room_id])?;
    }
    Ok(())
}

fn membership_event(
    conn: &Connection,
    now: i64,
    room_id: &str,
    kind: EventKind,
    who: &UserRef,
    by: Option<&UserRef>,
) -> StoreResult<Event> {
    let new = NewEvent {
        kind,
        from: who,
        by,
        body: None,
        target: None,
    };
    write_event(conn, now, room_id, new)
}
