//! Making commits durable, off the writer thread when that lets the writer go on. The writer
//! commits with SQLite's `synchronous = NORMAL` (no sync inside the commit) and hands each
//! batch here. When more writes are waiting, the batch goes to this module's thread, which
//! fdatasyncs the WAL once for every batch that arrived meanwhile and then answers them, so
//! the writer builds its next batch while the disk syncs the last one (PostgreSQL's WAL flush
//! works the same way). When nothing is waiting, the writer syncs and answers itself, which
//! saves the hand-over between threads.
//!
//! Readers see a commit as soon as it is made, before it is synced. A read that may have seen
//! a commit therefore waits until that commit is synced before it answers (`Synced::settle`):
//! no client is shown an event that a power loss could take back and give to another message.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use tokio::sync::watch;

use super::writer::{Batch, Counters};
use crate::{StoreError, StoreResult};

/// Committed batches waiting for their sync; past this the writer waits (memory stays bounded
/// when the disk stalls).
const QUEUE: usize = 8;

/// How far commits are synced; `failed` once a sync failed (nothing after it is answered).
#[derive(Debug, Clone, Copy, Default)]
struct Watermark {
    through: u64,
    failed: bool,
}

/// The readers' side: how far commits are synced.
#[derive(Debug, Clone)]
pub(super) struct Synced {
    /// The writer's counters: `begun` numbers its commits (`Batch::number`).
    counters: Arc<Counters>,
    watermark: watch::Receiver<Watermark>,
    /// False when commits are not synced at all (`synchronous = normal`): nothing to wait for.
    waits: bool,
}

impl Synced {
    /// Called after a read: waits until every commit the read may have seen is synced. A
    /// commit is numbered before it becomes visible, so the number loaded here covers it.
    pub(super) async fn settle(&self) -> StoreResult<()> {
        if !self.waits {
            return Ok(());
        }
        let seen = self.counters.begun.load(Ordering::SeqCst);
        let mut watermark = self.watermark.clone();
        let reached = watermark
            .wait_for(|w| w.through >= seen || w.failed)
            .await
            .map_err(|_| StoreError::Unavailable("closed".into()))?;
        if reached.through >= seen {
            Ok(())
        } else {
            Err(sync_failed())
        }
    }
}

/// The error of every write and read that a failed sync leaves unanswerable.
pub(super) fn sync_failed() -> StoreError {
    StoreError::Unavailable("the disk failed to sync the database".into())
}

/// What the writer and the sync thread share.
struct Shared {
    /// The WAL, or `None` when commits are not synced.
    wal: Option<File>,
    watermark: watch::Sender<Watermark>,
    /// Batches handed to the thread and not yet answered.
    queued: AtomicUsize,
}

/// The writer's side; `stop` answers what is queued and ends the thread.
pub(super) struct Syncer {
    shared: Arc<Shared>,
    batches: mpsc::SyncSender<Batch>,
    thread: JoinHandle<()>,
}

impl Syncer {
    /// Starts syncing `wal` (the database's `-wal` file) after each commit, or, with `None`,
    /// answering each batch as soon as it is committed.
    pub(super) fn start(
        wal: Option<&Path>,
        counters: Arc<Counters>,
    ) -> StoreResult<(Syncer, Synced)> {
        let wal = match wal {
            Some(path) => Some(File::open(path).map_err(|e| {
                StoreError::Unavailable(format!("cannot open {} to sync it: {e}", path.display()))
            })?),
            None => None,
        };
        let (watermark, receiver) = watch::channel(Watermark::default());
        let synced = Synced {
            counters,
            watermark: receiver,
            waits: wal.is_some(),
        };
        let shared = Arc::new(Shared {
            wal,
            watermark,
            queued: AtomicUsize::new(0),
        });
        let (batches, queue) = mpsc::sync_channel(QUEUE);
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("confab-sqlite-sync".into())
            .spawn(move || run(&thread_shared, &queue))
            .map_err(|e| StoreError::Unavailable(format!("starting the syncer: {e}")))?;
        let syncer = Syncer {
            shared,
            batches,
            thread,
        };
        Ok((syncer, synced))
    }

    /// True once a sync has failed: the writer takes no more writes.
    pub(super) fn failed(&self) -> bool {
        self.shared.watermark.borrow().failed
    }

    /// Makes `batch` durable and answers it: on this thread if `alone` (no write is waiting)
    /// and no earlier batch is still queued (answers stay in commit order), else on the sync
    /// thread (waiting while `QUEUE` batches are queued).
    pub(super) fn hand(&self, batch: Batch, alone: bool) {
        if alone && self.shared.queued.load(Ordering::Acquire) == 0 {
            settle(&self.shared, vec![batch]);
            return;
        }
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::SendError(batch)) = self.batches.send(batch) {
            // The thread is gone (it panicked): nothing more can be known to be durable, and
            // readers waiting for the watermark must not wait for ever.
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            self.shared.watermark.send_modify(|w| w.failed = true);
            batch.answer(Some(&sync_failed()));
        }
    }

    /// Answers every queued batch, then ends the thread.
    pub(super) fn stop(self) {
        drop(self.batches);
        if self.thread.join().is_err() {
            tracing::error!("the SQLite sync thread panicked");
        }
    }
}

fn run(shared: &Shared, queue: &mpsc::Receiver<Batch>) {
    while let Ok(first) = queue.recv() {
        let batches: Vec<Batch> = std::iter::once(first).chain(queue.try_iter()).collect();
        let count = batches.len();
        settle(shared, batches);
        shared.queued.fetch_sub(count, Ordering::AcqRel);
    }
}

/// Syncs the WAL once for `batches` (if any committed), moves the watermark and answers them.
fn settle(shared: &Shared, batches: Vec<Batch>) {
    let mut failed = shared.watermark.borrow().failed;
    if !failed
        && let Some(wal) = &shared.wal
        && batches.iter().any(Batch::committed)
        && let Err(e) = sync(wal)
    {
        // After a failed fsync the kernel may have dropped the unwritten pages; no later sync
        // can vouch for them, so the store stops taking writes (a restart recovers the WAL
        // from what the disk holds).
        tracing::error!(error = %e, "syncing the SQLite WAL failed; the store takes no more writes");
        failed = true;
    }
    // After a failure the watermark stays where it was: whatever read the unsynced commits
    // gets an error, not an answer.
    let through = batches.iter().filter_map(Batch::number).max().unwrap_or(0);
    shared.watermark.send_modify(|w| {
        if !failed {
            w.through = w.through.max(through);
        }
        w.failed |= failed;
    });
    let failure = failed.then(sync_failed);
    for batch in batches {
        batch.answer(failure.as_ref());
    }
}

#[cfg(test)]
#[path = "syncer_tests.rs"]
mod tests;

/// fdatasyncs the WAL, refusing if SQLite has deleted it (it does so only when its last
/// connection closes, and the writer's stays open while the syncer runs).
fn sync(wal: &File) -> std::io::Result<()> {
    if wal.metadata()?.nlink() == 0 {
        return Err(std::io::Error::other("the WAL file was deleted"));
    }
    wal.sync_data()
}
