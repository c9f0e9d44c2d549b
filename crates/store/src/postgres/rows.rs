//! Rows as PostgreSQL returns them, and their mapping to protocol objects.

use confab_domain::rules::TargetFacts;
use confab_protocol::{Event, EventKind, Room, UserRef, Visibility};

use crate::{RoomInfo, StoreError, StoreResult};

/// The columns of a `RoomRow`, for `concat!`.
macro_rules! room_columns {
    () => {
        "id, name, visibility, owner, created_ts, member_count, last_seq, dm_key IS NOT NULL AS dm"
    };
}

/// The columns of an `EventRow`, for `concat!`.
macro_rules! event_columns {
    () => {
        "room_id, seq, id, kind, from_id, from_name, by_id, by_name, body, target, deleted, ts, \
         client_id"
    };
}

pub(super) use {event_columns, room_columns};

/// A room row before its visibility is checked.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RoomRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) visibility: String,
    pub(super) owner: String,
    pub(super) created_ts: i64,
    pub(super) member_count: i64,
    pub(super) last_seq: i64,
    pub(super) dm: bool,
}

/// A column that must not be negative.
pub(super) fn unsigned(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is {value}")))
}

/// A `u64` for a `BIGINT` column; every seq and count the store writes fits.
pub(super) fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl RoomRow {
    pub(super) fn into_info(self, read_seq: Option<u64>) -> StoreResult<RoomInfo> {
        let visibility = Visibility::parse(&self.visibility).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "room {} has visibility `{}`",
                self.id, self.visibility
            ))
        })?;
        Ok(RoomInfo {
            room: Room {
                member_count: unsigned(self.member_count, "a member count")?,
                last_seq: unsigned(self.last_seq, "a last seq")?,
                id: self.id,
                name: self.name,
                visibility,
                owner: self.owner,
                created_ts: self.created_ts,
                read_seq,
            },
            dm: self.dm,
        })
    }
}

/// An event row before its kind is checked.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct EventRow {
    room_id: String,
    seq: i64,
    id: String,
    kind: String,
    from_id: String,
    from_name: String,
    by_id: Option<String>,
    by_name: Option<String>,
    body: Option<String>,
    target: Option<i64>,
    deleted: bool,
    ts: i64,
    client_id: Option<String>,
}

impl EventRow {
    pub(super) fn into_event(self) -> StoreResult<Event> {
        let kind = EventKind::parse(&self.kind).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "event {}#{} has kind `{}`",
                self.room_id, self.seq, self.kind
            ))
        })?;
        let targets = matches!(kind, EventKind::Edit | EventKind::Delete | EventKind::React);
        let target = match self.target {
            Some(t) if targets => Some(unsigned(t, "a target")?),
            _ => None,
        };
        Ok(Event {
            seq: unsigned(self.seq, "a seq")?,
            room: self.room_id,
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
            target,
            deleted: self.deleted,
            ts: self.ts,
            client_id: self.client_id,
        })
    }
}

/// What the rules need to know about an event an edit, delete or react targets.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct TargetRow {
    pub(super) room_id: String,
    pub(super) seq: i64,
    pub(super) kind: String,
    pub(super) deleted: bool,
    pub(super) from_id: String,
}

impl TargetRow {
    pub(super) fn facts(&self) -> TargetFacts {
        TargetFacts {
            is_text: self.kind == EventKind::Text.as_str(),
            deleted: self.deleted,
            author: self.from_id.clone(),
        }
    }
}
