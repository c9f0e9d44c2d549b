//! A shard's writer: one task that takes the commands waiting on its channel (up to a bound)
//! and commits them as one batch, then answers each. If the transaction fails, every command
//! of the batch answers `Unavailable`: an `Ok` always means committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};

use super::batch::{self, Ended, Kept, failure_cause};
use super::fast::{self, Fast};
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
    /// Commits made by one statement (`fast.rs`).
    pub(super) fast_commits: AtomicU64,
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

/// Set on each connection a writer takes (and undone when it gives the connection back to the
/// pool, or the connection is closed): a writer's statements run on their kept (generic)
/// plans. Left to choose, PostgreSQL plans them again at every execution, because a kept plan
/// guesses ten rows per array and a batch usually holds one or two (measured: planning was
/// 23 % of the backends' CPU in a fan-out run). Every statement of a batch is written so that
/// its generic plan probes indexes (`batch.rs`, `fast.rs`).
const GENERIC_PLANS: &str = "SET plan_cache_mode = force_generic_plan";

/// Undoes `GENERIC_PLANS` before a connection goes back to the pool, for the readers.
const READER_PLANS: &str = "RESET plan_cache_mode";

/// The writer's connection while batches keep coming.
#[derive(Default)]
struct Held {
    conn: Option<PoolConnection<Postgres>>,
    last_used: Option<Instant>,
}

impl Held {
    /// The connection held if it was used recently, else a new one from the pool.
    async fn conn(&mut self, pool: &PgPool) -> StoreResult<&mut PoolConnection<Postgres>> {
        if self.last_used.is_none_or(|t| t.elapsed() > KEEP_CONNECTION) {
            self.release().await;
        }
        self.last_used = Some(Instant::now());
        if self.conn.is_none() {
            let mut conn = pool.acquire().await?;
            if let Err(e) = sqlx::raw_sql(GENERIC_PLANS).execute(&mut *conn).await {
                conn.close_on_drop();
                return Err(e.into());
            }
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("no connection".into()))
    }

    /// A connection with a transaction begun on it. A failed `BEGIN` has done nothing, so
    /// taking another connection then is safe.
    async fn begin(&mut self, pool: &PgPool) -> StoreResult<&mut PoolConnection<Postgres>> {
        let held = self.conn.is_some();
        let begun = {
            let conn = self.conn(pool).await?;
            sqlx::raw_sql("BEGIN").execute(&mut **conn).await
        };
        match begun {
            Ok(_) => {}
            Err(e) if held => {
                tracing::debug!(error = %e, "the held connection failed; taking another");
                self.discard();
                let conn = self.conn(pool).await?;
                sqlx::raw_sql("BEGIN").execute(&mut **conn).await?;
            }
            Err(e) => {
                self.discard();
                return Err(e.into());
            }
        }
        self.conn(pool).await
    }

    /// Gives the connection back to the pool with the writer's setting undone; closes it if
    /// that fails.
    async fn release(&mut self) {
        if let Some(mut conn) = self.conn.take()
            && sqlx::raw_sql(READER_PLANS)
                .execute(&mut *conn)
                .await
                .is_err()
        {
            conn.close_on_drop();
        }
    }

    /// Closes the connection: after a failure its state is unknown (closing it ends its
    /// transaction), and it is never given back to the pool with the writer's setting.
    fn discard(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Commits one batch and answers its commands: in one statement if the writer knows
/// everything it needs (`fast.rs`), else (and for the commands of rooms another node moved
/// meanwhile) in a transaction that reads first (`batch.rs`).
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
    let fast = async {
        let conn = held.conn(pool).await?;
        fast::write(conn, &refs, now, kept).await
    };
    let fast = within_batch_timeout(fast).await;
    let mut answers: Vec<Option<StoreResult<Outcome>>> = match fast {
        Ok(Fast::Written(written)) => {
            if written.events > 0 {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters.fast_commits.fetch_add(1, Ordering::Relaxed);
                counters.event_statements.fetch_add(1, Ordering::Relaxed);
                counters.events.fetch_add(written.events, Ordering::Relaxed);
            }
            written.outcomes
        }
        Ok(Fast::NotTried) => refs.iter().map(|_| None).collect(),
        Ok(Fast::Refused { repeated, cause }) => {
            // Nothing was written; the batch goes the usual way, on a fresh connection if
            // this one failed (a session ended by the server answers its next statement so).
            if repeated {
                counters.repeated_batches.fetch_add(1, Ordering::Relaxed);
            } else {
                tracing::debug!(error = %cause, "the one-statement batch failed; reading first");
                kept.failed();
                held.discard();
            }
            refs.iter().map(|_| None).collect()
        }
        Err(e) => {
            // Whether the statement committed is unknown: nobody gets an `Ok`.
            kept.failed();
            held.discard();
            let unknown = refs.iter().map(|_| None).collect();
            let answers = refused(unknown, &e, counters);
            answer(replies, answers, counters);
            return;
        }
    };
    let rest: Vec<usize> = (0..answers.len())
        .filter(|&i| answers[i].is_none())
        .collect();
    if !rest.is_empty() {
        let subset: Vec<&Op> = rest.iter().map(|&i| refs[i]).collect();
        match in_transaction(pool, held, kept, &subset, now, counters).await {
            Ok(committed) => {
                for (&i, outcome) in rest.iter().zip(committed) {
                    answers[i] = Some(outcome);
                }
            }
            Err(e) => answers = refused(answers, &e, counters),
        }
    }
    answer(replies, answers, counters);
}

/// `attempt`'s result, or `Unavailable` once it has run `BATCH_TIMEOUT`.
async fn within_batch_timeout<T>(attempt: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
    tokio::time::timeout(BATCH_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable("the batch timed out".into())))
}

/// Commits `ops` in a transaction that reads their facts first.
async fn in_transaction(
    pool: &PgPool,
    held: &mut Held,
    kept: &mut Kept,
    ops: &[&Op],
    now: i64,
    counters: &Counters,
) -> StoreResult<Vec<StoreResult<Outcome>>> {
    let attempt = async {
        loop {
            let tx = held.begin(pool).await?;
            match batch::commit(tx, ops, now, kept).await? {
                Ended::Committed(committed) => return Ok(committed),
                Ended::RepeatedClientId => {
                    // Looked up this time (`batch::commit` asks for it): it cannot repeat.
                    counters.repeated_batches.fetch_add(1, Ordering::Relaxed);
                    sqlx::query("ROLLBACK").execute(&mut **tx).await?;
                }
            }
        }
    };
    let result = within_batch_timeout(attempt).await;
    match result {
        Ok(committed) => {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters
                .events
                .fetch_add(committed.events, Ordering::Relaxed);
            counters
                .event_statements
                .fetch_add(committed.event_statements, Ordering::Relaxed);
            Ok(committed.outcomes)
        }
        Err(e) => {
            kept.failed();
            held.discard();
            Err(e)
        }
    }
}

/// The answers with every command not yet answered refused for `e`: `Unavailable`, since
/// nothing of theirs is known to be committed.
fn refused(
    answers: Vec<Option<StoreResult<Outcome>>>,
    e: &StoreError,
    counters: &Counters,
) -> Vec<Option<StoreResult<Outcome>>> {
    counters.failed_batches.fetch_add(1, Ordering::Relaxed);
    let unanswered = answers.iter().filter(|a| a.is_none()).count();
    tracing::error!(error = %e, writes = unanswered, "batch not committed");
    let cause = failure_cause(e);
    answers
        .into_iter()
        .map(|a| a.or_else(|| Some(Err(StoreError::Unavailable(cause.clone())))))
        .collect()
}

/// Sends each command its answer.
fn answer(replies: Vec<Reply>, answers: Vec<Option<StoreResult<Outcome>>>, counters: &Counters) {
    for (reply, answer) in replies.into_iter().zip(answers) {
        let answer =
            answer.unwrap_or_else(|| Err(StoreError::Unavailable("the write was lost".into())));
        if !matches!(answer, Err(StoreError::Unavailable(_))) {
            counters.writes.fetch_add(1, Ordering::Relaxed);
        }
        reply.send(answer);
    }
}
