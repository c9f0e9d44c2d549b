//! A shard's writer: one task that takes the commands waiting on its channel (up to a bound)
//! and commits them as one batch, then answers each. If the transaction fails, every command
//! of the batch answers `Unavailable`: an `Ok` always means committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};

use super::batch::{self, Ended, Kept, failure_cause};
use super::ops::{Op, Outcome, mismatch};
use crate::{Appended, Change, StoreError, StoreResult};

/// Longest a batch may take before its commands answer `Unavailable` (the server's own
/// statement timeout normally ends it first).
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The writer keeps its connection between batches that follow each other this closely, and
/// otherwise gives it back and takes a freshly checked one for the next batch.
const KEEP_CONNECTION: Duration = Duration::from_secs(5);

/// Where a write's answer goes, typed by what the caller awaits.
pub(super) enum Reply {
    Change(oneshot::Sender<StoreResult<Change>>),
    Appended(oneshot::Sender<StoreResult<Appended>>),
    Read(oneshot::Sender<StoreResult<Option<u64>>>),
}

impl Reply {
    /// Sends the answer; the caller may have gone away, and the write stands either way.
    fn send(self, result: StoreResult<Outcome>) {
        match self {
            Reply::Change(tx) => {
                let _ = tx.send(result.and_then(|o| match o {
                    Outcome::Change(c) => Ok(c),
                    _ => Err(mismatch()),
                }));
            }
            Reply::Appended(tx) => {
                let _ = tx.send(result.and_then(|o| match o {
                    Outcome::Appended(a) => Ok(a),
                    _ => Err(mismatch()),
                }));
            }
            Reply::Read(tx) => {
                let _ = tx.send(result.and_then(|o| match o {
                    Outcome::Read(r) => Ok(r),
                    _ => Err(mismatch()),
                }));
            }
        }
    }
}

/// What the writer receives.
pub(super) enum Command {
    Write {
        op: Op,
        reply: Reply,
    },
    /// Finish the batch in progress, then answer and stop.
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// Counters of a writer's work, for tests and metrics.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) commits: AtomicU64,
    pub(super) writes: AtomicU64,
    pub(super) events: AtomicU64,
    pub(super) event_statements: AtomicU64,
    pub(super) failed_batches: AtomicU64,
    /// Batches run a second time because they repeated a stored client id.
    pub(super) repeated_batches: AtomicU64,
}

/// Runs the writer until it is told to shut down or every sender is gone.
pub(super) async fn run(
    pool: PgPool,
    mut commands: mpsc::Receiver<Command>,
    max_batch: usize,
    counters: std::sync::Arc<Counters>,
) {
    let mut done = None;
    let mut conn = Held::default();
    let mut kept = Kept::default();
    while done.is_none() {
        let Some(first) = commands.recv().await else {
            break;
        };
        let mut batch = Vec::with_capacity(max_batch.min(64));
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Shutdown { done: tx } => done = Some(tx),
                Command::Write { op, reply } => batch.push((op, reply)),
            }
            if done.is_none() && batch.len() < max_batch {
                next = commands.try_recv().ok();
            }
        }
        run_batch(&pool, &mut conn, &mut kept, batch, &counters).await;
    }
    // What is still queued is refused: its callers get "closed".
    commands.close();
    drop(commands);
    if let Some(done) = done {
        let _ = done.send(());
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Begins a batch's transaction, in one round trip. Its statements run on their kept
/// (generic) plans: left to choose, PostgreSQL plans them again at every execution, because
/// a kept plan guesses ten rows per array and a batch usually holds one or two (measured:
/// planning was 23 % of the backends' CPU in a fan-out run). Every statement of a batch is
/// written so that its generic plan probes indexes (`batch.rs`).
const BEGIN: &str = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan";

/// The writer's connection while batches keep coming.
#[derive(Default)]
struct Held {
    conn: Option<PoolConnection<Postgres>>,
    last_used: Option<Instant>,
}

impl Held {
    /// A connection with a transaction begun on it: the one held if it was used recently
    /// and still answers, else a new one from the pool. A failed `BEGIN` has done nothing,
    /// so taking another connection then is safe.
    async fn begin(&mut self, pool: &PgPool) -> StoreResult<&mut PoolConnection<Postgres>> {
        if self.last_used.is_none_or(|t| t.elapsed() > KEEP_CONNECTION) {
            self.conn = None;
        }
        self.last_used = Some(Instant::now());
        if let Some(mut conn) = self.conn.take() {
            match sqlx::raw_sql(BEGIN).execute(&mut *conn).await {
                Ok(_) => return Ok(self.conn.insert(conn)),
                Err(e) => {
                    tracing::debug!(error = %e, "the held connection failed; taking another");
                    conn.close_on_drop();
                }
            }
        }
        let mut conn = pool.acquire().await?;
        if let Err(e) = sqlx::raw_sql(BEGIN).execute(&mut *conn).await {
            conn.close_on_drop();
            return Err(e.into());
        }
        Ok(self.conn.insert(conn))
    }

    /// Closes the connection after a failure: its state is unknown, and closing it ends
    /// its transaction.
    fn discard(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
    }
}

/// Commits one batch and answers its commands.
async fn run_batch(
    pool: &PgPool,
    held: &mut Held,
    kept: &mut Kept,
    batch: Vec<(Op, Reply)>,
    counters: &Counters,
) {
    if batch.is_empty() {
        return;
    }
    let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.into_iter().unzip();
    let refs: Vec<&Op> = ops.iter().collect();
    let now = now_ms();
    let attempt = async {
        loop {
            let tx = held.begin(pool).await?;
            match batch::commit(tx, &refs, now, kept).await? {
                Ended::Committed(committed) => return Ok(committed),
                Ended::RepeatedClientId => {
                    // Looked up this time (`batch::commit` asks for it): it cannot repeat.
                    counters.repeated_batches.fetch_add(1, Ordering::Relaxed);
                    sqlx::query("ROLLBACK").execute(&mut **tx).await?;
                }
            }
        }
    };
    let result = tokio::time::timeout(BATCH_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable("the batch timed out".into())));
    if result.is_err() {
        kept.failed();
        held.discard();
    }
    match result {
        Ok(committed) => {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters
                .writes
                .fetch_add(replies.len() as u64, Ordering::Relaxed);
            counters
                .events
                .fetch_add(committed.events, Ordering::Relaxed);
            counters
                .event_statements
                .fetch_add(committed.event_statements, Ordering::Relaxed);
            for (reply, outcome) in replies.into_iter().zip(committed.outcomes) {
                reply.send(outcome);
            }
        }
        Err(e) => {
            counters.failed_batches.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, writes = replies.len(), "batch not committed");
            let cause = failure_cause(&e);
            for reply in replies {
                reply.send(Err(StoreError::Unavailable(cause.clone())));
            }
        }
    }
}
