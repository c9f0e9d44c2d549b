//! The client ids of texts, so that a retried `send` gets its first `ack` back.
//!
//! A unique index on `events (room_id, from_id, client_id)` put one more dirty page into every
//! commit for each sender in it (each sender's ids sit in a page of their own), and writing
//! those pages was close to half of what an append cost. So the ids live in their own table,
//! `client_ids`, written in bulk: the writer keeps the ids it committed since the last merge
//! in memory and moves them into the table in one sorted transaction about once a second, so a
//! sender's page is written once a merge rather than once a commit.
//!
//! Each room's `client_ids_seq` says through which seq its ids are in the table. A merge moves
//! every id it holds and raises the merged rooms' mark to their `last_seq`; at start-up
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

/// Ids held in memory above which a merge runs at once (about 6 MiB of keys).
const MERGE_AT: usize = 32_768;

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
    /// Committed since the last merge: key → seq.
    committed: HashMap<Key, u64>,
    /// Inserted by the transaction in progress.
    batch: HashMap<Key, u64>,
    last_merge: Instant,
    /// Which ids the table surely does not hold.
    filter: IdFilter,
}

impl Default for ClientIds {
    /// Ids without a filter: every id missing from memory is looked up in the table.
    fn default() -> Self {
        ClientIds {
            committed: HashMap::new(),
            batch: HashMap::new(),
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
        if let Some(seq) = self.batch.get(&k).or_else(|| self.committed.get(&k)) {
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

    /// The transaction in progress committed (`true`) or rolled back.
    pub(super) fn end_batch(&mut self, committed: bool) {
        if committed {
            self.committed.extend(self.batch.drain());
        } else {
            self.batch.clear();
        }
    }

    /// Merges into the table if a second has passed or many ids wait. Runs between batches;
    /// a failed merge keeps the ids and is tried again later.
    pub(super) fn merge_if_due(&mut self, conn: &Connection) {
        let due = self.committed.len() >= MERGE_AT || self.last_merge.elapsed() >= MERGE_EVERY;
        if due && !self.committed.is_empty() {
            self.merge(conn);
        }
    }

    /// Moves every committed id into the table in one transaction.
    pub(super) fn merge(&mut self, conn: &Connection) {
        self.last_merge = Instant::now();
        if self.committed.is_empty() {
            return;
        }
        match write_merge(conn, &self.committed) {
            Ok(()) => self.committed.clear(),
            Err(e) => {
                tracing::warn!(error = %e, ids = self.committed.len(), "merging client ids failed");
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
            }
        }
    }
}

/// A key's room, sender and client id (the client id, last, may itself hold a NUL).
fn split(k: &str) -> Option<(&str, &str, &str)> {
    let (room_id, rest) = k.split_once('\0')?;
    let (from_id, client_id) = rest.split_once('\0')?;
    Some((room_id, from_id, client_id))
}

fn write_merge(conn: &Connection, ids: &HashMap<Key, u64>) -> StoreResult<()> {
    let mut rows: Vec<((&str, &str, &str), u64)> = ids
        .iter()
        .filter_map(|(k, seq)| Some((split(k)?, *seq)))
        .collect();
    // In index order, so each page of the table is visited once.
    rows.sort_unstable();
    conn.execute_batch("BEGIN IMMEDIATE")?;
    {
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
    }
    conn.execute_batch("COMMIT")?;
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
