//! Writes to the directory (shard 0): users, tokens, DM keys and the user → shards index.
//! Each is one single-row statement, atomic by itself; none is on the message hot path, so
//! they skip the group-commit writer.

use confab_protocol::UserRef;
use sqlx::PgPool;

use crate::{StoreError, StoreResult, random_id};

pub(super) async fn create_user(
    dir: &PgPool,
    now: i64,
    name: &str,
    password_hash: &str,
) -> StoreResult<UserRef> {
    let user = UserRef {
        id: random_id("u_"),
        name: name.to_owned(),
    };
    let inserted = sqlx::query(
        "INSERT INTO users (id, name, password_hash, created_ts) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(password_hash)
    .bind(now)
    .execute(dir)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(StoreError::Conflict("name is taken"));
    }
    Ok(user)
}

pub(super) async fn create_token(
    dir: &PgPool,
    token_hash: &str,
    user_id: &str,
    expires_ts: i64,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO tokens (hash, user_id, expires_ts) VALUES ($1, $2, $3)")
        .bind(token_hash)
        .bind(user_id)
        .bind(expires_ts)
        .execute(dir)
        .await?;
    Ok(())
}

pub(super) async fn revoke_token(dir: &PgPool, token_hash: &str) -> StoreResult<bool> {
    let n = sqlx::query("DELETE FROM tokens WHERE hash = $1")
        .bind(token_hash)
        .execute(dir)
        .await?
        .rows_affected();
    Ok(n > 0)
}

/// Gives `dm_key` the room `room_id` unless it already has one; returns the room it has.
/// Written before the room exists, so the key is unique across every shard.
pub(super) async fn claim_dm(dir: &PgPool, dm_key: &str, room_id: &str) -> StoreResult<String> {
    let room: Option<String> = sqlx::query_scalar(
        "INSERT INTO dms (dm_key, room_id) VALUES ($1, $2) ON CONFLICT (dm_key) DO NOTHING \
         RETURNING room_id",
    )
    .bind(dm_key)
    .bind(room_id)
    .fetch_optional(dir)
    .await?;
    if let Some(room) = room {
        return Ok(room);
    }
    // Another call claimed the key first (its insert has committed: ours waited for it).
    sqlx::query_scalar("SELECT room_id FROM dms WHERE dm_key = $1")
        .bind(dm_key)
        .fetch_optional(dir)
        .await?
        .ok_or_else(|| StoreError::Unavailable("the DM key vanished".into()))
}

/// Records that `user_id` has (or may soon have) a room in `shard`. Written before the
/// shard's transaction and never removed, so the index is always a superset.
pub(super) async fn note_user_shard(dir: &PgPool, user_id: &str, shard: usize) -> StoreResult<()> {
    let shard = i32::try_from(shard).map_err(|_| StoreError::Config("too many shards".into()))?;
    sqlx::query("INSERT INTO user_shards (user_id, shard) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(user_id)
        .bind(shard)
        .execute(dir)
        .await?;
    Ok(())
}
