//! WAL checkpoints on a connection of their own, so the writer never stops committing to copy
//! the WAL into the database (SQLite's automatic checkpoint runs inside a commit: 10–40 ms
//! stalls were measured under load).

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::{StoreError, StoreResult};

/// How often the checkpointer copies what the WAL holds into the database.
const EVERY: Duration = Duration::from_millis(500);

/// The running checkpointer; `stop` ends it.
pub(super) struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (PASSIVE: never blocks the writer or readers).
    pub(super) fn start(path: &Path) -> StoreResult<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("confab-sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed; retrying later");
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
