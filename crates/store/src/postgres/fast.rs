//! A batch of texts in one statement, which commits by itself: when the writer knows every
//! room of the batch and knows every sender to be a member (`room_cache.rs`), it decides the
//! batch from what it knows and writes it with one `UPDATE rooms … RETURNING` guarded by each
//! room's known `last_seq`, and one `INSERT INTO events` of the rooms whose guard held, in one
//! round trip instead of four (begin, lock and read the rooms, write, commit).
//!
//! The guard is the lock: the `UPDATE` takes each room's row lock and moves `last_seq` from
//! the value the batch was decided at, so a room that another node wrote meanwhile is left
//! alone, with its texts; those go through the usual batch (`batch.rs`). A repeated client id
//! fails the whole statement (the unique index), so nothing is written and the batch runs
//! again the usual way, looking its ids up.
//!
//! Only texts of members qualify: a refusal decided from what is known could be out of date,
//! while an append by a member whose room has not moved is exactly what a locked read would
//! have decided.

use std::collections::HashSet;

use sqlx::{PgConnection, Row};

use super::apply::View;
use super::batch::{Kept, bind_events, repeats_client_id};
use super::ops::{Op, Outcome};
use super::rows::signed;
use crate::{Append, RoomInfo, StoreResult};

/// The rooms' guarded update and the events' insert, events as `$1`–`$13` (`bind_events`),
/// rooms as `$14` (ids, sorted: rows are locked in id order), `$15` (the `last_seq` the batch
/// was decided at) and `$16` (the new `last_seq`). Answers the rooms whose guard held.
const WRITE: &str = "WITH moved AS (\
     UPDATE rooms SET last_seq = u.last_seq \
     FROM UNNEST($14::text[], $15::bigint[], $16::bigint[]) AS u(id, known, last_seq) \
     WHERE rooms.id = u.id AND rooms.last_seq = u.known AND rooms.id = ANY($14) \
     RETURNING rooms.id), \
     inserted AS (\
     INSERT INTO events (room_id, seq, id, kind, from_id, from_name, by_id, by_name, body, \
     target, deleted, ts, client_id) \
     SELECT e.* FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::boolean[], \
     $12::bigint[], $13::text[]) AS e(room_id, seq, id, kind, from_id, from_name, by_id, \
     by_name, body, target, deleted, ts, client_id) \
     WHERE e.room_id IN (SELECT id FROM moved) RETURNING 1) \
     SELECT id FROM moved";

/// How the one statement went.
pub(super) enum Fast {
    /// Not tried: the writer does not know enough about the batch.
    NotTried,
    /// Nothing was written: PostgreSQL answered the statement with an error, so its implicit
    /// transaction rolled back; `repeated` if a stored client id was the cause.
    Refused {
        repeated: bool,
        cause: sqlx::Error,
    },
    Written(Written),
}

/// What a batch is decided from: its rooms, and its senders `(room, user)`.
type Facts = (Vec<RoomInfo>, Vec<(String, String)>);

/// What the one statement did.
pub(super) struct Written {
    /// Each command's answer, `None` for those of rooms another node had moved: they are to
    /// run again the usual way.
    pub(super) outcomes: Vec<Option<StoreResult<Outcome>>>,
    /// Events inserted.
    pub(super) events: u64,
}

/// The rooms of `ops` as the writer knows them, and the batch's senders, if the batch
/// qualifies: texts only, every room known, every sender known to be a member, client ids not
/// being looked up.
fn known(ops: &[&Op], kept: &Kept) -> Option<Facts> {
    if kept.looks_up_ids() {
        return None;
    }
    let mut rooms: Vec<RoomInfo> = Vec::new();
    let mut senders = Vec::with_capacity(ops.len());
    let mut seen = HashSet::new();
    for op in ops {
        let Op::Append {
            room_id,
            user,
            append: Append::Text { .. },
        } = op
        else {
            return None;
        };
        let info = kept.rooms.room(room_id)?;
        if kept.rooms.get(room_id, info.room.last_seq, &user.id) != Some(true) {
            return None;
        }
        if seen.insert(room_id.as_str()) {
            rooms.push(info.clone());
        }
        senders.push((room_id.clone(), user.id.clone()));
    }
    Some((rooms, senders))
}

/// Writes `ops` in one statement if the batch qualifies. `Err` means the statement's fate is
/// unknown (no answer came back), as a failed commit's.
pub(super) async fn write(
    conn: &mut PgConnection,
    ops: &[&Op],
    now: i64,
    kept: &mut Kept,
) -> StoreResult<Fast> {
    let Some((rooms, senders)) = known(ops, kept) else {
        return Ok(Fast::NotTried);
    };
    let mut view = View::new(now, rooms, Vec::new(), senders, Vec::new(), Vec::new());
    let outcomes: Vec<_> = ops.iter().map(|op| view.apply(op)).collect();
    if outcomes.iter().any(Result::is_err) {
        // A refusal decided from what is known may be out of date: let a locked read decide.
        return Ok(Fast::NotTried);
    }
    let mut seqs = view.seqs();
    seqs.retain(|(_, from, to)| from != to);
    seqs.sort_unstable();
    let writes = view.into_writes();
    let (ids, known, last): (Vec<&str>, Vec<i64>, Vec<i64>) = seqs
        .iter()
        .map(|(id, from, to)| (id.as_str(), signed(*from), signed(*to)))
        .collect();
    let moved: HashSet<String> = if writes.events.is_empty() {
        HashSet::new()
    } else {
        let query = bind_events(sqlx::query(WRITE), &writes.events)
            .bind(ids)
            .bind(known)
            .bind(last);
        match query.fetch_all(&mut *conn).await {
            Ok(rows) => rows
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<_, _>>()?,
            Err(cause @ sqlx::Error::Database(_)) => {
                let repeated = repeats_client_id(&cause);
                if repeated {
                    kept.repeated_client_id();
                }
                return Ok(Fast::Refused { repeated, cause });
            }
            Err(e) => return Err(e.into()),
        }
    };
    // A room whose guard failed was moved by another node: what is known of it is stale.
    kept.rooms.committed(&seqs, |room| moved.contains(room));
    let events = writes
        .events
        .iter()
        .filter(|e| moved.contains(&e.room))
        .count() as u64;
    let outcomes = ops
        .iter()
        .zip(outcomes)
        .map(|(op, outcome)| moved.contains(op.room_id()).then_some(outcome))
        .collect();
    Ok(Fast::Written(Written { outcomes, events }))
}
