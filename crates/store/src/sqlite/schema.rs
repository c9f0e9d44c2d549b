//! Opening SQLite connections: pragmas, the schema and its version.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::client_ids;
use crate::{StoreError, StoreResult};

/// The schema version this build writes and reads (`PRAGMA user_version`).
pub(super) const SCHEMA_VERSION: i64 = 3;

/// How long a connection waits for a lock (a checkpoint, another process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements each connection keeps compiled.
const STATEMENT_CACHE: usize = 64;

/// The writer's page cache, in KiB (SQLite's default is 2 MiB). A group commit dirties a few
/// hundred pages spread over the events table and its indexes; with the default cache SQLite
/// spills dirty pages to the WAL before the commit and reads clean ones back from the kernel.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_ts    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    hash       TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    expires_ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens (user_id);
CREATE TABLE IF NOT EXISTS rooms (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    name_lower   TEXT NOT NULL,
    visibility   TEXT NOT NULL,
    dm_key       TEXT UNIQUE,
    owner        TEXT NOT NULL,
    created_ts   INTEGER NOT NULL,
    member_count INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL,
    -- the seq through which the room's client ids are in client_ids (client_ids.rs)
    client_ids_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rooms_public ON rooms (visibility, name_lower, id);
CREATE TABLE IF NOT EXISTS members (
    room_id  TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    read_seq INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_user ON members (user_id, room_id);
CREATE TABLE IF NOT EXISTS events (
    room_id   TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    id        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    from_id   TEXT NOT NULL,
    from_name TEXT NOT NULL,
    by_id     TEXT,
    by_name   TEXT,
    body      TEXT,
    target    INTEGER,
    deleted   INTEGER NOT NULL DEFAULT 0,
    ts        INTEGER NOT NULL,
    client_id TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS events_seq ON events (room_id, seq);
CREATE TABLE IF NOT EXISTS client_ids (
    room_id   TEXT NOT NULL,
    from_id   TEXT NOT NULL,
    client_id TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (room_id, from_id, client_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_edits
    ON events (room_id, target) WHERE kind = 'edit';
";

/// From version 1: client ids leave the events' index for their own table (client_ids.rs),
/// filled from `events` by `client_ids::recover` since every room's mark starts at 0.
const UPGRADE_FROM_1: &str = "
ALTER TABLE rooms ADD COLUMN client_ids_seq INTEGER NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS events_client_id;
";

/// Up to version 2, events were a `WITHOUT ROWID` table keyed by `(room_id, seq)`: each
/// commit rewrote (and split, three pages at a time) the leaf of every room it appended to.
/// From version 3 they are a rowid table, appended at its end, with a small unique index on
/// `(room_id, seq)`: about half the pages written per commit over 100 busy rooms.
/// `MOVE_EVENTS` runs before the schema is created, `MOVED_EVENTS` after.
const MOVE_EVENTS: &str = "
ALTER TABLE events RENAME TO events_v2;
DROP INDEX IF EXISTS events_edits;
DROP INDEX IF EXISTS events_seq;
";
const MOVED_EVENTS: &str = "
INSERT INTO events (room_id, seq, id, kind, from_id, from_name, by_id, by_name, body, target,
                    deleted, ts, client_id)
    SELECT room_id, seq, id, kind, from_id, from_name, by_id, by_name, body, target,
           deleted, ts, client_id
    FROM events_v2 ORDER BY room_id, seq;
DROP TABLE events_v2;
";

/// The WAL file of the database at `db` (SQLite names it so).
pub(super) fn wal_path(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// `synchronous = full`: every acknowledged commit is on disk.
pub(super) const FULL: &str = "FULL";

/// Checks the `synchronous` option: `full` or `normal`.
pub(super) fn synchronous(value: &str) -> StoreResult<&'static str> {
    match value.to_ascii_lowercase().as_str() {
        "full" => Ok(FULL),
        "normal" => Ok("NORMAL"),
        other => Err(StoreError::Config(format!(
            "sqlite_synchronous must be `full` or `normal`, not `{other}`"
        ))),
    }
}

/// Opens the one write connection: creates the file and its directory, turns on WAL and
/// creates or checks the schema.
pub(super) fn open_writer(path: &Path, synchronous: &str) -> StoreResult<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Config(format!(
            "{} cannot use WAL (journal_mode is {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    // Statement and savepoint journals stay in memory instead of a temporary file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Checkpoints run on their own connection (checkpoint.rs), never inside the writer's commits.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    migrate(&conn)?;
    client_ids::recover(&conn)?;
    // From here on no commit syncs by itself: with `full` the syncer thread (syncer.rs) syncs
    // the WAL after each commit, before anyone is answered; checkpoints still sync the WAL
    // before copying it and the database after.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// Opens a read-only connection to a database the writer has already set up.
pub(super) fn open_reader(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Creates the schema in a new database, or checks that an existing one is ours.
fn migrate(conn: &Connection) -> StoreResult<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Config(format!(
            "the database has schema version {version}; this build knows only up to {SCHEMA_VERSION}"
        )));
    }
    let (before, after) = match version {
        1 => (format!("{UPGRADE_FROM_1} {MOVE_EVENTS}"), MOVED_EVENTS),
        2 => (MOVE_EVENTS.to_owned(), MOVED_EVENTS),
        _ => (String::new(), ""),
    };
    if !before.is_empty() {
        tracing::info!(
            from = version,
            to = SCHEMA_VERSION,
            "upgrading the database schema"
        );
    }
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {before} {SCHEMA} {after} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    ))
    .inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })?;
    Ok(())
}
