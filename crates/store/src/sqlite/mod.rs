//! SQLite back end: one file in WAL mode, one writer thread that group-commits every write,
//! and a small pool of read-only connections used from blocking tasks.

mod checkpoint;
mod client_ids;
mod id_filter;
mod membership;
mod ops;
mod read;
mod schema;
mod syncer;
#[cfg(test)]
mod tests;
mod texts;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use confab_domain::text::{RoomName, UserName};
use confab_protocol::{Room, UserRef, Visibility};
use rusqlite::Connection;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{
    Append, Appended, Change, EventRange, Page, RoomInfo, Store, StoreError, StoreOptions,
    StoreResult, TokenRecord, UserRecord,
};
use writer::{Command, Counters, Reply};

/// The SQLite store. Cheap to share behind an `Arc`; `close` it before the process ends.
pub struct SqliteStore {
    path: PathBuf,
    commands: mpsc::Sender<Command>,
    readers: Arc<ReadPool>,
    closed: AtomicBool,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: Mutex<Option<checkpoint::Checkpointer>>,
    counters: Arc<Counters>,
    /// How far commits are synced: every read waits for the commits it may have seen.
    synced: syncer::Synced,
    /// The directory of a temporary store, deleted with it.
    _temporary: Option<tempfile::TempDir>,
}

/// What the writer has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: u64,
    /// Writes answered from committed transactions (successes and rule refusals alike).
    pub writes: u64,
}

/// Read-only connections, one per permit.
struct ReadPool {
    connections: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    closed: AtomicBool,
}

fn closed() -> StoreError {
    StoreError::Unavailable("closed".into())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its writer.
    pub async fn open(path: &Path, options: &StoreOptions) -> StoreResult<SqliteStore> {
        let synchronous = schema::synchronous(&options.sqlite_synchronous)?;
        // With `full`, commits are synced by the syncer thread, not inside the commit.
        let wal = (synchronous == schema::FULL).then(|| schema::wal_path(path));
        let max_batch = options.max_batch.max(1);
        let reader_count = options.readers.max(1);
        let owned = path.to_owned();
        let (conn, readers) = tokio::task::spawn_blocking(move || {
            let conn = schema::open_writer(&owned, synchronous)?;
            let readers = (0..reader_count)
                .map(|_| schema::open_reader(&owned))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok::<_, StoreError>((conn, readers))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("opening the store: {e}")))??;

        let (tx, rx) = mpsc::channel(max_batch.saturating_mul(2));
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let (syncer, synced) = syncer::Syncer::start(wal.as_deref(), Arc::clone(&counters))?;
        let reset = Arc::new(checkpoint::WalReset::default());
        let writer_reset = Arc::clone(&reset);
        // Recovered at open, so the scan sees every id committed before.
        let ids = client_ids::ClientIds::with_filter(path);
        let writer = std::thread::Builder::new()
            .name("confab-sqlite-writer".into())
            .spawn(move || {
                writer::run(
                    conn,
                    rx,
                    ids,
                    max_batch,
                    thread_counters,
                    &writer_reset,
                    syncer,
                )
            })
            .map_err(|e| StoreError::Unavailable(format!("starting the writer: {e}")))?;
        Ok(SqliteStore {
            path: path.to_owned(),
            commands: tx,
            readers: Arc::new(ReadPool {
                connections: Mutex::new(readers),
                permits: Arc::new(Semaphore::new(reader_count)),
                closed: AtomicBool::new(false),
            }),
            closed: AtomicBool::new(false),
            writer: Mutex::new(Some(writer)),
            checkpointer: Mutex::new(Some(checkpoint::Checkpointer::start(path, reset)?)),
            counters,
            synced,
            _temporary: None,
        })
    }

    /// Opens a store in a new temporary directory that is deleted when the store is dropped.
    pub async fn open_temporary(options: &StoreOptions) -> StoreResult<SqliteStore> {
        let dir = tempfile::Builder::new()
            .prefix("confab-store-")
            .tempdir()
            .map_err(|e| StoreError::Unavailable(format!("creating a temporary directory: {e}")))?;
        let mut store = SqliteStore::open(&dir.path().join("confab.db"), options).await?;
        store._temporary = Some(dir);
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the writer has committed so far.
    pub fn writer_stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
        }
    }

    /// Sends a command to the writer and waits for its answer.
    async fn write<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> StoreResult<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Runs `query` on a read connection in a blocking task, and answers once whatever it
    /// read is synced.
    async fn read<T, F>(&self, query: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = Arc::clone(&self.readers);
        if pool.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let permit = Arc::clone(&pool.permits)
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        let value = tokio::task::spawn_blocking(move || {
            let conn = pool
                .connections
                .lock()
                .map_err(|_| StoreError::Unavailable("read pool poisoned".into()))?
                .pop()
                .ok_or_else(closed)?;
            let result = query(&conn);
            if !pool.closed.load(Ordering::Acquire)
                && let Ok(mut connections) = pool.connections.lock()
            {
                connections.push(conn);
            }
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task: {e}")))??;
        self.synced.settle().await?;
        Ok(value)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, name: &UserName, password_hash: &str) -> StoreResult<UserRef> {
        let name = name.as_str().to_owned();
        let password_hash = password_hash.to_owned();
        self.write(|reply| Command::CreateUser {
            name,
            password_hash,
            reply,
        })
        .await
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<UserRecord>> {
        let name = name.to_owned();
        self.read(move |c| read::user_by_name(c, &name)).await
    }

    async fn find_user(&self, id_or_name: &str) -> StoreResult<Option<UserRef>> {
        let id_or_name = id_or_name.to_owned();
        self.read(move |c| read::find_user(c, &id_or_name)).await
    }

    async fn create_token(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_ts: i64,
    ) -> StoreResult<()> {
        let token_hash = token_hash.to_owned();
        let user_id = user_id.to_owned();
        self.write(|reply| Command::CreateToken {
            token_hash,
            user_id,
            expires_ts,
            reply,
        })
        .await
    }

    async fn token(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>> {
        let token_hash = token_hash.to_owned();
        self.read(move |c| read::token(c, &token_hash)).await
    }

    async fn revoke_token(&self, token_hash: &str) -> StoreResult<bool> {
        let token_hash = token_hash.to_owned();
        self.write(|reply| Command::RevokeToken { token_hash, reply })
            .await
    }

    async fn room(&self, room_id: &str) -> StoreResult<Option<RoomInfo>> {
        let room_id = room_id.to_owned();
        self.read(move |c| read::room(c, &room_id)).await
    }

    async fn last_seqs(&self, room_ids: &[String]) -> StoreResult<Vec<(String, u64)>> {
        let ids = room_ids.to_vec();
        self.read(move |c| read::last_seqs(c, &ids)).await
    }

    async fn membership(&self, room_id: &str, user_id: &str) -> StoreResult<Option<u64>> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.read(move |c| read::membership(c, &room_id, &user_id))
            .await
    }

    async fn rooms_of(&self, user_id: &str) -> StoreResult<Vec<Room>> {
        let user_id = user_id.to_owned();
        self.read(move |c| read::rooms_of(c, &user_id)).await
    }

    async fn public_rooms(&self, query: &str, limit: u32) -> StoreResult<Vec<Room>> {
        let query = query.to_owned();
        self.read(move |c| read::public_rooms(c, &query, limit))
            .await
    }

    async fn members(&self, room_id: &str) -> StoreResult<Vec<UserRef>> {
        let room_id = room_id.to_owned();
        self.read(move |c| read::members(c, &room_id)).await
    }

    async fn events(&self, room_id: &str, range: EventRange, limit: u32) -> StoreResult<Page> {
        let room_id = room_id.to_owned();
        self.read(move |c| read::events(c, &room_id, range, limit))
            .await
    }

    async fn create_room(
        &self,
        owner: &UserRef,
        name: &RoomName,
        visibility: Visibility,
    ) -> StoreResult<Change> {
        let owner = owner.clone();
        let name = name.as_str().to_owned();
        self.write(|reply| Command::CreateRoom {
            owner,
            name,
            visibility,
            reply,
        })
        .await
    }

    async fn open_dm(&self, a: &UserRef, b: &UserRef) -> StoreResult<Change> {
        let (a, b) = (a.clone(), b.clone());
        self.write(|reply| Command::OpenDm { a, b, reply }).await
    }

    async fn join(&self, room_id: &str, user: &UserRef) -> StoreResult<Change> {
        let (room_id, user) = (room_id.to_owned(), user.clone());
        self.write(|reply| Command::Join {
            room_id,
            user,
            reply,
        })
        .await
    }

    async fn leave(&self, room_id: &str, user: &UserRef) -> StoreResult<Change> {
        let (room_id, user) = (room_id.to_owned(), user.clone());
        self.write(|reply| Command::Leave {
            room_id,
            user,
            reply,
        })
        .await
    }

    async fn add_member(
        &self,
        room_id: &str,
        actor: &UserRef,
        target: &UserRef,
    ) -> StoreResult<Change> {
        let (room_id, actor, target) = (room_id.to_owned(), actor.clone(), target.clone());
        self.write(|reply| Command::AddMember {
            room_id,
            actor,
            target,
            reply,
        })
        .await
    }

    async fn remove_member(
        &self,
        room_id: &str,
        actor: &UserRef,
        target: &UserRef,
    ) -> StoreResult<Change> {
        let (room_id, actor, target) = (room_id.to_owned(), actor.clone(), target.clone());
        self.write(|reply| Command::RemoveMember {
            room_id,
            actor,
            target,
            reply,
        })
        .await
    }

    async fn append(&self, room_id: &str, user: &UserRef, append: Append) -> StoreResult<Appended> {
        let (room_id, user) = (room_id.to_owned(), user.clone());
        self.write(|reply| Command::Append {
            room_id,
            user,
            append,
            reply,
        })
        .await
    }

    async fn set_read(&self, room_id: &str, user_id: &str, seq: u64) -> StoreResult<Option<u64>> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.write(|reply| Command::SetRead {
            room_id,
            user_id,
            seq,
            reply,
        })
        .await
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Idle readers go now; busy ones are dropped when they finish.
        self.readers.closed.store(true, Ordering::Release);
        self.readers.permits.close();
        if let Ok(mut connections) = self.readers.connections.lock() {
            connections.clear();
        }
        if let Some(c) = self.checkpointer.lock().ok().and_then(|mut c| c.take()) {
            let _ = tokio::task::spawn_blocking(move || c.stop()).await;
        }
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Shutdown { done }).await.is_ok() {
            // An error means the writer already stopped.
            let _ = finished.await;
        }
        let Some(handle) = self.writer.lock().ok().and_then(|mut w| w.take()) else {
            return;
        };
        let joined = tokio::task::spawn_blocking(move || handle.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            tracing::error!("the SQLite writer thread panicked");
        }
    }
}
