//! A Bloom filter of the client ids in the `client_ids` table, so that a new id (nearly every
//! id) is known to be new without searching the table: that search was a fifth of what the
//! writer spent on an append.
//!
//! A thread started with the writer scans the table into the filter on a read connection of
//! its own, so opening a large store does not wait for it. Until the filter arrives every
//! lookup searches the table, and the ids the writer adds meanwhile are kept (as hashes) and
//! put into the filter when it does; the scan's snapshot holds everything that was in the table
//! before them. The filter's memory is fixed when it is built; if it fills up far past its
//! size, or the scan fails, or too many ids pile up during the scan, the writer drops it and
//! searches the table every time, which is always correct.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::path::Path;
use std::sync::mpsc;

use fastbloom::BloomFilter;

use super::schema;
use crate::{StoreError, StoreResult};

/// The false-positive rate the filter is sized for.
const FALSE_POSITIVES: f64 = 0.01;

/// Ids the filter is sized for at least (about 1.2 MiB) and at most (about 19 MiB).
const MIN_ITEMS: usize = 1 << 20;
const MAX_ITEMS: usize = 16 << 20;

/// Past this many times its size the filter answers "maybe" to most ids (two out of three):
/// it is dropped.
const OVERFILL: usize = 4;

/// Hashes added while the scan runs, at most (32 MiB).
const PENDING_MAX: usize = 4 << 20;

enum State {
    /// The scan is running; these ids were added since it started.
    Building {
        built: mpsc::Receiver<Option<Scanned>>,
        pending: Vec<u64>,
    },
    /// `items` ids are in the filter, which was sized for `capacity`.
    Ready {
        bloom: BloomFilter,
        items: usize,
        capacity: usize,
    },
    /// No filter: every lookup searches the table.
    Off,
}

/// The filter, as the writer holds it.
pub(super) struct IdFilter {
    state: State,
    hasher: RandomState,
}

impl Default for IdFilter {
    /// No filter at all.
    fn default() -> Self {
        IdFilter {
            state: State::Off,
            hasher: RandomState::new(),
        }
    }
}

impl IdFilter {
    /// Starts scanning the table of the database at `path` (opened and recovered already).
    pub(super) fn start(path: &Path) -> Self {
        let hasher = RandomState::new();
        let (tx, built) = mpsc::channel();
        let (path, scan_hasher) = (path.to_owned(), hasher.clone());
        let spawned = std::thread::Builder::new()
            .name("confab-sqlite-ids".into())
            .spawn(move || {
                let result = scan(&path, &scan_hasher);
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "scanning client ids failed; every id is looked up");
                }
                let _ = tx.send(result.ok());
            });
        match spawned {
            Ok(_) => IdFilter::building(built, hasher),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the client id scan");
                IdFilter::default()
            }
        }
    }

    /// A filter that arrives on `built`, made with `hasher`.
    fn building(built: mpsc::Receiver<Option<Scanned>>, hasher: RandomState) -> Self {
        IdFilter {
            state: State::Building {
                built,
                pending: Vec::new(),
            },
            hasher,
        }
    }

    /// The hash the filter knows an id by.
    pub(super) fn hash(&self, room_id: &str, from_id: &str, client_id: &str) -> u64 {
        hash(&self.hasher, room_id, from_id, client_id)
    }

    /// Whether the table may hold the id: `false` only if it surely does not.
    pub(super) fn may_contain(&mut self, hash: u64) -> bool {
        self.poll();
        match &self.state {
            State::Ready { bloom, .. } => bloom.contains_hash(hash),
            State::Building { .. } | State::Off => true,
        }
    }

    /// Records an id that is (or is about to be) in the table.
    pub(super) fn add(&mut self, hash: u64) {
        self.poll();
        match &mut self.state {
            State::Ready {
                bloom,
                items,
                capacity,
            } => {
                bloom.insert_hash(hash);
                *items += 1;
                if *items > capacity.saturating_mul(OVERFILL) {
                    tracing::info!(ids = *items, "client id filter full; dropped until restart");
                    self.state = State::Off;
                }
            }
            State::Building { pending, .. } => {
                pending.push(hash);
                if pending.len() > PENDING_MAX {
                    tracing::warn!("client id scan too slow; every id is looked up");
                    self.state = State::Off;
                }
            }
            State::Off => {}
        }
    }

    /// Whether the filter is built and in use.
    #[cfg(test)]
    pub(super) fn is_ready(&mut self) -> bool {
        self.poll();
        matches!(self.state, State::Ready { .. })
    }

    /// Takes the scan's filter if it has arrived, adding the ids kept meanwhile.
    fn poll(&mut self) {
        let State::Building { built, pending } = &mut self.state else {
            return;
        };
        self.state = match built.try_recv() {
            Err(mpsc::TryRecvError::Empty) => return,
            Ok(Some(mut scanned)) => {
                for hash in pending.iter() {
                    scanned.bloom.insert_hash(*hash);
                }
                State::Ready {
                    items: scanned.items + pending.len(),
                    bloom: scanned.bloom,
                    capacity: scanned.capacity,
                }
            }
            Ok(None) | Err(mpsc::TryRecvError::Disconnected) => State::Off,
        };
    }
}

fn hash(hasher: &RandomState, room_id: &str, from_id: &str, client_id: &str) -> u64 {
    let mut h = hasher.build_hasher();
    // Room and user ids never hold a NUL, so the pieces cannot run into each other.
    h.write(room_id.as_bytes());
    h.write_u8(0);
    h.write(from_id.as_bytes());
    h.write_u8(0);
    h.write(client_id.as_bytes());
    h.finish()
}

/// What the scan built.
struct Scanned {
    bloom: BloomFilter,
    /// Ids put into it.
    items: usize,
    /// Ids it was sized for.
    capacity: usize,
}

/// Reads every id of the table into a new filter.
fn scan(path: &Path, hasher: &RandomState) -> StoreResult<Scanned> {
    let conn = schema::open_reader(path)?;
    // Every merged id belongs to an event at or below its room's mark.
    let merged: i64 = conn.query_row(
        "SELECT COALESCE(SUM(client_ids_seq), 0) FROM rooms",
        [],
        |r| r.get(0),
    )?;
    let merged = usize::try_from(merged).unwrap_or(MAX_ITEMS);
    let capacity = merged.saturating_mul(2).clamp(MIN_ITEMS, MAX_ITEMS);
    let mut bloom = BloomFilter::with_false_pos(FALSE_POSITIVES).expected_items(capacity);
    let mut stmt = conn.prepare("SELECT room_id, from_id, client_id FROM client_ids")?;
    let mut rows = stmt.query([])?;
    let mut items = 0;
    while let Some(row) = rows.next()? {
        let text = |i| -> StoreResult<&str> {
            row.get_ref(i)?
                .as_str()
                .map_err(|e| StoreError::Corrupt(format!("client_ids: {e}")))
        };
        bloom.insert_hash(hash(hasher, text(0)?, text(1)?, text(2)?));
        items += 1;
    }
    Ok(Scanned {
        bloom,
        items,
        capacity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_holds_the_table_and_the_ids_added_during_the_scan() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("t.db");
        let conn = schema::open_writer(&path, "FULL").expect("opens");
        for n in 0..1000 {
            conn.execute(
                "INSERT INTO client_ids (room_id, from_id, client_id, seq) VALUES ('r', 'u', ?1, ?2)",
                rusqlite::params![format!("c{n}"), n + 1],
            )
            .expect("inserts");
        }
        let hasher = RandomState::new();
        let (tx, built) = mpsc::channel();
        let mut filter = IdFilter::building(built, hasher.clone());
        let during = filter.hash("r", "u", "during");
        assert!(
            filter.may_contain(during),
            "no filter yet: every id may be stored"
        );
        filter.add(during);
        let scanned = scan(&path, &hasher).expect("scans");
        assert_eq!(scanned.items, 1000);
        tx.send(Some(scanned)).expect("sends");

        assert!(filter.is_ready());
        assert!(filter.may_contain(during), "kept while the scan ran");
        for n in 0..1000 {
            assert!(filter.may_contain(filter.hash("r", "u", &format!("c{n}"))));
        }
        let new = (0..1000)
            .filter(|n| !filter.may_contain(filter.hash("r", "u", &format!("new{n}"))))
            .count();
        // Sized for a million ids at 1 % false positives and holding 1,001.
        assert!(new >= 990, "only {new} of 1000 new ids known to be new");
        // The NUL between the pieces keeps ("r", "uc1") apart from ("r", "u", "c1").
        assert_ne!(filter.hash("r", "uc", "1"), filter.hash("r", "u", "c1"));
    }

    #[test]
    fn a_failed_scan_leaves_every_id_to_the_table() {
        let (tx, built) = mpsc::channel();
        let mut filter = IdFilter::building(built, RandomState::new());
        tx.send(None).expect("sends");
        assert!(!filter.is_ready());
        assert!(filter.may_contain(filter.hash("r", "u", "anything")));
    }
}
