//! Queries that only read, shared by the read pool and the writer, and the mapping of rows to
//! protocol objects.

use confab_domain::rules::TargetFacts;
use confab_protocol::{Event, EventKind, Room, UserRef, Visibility};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{EventRange, Page, RoomInfo, StoreError, StoreResult, TokenRecord, UserRecord};

const ROOM_COLUMNS: &str = "r.id, r.name, r.visibility, r.owner, r.created_ts, r.member_count, r.last_seq, r.dm_key IS NOT NULL";

const EVENT_COLUMNS: &str = "room_id, seq, id, kind, from_id, from_name, by_id, by_name, body, \
     target, deleted, ts, client_id";

/// A room row before its visibility is checked.
struct RawRoom {
    id: String,
    name: String,
    visibility: String,
    owner: String,
    created_ts: i64,
    member_count: u64,
    last_seq: u64,
    dm: bool,
}

fn raw_room(r: &Row<'_>) -> rusqlite::Result<RawRoom> {
    Ok(RawRoom {
        id: r.get(0)?,
        name: r.get(1)?,
        visibility: r.get(2)?,
        owner: r.get(3)?,
        created_ts: r.get(4)?,
        member_count: r.get(5)?,
        last_seq: r.get(6)?,
        dm: r.get(7)?,
    })
}

impl RawRoom {
    fn into_info(self, read_seq: Option<u64>) -> StoreResult<RoomInfo> {
        let visibility = Visibility::parse(&self.visibility).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "room {} has visibility `{}`",
                self.id, self.visibility
            ))
        })?;
        Ok(RoomInfo {
            room: Room {
                id: self.id,
                name: self.name,
                visibility,
                owner: self.owner,
                created_ts: self.created_ts,
                member_count: self.member_count,
                last_seq: self.last_seq,
                read_seq,
            },
            dm: self.dm,
        })
    }
}

/// An event row before its kind is checked.
struct RawEvent {
    room: String,
    seq: u64,
    id: String,
    kind: String,
    from_id: String,
    from_name: String,
    by_id: Option<String>,
    by_name: Option<String>,
    body: Option<String>,
    target: Option<u64>,
    deleted: bool,
    ts: i64,
    client_id: Option<String>,
}

fn raw_event(r: &Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok(RawEvent {
        room: r.get(0)?,
        seq: r.get(1)?,
        id: r.get(2)?,
        kind: r.get(3)?,
        from_id: r.get(4)?,
        from_name: r.get(5)?,
        by_id: r.get(6)?,
        by_name: r.get(7)?,
        body: r.get(8)?,
        target: r.get(9)?,
        deleted: r.get(10)?,
        ts: r.get(11)?,
        client_id: r.get(12)?,
    })
}

impl RawEvent {
    fn into_event(self) -> StoreResult<Event> {
        let kind = EventKind::parse(&self.kind).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "event {}#{} has kind `{}`",
                self.room, self.seq, self.kind
            ))
        })?;
        let targets = matches!(kind, EventKind::Edit | EventKind::Delete | EventKind::React);
        Ok(Event {
            room: self.room,
            seq: self.seq,
            id: self.id,
            kind,
            from: UserRef {
                id: self.from_id,
                name: self.from_name,
            },
            by: self
                .by_id
                .zip(self.by_name)
                .map(|(id, name)| UserRef { id, name }),
            body: if self.deleted { None } else { self.body },
            target: if targets { self.target } else { None },
            deleted: self.deleted,
            ts: self.ts,
            client_id: self.client_id,
        })
    }
}

/// The user with this exact (folded) name.
pub(super) fn user_by_name(conn: &Connection, name: &str) -> StoreResult<Option<UserRecord>> {
    let mut st =
        conn.prepare_cached("SELECT id, name, password_hash FROM users WHERE name = ?1")?;
    let row = st
        .query_row([name], |r| {
            Ok(UserRecord {
                user: UserRef {
                    id: r.get(0)?,
                    name: r.get(1)?,
                },
                password_hash: r.get(2)?,
            })
        })
        .optional()?;
    Ok(row)
}

/// The user with this id.
pub(super) fn user_by_id(conn: &Connection, id: &str) -> StoreResult<Option<UserRef>> {
    let mut st = conn.prepare_cached("SELECT id, name FROM users WHERE id = ?1")?;
    let row = st
        .query_row([id], |r| {
            Ok(UserRef {
                id: r.get(0)?,
                name: r.get(1)?,
            })
        })
        .optional()?;
    Ok(row)
}

/// The user with this id, or else this name folded to lower case.
pub(super) fn find_user(conn: &Connection, id_or_name: &str) -> StoreResult<Option<UserRef>> {
    if let Some(user) = user_by_id(conn, id_or_name)? {
        return Ok(Some(user));
    }
    let folded = id_or_name.to_ascii_lowercase();
    Ok(user_by_name(conn, &folded)?.map(|r| r.user))
}

/// A token with its user.
pub(super) fn token(conn: &Connection, hash: &str) -> StoreResult<Option<TokenRecord>> {
    let mut st = conn.prepare_cached(
        "SELECT u.id, u.name, t.expires_ts FROM tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.hash = ?1",
    )?;
    let row = st
        .query_row([hash], |r| {
            Ok(TokenRecord {
                user: UserRef {
                    id: r.get(0)?,
                    name: r.get(1)?,
                },
                expires_ts: r.get(2)?,
            })
        })
        .optional()?;
    Ok(row)
}

/// A room, with no `read_seq`.
pub(super) fn room(conn: &Connection, room_id: &str) -> StoreResult<Option<RoomInfo>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = ?1"
    ))?;
    st.query_row([room_id], raw_room)
        .optional()?
        .map(|raw| raw.into_info(None))
        .transpose()
}

/// The room of a DM key.
pub(super) fn dm_room(conn: &Connection, dm_key: &str) -> StoreResult<Option<RoomInfo>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.dm_key = ?1"
    ))?;
    st.query_row([dm_key], raw_room)
        .optional()?
        .map(|raw| raw.into_info(None))
        .transpose()
}

/// A member's read marker, `None` for a non-member.
/// The newest seq of each existing room among `ids`, read in one statement per 500 ids.
pub(super) fn last_seqs(conn: &Connection, ids: &[String]) -> StoreResult<Vec<(String, u64)>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare(&format!(
            "SELECT id, last_seq FROM rooms WHERE id IN ({marks})"
        ))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(chunk), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    Ok(out)
}

pub(super) fn membership(
    conn: &Connection,
    room_id: &str,
    user_id: &str,
) -> StoreResult<Option<u64>> {
    let mut st =
        conn.prepare_cached("SELECT read_seq FROM members WHERE room_id = ?1 AND user_id = ?2")?;
    Ok(st.query_row([room_id, user_id], |r| r.get(0)).optional()?)
}

/// The user's rooms with their read markers, by room id.
pub(super) fn rooms_of(conn: &Connection, user_id: &str) -> StoreResult<Vec<Room>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {ROOM_COLUMNS}, m.read_seq FROM members m JOIN rooms r ON r.id = m.room_id \
         WHERE m.user_id = ?1 ORDER BY r.id"
    ))?;
    let rows = st.query_map([user_id], |r| Ok((raw_room(r)?, r.get::<_, u64>(8)?)))?;
    rows.map(|row| {
        let (raw, read_seq) = row?;
        Ok(raw.into_info(Some(read_seq))?.room)
    })
    .collect()
}

/// Public rooms whose lower-cased name contains the lower-cased query, taken literally.
pub(super) fn public_rooms(conn: &Connection, query: &str, limit: u32) -> StoreResult<Vec<Room>> {
    // `instr` matches a literal substring: `%`, `_` and `\` in the query need no escaping.
    let mut st = conn.prepare_cached(&format!(
        "SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.visibility = 'public' \
         AND instr(r.name_lower, ?1) > 0 ORDER BY r.name_lower, r.id LIMIT ?2"
    ))?;
    let rows = st.query_map(params![query.to_lowercase(), limit], raw_room)?;
    rows.map(|row| Ok(row?.into_info(None)?.room)).collect()
}

/// The members of a room, by name.
pub(super) fn members(conn: &Connection, room_id: &str) -> StoreResult<Vec<UserRef>> {
    let mut st = conn.prepare_cached(
        "SELECT u.id, u.name FROM members m JOIN users u ON u.id = m.user_id \
         WHERE m.room_id = ?1 ORDER BY u.name",
    )?;
    let rows = st.query_map([room_id], |r| {
        Ok(UserRef {
            id: r.get(0)?,
            name: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A page of events; one row more than asked tells whether more lie beyond.
pub(super) fn events(
    conn: &Connection,
    room_id: &str,
    range: EventRange,
    limit: u32,
) -> StoreResult<Page> {
    let (filter, bound): (_, u64) = match range {
        EventRange::Newest => ("seq >= ?2 ORDER BY seq DESC", 0),
        EventRange::Before(s) => ("seq < ?2 ORDER BY seq DESC", s),
        EventRange::After(s) => ("seq > ?2 ORDER BY seq ASC", s),
    };
    let mut st = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE room_id = ?1 AND {filter} LIMIT ?3"
    ))?;
    let want = u64::from(limit) + 1;
    // A client's seq may exceed SQLite's integers; past the end is the same as the end.
    let bound = i64::try_from(bound).unwrap_or(i64::MAX);
    let rows = st.query_map(params![room_id, bound, want], raw_event)?;
    let mut events = rows
        .map(|row| row?.into_event())
        .collect::<StoreResult<Vec<_>>>()?;
    let has_more = events.len() as u64 == want;
    events.truncate(limit as usize);
    Ok(Page { events, has_more })
}

/// The event at `seq` in the room.
pub(super) fn event(conn: &Connection, room_id: &str, seq: u64) -> StoreResult<Option<Event>> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(None);
    };
    let mut st = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE room_id = ?1 AND seq = ?2"
    ))?;
    st.query_row(params![room_id, seq], raw_event)
        .optional()?
        .map(RawEvent::into_event)
        .transpose()
}

/// What the rules need to know about the event at `seq`.
pub(super) fn target_facts(
    conn: &Connection,
    room_id: &str,
    seq: u64,
) -> StoreResult<Option<TargetFacts>> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(None);
    };
    let mut st = conn.prepare_cached(
        "SELECT kind, deleted, from_id FROM events WHERE room_id = ?1 AND seq = ?2",
    )?;
    let row = st
        .query_row(params![room_id, seq], |r| {
            Ok(TargetFacts {
                is_text: r.get::<_, String>(0)? == EventKind::Text.as_str(),
                deleted: r.get(1)?,
                author: r.get(2)?,
            })
        })
        .optional()?;
    Ok(row)
}
