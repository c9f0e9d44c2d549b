//! Opening a shard's pool and migrating its schema: idempotent, and safe when several nodes
//! start at once (one advisory lock per database serializes them).

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::{StoreError, StoreOptions, StoreResult};

/// The schema version this build writes and reads, per part.
pub(super) const SCHEMA_VERSION: i32 = 1;

/// How long a caller waits for a connection before the store answers `Unavailable`.
pub(super) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest statement (lock waits included) before PostgreSQL cancels it.
const STATEMENT_TIMEOUT: &str = "10s";

/// A transaction left idle this long (a node stuck or cut off) is ended by PostgreSQL,
/// releasing its room locks.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "30s";

/// The key of the advisory lock that serializes migrations on one database.
const MIGRATION_LOCK: i64 = 0x636f_6e66_6162; // "confab"

/// The tables of every shard: rooms, their members and their events. `COLLATE "C"` makes ids
/// and names sort by bytes, as SQLite and Rust do.
const SHARD_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS rooms (
    id           TEXT COLLATE "C" PRIMARY KEY,
    name         TEXT NOT NULL,
    name_lower   TEXT COLLATE "C" NOT NULL,
    visibility   TEXT NOT NULL,
    dm_key       TEXT UNIQUE,
    owner        TEXT NOT NULL,
    created_ts   BIGINT NOT NULL,
    member_count BIGINT NOT NULL,
    last_seq     BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS rooms_public ON rooms (name_lower, id) WHERE visibility = 'public';
CREATE TABLE IF NOT EXISTS members (
    room_id   TEXT COLLATE "C" NOT NULL,
    user_id   TEXT COLLATE "C" NOT NULL,
    user_name TEXT COLLATE "C" NOT NULL,
    read_seq  BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX IF NOT EXISTS members_user ON members (user_id, room_id);
CREATE TABLE IF NOT EXISTS events (
    room_id   TEXT COLLATE "C" NOT NULL,
    seq       BIGINT NOT NULL,
    id        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    from_id   TEXT NOT NULL,
    from_name TEXT NOT NULL,
    by_id     TEXT,
    by_name   TEXT,
    body      TEXT,
    target    BIGINT,
    deleted   BOOLEAN NOT NULL DEFAULT FALSE,
    ts        BIGINT NOT NULL,
    client_id TEXT,
    PRIMARY KEY (room_id, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS events_client_id
    ON events (room_id, from_id, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_edits ON events (room_id, target) WHERE kind = 'edit';
"#;

/// The directory, in shard 0 only: users, tokens, the DM keys and which shards hold (or held)
/// each user's rooms.
const DIRECTORY_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS users (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_ts    BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    hash       TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens (user_id);
CREATE TABLE IF NOT EXISTS dms (
    dm_key  TEXT PRIMARY KEY,
    room_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS user_shards (
    user_id TEXT NOT NULL,
    shard   INTEGER NOT NULL,
    PRIMARY KEY (user_id, shard)
);
"#;

/// Which schema parts a database has at which version, and which shard it is.
const META_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS confab_schema (
    part    TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS confab_shard (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    shard    INTEGER NOT NULL
);
"#;

/// Opens the pool of shard `index` at `url`: bounded waits, so an unreachable database is
/// `Unavailable` within seconds, and pooled connections are checked before use, so the pool
/// recovers by itself when the database is back.
pub(super) async fn open_pool(url: &str, options: &StoreOptions) -> StoreResult<PgPool> {
    let connect: PgConnectOptions = url
        .parse()
        .map_err(|e| StoreError::Config(format!("bad PostgreSQL URL: {e}")))?;
    let connect = connect.application_name("confab").options([
        ("statement_timeout", STATEMENT_TIMEOUT),
        (
            "idle_in_transaction_session_timeout",
            IDLE_IN_TRANSACTION_TIMEOUT,
        ),
    ]);
    let size = u32::try_from(options.pool_size.max(2)).unwrap_or(u32::MAX);
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(Duration::from_secs(300))
        .test_before_acquire(true)
        .connect_with(connect)
        .await?;
    Ok(pool)
}

/// Creates or checks the schema of shard `index` (with the directory if `index` is 0) under
/// an advisory lock held for the transaction.
pub(super) async fn migrate(pool: &PgPool, index: usize) -> StoreResult<()> {
    let shard = i32::try_from(index)
        .map_err(|_| StoreError::Config(format!("too many shards ({index})")))?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(META_SCHEMA).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO confab_shard (shard) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(shard)
        .execute(&mut *tx)
        .await?;
    let recorded: i32 = sqlx::query_scalar("SELECT shard FROM confab_shard")
        .fetch_one(&mut *tx)
        .await?;
    if recorded != shard {
        return Err(StoreError::Config(format!(
            "the database configured as shard {shard} is shard {recorded}: \
             shards must keep their place in the list (add new ones at the end)"
        )));
    }
    let mut parts = vec![("shard", SHARD_SCHEMA)];
    if index == 0 {
        parts.push(("directory", DIRECTORY_SCHEMA));
    }
    for (part, schema) in parts {
        let version: Option<i32> =
            sqlx::query_scalar("SELECT version FROM confab_schema WHERE part = $1")
                .bind(part)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(version) = version.filter(|v| *v > SCHEMA_VERSION) {
            return Err(StoreError::Config(format!(
                "the {part} schema has version {version}; this build knows only up to \
                 {SCHEMA_VERSION}"
            )));
        }
        sqlx::raw_sql(schema).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO confab_schema (part, version) VALUES ($1, $2) \
             ON CONFLICT (part) DO UPDATE SET version = EXCLUDED.version",
        )
        .bind(part)
        .bind(SCHEMA_VERSION)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
