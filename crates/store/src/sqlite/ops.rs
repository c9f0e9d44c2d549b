//! The writes of users, tokens, messages and read markers, each run by the writer inside its
//! own savepoint: read the facts, ask the domain rules, then write the rows and the events.

use confab_domain::RuleError;
use confab_domain::rules::{advance_read, may_delete, may_edit, may_react, may_use};
use confab_protocol::{Event, EventKind, UserRef};
use rusqlite::{Connection, params};

use super::read;
use crate::{Append, Appended, RoomInfo, StoreError, StoreResult};

pub(super) const NO_ROOM: RuleError = RuleError::NotFound("no such room");

pub(super) const NO_USER: RuleError = RuleError::NotFound("no such user");

pub(super) use crate::random_id;

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

pub(super) fn append(
    conn: &Connection,
    now: i64,
    room_id: &str,
    user: &UserRef,
    append: &Append,
) -> StoreResult<Appended> {
    let info = existing_room(conn, room_id)?;
    may_use(
        &info.facts(),
        read::membership(conn, room_id, &user.id)?.is_some(),
    )?;
    let new = |kind, body, target| NewEvent {
        kind,
        from: user,
        by: None,
        body,
        target,
    };
    let event = match append {
        // run_batch hands every text to texts.rs, which also checks its client id.
        Append::Text { .. } => {
            return Err(StoreError::Unavailable(
                "texts are appended by the batch's texts".into(),
            ));
        }
        Append::Edit { target, body } => {
            may_edit(
                read::target_facts(conn, room_id, *target)?.as_ref(),
                &user.id,
            )?;
            let edit = new(EventKind::Edit, Some(body.as_str()), Some(*target));
            write_event(conn, now, room_id, edit)?
        }
        Append::Delete { target } => {
            let target_facts = read::target_facts(conn, room_id, *target)?;
            may_delete(&info.facts(), target_facts.as_ref(), &user.id)?;
            erase(conn, room_id, *target)?;
            write_event(
                conn,
                now,
                room_id,
                new(EventKind::Delete, None, Some(*target)),
            )?
        }
        Append::React { target, body } => {
            may_react(read::target_facts(conn, room_id, *target)?.as_ref())?;
            let react = new(EventKind::React, Some(body.as_str()), Some(*target));
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
    may_use(&info.facts(), marker.is_some())?;
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

pub(super) fn existing_room(conn: &Connection, room_id: &str) -> StoreResult<RoomInfo> {
    read::room(conn, room_id)?.ok_or(NO_ROOM.into())
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

/// An event other than a text (texts.rs writes those, with their client id) before it has a
/// seq, an id and a time.
pub(super) struct NewEvent<'a> {
    pub(super) kind: EventKind,
    pub(super) from: &'a UserRef,
    pub(super) by: Option<&'a UserRef>,
    pub(super) body: Option<&'a str>,
    pub(super) target: Option<u64>,
}

/// Takes the room's next seq and inserts the event under it.
pub(super) fn write_event(
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
        client_id: None,
    };
    conn.prepare_cached(
        "INSERT INTO events (room_id, seq, id, kind, from_id, from_name, by_id, by_name, body, \
         target, deleted, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11)",
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
    ])?;
    Ok(event)
}
