//! The writes, each run by the writer inside its own savepoint: read the facts, ask the
//! domain rules, then write the rows and the events.

use confab_domain::RuleError;
use confab_domain::rules::{
    advance_read, may_add, may_delete, may_edit, may_join, may_leave, may_react, may_remove,
    may_use,
};
use confab_protocol::{Event, EventKind, Room, UserRef, Visibility};
use rand::RngExt;
use rusqlite::{Connection, params};

use super::read::{self, facts};
use crate::{Append, Appended, Change, RoomInfo, StoreError, StoreResult};

const NO_ROOM: RuleError = RuleError::NotFound("no such room");
const NO_USER: RuleError = RuleError::NotFound("no such user");

/// A new id: `prefix` and 16 random characters of `[A-Za-z0-9]`.
fn random_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut id = String::with_capacity(prefix.len() + 16);
    id.push_str(prefix);
    for _ in 0..16 {
        id.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    id
}

pub(super) fn create_user(
    conn: &Connection,
    now: i64,
    name: &str,
    password_hash: &str,
) -> StoreResult<UserRef> {
    if read::user_by_name(conn, name)?.is_some() {
        return Err(StoreError::Conflict("name is taken"));
    }
    let user = UserRef {
        id: random_id("u_"),
        name: name.to_owned(),
    };
    conn.prepare_cached(
        "INSERT INTO users (id, name, password_hash, created_ts) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![user.id, user.name, password_hash, now])?;
    Ok(user)
}

pub(super) fn create_token(
    conn: &Connection,
    token_hash: &str,
    user_id: &str,
    expires_ts: i64,
) -> StoreResult<()> {
    conn.prepare_cached("INSERT INTO tokens (hash, user_id, expires_ts) VALUES (?1, ?2, ?3)")?
        .execute(params![token_hash, user_id, expires_ts])?;
    Ok(())
}

pub(super) fn revoke_token(conn: &Connection, token_hash: &str) -> StoreResult<bool> {
    let n = conn
        .prepare_cached("DELETE FROM tokens WHERE hash = ?1")?
        .execute([token_hash])?;
    Ok(n > 0)
}

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
    if !may_join(&facts(&info), marker.is_some())? {
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
    may_leave(&facts(&info), &user.id, marker.is_some())?;
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
        &facts(&info),
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
    let facts = facts(&info);
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

pub(super) fn append(
    conn: &Connection,
    now: i64,
    room_id: &str,
    user: &UserRef,
    append: &Append,
) -> StoreResult<Appended> {
    let info = existing_room(conn, room_id)?;
    may_use(
        &facts(&info),
        read::membership(conn, room_id, &user.id)?.is_some(),
    )?;
    let new = |kind, body, target, client_id| NewEvent {
        kind,
        from: user,
        by: None,
        body,
        target,
        client_id,
    };
    let event = match append {
        Append::Text { client_id, body } => {
            if let Some(event) = read::event_by_client_id(conn, room_id, &user.id, client_id)? {
                return Ok(Appended {
                    event,
                    duplicate: true,
                });
            }
            let text = new(
                EventKind::Text,
                Some(body.as_str()),
                None,
                Some(client_id.as_str()),
            );
            write_event(conn, now, room_id, text)?
        }
        Append::Edit { target, body } => {
            may_edit(
                read::target_facts(conn, room_id, *target)?.as_ref(),
                &user.id,
            )?;
            let edit = new(EventKind::Edit, Some(body.as_str()), Some(*target), None);
            write_event(conn, now, room_id, edit)?
        }
        Append::Delete { target } => {
            let target_facts = read::target_facts(conn, room_id, *target)?;
            may_delete(&facts(&info), target_facts.as_ref(), &user.id)?;
            erase(conn, room_id, *target)?;
            write_event(
                conn,
                now,
                room_id,
                new(EventKind::Delete, None, Some(*target), None),
            )?
        }
        Append::React { target, body } => {
            may_react(read::target_facts(conn, room_id, *target)?.as_ref())?;
            let react = new(EventKind::React, Some(body.as_str()), Some(*target), None);
            write_event(conn, now, room_id, react)?
        }
    };
    Ok(Appended {
        event,
        duplicate: false,
    })
}

pub(super) fn set_read(
    conn: &Connection,
    room_id: &str,
    user_id: &str,
    seq: u64,
) -> StoreResult<Option<u64>> {
    let info = existing_room(conn, room_id)?;
    let marker = read::membership(conn, room_id, user_id)?;
    may_use(&facts(&info), marker.is_some())?;
    let current = marker.ok_or(NO_ROOM)?;
    let moved = advance_read(current, seq, info.room.last_seq);
    if let Some(new) = moved {
        conn.prepare_cached(
            "UPDATE members SET read_seq = ?3 WHERE room_id = ?1 AND user_id = ?2",
        )?
        .execute(params![room_id, user_id, new])?;
    }
    Ok(moved)
}

fn existing_room(conn: &Connection, room_id: &str) -> StoreResult<RoomInfo> {
    read::room(conn, room_id)?.ok_or(NO_ROOM.into())
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

/// Erases a deleted message's body, and those of its edits, from storage.
fn erase(conn: &Connection, room_id: &str, target: u64) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE events SET deleted = 1, body = NULL WHERE room_id = ?1 AND seq = ?2",
    )?
    .execute(params![room_id, target])?;
    conn.prepare_cached(
        "UPDATE events SET deleted = 1, body = NULL \
         WHERE room_id = ?1 AND kind = 'edit' AND target = ?2",
    )?
    .execute(params![room_id, target])?;
    Ok(())
}

/// An event before it has a seq, an id and a time.
struct NewEvent<'a> {
    kind: EventKind,
    from: &'a UserRef,
    by: Option<&'a UserRef>,
    body: Option<&'a str>,
    target: Option<u64>,
    client_id: Option<&'a str>,
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
        client_id: None,
    };
    write_event(conn, now, room_id, new)
}

/// Takes the room's next seq and inserts the event under it.
fn write_event(
    conn: &Connection,
    now: i64,
    room_id: &str,
    new: NewEvent<'_>,
) -> StoreResult<Event> {
    let seq: u64 = conn
        .prepare_cached(
            "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq",
        )?
        .query_row([room_id], |r| r.get(0))?;
    let event = Event {
        room: room_id.to_owned(),
        seq,
        id: crate::new_event_id(),
        kind: new.kind,
        from: new.from.clone(),
        by: new.by.cloned(),
        body: new.body.map(str::to_owned),
        target: new.target,
        deleted: false,
        ts: now,
        client_id: new.client_id.map(str::to_owned),
    };
    conn.prepare_cached(
        "INSERT INTO events (room_id, seq, id, kind, from_id, from_name, by_id, by_name, body, \
         target, deleted, ts, client_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11, ?12)",
    )?
    .execute(params![
        event.room,
        event.seq,
        event.id,
        event.kind.as_str(),
        event.from.id,
        event.from.name,
        event.by.as_ref().map(|u| u.id.as_str()),
        event.by.as_ref().map(|u| u.name.as_str()),
        event.body,
        event.target,
        event.ts,
        event.client_id,
    ])?;
    Ok(event)
}
