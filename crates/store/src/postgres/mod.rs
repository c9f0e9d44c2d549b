//! PostgreSQL back end, sharded by room: a pool and a group-commit writer per database.
//!
//! # Where things live
//! - **Shard map.** The configuration lists the shards' URLs; shard 0 comes first. A room's
//!   shard is picked (uniformly) when it is created and written into its id, `r<shard>_<16
//!   random>` (SQLite's `r_…` means shard 0). Nothing ever moves: adding a URL at the end only
//!   adds a place for new rooms. Each database records its own place in the list
//!   (`confab_shard`) and refuses to open in another one, so a reordered list fails loudly.
//! - **Every shard** holds its rooms, their members (with the member's name, for `members`)
//!   and their events: everything a room's writes read and write, so the rule check, the rows
//!   and the events commit in one transaction on one database.
//! - **Shard 0** also holds the directory: `users`, `tokens`, `dms (dm_key → room_id)` and
//!   `user_shards (user_id, shard)`, the shards where a user has, or once had, rooms.
//!
//! # Why a crash leaves nothing wrong
//! Writes that touch both the directory and a room's shard write the directory first, and
//! only facts that stay true whatever happens next:
//! - `user_shards` is written before any shard transaction that may make the user a member
//!   (create, join, add, DM) and is never deleted. It is therefore always a superset; a crash
//!   between the two leaves only an extra shard for `rooms_of` to ask, and `rooms_of` reads
//!   the memberships themselves from those shards, so it is exact. (A per-room index would
//!   have to be removed on leave, and that removal, racing a re-join through another node,
//!   could drop a real membership; an index that only grows has no such race.)
//! - `dms` gives a DM key its room id before the room exists (`INSERT … ON CONFLICT DO
//!   NOTHING`, then read the winner), so a key has one room across all shards. The room row is
//!   created, if missing, inside the shard transaction that writes the joins, so a crash after
//!   the claim only delays the room until the DM is opened again.
//! - Users are never deleted, so "this user exists" read from the directory before a shard
//!   transaction stays true in it.
//!
//! # Group commit, with several nodes
//! Each shard has a few writer tasks per node (`writer`, `StoreOptions::pg_writers`), each
//! taking the writes of its share of the rooms (a room's writes always go to the same one, so
//! they stay in order). A writer takes what is waiting and runs it as one transaction
//! (`batch`): create missing DM rooms, lock the batch's room rows in id order (`FOR UPDATE`:
//! nodes and writers serialize per room, without deadlocks), read members, targets
//! and stored client ids in one query each, decide every command in memory against those facts
//! as earlier commands change them (`ops`, `apply`: a refused command changes nothing and fails
//! alone), then write each kind of row with one `UNNEST` statement (all the batch's events in
//! one insert) and the rooms' new `last_seq` in one update. Since every writer locks a room
//! before it reads or writes the room's members or events, seqs are contiguous across nodes.
//! If the transaction fails, every command of the batch answers `Unavailable`.
//!
//! A batch of texts whose rooms and senders the writer already knows (`room_cache`, valid
//! only at the `last_seq` it was read at) skips the reads: one statement that commits by
//! itself (`fast`) updates each room's `last_seq` only where it still has the known value
//! (taking the same row lock, so the argument above holds) and inserts the events of the rooms
//! it updated. The texts of rooms another node moved go through the transaction above. An
//! error answered by PostgreSQL means the statement rolled back, so the batch goes through
//! the transaction above too; no answer at all means its fate is unknown: `Unavailable`.
//!
//! # Failures
//! Waiting for a connection is bounded (2 s) and so are statements (10 s) and a whole batch
//! (30 s): an unreachable database answers `Unavailable` within seconds. The writer keeps its
//! connection while batches follow closely; a `BEGIN` that fails on it (killed while idle) is
//! retried once on a fresh, checked connection (and a one-statement batch that PostgreSQL
//! refuses falls back to a transaction on a fresh connection), and any later failure closes
//! the connection, which rolls the transaction back. When the database is back, the pool
//! reconnects.

mod apply;
mod apply_membership;
#[cfg(test)]
mod apply_tests;
mod batch;
mod directory;
mod fast;
mod ops;
mod read;
mod room_cache;
mod rows;
mod schema;
mod shard;
mod store_impl;
mod writer;

pub use shard::{is_postgres_url, split_urls};

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::{StoreError, StoreOptions, StoreResult};
use ops::Op;
use writer::{Command, Counters, Reply};

use apply::{NO_ROOM, NO_USER};

/// Most (user, shard) pairs a node remembers as already in `user_shards`.
const NOTED_CAP: usize = 100_000;

/// The PostgreSQL store. Cheap to share behind an `Arc`; `close` it before the process ends.
pub struct PgStore {
    shards: Vec<Shard>,
    closed: AtomicBool,
    /// `user_shards` rows this node knows exist (they are never deleted).
    noted: Mutex<HashSet<(String, usize)>>,
}

/// One database: its pool and its writers.
struct Shard {
    pool: PgPool,
    /// A room's writes always go to the same writer (`lane_of`), so they stay in order; the
    /// writers commit at the same time, each holding its own rooms' locks.
    lanes: Vec<Lane>,
    counters: Arc<Counters>,
}

/// One group-commit writer of a shard.
struct Lane {
    commands: mpsc::Sender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Shard {
    /// The writer that takes the writes of `room_id` (FNV-1a of the id: stable and cheap).
    fn lane_of(&self, room_id: &str) -> &Lane {
        let hash = room_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let count = u64::try_from(self.lanes.len()).unwrap_or(1).max(1);
        let index = usize::try_from(hash % count).unwrap_or(0);
        &self.lanes[index]
    }
}

/// What the writers of all shards have done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgWriterStats {
    /// Transactions committed.
    pub commits: u64,
    /// Writes answered from committed transactions (successes and rule refusals alike).
    pub writes: u64,
    /// Events inserted.
    pub events: u64,
    /// `INSERT INTO events` statements run: at most one per commit.
    pub event_statements: u64,
    /// Batches whose transaction failed.
    pub failed_batches: u64,
    /// Batches run twice because a text repeated a client id already stored.
    pub repeated_batches: u64,
    /// Commits made by one statement, from what the writer knew (the rest of `commits` read
    /// the rooms first).
    pub fast_commits: u64,
}

fn closed() -> StoreError {
    StoreError::Unavailable("closed".into())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl PgStore {
    /// Opens every shard (shard 0 first, also the directory), migrates it and starts its
    /// writer.
    pub async fn connect(urls: &[String], options: &StoreOptions) -> StoreResult<PgStore> {
        if urls.is_empty() {
            return Err(StoreError::Config("no PostgreSQL URL".into()));
        }
        let max_batch = options.max_batch.max(1);
        // Each writer holds a connection while batches keep coming: leave some for reads.
        let writers = options
            .pg_writers
            .clamp(1, options.pool_size.saturating_sub(2).max(1));
        let mut shards = Vec::with_capacity(urls.len());
        for (index, url) in urls.iter().enumerate() {
            let pool = schema::open_pool(url, options).await?;
            if let Err(e) = schema::migrate(&pool, index).await {
                pool.close().await;
                return Err(e);
            }
            let counters = Arc::new(Counters::default());
            let lanes = (0..writers)
                .map(|_| {
                    let (tx, rx) = mpsc::channel(max_batch.saturating_mul(2));
                    let task = tokio::spawn(writer::run(
                        pool.clone(),
                        rx,
                        max_batch,
                        Arc::clone(&counters),
                    ));
                    Lane {
                        commands: tx,
                        writer: Mutex::new(Some(task)),
                    }
                })
                .collect();
            shards.push(Shard {
                pool,
                lanes,
                counters,
            });
        }
        Ok(PgStore {
            shards,
            closed: AtomicBool::new(false),
            noted: Mutex::new(HashSet::new()),
        })
    }

    /// How many shards this store writes new rooms to.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// What the writers have committed so far, all shards together.
    pub fn writer_stats(&self) -> PgWriterStats {
        let mut stats = PgWriterStats::default();
        for shard in &self.shards {
            let c = &shard.counters;
            stats.commits += c.commits.load(Ordering::Relaxed);
            stats.writes += c.writes.load(Ordering::Relaxed);
            stats.events += c.events.load(Ordering::Relaxed);
            stats.event_statements += c.event_statements.load(Ordering::Relaxed);
            stats.failed_batches += c.failed_batches.load(Ordering::Relaxed);
            stats.repeated_batches += c.repeated_batches.load(Ordering::Relaxed);
            stats.fast_commits += c.fast_commits.load(Ordering::Relaxed);
        }
        stats
    }

    fn open(&self) -> StoreResult<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(closed())
        } else {
            Ok(())
        }
    }

    /// The directory's pool (shard 0), unless the store is closed.
    fn dir(&self) -> StoreResult<&PgPool> {
        self.open()?;
        Ok(&self.shards[0].pool)
    }

    /// The shard a room id names, `None` if it names none of ours.
    fn shard_of(&self, room_id: &str) -> StoreResult<Option<(usize, &Shard)>> {
        self.open()?;
        Ok(shard::shard_of(room_id).and_then(|i| Some((i, self.shards.get(i)?))))
    }

    /// The shard of a room being written: an id of no shard is no such room.
    fn writing(&self, room_id: &str) -> StoreResult<(usize, &Shard)> {
        self.shard_of(room_id)?.ok_or(NO_ROOM.into())
    }

    /// Sends an operation to a shard's writer and waits for its answer.
    async fn write<T>(
        &self,
        shard: &Shard,
        op: Op,
        reply: fn(oneshot::Sender<StoreResult<T>>) -> Reply,
    ) -> StoreResult<T> {
        self.open()?;
        let lane = shard.lane_of(op.room_id());
        let (tx, answer) = oneshot::channel();
        let command = Command::Write {
            op,
            reply: reply(tx),
        };
        lane.commands.send(command).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Records in the directory that `user_id` may have rooms in shard `index`, once per node.
    async fn note(&self, user_id: &str, index: usize) -> StoreResult<()> {
        let key = (user_id.to_owned(), index);
        if self.noted.lock().is_ok_and(|n| n.contains(&key)) {
            return Ok(());
        }
        directory::note_user_shard(self.dir()?, user_id, index).await?;
        if let Ok(mut noted) = self.noted.lock() {
            if noted.len() >= NOTED_CAP {
                noted.clear();
            }
            noted.insert(key);
        }
        Ok(())
    }
}
