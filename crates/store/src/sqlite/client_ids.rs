//! The client ids of texts, so that a retried `send` gets its first `ack` back.
//!
//! A unique index on `events (room_id, from_id, client_id)` put one more dirty page into every
//! commit for each sender in it (each sender's ids sit in a page of their own), and writing
//! those pages was close to half of what an append cost. So the ids live in their own table,
//! `client_ids`, written in bulk: the writer keeps the ids it committed since the last merge
//! in memory and moves them into the table about once a second, sorted, so a sender's page is
//! written once a merge rather than once a commit.
//!
//! A merge goes a few rooms at a time (about 2,048 ids), inside the transactions of the next
//! batches and before their texts: merging 32,768 ids at once held the writer for ~100 ms, and
//! a transaction of its own cost one more fdatasync.
//!
//! Each room's `client_ids_seq` says through which seq its ids are in the table. A merge moves
//! every id a room holds and raises its mark to its `last_seq`; at start-up
//! (`recover`) the ids of events past the mark, committed but not yet merged when the process
//! stopped, are copied from `events`. So a lookup that misses memory and the table is a
//! genuinely new id.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};

use super::id_filter::IdFilter;
use crate::StoreResult;

/// How often committed ids are merged into the table.
const MERGE_EVERY: Duration = Duration::from_secs(1);

/// Ids held in memory above which a merge starts at once (about 6 MiB of keys).
const MERGE_AT: usize = 32_768;

/// Ids merged per batch, about (a room's ids go together, so one busy room may pass it): about
/// 8 ms of the writer's time.
const SLICE: usize = 2_048;

/// Ids held in memory above which every room is merged at once, in a transaction of its own,
/// between batches: slices that fall behind do not let memory grow.
const MERGE_ALL_AT: usize = 4 * MERGE_AT;

/// `room \0 sender \0 client id`: room and user ids never hold a NUL, so this is unambiguous.
type Key = String;

fn key(room_id: &str, from_id: &str, client_id: &str) -> Key {
    let mut k = String::with_capacity(room_id.len() + from_id.len() + client_id.len() + 2);
    k.push_str(room_id);
    k.push('\0');
    k.push_str(from_id);
    k.push('\0');
    k.push_str(client_id);
    k
}

/// What a lookup found.
pub(super) enum Lookup {
    /// The id was used before, by the event at this seq.
    Seen(u64),
    /// A new id; `add` it once its text is inserted.
    New(NewId),
}

/// An id found to be new.
pub(super) struct NewId {
    key: Key,
    hash: u64,
}

/// The writer's ids not yet in the `client_ids` table.
pub(super) struct ClientIds {
    /// Committed, not yet merged: room → key → seq.
    committed: HashMap<String, HashMap<Key, u64>>,
    /// Ids in `committed`.
    committed_len: usize,
    /// Inserted by the transaction in progress.
    batch: HashMap<Key, u64>,
    /// Rooms whose ids the transaction in progress merges.
    merging: Vec<String>,
    /// The rooms of the merge under way not yet merged: each batch merges a slice of them.
    /// Ids that arrive meanwhile in other rooms wait for the next merge, so that each merge
    /// writes a sender's page once.
    draining: Vec<String>,
    /// When the last merge ended (or the writer started): the next is due a second later.
    last_merge: Instant,
    /// Which ids the table surely does not hold.
    filter: IdFilter,
}

impl Default for ClientIds {
    /// Ids without a filter: every id missing from memory is looked up in the table.
    fn default() -> Self {
        ClientIds {
            committed: HashMap::new(),
            committed_len: 0,
            batch: HashMap::new(),
            merging: Vec::new(),
            draining: Vec::new(),
            last_merge: Instant::now(),
            filter: IdFilter::default(),
        }
    }
}

impl ClientIds {
    /// The writer's ids for the database at `path`, with a filter built from its table.
    pub(super) fn with_filter(path: &Path) -> Self {
        ClientIds {
            filter: IdFilter::start(path),
            ..ClientIds::default()
        }
    }

    /// Whether `from_id` already used `client_id` in `room_id`.
    pub(super) fn find(
        &mut self,
        conn: &Connection,
        room_id: &str,
        from_id: &str,
        client_id: &str,
    ) -> StoreResult<Lookup> {
        let k = key(room_id, from_id, client_id);
        let in_memory = self
            .batch
            .get(&k)
            .or_else(|| self.committed.get(room_id).and_then(|ids| ids.get(&k)));
        if let Some(seq) = in_memory {
            return Ok(Lookup::Seen(*seq));
        }
        let hash = self.filter.hash(room_id, from_id, client_id);
        let new = NewId { key: k, hash };
        if !self.filter.may_contain(hash) {
            return Ok(Lookup::New(new));
        }
        let stored: Option<u64> = conn
            .prepare_cached(
                "SELECT seq FROM client_ids WHERE room_id = ?1 AND from_id = ?2 AND client_id = ?3",
            )?
            .query_row([room_id, from_id, client_id], |r| r.get(0))
            .optional()?;
        Ok(match stored {
            Some(seq) => Lookup::Seen(seq),
            None => Lookup::New(new),
        })
    }

    /// Records the id of a text inserted in the transaction in progress.
    pub(super) fn add(&mut self, id: NewId, seq: u64) {
        // In the filter even if the transaction rolls back: a false "maybe" costs one lookup.
        self.filter.add(id.hash);
        self.batch.insert(id.key, seq);
    }

    /// Whether the filter is built and in use.
    #[cfg(test)]
    pub(super) fn filter_ready(&mut self) -> bool {
        self.filter.is_ready()
    }

    /// Makes a merge due now, whatever the clock and the count say.
    #[cfg(test)]
    pub(super) fn merge_soon(&mut self) {
        self.last_merge -= MERGE_EVERY;
    }

    /// Ids held in memory, committed and not merged.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.committed_len
    }

    /// In the batch's transaction, before its first write: merges the ids of a few rooms if a
    /// merge is due. A failed slice is rolled back alone; its ids wait for the next batch.
    pub(super) fn merge_slice(&mut self, conn: &Connection) {
        if !self.due() {
            return;
        }
        let mut rooms = Vec::new();
        let mut ids = 0;
        while let Some(room) = self.draining.pop() {
            let held = self.committed.get(&room).map_or(0, HashMap::len);
            if ids > 0 && ids + held > SLICE {
                self.draining.push(room);
                break;
            }
            if held > 0 {
                ids += held;
                rooms.push(room);
            }
        }
        let slice = rooms
            .iter()
            .filter_map(|room| self.committed.get(room))
            .flat_map(|held| held.iter());
        let savepoint = (
            "SAVEPOINT merge",
            "RELEASE merge",
            "ROLLBACK TO merge; RELEASE merge",
        );
        match merge_within(conn, savepoint, slice) {
            Ok(()) => self.merging = rooms,
            Err(_) => self.draining.extend(rooms),
        }
    }

    /// Whether a merge is under way, starting one over every room held if it is due: a
    /// second after the last merge ended, or at once when many ids are held.
    fn due(&mut self) -> bool {
        if self.draining.is_empty()
            && self.committed_len > 0
            && (self.committed_len >= MERGE_AT || self.last_merge.elapsed() >= MERGE_EVERY)
        {
            self.draining = self.committed.keys().cloned().collect();
        }
        !self.draining.is_empty()
    }

    /// The transaction in progress committed (`true`) or rolled back.
    pub(super) fn end_batch(&mut self, committed: bool) {
        if !committed {
            // The slice was rolled back with the batch: its rooms are merged again.
            self.draining.append(&mut self.merging);
            self.batch.clear();
            return;
        }
        let merged_some = !self.merging.is_empty();
        for room in self.merging.drain(..) {
            if let Some(merged) = self.committed.remove(&room) {
                self.committed_len -= merged.len();
            }
        }
        if merged_some && self.draining.is_empty() {
            self.last_merge = Instant::now();
        }
        // After the merged rooms are gone: this batch's ids came after their marks.
        for (k, seq) in self.batch.drain() {
            let room_len = room_of(&k).len();
            let held = match self.committed.get_mut(&k[..room_len]) {
                Some(held) => held,
                None => self.committed.entry(k[..room_len].to_owned()).or_default(),
            };
            if held.insert(k, seq).is_none() {
                self.committed_len += 1;
            }
        }
    }

    /// Merges every room in a transaction of its own if slices have fallen far behind.
    pub(super) fn merge_if_behind(&mut self, conn: &Connection) {
        if self.committed_len >= MERGE_ALL_AT {
            self.merge(conn);
        }
    }

    /// Moves every committed id into the table in one transaction of its own (between
    /// batches); a failed merge keeps the ids.
    pub(super) fn merge(&mut self, conn: &Connection) {
        if self.committed.is_empty() {
            return;
        }
        let all = self.committed.values().flat_map(|held| held.iter());
        let transaction = ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK");
        if merge_within(conn, transaction, all).is_ok() {
            self.committed.clear();
            self.committed_len = 0;
            self.draining.clear();
            self.last_merge = Instant::now();
        }
    }
}

/// A key's room.
fn room_of(k: &str) -> &str {
    k.split_once('\0').map_or(k, |(room_id, _)| room_id)
}

/// A key's room, sender and client id (the client id, last, may itself hold a NUL).
fn split(k: &str) -> Option<(&str, &str, &str)> {
    let (room_id, rest) = k.split_once('\0')?;
    let (from_id, client_id) = rest.split_once('\0')?;
    Some((room_id, from_id, client_id))
}

/// Runs `write_merge` between `begin` and `end`; if it fails, runs `undo` (unless SQLite has
/// rolled everything back already) and answers the error.
fn merge_within<'a>(
    conn: &Connection,
    (begin, end, undo): (&str, &str, &str),
    ids: impl Iterator<Item = (&'a Key, &'a u64)>,
) -> StoreResult<()> {
    let written = conn
        .execute_batch(begin)
        .map_err(Into::into)
        .and_then(|()| write_merge(conn, ids))
        .and_then(|()| Ok(conn.execute_batch(end)?));
    if let Err(e) = &written {
        tracing::warn!(error = %e, "merging client ids failed; the ids wait in memory");
        if !conn.is_autocommit() {
            let _ = conn.execute_batch(undo);
        }
    }
    written
}

/// Inserts `ids` into the table and raises their rooms' marks, on the open transaction.
fn write_merge<'a>(
    conn: &Connection,
    ids: impl Iterator<Item = (&'a Key, &'a u64)>,
) -> StoreResult<()> {
    let mut rows: Vec<((&str, &str, &str), u64)> =
        ids.filter_map(|(k, seq)| Some((split(k)?, *seq))).collect();
    // In index order, so each page of the table is visited once.
    rows.sort_unstable();
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO client_ids (room_id, from_id, client_id, seq) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut mark = conn.prepare_cached(
        "UPDATE rooms SET client_ids_seq = last_seq WHERE id = ?1 AND client_ids_seq < last_seq",
    )?;
    let mut last_room = None;
    for ((room, from, client_id), seq) in &rows {
        insert.execute(params![room, from, client_id, seq])?;
        if last_room != Some(*room) {
            mark.execute([room])?;
            last_room = Some(*room);
        }
    }
    Ok(())
}

/// Copies into the table the ids of events past their room's mark (committed, not merged),
/// then raises every mark; run at start-up, before the writer takes commands.
pub(super) fn recover(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         INSERT OR IGNORE INTO client_ids (room_id, from_id, client_id, seq)
             SELECT e.room_id, e.from_id, e.client_id, e.seq
             -- CROSS JOIN keeps rooms outside: each room's unmerged tail, not every event.
             FROM rooms r CROSS JOIN events e ON e.room_id = r.id AND e.seq > r.client_ids_seq
             WHERE e.client_id IS NOT NULL;
         UPDATE rooms SET client_ids_seq = last_seq WHERE client_ids_seq < last_seq;
         COMMIT;",
    )
    .inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })?;
    Ok(())
}
