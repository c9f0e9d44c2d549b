//! The Store port: users, tokens, rooms, memberships and each room's append-only event log.
//!
//! Contract, for every back end:
//! - Every write is atomic: the rule check (from `confab_domain::rules`), the rows and the
//!   events it writes commit together or not at all. A write that returns `Ok` is durable.
//! - A room's events get `seq` 1, 2, 3, … assigned inside the committing transaction: no gap,
//!   no reuse, even with many writers. Creating a room writes the owner's `join` as seq 1.
//! - A `Text` append repeating a `(room, user, client_id)` that is already stored writes nothing
//!   and returns the stored event with `duplicate: true`.
//! - Writes are group-committed: waiting writes are taken together (up to a bound) and
//!   committed in one transaction; one write's rule failure does not fail the others.
//! - Reads see only committed writes. Only `connect(url)` names a back end.

mod error;
mod model;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use confab_domain::text::{RoomName, UserName};
use confab_protocol::{Room, UserRef, Visibility};

pub use error::StoreError;
pub use model::{Append, Appended, Change, EventRange, Page, RoomInfo, TokenRecord, UserRecord};

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// The persistent state of confab. See the module documentation for the contract.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a user; `Conflict` if the name is taken.
    async fn create_user(&self, name: &UserName, password_hash: &str) -> StoreResult<UserRef>;
    /// The user with this (already folded) name, with its password hash.
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<UserRecord>>;
    /// The user with this id, or else with this name (folded to lower case).
    async fn find_user(&self, id_or_name: &str) -> StoreResult<Option<UserRef>>;

    /// Stores a session token by the hash of its secret.
    async fn create_token(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_ts: i64,
    ) -> StoreResult<()>;
    /// The token with this hash, expired or not (the caller checks `expires_ts`).
    async fn token(&self, token_hash: &str) -> StoreResult<Option<TokenRecord>>;
    /// Deletes a token; true if it existed.
    async fn revoke_token(&self, token_hash: &str) -> StoreResult<bool>;

    /// A room, whoever asks (the caller applies the visibility rules).
    async fn room(&self, room_id: &str) -> StoreResult<Option<RoomInfo>>;
    /// The user's read marker in the room, or `None` if not a member.
    async fn membership(&self, room_id: &str, user_id: &str) -> StoreResult<Option<u64>>;
    /// The user's rooms, each with `read_seq`, ordered by room id.
    async fn rooms_of(&self, user_id: &str) -> StoreResult<Vec<Room>>;
    /// Public rooms whose name contains `query` (case-insensitive), ordered by name.
    async fn public_rooms(&self, query: &str, limit: u32) -> StoreResult<Vec<Room>>;
    /// The members of a room.
    async fn members(&self, room_id: &str) -> StoreResult<Vec<UserRef>>;
    /// A page of a room's events: `Newest` and `Before` newest first, `After` oldest first.
    async fn events(&self, room_id: &str, range: EventRange, limit: u32) -> StoreResult<Page>;

    /// Creates a room owned by `owner`, writing the owner's `join` (seq 1).
    async fn create_room(
        &self,
        owner: &UserRef,
        name: &RoomName,
        visibility: Visibility,
    ) -> StoreResult<Change>;
    /// The DM between `a` and `b`, created with both joins if new; a member who left is re-joined.
    async fn open_dm(&self, a: &UserRef, b: &UserRef) -> StoreResult<Change>;
    /// `user` joins a public room (nothing written if already a member).
    async fn join(&self, room_id: &str, user: &UserRef) -> StoreResult<Change>;
    /// `user` leaves a room.
    async fn leave(&self, room_id: &str, user: &UserRef) -> StoreResult<Change>;
    /// The owner `actor` adds `target` (nothing written if already a member).
    async fn add_member(
        &self,
        room_id: &str,
        actor: &UserRef,
        target: &UserRef,
    ) -> StoreResult<Change>;
    /// The owner `actor` removes `target`.
    async fn remove_member(
        &self,
        room_id: &str,
        actor: &UserRef,
        target: &UserRef,
    ) -> StoreResult<Change>;
    /// Appends a text, edit, delete or react event written by `user`, a member.
    async fn append(&self, room_id: &str, user: &UserRef, append: Append) -> StoreResult<Appended>;
    /// Moves the user's read marker forward (clamped to the newest seq); the new value if it moved.
    async fn set_read(&self, room_id: &str, user_id: &str, seq: u64) -> StoreResult<Option<u64>>;

    /// The newest seq of each of these rooms; rooms that do not exist are left out.
    async fn last_seqs(&self, room_ids: &[String]) -> StoreResult<Vec<(String, u64)>> {
        let mut out = Vec::with_capacity(room_ids.len());
        for id in room_ids {
            if let Some(info) = self.room(id).await? {
                out.push((id.clone(), info.room.last_seq));
            }
        }
        Ok(out)
    }

    /// Waits until every acknowledged write is on disk and stops taking writes.
    async fn close(&self);
}

/// Opens the store a URL names: `sqlite://PATH` (a file), `sqlite::memory:` (a temporary
/// file, deleted when the store is dropped), or `postgres://…` (one database), or several
/// PostgreSQL URLs separated by commas (one shard each, the first also the directory).
pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<Arc<dyn Store>> {
    if postgres::is_postgres_url(url) {
        let urls = postgres::split_urls(url)?;
        return Ok(Arc::new(postgres::PgStore::connect(&urls, options).await?));
    }
    if url == "sqlite::memory:" {
        return Ok(Arc::new(
            sqlite::SqliteStore::open_temporary(options).await?,
        ));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        let store = sqlite::SqliteStore::open(std::path::Path::new(path), options).await?;
        return Ok(Arc::new(store));
    }
    Err(StoreError::Config(format!(
        "unsupported store URL scheme in `{}`",
        url.split(':').next().unwrap_or("")
    )))
}

/// Creates or upgrades the schema of the store a URL names (every shard of a PostgreSQL list),
/// then closes it: what `connect` does first, for running it before any node starts. Safe to
/// run while nodes start or run.
pub async fn migrate(url: &str, options: &StoreOptions) -> StoreResult<()> {
    let store = connect(url, options).await?;
    store.close().await;
    Ok(())
}

/// Settings shared by the back ends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// SQLite `synchronous`: `full` (survives power loss) or `normal` (survives a process crash).
    pub sqlite_synchronous: String,
    /// Read connections (SQLite).
    pub readers: usize,
    /// Connections per shard (PostgreSQL), shared by the shard's writers and its reads.
    pub pool_size: usize,
    /// Group-commit writers per shard (PostgreSQL), each committing its own rooms' writes, so
    /// one batch's round trips and commit overlap another's work (at most `pool_size - 2`).
    pub pg_writers: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch: 1024,
            sqlite_synchronous: "full".into(),
            readers: 4,
            pool_size: 8,
            pg_writers: 2,
        }
    }
}

/// A new event's id: a ULID (time-ordered, globally unique).
pub fn new_event_id() -> String {
    ulid::Ulid::new().to_string()
}

/// A new id: `prefix` and 16 random characters of `[A-Za-z0-9]`.
pub(crate) fn random_id(prefix: &str) -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut id = String::with_capacity(prefix.len() + 16);
    id.push_str(prefix);
    for _ in 0..16 {
        id.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    id
}
