//! Plain reads on one database: the directory's users and tokens, and a shard's rooms,
//! members and events.

use confab_protocol::{Room, UserRef};
use sqlx::PgPool;

use super::rows::{EventRow, RoomRow, event_columns, room_columns, signed, unsigned};
use crate::{EventRange, Page, RoomInfo, StoreResult, TokenRecord, UserRecord};

/// The user with this exact (folded) name.
pub(super) async fn user_by_name(dir: &PgPool, name: &str) -> StoreResult<Option<UserRecord>> {
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT id, name, password_hash FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(dir)
            .await?;
    Ok(row.map(|(id, name, password_hash)| UserRecord {
        user: UserRef { id, name },
        password_hash,
    }))
}

/// The user with this id.
pub(super) async fn user_by_id(dir: &PgPool, id: &str) -> StoreResult<Option<UserRef>> {
    let row: Option<(String, String)> = sqlx::query_as("SELECT id, name FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(dir)
        .await?;
    Ok(row.map(|(id, name)| UserRef { id, name }))
}

/// A token with its user.
pub(super) async fn token(dir: &PgPool, hash: &str) -> StoreResult<Option<TokenRecord>> {
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT u.id, u.name, t.expires_ts FROM tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.hash = $1",
    )
    .bind(hash)
    .fetch_optional(dir)
    .await?;
    Ok(row.map(|(id, name, expires_ts)| TokenRecord {
        user: UserRef { id, name },
        expires_ts,
    }))
}

/// The shards that hold, or once held, rooms of the user.
pub(super) async fn user_shards(dir: &PgPool, user_id: &str) -> StoreResult<Vec<usize>> {
    let shards: Vec<i32> =
        sqlx::query_scalar("SELECT shard FROM user_shards WHERE user_id = $1 ORDER BY shard")
            .bind(user_id)
            .fetch_all(dir)
            .await?;
    Ok(shards
        .into_iter()
        .filter_map(|s| usize::try_from(s).ok())
        .collect())
}

/// The room of a DM key, if one was ever claimed.
pub(super) async fn dm_room(dir: &PgPool, dm_key: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT room_id FROM dms WHERE dm_key = $1")
            .bind(dm_key)
            .fetch_optional(dir)
            .await?,
    )
}

/// A room, with no `read_seq`.
pub(super) async fn room(shard: &PgPool, room_id: &str) -> StoreResult<Option<RoomInfo>> {
    let row: Option<RoomRow> = sqlx::query_as(concat!(
        "SELECT ",
        room_columns!(),
        " FROM rooms WHERE id = $1"
    ))
    .bind(room_id)
    .fetch_optional(shard)
    .await?;
    row.map(|r| r.into_info(None)).transpose()
}

/// A member's read marker, `None` for a non-member.
pub(super) async fn membership(
    shard: &PgPool,
    room_id: &str,
    user_id: &str,
) -> StoreResult<Option<u64>> {
    let seq: Option<i64> =
        sqlx::query_scalar("SELECT read_seq FROM members WHERE room_id = $1 AND user_id = $2")
            .bind(room_id)
            .bind(user_id)
            .fetch_optional(shard)
            .await?;
    seq.map(|s| unsigned(s, "a read marker")).transpose()
}

/// The user's rooms in one shard, with their read markers.
pub(super) async fn rooms_of(shard: &PgPool, user_id: &str) -> StoreResult<Vec<Room>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        room: RoomRow,
        read_seq: i64,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT r.id, r.name, r.visibility, r.owner, r.created_ts, r.member_count, r.last_seq, \
         r.dm_key IS NOT NULL AS dm, m.read_seq \
         FROM members m JOIN rooms r ON r.id = m.room_id WHERE m.user_id = $1 ORDER BY r.id",
    )
    .bind(user_id)
    .fetch_all(shard)
    .await?;
    rows.into_iter()
        .map(|row| {
            let read_seq = unsigned(row.read_seq, "a read marker")?;
            Ok(row.room.into_info(Some(read_seq))?.room)
        })
        .collect()
}

/// Public rooms of one shard whose lower-cased name contains the lower-cased query, taken
/// literally (`strpos`, so `%`, `_` and `\` need no escaping).
pub(super) async fn public_rooms(
    shard: &PgPool,
    query: &str,
    limit: u32,
) -> StoreResult<Vec<Room>> {
    let rows: Vec<RoomRow> = sqlx::query_as(concat!(
        "SELECT ",
        room_columns!(),
        " FROM rooms WHERE visibility = 'public' AND strpos(name_lower, $1) > 0 \
         ORDER BY name_lower, id LIMIT $2"
    ))
    .bind(query.to_lowercase())
    .bind(i64::from(limit))
    .fetch_all(shard)
    .await?;
    rows.into_iter()
        .map(|r| Ok(r.into_info(None)?.room))
        .collect()
}

/// The members of a room, by name.
pub(super) async fn members(shard: &PgPool, room_id: &str) -> StoreResult<Vec<UserRef>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT user_id, user_name FROM members WHERE room_id = $1 ORDER BY user_name",
    )
    .bind(room_id)
    .fetch_all(shard)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name)| UserRef { id, name })
        .collect())
}

/// A page of events; one row more than asked tells whether more lie beyond.
pub(super) async fn events(
    shard: &PgPool,
    room_id: &str,
    range: EventRange,
    limit: u32,
) -> StoreResult<Page> {
    let (sql, bound) = match range {
        EventRange::Newest => (
            concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE room_id = $1 AND seq >= $2 ORDER BY seq DESC LIMIT $3"
            ),
            0,
        ),
        EventRange::Before(s) => (
            concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
            ),
            s,
        ),
        EventRange::After(s) => (
            concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE room_id = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3"
            ),
            s,
        ),
    };
    let want = i64::from(limit) + 1;
    // A client's seq may exceed BIGINT; past the end is the same as the end.
    let rows: Vec<EventRow> = sqlx::query_as(sql)
        .bind(room_id)
        .bind(signed(bound))
        .bind(want)
        .fetch_all(shard)
        .await?;
    let has_more = rows.len() as i64 == want;
    let mut events = rows
        .into_iter()
        .map(EventRow::into_event)
        .collect::<StoreResult<Vec<_>>>()?;
    events.truncate(limit as usize);
    Ok(Page { events, has_more })
}
