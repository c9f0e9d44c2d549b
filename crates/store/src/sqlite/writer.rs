//! The one writer: a thread that owns the write connection and group-commits the commands
//! waiting on its channel in one transaction: text appends as `texts.rs` says, every other
//! command in its own savepoint. Each batch's answers go to the syncer (`syncer.rs`), which
//! sends them once the commit is on disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use confab_protocol::{UserRef, Visibility};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::client_ids::ClientIds;
use super::syncer::{Syncer, sync_failed};
use super::{checkpoint, membership, ops, texts::Texts};
use crate::{Append, Appended, Change, StoreError, StoreResult};

/// Where a write's answer goes.
pub(super) type Reply<T> = oneshot::Sender<StoreResult<T>>;

/// One write, as the writer thread receives it.
pub(super) enum Command {
    CreateUser {
        name: String,
        password_hash: String,
        reply: Reply<UserRef>,
    },
    CreateToken {
        token_hash: String,
        user_id: String,
        expires_ts: i64,
        reply: Reply<()>,
    },
    RevokeToken {
        token_hash: String,
        reply: Reply<bool>,
    },
    CreateRoom {
        owner: UserRef,
        name: String,
        visibility: Visibility,
        reply: Reply<Change>,
    },
    OpenDm {
        a: UserRef,
        b: UserRef,
        reply: Reply<Change>,
    },
    Join {
        room_id: String,
        user: UserRef,
        reply: Reply<Change>,
    },
    Leave {
        room_id: String,
        user: UserRef,
        reply: Reply<Change>,
    },
    AddMember {
        room_id: String,
        actor: UserRef,
        target: UserRef,
        reply: Reply<Change>,
    },
    RemoveMember {
        room_id: String,
        actor: UserRef,
        target: UserRef,
        reply: Reply<Change>,
    },
    Append {
        room_id: String,
        user: UserRef,
        append: Append,
        reply: Reply<Appended>,
    },
    SetRead {
        room_id: String,
        user_id: String,
        seq: u64,
        reply: Reply<Option<u64>>,
    },
    /// Finish the batch in progress, checkpoint the WAL, then answer and stop.
    Shutdown { done: oneshot::Sender<()> },
}

/// Counters of the writer's work, for tests and metrics.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) commits: AtomicU64,
    pub(super) writes: AtomicU64,
    /// Commits begun, numbered from 1: a commit takes its number before it becomes visible,
    /// so a reader knows which sync to wait for (`syncer::Synced::settle`).
    pub(super) begun: AtomicU64,
}

/// The answer of one executed command, sent once the batch's fate is known: its own result
/// if the batch committed, `failure` if it did not.
type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// One batch's answers, to be sent once its fate is known: after its sync if it committed.
#[must_use = "a batch's callers wait for its answers"]
pub(super) struct Batch {
    /// The commit's number (`Counters::begun`), if the batch got as far as committing.
    number: Option<u64>,
    failure: Option<StoreError>,
    finishes: Vec<Finish>,
}

impl Batch {
    /// A batch refused whole, without running, because of `failure`.
    fn refused(commands: Vec<Command>, failure: StoreError) -> Batch {
        Batch {
            number: None,
            failure: Some(failure),
            finishes: commands.into_iter().map(finish_unrun).collect(),
        }
    }

    /// The commit's number, if it began.
    pub(super) fn number(&self) -> Option<u64> {
        self.number
    }

    /// True if the transaction committed (it still needs its sync to be durable).
    pub(super) fn committed(&self) -> bool {
        self.number.is_some() && self.failure.is_none()
    }

    /// Sends every answer: the batch's own failure, else `sync_failure`, else each result.
    pub(super) fn answer(self, sync_failure: Option<&StoreError>) {
        let failure = self.failure.as_ref().or(sync_failure);
        for finish in self.finishes {
            finish(failure);
        }
    }
}

fn finish<T: Send + 'static>(reply: Reply<T>, result: StoreResult<T>) -> (bool, Finish) {
    let ok = result.is_ok();
    let send = move |failure: Option<&StoreError>| {
        let answer = match failure {
            Some(e) => Err(StoreError::Unavailable(unavailable_cause(e))),
            None => result,
        };
        // The caller may have gone away; the write stands either way.
        let _ = reply.send(answer);
    };
    (ok, Box::new(send))
}

fn unavailable_cause(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(cause) => cause.clone(),
        other => other.to_string(),
    }
}

/// Runs the writer until it is told to shut down or every sender is gone.
pub(super) fn run(
    mut conn: Connection,
    mut commands: mpsc::Receiver<Command>,
    ids: ClientIds,
    max_batch: usize,
    counters: Arc<Counters>,
    reset: &checkpoint::WalReset,
    syncer: Syncer,
) {
    let mut texts = Texts::new(ids);
    let mut done = None;
    while done.is_none() {
        let Some(first) = commands.blocking_recv() else {
            break;
        };
        let mut batch = Vec::with_capacity(max_batch.min(64));
        for command in std::iter::once(first).chain(std::iter::from_fn(|| commands.try_recv().ok()))
        {
            match command {
                Command::Shutdown { done: tx } => done = Some(tx),
                command => batch.push(command),
            }
            if done.is_some() || batch.len() >= max_batch {
                break;
            }
        }
        if syncer.failed() {
            syncer.hand(Batch::refused(batch, sync_failed()), true);
            continue;
        }
        let batch = run_batch(&mut conn, batch, &counters, &mut texts);
        syncer.hand(batch, commands.is_empty());
        texts.ids().merge_if_behind(&conn);
        reset.run_if_asked(&conn);
    }
    texts.ids().merge(&conn);
    // Refuse what is still queued (their callers get "closed"), answer what is committed,
    // then fold the WAL back.
    commands.close();
    drop(commands);
    syncer.stop();
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "WAL checkpoint at close failed");
    }
    drop(conn);
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

/// Commits `batch` in one transaction: texts together, each other command in its own
/// savepoint. `texts` holds what earlier batches' texts read. The answers wait in the
/// returned `Batch` until the commit is synced.
pub(super) fn run_batch(
    conn: &mut Connection,
    batch: Vec<Command>,
    counters: &Counters,
    texts: &mut Texts,
) -> Batch {
    let mut number = None;
    if batch.is_empty() {
        return Batch {
            number,
            failure: None,
            finishes: Vec::new(),
        };
    }
    let now = now_ms();
    let mut finishes = Vec::with_capacity(batch.len());
    let mut failure = run_cached(conn, "BEGIN IMMEDIATE").err();
    if failure.is_none() {
        // Before any text, while each room's stored `last_seq` covers only committed ids.
        texts.ids().merge_slice(conn);
    }
    for command in batch {
        if failure.is_some() {
            // The transaction is gone: answer without running.
            finishes.push(finish_unrun(command));
            continue;
        }
        let command = match command {
            Command::Append {
                room_id,
                user,
                append: Append::Text { client_id, body },
                reply,
            } => {
                let result = texts.append(conn, now, &room_id, &user, client_id, body);
                if result.is_err() && conn.is_autocommit() {
                    // SQLite rolled the whole transaction back by itself (I/O error, disk full).
                    failure = Some(StoreError::Unavailable("transaction rolled back".into()));
                }
                finishes.push(finish(reply, result).1);
                continue;
            }
            command => command,
        };
        // The command may read or change what the texts so far have changed.
        let flushed = texts.flush(conn);
        texts.forget();
        if let Err(e) = flushed {
            failure = Some(e);
            finishes.push(finish_unrun(command));
            continue;
        }
        if let Err(e) = conn.execute_batch("SAVEPOINT op") {
            failure = Some(e.into());
            finishes.push(finish_unrun(command));
            continue;
        }
        let (ok, finish) = execute(conn, now, command);
        finishes.push(finish);
        let end = if ok {
            "RELEASE op"
        } else {
            "ROLLBACK TO op; RELEASE op"
        };
        if let Err(e) = conn.execute_batch(end) {
            failure = Some(e.into());
        } else if conn.is_autocommit() {
            // SQLite rolled the whole transaction back by itself (I/O error, disk full).
            failure = Some(StoreError::Unavailable("transaction rolled back".into()));
        }
    }
    if failure.is_none()
        && let Err(e) = texts.flush(conn)
    {
        failure = Some(e);
    }
    if failure.is_none() {
        // Numbered before it becomes visible to readers.
        number = Some(counters.begun.fetch_add(1, Ordering::SeqCst) + 1);
        if let Err(e) = run_cached(conn, "COMMIT") {
            failure = Some(e);
        }
    }
    if let Some(e) = &failure {
        tracing::error!(error = %e, writes = finishes.len(), "batch not committed");
        if !conn.is_autocommit()
            && let Err(e) = conn.execute_batch("ROLLBACK")
        {
            tracing::error!(error = %e, "rollback failed");
        }
    } else {
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters
            .writes
            .fetch_add(finishes.len() as u64, Ordering::Relaxed);
    }
    texts.end_batch(failure.is_none());
    Batch {
        number,
        failure,
        finishes,
    }
}

/// Runs a statement kept compiled (`execute_batch` parses its SQL every time: once per commit
/// for `BEGIN` and `COMMIT`).
fn run_cached(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs one command on the open transaction.
fn execute(conn: &Connection, now: i64, command: Command) -> (bool, Finish) {
    match command {
        Command::CreateUser {
            name,
            password_hash,
            reply,
        } => finish(reply, ops::create_user(conn, now, &name, &password_hash)),
        Command::CreateToken {
            token_hash,
            user_id,
            expires_ts,
            reply,
        } => finish(
            reply,
            ops::create_token(conn, &token_hash, &user_id, expires_ts),
        ),
        Command::RevokeToken { token_hash, reply } => {
            finish(reply, ops::revoke_token(conn, &token_hash))
        }
        Command::CreateRoom {
            owner,
            name,
            visibility,
            reply,
        } => finish(
            reply,
            membership::create_room(conn, now, &owner, &name, visibility),
        ),
        Command::OpenDm { a, b, reply } => finish(reply, membership::open_dm(conn, now, &a, &b)),
        Command::Join {
            room_id,
            user,
            reply,
        } => finish(reply, membership::join(conn, now, &room_id, &user)),
        Command::Leave {
            room_id,
            user,
            reply,
        } => finish(reply, membership::leave(conn, now, &room_id, &user)),
        Command::AddMember {
            room_id,
            actor,
            target,
            reply,
        } => finish(
            reply,
            membership::add_member(conn, now, &room_id, &actor, &target),
        ),
        Command::RemoveMember {
            room_id,
            actor,
            target,
            reply,
        } => finish(
            reply,
            membership::remove_member(conn, now, &room_id, &actor, &target),
        ),
        Command::Append {
            room_id,
            user,
            append,
            reply,
        } => finish(reply, ops::append(conn, now, &room_id, &user, &append)),
        Command::SetRead {
            room_id,
            user_id,
            seq,
            reply,
        } => finish(reply, ops::set_read(conn, &room_id, &user_id, seq)),
        Command::Shutdown { done } => {
            let _ = done.send(());
            let nothing: Finish = Box::new(|_| {});
            (true, nothing)
        }
    }
}

fn unrun<T>() -> StoreResult<T> {
    Err(StoreError::Unavailable("batch failed".into()))
}

/// The answer of a command that never ran because its batch had already failed.
fn finish_unrun(command: Command) -> Finish {
    let (_, finish) = match command {
        Command::CreateUser { reply, .. } => finish(reply, unrun()),
        Command::CreateToken { reply, .. } => finish(reply, unrun()),
        Command::RevokeToken { reply, .. } => finish(reply, unrun()),
        Command::CreateRoom { reply, .. }
        | Command::OpenDm { reply, .. }
        | Command::Join { reply, .. }
        | Command::Leave { reply, .. }
        | Command::AddMember { reply, .. }
        | Command::RemoveMember { reply, .. } => finish(reply, unrun()),
        Command::Append { reply, .. } => finish(reply, unrun()),
        Command::SetRead { reply, .. } => finish(reply, unrun()),
        Command::Shutdown { done } => {
            let _ = done.send(());
            let nothing: Finish = Box::new(|_| {});
            (true, nothing)
        }
    };
    finish
}
