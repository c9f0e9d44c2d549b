//! WAL checkpoints on a connection of their own, so the writer never stops committing to copy
//! the WAL into the database (SQLite's automatic checkpoint runs inside a commit: 10–40 ms
//! stalls were measured under load).
//!
//! A checkpoint that runs while the writer keeps committing never catches up with it, and the
//! WAL only starts over from its beginning when a write begins with every frame copied. Under
//! steady load it then grows without bound (200 MB in 12 s was measured), and every frame is
//! written to a newly allocated block. So when the WAL is long, the checkpointer asks the
//! writer to copy the last few frames itself, between two batches (`WalReset`): its next
//! batch rewrites the WAL from the start.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::{StoreError, StoreResult};

/// How often the checkpointer copies what the WAL holds into the database.
const EVERY: Duration = Duration::from_millis(500);

/// WAL frames (pages) above which the writer is asked to finish the checkpoint: 16 MiB at
/// the default page size.
const LONG_WAL_FRAMES: i64 = 4096;

/// The request from the checkpointer to the writer to copy the WAL's last frames itself.
#[derive(Debug, Default)]
pub(super) struct WalReset(AtomicBool);

impl WalReset {
    /// Called by the writer between batches: runs the checkpoint if it was asked for.
    pub(super) fn run_if_asked(&self, conn: &Connection) {
        if self.0.swap(false, Ordering::AcqRel)
            && let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "WAL checkpoint on the writer failed");
        }
    }

    pub(super) fn ask(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The running checkpointer; `stop` ends it.
pub(super) struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (PASSIVE: never blocks the writer or
    /// readers), asking the writer through `reset` when the WAL stays long.
    pub(super) fn start(path: &Path, reset: Arc<WalReset>) -> StoreResult<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("confab-sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    // Columns: busy, frames in the WAL, frames copied into the database.
                    match conn
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
                    {
                        Ok(frames) if frames > LONG_WAL_FRAMES => reset.ask(),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "WAL checkpoint failed; retrying later")
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("starting the checkpointer: {e}")))?;
        Ok(Checkpointer { stop, thread })
    }

    /// Stops it and waits for the checkpoint in progress.
    pub(super) fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the SQLite checkpoint thread panicked");
        }
    }
}
