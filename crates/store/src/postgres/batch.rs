//! One batch, one transaction (begun by the writer): create missing DM rooms, lock the batch's rooms in id order,
//! read the facts once, decide every command in memory (`apply`), then write each kind of row
//! with one multi-row statement and commit. A batch of texts is four round trips whatever its
//! size (begin, rooms, events with the rooms' update, commit), plus one for the senders'
//! memberships the writer does not know yet (`room_cache.rs`) and, after a repeat, one for
//! the client ids. (A batch of texts the writer knows all about is one: `fast.rs`.)
//!
//! A text's client id is not looked up before its insert: the unique index on client ids
//! refuses a repeat, and the batch then runs again, this time looking its ids up first (as do
//! the batches after it for a while: repeats come in bursts, when clients reconnect and send
//! again what was not acknowledged).

use std::collections::{HashMap, HashSet};

use confab_protocol::Event;
use sqlx::PgConnection;

use super::apply::{View, Writes};
use super::ops::{Needs, Op, Outcome};
use super::room_cache::RoomCache;
use super::rows::{EventRow, RoomRow, TargetRow, event_columns, room_columns, signed, unsigned};
use crate::{StoreError, StoreResult};

/// Batches that look their client ids up first after one repeated a stored id.
const LOOK_UP_AFTER_REPEAT: u32 = 64;

/// The unique index that refuses a repeated client id.
pub(super) const CLIENT_ID_INDEX: &str = "events_client_id";

/// What a writer keeps from one batch to the next.
#[derive(Default)]
pub(super) struct Kept {
    pub(super) rooms: RoomCache,
    /// Batches still to look their client ids up before inserting.
    look_up_ids: u32,
}

impl Kept {
    /// A batch failed: forget what it may have read.
    pub(super) fn failed(&mut self) {
        self.rooms.clear();
    }

    /// Whether client ids are looked up before inserting (for a while after a repeat).
    pub(super) fn looks_up_ids(&self) -> bool {
        self.look_up_ids > 0
    }

    /// A batch repeated a stored client id: look ids up for the next batches.
    pub(super) fn repeated_client_id(&mut self) {
        self.look_up_ids = LOOK_UP_AFTER_REPEAT;
    }

    /// A batch committed: one fewer to look up.
    pub(super) fn committed(&mut self) {
        self.look_up_ids = self.look_up_ids.saturating_sub(1);
    }
}

/// How a batch's transaction ended.
pub(super) enum Ended {
    Committed(Committed),
    /// The batch repeated a client id already stored: its transaction is aborted (the caller
    /// rolls it back) and it should run again, now looking its ids up.
    RepeatedClientId,
}

/// What a committed batch answered and wrote.
pub(super) struct Committed {
    pub(super) outcomes: Vec<StoreResult<Outcome>>,
    pub(super) events: u64,
    pub(super) event_statements: u64,
}

/// Runs `ops` in the transaction open on `tx` and commits it. `Err` means nothing was
/// committed (as far as this node can tell); every command of the batch then answers
/// `Unavailable`, and the caller closes the connection, which ends the transaction.
pub(super) async fn commit(
    tx: &mut PgConnection,
    ops: &[&Op],
    now: i64,
    kept: &mut Kept,
) -> StoreResult<Ended> {
    let needs = Needs::of(ops);
    create_dm_rooms(tx, &needs, now).await?;
    let look_up_ids = kept.looks_up_ids();
    let mut view = read_facts(tx, &needs, now, &mut kept.rooms, look_up_ids).await?;
    let outcomes: Vec<_> = ops.iter().map(|op| view.apply(op)).collect();
    let seqs = view.seqs();
    let writes = view.into_writes();
    let events = writes.events.len() as u64;
    let Some(event_statements) = write(tx, &writes).await? else {
        if look_up_ids {
            return Err(StoreError::Unavailable(
                "a client id looked up as new was stored already".into(),
            ));
        }
        kept.repeated_client_id();
        return Ok(Ended::RepeatedClientId);
    };
    sqlx::query("COMMIT").execute(&mut *tx).await?;
    kept.committed();
    let changed: HashSet<&str> = (writes.member_inserts.iter().map(|m| m.0.as_str()))
        .chain(writes.member_deletes.iter().map(|m| m.0.as_str()))
        .collect();
    kept.rooms.committed(&seqs, |room| !changed.contains(room));
    Ok(Ended::Committed(Committed {
        outcomes,
        events,
        event_statements,
    }))
}

/// Inserts the rows of DMs whose room does not exist yet (ids sorted, so two nodes creating
/// the same DMs wait for each other in one order).
async fn create_dm_rooms(tx: &mut PgConnection, needs: &Needs, now: i64) -> StoreResult<()> {
    if needs.dm_rooms.is_empty() {
        return Ok(());
    }
    let mut columns: [Vec<String>; 5] = Default::default();
    for (id, key, name, owner) in &needs.dm_rooms {
        columns[0].push(id.clone());
        columns[1].push(name.clone());
        columns[2].push(name.to_lowercase());
        columns[3].push(key.clone());
        columns[4].push(owner.clone());
    }
    let [ids, names, lower, keys, owners] = columns;
    sqlx::query(
        "INSERT INTO rooms (id, name, name_lower, visibility, dm_key, owner, created_ts, \
         member_count, last_seq) \
         SELECT u.id, u.name, u.name_lower, 'private', u.dm_key, u.owner, $6, 0, 0 \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
         AS u(id, name, name_lower, dm_key, owner) ORDER BY u.id \
         ON CONFLICT DO NOTHING",
    )
    .bind(ids)
    .bind(names)
    .bind(lower)
    .bind(keys)
    .bind(owners)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Locks the batch's rooms (in id order: no deadlock between nodes) and reads what the rules
/// need. Every writer locks a room's row before it touches the room's members or events, so
/// what is read here stays true until the commit.
///
/// Batches run on generic plans (see `writer::GENERIC_PLANS`), so every lookup is one index probe per
/// key (`LATERAL (... LIMIT 1)` on a unique index), whatever the tables held when the plan
/// was made: the form `(a, b) IN (SELECT * FROM UNNEST(..))` gets a hash join over a
/// sequential scan whenever the table is small or empty at planning time (measured: 1 ms per
/// batch on a 3,000-row `members`; and, for `events` planned while empty, 7 M rows read in
/// 10 s and appends 3× slower).
async fn read_facts(
    tx: &mut PgConnection,
    needs: &Needs,
    now: i64,
    cache: &mut RoomCache,
    look_up_ids: bool,
) -> StoreResult<View> {
    let mut rooms = Vec::new();
    if !needs.rooms.is_empty() {
        let rows: Vec<RoomRow> = sqlx::query_as(concat!(
            "SELECT ",
            room_columns!(),
            " FROM rooms WHERE id = ANY($1) ORDER BY id FOR UPDATE"
        ))
        .bind(&needs.rooms)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let info = row.into_info(None)?;
            cache.put_room(&info);
            rooms.push(info);
        }
    }
    let seqs: HashMap<&str, u64> = rooms
        .iter()
        .map(|r| (r.room.id.as_str(), r.room.last_seq))
        .collect();
    // Senders whose membership the cache knows at the room's seq need no read.
    let mut senders = Vec::new();
    let mut asked: Vec<(&str, &str, Option<u64>)> = Vec::new();
    for (room, user) in &needs.members {
        asked.push((room, user, seqs.get(room.as_str()).copied()));
    }
    for (room, user) in &needs.senders {
        let seq = seqs.get(room.as_str()).copied();
        match seq.and_then(|seq| cache.get(room, seq, user)) {
            Some(true) => senders.push((room.clone(), user.clone())),
            Some(false) => {}
            None => asked.push((room, user, seq)),
        }
    }
    let mut members = Vec::new();
    if !asked.is_empty() {
        let (room_ids, user_ids): (Vec<&str>, Vec<&str>) =
            asked.iter().map(|(r, u, _)| (*r, *u)).unzip();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT m.room_id, m.user_id, m.read_seq \
             FROM UNNEST($1::text[], $2::text[]) AS u(room_id, user_id) \
             CROSS JOIN LATERAL (SELECT room_id, user_id, read_seq FROM members \
             WHERE room_id = u.room_id AND user_id = u.user_id LIMIT 1) AS m",
        )
        .bind(room_ids)
        .bind(user_ids)
        .fetch_all(&mut *tx)
        .await?;
        let found: HashSet<(&str, &str)> = rows
            .iter()
            .map(|(r, u, _)| (r.as_str(), u.as_str()))
            .collect();
        for (room, user, seq) in &asked {
            if let Some(seq) = seq {
                cache.put(room, *seq, user, found.contains(&(*room, *user)));
            }
        }
        for (room, user, seq) in rows {
            members.push((room, user, unsigned(seq, "a read marker")?));
        }
    }
    let mut targets = Vec::new();
    if !needs.targets.is_empty() {
        let (room_ids, seqs): (Vec<_>, Vec<_>) = needs.targets.iter().cloned().unzip();
        let rows: Vec<TargetRow> = sqlx::query_as(
            "SELECT e.room_id, e.seq, e.kind, e.deleted, e.from_id \
             FROM UNNEST($1::text[], $2::bigint[]) AS u(room_id, seq) \
             CROSS JOIN LATERAL (SELECT room_id, seq, kind, deleted, from_id FROM events \
             WHERE room_id = u.room_id AND seq = u.seq LIMIT 1) AS e",
        )
        .bind(room_ids)
        .bind(seqs)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let key = (row.room_id.clone(), unsigned(row.seq, "a seq")?);
            targets.push((key, row.facts()));
        }
    }
    let mut client_ids = Vec::new();
    if look_up_ids && !needs.client_ids.is_empty() {
        let mut columns: [Vec<String>; 3] = Default::default();
        for (room, from, client) in &needs.client_ids {
            columns[0].push(room.clone());
            columns[1].push(from.clone());
            columns[2].push(client.clone());
        }
        let [room_ids, from_ids, clients] = columns;
        let rows: Vec<EventRow> = sqlx::query_as(concat!(
            "SELECT e.* FROM UNNEST($1::text[], $2::text[], $3::text[]) \
             AS u(room_id, from_id, client_id) CROSS JOIN LATERAL (SELECT ",
            event_columns!(),
            " FROM events WHERE client_id IS NOT NULL AND room_id = u.room_id \
             AND from_id = u.from_id AND client_id = u.client_id LIMIT 1) AS e"
        ))
        .bind(room_ids)
        .bind(from_ids)
        .bind(clients)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            client_ids.push(row.into_event()?);
        }
    }
    Ok(View::new(now, rooms, members, senders, targets, client_ids))
}

/// Sets the rooms' counts and `last_seq` from three arrays given as parameter names.
macro_rules! update_rooms {
    ($ids:literal, $counts:literal, $seqs:literal) => {
        concat!(
            "UPDATE rooms SET member_count = u.member_count, last_seq = u.last_seq FROM UNNEST(",
            $ids,
            "::text[], ",
            $counts,
            "::bigint[], ",
            $seqs,
            "::bigint[]) AS u(id, member_count, last_seq) WHERE rooms.id = u.id AND rooms.id = ANY(",
            $ids,
            ")"
        )
    };
}

/// Inserts the events given as thirteen arrays, `$1` to `$13`.
macro_rules! insert_events {
    () => {
        "INSERT INTO events (room_id, seq, id, kind, from_id, from_name, by_id, by_name, body, \
         target, deleted, ts, client_id) \
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::boolean[], \
         $12::bigint[], $13::text[])"
    };
}

/// The rooms' new counts and seqs, as the arrays `update_rooms!` takes.
type RoomCounts<'a> = (Vec<&'a str>, Vec<i64>, Vec<i64>);

/// Writes what the batch decided, one statement per kind of row, the rooms' update riding in
/// the events' insert when there are events. Returns how many statements inserted events (one,
/// or none), or `None` if the insert found a client id stored already (which aborted the
/// transaction).
async fn write(tx: &mut PgConnection, writes: &Writes) -> StoreResult<Option<u64>> {
    insert_rooms(tx, writes).await?;
    write_members(tx, writes).await?;
    let mut counts: RoomCounts = Default::default();
    for (id, count, seq) in &writes.room_counts {
        counts.0.push(id.as_str());
        counts.1.push(signed(*count));
        counts.2.push(signed(*seq));
    }
    let counts = (!counts.0.is_empty()).then_some(counts);
    let mut statements = 0;
    if !writes.events.is_empty() {
        // The rooms' row update rides in the events' statement: one round trip less.
        if !insert_events(tx, writes, counts).await? {
            return Ok(None);
        }
        statements += 1;
    } else if let Some((ids, counts, seqs)) = counts {
        sqlx::query(update_rooms!("$1", "$2", "$3"))
            .bind(ids)
            .bind(counts)
            .bind(seqs)
            .execute(&mut *tx)
            .await?;
    }
    if !writes.erased.is_empty() {
        let (room_ids, seqs): (Vec<_>, Vec<_>) = writes
            .erased
            .iter()
            .map(|(room, seq)| (room.as_str(), signed(*seq)))
            .unzip();
        for sql in [
            "UPDATE events SET deleted = TRUE, body = NULL WHERE (room_id, seq) IN \
             (SELECT * FROM UNNEST($1::text[], $2::bigint[])) \
             AND room_id = ANY($1) AND seq = ANY($2)",
            "UPDATE events SET deleted = TRUE, body = NULL WHERE kind = 'edit' \
             AND (room_id, target) IN (SELECT * FROM UNNEST($1::text[], $2::bigint[])) \
             AND room_id = ANY($1) AND target = ANY($2)",
        ] {
            sqlx::query(sql)
                .bind(&room_ids)
                .bind(&seqs)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(Some(statements))
}

async fn insert_rooms(tx: &mut PgConnection, writes: &Writes) -> StoreResult<()> {
    if writes.new_rooms.is_empty() {
        return Ok(());
    }
    let mut text: [Vec<&str>; 5] = Default::default();
    let mut numbers: [Vec<i64>; 3] = Default::default();
    let lower: Vec<String> = writes
        .new_rooms
        .iter()
        .map(|r| r.room.name.to_lowercase())
        .collect();
    for (info, lower) in writes.new_rooms.iter().zip(&lower) {
        let room = &info.room;
        text[0].push(&room.id);
        text[1].push(&room.name);
        text[2].push(lower);
        text[3].push(room.visibility.as_str());
        text[4].push(&room.owner);
        numbers[0].push(room.created_ts);
        numbers[1].push(signed(room.member_count));
        numbers[2].push(signed(room.last_seq));
    }
    let [ids, names, lower, visibility, owners] = text;
    let [created, counts, seqs] = numbers;
    sqlx::query(
        "INSERT INTO rooms (id, name, name_lower, visibility, owner, created_ts, member_count, \
         last_seq) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
         $5::text[], $6::bigint[], $7::bigint[], $8::bigint[])",
    )
    .bind(ids)
    .bind(names)
    .bind(lower)
    .bind(visibility)
    .bind(owners)
    .bind(created)
    .bind(counts)
    .bind(seqs)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn write_members(tx: &mut PgConnection, writes: &Writes) -> StoreResult<()> {
    if !writes.member_deletes.is_empty() {
        let (room_ids, user_ids): (Vec<_>, Vec<_>) = writes
            .member_deletes
            .iter()
            .map(|(r, u)| (r.as_str(), u.as_str()))
            .unzip();
        sqlx::query(
            "DELETE FROM members WHERE (room_id, user_id) IN \
             (SELECT * FROM UNNEST($1::text[], $2::text[])) \
             AND room_id = ANY($1) AND user_id = ANY($2)",
        )
        .bind(room_ids)
        .bind(user_ids)
        .execute(&mut *tx)
        .await?;
    }
    if !writes.member_inserts.is_empty() {
        let mut text: [Vec<&str>; 3] = Default::default();
        let mut seqs = Vec::new();
        for (room, user, name, seq) in &writes.member_inserts {
            text[0].push(room);
            text[1].push(user);
            text[2].push(name);
            seqs.push(signed(*seq));
        }
        let [room_ids, user_ids, names] = text;
        sqlx::query(
            "INSERT INTO members (room_id, user_id, user_name, read_seq) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[])",
        )
        .bind(room_ids)
        .bind(user_ids)
        .bind(names)
        .bind(seqs)
        .execute(&mut *tx)
        .await?;
    }
    if !writes.member_updates.is_empty() {
        let mut text: [Vec<&str>; 2] = Default::default();
        let mut seqs = Vec::new();
        for (room, user, seq) in &writes.member_updates {
            text[0].push(room);
            text[1].push(user);
            seqs.push(signed(*seq));
        }
        let [room_ids, user_ids] = text;
        sqlx::query(
            "UPDATE members SET read_seq = u.read_seq \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS u(room_id, user_id, read_seq) \
             WHERE members.room_id = u.room_id AND members.user_id = u.user_id \
             AND members.room_id = ANY($1) AND members.user_id = ANY($2)",
        )
        .bind(room_ids)
        .bind(user_ids)
        .bind(seqs)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Every new event of the batch in one `INSERT … SELECT FROM UNNEST`, with the rooms'
/// update (`counts`) in the same statement. `false` if a client id was stored already.
async fn insert_events(
    tx: &mut PgConnection,
    writes: &Writes,
    counts: Option<RoomCounts<'_>>,
) -> StoreResult<bool> {
    let sql = match counts {
        None => insert_events!(),
        Some(_) => concat!(
            "WITH counted AS (",
            update_rooms!("$14", "$15", "$16"),
            " RETURNING 1) ",
            insert_events!()
        ),
    };
    let query = bind_events(sqlx::query(sql), &writes.events);
    let query = match counts {
        Some((ids, counts, seqs)) => query.bind(ids).bind(counts).bind(seqs),
        None => query,
    };
    match query.execute(&mut *tx).await {
        Ok(_) => Ok(true),
        Err(e) if repeats_client_id(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether a statement failed because a client id was stored already.
pub(super) fn repeats_client_id(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(e) if e.constraint() == Some(CLIENT_ID_INDEX))
}

/// Binds `events` as the thirteen arrays `$1` to `$13`, in the columns' order.
pub(super) fn bind_events<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    events: &'q [Event],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let n = events.len();
    let mut text: [Vec<&str>; 5] = Default::default();
    let mut optional: [Vec<Option<&str>>; 4] = Default::default();
    let (mut seqs, mut targets, mut deleted, mut ts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for e in events {
        text[0].push(&e.room);
        text[1].push(&e.id);
        text[2].push(e.kind.as_str());
        text[3].push(&e.from.id);
        text[4].push(&e.from.name);
        optional[0].push(e.by.as_ref().map(|u| u.id.as_str()));
        optional[1].push(e.by.as_ref().map(|u| u.name.as_str()));
        optional[2].push(e.body.as_deref());
        optional[3].push(e.client_id.as_deref());
        seqs.push(signed(e.seq));
        targets.push(e.target.map(signed));
        deleted.push(e.deleted);
        ts.push(e.ts);
    }
    let [room_ids, ids, kinds, from_ids, from_names] = text;
    let [by_ids, by_names, bodies, client_ids] = optional;
    query
        .bind(room_ids)
        .bind(seqs)
        .bind(ids)
        .bind(kinds)
        .bind(from_ids)
        .bind(from_names)
        .bind(by_ids)
        .bind(by_names)
        .bind(bodies)
        .bind(targets)
        .bind(deleted)
        .bind(ts)
        .bind(client_ids)
}

/// Why a failed batch's commands get `Unavailable`.
pub(super) fn failure_cause(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(cause) => cause.clone(),
        other => other.to_string(),
    }
}
